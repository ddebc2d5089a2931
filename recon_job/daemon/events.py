"""What the daemon's jobs report: ticks, failures, missed and overlapping fire times.

:class:`JobObserver` is the part of the daemon that observes, owned by
:class:`recon_job.daemon.scheduler.Daemon` and given what it writes to (the run loop's metrics,
the /healthz state). The scheduler's listener hands it APScheduler's job events as plain calls:
a failed job (log and metric; the tick already pinged ``/fail``), a missed fire time and a job
still running at its next fire time (log and metric: the period is picked up by the next
catch-up, R37). It also logs each tick's summary and shows the last runs from before this start
on /healthz and /metrics. No APScheduler here: only the scheduler module imports it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import structlog

from recon_job.daemon.health import HealthState, RunInfo
from recon_job.errors import Interrupted, ReconError
from recon_job.runtime import COMPLETE_STATUSES, PERIOD_KINDS, DueReport, Metrics
from recon_job.store import HistoryStore

log = structlog.get_logger(__name__)

EV_TICK_FINISHED: Final = "daemon.tick.finished"
EV_JOB_FAILED: Final = "daemon.job.failed"
EV_JOB_INTERRUPTED: Final = "daemon.job.interrupted"
EV_JOB_MISSED: Final = "daemon.job.missed"
EV_JOB_MAX_INSTANCES: Final = "daemon.job.max_instances"
EV_HISTORY_UNREADABLE: Final = "daemon.history.unreadable"

#: Job id of the relay pass between ticks.
RELAY: Final = "relay"
#: Runs of the history read at start to show the last run of each kind before the first tick.
_SEED_RUNS: Final = 500


class JobObserver:
    """Logs and counts what the daemon's jobs do; see the module docstring. Thread-safe."""

    def __init__(self, metrics: Metrics, health: HealthState) -> None:
        self._metrics = metrics
        self._health = health

    def ticked(self, job_id: str, report: DueReport) -> None:
        """A tick of ``job_id`` returned ``report`` (its runs are on /healthz already)."""
        if report.interrupted:
            self.interrupted(job_id, report.interrupted_run)
            return
        log.info(
            EV_TICK_FINISHED,
            job=job_id,
            status=report.status,
            runs=[f"{o.window.key}={o.status}" for o in report.runs],
            skipped=len(report.skipped),
            abandoned=list(report.abandoned),
        )

    def interrupted(self, job_id: str, run_id: int | None) -> None:
        """A shutdown cut the tick of ``job_id`` short (``run_id``: the run it interrupted)."""
        self._metrics.scheduler_event("job_interrupted")
        log.warning(EV_JOB_INTERRUPTED, job=job_id, run_id=run_id)

    def failed(self, job_id: str, error: BaseException) -> None:
        """A job raised ``error`` (the scheduler goes on; the next tick's catch-up retries)."""
        if job_id == RELAY:
            # Not a reconciliation: nothing for the dead-man's switch; the rows stay queued.
            self._metrics.scheduler_event("relay_error")
            log.error(EV_JOB_FAILED, job=job_id, reason=type(error).__name__)
            return
        if isinstance(error, Interrupted):
            self.interrupted(job_id, error.run_id)
            return
        self._metrics.scheduler_event("job_error")
        if isinstance(error, ReconError):
            reason, message = error.reason, str(error)
        else:
            # A bug: its message may quote data; the traceback is logged by APScheduler.
            reason, message = type(error).__name__, "internal error"
        log.error(EV_JOB_FAILED, job=job_id, reason=reason, error=message)

    def missed(self, job_id: str, scheduled: datetime | None) -> None:
        """A fire time of ``job_id`` was found later than the misfire grace time."""
        self._metrics.scheduler_event("job_missed")
        log.warning(
            EV_JOB_MISSED,
            job=job_id,
            scheduled=_iso(scheduled),
            hint="the next tick's catch-up runs the period",
        )

    def overlapped(self, job_id: str, scheduled: datetime | None) -> None:
        """``job_id`` was still running at its next fire time, which was skipped."""
        self._metrics.scheduler_event("job_max_instances")
        log.warning(
            EV_JOB_MAX_INSTANCES,
            job=job_id,
            scheduled=_iso(scheduled),
            hint="the previous tick is still running; the next catch-up covers it",
        )

    def seed(self, database_url: str) -> None:
        """Show the last runs from before this start on /healthz and /metrics."""
        try:
            with HistoryStore(database_url) as store:
                runs = store.list_runs(_SEED_RUNS)
        except ReconError as e:
            log.warning(EV_HISTORY_UNREADABLE, reason=e.reason, error=str(e))
            return
        for run in reversed(runs):  # oldest first, so the newest ends up "last"
            kind = run.window.kind
            if kind not in PERIOD_KINDS:
                continue
            info = RunInfo(run.window_key, str(run.status), run.finished_at)
            self._health.record(kind, info)
            if info.status in COMPLETE_STATUSES and run.finished_at is not None:
                self._metrics.last_success.labels(kind=kind).set(run.finished_at.timestamp())


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


__all__ = [
    "EV_HISTORY_UNREADABLE",
    "EV_JOB_FAILED",
    "EV_JOB_INTERRUPTED",
    "EV_JOB_MAX_INSTANCES",
    "EV_JOB_MISSED",
    "EV_TICK_FINISHED",
    "RELAY",
    "JobObserver",
]
