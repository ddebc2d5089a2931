"""What the probes say when no scheduler runs: ``recon-job serve`` alone.

The daemon's :class:`~recon_job.daemon.health.HealthState` answers the same three questions
about its scheduler; :class:`ServeProbes` answers them for the web application alone, which is
alive while it serves and ready while the history database can be read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class Probes(Protocol):
    """The answers of ``/livez``, ``/readyz`` and ``/healthz``: a status code and a JSON body."""

    def liveness(self) -> tuple[int, dict[str, Any]]:
        """``/livez``: is the process alive (a restart helps only when it is not)?"""

    def readiness(self) -> tuple[int, dict[str, Any]]:
        """``/readyz``: can it serve?"""

    def snapshot(self) -> tuple[int, dict[str, Any]]:
        """``/healthz``: is everything it reports on well?"""


class ServeProbes:
    """The probes of ``recon-job serve``: ready while ``history_ok()`` returns None.

    ``history_ok`` returns None when the history can be read, else a short reason (no secret).
    """

    def __init__(self, history_ok: Callable[[], str | None]) -> None:
        self._history_ok = history_ok

    def liveness(self) -> tuple[int, dict[str, Any]]:
        """Always alive while it answers."""
        return 200, {"status": "alive", "scheduler": "none"}

    def readiness(self) -> tuple[int, dict[str, Any]]:
        """Ready while the history database answers."""
        problem = self._history_ok()
        if problem is None:
            return 200, {"status": "ready", "scheduler": "none"}
        return 503, {"status": "not ready", "scheduler": "none", "problems": [problem]}

    def snapshot(self) -> tuple[int, dict[str, Any]]:
        """The readiness answer, with ``ok``/``unhealthy`` as the daemon's /healthz says."""
        code, body = self.readiness()
        return code, {**body, "status": "ok" if code == 200 else "unhealthy"}
