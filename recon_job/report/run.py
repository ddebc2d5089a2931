"""The run's output: the JSON document of ``--format json`` and the human-readable text.

Money is a decimal string, exact, with at least 6 decimals (``"0.003400"``); percentages are
decimal strings with 6 decimals, or null when OpenAI's figure is zero (no division by zero).
Both are written by :mod:`recon_job.report.formats`. The JSON schema is documented in the README
and stable: fields are only ever added. The text report is for people: money as ``$1,234.56``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from recon_job.causes import likely_causes, unpriced_hints
from recon_job.families import OTHER, deciding, family_rank
from recon_job.models import (
    UNDATED_REASONS,
    Comparison,
    GroupResult,
    Metric,
    ReconResult,
    RunOutcome,
    Status,
    UnpricedKey,
    Usage,
    Window,
    unpriced_order,
)
from recon_job.report.diagnosis import diagnosis_dict, diagnosis_lines
from recon_job.report.formats import (
    count_text,
    money,
    money_text,
    pct,
    pct_text,
    quantity_label,
    side,
    signed_money_text,
    totals,
)

SCHEMA_VERSION = 1


def difference(c: Comparison) -> dict[str, Any]:
    """The difference object: local - OpenAI per quantity, with percentages.

    Besides the six quantities every comparison has, each other quantity compared (a family's
    images, seconds, token classes ...) with its percentage; ``exceeds`` names the deciding
    quantities out of tolerance, ``deciding`` the quantities that decide.
    """
    out: dict[str, Any] = {}
    for name in ("input_tokens", "cached_tokens", "output_tokens", "tokens", "requests"):
        metric = getattr(c, name)
        out[name] = int(metric.difference)
        out[f"{name}_pct"] = pct(metric.pct)
    out["cost"] = money(c.cost.difference)
    out["cost_pct"] = pct(c.cost.pct)
    for name, metric in c.extra.items():
        out[name] = int(metric.difference)
        out[f"{name}_pct"] = pct(metric.pct)
    out["exceeds"] = sorted(n for n in c.deciding if (m := c.metric(n)) and m.exceeds)
    out["deciding"] = list(c.deciding)
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
    """One breakdown row: its family, and each side with that family's quantities."""
    family, extra = group.key.family, group.comparison.extra
    return {
        "date": group.key.day.isoformat(),
        "family": family,
        "model": group.key.model,
        "project_id": group.key.project_id,
        "api_key_id": group.key.api_key_id,
        "status": str(group.status),
        "local": side(group.local, family, extra),
        "openai": side(group.openai, family, extra),
        "difference": difference(group.comparison),
    }


def untracked_list(result: ReconResult) -> list[dict[str, Any]]:
    """The families OpenAI billed that the local side has no record of: OpenAI's usage of each
    (its cost and the family's quantities), in report order."""
    return [{"family": family, **side(usage, family)} for family, usage in result.untracked.items()]


