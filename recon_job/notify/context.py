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
      "groups": [{"date", "family", "model", "project_id", "api_key_id", "status",
                  "local": {…}, "openai": {…}, "difference": {…}}, …],
      "untracked": [{"family", "cost", <the family's quantities>}],
      "unavailable_families": ["web_search_calls"],
      "groups_total": 3, "resolved": ["…"],
      "unpriced_models": [{"model", "service_tier", "requests", "input_tokens",
                           "cached_tokens", "output_tokens"}],
      "skipped": {"malformed_json": 3}, "pending_days": ["2026-03-14"],
      "likely_causes": ["…"], "error": {"reason", "message"} | null,
      "omitted": {"groups": 4991, "likely_causes": 0, "resolved": 0, "unpriced_models": 0},
      "full_detail": false,
      "diagnosis": {"summary": ["…"],
                    "bridge": {"difference", "parts": [{"name", "amount", "detail"}],
                               "parts_total": 5} | null,
                    "omitted": {"summary": 2, "bridge_parts": 2}} | null
    }

``local``/``openai``/``difference`` objects are those of ``recon-job run --format json``
(:mod:`recon_job.report.run`): token counts are integers, money is an exact decimal string.

``diagnosis`` (issue 12; null when the run found nothing to say) holds the first sentences of
:attr:`recon_job.findings.Diagnosis.summary` and the largest parts (by |amount|) of the window's
cost bridge (:attr:`recon_job.findings.Diagnosis.bridge`; local - OpenAI, USD, exact decimal
strings); its ``omitted`` counts the sentences and parts left out.

The lists are bounded (:mod:`recon_job.notify.detail`): ``groups`` holds the top drifting groups
(largest |cost difference| first), ``likely_causes``, ``resolved`` and ``unpriced_models`` their
first entries, and ``omitted`` counts what each left out. The stored payload also keeps the
complete lists under ``detail``; the webhook sends them instead only with
``[webhook] full_detail = true`` (then ``full_detail`` is true and ``omitted`` all zeros).

The template context writes figures for people (:mod:`recon_job.notify.figures`: ``$1,234.56``,
``1,529``, ``+5.00%``), the payload keeps them exact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from recon_job.causes import likely_causes
from recon_job.families import COMPLETIONS, OTHER, family_rank
from recon_job.findings import Bridge, BridgePart, Diagnosis
from recon_job.models import (
    AlertEvent,
    GroupResult,
    ReconResult,
    Status,
    UsageKey,
    Window,
    group_order,
    unpriced_order,
)
from recon_job.notify import figures
from recon_job.notify.detail import DETAIL, LIMITS, Limits, cut
from recon_job.notify.figures import metric_rows
from recon_job.report import run as report
from recon_job.report.formats import count_text, money, side

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
    "price_changed": "OpenAI bills another price",
    "restated": "OpenAI revised a settled day",
    "shadow_usage": "Usage your logs never mention",
    "trend": "Drift trend changed",
}

#: The parts of a cost bridge (:data:`recon_job.diagnosis.bridge.PARTS`) as people read them;
#: a part not listed shows its name.
BRIDGE_LABELS: Final[Mapping[str, str]] = {
    "coverage": "Requests missing or extra locally",
    "token_mix": "Token mix",
    "price": "Prices",
    "tier": "Service tier",
    "local_estimate": "Local estimates",
    "unpriced": "Models without a price",
    "untracked": "Families you do not log",
    "duplicates": "Duplicate request ids",
    "pending": "Not settled yet",
}


# --- groups -------------------------------------------------------------------------------


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


# --- diagnosis ----------------------------------------------------------------------------


def bridge_label(name: str) -> str:
    """A bridge part's name for people (``coverage`` -> "Requests missing or extra locally")."""
    return BRIDGE_LABELS.get(name) or name.replace("_", " ").capitalize()


def top_bridge_parts(bridge: Bridge | None) -> list[BridgePart]:
    """The non-zero parts of ``bridge``, largest |amount| first (ties in the bridge's order)."""
    if bridge is None:
        return []
    return sorted((p for p in bridge.parts if p.amount), key=lambda p: -abs(p.amount))


