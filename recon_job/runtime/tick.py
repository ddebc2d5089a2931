"""The one run loop: a tick, as ``recon-job run``, ``run --due`` and every daemon tick run it.

:func:`run_tick` is the whole of it, whoever calls it:

1. the dependencies of the runs (``wiring.deps``) — a configuration error raises here, before
   anything is recorded or skipped;
2. the due periods of the :class:`~recon_job.runtime.due.Plan` (catch-up, period lock, run:
   :func:`recon_job.runtime.due.run_periods`);
3. with ``plan.relay``, a relay pass over what the outbox still holds (the daemon; not after a
   stop request, so that a slow SMTP server does not eat the shutdown budget);
4. the dead-man's-switch pings around it all (:func:`recon_job.runtime.ping.with_pings`): the
   success ping only after the results, the outbox rows and the relay pass are committed (§6);
5. the metrics of the runs and deliveries, pushed to a Pushgateway in run-once mode.

:class:`Runtime` holds what every tick of one process shares (settings, clock, stop event,
channels, :class:`Monitor`); only ``cli`` and ``daemon`` build one, and only they read the
clock. :func:`relay_pending` is the relay pass alone (the daemon's between-ticks job).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from recon_job import job, wiring
from recon_job.config import Settings
from recon_job.delivery import Alerting, RelayReport, deliver
from recon_job.errors import ReconError
from recon_job.logconfig import REDACTOR
from recon_job.models import RunOutcome
from recon_job.notify.base import Transport
from recon_job.runtime.due import DueReport, Plan, run_periods
from recon_job.runtime.metrics import Metrics
from recon_job.runtime.ping import Pinger, Verdict, push_metrics, with_pings
from recon_job.store import HistoryStore

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
    #: The history database; None: opened from the settings for each tick, closed after it.
    store: HistoryStore | None = None
    #: Pings and metrics (default: no pings; metrics kept, never pushed).
    monitor: Monitor = field(default_factory=Monitor)
    #: How the periods are run.
    periods: PeriodRunner = run_periods


def pinger_for(settings: Settings) -> Pinger:
    """The pinger of ``daemon.ping_url`` (none when unset), redacting what it sends."""
    url = settings.daemon.ping_url
    return Pinger(url.get_secret_value() if url is not None else None, redact=REDACTOR.scrub)


def run_tick(rt: Runtime, plan: Plan, now: datetime | None = None) -> DueReport:
    """One tick of the run loop (see the module docstring); its report.

    ``now`` (default ``rt.clock()``) decides which periods are due. A tick asked for after a
    stop request runs nothing and pings nothing: its report is ``interrupted``. Errors (a
    ``ConfigError``, a ``StoreError``) are pinged, then raised.
    """
    now = now or rt.clock()
    if rt.stop.is_set():
        return DueReport(interrupted=True)
    monitor = rt.monitor
    monitor.metrics.tick(now)
    codes = monitor.exit_codes
    report = with_pings(
        monitor.pinger,
        lambda: _tick(rt, plan, now),
        verdict=lambda r: _verdict(r, plan, codes),
        error_code=codes.of_error if codes is not None else _no_code,
    )
    if monitor.pushgateway:
        push_metrics(monitor.pushgateway, monitor.metrics.registry)
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
        if not store.pending_count():
            return None
        return _relay(alerting, store, rt)


def _tick(rt: Runtime, plan: Plan, now: datetime) -> DueReport:
    with _history(rt) as store:
        deps = wiring.deps(
            rt.settings,
            store,
            job.RunControl(rt.clock, rt.stop, plan.trigger),
            wiring.Overrides(sources=rt.sources, channels=rt.channels, openai_csv=rt.openai_csv),
        )
        report = rt.periods(rt.settings, deps, plan, now)
        for outcome in report.runs:
            for observer in (rt.monitor.metrics, *rt.monitor.observers):
                observer.observe_outcome(outcome)
        if plan.relay and not report.interrupted and deps.alerting.channels:
            _relay(deps.alerting, store, rt)
    return report


def _relay(alerting: Alerting, store: HistoryStore, rt: Runtime) -> RelayReport | None:
    # Not after a stop request: a slow SMTP server must not eat the shutdown budget; the rows
    # stay in the outbox for the next start.
    if rt.stop.is_set():
        return None
    relayed = deliver(alerting, store, now=rt.clock(), clock=rt.clock)
    rt.monitor.metrics.observe_relay(relayed)
    return relayed


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
