"""What the daemon's jobs report: APScheduler's job events, runs on /healthz and /metrics.

:class:`JobEvents` is the part of :class:`recon_job.daemon.scheduler.Daemon` that observes: the listener
for ``EVENT_JOB_ERROR`` (log, metric, ``/fail`` ping), ``EVENT_JOB_MISSED`` and
``EVENT_JOB_MAX_INSTANCES`` (log, metric; the period is picked up by the next catch-up, R37), the
accounting of finished ticks for the shutdown wait, and the runs recorded on /healthz and
/metrics (including those read from the history at start). A ``daemon*`` module, so it may
import APScheduler.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any, Final

import structlog
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
)

from recon_job.config.settings import Settings
from recon_job.daemon.health import HealthState, Metrics, RunInfo
from recon_job.errors import Interrupted, ReconError
from recon_job.models import RunOutcome
from recon_job.runtime.ping import Pinger, new_rid
from recon_job.store import HistoryStore

log = structlog.get_logger(__name__)

EV_JOB_FAILED: Final = "daemon.job.failed"
EV_JOB_INTERRUPTED: Final = "daemon.job.interrupted"
EV_JOB_MISSED: Final = "daemon.job.missed"
EV_JOB_MAX_INSTANCES: Final = "daemon.job.max_instances"
EV_HISTORY_UNREADABLE: Final = "daemon.history.unreadable"

#: Period kinds, each with its own job (id = kind).
KINDS: Final = ("daily", "monthly")
#: Job id of the relay pass between ticks.
RELAY: Final = "relay"
#: Runs of the history read at start to show the last run of each kind before the first tick.
_SEED_RUNS: Final = 500


class JobEvents:
    """The observing half of :class:`~recon_job.daemon.scheduler.Daemon` (which sets these attributes)."""

    settings: Settings
    metrics: Metrics
    health: HealthState
    _pinger: Pinger
    _rids: dict[str, str]
    _busy: int
    _idle: threading.Condition

    def _interrupted(self, job_id: str, rid: str, run_id: int | None) -> None:
        self.metrics.scheduler_event("job_interrupted")
        log.warning(EV_JOB_INTERRUPTED, job=job_id, run_id=run_id)
        self._pinger.fail(rid, None, "interrupted: the daemon is shutting down")

    def _job_failed(self, job_id: str, error: BaseException) -> None:
        """Log, count and ``/fail``-ping a tick that raised (the scheduler goes on)."""
        if job_id == RELAY:
            # Not a reconciliation: nothing for the dead-man's switch; the rows stay queued.
            self.metrics.scheduler_event("relay_error")
            log.error(EV_JOB_FAILED, job=job_id, reason=type(error).__name__)
            return
        rid = self._rids.pop(job_id, None) or new_rid()
        if isinstance(error, Interrupted):
            self._interrupted(job_id, rid, error.run_id)
            return
        self.metrics.scheduler_event("job_error")
        if isinstance(error, ReconError):
            reason, message = error.reason, str(error)
        else:
            # A bug: its message may quote data; the traceback is logged by APScheduler.
            reason, message = type(error).__name__, "internal error"
        log.error(EV_JOB_FAILED, job=job_id, reason=reason, error=message)
        self._pinger.fail(rid, None, f"{reason}: {message}")

    def _on_job_event(self, event: Any) -> None:
        """APScheduler listener; runs in the executor thread, so it stays cheap."""
        code = event.code
        try:
            if code == EVENT_JOB_ERROR:
                self._job_failed(event.job_id, event.exception)
            elif code == EVENT_JOB_MISSED:
                self.metrics.scheduler_event("job_missed")
                log.warning(
                    EV_JOB_MISSED,
                    job=event.job_id,
                    scheduled=_iso(event.scheduled_run_time),
                    hint="the next tick's catch-up runs the period",
                )
            elif code == EVENT_JOB_MAX_INSTANCES:
                self.metrics.scheduler_event("job_max_instances")
                log.warning(
                    EV_JOB_MAX_INSTANCES,
                    job=event.job_id,
                    scheduled=_iso(event.scheduled_run_time),
                    hint="the previous tick is still running; the next catch-up covers it",
                )
        finally:
            if code in (EVENT_JOB_EXECUTED, EVENT_JOB_ERROR):
                with self._idle:
                    self._busy = max(0, self._busy - 1)
                    self._idle.notify_all()

    # -- observations ----------------------------------------------------------------------

    def _observe_run(self, outcome: RunOutcome) -> None:
        self.metrics.observe_outcome(outcome)
        info = RunInfo(outcome.window.key, str(outcome.status), outcome.finished_at)
        self.health.record(outcome.window.kind, info)

    def _seed_from_history(self) -> None:
        """Show the last runs from before this start on /healthz and /metrics."""
        try:
            with HistoryStore(self.settings.history.database_url.get_secret_value()) as store:
                runs = store.list_runs(_SEED_RUNS)
        except ReconError as e:
            log.warning(EV_HISTORY_UNREADABLE, reason=e.reason, error=str(e))
            return
        for run in reversed(runs):  # oldest first, so the newest ends up "last"
            kind = run.window.kind
            if kind not in KINDS:
                continue
            info = RunInfo(run.window_key, str(run.status), run.finished_at)
            self.health.record(kind, info)
            if info.status in ("reconciled", "mismatch") and run.finished_at is not None:
                self.metrics.last_success.labels(kind=kind).set(run.finished_at.timestamp())


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


__all__ = [
    "EV_HISTORY_UNREADABLE",
    "EV_JOB_FAILED",
    "EV_JOB_INTERRUPTED",
    "EV_JOB_MAX_INSTANCES",
    "EV_JOB_MISSED",
    "KINDS",
    "RELAY",
    "JobEvents",
]
