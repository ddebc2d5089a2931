"""The dashboard's pages and their JSON and CSV twins: overview, runs, sign-in.

Every handler authenticates first (:func:`recon_job.web.guard.require`), reads the history only
and never calls OpenAI. Handlers are plain functions: FastAPI runs them in its thread pool, so
a slow database read never blocks the probes.
"""

from __future__ import annotations

import csv
import io
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Final, TypeVar
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.concurrency import run_in_threadpool

from recon_job import windows
from recon_job.errors import ConfigError, ReconError, StoreError
from recon_job.report.formats import money, pct, sheet_text, totals
from recon_job.report.history import group_record_dict, run_detail_dict, run_record_dict
from recon_job.report.run import difference as difference_dict
from recon_job.report.run import unpriced_list
from recon_job.store import RunStatus
from recon_job.web import diagnosis as web_diagnosis
from recon_job.web import overview as ov
from recon_job.web.auth import COOKIE, WebError
from recon_job.web.guard import (
    CSRF_FIELD,
    auth_of,
    client_of,
    require,
    require_write,
    set_session_cookie,
)
from recon_job.web.render import error_page, page, render_page, wants_json

router = APIRouter()
T = TypeVar("T")

#: Runs per page of ``/runs``.
PAGE_SIZE = 50
#: The most bytes a sign-in form may have.
MAX_FORM_BYTES = 4096
_KINDS = ("daily", "monthly", "range")


def _ctx(request: Request) -> Any:
    return request.app.state.ctx


def _safe_next(target: str | None) -> str:
    """Only a path on this site (never ``//host`` or a scheme): no open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/usage-api"
    return target


def _first(form: dict[str, list[str]], name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


@router.get("/", include_in_schema=False)
def home(request: Request) -> Response:
    """The overview."""
    auth_of(request).require_enabled()
    return RedirectResponse("/usage-api", status_code=303)


@router.get("/login", include_in_schema=False)
def login_form(request: Request, next: str | None = None) -> Response:
    """The sign-in form."""
    auth_of(request).require_enabled()
    return page(request, "login.html.j2", {"next": _safe_next(next), "message": None})


@router.post("/login", include_in_schema=False)
async def login(request: Request) -> Response:
    """Exchange the key typed in the form for a session cookie."""
    auth = auth_of(request)
    auth.require_enabled()
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise WebError(413, "the sign-in form is too large")
    form = parse_qs(body.decode("utf-8", "replace"))
    key = (form.get("key") or [""])[0]
    target = _safe_next(_first(form, "next"))
    if not auth.check_key(key, client_of(request)):
        return page(
            request,
            "login.html.j2",
            {"next": target, "message": "wrong dashboard key"},
            status=401,
        )
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, request, auth.new_session())
    return response


@router.post("/logout", include_in_schema=False)
async def logout(request: Request) -> Response:
    """End the session (needs its CSRF token)."""
    form = parse_qs((await request.body())[:MAX_FORM_BYTES].decode("utf-8", "replace"))
    require_write(request, _first(form, CSRF_FIELD))
    session = request.state.session
    if session is not None:
        auth_of(request).end_session(session.id)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


# --- the overview ------------------------------------------------------------------------


def _keyed_overview(
    request: Request, start_date: str | None, end_date: str | None, *, days: int = 7
) -> tuple[Callable[[], ov.Overview], tuple[Any, ...]]:
    """How to build the overview, and its cache key: the range and the history's state (one
    cheap query), so a new or newly finished run gives a new key and repeated views compute
    nothing.

    Only what is made of the overview is cached (the page, the JSON, the CSV: bytes), never the
    overview itself: tens of thousands of records kept alive would make every full garbage
    collection walk them, adding 100 ms or more to whichever request it lands in.
    """
    ctx = _ctx(request)
    settled = windows.last_settled_day(ctx.clock(), timedelta(hours=ctx.settle_hours))
    try:
        start, end = ov.parse_range(start_date, end_date, default_end=settled, default_days=days)
    except ov.RangeError as e:
        raise WebError(400, str(e)) from None
    history = ctx.history()
    key = ("overview", start, end, history.history_state())
    return lambda: ov.build(history, start, end, ctx.tolerance), key


def _overview_json(
    request: Request, make: Callable[[], ov.Overview], key: tuple[Any, ...]
) -> Response:
    """The overview as JSON, serialised once per key."""
    body = _cached(request, (*key, "json"), lambda: JSONResponse(overview_dict(make())).body)
    return Response(body, media_type="application/json")


def _cached(request: Request, key: tuple[Any, ...], compute: Any) -> Any:
    """``compute()`` cached under ``key`` in the application's cache."""
    return _ctx(request).cache.get(key, compute)


