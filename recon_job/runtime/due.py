"""Which periods are due, and running each exactly once, whoever else is trying.

:func:`run_periods` is the heart of every tick of the run loop (``recon-job run``, ``run --due``
and each daemon tick, through :func:`recon_job.runtime.tick.run_tick`). For each period kind of
the :class:`Plan` it works out the settled periods in the look-back that have no completed run
(:func:`due_windows`) and runs them oldest first — catch-up lives here, not in the scheduler
(reliability.md §0 rule 2). Each period is run under its period lock on the history database
(``HistoryStore.period_lock``): a runner that cannot take it skips the period (``locked``, no
row, exit 0; rule 3, R32). Under the lock it marks the rows of dead runners ``abandoned`` and
checks completion again, since another runner may have just finished the period
(``complete``; R33, R34).

A plan with ``only`` runs that one window the same way (``recon-job run --date ...``): a
completed daily or monthly period is not run again unless ``force`` (or OpenAI restated one of
its days since); the report carries the stored result of its last completed run instead
(``from_history``), so that the caller can show the verdict. A range is never a period and
always runs. A run whose window still had pending days never completes its period
(``pending``), so it is run again once they settle.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Final

import structlog

from recon_job import job, windows
from recon_job.config import Settings
from recon_job.delivery import RelayReport
from recon_job.errors import Interrupted
from recon_job.models import RunOutcome, Status, Window
from recon_job.report import diagnosis_from_dict
from recon_job.store import HistoryStore

log = structlog.get_logger(__name__)

EV_DUE_PLANNED: Final = "recon.due.planned"
EV_DUE_SKIPPED: Final = "recon.due.skipped"
EV_DUE_STOPPED: Final = "recon.due.stopped"
EV_DUE_FINISHED: Final = "recon.due.finished"

#: Why a period was not run: another runner holds its lock, or it already has a completed run.
SKIP_LOCKED: Final = "locked"
SKIP_COMPLETE: Final = "complete"

#: The period kinds, in the order a catch-up runs them.
PERIOD_KINDS: tuple[windows.PeriodKind, ...] = ("daily", "monthly")


@dataclass(frozen=True)
class Plan:
    """What one tick runs: the due periods of ``kinds``, or the one window ``only``."""

    #: Period kinds whose due periods are run (ignored with ``only``).
    kinds: tuple[windows.PeriodKind, ...] = PERIOD_KINDS
    #: One explicit window instead of the due periods (``recon-job run --date ...``).
    only: Window | None = None
    #: Re-run ``only`` even when its period is complete (needs ``only``).
    force: bool = False
    #: Recorded with each run: ``due``, ``cli``, ``daemon`` ...
    trigger: str = "due"
    #: Before anything else, relay what the outbox still holds (``run --due``, the daemon).
    relay: bool = False
    #: The ping body of a tick a shutdown cut short.
    stop_reason: str = "interrupted: shutdown requested"

    def __post_init__(self) -> None:
        if self.force and self.only is None:
            raise ValueError("force re-runs one explicit window: pass only=")


@dataclass(frozen=True)
class DueReport:
    """What one tick did: the runs, the periods it skipped and the rows it reaped."""

    #: Every run made, oldest period first (failed runs included).
    runs: tuple[RunOutcome, ...] = ()
    #: ``(period key, reason)``; reason ``locked`` or ``complete``. No run row for either.
    skipped: tuple[tuple[str, str], ...] = ()
    #: Ids of ``running`` rows marked ``abandoned`` (their runner had died).
    abandoned: tuple[int, ...] = ()
    #: True when a stop cut the tick short; the rest stays due for the next one.
    interrupted: bool = False
    #: The run marked ``interrupted`` when the stop came mid-run, if any.
    interrupted_run: int | None = None
    #: A plan's ``only`` window that was complete: its last completed run, from the history.
    from_history: tuple[RunOutcome, ...] = ()
    #: The relay pass over what earlier runs left pending (``Plan.relay``), if one was made.
    relayed: RelayReport | None = None

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

    @property
    def failed(self) -> tuple[RunOutcome, ...]:
        """The runs that failed."""
        return tuple(outcome for outcome in self.runs if outcome.error is not None)


@dataclass
class _Progress:
    """A tick's report while it is being made."""

    runs: list[RunOutcome] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    abandoned: list[int] = field(default_factory=list)
    from_history: list[RunOutcome] = field(default_factory=list)

    def skip(self, window: Window, reason: str) -> None:
        log.info(EV_DUE_SKIPPED, period=window.key, reason=reason)
        self.skipped.append((window.key, reason))

    def report(self, *, interrupted: bool = False, run_id: int | None = None) -> DueReport:
        return DueReport(
            runs=tuple(self.runs),
            skipped=tuple(self.skipped),
            abandoned=tuple(self.abandoned),
            interrupted=interrupted,
            interrupted_run=run_id,
            from_history=tuple(self.from_history),
        )


