"""The history of every reconciliation run, in SQLite or PostgreSQL.

``HistoryStore`` is the only thing in recon-job that touches the history database. A run is
recorded in two steps so that a crash always leaves evidence: ``start_run`` commits a ``running``
row at once; ``finish_run`` (or ``fail_run``) later sets its outcome — totals and every group row
in one transaction. Running the same window again adds a new run; nothing is overwritten.

Every database error leaves this module as a :class:`~recon_job.errors.StoreError` naming the
database without its password: transient (``permanent=False``) when the database is locked or
unreachable, permanent otherwise.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, exc, insert, select, text, update

from recon_job.database import display_url
from recon_job.errors import StoreError
from recon_job.models import Comparison, ReconResult, Usage, Window
from recon_job.store.cache import CacheStore
from recon_job.store.engine import (
    DEFAULT_URL,
    WRITE_OPTION,
    create_store_engine,
    parse_url,
    to_store_error,
)
from recon_job.store.locks import period_lock
from recon_job.store.outbox import OutboxStore, enqueue_in
from recon_job.store.outbox_records import OutboxItem
from recon_job.store.prices import PriceFindingStore
from recon_job.store.reads import ReadStore
from recon_job.store.records import (
    HOLDS_RESULT,
    GroupRecord,
    RunRecord,
    RunStatus,
    dumps,
    exceeds_json,
    extras_json,
    group_record,
    integral,
    run_record,
    stored_result,
    unpriced_json,
    untracked_json,
    usage_to_json,
)
from recon_job.store.restatements import RestatementStore
from recon_job.store.retention import RetentionStore
from recon_job.store.runstate import RunStateStore, current_owner
from recon_job.store.schema import run_groups, runs
from recon_job.store.series import SeriesStore
from recon_job.store.trends import TrendStore
from recon_job.version import __version__

#: Run ids are 64-bit signed integers in every database.
_ID_LIMIT = 1 << 63

log = structlog.get_logger(__name__)

EVENT_OPENED = "store.opened"
EVENT_SCHEMA_UPGRADED = "store.schema.upgraded"
EVENT_RUN_STARTED = "store.run.started"
EVENT_RUN_FINISHED = "store.run.finished"
EVENT_RUN_FAILED = "store.run.failed"


class HistoryStore(
    RunStateStore,
    OutboxStore,
    ReadStore,
    PriceFindingStore,
    RestatementStore,
    TrendStore,
    SeriesStore,
    RetentionStore,
    CacheStore,
):
    """Runs and their per-group results, and the notification outbox, stored through SQLAlchemy.

    Opening a store creates the database schema, or upgrades it to the newest migration; that
    is idempotent and safe when several processes open the same database at once. Timestamps
    are passed in (the store never reads the clock) and must be timezone-aware.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        busy_timeout: float = 5.0,
        tool_version: str | None = None,
        create: bool = True,
    ) -> None:
        """Open the history database at ``url`` and bring its schema to head.

        With ``create=False`` (the reading commands) a database that does not exist yet — a
        missing SQLite file, an empty PostgreSQL database — is a permanent ``StoreError``
        (``store_missing``), never created: a mistyped path must not leave an empty database.

        ``url`` is a SQLAlchemy URL: ``sqlite:///recon_history.db`` (relative to the working
        directory; parent directories are created), ``sqlite://`` (in memory, for tests), or
        ``postgresql+psycopg://user:password@host/db``. ``busy_timeout`` is how long, in
        seconds, a SQLite writer waits for another writer before giving up.

        Raises ``StoreError``: permanent for a bad URL, a missing driver or an unknown schema
        revision; transient when the database is locked or unreachable.
        """
        self._url = parse_url(url)
        self.url = display_url(self._url)
        """The database URL, password hidden."""
        self._tool_version = tool_version or __version__
        self._engine = create_store_engine(self._url, busy_timeout=busy_timeout, create=create)
        # Same pool; on SQLite its transactions begin with BEGIN IMMEDIATE.
        self._writer = self._engine.execution_options(**{WRITE_OPTION: True})
        try:
            with self._errors("create or upgrade the schema"):
                before, after = self._schema(create=create)
        except BaseException:
            self._engine.dispose()
            raise
        if before != after:
            log.info(EVENT_SCHEMA_UPGRADED, database=self.url, before=before, after=after)
        log.debug(EVENT_OPENED, database=self.url, revision=after)

    def _schema(self, *, create: bool) -> tuple[str | None, str]:
        """Bring the schema to head: (revision before, revision after).

        A database already at head (every run but the first of a version) is recognised by one
        plain read, without importing Alembic (its import costs about a tenth of a run's start):
        Alembic is imported only to create, upgrade or refuse a schema.
        """
        current = _recorded_revision(self._engine)
        if current is not None and current == _packaged_head():
            return current, current
        from alembic.util.exc import CommandError

        from recon_job.store import migrate

        try:
            if not create and migrate.current_revision(self._engine) is None:
                raise StoreError(
                    f"the history database {self.url} holds no recon-job history yet; "
                    "check RECON_DATABASE_URL (recon-job run creates it)",
                    permanent=True,
                    reason="store_missing",
                )
            return migrate.upgrade(self._engine, self._writer)
        except CommandError as e:
            raise to_store_error(e, url=self._url, action="create or upgrade the schema") from e

    @classmethod
    def open(cls, url: str = DEFAULT_URL, **options: Any) -> HistoryStore:
        """Same as ``HistoryStore(url, ...)``."""
        return cls(url, **options)

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def period_lock(self, period_key: str) -> AbstractContextManager[bool]:
        """``locks.period_lock`` on this database: yields True if this process now holds it."""
        return period_lock(self._url.render_as_string(hide_password=False), period_key)

    def start_run(
        self, window: Window, *, started_at: datetime, trigger: str, owner: str | None = None
    ) -> int:
        """Record a new ``running`` run for ``window``, committed at once; return its id.

        ``owner`` (default: this process, ``hostname:pid``) lets a later run prove the run's
        process is gone and mark the row ``abandoned`` (see ``reap_stale_runs``).
        """
        statement = insert(runs).values(
            window_kind=window.kind,
            window_start=window.start,
            window_end=window.end,
            window_key=window.key,
            status=RunStatus.RUNNING.value,
            trigger=trigger,
            started_at=started_at,
            tool_version=self._tool_version,
            owner=owner or current_owner(),
        )
        with self._errors("start a run"), self._write() as conn:
            inserted = conn.execute(statement).inserted_primary_key
        # Never None after a single-row INSERT.
        assert inserted is not None
        run_id: int = inserted[0]
        log.debug(EVENT_RUN_STARTED, run_id=run_id, window=window.key, trigger=trigger)
        return run_id

    def finish_run(
        self,
        run_id: int,
        result: ReconResult,
        *,
        finished_at: datetime,
        outbox: Sequence[OutboxItem] = (),
        diagnosis: Mapping[str, Any] | None = None,
    ) -> None:
        """Store the outcome of a running run: status, totals and every group, atomically.

        ``diagnosis`` is the result's diagnosis as JSON-ready data (the report's form), None
        when nothing was found.

        ``outbox`` holds the run's notifications, inserted in the same transaction (the
        transactional outbox, reliability.md §4.1); one already enqueued is skipped.
        Raises a permanent ``StoreError`` if the run does not exist or is no longer running.
        """
        with self._errors(f"finish run {run_id}"), self._write() as conn:
            self._running(conn, run_id)
            tolerance = result.tolerance
            values: dict[str, Any] = {
                "status": RunStatus(result.status.value).value,
                "finished_at": finished_at,
                "threshold_pct": tolerance.threshold_pct,
                "cost_floor": tolerance.cost_floor,
                "token_floor": tolerance.token_floor,
                "request_floor": tolerance.request_floor,
                **_usage_columns("local", result.local),
                **_usage_columns("openai", result.openai),
                **_difference_columns(result.comparison),
                "group_count": len(result.groups),
                "mismatch_count": len(result.mismatches),
                "pending_days": dumps([d.isoformat() for d in result.pending_days]),
                "skipped": dumps(dict(result.skipped)),
                "skipped_locations": dumps(
                    {reason: list(where) for reason, where in result.skipped_locations.items()}
                ),
                "unpriced": unpriced_json(result.unpriced),
                "info": dumps(dict(result.info)),
                "sources": dumps({n: usage_to_json(u) for n, u in result.local_sources.items()}),
                "extras": extras_json(result.local, result.openai),
                "untracked": untracked_json(result.untracked),
                "unavailable_families": dumps(list(result.unavailable_families)),
                "diagnosis": None if diagnosis is None else dumps(diagnosis),
            }
            conn.execute(update(runs).where(runs.c.id == run_id).values(values))
            rows = [
                {
                    "run_id": run_id,
                    "day": group.key.day,
                    "model": group.key.model,
                    "project_id": group.key.project_id,
                    "api_key_id": group.key.api_key_id,
                    "family": group.key.family,
                    **_usage_columns("local", group.local),
                    **_usage_columns("openai", group.openai),
                    **_difference_columns(group.comparison),
                    "status": group.status.value,
                    "extras": extras_json(group.local, group.openai),
                }
                for group in result.groups
            ]
            if rows:
                conn.execute(insert(run_groups), rows)
            enqueue_in(conn, outbox, now=finished_at)
        log.debug(
            EVENT_RUN_FINISHED, run_id=run_id, status=result.status.value, groups=len(result.groups)
        )

    def fail_run(
        self,
        run_id: int,
        *,
        reason: str,
        message: str,
        finished_at: datetime,
        outbox: Sequence[OutboxItem] = (),
    ) -> None:
        """Mark a running run ``failed``; its totals stay NULL and it gets no group rows.

        ``message`` must already be redacted: it is stored as given. ``outbox`` (the
        ``fetch_failed`` notifications) is inserted in the same transaction.
        """
        with self._errors(f"record the failure of run {run_id}"), self._write() as conn:
            self._running(conn, run_id)
            conn.execute(
                update(runs)
                .where(runs.c.id == run_id)
                .values(
                    status=RunStatus.FAILED.value,
                    finished_at=finished_at,
                    error_reason=reason,
                    error_message=message,
                )
            )
            enqueue_in(conn, outbox, now=finished_at)
        log.debug(EVENT_RUN_FAILED, run_id=run_id, reason=reason)

    def list_runs(self, limit: int = 20) -> list[RunRecord]:
        """The ``limit`` most recent runs, newest first."""
        if limit < 0:
            raise ValueError(f"limit must not be negative, got {limit}")
        query = select(runs).order_by(runs.c.started_at.desc(), runs.c.id.desc()).limit(limit)
        with self._errors("list runs"), self._read() as conn:
            return [run_record(row) for row in conn.execute(query)]

    def get_run(self, run_id: int) -> RunRecord | None:
        """One run, or None if there is no run with that id."""
        if not 0 < run_id < _ID_LIMIT:
            return None  # no database could bind it: SQLite raised OverflowError
        query = select(runs).where(runs.c.id == run_id)
        with self._errors(f"read run {run_id}"), self._read() as conn:
            row = conn.execute(query).one_or_none()
            return run_record(row) if row is not None else None

    def run_groups(self, run_id: int) -> list[GroupRecord]:
        """The group rows of a run, in the order the result listed them (empty if none)."""
        if not 0 < run_id < _ID_LIMIT:
            return []
        query = select(run_groups).where(run_groups.c.run_id == run_id).order_by(run_groups.c.id)
        with self._errors(f"read the groups of run {run_id}"), self._read() as conn:
            return [group_record(row) for row in conn.execute(query)]

    def stored_result(self, run_id: int) -> ReconResult | None:
        """The result run ``run_id`` recorded, rebuilt in full; None when it holds none.

        See :func:`~recon_job.store.records.stored_result`: what ``recon-job run`` shows for a
        period that is already complete.
        """
        run = self.get_run(run_id)
        if run is None or run.local is None or run.status not in HOLDS_RESULT:
            return None
        return stored_result(run, self.run_groups(run_id))

    @staticmethod
    def _running(conn: Connection, run_id: int) -> None:
        """Lock the run row for update; a StoreError unless it exists and is running."""
        query = select(runs).where(runs.c.id == run_id).with_for_update()
        run = conn.execute(query).one_or_none()
        if run is None:
            raise StoreError(f"there is no run {run_id} in the history", permanent=True)
        if run.status != RunStatus.RUNNING:
            # Another process may have marked it (interrupted/abandoned); don't overwrite.
            raise StoreError(
                f"run {run_id} is already {run.status}; refusing to overwrite it", permanent=True
            )

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A connection in one writer transaction (BEGIN IMMEDIATE on SQLite), committed on
        exit."""
        with self._writer.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A connection in one read transaction."""
        with self._engine.begin() as conn:
            yield conn

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Translate database errors raised inside the block into StoreError."""
        try:
            yield
        except exc.SQLAlchemyError as e:
            raise to_store_error(e, url=self._url, action=action) from e


#: The packaged migrations, one file per revision (read, not imported, by :func:`_packaged_head`).
_VERSIONS = Path(__file__).resolve().parent / "migrations" / "versions"
_REVISION_LINE = re.compile(
    r"^(down_revision|revision)(?:\s*:[^=\n]*)?\s*=\s*(?:[\"']([^\"']*)[\"']|None)", re.MULTILINE
)


@functools.cache
def _packaged_head() -> str | None:
    """The newest packaged revision, read from the migration files without importing Alembic:
    the one revision no other revises. None when that is not clear (a branch, a file that does
    not say): then Alembic decides."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in _VERSIONS.glob("*.py"):
        found = dict(_REVISION_LINE.findall(path.read_text("utf-8")))
        if not found.get("revision"):
            return None
        revisions.add(found["revision"])
        if found.get("down_revision"):
            revised.add(found["down_revision"])
    heads = revisions - revised
    return heads.pop() if len(heads) == 1 else None


def _recorded_revision(engine: Engine) -> str | None:
    """The revision Alembic recorded in ``alembic_version`` (its default table), or None when
    there is none yet (or, oddly, several: Alembic then looks itself)."""
    with engine.connect() as conn:
        if not conn.dialect.has_table(conn, "alembic_version"):
            return None
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    return str(rows[0][0]) if len(rows) == 1 else None


def _usage_columns(side: str, usage: Usage) -> dict[str, Any]:
    return {
        f"{side}_input_tokens": usage.input_tokens,
        f"{side}_cached_tokens": usage.cached_tokens,
        f"{side}_output_tokens": usage.output_tokens,
        f"{side}_requests": usage.requests,
        f"{side}_cost": usage.cost,
    }


def _difference_columns(comparison: Comparison) -> dict[str, Any]:
    return {
        "diff_tokens": integral(comparison.tokens, "tokens"),
        "diff_requests": integral(comparison.requests, "requests"),
        "diff_cost": comparison.cost.difference,
        "tokens_pct": comparison.tokens.pct,
        "requests_pct": comparison.requests.pct,
        "cost_pct": comparison.cost.pct,
        "exceeds": exceeds_json(comparison),
    }
