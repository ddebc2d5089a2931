"""``recon-job daemon``: APScheduler in the foreground around the run loop, catch-up at start.

The only module that imports APScheduler (pinned ``>=3.11.2,<4``: 4.x is a pre-release,
reliability.md §3.2). Every tick is :func:`recon_job.runtime.run_tick` — the same run loop as
``recon-job run --due``, with its catch-up, period locks, relay pass, pings and metrics — so
what is left here is the scheduling (reliability.md §3.3):

* a ``BlockingScheduler`` in UTC (cron in a zone with DST fires twice or never on the switch
  nights), a ``MemoryJobStore`` and two cron jobs with explicit ids (``daily``, ``monthly``),
  ``coalesce=True``, ``max_instances=1`` and a generous ``misfire_grace_time`` — APScheduler's
  default of 1 s silently skips a fire time found 2 s late;
* no persistent job store: ``replace_existing=True`` on restart throws the stored overdue run
  away anyway (APScheduler #696). Missed fire times are healed by the run loop's catch-up
  instead, which also runs once at start, before the scheduler starts (R36);
* a relay job between ticks (``daemon.relay_interval_seconds``), so notifications an earlier run
  left pending go out even when no period is due;
* a listener for ``EVENT_JOB_ERROR``, ``EVENT_JOB_MISSED`` and ``EVENT_JOB_MAX_INSTANCES``
  (:class:`~recon_job.daemon.events.JobObserver`; the period is picked up by the next catch-up,
  R37);
* SIGTERM/SIGINT through :class:`recon_job.runtime.Shutdown` (APScheduler installs no handler,
  and its ``shutdown`` "does not interrupt any currently running jobs"): the running tick stops
  at its next checkpoint, the scheduler is shut down without waiting, and the main thread waits
  for the running ticks, all within ``daemon.shutdown_budget_seconds``; exit 143 after SIGTERM,
  130 after SIGINT (R38).

A job failure never stops the daemon: APScheduler catches it, the listener reports it, and the
next tick (with its catch-up) tries again.

Test-only: ``RECON_TEST_TICK_SECONDS=N`` replaces both cron triggers by an N-second interval, so
the end-to-end tests see ticks without waiting for a cron minute. Never set it in production.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

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
from recon_job.config import Settings
from recon_job.daemon.events import RELAY, JobObserver
from recon_job.daemon.health import HealthState
from recon_job.daemon.server import HealthServer
from recon_job.runtime import (
    PERIOD_KINDS,
    Monitor,
    Plan,
    Runtime,
    Shutdown,
    pinger_for,
    relay_pending,
    run_tick,
)
from recon_job.web import wiring as web_wiring
from recon_job.windows import PeriodKind

log = structlog.get_logger(__name__)

EV_STARTED: Final = "daemon.started"
EV_CATCH_UP: Final = "daemon.catch_up.started"
EV_STOPPING: Final = "daemon.stopping"
EV_STOPPED: Final = "daemon.stopped"

#: Test-only: seconds between ticks instead of the cron schedules (see the module docstring).
TICK_ENV: Final = "RECON_TEST_TICK_SECONDS"
#: The pseudo job id of the catch-up run at start.
CATCH_UP: Final = "catch-up"
#: Recorded as the runs' trigger in the history.
TRIGGER: Final = "daemon"
#: The ping body of a tick a shutdown cut short.
STOP_REASON: Final = "interrupted: the daemon is shutting down"


def utcnow() -> datetime:
    """The daemon's clock (with the CLI's, the only place recon-job reads it)."""
    return datetime.now(UTC)


class InFlight:
    """How many jobs are running, so that the shutdown can wait for them."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = threading.Condition()

    @property
    def count(self) -> int:
        """Jobs running now."""
        return self._count

    def enter(self) -> None:
        """A job started."""
        with self._idle:
            self._count += 1

    def leave(self) -> None:
        """A job ended."""
        with self._idle:
            self._count = max(0, self._count - 1)
            self._idle.notify_all()

    def wait_idle(self) -> None:
        """Until no job runs."""
        with self._idle:
            while self._count:
                self._idle.wait(0.5)