def _shown(diagnosis: Diagnosis) -> tuple[list[str], list[BridgePart], Bridge | None]:
    """What a message can show of a diagnosis: its sentences and the bridge's non-zero parts."""
    parts = top_bridge_parts(diagnosis.bridge)
    return list(diagnosis.summary), parts, diagnosis.bridge if parts else None


def diagnosis_payload(diagnosis: Diagnosis, limits: Limits | None = None) -> dict[str, Any] | None:
    """The payload's ``diagnosis`` object: the first sentences and the largest bridge parts
    (every one when ``limits`` is None), exact; None when there is nothing to show."""
    sentences, parts, bridge = _shown(diagnosis)
    if not sentences and bridge is None:
        return None
    summary, summary_more = cut(sentences, len(sentences) if limits is None else limits.diagnosis)
    top, parts_more = cut(parts, len(parts) if limits is None else limits.bridge_parts)
    return {
        "summary": summary,
        "bridge": None
        if bridge is None
        else {
            "difference": money(bridge.difference),
            "parts": [{"name": p.name, "amount": money(p.amount), "detail": p.detail} for p in top],
            "parts_total": len(parts),
        },
        "omitted": {"summary": summary_more, "bridge_parts": parts_more},
    }


def _diagnosis_context(result: ReconResult | None, limits: Limits) -> dict[str, Any]:
    """The template context's ``diagnosis``: empty (false) when there is nothing to show."""
    if result is None:
        return {}
    sentences, parts, bridge = _shown(result.diagnosis)
    if not sentences and bridge is None:
        return {}
    summary, summary_more = cut(sentences, limits.diagnosis)
    top, parts_more = cut(parts, limits.bridge_parts)
    rows = [
        {
            "name": p.name,
            "label": bridge_label(p.name),
            "amount": figures.signed_money(p.amount),
            "detail": p.detail,
        }
        for p in top
    ]
    # Label and amount aligned as a text table; the detail follows, unaligned.
    cells = figures.aligned([(r["label"], r["amount"]) for r in rows])
    return {
        "summary": summary,
        "summary_more": summary_more,
        "bridge": None
        if bridge is None
        else {
            "difference": figures.signed_money(bridge.difference),
            "parts": rows,
            "parts_more": parts_more,
            "lines": [
                f"{cell}  {r['detail']}" if r["detail"] else cell
                for cell, r in zip(cells, rows, strict=True)
            ],
        },
    }


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


@dataclass(frozen=True)
class _Grouping:
    """Which parts of a group key the result is grouped by (a column shows only then)."""

    project: bool = False
    api_key: bool = False

    @classmethod
    def of(cls, result: ReconResult | None) -> _Grouping:
        groups = result.groups if result is not None else ()
        return cls(
            project=any(g.key.project_id for g in groups),
            api_key=any(g.key.api_key_id for g in groups),
        )


def _group_context(group: GroupResult, grouping: _Grouping) -> dict[str, Any]:
    key = group.key
    title = [key.day.isoformat(), key.model]
    if key.family != COMPLETIONS:
        title.insert(1, key.family)
    if grouping.project:
        title.append(f"project {key.project_id or '(none)'}")
    if grouping.api_key:
        title.append(f"API key {key.api_key_id or '(none)'}")
    return {
        "name": group_name(key),
        "title": " · ".join(title),
        "day": key.day.isoformat(),
        "family": key.family,
        "model": key.model,
        "project_id": key.project_id,
        "api_key_id": key.api_key_id,
        "status": str(group.status),
        **metric_rows(group.comparison, key.family),
    }


def _with_text_lines(groups: list[dict[str, Any]]) -> str:
    """Give each group context its aligned ``lines`` (one table width for all); the header."""
    rows = [figures.TEXT_HEADER, *(r for g in groups for r in figures.text_cells(g))]
    lines = figures.aligned(rows)
    for index, group in enumerate(groups):
        group["lines"] = lines[1 + 3 * index : 4 + 3 * index]
    return lines[0]


