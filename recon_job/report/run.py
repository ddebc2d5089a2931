"""The run's output: the JSON document of ``--format json`` and the human-readable text.

Money is a decimal string, exact, with at least 6 decimals (``"0.003400"``); percentages are
decimal strings with 6 decimals, or null when OpenAI's figure is zero (no division by zero).
Both are written by :mod:`recon_job.report.formats` . The JSON schema is documented in the README and stable: fields are only ever added.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from recon_job.models import Comparison, GroupResult, ReconResult, RunOutcome, Status, Usage, Window
from recon_job.report.formats import money, pct, pct_text, totals

SCHEMA_VERSION = 1


def difference(c: Comparison) -> dict[str, Any]:
    """The difference object: local - OpenAI per quantity, with percentages."""
    out: dict[str, Any] = {}
    for name in ("input_tokens", "cached_tokens", "output_tokens", "tokens", "requests"):
        metric = getattr(c, name)
        out[name] = int(metric.difference)
        out[f"{name}_pct"] = pct(metric.pct)
    out["cost"] = money(c.cost.difference)
    out["cost_pct"] = pct(c.cost.pct)
    out["exceeds"] = sorted(n for n in ("tokens", "requests", "cost") if getattr(c, n).exceeds)
    return out


def window_dict(window: Window) -> dict[str, Any]:
    """The window: kind, key, first day, exclusive end, last day."""
    return {
        "kind": window.kind,
        "key": window.key,
        "start": window.start.isoformat(),
        "end": window.end.isoformat(),
        "last_day": window.last_day.isoformat(),
    }


def group_dict(group: GroupResult) -> dict[str, Any]:
    """One breakdown row."""
    return {
        "date": group.key.day.isoformat(),
        "model": group.key.model,
        "project_id": group.key.project_id,
        "api_key_id": group.key.api_key_id,
        "status": str(group.status),
        "local": totals(group.local),
        "openai": totals(group.openai),
        "difference": difference(group.comparison),
    }


def unpriced_list(unpriced: Mapping[str, Usage]) -> list[dict[str, Any]]:
    """Models whose local usage has no price, with that usage."""
    return [
        {
            "model": model,
            "requests": usage.requests,
            "input_tokens": usage.input_tokens,
            "cached_tokens": usage.cached_tokens,
            "output_tokens": usage.output_tokens,
        }
        for model, usage in sorted(unpriced.items())
    ]


def _share(part: Decimal | int, whole: Decimal | int) -> str | None:
    return None if not whole else pct(Decimal(part) * 100 / Decimal(whole))


def sources_list(result: ReconResult) -> list[dict[str, Any]]:
    """Each named local source's totals and its share of the local total (several only)."""
    total = result.local
    return [
        {
            "name": name,
            **totals(usage),
            "share_tokens_pct": _share(usage.total_tokens, total.total_tokens),
            "share_requests_pct": _share(usage.requests, total.requests),
            "share_cost_pct": _share(usage.cost, total.cost),
        }
        for name, usage in result.local_sources.items()
    ]


def result_dict(result: ReconResult) -> dict[str, Any]:
    """Everything about a comparison, JSON-ready."""
    return {
        "status": str(result.status),
        "reconciled": result.reconciled,
        "threshold_pct": str(result.tolerance.threshold_pct),
        "floors": {
            "cost": money(result.tolerance.cost_floor),
            "tokens": result.tolerance.token_floor,
            "requests": result.tolerance.request_floor,
        },
        "local": totals(result.local),
        "openai": totals(result.openai),
        "difference": difference(result.comparison),
        "mismatches": len(result.mismatches),
        "pending_days": [d.isoformat() for d in result.pending_days],
        "breakdown": [group_dict(g) for g in result.groups],
        "unpriced_models": unpriced_list(result.unpriced),
        "skipped": dict(sorted(result.skipped.items())),
        "info": dict(sorted(result.info.items())),
        "sources": sources_list(result),
    }


