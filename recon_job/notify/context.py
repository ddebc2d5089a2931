"""The template context and the webhook payload of a notification, built from one result.

The webhook payload (``Message.payload``) is built from the same data as the templates' context.
Its schema, ``recon-job.alert/v1``, only ever gains fields::

    {
      "schema": "recon-job.alert/v1",
      "event": "opened", "group_key": "daily:2026-03-14", "dedupe_key": "…", "run_id": 12,
      "summary": "<the subject line>",
      "window": {"kind", "key", "start", "end", "last_day"},
      "status": "mismatch", "threshold_pct": "5",
      "totals": {"local": {…}, "openai": {…}, "difference": {…}} | null,
      "groups": [{"date", "model", "project_id", "api_key_id", "status",
                  "local": {…}, "openai": {…}, "difference": {…}}, …],
      "groups_total": 3, "resolved": ["…"],
      "unpriced_models": [{"model", "requests", "input_tokens", "cached_tokens",
                           "output_tokens"}],
      "skipped": {"malformed_json": 3}, "pending_days": ["2026-03-14"],
      "likely_causes": ["…"], "error": {"reason", "message"} | null
    }

``local``/``openai``/``difference`` objects are those of ``recon-job run --format json``
(:mod:`recon_job.report.run`): token counts are integers, money is an exact decimal string.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from recon_job.causes import likely_causes
from recon_job.models import (
    AlertEvent,
    Comparison,
    GroupResult,
    Metric,
    ReconResult,
    Status,
    UsageKey,
    Window,
    group_order,
)
from recon_job.report import run as report
from recon_job.report.formats import money, pct_text, totals

#: The webhook payload's schema name and version.
PAYLOAD_SCHEMA: Final = "recon-job.alert/v1"

EVENT_TITLES: Final[Mapping[str, str]] = {
    "opened": "Usage drift detected",
    "updated": "More groups drifting",
    "repeat": "Still drifting",
    "resolved": "Drift resolved",
    "failed": "Reconciliation failed",
    "summary": "Reconciliation summary",
    "channel_failing": "A notification channel is failing",
    "test": "Test alert",
}


# --- formatting -------------------------------------------------------------------------


def _count(value: Decimal) -> str:
    return f"{int(value):,}"


def _signed_count(value: Decimal) -> str:
    return f"{int(value):+,}"


def _signed_money(value: Decimal) -> str:
    text = money(value)
    return text if text.startswith("-") else f"+{text}"


def _metric_row(label: str, metric: Metric, *, is_money: bool) -> dict[str, Any]:
    if is_money:
        local, openai = money(metric.local), money(metric.openai)
        difference = _signed_money(metric.difference)
    else:
        local, openai = _count(metric.local), _count(metric.openai)
        difference = _signed_count(metric.difference)
    return {
        "label": label,
        "local": local,
        "openai": openai,
        "difference": difference,
        "pct": pct_text(metric.pct),
        "exceeds": metric.exceeds,
    }


def _metric_rows(comparison: Comparison) -> dict[str, dict[str, Any]]:
    return {
        "tokens": _metric_row("Tokens", comparison.tokens, is_money=False),
        "requests": _metric_row("Requests", comparison.requests, is_money=False),
        "cost": _metric_row("Cost (USD)", comparison.cost, is_money=True),
    }


def group_name(key: UsageKey) -> str:
    """A group as people read it: ``2026-03-14 gpt-4o [proj_1] [key_1]``."""
    parts = [key.day.isoformat(), key.model]
    parts += [p for p in (key.project_id, key.api_key_id) if p]
    return " ".join(parts)


def top_groups(groups: Sequence[GroupResult]) -> list[GroupResult]:
    """``groups`` by largest |cost difference|, then largest |token difference|, then in group
    order (day, model, project, API key)."""
    return sorted(
        groups,
        key=lambda g: (
            -abs(g.comparison.cost.difference),
            -abs(g.comparison.tokens.difference),
            group_order(g.key),
        ),
    )


# --- context and payload ----------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    """What one notification is about: everything its context and payload are built from."""

    #: Why it is sent (``opened`` … ``test``).
    event: AlertEvent
    #: The alert group: the window's key (``daily:2026-03-14``).
    group_key: str
    #: Stable across retries and re-runs (see :attr:`recon_job.models.Message.dedupe_key`).
    dedupe_key: str
    window: Window
    #: The run's result; None when the run failed, and then ``error`` says why.
    result: ReconResult | None
    #: ``(reason, message)`` of a failed run.
    error: tuple[str, str] | None = None
    #: The groups to report as drifting; empty: the result's mismatches.
    firing: tuple[GroupResult, ...] = ()
    #: The names of the groups back within tolerance (:func:`group_name`).
    resolved: tuple[str, ...] = ()
    #: The run's row id in the history database, when there is one.
    run_id: int | None = None


def _window_context(window: Window) -> dict[str, str]:
    return {
        "kind": window.kind,
        "key": window.key,
        "start": window.start.isoformat(),
        "end": window.end.isoformat(),
        "first_day": window.start.isoformat(),
        "last_day": window.last_day.isoformat(),
    }


def _group_context(group: GroupResult) -> dict[str, Any]:
    key = group.key
    return {
        "name": group_name(key),
        "day": key.day.isoformat(),
        "model": key.model,
        "project_id": key.project_id,
        "api_key_id": key.api_key_id,
        "status": str(group.status),
        **_metric_rows(group.comparison),
    }


def _result_context(result: ReconResult | None) -> dict[str, Any]:
    """The parts of the context that only a result has (empty ones for a failed run)."""
    if result is None:
        return {
            "status": str(Status.FAILED),
            "threshold_pct": None,
            "totals": {},
            "unpriced": [],
            "skipped": [],
            "skipped_total": 0,
            "pending_days": [],
            "likely_causes": [],
        }
    skipped = dict(sorted(result.skipped.items()))
    return {
        "status": str(result.status),
        "threshold_pct": str(result.tolerance.threshold_pct),
        "totals": _metric_rows(result.comparison),
        "unpriced": [
            {"model": m, "requests": f"{u.requests:,}", "tokens": f"{u.total_tokens:,}"}
            for m, u in sorted(result.unpriced.items())
        ],
        "skipped": [{"reason": r, "count": f"{n:,}"} for r, n in skipped.items()],
        "skipped_total": sum(skipped.values()),
        "pending_days": [d.isoformat() for d in result.pending_days],
        "likely_causes": likely_causes(result),
    }


def _payload_data(notice: Notice, shown: Sequence[GroupResult]) -> dict[str, Any]:
    """The payload's figures, as ``recon-job run --format json`` writes them."""
    result = notice.result
    return {
        "window": report.window_dict(notice.window),
        "totals": None
        if result is None
        else {
            "local": totals(result.local),
            "openai": totals(result.openai),
            "difference": report.difference(result.comparison),
        },
        "groups": [report.group_dict(g) for g in shown],
        "unpriced_models": report.unpriced_list(result.unpriced) if result is not None else [],
        "skipped": dict(sorted(result.skipped.items())) if result is not None else {},
    }


