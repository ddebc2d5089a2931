"""Per-request reconciliation's output: the JSON document and the text for a terminal.

Money is a decimal string with at least six decimals, never rounded, digits past the sixth
kept as the figures carry them (``1.5`` -> ``1.500000``, ``0.00123400`` stays).
"""

from __future__ import annotations

import heapq
import itertools
from decimal import Decimal
from typing import Any

from recon_job.models import ZERO
from recon_job.per_request.classify import RequestReconReport, RequestRow, RequestStatus
from recon_job.report import formats


def money(value: Decimal) -> str:
    """A decimal string with at least six decimals, never rounded (``1.5`` -> ``1.500000``)."""
    return formats.money(value, keep_zeros=True)


def _row(row: RequestRow) -> dict[str, Any]:
    def opt(value: Decimal | None) -> str | None:
        return None if value is None else money(value)

    return {
        "request_id": row.request_id,
        "status": row.status.value,
        "model": row.model,
        "estimated": opt(row.estimated),
        "actual": opt(row.actual),
        "difference": opt(row.difference),
        "reason": row.reason or None,
    }


def _top_discrepancies(report: RequestReconReport, limit: int) -> list[RequestRow]:
    # nlargest keeps ``limit`` rows, not every discrepancy (a bill may hold millions); it is
    # stable like the sort it replaces: equal differences stay in report order.
    rows = (r for r in report.rows if r.status is RequestStatus.DISCREPANCY)
    return heapq.nlargest(limit, rows, key=lambda r: abs(r.difference or ZERO))


def report_dict(report: RequestReconReport) -> dict[str, Any]:
    """The report as JSON-ready data: decimal strings, top 50 discrepancies, first 50 ids."""
    errors = [r for r in report.rows if r.status is RequestStatus.ERROR]
    reasons: dict[str, int] = {}
    for row in errors:
        reasons[row.reason] = reasons.get(row.reason, 0) + 1
    return {
        "billing_file": report.billing_file,
        "source": report.source,
        "applied": report.applied,
        "written": report.written,
        "counts": dict(report.counts),
        "totals": {
            "estimated": money(report.estimated_total),
            "actual": money(report.actual_total),
            "difference": money(report.difference),
            "billed": money(report.billed_total),
            "not_found": money(report.not_found_total),
            "pending_estimated": money(report.pending_total),
        },
        "tolerance": {"pct": str(report.pct), "floor_usd": str(report.floor)},
        "span": None
        if report.span is None
        else {"first_day": report.span[0].isoformat(), "last_day": report.span[1].isoformat()},
        "outside_span": report.outside_span,
        "skipped": dict(report.skipped),
        "discrepancies": [_row(r) for r in _top_discrepancies(report, 50)],
        "not_found": list(
            itertools.islice(
                (r.request_id for r in report.rows if r.status is RequestStatus.NOT_FOUND), 50
            )
        ),
        "errors": {
            "count": len(errors),
            "by_reason": dict(sorted(reasons.items())),
            "duplicate_request_ids": list(report.duplicate_ids),
            "requests": [_row(r) for r in errors[:50]],
        },
        "notes": list(report.notes),
    }


def render_text(report: RequestReconReport) -> str:
    """A readable summary for a terminal."""
    c = report.counts
    pct = f" ({report.difference * 100 / report.actual_total:+.2f}%)" if report.actual_total else ""
    lines = [
        f"Per-request reconciliation of {report.billing_file} against source {report.source!r}",
        f"  matched        {c['matched']:>9,}",
        f"  discrepancies  {c['discrepancy']:>9,}",
        f"  not found      {c['not_found']:>9,}",
        f"  pending        {c['pending']:>9,}",
        f"  errors         {c['error']:>9,}",
        f"Estimated ${money(report.estimated_total)} vs actual ${money(report.actual_total)} "
        f"over {c['matched'] + c['discrepancy']:,} compared requests: "
        f"difference ${money(report.difference)}{pct}",
        f"Billed in total ${money(report.billed_total)}; ${money(report.not_found_total)} of it "
        "was not found locally.",
    ]
    if report.span is not None:
        lines.append(
            f"Billing span {report.span[0]}..{report.span[1]} (UTC); "
            f"{report.outside_span:,} unbilled local records outside it were left out."
        )
    if report.duplicates:
        more = ", …" if report.duplicates > len(report.duplicate_ids) else ""
        lines.append(
            f"Request ids logged more than once locally ({report.duplicates:,}): "
            f"{', '.join(report.duplicate_ids)}{more}"
        )
    unpriced = sum(1 for r in report.rows if r.reason == "unpriced")
    if unpriced:
        lines.append(f"{unpriced:,} billed requests have no price for their local record.")
    top = _top_discrepancies(report, 10)
    if top:
        lines.append("Largest discrepancies:")
        lines.extend(
            f"  {r.request_id}  {r.model or '?'}  estimated ${money(r.estimated or ZERO)}  "
            f"actual ${money(r.actual or ZERO)}  difference ${money(r.difference or ZERO)}"
            for r in top
        )
    lines.extend(f"Note: {note}" for note in report.notes)
    if report.applied:
        lines.append(f"Applied: {report.written:,} rows updated.")
    elif report.writable:
        lines.append("dry run: nothing written — use --apply")
    else:
        lines.append("dry run: nothing written (NDJSON logs are read-only)")
    return "\n".join(lines) + "\n"
