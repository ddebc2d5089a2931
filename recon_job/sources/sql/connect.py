"""The SQL source's connection: opened read-only and in UTC, and driver errors translated.

Every driver exception becomes a :class:`~recon_job.errors.LogSourceError` here: transient when
retrying later can help (server down, busy, deadlock), permanent when it cannot (login refused,
no such database, a bad filter). Messages show the URL with its password masked and never quote it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from recon_job.database import first_line, is_transient
from recon_job.errors import LogSourceError

if TYPE_CHECKING:
    from recon_job.sources.sql.options import SqlTableOptions

#: Seconds to wait for a connection unless the URL sets ``connect_timeout`` itself.
CONNECT_TIMEOUT_S = 10
#: Drivers that take a ``connect_timeout`` argument.
_TIMEOUT_BACKENDS = ("postgresql", "mysql", "mariadb")


@contextmanager
def open_connection(options: SqlTableOptions) -> Iterator[sa.Connection]:
    """A read-only connection set up for the query (UTC session); the engine is disposed after.

    Connection failures become :class:`LogSourceError`: transient when the server could not
    be reached, permanent when it refused (login, unknown database).
    """
    url = make_url(options.url)
    backend = url.get_backend_name()
    connect_args: dict[str, Any] = {}
    if backend == "sqlite":
        url = _read_only_sqlite(url)
    elif backend == "duckdb":
        # A database file is opened read-only (a wrong path fails instead of creating one);
        # :memory: cannot be, and with a relation only reads of the files happen there.
        if (url.database or ":memory:") != ":memory:":
            connect_args["read_only"] = True
    elif backend in _TIMEOUT_BACKENDS and "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    try:
        # NullPool: the connection (and the session settings below) ends with the fetch.
        engine = sa.create_engine(url, poolclass=NullPool, connect_args=connect_args)
    except (ImportError, sa_exc.ArgumentError) as e:
        raise LogSourceError(
            f"cannot use database {options.display_url}: {type(e).__name__} — install "
            "the driver (pip install 'recon-job[postgres]', 'recon-job[mysql]' or "
            "'recon-job[duckdb]') and check "
            "the URL's dialect",
            reason="database_driver",
        ) from e
    try:
        try:
            conn = engine.connect()
        except sa_exc.DBAPIError as e:
            raise database_error(options, e, "connect") from e
        with conn:
            try:
                _prepare_session(conn)
            except sa_exc.DBAPIError as e:
                raise database_error(options, e, "connect") from e
            yield conn
    finally:
        engine.dispose()


def database_error(options: SqlTableOptions, e: sa_exc.DBAPIError, stage: str) -> LogSourceError:
    """Translate a driver error, keeping the URL's password out of the message."""
    detail = first_line(e, options.url)
    where = f"database {options.display_url}"
    if is_transient(e):
        if stage == "connect":
            return LogSourceError(
                f"cannot reach {where}: {detail} — check that the server is up and "
                "reachable; the next run retries",
                permanent=False,
                reason="database_unreachable",
            )
        return LogSourceError(
            f"reading {options.subject} from {where} failed: {detail} — the "
            "server is busy or went away; the next run retries",
            permanent=False,
            reason="database_error",
        )
    if stage == "connect":
        backend = make_url(options.url).get_backend_name()
        check = {
            "sqlite": "the SQLite file path",
            "duckdb": "the DuckDB file path and the DuckDB settings in the URL's query "
            "(?memory_limit=1GB&threads=2)",
        }.get(backend, "the user, password and database name")
        return LogSourceError(
            f"cannot open {where}: {detail} — check {check} in the SQL source URL",
            reason="database_refused",
        )
    if stage == "reflect":
        return LogSourceError(
            f"cannot inspect {options.subject} in {where}: {detail} — check that "
            "the source's user may read it (and a relation's files exist)",
            reason="table_unreadable",
        )
    return LogSourceError(
        f"the usage query on {options.subject} failed: {detail} — check the "
        "SQL source's filter and column mapping",
        reason="query_failed",
    )


def _prepare_session(conn: sa.Connection) -> None:
    """Make the session read-only and UTC, then start the transaction the query runs in."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.exec_driver_sql("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        conn.exec_driver_sql("SET TIME ZONE 'UTC'")
    elif dialect in ("mysql", "mariadb"):
        conn.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
        conn.exec_driver_sql("SET time_zone = '+00:00'")
    elif dialect == "sqlite":
        conn.exec_driver_sql("PRAGMA query_only = ON")
    elif dialect == "duckdb":
        # TIMESTAMPTZ values are shown, and cast to dates, in the session zone.
        conn.exec_driver_sql("SET TimeZone = 'UTC'")
    # Other (untested) warehouses: the user's grants make it read-only, as the docs say.
    # The settings apply from the next transaction on: end the one they ran in.
    conn.commit()


def _read_only_sqlite(url: URL) -> URL:
    """A SQLite file URL opened read-only, so a wrong path fails instead of creating a file."""
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return url
    return url.set(database=f"file:{database}", query={**url.query, "mode": "ro", "uri": "true"})
