"""History retention: what ``recon-job history prune`` deletes, and the one rule deciding it.

A mixin of :class:`~recon_job.store.HistoryStore`. With ``[history] keep_days`` = N (0: keep
everything), the history keeps the last N UTC days, today included: :func:`retention_start`
is the first of them. Everything dated before it goes, table by table:

* ``runs`` whose window ended on or before it (its last day is before it), with their
  ``run_groups`` — except a run still ``running`` and a run an undelivered outbox row
  (``pending``, ``sending``, ``failed``) still refers to;
* ``outbox`` rows in a final state (``sent``, ``partial``, ``dead``, ``suppressed``) created,
  and sent, before it, with their ``delivery_attempts``;
* ``notification_log`` entries last sent before it whose alert group has nothing firing (the
  next alert of that group is then a new one, as it would be anyway);
* ``restatements`` of days before it and ``openai_series`` spans that ended by it;
* ``cache_entries`` no run has used since before it (a log file's entries are stamped by every
  run that takes them: those left are of files deleted, or of days no window asks for any
  more; if one is asked for again, its file is read again).

Every run whose window overlaps the kept days stays, whatever its status: the dashboard's
overview of any range inside them (which reads only the runs overlapping the range) is the same
after a prune as before. ``price_findings`` always stay (a price is alerted once, ever).

A prune is one write transaction: one ``DELETE`` per table (children first, so that each count
is what that table lost; the foreign keys' cascades then find nothing). A dry run counts the
same rows with the same conditions in a read transaction and deletes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

import structlog
from sqlalchemy import ColumnElement, Connection, Table, delete, func, select

from recon_job.store.records import RunStatus
from recon_job.store.schema import (
    cache_entries,
    delivery_attempts,
    notification_log,
    openai_series,
    outbox,
    restatements,
    run_groups,
    runs,
)

log = structlog.get_logger(__name__)

EVENT_PRUNED: Final = "store.history.pruned"

#: Outbox states a relay never touches again: such a row may go once it is old.
FINAL_OUTBOX_STATUSES: Final = ("sent", "partial", "dead", "suppressed")
#: The tables a prune deletes from, in the order the counts are reported.
PRUNED_TABLES: Final = (
    "runs",
    "run_groups",
    "outbox",
    "delivery_attempts",
    "notification_log",
    "restatements",
    "openai_series",
    "cache_entries",
)
#: What a group with nothing firing stores in ``notification_log.firing`` (``alerts_json``).
_NOTHING_FIRING: Final = "[]"


def retention_start(today: date, keep_days: int) -> date | None:
    """The first UTC day the history keeps: the last ``keep_days`` days end with ``today``.

    None when ``keep_days`` is 0 (keep everything). A run whose window ends (exclusive) on or
    before this day holds no day the history keeps.
    """
    if keep_days < 0:
        raise ValueError(f"keep_days must not be negative, got {keep_days}")
    if keep_days == 0:
        return None
    return today - timedelta(days=keep_days - 1)


@dataclass(frozen=True)
class PruneReport:
    """What a prune deleted (or, dry, would delete): rows per table."""

    #: The first UTC day kept; everything dated before it went.
    kept_from: date
    #: True: nothing was deleted, the counts are what a prune would delete now.
    dry_run: bool
    #: Table name -> rows deleted, every table of :data:`PRUNED_TABLES` in that order.
    deleted: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def total(self) -> int:
        """Rows deleted over every table."""
        return sum(self.deleted.values())


class RetentionStore:
    """Pruning of the history; needs ``_write``, ``_read`` and ``_errors`` of HistoryStore."""

    if TYPE_CHECKING:

        def _write(self) -> AbstractContextManager[Connection]: ...
        def _read(self) -> AbstractContextManager[Connection]: ...
        def _errors(self, action: str) -> AbstractContextManager[None]: ...

    def prune_history(self, kept_from: date, *, dry_run: bool = False) -> PruneReport:
        """Delete what is dated before ``kept_from`` (see the module); return the counts.

        ``kept_from`` comes from :func:`retention_start` (the caller reads the clock). With
        ``dry_run`` nothing is deleted and the counts are what would be. Raises ``StoreError``.
        """
        conditions = _conditions(kept_from)
        if dry_run:
            with self._errors("count what a prune would delete"), self._read() as conn:
                counts = {
                    name: conn.execute(
                        select(func.count()).select_from(table).where(where)
                    ).scalar_one()
                    for name, (table, where) in conditions.items()
                }
        else:
            with self._errors("prune the history"), self._write() as conn:
                counts = {}
                # Children first: each count is that table's own, and the cascades find nothing.
                for name in ("run_groups", "runs", "delivery_attempts", *PRUNED_TABLES):
                    if name not in counts:
                        table, where = conditions[name]
                        counts[name] = conn.execute(delete(table).where(where)).rowcount
        report = PruneReport(
            kept_from=kept_from,
            dry_run=dry_run,
            deleted=MappingProxyType({name: counts[name] for name in PRUNED_TABLES}),
        )
        log.info(EVENT_PRUNED, kept_from=kept_from.isoformat(), dry_run=dry_run, **report.deleted)
        return report


def _conditions(kept_from: date) -> dict[str, tuple[Table, ColumnElement[bool]]]:
    """Per table, the condition of the rows a prune deletes (the same for counting)."""
    since = datetime.combine(kept_from, time(), tzinfo=UTC)
    # Uncorrelated (evaluated once, not per run): the runs undelivered notifications refer to.
    undelivered = (
        select(outbox.c.run_id)
        .where(outbox.c.run_id.is_not(None))
        .where(outbox.c.status.not_in(FINAL_OUTBOX_STATUSES))
    )
    old_run = (
        (runs.c.window_end <= kept_from)
        & (runs.c.status != RunStatus.RUNNING.value)
        & runs.c.id.not_in(undelivered)
    )
    old_outbox = (
        outbox.c.status.in_(FINAL_OUTBOX_STATUSES)
        & (outbox.c.created_at < since)
        & (outbox.c.sent_at.is_(None) | (outbox.c.sent_at < since))
    )
    return {
        "runs": (runs, old_run),
        "run_groups": (run_groups, run_groups.c.run_id.in_(select(runs.c.id).where(old_run))),
        "outbox": (outbox, old_outbox),
        "delivery_attempts": (
            delivery_attempts,
            delivery_attempts.c.outbox_id.in_(select(outbox.c.id).where(old_outbox)),
        ),
        "notification_log": (
            notification_log,
            (notification_log.c.last_sent_at < since)
            & (notification_log.c.firing == _NOTHING_FIRING),
        ),
        "restatements": (restatements, restatements.c.day < kept_from),
        "openai_series": (openai_series, openai_series.c.end_at <= since),
        "cache_entries": (cache_entries, cache_entries.c.updated_at < since),
    }
