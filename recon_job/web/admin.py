"""The admin API: per-request reconciliation of an uploaded billing CSV, seed-compatible.

``POST /api/admin/reconcile-openai-costs`` with ``{"csvContent": "...", "dryRun": true}`` runs
the same per-request reconciliation as ``recon-job reconcile-requests``
(:func:`recon_job.per_request.reconcile_requests`): a dry run writes nothing; ``dryRun: false``
writes back to the configured SQL source and is refused with 409 when that source cannot be
written. Bodies over ``[web] max_upload_mb`` are 413; a CSV that is not a billing export is 422
naming what is wrong. ``GET`` returns the summary and the discrepancies, largest first, a page
at a time: read from the SQL source's written-back status when the source is a table with the
write-back columns (``source: "table"``, :mod:`recon_job.web.admin_table`), else from the last
reconciliation this process ran (``source: "last_upload"``).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from decimal import Decimal
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recon_job.errors import ConfigError, LogSourceError, ReconError
from recon_job.models import MONEY
from recon_job.per_request import RequestReconReport, RequestStatus
from recon_job.web.auth import WebError
from recon_job.web.guard import require, require_write

router = APIRouter(prefix="/api/admin", tags=["admin"])

PATH: Final = "/reconcile-openai-costs"
_HUNDRED = Decimal(100)
#: One reconciliation at a time per process: a write-back must never interleave with another.
_RUNNING = threading.Lock()


class ReconcileBody(BaseModel):
    """The seed's request body."""

    model_config = ConfigDict(extra="forbid")

    csvContent: str = Field(description="The billing CSV export, as text.")
    dryRun: bool = Field(True, description="True: report only; false: write back.")


class ReconcileResult(BaseModel):
    """How the billed requests classified."""

    matched: int
    discrepancies: int
    notFound: int
    errors: list[str]


class Summary(BaseModel):
    """Counts and totals in cents (decimal strings, exact)."""

    total: int
    pending: int
    matched: int
    discrepancies: int
    totalEstimatedCents: str
    totalActualCents: str
    totalDifferenceCents: str
    #: Every billed row, found locally or not (None: not known, a table's written-back rows).
    totalBilledCents: str | None = None
    #: The billed rows no logged request matches: billed, never seen by your side.
    notFoundCents: str | None = None


class ReconcileAnswer(BaseModel):
    """The seed's answer to a POST."""

    message: str
    result: ReconcileResult
    summary: Summary
    success: bool


class Discrepancy(BaseModel):
    """One request whose estimate and bill differ."""

    #: The table's primary key (``source: "table"``), or the position in the last upload.
    id: int | str
    action_type: str | None
    model_used: str | None
    calculated_cost_cents: str | None
    actual_cost_cents: str | None
    openai_request_id: str
    created_at: str | None


class SummaryAnswer(BaseModel):
    """The seed's answer to a GET."""

    summary: Summary | None
    discrepancies: list[Discrepancy]
    pendingCount: int
    nextCursor: str | None
    #: ``table``: read from the SQL source's write-back; ``last_upload``: this process's last
    #: POST (no writable SQL source is configured).
    source: str
    success: bool


class ErrorAnswer(BaseModel):
    """Every error: what is wrong."""

    error: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorAnswer} for code in (400, 401, 403, 404, 409, 413, 422, 429, 503)
}


def _cents(value: Decimal | None) -> str | None:
    return None if value is None else format(MONEY.multiply(value, _HUNDRED).normalize(MONEY), "f")


def summary_of(report: RequestReconReport) -> Summary:
    """The seed's summary of a report."""
    c = report.counts
    return Summary(
        total=sum(c.values()),
        pending=c["pending"],
        matched=c["matched"],
        discrepancies=c["discrepancy"],
        totalEstimatedCents=_cents(report.estimated_total) or "0",
        totalActualCents=_cents(report.actual_total) or "0",
        totalDifferenceCents=_cents(report.difference) or "0",
        totalBilledCents=_cents(report.billed_total) or "0",
        notFoundCents=_cents(report.not_found_total) or "0",
    )


