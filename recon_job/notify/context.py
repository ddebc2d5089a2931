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
from decimal import Decimal
from typing import Any, Final

from recon_job.causes import likely_causes
from recon_job.models import AlertEvent, GroupResult, Metric, ReconResult, Status, UsageKey, Window
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


def _metric_rows(comparison: Any) -> dict[str, dict[str, Any]]:
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
    """``groups`` by largest |cost difference|, then largest |token difference|, then by key."""
    return sorted(
        groups,
        key=lambda g: (
            -abs(g.comparison.cost.difference),
            -abs(g.comparison.tokens.difference),
            g.key.day,
            g.key.model,
            g.key.project_id or "",
            g.key.api_key_id or "",
        ),
    )


# --- context and payload ----------------------------------------------------------------


def build_context(
    *,
    event: AlertEvent,
    group_key: str,
    dedupe_key: str,
    window: Window,
    result: ReconResult | None,
    error: tuple[str, str] | None = None,
    firing: Sequence[GroupResult] = (),
    resolved: Sequence[str] = (),
    run_id: int | None = None,
    max_groups: int = 10,
) -> dict[str, Any]:
    """The one context every template renders from; ``context["data"]`` feeds the payload."""
    drifting = top_groups(firing if firing else (result.mismatches if result else ()))
    shown = drifting[: max(0, max_groups)]
    window_ctx = {
        "kind": window.kind,
        "key": window.key,
        "start": window.start.isoformat(),
        "end": window.end.isoformat(),
        "first_day": window.start.isoformat(),
        "last_day": window.last_day.isoformat(),
    }
    status = str(result.status) if result is not None else str(Status.FAILED)
    skipped = dict(sorted(result.skipped.items())) if result is not None else {}
    context: dict[str, Any] = {
        "event": event,
        "event_title": EVENT_TITLES.get(event, event),
        "group_key": group_key,
        "dedupe_key": dedupe_key,
        "run_id": run_id,
        "window": window_ctx,
        "status": status,
        "threshold_pct": str(result.tolerance.threshold_pct) if result is not None else None,
        "totals": _metric_rows(result.comparison) if result is not None else {},
        "groups": [
            {
                "name": group_name(g.key),
                "day": g.key.day.isoformat(),
                "model": g.key.model,
                "project_id": g.key.project_id,
                "api_key_id": g.key.api_key_id,
                "status": str(g.status),
                **_metric_rows(g.comparison),
            }
            for g in shown
        ],
        "groups_total": len(drifting),
        "groups_more": len(drifting) - len(shown),
        "resolved": list(resolved),
        "unpriced": [
            {"model": m, "requests": f"{u.requests:,}", "tokens": f"{u.total_tokens:,}"}
            for m, u in sorted(result.unpriced.items())
        ]
        if result is not None
        else [],
        "skipped": [{"reason": r, "count": f"{n:,}"} for r, n in skipped.items()],
        "skipped_total": sum(skipped.values()),
        "pending_days": [d.isoformat() for d in result.pending_days] if result else [],
        "likely_causes": likely_causes(result) if result is not None else [],
        "error": {"reason": error[0], "message": error[1]} if error is not None else None,
    }
    context["data"] = {
        "window": report.window_dict(window),
        "totals": None
        if result is None
        else {
            "local": totals(result.local),
            "openai": totals(result.openai),
            "difference": report.difference(result.comparison),
        },
        "groups": [report.group_dict(g) for g in shown],
        "unpriced_models": report.unpriced_list(result.unpriced) if result is not None else [],
        "skipped": skipped,
    }
    return context


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
    "build_context",
    "build_payload",
    "group_name",
    "top_groups",
]