#: Where the viewer's CSRF token goes in a cached page, replaced on each request: one rendering
#: serves every session. Random per process, so no stored text can spell it.
_CSRF_SLOT: Final = "csrf-slot-" + secrets.token_hex(16)


def _cached_page(
    request: Request, key: tuple[Any, ...], template: str, context: Any
) -> HTMLResponse:
    """A page rendered once per key and path, with or without forms (signed in by a session, or
    by the bearer header), the session's CSRF token put in on each request."""
    session = getattr(request.state, "session", None)
    csrf = session.csrf if session is not None else None
    body: bytes = _cached(
        request,
        (*key, template, csrf is not None, request.url.path),
        lambda: render_page(
            template, context(), csrf=_CSRF_SLOT if csrf else None, path=request.url.path
        ).encode(),
    )
    if csrf:
        body = body.replace(_CSRF_SLOT.encode(), csrf.encode())
    return HTMLResponse(body)


def overview_dict(o: ov.Overview) -> dict[str, Any]:
    """The overview as one JSON document, with the field names of ``run --format json``."""
    return {
        "start_date": o.start.isoformat(),
        "end_date": o.end.isoformat(),
        "status": o.status,
        "threshold_pct": str(o.tolerance.threshold_pct),
        "local": totals(o.local),
        "openai": totals(o.openai),
        "difference": difference_dict(o.comparison),
        "breakdown": [group_record_dict(g) for g in o.groups],
        "days": [
            {
                "date": d.day.isoformat(),
                "state": d.state,
                "run_id": d.run_id,
                "reason": d.reason,
            }
            for d in o.days
        ],
        "pending_days": [d.isoformat() for d in o.pending_days],
        "unpriced_models": _unpriced(o),
        "skipped": _skipped(o),
        "likely_causes": list(o.causes),
        "runs": [r.id for r in o.runs],
    }


def _result_runs(o: ov.Overview) -> list[Any]:
    chosen = {d.run_id for d in o.days if d.state in ("reconciled", "mismatch", "pending")}
    return [r for r in o.runs if r.id in chosen]


def _unpriced(o: ov.Overview) -> list[dict[str, Any]]:
    """The unpriced usage of the runs the figures come from, summed per model and tier (a
    monthly run covering part of the range counts whole: it is not stored per day)."""
    merged: dict[Any, Any] = {}
    for run in _result_runs(o):
        for key, usage in run.unpriced.items():
            merged[key] = merged[key] + usage if key in merged else usage
    return unpriced_list(merged)


def _skipped(o: ov.Overview) -> dict[str, int]:
    """Skipped local records of the runs the figures come from, by reason."""
    counts: Counter[str] = Counter()
    for run in _result_runs(o):
        counts.update(run.skipped)  # update keeps zero counts, unlike Counter addition
    return dict(sorted(counts.items()))


CSV_COLUMNS = (
    "date",
    "family",
    "model",
    "project_id",
    "api_key_id",
    "status",
    "local_tokens",
    "openai_tokens",
    "diff_tokens",
    "tokens_pct",
    "local_requests",
    "openai_requests",
    "diff_requests",
    "requests_pct",
    "local_cost",
    "openai_cost",
    "diff_cost",
    "cost_pct",
)


