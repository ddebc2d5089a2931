"""Past runs as ``recon-job history`` shows them: one JSON object or one line per run."""

from __future__ import annotations

from typing import Any

from recon_job.report.formats import money, pct, pct_text, totals
from recon_job.report.run import unpriced_list, window_dict
from recon_job.store import RunRecord


def run_record_dict(run: RunRecord) -> dict[str, Any]:
    """One past run, as ``recon-job history --format json`` lists it."""
    diff = run.difference
    return {
        "run_id": run.id,
        "window": window_dict(run.window),
        "status": str(run.status),
        "trigger": run.trigger,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "threshold_pct": None if run.threshold_pct is None else str(run.threshold_pct),
        "local": None if run.local is None else totals(run.local),
        "openai": None if run.openai is None else totals(run.openai),
        "difference": None
        if diff is None
        else {
            "tokens": diff.tokens,
            "tokens_pct": pct(diff.tokens_pct),
            "requests": diff.requests,
            "requests_pct": pct(diff.requests_pct),
            "cost": money(diff.cost),
            "cost_pct": pct(diff.cost_pct),
        },
        "groups": run.group_count,
        "mismatches": run.mismatch_count,
        "pending_days": [d.isoformat() for d in run.pending_days],
        "unpriced_models": unpriced_list(run.unpriced),
        "skipped": dict(sorted(run.skipped.items())),
        "error": None
        if run.error_reason is None
        else {"reason": run.error_reason, "message": run.error_message},
        "tool_version": run.tool_version,
    }


def run_summary(run: RunRecord) -> str:
    """A one-line description of a past run for ``recon-job history``."""
    if run.error_reason is not None:
        return f"{run.error_reason}: {run.error_message or ''}".strip()
    diff = run.difference
    if diff is None:
        return "not finished" if run.finished_at is None else ""
    text = (
        f"tokens {pct_text(diff.tokens_pct)}, requests {pct_text(diff.requests_pct)}, "
        f"cost {money(diff.cost)} ({pct_text(diff.cost_pct)})"
    )
    if run.mismatch_count:
        text += f", {run.mismatch_count} group(s) out of tolerance"
    if run.unpriced:
        text += f", unpriced: {', '.join(sorted(run.unpriced))}"
    return text
