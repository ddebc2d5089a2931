"""The daemon's window to the outside: ``GET /healthz`` and ``GET /metrics`` on one port.

A small stdlib ``ThreadingHTTPServer`` (one thread per request, so a slow scrape never blocks a
probe) serves:

* ``/healthz`` — JSON: scheduler state, last tick, the last run and last completed period of each
  kind, the next fire times. 200 while the scheduler is starting (catching up) or running and
  nothing is overdue; 503 when it is stopping/stopped or a kind's latest settled period still
  has no completed run ``overdue_hours`` after it settled.
* ``/metrics`` — Prometheus text from a dedicated :class:`Metrics` registry (never the global
  one, which would also expose whatever else the process registered).

Neither body carries a secret: period keys, statuses, timestamps and counts only. The clock is
passed in (only the daemon and the CLI read it).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Final

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from recon_job import windows
from recon_job.errors import ConfigError
from recon_job.models import Status, Window

if TYPE_CHECKING:
    from recon_job.delivery.relay import RelayReport
    from recon_job.models import RunOutcome

log = structlog.get_logger(__name__)

EV_LISTENING: Final = "daemon.health.listening"
EV_STOPPED: Final = "daemon.health.stopped"

KINDS: Final = ("daily", "monthly")
#: Scheduler states that count as healthy: catching up at start, or scheduling.
HEALTHY_STATES: Final = frozenset({"starting", "running"})
#: Run statuses that complete a period (as ``store.records.COMPLETE``).
COMPLETE_STATUSES: Final = frozenset({str(Status.RECONCILED), str(Status.MISMATCH)})
#: Scheduler events counted in ``recon_scheduler_events_total``.
SCHEDULER_EVENTS: Final = ("job_error", "job_missed", "job_max_instances", "job_interrupted")


@dataclass(frozen=True)
class RunInfo:
    """What /healthz shows of one run: its period, status and end."""

    #: Period key, e.g. ``daily:2026-03-14``.
    key: str
    #: Run status (``reconciled``, ``mismatch``, ``failed`` ...).
    status: str
    #: Aware UTC; None when the run did not finish.
    finished_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "key": self.key,
            "status": self.status,
            "finished_at": _iso(self.finished_at),
        }


def expected_period(
    kind: windows.PeriodKind, *, now: datetime, settle: timedelta, margin: timedelta
) -> Window:
    """The latest period of ``kind`` that should have a completed run by ``now``.

    That is the latest period that settled at least ``margin`` ago: the daemon had a whole
    margin (its cron's next fire time, a run, a retry) to complete it.
    """
    [latest] = windows.due_periods(kind, now=now - margin, settle=settle, lookback=1, completed=())
    return latest


def overdue(
    kind: windows.PeriodKind,
    last_completed: str | None,
    *,
    now: datetime,
    settle: timedelta,
    margin: timedelta,
    since: datetime,
) -> bool:
    """True when ``kind``'s latest completed period is older than :func:`expected_period`.

    Never within ``margin`` of ``since`` (the daemon's start): a fresh start gets its catch-up
    and first ticks before it is judged, so a probe cannot restart it in a loop while it works.
    """
    if now - since < margin:
        return False
    expected = expected_period(kind, now=now, settle=settle, margin=margin)
    if last_completed is None:
        return True
    try:
        done = windows.parse_period_key(last_completed)
    except ValueError:
        return True
    return bool(done.start_at < expected.start_at)


class HealthState:
    """What the daemon reports about itself; updated by the daemon, read by the HTTP server.

    Thread-safe: scheduler worker threads write while request threads read.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], datetime],
        settle: timedelta,
        overdue_after: timedelta,
        next_runs: Callable[[], Mapping[str, datetime | None]] = dict,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._settle = settle
        self._margin = overdue_after
        self._next_runs = next_runs
        self._started_at = clock()
        self._scheduler = "starting"
        self._last_tick: datetime | None = None
        self._last_run: dict[str, RunInfo] = {}
        self._last_completed: dict[str, RunInfo] = {}

    def set_scheduler(self, state: str) -> None:
        """``starting``, ``running``, ``stopping`` or ``stopped``."""
        with self._lock:
            self._scheduler = state

    def set_next_runs(self, next_runs: Callable[[], Mapping[str, datetime | None]]) -> None:
        """Where the next fire time of each kind comes from (the scheduler's jobs)."""
        with self._lock:
            self._next_runs = next_runs

    def tick(self, at: datetime) -> None:
        """A scheduler tick (or the start-up catch-up) began at ``at``."""
        with self._lock:
            self._last_tick = at

    def record(self, kind: str, run: RunInfo) -> None:
        """A run of ``kind`` ended; a completed one also moves the last completed period."""
        with self._lock:
            self._last_run[kind] = run
            if run.status in COMPLETE_STATUSES:
                previous = self._last_completed.get(kind)
                if previous is None or _start(run.key) >= _start(previous.key):
                    self._last_completed[kind] = run

    def snapshot(self) -> tuple[int, dict[str, Any]]:
        """The /healthz status code and body."""
        now = self._clock()
        with self._lock:
            scheduler = self._scheduler
            last_tick = self._last_tick
            last_run = dict(self._last_run)
            last_completed = dict(self._last_completed)
            next_runs_of = self._next_runs
        try:
            next_runs = dict(next_runs_of())
        except Exception:  # a probe must answer even mid-shutdown
            next_runs = {}
        problems: list[str] = []
        if scheduler not in HEALTHY_STATES:
            problems.append(f"scheduler is {scheduler}")
        late: list[str] = []
        for kind in KINDS:
            done = last_completed.get(kind)
            if overdue(
                kind,
                done.key if done else None,
                now=now,
                settle=self._settle,
                margin=self._margin,
                since=self._started_at,
            ):
                late.append(kind)
                problems.append(f"{kind}: no completed run of the latest settled period")
        body = {
            "status": "ok" if not problems else "unhealthy",
            "scheduler": scheduler,
            "started_at": _iso(self._started_at),
            "last_tick": _iso(last_tick),
            "last_run": {k: last_run[k].as_dict() if k in last_run else None for k in KINDS},
            "last_completed": {
                k: last_completed[k].as_dict() if k in last_completed else None for k in KINDS
            },
            "next_run": {k: _iso(next_runs.get(k)) for k in KINDS},
            "overdue": late,
            "problems": problems,
        }
        return (200 if not problems else 503), body


