"""Settings to a :class:`~recon_job.web.WebContext`: where to listen, which key, which rules."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from recon_job import wiring
from recon_job.config import Settings, split_listen
from recon_job.runtime import Metrics
from recon_job.web.app import WebContext
from recon_job.web.probes import Probes


def listen_address(settings: Settings, override: str | None = None) -> tuple[str, int]:
    """``--listen``, else ``[web] listen``, else ``[daemon] listen`` (its older name).

    ValueError (with a readable hint) for a bad ``override``.
    """
    if override is not None:
        return split_listen(override)
    return split_listen(settings.web.listen or settings.daemon.listen)


def context(
    settings: Settings, *, probes: Probes, metrics: Metrics, clock: Callable[[], datetime]
) -> WebContext:
    """The web application's context from the settings."""
    key = settings.web.dashboard_key
    return WebContext(
        probes=probes,
        metrics=metrics,
        history_url=settings.history.database_url.get_secret_value(),
        dashboard_key=None if key is None else key.get_secret_value(),
        clock=clock,
        tolerance=wiring.tolerance(settings),
        settle_hours=float(settings.reconcile.settle_hours),
        max_upload_bytes=settings.web.max_upload_mb << 20,
        secure_cookies=settings.web.secure_cookies,
        settings=settings,
    )
