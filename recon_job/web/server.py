"""Serving the web application: uvicorn in a background thread on a socket bound up front.

The socket is bound before uvicorn starts, so a port in use is a
:class:`~recon_job.errors.ConfigError` at once (not a log line in a thread) and port 0 gives the
port actually bound. ``recon-job serve`` runs it in the foreground; the daemon beside its
scheduler. Access logs are off: probes every few seconds would flood the log, and a ``?key=``
must never reach a log line (the metrics tell the story).
"""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
import time
from typing import Any, Final

import structlog
import uvicorn

from recon_job.errors import ConfigError

log = structlog.get_logger(__name__)

EV_LISTENING: Final = "web.listening"
EV_STOPPED: Final = "web.stopped"


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; ConfigError naming the address when it fails."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on accepted sockets whose
    # proto says TCP. Without it a response sent in two writes (headers, body) waits for the
    # client's delayed ACK: 40 ms added to every keep-alive request, /metrics included.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        # Allows a restart right after a stop (TIME_WAIT) on the same port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise ConfigError(
            f"web.listen: cannot listen on {host}:{port} ({e.strerror or e}); "
            "free the port or set RECON_WEB__LISTEN (or --listen) to another host:port"
        ) from e
    sock.setblocking(False)
    return sock


class WebServer:
    """An ASGI ``app`` served by uvicorn on ``host:port`` (port 0: any free port)."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        self._socket = bind(host, port)
        self._app = app
        config = uvicorn.Config(
            app,
            access_log=False,
            log_config=None,
            lifespan="off",
            timeout_graceful_shutdown=5,
            server_header=False,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        """The address bound."""
        return str(self._socket.getsockname()[0])

    @property
    def port(self) -> int:
        """The port actually bound."""
        return int(self._socket.getsockname()[1])

    def start(self) -> WebServer:
        """Serve in a daemon thread; returns once the server accepts connections."""
        self._thread = threading.Thread(target=self._run, name="recon-web", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and self._thread.is_alive():
            if time.monotonic() > deadline:  # pragma: no cover - a machine far too slow
                break
            time.sleep(0.01)
        log.info(EV_LISTENING, host=self.host, port=self.port)
        return self

    def serve_forever(self) -> None:
        """Serve in this (main) thread until SIGTERM/SIGINT or :meth:`request_stop`."""
        from recon_job.web.app import warm_up

        warm_up(self._app)
        log.info(EV_LISTENING, host=self.host, port=self.port)
        # Everything loaded so far (FastAPI, SQLAlchemy, pydantic: ~150k objects) lives as long
        # as the process: out of the collector's sight, a full collection walks only what the
        # requests made, not the whole heap (tens of ms less on the request it lands in).
        gc.collect()
        gc.freeze()
        self._run()

    def _run(self) -> None:
        # uvicorn handles SIGTERM/SIGINT only in the main thread (serve_forever), never in ours.
        asyncio.run(self._server.serve(sockets=[self._socket]))

    def request_stop(self) -> None:
        """Ask the server to stop (safe from any thread)."""
        self._server.should_exit = True

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._socket.close()
        log.info(EV_STOPPED)
