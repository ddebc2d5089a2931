"""Likely causes of a drift: short sentences derived from a result alone (pure).

Each rule looks at groups whose figure is out of tolerance (and at the totals, once every day is
settled), so a one-request wobble explains nothing. The sentences end up in every message part
(``likely_causes`` in the template context and in the webhook payload).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class _Scope:
    """What every rule looks at: the result, its settled groups, and whether totals count."""

    result: ReconResult
    #: Groups on settled days: an unsettled day explains nothing yet.
    settled: tuple[GroupResult, ...]
    #: The totals count once every day is settled (many small drifts can add up).
    totals_settled: bool


def _request_gaps(scope: _Scope) -> tuple[int, int]:
    """Requests OpenAI counted that the logs lack, and requests the logs have that it lacks."""
    drifting = [g.comparison.requests for g in scope.settled if g.comparison.requests.exceeds]
    missing = sum(-int(m.difference) for m in drifting if m.difference < 0)
    extra = sum(int(m.difference) for m in drifting if m.difference > 0)
    requests = scope.result.comparison.requests
    if not missing and not extra and scope.totals_settled and requests.exceeds:
        missing = max(0, -int(requests.difference))
        extra = max(0, int(requests.difference))
    return missing, extra


def _coverage(scope: _Scope) -> list[str]:
    missing, extra = _request_gaps(scope)
    causes = []
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
    return causes


def _prices(scope: _Scope) -> list[str]:
    repriced = sorted(
        {
            g.key.model
            for g in scope.settled
            if g.comparison.cost.exceeds
            and not g.comparison.tokens.exceeds
            and g.local.total_tokens
            and g.openai.total_tokens
        }
    )
    if not repriced:
        return []
    return [
        f"Tokens match but cost differs for {_names(repriced)} — the price table may be "
        "out of date, or a batch/flex/priority tier is priced at the standard rate."
    ]


def _one_sided_models(scope: _Scope) -> list[str]:
    causes = []
    for model, (local, openai) in sorted(_by_model(scope.settled).items()):
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
    return causes


def _unpriced(scope: _Scope) -> list[str]:
    if not scope.result.unpriced:
        return []
    models = sorted(scope.result.unpriced)
    return [
        f"No price for {_names(models)}: its cost is not counted on your side — add a "
        "price to your pricing file."
    ]


def _cached_tokens(scope: _Scope) -> list[str]:
    cached = scope.result.comparison.cached_tokens
    if not (
        (scope.totals_settled and cached.exceeds)
        or any(g.comparison.cached_tokens.exceeds for g in scope.settled)
    ):
        return []
    return [
        f"Cached input tokens differ ({_count(cached.local)} in your logs vs "
        f"{_count(cached.openai)} at OpenAI) — check that the logger records "
        "cached tokens and that they are priced at the cached rate."
    ]


def _skipped(scope: _Scope) -> list[str]:
    skipped = {r: n for r, n in scope.result.skipped.items() if not r.startswith("openai.") and n}
    if not skipped:
        return []
    total = sum(skipped.values())
    detail = ", ".join(f"{r} {n:,}" for r, n in sorted(skipped.items()))
    return [f"{total:,} log lines were skipped ({detail}) — their usage is missing from your side."]


def _pending(scope: _Scope) -> list[str]:
    if not scope.result.pending_days:
        return []
    days = ", ".join(d.isoformat() for d in scope.result.pending_days)
    return [f"Not settled yet: {days} — OpenAI's figures for these days may still change."]


#: The rules, in the order their sentences are listed.
RULES: tuple[Callable[[_Scope], list[str]], ...] = (
    _coverage,
    _prices,
    _one_sided_models,
    _unpriced,
    _cached_tokens,
    _skipped,
    _pending,
)


def likely_causes(result: ReconResult) -> list[str]:
    """Short sentences explaining a drift, derived from the data alone (pure).

    Users want the gap explained, not just measured (peers-and-user-complaints.md row 9 and
    (d)2: coverage gap, token-class gap, price gap, unpriced model, late data). Each rule in
    :data:`RULES` looks at groups whose figure is out of tolerance, so a one-request wobble
    explains nothing; the totals count as well, since many small drifts can add up.
    """
    scope = _Scope(
        result=result,
        settled=tuple(g for g in result.groups if g.status is not Status.PENDING),
        totals_settled=not result.pending_days,
    )
    return [cause for rule in RULES for cause in rule(scope)]


__all__ = ["RULES", "likely_causes"]