class Daemon:
    """The scheduler and its jobs around the run loop, the health server, the shutdown.

    ``runtime`` is what every tick runs with (:class:`recon_job.runtime.Runtime`; its
    ``channels``, when None, are built from the settings by :meth:`run`). The daemon adds what
    is its own: the /healthz state hears of every run, and its stop event belongs to
    :attr:`shutdown`.
    """

    def __init__(self, runtime: Runtime, *, listen: str | None = None) -> None:
        settings = runtime.settings
        self._listen = listen
        d = settings.daemon
        #: The SIGTERM budget and the stop event every tick checks.
        self.shutdown = Shutdown(d.shutdown_budget_seconds, runtime.stop)
        #: Prometheus metrics served on /metrics.
        self.metrics = runtime.monitor.metrics
        #: What /livez, /readyz and /healthz report.
        self.health = HealthState(
            clock=runtime.clock,
            settle=timedelta(hours=settings.reconcile.settle_hours),
            overdue_after=timedelta(hours=d.overdue_hours),
            next_runs=self._next_runs,
        )
        observers = (*runtime.monitor.observers, self.health)
        self._rt = replace(runtime, monitor=replace(runtime.monitor, observers=observers))
        self._observer = JobObserver(self.metrics, self.health)
        self._in_flight = InFlight()
        self._past_scheduler = threading.Event()
        #: The APScheduler scheduler (not started until :meth:`run`).
        self.scheduler = self._build_scheduler()
        #: The server of the probes and /metrics, once :meth:`run` started it.
        self.server: HealthServer | None = None
        self.shutdown.on_stop(self._stop_scheduler)

    # -- set-up --------------------------------------------------------------------------

    def _build_scheduler(self) -> BlockingScheduler:
        d = self._rt.settings.daemon
        scheduler = BlockingScheduler(
            timezone=UTC,
            jobstores={"default": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(max_workers=len(PERIOD_KINDS) + 1)},
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

    def _start(self) -> HealthServer:
        """Channels, the last runs from the history, the health server; ConfigError first."""
        settings = self._rt.settings
        if self._rt.channels is None:
            channels = wiring.transports(settings) if settings.alerts.enabled else {}
            self._rt = replace(self._rt, channels=channels)
        self._observer.seed(settings.history.database_url.get_secret_value())
        host, port = web_wiring.listen_address(settings, self._listen)
        ctx = web_wiring.context(
            settings, probes=self.health, metrics=self.metrics, clock=self._rt.clock
        )
        self.server = server = HealthServer(host, port, self.health, self.metrics, ctx)
        server.start()
        d = settings.daemon
        log.info(
            EV_STARTED,
            daily_cron=d.daily_cron,
            monthly_cron=d.monthly_cron,
            test_tick_seconds=os.environ.get(TICK_ENV),
            port=server.port,
            pings=self._rt.monitor.pinger.enabled,
        )
        return server

    # -- running ---------------------------------------------------------------------------

    def run(self) -> int:
        """Catch up, then schedule until stopped; the exit code (143 after SIGTERM).

        Raises ``ConfigError`` before anything runs when the channels are misconfigured or the
        health port cannot be bound.
        """
        server = self._start()
        try:
            self._catch_up()
            if not self.shutdown.stop.is_set():
                self.health.set_scheduler("running")
                self.scheduler.start()  # blocks until the shutdown stops it
            self._past_scheduler.set()
            self.health.set_scheduler("stopping")
            self._in_flight.wait_idle()
        finally:
            self.health.set_scheduler("stopped")
            server.stop()
            self._rt.monitor.pinger.close()
            self.shutdown.finished()
        log.info(EV_STOPPED, exit_code=self.shutdown.exit_code)
        return self.shutdown.exit_code

    def request_stop(self, signum: int | None = None) -> None:
        """Stop: the running tick stops at its next checkpoint, then :meth:`run` returns.

        Safe in a signal handler (see :meth:`recon_job.runtime.Shutdown.request`).
        """
        self.shutdown.request(signum)

    def _catch_up(self) -> None:
        """Every due period, in the main thread, before the scheduler starts (R36)."""
        if self.shutdown.stop.is_set():
            return
        log.info(EV_CATCH_UP, kinds=list(PERIOD_KINDS))
        # APScheduler alone would never run the fire times missed while the daemon was down.
        try:
            with self.shutdown.interruptible():
                self._tick(PERIOD_KINDS, CATCH_UP)
        except Exception as e:  # never exit on a job failure
            self._observer.failed(CATCH_UP, e)

    def _stop_scheduler(self, deadline: float) -> None:
        """In the shutdown's watchdog: shut the scheduler down, running or about to."""
        self.health.set_scheduler("stopping")
        log.warning(EV_STOPPING, busy=self._in_flight.count)
        # The scheduler may not be running yet (catch-up in progress) or be starting right now.
        while not self._past_scheduler.is_set() and time.monotonic() < deadline:
            if self.scheduler.state != STATE_STOPPED:
                try:
                    self.scheduler.shutdown(wait=False)
                    return
                except SchedulerNotRunningError:
                    pass
            # run() checks the stop event before starting the scheduler: once it is past that
            # point without starting it, there is nothing to shut down.
            if self._past_scheduler.wait(0.05):
                return

    # -- jobs ------------------------------------------------------------------------------

    def _on_job_event(self, event: Any) -> None:
        """APScheduler listener; runs in the executor thread, so it stays cheap."""
        code = event.code
        try:
            if code == EVENT_JOB_ERROR:
                self._observer.failed(event.job_id, event.exception)
            elif code == EVENT_JOB_MISSED:
                self._observer.missed(event.job_id, _scheduled_at(event))
            elif code == EVENT_JOB_MAX_INSTANCES:
                self._observer.overlapped(event.job_id, _scheduled_at(event))
        finally:
            # A job's end is counted after its listener ran, so that the shutdown waits for both.
            if code in (EVENT_JOB_EXECUTED, EVENT_JOB_ERROR):
                self._in_flight.leave()

    def _scheduled(self, kind: PeriodKind) -> None:
        """The body of a cron job."""
        self._in_flight.enter()
        self._tick((kind,), kind)

    def _relay(self) -> None:
        """Send notifications due since the last pass (retries, deferred Slack 429s)."""
        self._in_flight.enter()
        relay_pending(self._rt)

    def _tick(self, kinds: tuple[PeriodKind, ...], job_id: str) -> None:
        """One tick of the run loop for ``kinds``, then its report to the observer."""
        if self.shutdown.stop.is_set():
            return
        now = self._rt.clock()
        self.health.tick(now)
        plan = Plan(kinds=kinds, trigger=TRIGGER, relay=True, stop_reason=STOP_REASON)
        self._observer.ticked(job_id, run_tick(self._rt, plan, now))


def _scheduled_at(event: Any) -> datetime | None:
    """The fire time of a job event: a missed run's, or the latest of a skipped submission's."""
    # EVENT_JOB_MISSED is a JobExecutionEvent (scheduled_run_time); EVENT_JOB_MAX_INSTANCES a
    # JobSubmissionEvent (scheduled_run_times, a list).
    at = getattr(event, "scheduled_run_time", None)
    if at is None:
        at = max(getattr(event, "scheduled_run_times", None) or (), default=None)
    return at if isinstance(at, datetime) else None


def _trigger(expression: str) -> CronTrigger | IntervalTrigger:
    seconds = os.environ.get(TICK_ENV)
    if seconds:
        return IntervalTrigger(seconds=float(seconds), timezone=UTC)
    return CronTrigger.from_crontab(expression, timezone=UTC)


def serve(settings: Settings, *, listen: str | None = None) -> int:
    """Run the daemon in this (main) thread until SIGTERM/SIGINT; the exit code.

    ``listen`` (``--listen``) overrides ``[web] listen``.
    """
    monitor = Monitor(pinger=pinger_for(settings))
    daemon = Daemon(Runtime(settings, clock=utcnow, monitor=monitor), listen=listen)
    with daemon.shutdown.handle(signal.SIGTERM, signal.SIGINT):
        return daemon.run()