class Metrics:
    """The daemon's Prometheus metrics, in their own registry (also pushed in run-once mode)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        #: The registry /metrics renders and ``ping.push_metrics`` pushes.
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.runs = Counter(
            "recon_runs",
            "Reconciliation runs by period kind and status.",
            ["kind", "status"],
            registry=r,
        )
        self.drift = Gauge(
            "recon_last_drift_pct",
            "Local minus OpenAI as a percent of OpenAI's figure, last run per kind "
            "(+Inf: OpenAI shows zero).",
            ["kind", "quantity"],
            registry=r,
        )
        self.alerts = Counter(
            "recon_alerts",
            "Notification deliveries by channel and outcome (sent, failed, deferred).",
            ["channel", "outcome"],
            registry=r,
        )
        self.last_success = Gauge(
            "recon_last_success_timestamp_seconds",
            "End of the last run that completed its period (reconciled or mismatch), per kind.",
            ["kind"],
            registry=r,
        )
        self.scheduler_events = Counter(
            "recon_scheduler_events",
            "Scheduler events: job errors, missed fire times, overlapping runs, interruptions.",
            ["event"],
            registry=r,
        )
        self.last_tick = Gauge(
            "recon_last_tick_timestamp_seconds", "Start of the last scheduler tick.", registry=r
        )
        # Zero series from the start, so rate() and absent() work before the first event.
        for kind in KINDS:
            for status in Status:
                self.runs.labels(kind=kind, status=str(status))
        for event in SCHEDULER_EVENTS:
            self.scheduler_events.labels(event=event)

    def observe_run(
        self,
        kind: str,
        status: str,
        *,
        finished_at: datetime,
        cost_pct: Any = None,
        tokens_pct: Any = None,
        local: Mapping[str, Any] | None = None,
    ) -> None:
        """Count a run; a run with a result also sets drift and, when complete, last success.

        ``cost_pct``/``tokens_pct`` are the result's percentages (None when OpenAI's figure is
        zero); ``local`` holds the local ``cost`` and ``tokens`` to tell 0 % from +Inf then.
        """
        self.runs.labels(kind=kind, status=status).inc()
        if status == str(Status.FAILED):
            return
        for quantity, pct in (("cost", cost_pct), ("tokens", tokens_pct)):
            if pct is None:
                value = 0.0 if not (local or {}).get(quantity) else math.inf
            else:
                value = float(pct)
            self.drift.labels(kind=kind, quantity=quantity).set(value)
        if status in COMPLETE_STATUSES:
            self.last_success.labels(kind=kind).set(finished_at.timestamp())

    def observe_outcome(self, outcome: RunOutcome) -> None:
        """Count a run from ``job.run_once`` (or ``due.run_due``'s ``runs``) and its deliveries.

        Deliveries still pending are not counted: the relay pass that settles them counts them
        (:meth:`observe_relay`).
        """
        kind = outcome.window.kind
        status = str(outcome.status)
        result = outcome.result
        if result is not None:
            c = result.comparison
            self.observe_run(
                kind,
                status,
                finished_at=outcome.finished_at,
                cost_pct=c.cost.pct,
                tokens_pct=c.tokens.pct,
                local={"cost": c.cost.local, "tokens": c.tokens.local},
            )
        else:
            self.observe_run(kind, status, finished_at=outcome.finished_at)
        for alert in outcome.alerts:
            if alert.get("status") in ("sent", "failed"):
                self.observe_alert(str(alert["channel"]), str(alert["status"]))

    def observe_relay(self, report: RelayReport) -> None:
        """Count the rows a relay pass settled (sent, failed) or left for later (deferred)."""
        for row in report.outcomes:
            outcome = {"sent": "sent", "partial": "sent", "dead": "failed"}.get(
                str(row.status), "deferred"
            )
            self.observe_alert(row.channel, outcome)

    def observe_alert(self, channel: str, outcome: str) -> None:
        """Count one delivery outcome: ``sent``, ``failed`` or ``deferred``."""
        self.alerts.labels(channel=channel, outcome=outcome).inc()

    def scheduler_event(self, event: str) -> None:
        """Count a scheduler event (see :data:`SCHEDULER_EVENTS`)."""
        self.scheduler_events.labels(event=event).inc()

    def tick(self, at: datetime) -> None:
        """A tick began at ``at``."""
        self.last_tick.set(at.timestamp())

    def render(self) -> bytes:
        """The Prometheus text exposition of the registry."""
        return generate_latest(self.registry)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Allows a restart right after a stop (TIME_WAIT) on the same port.
    allow_reuse_address = True


class HealthServer:
    """/healthz and /metrics on ``host:port`` in a background thread (port 0: any free port)."""

    def __init__(self, host: str, port: int, state: HealthState, metrics: Metrics) -> None:
        handler = _handler_for(state, metrics)
        try:
            self._server = _Server((host, port), handler)
        except OSError as e:
            raise ConfigError(
                f"daemon.listen: cannot listen on {host}:{port} ({e.strerror or e}); "
                "free the port or set RECON_DAEMON__LISTEN to another host:port"
            ) from e
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port actually bound."""
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        """Serve in a daemon thread."""
        # A short poll interval: stop() waits up to one interval for the loop to notice.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name="recon-health", daemon=True
        )
        self._thread.start()
        host = self._server.server_address[0]
        log.info(EV_LISTENING, host=host, port=self.port)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()
        log.info(EV_STOPPED)


def _handler_for(state: HealthState, metrics: Metrics) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "recon-job"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:
            # Probes every few seconds would flood the log; the metrics tell the story.
            pass

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                code, body = state.snapshot()
                self._send(code, "application/json", json.dumps(body).encode("utf-8"))
            elif path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, metrics.render())
            else:
                self._send(404, "text/plain; charset=utf-8", b"not found: try /healthz, /metrics\n")

        def _send(self, code: int, content_type: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

    return Handler


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _start(key: str) -> datetime:
    try:
        return windows.parse_period_key(key).start_at
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
