"""Run every period that is due, each exactly once, whoever else is trying (run-once and daemon).

``run_due`` is what ``recon-job run --due`` (cron, the Kubernetes CronJob) and every daemon tick
call. For each period kind it works out the settled periods in the look-back that have no
completed run and runs them oldest first — catch-up lives here, not in the scheduler
(reliability.md §0 rule 2). Each period is run under its period lock on the history database
(:func:`~recon_job.store.locks.period_lock`): a runner that cannot take it skips the period
(``locked``, no row, exit 0; rule 3, R32). Under the lock it marks the rows of dead runners
``abandoned`` and checks completion again, since another runner may have just finished the
period (``complete``; R33, R34).

With ``only=`` it runs one explicit window the same way (``recon-job run --date ...``): a
completed daily or monthly period is skipped unless ``force``; a range is never a period and
always runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import structlog

from recon_job import job, windows, wiring
from recon_job.config.settings import Settings
from recon_job.errors import Interrupted
from recon_job.models import RunOutcome, Status, Window
from recon_job.notify.base import Transport
from recon_job.store import HistoryStore

log = structlog.get_logger(__name__)

EV_DUE_PLANNED = "recon.due.planned"
EV_DUE_SKIPPED = "recon.due.skipped"
EV_DUE_STOPPED = "recon.due.stopped"
EV_DUE_FINISHED = "recon.due.finished"

#: Why a period was not run: another runner holds its lock, or it already has a completed run.
SKIP_LOCKED = "locked"
SKIP_COMPLETE = "complete"

PERIOD_KINDS: tuple[windows.PeriodKind, ...] = ("daily", "monthly")


@dataclass(frozen=True)
class DueReport:
    """What one ``run_due`` call did: the runs, the periods it skipped and the rows it reaped."""

    #: Every run made, oldest period first (failed runs included).
    runs: tuple[RunOutcome, ...] = ()
    #: ``(period key, reason)``; reason ``locked`` or ``complete``. No run row for either.
    skipped: tuple[tuple[str, str], ...] = ()
    #: Ids of ``running`` rows marked ``abandoned`` (their runner had died).
    abandoned: tuple[int, ...] = ()
    #: True when ``stop`` cut the call short; the rest stays due for the next run.
    interrupted: bool = False
    #: The run marked ``interrupted`` when the stop came mid-run, if any.
    interrupted_run: int | None = None

    @property
    def status(self) -> str:
        """``interrupted``, ``failed`` (a run failed), ``mismatch``, ``ok`` or ``nothing-due``."""
        if self.interrupted:
            return "interrupted"
        statuses = {outcome.status for outcome in self.runs}
        if Status.FAILED in statuses:
            return "failed"
        if Status.MISMATCH in statuses:
            return "mismatch"
        return "ok" if self.runs else "nothing-due"


def due_windows(
    settings: Settings,
    store: HistoryStore,
    *,
    now: datetime,
    kinds: Sequence[windows.PeriodKind] = PERIOD_KINDS,
) -> list[Window]:
    """The settled periods of ``kinds`` in the look-back without a completed run, oldest first.

    Kinds in the order given; within a kind oldest first (``windows.due_periods``).
    """
    settle = timedelta(hours=settings.reconcile.settle_hours)
    lookback = {
        "daily": settings.schedule.lookback_days,
        "monthly": settings.schedule.lookback_months,
    }
    due: list[Window] = []
    for kind in kinds:
        candidates = windows.due_periods(
            kind, now=now, settle=settle, lookback=lookback[kind], completed=()
        )
        if not candidates:
            continue
        completed = store.completed_periods((kind,), since=candidates[0].start)
        due.extend(period for period in candidates if period.key not in completed)
    return due


def run_due(
    settings: Settings,
    *,
    now: datetime,
    clock: Callable[[], datetime],
    kinds: Sequence[windows.PeriodKind] = PERIOD_KINDS,
    force: bool = False,
    only: Window | None = None,
    stop: threading.Event | None = None,
    store: HistoryStore | None = None,
    channels: Mapping[str, Transport] | None = None,
    trigger: str = "due",
    sources: job.Sources | None = None,
    openai_csv: Sequence[str | Path] = (),
) -> DueReport:
    """Run every due period (or just ``only``) once, under its period lock; see the module doc.

    ``now`` decides which periods are due; each run starts at ``clock()``. ``force`` re-runs
    ``only`` even when it is complete (it needs ``only``). ``stop`` is checked before each
    period and inside each run: once set, the call returns with ``interrupted=True`` (a run in
    progress is marked ``interrupted``). A transient failure (OpenAI down) ends the call, since
    the next periods would fail alike; a permanent one (bad input for one day) does not.
    ``ConfigError`` and ``StoreError`` raise. ``sources``, ``channels`` and ``openai_csv`` are
    passed to ``job.run_once``.
    """
    if force and only is None:
        raise ValueError("force re-runs one explicit window: pass only=")
    own_store = store is None
    history = store or HistoryStore(settings.history.database_url.get_secret_value())
    runs: list[RunOutcome] = []
    skipped: list[tuple[str, str]] = []
    abandoned: list[int] = []
    try:
        # Rows of runners on this host that provably died, whatever their period.
        abandoned.extend(history.reap_stale_runs(now=clock()))
        planned = (
            [only] if only is not None else due_windows(settings, history, now=now, kinds=kinds)
        )
        log.info(EV_DUE_PLANNED, periods=[w.key for w in planned], trigger=trigger)
        deps = wiring.deps(
            settings,
            store=history,
            clock=clock,
            stop=stop,
            trigger=trigger,
            openai_csv=openai_csv,
            sources_=sources,
            channels=channels,
        )
        for window in planned:
            if stop is not None and stop.is_set():
                log.warning(EV_DUE_STOPPED, before=window.key)
                return _report(runs, skipped, abandoned, interrupted=True)
            with history.period_lock(window.key) as acquired:
                if not acquired:
                    _skip(skipped, window, SKIP_LOCKED)
                    continue
                # We hold the lock, so no live runner has this period (reliability.md R34).
                abandoned.extend(
                    history.reap_stale_runs(now=clock(), window_key=window.key, lock_held=True)
                )
                if not force and window.kind != "range" and _complete(history, window):
                    _skip(skipped, window, SKIP_COMPLETE)
                    continue
                try:
                    outcome = job.run_once(deps, window, clock())
                except Interrupted as e:
                    log.warning(EV_DUE_STOPPED, during=window.key, run_id=e.run_id)
                    return _report(
                        runs, skipped, abandoned, interrupted=True, interrupted_run=e.run_id
                    )
            runs.append(outcome)
            if outcome.error is not None and not outcome.error.permanent:
                break
        report = _report(runs, skipped, abandoned)
        log.info(
            EV_DUE_FINISHED,
            status=report.status,
            runs=len(runs),
            skipped=len(skipped),
            abandoned=len(abandoned),
        )
        return report
    finally:
        if own_store:
            history.close()


def _complete(history: HistoryStore, window: Window) -> bool:
    return window.key in history.completed_periods((window.kind,), since=window.start)


def _skip(skipped: list[tuple[str, str]], window: Window, reason: str) -> None:
    log.info(EV_DUE_SKIPPED, period=window.key, reason=reason)
    skipped.append((window.key, reason))


def _report(
    runs: list[RunOutcome],
    skipped: list[tuple[str, str]],
    abandoned: list[int],
    *,
    interrupted: bool = False,
    interrupted_run: int | None = None,
) -> DueReport:
    return DueReport(
        runs=tuple(runs),
        skipped=tuple(skipped),
        abandoned=tuple(abandoned),
        interrupted=interrupted,
        interrupted_run=interrupted_run,
    )