def _is_count(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` is also true of "²", which ``int()`` refuses."""
    return text.isascii() and text.isdigit()


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and _is_count(declared) and int(declared) > limit:
        raise WebError(413, f"the body is over {limit >> 20} MiB ([web] max_upload_mb)")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise WebError(413, f"the body is over {limit >> 20} MiB ([web] max_upload_mb)")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(body: bytes) -> ReconcileBody:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: arrays nested a hundred thousand deep.
        raise WebError(
            422, 'the body is not JSON; send {"csvContent": "...", "dryRun": true}'
        ) from None
    try:
        parsed = ReconcileBody.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in e.errors()
        )
        raise WebError(422, f"the body is not {{csvContent, dryRun}}: {problems}") from None
    try:
        parsed.csvContent.encode("utf-8")
    except UnicodeEncodeError as e:
        # JSON may escape half of a surrogate pair (\ud800), which is no character at all.
        raise WebError(
            422, f"csvContent is not text: {e.object[e.start : e.end]!a} at character {e.start}"
        ) from None
    return parsed


_BODY_SCHEMA: Final = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": ReconcileBody.model_json_schema()}},
    }
}


@router.post(PATH, response_model=ReconcileAnswer, responses=_ERRORS, openapi_extra=_BODY_SCHEMA)
async def reconcile_costs(request: Request) -> JSONResponse:
    """Reconcile each billed request of the CSV against the logged request."""
    ctx = request.app.state.ctx
    require_write(request)
    body = await _body(request, ctx.max_upload_bytes)
    parsed = _parse(body)
    from starlette.concurrency import run_in_threadpool

    report = await run_in_threadpool(_run, ctx, parsed)
    request.app.state.last_report = report
    errors = [f"{r.request_id}: {r.reason}" for r in report.rows if r.status is RequestStatus.ERROR]
    answer = ReconcileAnswer(
        message="Reconciliation complete",
        result=ReconcileResult(
            matched=report.counts["matched"],
            discrepancies=report.counts["discrepancy"],
            notFound=report.counts["not_found"],
            errors=errors[:100],
        ),
        summary=summary_of(report),
        success=True,
    )
    return JSONResponse(answer.model_dump())


def _run(ctx: Any, body: ReconcileBody) -> RequestReconReport:
    from recon_job import wiring
    from recon_job.per_request import reconcile_requests

    if ctx.settings is None:
        raise WebError(409, "no request source is configured ([[sources]] or [logs])")
    if not _RUNNING.acquire(blocking=False):
        raise WebError(409, "another reconciliation is running; try again when it finished")
    fd, path = tempfile.mkstemp(prefix="recon-billing-", suffix=".csv")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(body.csvContent)
        source = wiring.request_source(ctx.settings, None)
        if not body.dryRun and source.table is None:
            raise WebError(
                409,
                f"dryRun false needs a database source to write back to; {source.name!r} is "
                "NDJSON logs, which are never modified",
            )
        return reconcile_requests(source, path, apply=not body.dryRun)
    except LogSourceError as e:
        if e.reason.startswith("billing"):
            raise WebError(422, str(e).replace(path, "csvContent")) from None
        raise WebError(503, str(e).replace(path, "csvContent")) from None
    except ConfigError as e:
        raise WebError(409, str(e)) from None
    except ReconError as e:
        raise WebError(503, str(e)) from None
    finally:
        _RUNNING.release()
        os.unlink(path)


@router.get(PATH, response_model=SummaryAnswer, responses=_ERRORS)
def reconcile_summary(
    request: Request, limit: int = 100, cursor: str | None = None
) -> JSONResponse:
    """The discrepancies, largest first: from the SQL source's write-back when there is one,
    else from this process's last upload."""
    require(request)
    if not 1 <= limit <= _MAX_LIMIT:
        raise WebError(400, f"limit must be between 1 and {_MAX_LIMIT}")
    spec = _writable_table(request.app.state.ctx)
    if spec is not None:
        from recon_job.web import admin_table

        answer = admin_table.page(spec, limit, cursor)
        if answer is not None:
            return JSONResponse(answer)
    return _last_upload(request, limit, cursor)


_MAX_LIMIT: Final = 500


def _writable_table(ctx: Any) -> Any:
    """The configured SQL source's table spec, or None (no source, or NDJSON logs)."""
    from recon_job import wiring

    if ctx.settings is None:
        return None
    try:
        source = wiring.request_source(ctx.settings, None)
    except ConfigError:
        return None
    return None if source.table is None else (source.name, source.table)


def _last_upload(request: Request, limit: int, cursor: str | None) -> JSONResponse:
    start = 0
    if cursor is not None:
        if not _is_count(cursor) or len(cursor) > 9:
            raise WebError(400, "cursor must be the nextCursor of the previous page")
        start = int(cursor)
    report: RequestReconReport | None = getattr(request.app.state, "last_report", None)
    if report is None:
        empty = SummaryAnswer(
            summary=None,
            discrepancies=[],
            pendingCount=0,
            nextCursor=None,
            source="last_upload",
            success=True,
        )
        return JSONResponse(empty.model_dump())
    rows = [r for r in report.rows if r.status is RequestStatus.DISCREPANCY]
    rows.sort(key=lambda r: abs(r.difference or Decimal(0)), reverse=True)
    page = rows[start : start + limit]
    answer = SummaryAnswer(
        summary=summary_of(report),
        discrepancies=[
            Discrepancy(
                id=start + n + 1,
                action_type=None,
                model_used=r.model,
                calculated_cost_cents=_cents(r.estimated),
                actual_cost_cents=_cents(r.actual),
                openai_request_id=r.request_id,
                created_at=None,
            )
            for n, r in enumerate(page)
        ],
        pendingCount=report.counts["pending"],
        nextCursor=str(start + limit) if start + limit < len(rows) else None,
        source="last_upload",
        success=True,
    )
    return JSONResponse(answer.model_dump())
