"""The one web application: probes, ``/metrics``, the dashboard and the admin API.

FastAPI on uvicorn: FastAPI (Starlette underneath) gives the typed routes and the OpenAPI
document at ``/api/openapi.json`` that schemathesis tests against; uvicorn is a production ASGI
server that runs in a thread beside the daemon's scheduler as well as alone. Every page reads the
history only and never calls OpenAI.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import make_asgi_app
from starlette.exceptions import HTTPException
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recon_job.config import Settings
from recon_job.models import Tolerance
from recon_job.runtime import Metrics
from recon_job.store import HistoryStore
from recon_job.web.auth import Auth, WebError
from recon_job.web.cache import ComputeCache
from recon_job.web.guard import Redirect
from recon_job.web.probes import Probes
from recon_job.web.render import error_page, wants_json

log = structlog.get_logger(__name__)

EV_WARM_UP_SKIPPED: Final = "web.warm_up_skipped"

#: Headers of every answer: no inline script may run, no frame may hold a page, no address
#: leaves in a Referer.
SECURITY_HEADERS: Final = (
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
)


@dataclass
class WebContext:
    """What the application serves: its probes, metrics, history, key and rules."""

    probes: Probes
    metrics: Metrics
    #: The history database URL (a secret: it may carry a password).
    history_url: str
    #: The dashboard key; None turns the dashboard and the admin API off (404).
    dashboard_key: str | None
    #: The clock (aware UTC): the dashboard's default range ends at the last settled day.
    clock: Callable[[], datetime]
    tolerance: Tolerance = field(default_factory=Tolerance)
    settle_hours: float = 24.0
    max_upload_bytes: int = 50 << 20
    secure_cookies: bool = False
    #: The settings the admin API's per-request reconciliation and "Reconcile this range" run
    #: with; None: both answer 409.
    settings: Settings | None = None
    #: Overviews and their pages, keyed by range and the history's state (see ``web.cache``).
    cache: ComputeCache = field(default_factory=ComputeCache)
    _store: HistoryStore | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def history(self) -> HistoryStore:
        """The history database, opened on first use (never created: ``run`` creates it)."""
        with self._lock:
            if self._store is None:
                self._store = HistoryStore(self.history_url, create=False)
            return self._store

    def close(self) -> None:
        """Close the history database."""
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def today(self) -> date:
        """Today (UTC)."""
        return self.clock().date()


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)


class _Metrics:
    """prometheus_client's ASGI app as a route endpoint (a class instance: Starlette calls it
    as an ASGI app instead of as a request handler)."""

    def __init__(self, metrics: Metrics) -> None:
        self._app = make_asgi_app(registry=metrics.registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


def create_app(ctx: WebContext) -> FastAPI:
    """The application over ``ctx``."""
    from recon_job.web import admin, pages

    app = FastAPI(
        title="recon-job",
        summary="Reconciliation dashboard and admin API",
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.ctx = ctx
    app.state.auth = Auth(ctx.dashboard_key)
    probes: dict[str, Callable[[], tuple[int, dict[str, Any]]]] = {
        "/livez": ctx.probes.liveness,
        "/readyz": ctx.probes.readiness,
        "/healthz": ctx.probes.snapshot,
    }
    for path, probe in probes.items():
        app.add_api_route(path, _probe_endpoint(probe), methods=["GET"], include_in_schema=False)
    app.router.routes.append(Route("/metrics", _Metrics(ctx.metrics), include_in_schema=False))
    app.mount("/static", StaticFiles(packages=[("recon_job.web", "static")]), name="static")
    app.include_router(pages.router)
    app.include_router(admin.router)
    app.add_exception_handler(WebError, _auth_error)  # type: ignore[arg-type]
    app.add_exception_handler(Redirect, _redirect)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _bad_parameter)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_middleware(SecurityHeaders)
    return app


def warm_up(app: Any) -> None:
    """Do before the first visitor what the first page view would: compile every template and
    open the history, reading the overview of the last settled day (its queries compiled, the
    connection pool filled). The first overview then costs what any other does (~0.1 s less).

    Nothing fails here: a history that cannot be read yet is the pages' business."""
    from recon_job import windows
    from recon_job.errors import ReconError
    from recon_job.web import overview
    from recon_job.web.render import environment

    env = environment()
    for name in env.list_templates(extensions=["j2"]):
        env.get_template(name)
    ctx = getattr(getattr(app, "state", None), "ctx", None)
    if not isinstance(ctx, WebContext):
        return
    day = windows.last_settled_day(ctx.clock(), timedelta(hours=ctx.settle_hours))
    try:
        history = ctx.history()
        history.history_state()
        overview.build(history, day, day, ctx.tolerance)
    except ReconError as e:
        log.info(EV_WARM_UP_SKIPPED, reason=type(e).__name__)


def _probe_endpoint(
    probe: Callable[[], tuple[int, dict[str, Any]]],
) -> Callable[[], Awaitable[Response]]:
    async def endpoint() -> Response:
        code, body = probe()
        return JSONResponse(body, status_code=code)

    return endpoint


async def _auth_error(request: Request, error: WebError) -> Response:
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after else None
    if wants_json(request):
        return JSONResponse({"error": error.message}, status_code=error.status, headers=headers)
    return error_page(
        request, error.status, error.message, headers=headers, login=error.status == 401
    )


async def _bad_parameter(request: Request, error: RequestValidationError) -> Response:
    """A parameter FastAPI could not read (``?limit=abc``): 400 naming it, in the same
    ``{"error": ...}`` shape (or page) as every other refusal; the value itself is not echoed."""
    problems = "; ".join(
        f"{'.'.join(str(part) for part in e.get('loc', ())[1:]) or 'request'}: {e.get('msg', '')}"
        for e in error.errors()
    )
    return await _auth_error(request, WebError(400, problems or "bad request"))


async def _http_error(request: Request, error: HTTPException) -> Response:
    """The router's own refusals (no such path, a method the path does not take) in the same
    ``{"error": ...}`` shape (or page) as every other, not FastAPI's ``{"detail": ...}``."""
    message = {404: "not found", 405: f"{request.method} is not allowed here"}.get(
        error.status_code, str(error.detail)
    )
    if wants_json(request):
        return JSONResponse({"error": message}, error.status_code, headers=error.headers)
    return error_page(request, error.status_code, message, headers=error.headers)


async def _redirect(request: Request, redirect: Redirect) -> Response:
    return redirect.response