def outcome_dict(outcome: RunOutcome) -> dict[str, Any]:
    """The ``--format json`` document of one run."""
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run_id": outcome.run_id,
        "window": window_dict(outcome.window),
        "started_at": outcome.started_at.isoformat(),
        "finished_at": outcome.finished_at.isoformat(),
    }
    if outcome.result is not None:
        doc.update(result_dict(outcome.result))
        doc["error"] = None
    else:
        doc.update({"status": str(Status.FAILED), "reconciled": False})
        error = outcome.error
        doc["error"] = (
            None
            if error is None
            else {"reason": error.reason, "message": str(error), "permanent": error.permanent}
        )
    doc["alerts"] = [dict(a) for a in outcome.alerts]
    return doc


def render_text(outcome: RunOutcome, *, max_rows: int = 40) -> str:
    """A short, readable report: status, totals side by side, then the drifting groups."""
    lines = [f"run {outcome.run_id} · {outcome.window.key} · status: {outcome.status}"]
    result = outcome.result
    if result is None:
        error = outcome.error
        lines.append(f"failed: {error}" if error is not None else "failed")
        lines.extend(_alert_lines(outcome))
        return "\n".join(lines) + "\n"
    c = result.comparison
    lines.append(f"threshold {result.tolerance.threshold_pct}% (difference = local - OpenAI)")
    lines.append(f"{'':10}{'local':>18}{'OpenAI':>18}{'difference':>18}{'%':>10}")
    counts = ("tokens", "input_tokens", "cached_tokens", "output_tokens", "requests")
    labels = ("tokens", "input", "cached", "output", "requests")
    for label, name in zip(labels, counts, strict=True):
        m = getattr(c, name)
        local, openai, diff = f"{int(m.local):,}", f"{int(m.openai):,}", f"{int(m.difference):+,}"
        lines.append(f"{label:10}{local:>18}{openai:>18}{diff:>18}{pct_text(m.pct):>10}")
    m = c.cost
    lines.append(
        f"{'cost USD':10}{money(m.local):>18}{money(m.openai):>18}{money(m.difference):>18}"
        f"{pct_text(m.pct):>10}"
    )
    for source in sources_list(result):
        lines.append(
            f"  source {source['name']}: {source['tokens']:,} tokens "
            f"({source['share_tokens_pct'] or '0'}%), {source['requests']:,} requests, "
            f"cost {source['cost']} ({source['share_cost_pct'] or '0'}%)"
        )
    if result.pending_days:
        days = ", ".join(d.isoformat() for d in result.pending_days)
        lines.append(f"pending (not settled yet): {days}")
    drifting = result.mismatches
    if drifting:
        lines.append(f"{len(drifting)} group(s) out of tolerance:")
        for g in drifting[:max_rows]:
            project = f" {g.key.project_id}" if g.key.project_id else ""
            gc = g.comparison
            lines.append(
                f"  {g.key.day} {g.key.model}{project}: tokens {int(gc.tokens.local):,} vs "
                f"{int(gc.tokens.openai):,} ({pct_text(gc.tokens.pct)}), requests "
                f"{int(gc.requests.local):,} vs {int(gc.requests.openai):,}, cost "
                f"{money(gc.cost.local)} vs {money(gc.cost.openai)} ({pct_text(gc.cost.pct)})"
            )
        if len(drifting) > max_rows:
            lines.append(f"  ... and {len(drifting) - max_rows} more (use --format json)")
    for model, usage in sorted(result.unpriced.items()):
        lines.append(
            f"unpriced: {model} ({usage.requests:,} requests, {usage.total_tokens:,} tokens) has "
            "no price and no logged cost; its cost is NOT included. Add it to your pricing file."
        )
    if result.skipped:
        parts = ", ".join(f"{r} {n:,}" for r, n in sorted(result.skipped.items()))
        lines.append(f"skipped log records: {parts}")
    lines.extend(_alert_lines(outcome))
    return "\n".join(lines) + "\n"


def _alert_lines(outcome: RunOutcome) -> list[str]:
    return [
        f"alert: {a['event']} via {a['channel']}: {a['status']}"
        + (" (from an earlier run)" if a.get("earlier") else "")
        for a in outcome.alerts
    ]