def unpriced_list(unpriced: Mapping[UnpricedKey, Usage]) -> list[dict[str, Any]]:
    """Local usage without a price, per model and tier, with that usage.

    ``model`` is the name it is priced under (as logged, the user's alias applied, a snapshot's
    date kept); ``service_tier`` the tier without a price (``standard``, ``batch``, ``flex``,
    ``priority``; null for a run stored before the tier was recorded).
    """
    return [
        {
            "model": key.model,
            "service_tier": key.tier,
            "requests": usage.requests,
            "input_tokens": usage.input_tokens,
            "cached_tokens": usage.cached_tokens,
            "output_tokens": usage.output_tokens,
        }
        for key, usage in sorted(unpriced.items(), key=lambda item: unpriced_order(item[0]))
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
    """Everything about a comparison, JSON-ready; ``diagnosis`` only when something was found
    (:func:`recon_job.report.diagnosis.diagnosis_dict`)."""
    doc = {
        "status": str(result.status),
        "reconciled": result.reconciled,
        "threshold_pct": str(result.tolerance.threshold_pct),
        "floors": {
            "cost": money(result.tolerance.cost_floor),
            "tokens": result.tolerance.token_floor,
            "requests": result.tolerance.request_floor,
        },
        "local": side(result.local, None, result.comparison.extra),
        "openai": side(result.openai, None, result.comparison.extra),
        "difference": difference(result.comparison),
        "mismatches": len(result.mismatches),
        "pending_days": [d.isoformat() for d in result.pending_days],
        "breakdown": [group_dict(g) for g in result.groups],
        "unpriced_models": unpriced_list(result.unpriced),
        "skipped": dict(sorted(result.skipped.items())),
        "skipped_locations": {r: list(w) for r, w in sorted(result.skipped_locations.items())},
        "info": dict(sorted(result.info.items())),
        "sources": sources_list(result),
        "untracked": untracked_list(result),
        "unavailable_families": list(result.unavailable_families),
    }
    if not result.diagnosis.empty or result.diagnosis.summary:
        doc["diagnosis"] = diagnosis_dict(result.diagnosis)
    return doc


def outcome_dict(outcome: RunOutcome, *, from_history: bool = False) -> dict[str, Any]:
    """The ``--format json`` document of one run.

    ``from_history``: the run is not one made now but the stored last completed run of a
    period asked for again (``"from_history": true``; false for a run made now).
    """
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
    doc["from_history"] = from_history
    return doc


def render_text(outcome: RunOutcome, *, max_rows: int = 40, from_history: bool = False) -> str:
    """A short, readable report: the verdict, totals side by side, what drifts and why.

    Money reads ``$1,234.56`` with the same two decimals throughout (more only for an amount that
    would otherwise round to zero); counts carry thousands separators; every column is aligned.
    Local means your logs or table, OpenAI its Usage and Costs APIs; difference = local − OpenAI.
    """
    lines = [f"run {outcome.run_id} · {outcome.window.key} · status: {outcome.status}"]
    if from_history:
        lines.append(
            f"from the history: the period is complete (run {outcome.run_id} finished "
            f"{outcome.finished_at:%Y-%m-%d %H:%M} UTC); nothing was fetched now, "
            "use --force to run it again"
        )
    result = outcome.result
    if result is None:
        error = outcome.error
        lines.append(f"failed: {error}" if error is not None else "failed")
    else:
        lines += _verdict(result)
        lines += _totals_table(result)
        lines += _source_lines(result)
        lines += _family_lines(result)
        lines += _group_table(result, max_rows)
        lines += _cause_lines(result)
        lines += diagnosis_lines(result.diagnosis)
        lines += _footnotes(result)
    lines += _alert_lines(outcome)
    return "\n".join(lines) + "\n"


def _rule(result: ReconResult) -> str:
    t = result.tolerance
    return (
        f"over {t.threshold_pct}% and over {money_text(t.cost_floor)} / "
        f"{count_text(t.token_floor)} tokens / {count_text(t.request_floor)} requests"
    )


def _verdict(result: ReconResult) -> list[str]:
    drifting, total = len(result.mismatches), len(result.groups)
    if drifting:
        head = f"{drifting:,} of {total:,} groups out of tolerance ({_rule(result)})"
        if not result.comparison.exceeds:
            head += "; the window's totals are within tolerance, the drift is in the groups"
    elif result.status is Status.MISMATCH and not result.comparison.exceeds and result.untracked:
        head = (
            f"families billed that you do not log: {', '.join(result.untracked)} "
            "(reconcile.untracked = mismatch)"
        )
    elif result.status is Status.MISMATCH:
        head = f"the window's totals are out of tolerance ({_rule(result)})"
    else:
        head = f"every group within tolerance ({_rule(result)})"
    lines = [head]
    if result.pending_days:
        days = ", ".join(d.isoformat() for d in result.pending_days)
        lines.append(f"pending (not settled yet, not judged): {days}")
    return lines


def _table(rows: Sequence[Sequence[str]], *, left: int = 1) -> list[str]:
    """Rows as aligned columns: the first ``left`` columns left-aligned, the others right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(width) if i < left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def _totals_table(result: ReconResult) -> list[str]:
    c = result.comparison
    rows: list[tuple[str, ...]] = [("", "local (yours)", "OpenAI", "difference", "%")]
    for label, m in (
        ("tokens", c.tokens),
        ("  input", c.input_tokens),
        ("  cached", c.cached_tokens),
        ("  output", c.output_tokens),
        ("requests", c.requests),
    ):
        rows.append(_count_row(label, m))
    rows += [
        _count_row(quantity_label(name), m)
        for name, m in c.extra.items()
        if not name.endswith("_tokens")
    ]
    m = c.cost
    rows.append(
        (
            "cost",
            money_text(m.local),
            money_text(m.openai),
            signed_money_text(m.difference),
            pct_text(m.pct),
        )
    )
    return ["", *_table(rows)]


def _count_row(label: str, m: Metric) -> tuple[str, ...]:
    return (
        label,
        count_text(m.local),
        count_text(m.openai),
        count_text(m.difference, signed=True),
        pct_text(m.pct),
    )


def _source_lines(result: ReconResult) -> list[str]:
    return [
        f"  source {s['name']}: {s['tokens']:,} tokens ({s['share_tokens_pct'] or '0'}%), "
        f"{s['requests']:,} requests, cost {money_text(Decimal(s['cost']))} "
        f"({s['share_cost_pct'] or '0'}%)"
        for s in sources_list(result)
    ]


def _family_lines(result: ReconResult) -> list[str]:
    """The families billed that the local side has no record of, and those OpenAI could not
    count (compared by their dollars alone)."""
    lines = []
    for family, usage in result.untracked.items():
        what = "line items that map to no family" if family == OTHER else family
        counts = ", ".join(
            f"{count_text(usage.quantity(q))} {quantity_label(q)}"
            for q in deciding(family)
            if q != "cost" and usage.quantity(q)
        )
        lines.append(
            f"untracked: OpenAI billed {money_text(usage.cost)} of {what} you do not log"
            + (f" ({counts})" if counts else "")
        )
    if result.unavailable_families:
        lines.append(
            f"unavailable: {', '.join(result.unavailable_families)} (OpenAI's usage endpoint "
            "does not know them here; compared by cost only)"
        )
    return ["", *lines] if lines else []


def _group_table(result: ReconResult, max_rows: int) -> list[str]:
    """The groups out of tolerance, a table per family (completions first), each headed by the
    family and its own deciding quantity (tokens, images, characters, seconds ...)."""
    drifting = result.mismatches
    if not drifting:
        return []
    shown = drifting[:max_rows]
    lines = ["", "out of tolerance:"]
    for family in sorted({g.key.family for g in shown}, key=family_rank):
        main = _main_quantity(family)
        header = (family, f"{quantity_label(main)} local", "OpenAI", "%", "requests local")
        rows = [(*header, "OpenAI", "cost local", "OpenAI", "%")]
        for g in (g for g in shown if g.key.family == family):
            gc = g.comparison
            m = gc.metric(main) or gc.tokens
            name = " ".join(p for p in (str(g.key.day), g.key.model, g.key.project_id) if p)
            rows.append(
                (
                    "  " + name + (f" {g.key.api_key_id}" if g.key.api_key_id else ""),
                    count_text(m.local),
                    count_text(m.openai),
                    pct_text(m.pct),
                    count_text(gc.requests.local),
                    count_text(gc.requests.openai),
                    money_text(gc.cost.local),
                    money_text(gc.cost.openai),
                    pct_text(gc.cost.pct),
                )
            )
        lines += ("  " + line for line in _table(rows))
    if len(drifting) > max_rows:
        lines.append(f"  … and {len(drifting) - max_rows:,} more (use --format json)")
    return lines


def _main_quantity(family: str) -> str:
    """The quantity a family's table shows first: its first deciding one other than cost."""
    return next((q for q in deciding(family) if q not in ("requests", "cost")), "tokens")


def _cause_lines(result: ReconResult) -> list[str]:
    if result.status is Status.RECONCILED:
        return []
    causes = likely_causes(result)
    return ["", "likely causes:", *(f"  - {cause}" for cause in causes)] if causes else []


def _footnotes(result: ReconResult) -> list[str]:
    lines: list[str] = []
    for key, hint in unpriced_hints(result).items():
        usage = result.unpriced[key]
        lines.append(
            f"unpriced: {_unpriced_name(key)} ({usage.requests:,} requests, "
            f"{usage.total_tokens:,} tokens) has no price and no logged cost; its cost is NOT "
            f"included. To price it, {hint}."
        )
    if result.skipped:
        parts = ", ".join(f"{r} {n:,}" for r, n in sorted(result.skipped.items()))
        lines.append(f"skipped log records: {parts}")
        lines += _skip_locations(result)
    return ["", *lines] if lines else []


def _skip_locations(result: ReconResult) -> list[str]:
    """Where the first skipped records of each reason are (``file:line``), one line a reason."""
    lines = []
    for reason, where in sorted(result.skipped_locations.items()):
        more = result.skipped.get(reason, 0) - len(where)
        first = "first in each file: " if reason in UNDATED_REASONS else ""
        tail = f" (and {more:,} more)" if more > 0 else ""
        lines.append(f"  {reason}: {first}{', '.join(where)}{tail}")
    return lines


def _unpriced_name(key: UnpricedKey) -> str:
    return key.model if key.tier is None else f"{key.model} at the {key.tier} tier"


def _alert_lines(outcome: RunOutcome) -> list[str]:
    return [
        f"alert: {a['event']} via {a['channel']}: {a['status']}"
        + (" (from an earlier run)" if a.get("earlier") else "")
        for a in outcome.alerts
    ]
