"""The daemon's window to the outside: ``GET /healthz`` and ``GET /metrics`` on one port.

A small stdlib ``ThreadingHTTPServer`` (one thread per request, so a slow scrape never blocks a
probe) serves ``/healthz`` (JSON from :class:`~recon_job.daemon.health.HealthState`) and
``/metrics`` (Prometheus text from the run loop's own registry,
:class:`~recon_job.runtime.Metrics`). Kept deliberately small: a web app replaces it later.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

import structlog
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from recon_job.daemon.health import HealthState
from recon_job.errors import ConfigError
from recon_job.runtime import Metrics

log = structlog.get_logger(__name__)

EV_LISTENING: Final = "daemon.health.listening"
EV_STOPPED: Final = "daemon.health.stopped"


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