def _verdict(result: ReconResult | None, drifting: int) -> str:
    """One sentence: how many groups drift, against which rule, and whether the totals do."""
    if result is None:
        return ""
    t = result.tolerance
    rule = (
        f"over {t.threshold_pct}% and over {figures.money(t.cost_floor)} / "
        f"{count_text(t.token_floor)} tokens / {count_text(t.request_floor)} requests"
    )
    if drifting:
        total = len(result.groups)
        text = (
            f"{drifting:,} of {total:,} group{'s' if total != 1 else ''} "
            f"{'is' if drifting == 1 else 'are'} out of tolerance ({rule})."
        )
        if not result.comparison.exceeds:
            # Drifts of opposite sign can cancel out in the sum: say so, or the totals table
            # (all within tolerance) contradicts the alert.
            text += " The window's totals are within tolerance: the drift is in the groups."
        return text
    if result.comparison.exceeds:
        return f"The window's totals are out of tolerance ({rule})."
    return f"Every group is within tolerance ({rule})."


def _result_context(result: ReconResult | None, limits: Limits) -> dict[str, Any]:
    """The parts of the context that only a result has (empty ones for a failed run)."""
    if result is None:
        return {
            "status": str(Status.FAILED),
            "threshold_pct": None,
            "totals": {},
            "totals_lines": [],
            "unpriced": [],
            "unpriced_more": 0,
            "skipped": [],
            "skipped_total": 0,
            "pending_days": [],
            "untracked": [],
            "unavailable_families": [],
        }
    skipped = dict(sorted(result.skipped.items()))
    totals_rows = metric_rows(result.comparison)
    unpriced, unpriced_more = cut(
        sorted(result.unpriced.items(), key=lambda item: unpriced_order(item[0])),
        limits.unpriced_models,
    )
    return {
        "status": str(result.status),
        "threshold_pct": str(result.tolerance.threshold_pct),
        "totals": totals_rows,
        "totals_lines": figures.aligned([figures.TEXT_HEADER, *figures.text_cells(totals_rows)]),
        "unpriced": [
            {
                "model": key.model,
                "service_tier": key.tier,
                "requests": count_text(u.requests),
                "tokens": count_text(u.total_tokens),
            }
            for key, u in unpriced
        ],
        "unpriced_more": unpriced_more,
        "skipped": [{"reason": r, "count": count_text(n)} for r, n in skipped.items()],
        "skipped_total": sum(skipped.values()),
        "pending_days": [d.isoformat() for d in result.pending_days],
        "untracked": [
            {
                "family": family,
                "cost": figures.money(usage.cost),
                "text": f"OpenAI billed {figures.money(usage.cost)} of "
                + ("line items that map to no family" if family == OTHER else family)
                + " you do not log",
            }
            for family, usage in result.untracked.items()
        ],
        "unavailable_families": list(result.unavailable_families),
    }


@dataclass(frozen=True)
class _Lists:
    """The complete lists of a notice, in the order they are shown."""

    drifting: list[GroupResult]
    causes: list[str]
    resolved: list[str]


def _payload_data(notice: Notice, lists: _Lists, limits: Limits, max_groups: int) -> dict[str, Any]:
    """The payload's figures, as ``recon-job run --format json`` writes them: the top entries
    of each list, how many were left out, and the complete lists under ``detail``."""
    result = notice.result
    groups = [report.group_dict(g) for g in lists.drifting]
    unpriced = report.unpriced_list(result.unpriced) if result is not None else []
    complete: dict[str, list[Any]] = {
        "groups": groups,
        "likely_causes": lists.causes,
        "resolved": lists.resolved,
        "unpriced_models": unpriced,
    }
    shown: dict[str, list[Any]] = {}
    omitted: dict[str, int] = {}
    for name, items in complete.items():
        limit = max_groups if name == "groups" else getattr(limits, name)
        shown[name], omitted[name] = cut(items, limit)
    return {
        "window": report.window_dict(notice.window),
        "totals": None
        if result is None
        else {
            "local": side(result.local, None, result.comparison.extra),
            "openai": side(result.openai, None, result.comparison.extra),
            "difference": report.difference(result.comparison),
        },
        "untracked": report.untracked_list(result) if result is not None else [],
        "unavailable_families": list(result.unavailable_families) if result is not None else [],
        **shown,
        "omitted": omitted,
        "skipped": dict(sorted(result.skipped.items())) if result is not None else {},
        "diagnosis": None if result is None else diagnosis_payload(result.diagnosis, limits),
        DETAIL: {
            **complete,
            "diagnosis": None if result is None else diagnosis_payload(result.diagnosis),
        },
    }


