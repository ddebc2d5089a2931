"""One runner per period: a lock that works across processes (and hosts, on PostgreSQL).

``period_lock(store_url, period_key)`` is a context manager yielding True when this process now
holds the lock of ``period_key`` and False when another runner holds it. It never waits: losing
the lock is a clean ``skipped: locked`` (reliability.md §0 rule 3, R32). The lock lives with the
history database, so every runner sharing a history shares the locks:

* **SQLite file**: ``filelock`` (``flock``) on ``<db>.locks/<period key>.lock``, a file next to
  the database — never the database file itself, because closing any descriptor of the database
  file drops SQLite's own POSIX locks on it (sqlite.org/howtocorrupt §2.2, reliability.md §7.1).
  The kernel releases an ``flock`` when its process dies, so a SIGKILLed runner leaves nothing
  behind (R34). Like WAL, this needs a local filesystem.
* **PostgreSQL**: one dedicated connection holds a transaction with
  ``pg_try_advisory_xact_lock`` for the whole run; the lock ends with that transaction, or with
  the session when the process dies. Not a session-level lock: with a connection pool (or
  PgBouncer in transaction mode) it would outlive the run on a pooled connection (§7.2).
* **SQLite in memory** (tests, embedding): a lock private to this process, which is all that can
  see that database anyway.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import structlog
from filelock import FileLock, Timeout
from sqlalchemy import exc, text
from sqlalchemy.engine import URL

from recon_job.database import display_url
from recon_job.errors import StoreError
from recon_job.store.engine import create_store_engine, parse_url, to_store_error

log = structlog.get_logger(__name__)

EVENT_LOCK_ACQUIRED = "store.lock.acquired"
EVENT_LOCK_BUSY = "store.lock.busy"

#: Prefix of every advisory lock key, so recon-job's keys cannot collide with an app's own.
KEY_PREFIX = "recon-job:"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_memory_locks: dict[tuple[str, str], threading.Lock] = {}
_memory_guard = threading.Lock()


def advisory_key(period_key: str) -> int:
    """A stable signed 64-bit key for ``pg_try_advisory_xact_lock`` (same on every host)."""
    digest = hashlib.blake2b((KEY_PREFIX + period_key).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_file_path(database: str | Path, period_key: str) -> Path:
    """The lock file of ``period_key`` for the SQLite database file ``database``.

    ``<db>.locks/<key with unsafe characters as _>.lock``: a separate file per period, in a
    directory next to the database, never the database file itself.
    """
    db = Path(database).expanduser()
    return db.with_name(db.name + ".locks") / f"{_UNSAFE.sub('_', period_key)}.lock"


@contextmanager
def period_lock(store_url: str, period_key: str) -> Iterator[bool]:
    """Try to take the lock of ``period_key`` for the history at ``store_url``, without waiting.

    Yields True when held (released on exit, or when the process dies) and False when another
    runner holds it. Raises ``StoreError`` when the lock cannot be attempted at all (PostgreSQL
    unreachable, lock directory not writable) or the backend is not SQLite or PostgreSQL.
    """
    url = parse_url(store_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        database = _sqlite_file(url)
        if database is None:
            lock = _memory_lock(url, period_key)
            acquired = lock.acquire(blocking=False)
            try:
                yield _logged(acquired, period_key)
            finally:
                if acquired:
                    lock.release()
            return
        with _file_lock(database, period_key) as acquired:
            yield _logged(acquired, period_key)
        return
    if backend == "postgresql":
        with _advisory_lock(url, period_key) as acquired:
            yield _logged(acquired, period_key)
        return
    raise StoreError(
        f"history database {display_url(url)}: period locks need SQLite or PostgreSQL",
        permanent=True,
        reason="store_bad_url",
    )


def _logged(acquired: bool, period_key: str) -> bool:
    log.debug(EVENT_LOCK_ACQUIRED if acquired else EVENT_LOCK_BUSY, period=period_key)
    return acquired


def _sqlite_file(url: URL) -> str | None:
    """The database file of a SQLite URL, or None for an in-memory database."""
    database = url.database or ""
    if database in ("", ":memory:") or url.query.get("mode") == "memory":
        return None
    if database.startswith("file:"):
        # A URI filename (sqlite:///file:path?uri=true): the path is before any '?'.
        database = database[len("file:") :].split("?", 1)[0]
    return database


def _memory_lock(url: URL, period_key: str) -> threading.Lock:
    with _memory_guard:
        return _memory_locks.setdefault((display_url(url), period_key), threading.Lock())


@contextmanager
def _file_lock(database: str, period_key: str) -> Iterator[bool]:
    path = lock_file_path(database, period_key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # timeout=0: try once. A new FileLock per attempt: flock locks belong to an open file
        # description, so two attempts in one process exclude each other as two processes do.
        lock = FileLock(path, timeout=0)
        lock.acquire()
    except Timeout:
        yield False
        return
    except OSError as e:
        raise StoreError(
            f"cannot take the period lock {str(path)!r}: {e.strerror or e}; the directory next "
            "to the history database must be writable",
            permanent=True,
            reason="store_lock",
        ) from e
    try:
        yield True
    finally:
        lock.release()


@contextmanager
def _advisory_lock(url: URL, period_key: str) -> Iterator[bool]:
    # A private engine: its single connection is the lock's session and is closed with it,
    # never returned to a pool another run could borrow (reliability.md §7.2).
    engine = create_store_engine(url, busy_timeout=5.0)
    try:
        try:
            conn = engine.connect()
        except exc.SQLAlchemyError as e:
            raise to_store_error(e, url=url, action="take the period lock") from e
        try:
            transaction = conn.begin()
            acquired = bool(
                conn.execute(
                    text("SELECT pg_try_advisory_xact_lock(:key)"),
                    {"key": advisory_key(period_key)},
                ).scalar_one()
            )
        except exc.SQLAlchemyError as e:
            conn.close()
            raise to_store_error(e, url=url, action="take the period lock") from e
        try:
            yield acquired
        finally:
            # Ending the transaction is what releases an xact lock; a dead connection already has.
            try:
                transaction.rollback()
                conn.close()
            except exc.SQLAlchemyError:
                pass
    finally:
        engine.dispose()
