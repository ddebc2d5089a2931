"""The sources' cache, kept with the history: opaque entries by namespace and key (0009).

A mixin of :class:`~recon_job.store.HistoryStore`. The store knows nothing of what a source
caches (layers: a source is not imported here): an entry is bytes under a string key. The
NDJSON source keeps, per log file and reading settings, its aggregates per UTC day
(:mod:`recon_job.sources.ndjson.cache`).

Concurrent runs may write the same entry: each write is one transaction (an insert, or an
update when the row is there), and whichever commits last wins; both writers computed a
correct entry from the same file, so either is right.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection, delete, exc, insert, select, update

from recon_job.store.schema import cache_entries


class CacheStore:
    """The ``cache_entries`` table; needs ``_write``, ``_read`` and ``_errors`` of
    HistoryStore."""

    if TYPE_CHECKING:

        def _write(self) -> AbstractContextManager[Connection]: ...
        def _read(self) -> AbstractContextManager[Connection]: ...
        def _errors(self, action: str) -> AbstractContextManager[None]: ...

    def cache_get(self, namespace: str, keys: Iterable[str]) -> dict[str, bytes]:
        """The entries of ``keys`` in ``namespace`` that exist, by key."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        found: dict[str, bytes] = {}
        with self._errors("read the cache"), self._read() as conn:
            # In slices: a statement holds a bounded number of parameters on every dialect.
            for start in range(0, len(wanted), 500):
                query = select(cache_entries.c.key, cache_entries.c.value).where(
                    cache_entries.c.namespace == namespace,
                    cache_entries.c.key.in_(wanted[start : start + 500]),
                )
                found.update((key, bytes(value)) for key, value in conn.execute(query))
        return found

    def cache_put(
        self,
        namespace: str,
        entries: dict[str, bytes],
        now: datetime,
        drop: Iterable[str] = (),
        touch: Iterable[str] = (),
    ) -> None:
        """Store ``entries`` (key -> bytes) in ``namespace``, replacing those there, delete
        the entries of ``drop`` (superseded), and stamp those of ``touch`` with ``now`` (still
        in use: ``history prune`` drops only entries no run used for ``keep_days``); one
        transaction, so a reader sees all of it or none.

        Rows are written in key order, stamps and new values alike: two runs writing at once
        lock them in the same order (PostgreSQL), so neither waits for the other in a cycle.
        """
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("now must be an aware UTC datetime")
        gone = sorted(set(drop) - set(entries))
        stamped = set(touch) - set(entries) - set(gone)
        with self._errors("write the cache"), self._write() as conn:
            for start in range(0, len(gone), 500):
                conn.execute(
                    delete(cache_entries).where(
                        cache_entries.c.namespace == namespace,
                        cache_entries.c.key.in_(gone[start : start + 500]),
                    )
                )
            batch: list[str] = []
            for key in sorted(stamped | entries.keys()):
                if key in stamped:
                    batch.append(key)
                    if len(batch) < 500:
                        continue
                _stamp(conn, namespace, batch, now)
                batch = []
                if key in entries:
                    _upsert(conn, namespace, key, entries[key], now)
            _stamp(conn, namespace, batch, now)

    def cache_clear(self, namespace: str | None = None) -> int:
        """Drop every entry of ``namespace`` (None: of every namespace); how many went."""
        statement = delete(cache_entries)
        if namespace is not None:
            statement = statement.where(cache_entries.c.namespace == namespace)
        with self._errors("clear the cache"), self._write() as conn:
            return int(conn.execute(statement).rowcount or 0)


def _stamp(conn: Connection, namespace: str, keys: list[str], now: datetime) -> None:
    """Stamp the entries of ``keys`` (if any) with ``now``."""
    if keys:
        conn.execute(
            update(cache_entries)
            .where(cache_entries.c.namespace == namespace, cache_entries.c.key.in_(keys))
            .values(updated_at=now)
        )


def _upsert(conn: Connection, namespace: str, key: str, value: bytes, now: datetime) -> None:
    """Update the row of ``key``, or insert it (another writer may insert it first: then this
    one updates it, last writer wins)."""
    changed = update(cache_entries).where(
        cache_entries.c.namespace == namespace, cache_entries.c.key == key
    )
    values = {"value": value, "updated_at": now}
    if conn.execute(changed.values(**values)).rowcount:
        return
    try:
        with conn.begin_nested():
            conn.execute(insert(cache_entries).values(namespace=namespace, key=key, **values))
    except exc.IntegrityError:
        conn.execute(changed.values(**values))
