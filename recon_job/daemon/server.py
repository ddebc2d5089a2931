"""The daemon's window to the outside: the web application beside its scheduler.

The probes (``/livez``, ``/readyz``, ``/healthz`` from
:class:`~recon_job.daemon.health.HealthState`, which says what each means), ``/metrics`` (the
run loop's own registry, :class:`~recon_job.runtime.Metrics`) and, when a dashboard key is set,
the dashboard and admin API: all one :mod:`recon_job.web` application on uvicorn in a
background thread.
"""

from __future__ import annotations

from datetime import UTC, datetime

from recon_job.daemon.health import HealthState
from recon_job.runtime import Metrics
from recon_job.web import WebContext, WebServer, create_app


class HealthServer(WebServer):
    """The web application over the daemon's ``state`` and ``metrics`` on ``host:port``.

    Without ``context`` (tests, a daemon without history) only the probes and ``/metrics`` are
    useful: the dashboard has no key and answers 404.
    """

    def __init__(
        self,
        host: str,
        port: int,
        state: HealthState,
        metrics: Metrics,
        context: WebContext | None = None,
    ) -> None:
        ctx = context or WebContext(
            probes=state,
            metrics=metrics,
            history_url="sqlite://",
            dashboard_key=None,
            clock=lambda: datetime.now(UTC),
        )
        super().__init__(create_app(ctx), host, port)