def build_context(
    notice: Notice, *, max_groups: int | None = None, limits: Limits = LIMITS
) -> dict[str, Any]:
    """The one context every template renders from; ``context["data"]`` feeds the payload.

    At most ``max_groups`` (default ``limits.groups``) drifting groups are listed, and at most
    ``limits`` of the other lists; ``groups_total``, ``groups_more`` and the other ``*_more``
    count what was left out.
    """
    result = notice.result
    groups_limit = limits.groups if max_groups is None else max(0, max_groups)
    lists = _Lists(
        drifting=top_groups(notice.firing or (result.mismatches if result is not None else ())),
        causes=likely_causes(result) if result is not None else [],
        resolved=list(notice.resolved),
    )
    shown, groups_more = cut(lists.drifting, groups_limit)
    # The top groups (largest cost difference first) shown family by family, completions first.
    shown = sorted(shown, key=lambda g: family_rank(g.key.family))
    causes, causes_more = cut(lists.causes, limits.likely_causes)
    resolved, resolved_more = cut(lists.resolved, limits.resolved)
    grouping = _Grouping.of(result)
    groups = [_group_context(g, grouping) for g in shown]
    error = notice.error
    return {
        "event": notice.event,
        "event_title": EVENT_TITLES.get(notice.event, notice.event),
        "group_key": notice.group_key,
        "dedupe_key": notice.dedupe_key,
        "run_id": notice.run_id,
        "window": _window_context(notice.window),
        **_result_context(result, limits),
        "verdict": _verdict(result, len(lists.drifting)),
        "by_project": grouping.project,
        "by_api_key": grouping.api_key,
        "groups": groups,
        "groups_header": _with_text_lines(groups),
        "groups_total": len(lists.drifting),
        "groups_more": groups_more,
        "likely_causes": causes,
        "likely_causes_more": causes_more,
        "resolved": resolved,
        "resolved_total": len(lists.resolved),
        "resolved_more": resolved_more,
        "error": {"reason": error[0], "message": error[1]} if error is not None else None,
        "diagnosis": _diagnosis_context(result, limits),
        "data": _payload_data(notice, lists, limits, groups_limit),
    }


def build_payload(context: Mapping[str, Any], *, summary: str) -> dict[str, Any]:
    """The webhook's JSON document (schema ``recon-job.alert/v1``) from a context.

    It lists what the messages list and counts the rest in ``omitted``; the complete lists are
    kept under ``detail`` for the channels that send more (:mod:`recon_job.notify.detail`).
    """
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
        "resolved": data["resolved"],
        "unpriced_models": data["unpriced_models"],
        "skipped": data["skipped"],
        "pending_days": list(context["pending_days"]),
        "likely_causes": data["likely_causes"],
        "untracked": data["untracked"],
        "unavailable_families": data["unavailable_families"],
        "error": context["error"],
        "omitted": data["omitted"],
        "diagnosis": data["diagnosis"],
        DETAIL: data[DETAIL],
    }


__all__ = [
    "BRIDGE_LABELS",
    "EVENT_TITLES",
    "PAYLOAD_SCHEMA",
    "Notice",
    "bridge_label",
    "build_context",
    "build_payload",
    "diagnosis_payload",
    "group_name",
    "top_bridge_parts",
    "top_groups",
]
