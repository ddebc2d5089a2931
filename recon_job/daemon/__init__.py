"""``recon-job daemon``: the run loop on a schedule, and the endpoints that report on it.

The daemon owns only what is its own: the APScheduler wiring (:mod:`~recon_job.daemon.scheduler`,
the only module importing APScheduler), what its jobs report (:mod:`~recon_job.daemon.events`),
the probes' state (:mod:`~recon_job.daemon.health`: /livez, /readyz, /healthz) and the HTTP
server of the probes and /metrics (:mod:`~recon_job.daemon.server`). Every tick is
:func:`recon_job.runtime.run_tick`.
"""

from recon_job.daemon.events import JobObserver
from recon_job.daemon.health import HealthState, Overdue, RunInfo
from recon_job.daemon.scheduler import TICK_ENV, Daemon, serve, utcnow
from recon_job.daemon.server import HealthServer

__all__ = [
    "TICK_ENV",
    "Daemon",
    "HealthServer",
    "HealthState",
    "JobObserver",
    "Overdue",
    "RunInfo",
    "serve",
    "utcnow",
]
