"""``recon-job daemon``: APScheduler in the foreground, catch-up at start, clean SIGTERM.

With :mod:`recon_job.daemon.events` (the job-event listener and what runs report to /healthz
and /metrics), the only module that imports APScheduler (pinned ``>=3.11.2,<4``: 4.x is a
pre-release, reliability.md §3.2). The configuration is reliability.md §3.3:

* a ``BlockingScheduler`` in UTC (cron in a zone with DST fires twice or never on the switch
  nights), a ``MemoryJobStore`` and two cron jobs with explicit ids (``daily``, ``monthly``),
  ``coalesce=True``, ``max_instances=1`` and a generous ``misfire_grace_time`` — APScheduler's
  default of 1 s silently skips a fire time found 2 s late;
* no persistent job store: ``replace_existing=True`` on restart throws the stored overdue run
  away anyway (APScheduler #696). Missed fire times are healed by the application instead: each
  tick calls :func:`recon_job.runtime.due.run_due`, which runs every settled period in the look-back
  without a completed run, and the same catch-up runs once at start, before the scheduler
  starts (R36);
* every tick also runs a relay pass, so notifications an earlier run left pending go out even
  when no period is due;
* listeners for ``EVENT_JOB_ERROR`` (log, metric, ``/fail`` ping), ``EVENT_JOB_MISSED`` and
  ``EVENT_JOB_MAX_INSTANCES`` (log, metric; the period is picked up by the next catch-up, R37);
* SIGTERM/SIGINT handlers, since APScheduler installs none and its ``shutdown`` "does not
  interrupt any currently running jobs": the handler sets a stop event that the running
  ``run_due`` checks at its checkpoints (the run row becomes ``interrupted``, the lock is
  released), the scheduler is shut down without waiting, and the main thread waits for the
  running tick — all within ``daemon.shutdown_budget_seconds``; past it the process exits at
  once, as SIGKILL would a little later, and the next start reaps the row. Exit 143 for
  SIGTERM (128 + 15, what Kubernetes expects), 130 for SIGINT (R38).

A job failure never stops the daemon: APScheduler catches it, the listener reports it, and the
next tick (with its catch-up) tries again.

Test-only: ``RECON_TEST_TICK_SECONDS=N`` replaces both cron triggers by an N-second interval, so
the end-to-end tests see ticks without waiting for a cron minute. Never set it in production.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Final

import structlog
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.base import STATE_STOPPED
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from recon_job import wiring
from recon_job.config.settings import Settings
from recon_job.daemon.events import EV_HISTORY_UNREADABLE as EV_HISTORY_UNREADABLE
from recon_job.daemon.events import EV_JOB_FAILED as EV_JOB_FAILED
from recon_job.daemon.events import EV_JOB_INTERRUPTED as EV_JOB_INTERRUPTED
from recon_job.daemon.events import EV_JOB_MAX_INSTANCES as EV_JOB_MAX_INSTANCES
from recon_job.daemon.events import EV_JOB_MISSED as EV_JOB_MISSED
from recon_job.daemon.events import KINDS as KINDS
from recon_job.daemon.events import RELAY as RELAY
from recon_job.daemon.events import JobEvents
from recon_job.daemon.health import HealthServer, HealthState, Metrics
from recon_job.delivery import deliver
from recon_job.logconfig import REDACTOR
from recon_job.notify.base import Transport
from recon_job.runtime import due
from recon_job.runtime.ping import Pinger, new_rid
from recon_job.store import HistoryStore

log = structlog.get_logger(__name__)

EV_STARTED: Final = "daemon.started"
EV_CATCH_UP: Final = "daemon.catch_up.started"
EV_TICK_FINISHED: Final = "daemon.tick.finished"
EV_STOPPING: Final = "daemon.stopping"
EV_STOPPED: Final = "daemon.stopped"
EV_BUDGET_EXCEEDED: Final = "daemon.shutdown.budget_exceeded"

#: Test-only: seconds between ticks instead of the cron schedules (see the module docstring).
TICK_ENV: Final = "RECON_TEST_TICK_SECONDS"
#: The pseudo job id of the catch-up run at start.
CATCH_UP: Final = "catch-up"
#: Recorded as the runs' trigger in the history.
TRIGGER: Final = "daemon"

RunDue = Callable[..., due.DueReport]


def utcnow() -> datetime:
    """The daemon's clock (with the CLI's, the only place recon-job reads it)."""
    return datetime.now(UTC)


class Daemon(JobEvents):
    """The scheduler, its jobs, the health server and the shutdown logic. See the module doc.

    ``run_due`` defaults to :func:`recon_job.runtime.due.run_due` (tests inject a fake); ``channels``
    to the configured notification channels; ``pinger`` to one for ``daemon.ping_url``.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        run_due: RunDue | None = None,
        clock: Callable[[], datetime] = utcnow,
        channels: Mapping[str, Transport] | None = None,
        pinger: Pinger | None = None,
    ) -> None:
        self.settings = settings
        d = settings.daemon
        self._run_due: RunDue = run_due or due.run_due
        self._clock = clock
        self._channels = channels
        if pinger is None:
            url = d.ping_url.get_secret_value() if d.ping_url is not None else None
            pinger = Pinger(url, redact=REDACTOR.scrub)
        self._pinger = pinger
        self._stop = threading.Event()
        self._done = threading.Event()
        self._past_scheduler = threading.Event()
        self._exit_code = 0
        self._rids: dict[str, str] = {}
        self._busy = 0
        self._idle = threading.Condition()
        #: Prometheus metrics served on /metrics.
        self.metrics = Metrics()
        #: What /healthz reports.
        self.health = HealthState(
            clock=clock,
            settle=timedelta(hours=settings.reconcile.settle_hours),
            overdue_after=timedelta(hours=d.overdue_hours),
            next_runs=self._next_runs,
        )
        #: The APScheduler scheduler (not started until :meth:`run`).
        self.scheduler = self._build_scheduler()
        #: The /healthz and /metrics server, once :meth:`run` started it.
        self.server: HealthServer | None = None

    # -- set-up --------------------------------------------------------------------------

    def _build_scheduler(self) -> BlockingScheduler:
        d = self.settings.daemon
        scheduler = BlockingScheduler(
            timezone=UTC,
            jobstores={"default": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(max_workers=len(KINDS) + 1)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": d.misfire_grace_seconds,
            },
        )
        for kind, expression in (("daily", d.daily_cron), ("monthly", d.monthly_cron)):
            scheduler.add_job(
                self._scheduled,
                trigger=_trigger(expression),
                args=[kind],
                id=kind,
                name=f"recon-job {kind}",
                replace_existing=True,
            )
        if d.relay_interval_seconds:
            scheduler.add_job(
                self._relay,
                trigger=IntervalTrigger(seconds=d.relay_interval_seconds, timezone=UTC),
                id=RELAY,
                name="recon-job relay",
                replace_existing=True,
            )
        scheduler.add_listener(
            self._on_job_event,
            EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES,
        )
        return scheduler

    def _next_runs(self) -> dict[str, datetime | None]:
        # A job has no next_run_time until the scheduler has started (a "pending" job).
        return {job.id: getattr(job, "next_run_time", None) for job in self.scheduler.get_jobs()}

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop the daemon cleanly (call from the main thread)."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    # -- running ---------------------------------------------------------------------------

    def run(self) -> int:
        """Catch up, then schedule until stopped; the exit code (143 after SIGTERM).

        Raises ``ConfigError`` before anything runs when the channels are misconfigured or the
        health port cannot be bound.
        """
        if self._channels is None:
            enabled = self.settings.alerts.enabled
            self._channels = wiring.transports(self.settings) if enabled else {}
        self._seed_from_history()
        host, port = self.settings.daemon.listen_address
        self.server = HealthServer(host, port, self.health, self.metrics).start()
        try:
            log.info(
                EV_STARTED,
                daily_cron=self.settings.daemon.daily_cron,
                monthly_cron=self.settings.daemon.monthly_cron,
                test_tick_seconds=os.environ.get(TICK_ENV),
                port=self.server.port,
                pings=self._pinger.enabled,
            )
            if not self._stop.is_set():
                log.info(EV_CATCH_UP, kinds=list(KINDS))
                # In the main thread, before the scheduler starts: APScheduler alone would
                # never run the fire times missed while the daemon was down (R36).
                try:
                    self._tick(KINDS, CATCH_UP)
                except Exception as e:  # never exit on a job failure
                    self._job_failed(CATCH_UP, e)
            if not self._stop.is_set():
                self.health.set_scheduler("running")
                self.scheduler.start()  # blocks until the shutdown thread stops it
            self._past_scheduler.set()
            self.health.set_scheduler("stopping")
            self._wait_idle()
        finally:
            self.health.set_scheduler("stopped")
            self.server.stop()
            self._pinger.close()
            self._done.set()
        log.info(EV_STOPPED, exit_code=self._exit_code)
        return self._exit_code

    def request_stop(self, signum: int | None = None) -> None:
        """Stop: the running tick stops at its next checkpoint, then :meth:`run` returns.

        Safe in a signal handler: it only sets events and starts the shutdown thread (logging
        here could deadlock on a stream lock the interrupted main thread holds).
        """
        if self._stop.is_set():
            if signum is not None:
                # A second signal: the operator wants out now; the next start reaps the row.
                os._exit(128 + signum)
            return
        self._exit_code = 128 + signum if signum is not None else 0
        self._stop.set()
        threading.Thread(
            target=self._shutdown, args=(signum,), name="recon-shutdown", daemon=True
        ).start()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.request_stop(signum)

    def _shutdown(self, signum: int | None) -> None:
        budget = self.settings.daemon.shutdown_budget_seconds
        deadline = time.monotonic() + budget
        self.health.set_scheduler("stopping")
        log.warning(
            EV_STOPPING,
            signal=signal.Signals(signum).name if signum is not None else None,
            budget_s=budget,
            busy=self._busy,
        )
        # The scheduler may not be running yet (catch-up in progress) or be starting right now.
        while not self._past_scheduler.is_set() and time.monotonic() < deadline:
            if self.scheduler.state != STATE_STOPPED:
                try:
                    self.scheduler.shutdown(wait=False)
                    break
                except SchedulerNotRunningError:
                    pass
            # run() checks the stop event before starting the scheduler: once it is past that
            # point without starting it, there is nothing to shut down.
            if self._past_scheduler.wait(0.05):
                break
        if not self._done.wait(max(0.0, deadline - time.monotonic())):
            log.error(EV_BUDGET_EXCEEDED, budget_s=budget, busy=self._busy)
            sys.stderr.flush()
            # Past the budget the orchestrator's SIGKILL is close: exit now, on our terms.
            os._exit(self._exit_code or 1)

    def _wait_idle(self) -> None:
        with self._idle:
            while self._busy:
                self._idle.wait(0.5)

    # -- ticks -----------------------------------------------------------------------------

    def _scheduled(self, kind: str) -> None:
        """The body of a cron job; its end is accounted for by the job-event listener."""
        with self._idle:
            self._busy += 1
        self._tick((kind,), kind)

    def _relay(self) -> None:
        """Send notifications due since the last pass (retries, deferred Slack 429s)."""
        with self._idle:
            self._busy += 1  # its end is accounted for by the job-event listener, like a tick's
        channels = self._channels  # built in run(), after the scheduler
        if self._stop.is_set() or not channels:
            return
        with HistoryStore(self.settings.history.database_url.get_secret_value()) as store:
            if not store.pending_count():
                return
            relayed = deliver(
                wiring.alerting(self.settings, channels=channels),
                store,
                now=self._clock(),
                clock=self._clock,
            )
        self.metrics.observe_relay(relayed)

    def _tick(self, kinds: tuple[str, ...], job_id: str) -> None:
        """Run every due period of ``kinds``, then a relay pass; ping and record it all."""
        now = self._clock()
        self.health.tick(now)
        self.metrics.tick(now)
        if self._stop.is_set():
            return
        rid = new_rid()
        self._rids[job_id] = rid
        self._pinger.start(rid)
        with HistoryStore(self.settings.history.database_url.get_secret_value()) as store:
            report = self._run_due(
                self.settings,
                now=now,
                clock=self._clock,
                kinds=kinds,
                stop=self._stop,
                store=store,
                channels=self._channels,
                trigger=TRIGGER,
            )
            for outcome in report.runs:
                self._observe_run(outcome)
            if report.interrupted:
                self._rids.pop(job_id, None)
                self._interrupted(job_id, rid, report.interrupted_run)
                return
            # Not after a stop request: a slow SMTP server must not eat the shutdown budget;
            # the rows stay in the outbox for the next start.
            if self._channels and not self._stop.is_set():
                relayed = deliver(
                    wiring.alerting(self.settings, channels=self._channels),
                    store,
                    now=self._clock(),
                    clock=self._clock,
                )
                self.metrics.observe_relay(relayed)
        self._rids.pop(job_id, None)
        failed = [o for o in report.runs if o.error is not None]
        if failed:
            reasons = ", ".join(f"{o.window.key}: {o.error.reason}" for o in failed if o.error)
            self._pinger.fail(rid, None, f"{len(failed)} run(s) failed: {reasons}")
        else:
            # After the results, the outbox rows and the relay pass are committed (§6).
            self._pinger.success(rid)
        log.info(
            EV_TICK_FINISHED,
            job=job_id,
            status=report.status,
            runs=[f"{o.window.key}={o.status}" for o in report.runs],
            skipped=len(report.skipped),
            abandoned=list(report.abandoned),
        )


def _trigger(expression: str) -> CronTrigger | IntervalTrigger:
    seconds = os.environ.get(TICK_ENV)
    if seconds:
        return IntervalTrigger(seconds=float(seconds), timezone=UTC)
    return CronTrigger.from_crontab(expression, timezone=UTC)


def serve(settings: Settings) -> int:
    """Run the daemon in this (main) thread until SIGTERM/SIGINT; the exit code."""
    daemon = Daemon(settings)
    daemon.install_signal_handlers()
    return daemon.run()