def build_context(notice: Notice, *, max_groups: int = 10) -> dict[str, Any]:
    """The one context every template renders from; ``context["data"]`` feeds the payload.

    At most ``max_groups`` drifting groups are listed; ``groups_total`` counts them all.
    """
    result = notice.result
    drifting = top_groups(notice.firing or (result.mismatches if result is not None else ()))
    shown = drifting[: max(0, max_groups)]
    error = notice.error
    return {
        "event": notice.event,
        "event_title": EVENT_TITLES.get(notice.event, notice.event),
        "group_key": notice.group_key,
        "dedupe_key": notice.dedupe_key,
        "run_id": notice.run_id,
        "window": _window_context(notice.window),
        **_result_context(result),
        "groups": [_group_context(g) for g in shown],
        "groups_total": len(drifting),
        "groups_more": len(drifting) - len(shown),
        "resolved": list(notice.resolved),
        "error": {"reason": error[0], "message": error[1]} if error is not None else None,
        "data": _payload_data(notice, shown),
    }


def build_payload(context: Mapping[str, Any], *, summary: str) -> dict[str, Any]:
    """The generic webhook's JSON body (schema ``recon-job.alert/v1``) from a context."""
    data = context["data"]
    return {
        "schema": PAYLOAD_SCHEMA,
        "event": context["event"],
        "group_key": context["group_key"],
        "dedupe_key": context["dedupe_key"],
        "run_id": context["run_id"],
        "summary": summary,
        "window": data["window"],
        "status": context["status"],
        "threshold_pct": context["threshold_pct"],
        "totals": data["totals"],
        "groups": data["groups"],
        "groups_total": context["groups_total"],
        "resolved": list(context["resolved"]),
        "unpriced_models": data["unpriced_models"],
        "skipped": data["skipped"],
        "pending_days": list(context["pending_days"]),
        "likely_causes": list(context["likely_causes"]),
        "error": context["error"],
    }


__all__ = [
    "EVENT_TITLES",
    "PAYLOAD_SCHEMA",
    "Notice",
    "build_context",
    "build_payload",
    "group_name",
    "top_groups",
]