def overview_csv(o: ov.Overview) -> str:
    """The overview's table as CSV (money as exact decimal strings)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for g in o.groups:
        k, d = g.key, g.difference
        writer.writerow(
            (
                k.day.isoformat(),
                k.family,
                sheet_text(k.model),
                sheet_text(k.project_id),
                sheet_text(k.api_key_id),
                str(g.status),
                g.local.total_tokens,
                g.openai.total_tokens,
                d.tokens,
                pct(d.tokens_pct) or "",
                g.local.requests,
                g.openai.requests,
                d.requests,
                pct(d.requests_pct) or "",
                money(g.local.cost),
                money(g.openai.cost),
                money(d.cost),
                pct(d.cost_pct) or "",
            )
        )
    return out.getvalue()


@router.get("/usage-api", include_in_schema=False)
def usage_api(
    request: Request,
    start_date: str | None = None,
    end_date: str | None = None,
    format: str = "html",
) -> Response:
    """The overview of a date range (default: the last 7 settled days)."""
    require(request)
    if format not in ("html", "json", "csv"):
        raise WebError(400, f"format {format[:20]!r} is not one of html, json, csv")
    make, key = _history_read(request, lambda: _keyed_overview(request, start_date, end_date))
    if format == "json":
        return _history_read(request, lambda: _overview_json(request, make, key))
    if format == "csv":
        _, start, end, _ = key
        name = f"recon-{start}-{end}.csv"
        return PlainTextResponse(
            _history_read(
                request, lambda: _cached(request, (*key, "csv"), lambda: overview_csv(make()))
            ),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    history = _ctx(request).history()
    return _history_read(
        request,
        lambda: _cached_page(
            request, key, "overview.html.j2", lambda: _overview_context(make(), history)
        ),
    )


def _overview_context(o: ov.Overview, history: Any) -> dict[str, Any]:
    return {
        "o": o,
        "chart": _chart(o),
        "drift": _drift_chart(o),
        "rows": _shown_rows(o),
        "max_rows": MAX_ROWS,
        "diagnosis": _one_run_diagnosis(o, history),
    }


def _one_run_diagnosis(o: ov.Overview, history: Any) -> dict[str, Any] | None:
    """The diagnosis shown on an overview whose every reconciled day comes from one run (a
    diagnosis is of a run's window: several runs' would not add up)."""
    runs = _result_runs(o)
    if len(runs) != 1:
        return None
    return web_diagnosis.view(history.diagnoses_of([runs[0].id]).get(runs[0].id))


#: The most table rows a page shows; the CSV and JSON exports have every row.
MAX_ROWS = 500


def _shown_rows(o: ov.Overview) -> list[Any]:
    """Every row when they fit; else the rows out of tolerance and the largest cost drifts
    first (a page of thousands of rows helps nobody and takes long to render)."""
    if len(o.groups) <= MAX_ROWS:
        return list(o.groups)
    ranked = sorted(
        o.groups,
        key=lambda g: (str(g.status) != "mismatch", -abs(g.difference.cost), g.key.day),
    )
    return ranked[:MAX_ROWS]


@router.get("/api/v1/reconciliations", tags=["dashboard"])
def reconciliations(
    request: Request, start_date: str | None = None, end_date: str | None = None
) -> Response:
    """The overview of a date range as JSON (default: the last 7 settled days)."""
    require(request)
    make, key = _history_read(request, lambda: _keyed_overview(request, start_date, end_date))
    return _history_read(request, lambda: _overview_json(request, make, key))


def _chart(o: ov.Overview) -> dict[str, Any]:
    """An SVG bar chart of local vs OpenAI cost per day: geometry only, no script."""
    days = [d for d in o.days if d.state in ("reconciled", "mismatch", "pending")]
    top = max([max(d.local.cost, d.openai.cost) for d in days], default=Decimal(0))
    width, height, pad = 720, 180, 24
    slot = (width - pad) / max(len(o.days), 1)
    bars = []
    for i, d in enumerate(o.days):
        if top <= 0 or d.state not in ("reconciled", "mismatch", "pending"):
            continue
        x = pad + i * slot
        for j, (which, value) in enumerate((("local", d.local.cost), ("openai", d.openai.cost))):
            h = float(value / top) * (height - 30)
            bars.append(
                {
                    "x": round(x + 2 + j * (slot / 2 - 2), 1),
                    "y": round(height - 20 - h, 1),
                    "w": round(max(slot / 2 - 4, 1), 1),
                    "h": round(h, 1),
                    "side": which,
                    "title": f"{d.day} {which}: {value:.2f} USD",
                }
            )
    gaps = [
        {
            "x": round(pad + i * slot + slot / 2, 1),
            "text": "failed" if d.state == "failed" else "no run",
        }
        for i, d in enumerate(o.days)
        if d.state in ("failed", "never") and len(o.days) <= 31
    ]
    labels = [
        {"x": round(pad + i * slot + slot / 2, 1), "text": d.day.strftime("%m-%d")}
        for i, d in enumerate(o.days)
        if len(o.days) <= 31 or i % max(len(o.days) // 15, 1) == 0
    ]
    return {
        "width": width,
        "height": height,
        "bars": bars,
        "labels": labels,
        "gaps": gaps,
        "top": top,
    }


def _drift_chart(o: ov.Overview) -> dict[str, Any]:
    """An SVG line chart of the cost drift % per day of the models drifting most, around a zero
    axis with the tolerance band: geometry only, no script. Days without data are gaps."""
    series = ov.drift_series(o)
    width, height, pad, top_pad, bottom = 720, 200, 44, 10, 28
    threshold = o.tolerance.threshold_pct
    values = [abs(p) for s in series for p in s.points if p is not None]
    span = max([*values, threshold * Decimal("1.5")])
    mid = top_pad + (height - top_pad - bottom) / 2
    scale = (height - top_pad - bottom) / 2 / (float(span) * 1.1)  # headroom for the dots
    slot = (width - pad) / max(len(o.days), 1)

    def y(value: Decimal) -> float:
        return round(mid - float(value) * scale, 1)

    lines = []
    for n, s in enumerate(series):
        path, dots, pen_down = [], [], False
        for i, value in enumerate(s.points):
            if value is None:
                pen_down = False
                continue
            x = round(pad + i * slot + slot / 2, 1)
            path.append(f"{'L' if pen_down else 'M'}{x} {y(value)}")
            pen_down = True
            label = s.model if s.family == "completions" else f"{s.family} {s.model}"
            dots.append({"x": x, "y": y(value), "title": f"{o.days[i].day} {label}: {value:+.2f}%"})
        lines.append(
            {
                "n": n,
                "d": " ".join(path),
                "dots": dots,
                "label": s.model if s.family == "completions" else f"{s.model} ({s.family})",
            }
        )
    return {
        "width": width,
        "height": height,
        "pad": pad,
        "lines": lines,
        "zero": round(mid, 1),
        "band_top": y(threshold),
        "band_height": round(y(-threshold) - y(threshold), 1),
        "top_y": y(span),
        "bottom_y": y(-span),
        "span": f"{span:.1f}",
        "threshold": threshold,
        "labels": [
            {"x": round(pad + i * slot + slot / 2, 1), "text": d.day.strftime("%m-%d")}
            for i, d in enumerate(o.days)
            if len(o.days) <= 31 or i % max(len(o.days) // 15, 1) == 0
        ],
    }


# --- runs ----------------------------------------------------------------------------------


def _history_read(request: Request, read: Callable[[], T]) -> T:
    try:
        return read()
    except StoreError as e:
        raise WebError(503, str(e)) from None


@router.get("/runs", include_in_schema=False)
def runs_page(
    request: Request,
    status: str | None = None,
    kind: str | None = None,
    before: int | None = None,
) -> Response:
    """Past runs, newest first, filtered by status and kind."""
    require(request)
    runs = _find_runs(request, status, kind, before)
    return page(
        request,
        "runs.html.j2",
        {
            "runs": runs,
            "status": status or "",
            "kind": kind or "",
            "statuses": [s.value for s in RunStatus],
            "kinds": _KINDS,
            "next_before": runs[-1].id if len(runs) == PAGE_SIZE else None,
        },
    )


def _find_runs(
    request: Request, status: str | None, kind: str | None, before: int | None
) -> list[Any]:
    if status and status not in {s.value for s in RunStatus}:
        raise WebError(400, f"status {status[:20]!r} is not a run status")
    if kind and kind not in _KINDS:
        raise WebError(400, f"kind {kind[:20]!r} is not one of {', '.join(_KINDS)}")
    if before is not None and not 0 < before < 1 << 62:
        raise WebError(400, "before must be a run id")
    return list(
        _history_read(
            request,
            lambda: (
                _ctx(request)
                .history()
                .find_runs(
                    status=status or None, kind=kind or None, before_id=before, limit=PAGE_SIZE
                )
            ),
        )
    )


@router.get("/api/v1/runs", tags=["dashboard"])
def runs_json(
    request: Request,
    status: str | None = None,
    kind: str | None = None,
    before: int | None = None,
) -> JSONResponse:
    """Past runs, newest first (``before``: the last id of the previous page)."""
    require(request)
    runs = _find_runs(request, status, kind, before)
    return JSONResponse(
        {
            "runs": [run_record_dict(r) for r in runs],
            "next_before": runs[-1].id if len(runs) == PAGE_SIZE else None,
        }
    )


def _one_run(request: Request, run_id: int) -> tuple[Any, list[Any]]:
    if not 0 < run_id < 1 << 62:
        raise WebError(404, f"there is no run {run_id}")
    store = _ctx(request).history()
    run = _history_read(request, lambda: store.get_run(run_id))
    if run is None:
        raise WebError(404, f"there is no run {run_id}")
    return run, _history_read(request, lambda: store.run_groups(run_id))


@router.get("/runs/{run_id}", include_in_schema=False)
def run_page(request: Request, run_id: int) -> Response:
    """One run in full."""
    require(request)
    run, groups = _one_run(request, run_id)
    stored = _history_read(request, lambda: _ctx(request).history().diagnoses_of([run_id]))
    return page(
        request,
        "run.html.j2",
        {"run": run, "groups": groups, "diagnosis": web_diagnosis.view(stored.get(run_id))},
    )


@router.get("/api/v1/runs/{run_id}", tags=["dashboard"])
def run_json(request: Request, run_id: int) -> JSONResponse:
    """One run in full, as ``recon-job history --run ID --format json``."""
    require(request)
    run, groups = _one_run(request, run_id)
    doc = run_detail_dict(run, groups)
    doc["breakdown"] = [
        {**b, "family": g.key.family} for b, g in zip(doc["breakdown"], groups, strict=True)
    ]
    return JSONResponse(doc)


def not_found(request: Request, message: str) -> Response:
    """A 404 in the form the client reads."""
    if wants_json(request):
        return JSONResponse({"error": message}, status_code=404)
    return error_page(request, 404, message)


# --- alerts and trends ---------------------------------------------------------------------


@router.get("/alerts", include_in_schema=False)
def alerts_page(request: Request) -> Response:
    """Notifications and their delivery state, newest first (what ``alerts list`` shows)."""
    require(request)
    records = _history_read(request, lambda: _ctx(request).history().list_notifications(100))
    return page(request, "alerts.html.j2", {"records": records})


#: Days the trends page looks back over.
TREND_DAYS = 90


@router.get("/trends", include_in_schema=False)
def trends_page(request: Request) -> Response:
    """Drift per model over the last 90 settled days, the models drifting most first."""
    require(request)
    make, key = _history_read(
        request, lambda: _keyed_overview(request, None, None, days=TREND_DAYS)
    )

    history = _ctx(request).history()

    def context() -> dict[str, Any]:
        o = make()
        runs = _result_runs(o)  # newest first: a later run's change point wins
        stored = history.diagnoses_of([r.id for r in runs])
        return {
            "o": o,
            "models": ov.by_model(o),
            "change_points": web_diagnosis.change_points(
                stored[r.id] for r in runs if r.id in stored
            ),
        }

    return _history_read(request, lambda: _cached_page(request, key, "trends.html.j2", context))


# --- reconcile a range that was never reconciled ------------------------------------------------

#: Seconds between two reconciliations started from the dashboard (each calls OpenAI).
RECONCILE_INTERVAL = 30.0
_RECONCILING = threading.Lock()


@router.post("/usage-api/reconcile", include_in_schema=False)
async def reconcile_range(request: Request) -> Response:
    """Reconcile a date range through the normal run path (period lock, history, alerts), one
    at a time and rate-limited, then show it."""
    form = parse_qs((await request.body())[:MAX_FORM_BYTES].decode("utf-8", "replace"))
    require_write(request, _first(form, CSRF_FIELD))
    ctx = _ctx(request)
    if ctx.settings is None:
        raise WebError(409, "this server has no settings to reconcile with")
    settled = windows.last_settled_day(ctx.clock(), timedelta(hours=ctx.settle_hours))
    try:
        start, end = ov.parse_range(
            _first(form, "start_date"), _first(form, "end_date"), default_end=settled
        )
    except ov.RangeError as e:
        raise WebError(400, str(e)) from None
    if end > settled:
        raise WebError(400, f"{end} is not settled yet; the last settled day is {settled}")
    await run_in_threadpool(_reconcile, request, start, end)
    return RedirectResponse(f"/usage-api?start_date={start}&end_date={end}", status_code=303)


def _reconcile(request: Request, start: date, end: date) -> None:
    from recon_job import runtime

    ctx = _ctx(request)
    state = request.app.state
    if not _RECONCILING.acquire(blocking=False):
        raise WebError(429, "a reconciliation is running; try again when it finished")
    try:
        last = getattr(state, "last_reconcile", None)
        now = time.monotonic()
        if last is not None and now - last < RECONCILE_INTERVAL:
            wait = int(RECONCILE_INTERVAL - (now - last)) + 1
            raise WebError(
                429,
                f"one reconciliation per {RECONCILE_INTERVAL:.0f} s; try again in {wait} s",
                retry_after=wait,
            )
        state.last_reconcile = now
        rt = runtime.Runtime(ctx.settings, clock=ctx.clock)
        plan = runtime.Plan(only=windows.date_range(start, end), trigger="dashboard", relay=False)
        try:
            runtime.run_tick(rt, plan, ctx.clock())
        except ConfigError as e:
            # Refused before anything was asked of OpenAI: the next try need not wait.
            state.last_reconcile = last
            raise WebError(503, f"the reconciliation failed: {e}") from None
        except ReconError as e:
            raise WebError(503, f"the reconciliation failed: {e}") from None
    finally:
        _RECONCILING.release()