def due_windows(
    settings: Settings,
    store: HistoryStore,
    *,
    now: datetime,
    kinds: tuple[windows.PeriodKind, ...] = PERIOD_KINDS,
) -> list[Window]:
    """The settled periods of ``kinds`` in the look-back without a completed run, oldest first.

    A period OpenAI restated (a revision of one of its days seen after its last completed run
    finished, ``HistoryStore.restated_periods``) counts as without one.

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
        since = candidates[0].start
        # A period OpenAI restated after its last completed run is due again (issue 12 item 7).
        completed = store.completed_periods((kind,), since=since) - store.restated_periods(
            (kind,), since=since
        )
        due.extend(period for period in candidates if period.key not in completed)
    return due


def run_periods(settings: Settings, deps: job.Deps, plan: Plan, now: datetime) -> DueReport:
    """Run every due period of ``plan`` (or just ``plan.only``) once, under its period lock.

    ``now`` decides which periods are due; each run starts at ``deps.clock()``. ``deps.stop``
    is checked before each period and inside each run: once set, the call returns with
    ``interrupted=True`` (a run in progress is marked ``interrupted``). A transient failure
    (OpenAI down) ends the call, since the next periods would fail alike; a permanent one (bad
    input for one day) does not. ``StoreError`` raises. When runs of the tick found
    restatements, the periods these made due again are run in the same tick, once.
    """
    history = deps.store
    progress = _Progress()
    # Rows of runners on this host that provably died, whatever their period.
    progress.abandoned.extend(history.reap_stale_runs(now=deps.clock()))
    planned = (
        [plan.only]
        if plan.only is not None
        else due_windows(settings, history, now=now, kinds=plan.kinds)
    )
    log.info(EV_DUE_PLANNED, periods=[w.key for w in planned], trigger=plan.trigger)
    seen = {window.key for window in planned}
    halted = False
    while planned and not halted:
        found_restatements = False
        for window in planned:
            if deps.stop is not None and deps.stop.is_set():
                log.warning(EV_DUE_STOPPED, before=window.key)
                return progress.report(interrupted=True)
            try:
                outcome = _run_period(deps, window, plan, progress)
            except Interrupted as e:
                log.warning(EV_DUE_STOPPED, during=window.key, run_id=e.run_id)
                return progress.report(interrupted=True, run_id=e.run_id)
            if outcome is None:
                continue
            progress.runs.append(outcome)
            found_restatements |= outcome.result is not None and bool(
                outcome.result.diagnosis.restatements
            )
            if outcome.error is not None and not outcome.error.permanent:
                halted = True
                break
        if halted or plan.only is not None or not found_restatements:
            break
        # A run found OpenAI revising days of completed periods: evaluate those periods again
        # in this tick rather than the next (issue 12 item 7). Only periods not planned yet in
        # this tick, so it ends; their runs see the revised figures and find nothing new.
        planned = [
            window
            for window in due_windows(settings, history, now=now, kinds=plan.kinds)
            if window.key not in seen
        ]
        seen.update(window.key for window in planned)
        if planned:
            log.info(
                EV_DUE_PLANNED,
                periods=[w.key for w in planned],
                trigger=plan.trigger,
                restated=True,
            )
    if deps.stop is not None and deps.stop.is_set():
        # A stop during the last run's delivery: the run is complete, the tick was cut short.
        last = progress.runs[-1].window.key if progress.runs else None
        log.warning(EV_DUE_STOPPED, after=last)
        return progress.report(interrupted=True)
    report = progress.report()
    log.info(
        EV_DUE_FINISHED,
        status=report.status,
        runs=len(report.runs),
        skipped=len(report.skipped),
        abandoned=len(report.abandoned),
    )
    return report


def _run_period(
    deps: job.Deps, window: Window, plan: Plan, progress: _Progress
) -> RunOutcome | None:
    """Run ``window`` under its period lock; None when it was skipped (locked, complete)."""
    history = deps.store
    with history.period_lock(window.key) as acquired:
        if not acquired:
            progress.skip(window, SKIP_LOCKED)
            return None
        # We hold the lock, so no live runner has this period (reliability.md R34).
        progress.abandoned.extend(
            history.reap_stale_runs(now=deps.clock(), window_key=window.key, lock_held=True)
        )
        last = None if plan.force or window.kind == "range" else _last_completed(history, window)
        if last is not None and window.key in history.restated_periods(
            (window.kind,), since=window.start
        ):
            last = None  # OpenAI restated one of its days since: evaluate it again
        if last is not None:
            progress.skip(window, SKIP_COMPLETE)
            if plan.only is not None:
                progress.from_history.append(last)
            return None
        return job.run_once(deps, window, deps.clock())


def _last_completed(history: HistoryStore, window: Window) -> RunOutcome | None:
    """The last completed run of ``window``'s period with its stored result; None: none."""
    run = history.last_completed_run(window.key)
    result = history.stored_result(run.id) if run is not None else None
    if run is None or result is None:
        return None
    if run.diagnosis:
        result = replace(result, diagnosis=diagnosis_from_dict(run.diagnosis))
    finished = run.finished_at or run.started_at
    return RunOutcome(run.id, run.window, run.started_at, finished, result=result)
