"""Engine creation for SQLite and PostgreSQL, and translation of database errors to StoreError.

SQLite is set up the way SQLAlchemy's documentation and reliability.md §7.1 recommend: WAL (readers
and the writer do not block each other), a busy timeout (a second writer waits instead of
failing), foreign keys on, and the ``sqlite3`` driver's own transaction handling switched off so
that SQLAlchemy emits ``BEGIN`` itself — ``BEGIN IMMEDIATE`` for writers, which takes the write
lock up front and so avoids ``SQLITE_BUSY_SNAPSHOT`` that no busy timeout can wait out.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import URL
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from recon_job import database
from recon_job.database import display_url, first_line, redact_url_text
from recon_job.errors import StoreError

DEFAULT_URL = "sqlite:///recon_history.db"
"""History database used when none is configured: a file in the working directory."""

#: Execution option marking an engine whose transactions write (SQLite: ``BEGIN IMMEDIATE``).
WRITE_OPTION = "recon_write"

URL_HELP = (
    "expected sqlite:///relative/path.db, sqlite:////absolute/path.db, or "
    "postgresql+psycopg://user:password@host:5432/dbname "
    "(PostgreSQL needs: pip install 'recon-job[postgres]')"
)


def parse_url(url: str) -> URL:
    """Parse a database URL; ``postgresql://`` and ``postgres://`` mean psycopg 3.

    Raises a permanent ``StoreError`` saying which forms are expected when it cannot be parsed.
    """
    try:
        return database.parse_url(url)
    except ValueError as e:
        raise StoreError(
            f"cannot parse history database URL {redact_url_text(url)!r}: {URL_HELP}",
            permanent=True,
            reason="store_bad_url",
        ) from e


def create_store_engine(url: URL, *, busy_timeout: float, create: bool = True) -> Engine:
    """Create the engine for ``url``, with the SQLite pragmas and BEGIN handling installed.

    A SQLite file's directory is created when ``create``; otherwise the file must exist. Raises a
    permanent ``StoreError`` for an unknown dialect, a driver that is not installed, or a SQLite
    path that cannot be used (its parent is a file, a read-only filesystem, a missing file when
    not ``create``). Does not connect.
    """
    kwargs: dict[str, Any] = {}
    backend = url.get_backend_name()
    if backend == "sqlite":
        database = url.database or ""
        in_memory = database in ("", ":memory:") or url.query.get("mode") == "memory"
        if in_memory:
            # One shared connection, or every checkout would see a new, empty database.
            kwargs["poolclass"] = StaticPool
            kwargs["connect_args"] = {"check_same_thread": False}
        elif not database.startswith("file:"):
            _sqlite_directory(Path(database).expanduser(), create=create)
    elif backend == "postgresql" and "connect_timeout" not in url.query:
        # A server that drops packets would otherwise hang the run for the OS TCP timeout.
        kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        engine = create_engine(url, pool_pre_ping=backend != "sqlite", **kwargs)
    except (exc.ArgumentError, ImportError) as e:
        raise StoreError(
            f"cannot use history database {display_url(url)}: {first_line(e)}; {URL_HELP}",
            permanent=True,
            reason="store_bad_url",
        ) from e
    if backend == "sqlite":
        _install_sqlite_listeners(engine, busy_timeout=busy_timeout)
    return engine


def _wal(cursor: sqlite3.Cursor, busy_timeout: float) -> None:
    """Switch the database to WAL, waiting up to ``busy_timeout`` for a lock another opener
    holds: SQLite answers this pragma "database is locked" at once, without its busy handler,
    when two processes open a new history file together (two first runs, or a CronJob and
    the dashboard starting at the same time)."""
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _install_sqlite_listeners(engine: Engine, *, busy_timeout: float) -> None:
    """The SQLAlchemy-documented recipe for real transactions on pysqlite, plus our pragmas."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        assert isinstance(dbapi_connection, sqlite3.Connection)
        # Stop the driver from emitting BEGIN (late, and only before DML); we emit it ourselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # busy_timeout first: switching a new file to WAL needs a lock another opener may hold.
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            cursor.execute("PRAGMA foreign_keys = ON")
            _wal(cursor, busy_timeout)
            # In WAL, NORMAL is durable against application crashes and much cheaper than FULL.
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def to_store_error(error: BaseException, *, url: URL, action: str) -> StoreError:
    """Translate a SQLAlchemy (or Alembic) error into a readable ``StoreError``.

    Operational failures (database locked, server unreachable, connection dropped) are transient;
    bad credentials, a missing database and everything else (constraint violations, bad data)
    are permanent. The message names the database without its password.
    """
    detail = database.first_line(error, url)
    transient = database.is_transient(error)
    hint = ""
    if "database is locked" in detail:
        hint = " (another process held the write lock longer than the busy timeout; retry)"
    message = f"history database {display_url(url)}: could not {action}: {detail}{hint}"
    if url.password:
        message = message.replace(str(url.password), "***")
    return StoreError(
        redact_url_text(message),
        permanent=not transient,
        reason="store_unavailable" if transient else "store_error",
    )


def _sqlite_directory(path: Path, *, create: bool) -> None:
    """Make sure a SQLite file can live at ``path``: its directory exists (or is created)."""
    if not create:
        if not path.is_file():
            raise StoreError(
                f"there is no history database at {path}: nothing has been recorded there "
                "yet; check RECON_DATABASE_URL (recon-job run creates it)",
                permanent=True,
                reason="store_missing",
            )
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(
            f"cannot create the history database {path}: its directory {path.parent} cannot "
            f"be created ({e.strerror or type(e).__name__}); check RECON_DATABASE_URL",
            permanent=True,
            reason="store_path",
        ) from e
