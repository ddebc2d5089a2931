"""The one run loop: a tick, as ``recon-job run``, ``run --due`` and every daemon tick run it.

:func:`run_tick` is the whole of it, whoever calls it:

1. with ``plan.relay`` (``run --due``, the daemon), first a relay pass over what the outbox
   still holds — notifications a crash or a failing channel left pending go out whatever is due,
   even when the rest of the tick fails (not after a stop request, so that a slow SMTP server
   does not eat the shutdown budget);
2. the dependencies of the runs (``wiring.deps``) — a configuration error raises here, before
   anything is recorded or skipped;
3. the due periods of the :class:`~recon_job.runtime.due.Plan` (catch-up, period lock, run:
   :func:`recon_job.runtime.due.run_periods`); each run delivers its own notifications;
4. the dead-man's-switch pings around it all (:func:`recon_job.runtime.ping.with_pings`): the
   success ping only after the results, the outbox rows and the relay pass are committed (§6);
5. the metrics of the runs and deliveries; in run-once mode the last run of each kind is pushed
   to a Pushgateway (:func:`recon_job.runtime.ping.push_last_runs`);
6. a scheduled tick (``run --due``, the daemon) stopped by a configuration or store error,
   before it could record a run, sounds the :class:`~recon_job.runtime.alarm.TickAlarm`: a
   ``failed`` notification, once per reason per UTC day.

:class:`Runtime` holds what every tick of one process shares (settings, clock, stop event,
channels, :class:`Monitor`); only ``cli`` and ``daemon`` build one, and only they read the
clock. :func:`relay_pending` is the relay pass alone (the daemon's between-ticks job).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Final, Protocol

import structlog

from recon_job import job, windows, wiring
from recon_job.config import Settings
from recon_job.delivery import Alerting, RelayReport, deliver
from recon_job.errors import ConfigError, Interrupted, ReconError, StoreError
from recon_job.logconfig import REDACTOR
from recon_job.models import RunOutcome
from recon_job.notify.base import Transport
from recon_job.runtime.alarm import ALARMING, TickAlarm, TickFailure
from recon_job.runtime.due import DueReport, Plan, run_periods
from recon_job.runtime.metrics import Metrics
from recon_job.runtime.ping import Pinger, Verdict, push_last_runs, with_pings
from recon_job.store import HistoryStore

log = structlog.get_logger(__name__)

EV_ALARM_FAILED: Final = "recon.alarm.failed"

#: Runs the periods of a plan (:func:`~recon_job.runtime.due.run_periods`; tests inject fakes).
PeriodRunner = Callable[[Settings, job.Deps, Plan, datetime], DueReport]


class ExitCodes(Protocol):
    """Run-once mode's exit codes (the CLI's), which its pings carry as ``/<code>``."""

    def of_report(self, report: DueReport) -> int:
        """The exit code after ``report`` (0: success)."""
        ...

    def of_error(self, error: ReconError) -> int:
        """The exit code after ``error`` escaped the tick."""
        ...


class RunObserver(Protocol):
    """Hears of every run a tick made (the daemon's /healthz state)."""

    def observe_outcome(self, outcome: RunOutcome) -> None:
        """A run ended with ``outcome``."""
        ...


@dataclass(frozen=True)
class Monitor:
    """What the outside hears of each tick: pings and metrics."""

    #: Dead-man's-switch pings (default: none).
    pinger: Pinger = field(default_factory=lambda: Pinger(None))
    #: The runs', deliveries' and ticks' metrics.
    metrics: Metrics = field(default_factory=Metrics)
    #: Others to tell of every run, after the metrics.
    observers: tuple[RunObserver, ...] = ()
    #: Run-once mode: ping ``/<exit code>``; None (the daemon, whose ticks have none): ``/fail``.
    exit_codes: ExitCodes | None = None
    #: Run-once mode: the Pushgateway the metrics are pushed to after each tick.
    pushgateway: str | None = None


@dataclass(frozen=True)
class Runtime:
    """What every tick of one process runs with; see the module docstring."""

    settings: Settings
    #: Stamps the start and end of each run; with ``cli``'s and ``daemon``'s, no other clock.
    clock: Callable[[], datetime]
    #: Checked at the checkpoints of every tick; set on SIGTERM (``runtime.shutdown``).
    stop: threading.Event = field(default_factory=threading.Event)
    #: Notification channels; None: the configured ones; ``{}`` sends nothing (``--no-alerts``).
    channels: Mapping[str, Transport] | None = None
    #: Replace the configured sources (tests, embedding).
    sources: job.Sources | None = None
    #: OpenAI's figures from dashboard exports instead of the APIs (``--openai-from-csv``).
    openai_csv: tuple[str | Path, ...] = ()
    #: Read every log file instead of taking what the cache holds (``--no-cache``).
    no_cache: bool = False
    #: The history database; None: opened from the settings for each tick, closed after it.
    store: HistoryStore | None = None
    #: Pings and metrics (default: no pings; metrics kept, never pushed).
    monitor: Monitor = field(default_factory=Monitor)
    #: How the periods are run.
    periods: PeriodRunner = run_periods
    #: Tells the channels of a tick stopped before it recorded a run; shared by every tick of
    #: the process, so that it remembers what it already said.
    alarm: TickAlarm = field(default_factory=TickAlarm)


def pinger_for(settings: Settings) -> Pinger:
    """The pinger of ``daemon.ping_url`` (none when unset), redacting what it sends."""
    url = settings.daemon.ping_url
    return Pinger(url.get_secret_value() if url is not None else None, redact=REDACTOR.scrub)


def run_tick(rt: Runtime, plan: Plan, now: datetime | None = None) -> DueReport:
    """One tick of the run loop (see the module docstring); its report.

    ``now`` (default ``rt.clock()``) decides which periods are due. A tick asked for after a
    stop request runs nothing and pings nothing: its report is ``interrupted``. Errors (a
    ``ConfigError``, a ``StoreError``) are pinged, sound the alarm (a scheduled tick: no
    ``plan.only``), then are raised.
    """
    now = now or rt.clock()
    if rt.stop.is_set():
        return DueReport(interrupted=True)
    monitor = rt.monitor
    monitor.metrics.tick(now)
    codes = monitor.exit_codes
    try:
        report = with_pings(
            monitor.pinger,
            lambda: _tick(rt, plan, now),
            verdict=lambda r: _verdict(r, plan, codes),
            error_code=codes.of_error if codes is not None else _no_code,
        )
    except ALARMING as e:
        if plan.only is None:  # a scheduled tick; who runs one window by hand reads the error
            _sound(rt, e, now)
        raise
    # Not after a stop request: the push could eat the shutdown budget; the next run pushes.
    if monitor.pushgateway and not rt.stop.is_set():
        push_last_runs(monitor.pushgateway, report.runs)
    return report


def relay_pending(rt: Runtime) -> RelayReport | None:
    """Send what the outbox holds that is due (retries, deferred Slack 429s); None: nothing.

    Nothing after a stop request, without channels, or when no row is pending.
    """
    if rt.stop.is_set():
        return None
    alerting = wiring.alerting(rt.settings, channels=rt.channels)
    if not alerting.channels:
        return None
    with _history(rt) as store:
        return _relay_pending(alerting, store, rt)


def _tick(rt: Runtime, plan: Plan, now: datetime) -> DueReport:
    with _history(rt) as store:
        relayed = _relay_pending(_alerting(rt), store, rt) if plan.relay else None
        deps = wiring.deps(
            rt.settings,
            store,
            job.RunControl(rt.clock, rt.stop, plan.trigger),
            wiring.Overrides(
                sources=rt.sources,
                channels=rt.channels,
                openai_csv=rt.openai_csv,
                no_cache=rt.no_cache,
            ),
        )
        report = rt.periods(rt.settings, deps, plan, now)
        for outcome in report.runs:
            for observer in (rt.monitor.metrics, *rt.monitor.observers):
                observer.observe_outcome(outcome)
    return report if relayed is None else replace(report, relayed=relayed)


def _alerting(rt: Runtime) -> Alerting | None:
    """The channels and their rules; None when the channels' settings are broken (the run's
    configuration check then lists that with every other problem)."""
    try:
        return wiring.alerting(rt.settings, channels=rt.channels)
    except ConfigError:
        return None


def _relay_pending(
    alerting: Alerting | None, store: HistoryStore, rt: Runtime
) -> RelayReport | None:
    """A relay pass when there are channels and anything is pending; None: no pass."""
    # Not after a stop request: a slow SMTP server must not eat the shutdown budget; the rows
    # stay in the outbox for the next start.
    if alerting is None or not alerting.channels or rt.stop.is_set():
        return None
    if not store.pending_count():
        return None
    relayed = deliver(alerting, store, now=rt.clock(), clock=rt.clock, stop=rt.stop)
    rt.monitor.metrics.observe_relay(relayed)
    return relayed


def _sound(rt: Runtime, error: ReconError, now: datetime) -> None:
    """Sound the alarm for a tick stopped by ``error``; never hides ``error`` itself."""
    # The period it was surely for: the latest settled day.
    window = windows.daily(windows.last_settled_day(now, wiring.settle(rt.settings)))
    alerting = _alerting(rt)
    if alerting is None:
        log.warning(EV_ALARM_FAILED, reason=error.reason, why="the channels are misconfigured")
        return
    # When the history database is what failed, the outbox cannot carry the alarm.
    opener = None if isinstance(error, StoreError) else (lambda: _history(rt))
    try:
        rt.alarm.sound(TickFailure(error, window, now), alerting, opener, rt.clock)
    except Interrupted:
        raise
    except Exception as e:  # a bug here must not replace the error being reported
        log.error(EV_ALARM_FAILED, reason=error.reason, error=type(e).__name__)


@contextlib.contextmanager
def _history(rt: Runtime) -> Iterator[HistoryStore]:
    if rt.store is not None:
        yield rt.store
        return
    with HistoryStore(rt.settings.history.database_url.get_secret_value()) as store:
        yield store


def _verdict(report: DueReport, plan: Plan, codes: ExitCodes | None) -> Verdict:
    """How a tick's report is pinged: success, or ``/<exit code>`` (``/fail``) with a reason."""
    code = codes.of_report(report) if codes is not None else None
    if report.interrupted:
        return code, plan.stop_reason
    if report.failed:
        reasons = ", ".join(f"{o.window.key}: {o.error.reason}" for o in report.failed if o.error)
        return code, f"{len(report.failed)} run(s) failed: {reasons}"
    return (code or 0), report.status


def _no_code(_error: ReconError) -> None:
    return None
