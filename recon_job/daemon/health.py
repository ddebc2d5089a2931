"""What the daemon's probes say: ``/livez``, ``/readyz`` and ``/healthz``.

:class:`HealthState` is written by the daemon (scheduler state, ticks, every run) and read by
the HTTP server (:mod:`recon_job.daemon.server`). Three questions, three answers, because a
restart or a routing change must follow only from a problem it can fix (issue 9 item 27):

* ``/livez`` — is the process alive? 200 while the scheduler is starting (catching up), running
  or stopping; 503 once it has stopped. Kubernetes' liveness probe: a restart helps only here.
* ``/readyz`` — can it serve its metrics and probes? 200 while the scheduler is starting or
  running, 503 while it stops. Kubernetes' readiness probe. An overdue period does not make it
  unready: that is when its metrics matter most.
* ``/healthz`` — is the work done? 503 also when a kind's latest settled period still has no
  completed run ``overdue_hours`` after it settled (:class:`Overdue`: OpenAI down, a revoked key,
  a failing database — nothing a restart fixes). For monitors and people, never for liveness.

The body carries no secret: period keys, statuses and timestamps only. The clock is passed in
(only the daemon and the CLI read it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from recon_job import windows
from recon_job.models import RunOutcome, Window
from recon_job.runtime import PERIOD_KINDS
from recon_job.runtime.metrics import COMPLETE_STATUSES

#: Scheduler states that count as healthy (and ready): catching up at start, or scheduling.
HEALTHY_STATES: Final = frozenset({"starting", "running"})
#: Scheduler states of a live process: it stops on purpose while ``stopping``.
LIVE_STATES: Final = frozenset({"starting", "running", "stopping"})


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


@dataclass(frozen=True)
class Overdue:
    """When a kind's latest completed period is too old: the rule behind a 503."""

    #: How long after its end a UTC day counts as settled.
    settle: timedelta
    #: How long past settling a period may still lack a completed run (``overdue_hours``).
    margin: timedelta

    def expected(self, kind: windows.PeriodKind, *, now: datetime) -> Window:
        """The latest period of ``kind`` that should have a completed run by ``now``.

        That is the latest period that settled at least ``margin`` ago: the daemon had a whole
        margin (its cron's next fire time, a run, a retry) to complete it.
        """
        [latest] = windows.due_periods(
            kind, now=now - self.margin, settle=self.settle, lookback=1, completed=()
        )
        return latest

    def late(
        self,
        kind: windows.PeriodKind,
        last_completed: str | None,
        *,
        now: datetime,
        since: datetime,
    ) -> bool:
        """True when ``kind``'s latest completed period is older than :meth:`expected`.

        Never within ``margin`` of ``since`` (the daemon's start): a fresh start gets its
        catch-up and first ticks before it is judged, so a probe cannot restart it in a loop
        while it works.
        """
        if now - since < self.margin:
            return False
        expected = self.expected(kind, now=now)
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
        self._overdue = Overdue(settle, overdue_after)
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

    def observe_outcome(self, outcome: RunOutcome) -> None:
        """A run of the run loop ended (see :meth:`record`)."""
        info = RunInfo(outcome.window.key, str(outcome.status), outcome.finished_at)
        self.record(outcome.window.kind, info)

    def liveness(self) -> tuple[int, dict[str, Any]]:
        """The /livez status code and body: the process and its scheduler are alive."""
        with self._lock:
            scheduler = self._scheduler
        alive = scheduler in LIVE_STATES
        body = {
            "status": "alive" if alive else "stopped",
            "scheduler": scheduler,
            "started_at": _iso(self._started_at),
        }
        return (200 if alive else 503), body

    def readiness(self) -> tuple[int, dict[str, Any]]:
        """The /readyz status code and body: ready to serve, overdue periods or not."""
        now = self._clock()
        with self._lock:
            scheduler = self._scheduler
            last_completed = dict(self._last_completed)
        ready = scheduler in HEALTHY_STATES
        body = {
            "status": "ready" if ready else "not ready",
            "scheduler": scheduler,
            # Shown, never decisive: see the module docstring.
            "overdue": [k for k in PERIOD_KINDS if self._late(k, last_completed, now)],
        }
        return (200 if ready else 503), body

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
        problems = [f"scheduler is {scheduler}"] if scheduler not in HEALTHY_STATES else []
        late = [kind for kind in PERIOD_KINDS if self._late(kind, last_completed, now)]
        problems += [f"{kind}: no completed run of the latest settled period" for kind in late]
        body = {
            "status": "ok" if not problems else "unhealthy",
            "scheduler": scheduler,
            "started_at": _iso(self._started_at),
            "last_tick": _iso(last_tick),
            "last_run": {k: _as_dict(last_run.get(k)) for k in PERIOD_KINDS},
            "last_completed": {k: _as_dict(last_completed.get(k)) for k in PERIOD_KINDS},
            "next_run": {k: _iso(next_runs.get(k)) for k in PERIOD_KINDS},
            "overdue": late,
            "problems": problems,
        }
        return (200 if not problems else 503), body

    def _late(
        self, kind: windows.PeriodKind, last_completed: Mapping[str, RunInfo], now: datetime
    ) -> bool:
        done = last_completed.get(kind)
        key = done.key if done is not None else None
        return self._overdue.late(kind, key, now=now, since=self._started_at)


def _as_dict(run: RunInfo | None) -> dict[str, Any] | None:
    return None if run is None else run.as_dict()


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _start(key: str) -> datetime:
    try:
        return windows.parse_period_key(key).start_at
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
