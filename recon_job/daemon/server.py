"""The daemon's window to the outside: its probes and ``GET /metrics`` on one port.

A small stdlib ``ThreadingHTTPServer`` (one thread per request, so a slow scrape never blocks a
probe) serves ``/livez``, ``/readyz`` and ``/healthz`` (JSON from
:class:`~recon_job.daemon.health.HealthState`, which says what each means) and ``/metrics``
(Prometheus text from the run loop's own registry, :class:`~recon_job.runtime.Metrics`). A
client that hangs up early (a probe's timeout, a load balancer) is one debug line, not a
traceback. Kept deliberately small: a web app replaces it later.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
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
EV_CLIENT_GONE: Final = "daemon.health.client_gone"
EV_REQUEST_FAILED: Final = "daemon.health.request_failed"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Allows a restart right after a stop (TIME_WAIT) on the same port.
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A failed request as one structured log line (socketserver prints a traceback)."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            # BrokenPipeError, ConnectionResetError: the client hung up before the answer (a
            # probe's timeout); nothing is wrong here, and under load there are hundreds.
            log.debug(EV_CLIENT_GONE, error=type(error).__name__)
            return
        log.error(EV_REQUEST_FAILED, error=type(error).__name__, exc_info=True)


class HealthServer:
    """The probes and /metrics on ``host:port`` in a background thread (port 0: any port)."""

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


NOT_FOUND: Final = b"not found: try /livez, /readyz, /healthz, /metrics\n"


def _handler_for(state: HealthState, metrics: Metrics) -> type[BaseHTTPRequestHandler]:
    probes: dict[str, Callable[[], tuple[int, dict[str, Any]]]] = {
        "/livez": state.liveness,
        "/readyz": state.readiness,
        "/healthz": state.snapshot,
    }

    class Handler(BaseHTTPRequestHandler):
        server_version = "recon-job"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:
            # Probes every few seconds would flood the log; the metrics tell the story.
            pass

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            probe = probes.get(path)
            if probe is not None:
                code, body = probe()
                self._send(code, "application/json", json.dumps(body).encode("utf-8"))
            elif path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, metrics.render())
            else:
                self._send(404, "text/plain; charset=utf-8", NOT_FOUND)

        def _send(self, code: int, content_type: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

    return Handler
