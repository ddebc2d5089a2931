"""Likely causes of a drift: short sentences derived from a result alone (pure).

Each rule looks at groups whose figure is out of tolerance (and at the totals, once every day is
settled), so a one-request wobble explains nothing. The sentences end up in every message part
(``likely_causes`` in the template context and in the webhook payload).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from recon_job.models import GroupResult, ReconResult, Status, Usage


def _count(value: Decimal) -> str:
    return f"{int(value):,}"


def _names(models: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(models[:limit])
    return shown if len(models) <= limit else f"{shown} and {len(models) - limit} more"


def _by_model(groups: Sequence[GroupResult]) -> dict[str, tuple[Usage, Usage]]:
    out: dict[str, tuple[Usage, Usage]] = {}
    for g in groups:
        local, openai = out.get(g.key.model, (Usage(), Usage()))
        out[g.key.model] = (local + g.local, openai + g.openai)
    return out


def likely_causes(result: ReconResult) -> list[str]:
    """Short sentences explaining a drift, derived from the data alone (pure).

    Users want the gap explained, not just measured (peers-and-user-complaints.md row 9 and
    (d)2: coverage gap, token-class gap, price gap, unpriced model, late data). Each rule looks
    at groups whose figure is out of tolerance, so a one-request wobble explains nothing; the
    totals count as well, since many small drifts can add up.
    """
    causes: list[str] = []
    settled = [g for g in result.groups if g.status is not Status.PENDING]
    c = result.comparison

    missing = sum(
        -int(g.comparison.requests.difference)
        for g in settled
        if g.comparison.requests.exceeds and g.comparison.requests.difference < 0
    )
    extra = sum(
        int(g.comparison.requests.difference)
        for g in settled
        if g.comparison.requests.exceeds and g.comparison.requests.difference > 0
    )
    # The totals catch many small drifts adding up, but they include unsettled days.
    totals_settled = not result.pending_days
    if not missing and not extra and totals_settled and c.requests.exceeds:
        missing = max(0, -int(c.requests.difference))
        extra = max(0, int(c.requests.difference))
    if missing:
        causes.append(
            f"{missing:,} requests OpenAI counted are not in your logs — retries, timeouts "
            "or traffic that bypasses the logger."
        )
    if extra:
        causes.append(
            f"{extra:,} more requests in your logs than OpenAI counted — duplicated log "
            "lines, requests that never reached OpenAI, or logs from outside the window."
        )

    repriced = sorted(
        {
            g.key.model
            for g in settled
            if g.comparison.cost.exceeds
            and not g.comparison.tokens.exceeds
            and g.local.total_tokens
            and g.openai.total_tokens
        }
    )
    if repriced:
        causes.append(
            f"Tokens match but cost differs for {_names(repriced)} — the price table may be "
            "out of date, or a batch/flex/priority tier is priced at the standard rate."
        )

    for model, (local, openai) in sorted(_by_model(settled).items()):
        local_seen = local.requests or local.total_tokens
        openai_seen = openai.requests or openai.total_tokens
        if openai_seen and not local_seen:
            causes.append(
                f"Model {model} appears only at OpenAI (unlogged traffic, a new model, or a "
                "name the alias map does not cover)."
            )
        elif local_seen and not openai_seen:
            causes.append(
                f"Model {model} appears only in your logs (a name the alias map does not "
                "cover, another organization or project, or traffic OpenAI never billed)."
            )

    if result.unpriced:
        models = sorted(result.unpriced)
        causes.append(
            f"No price for {_names(models)}: its cost is not counted on your side — add a "
            "price to your pricing file."
        )

    if (totals_settled and c.cached_tokens.exceeds) or any(
        g.comparison.cached_tokens.exceeds for g in settled
    ):
        causes.append(
            f"Cached input tokens differ ({_count(c.cached_tokens.local)} in your logs vs "
            f"{_count(c.cached_tokens.openai)} at OpenAI) — check that the logger records "
            "cached tokens and that they are priced at the cached rate."
        )

    skipped = {r: n for r, n in result.skipped.items() if not r.startswith("openai.") and n}
    if skipped:
        total = sum(skipped.values())
        detail = ", ".join(f"{r} {n:,}" for r, n in sorted(skipped.items()))
        causes.append(
            f"{total:,} log lines were skipped ({detail}) — their usage is missing from your side."
        )

    if result.pending_days:
        days = ", ".join(d.isoformat() for d in result.pending_days)
        causes.append(
            f"Not settled yet: {days} — OpenAI's figures for these days may still change."
        )
    return causes


__all__ = ["likely_causes"]
