"""The one run loop, used by ``recon-job run`` (``--due`` or one window) and by the daemon.

It owns everything around a run that both run modes share: which periods are due and the
catch-up (:mod:`~recon_job.runtime.due`), the period lock, the relay of pending notifications,
the dead-man's-switch pings (:mod:`~recon_job.runtime.ping`), the metrics
(:mod:`~recon_job.runtime.metrics`), the alarm of a tick stopped before it recorded a run
(:mod:`~recon_job.runtime.alarm`) — all in one tick, :func:`run_tick`
(:mod:`~recon_job.runtime.tick`) — and the SIGTERM budget (:mod:`~recon_job.runtime.shutdown`).
The daemon adds only its scheduler and its HTTP endpoints; the CLI only its flags and output.
"""

from recon_job.runtime.alarm import TickAlarm, TickFailure
from recon_job.runtime.due import (
    PERIOD_KINDS,
    SKIP_COMPLETE,
    SKIP_LOCKED,
    DueReport,
    Plan,
    due_windows,
    run_periods,
)
from recon_job.runtime.metrics import COMPLETE_STATUSES, Drift, Metrics, last_run_registry
from recon_job.runtime.ping import Pinger, push_last_runs, push_metrics, secret_values, with_pings
from recon_job.runtime.shutdown import Shutdown
from recon_job.runtime.tick import (
    ExitCodes,
    Monitor,
    PeriodRunner,
    RunObserver,
    Runtime,
    pinger_for,
    relay_pending,
    run_tick,
)

__all__ = [
    "COMPLETE_STATUSES",
    "PERIOD_KINDS",
    "SKIP_COMPLETE",
    "SKIP_LOCKED",
    "Drift",
    "DueReport",
    "ExitCodes",
    "Metrics",
    "Monitor",
    "PeriodRunner",
    "Pinger",
    "Plan",
    "RunObserver",
    "Runtime",
    "Shutdown",
    "TickAlarm",
    "TickFailure",
    "due_windows",
    "last_run_registry",
    "pinger_for",
    "push_last_runs",
    "push_metrics",
    "relay_pending",
    "run_periods",
    "run_tick",
    "secret_values",
    "with_pings",
]
