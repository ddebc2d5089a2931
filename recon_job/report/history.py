"""Past runs as ``recon-job history`` shows them: one JSON object or one line per run, and one
run in full (``history --run ID``): its totals, every group, what was skipped or unpriced."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from recon_job.families import COMPLETIONS, EXTRA_QUANTITIES, OTHER
from recon_job.models import Status, Usage, unpriced_order
from recon_job.report.formats import (
    count_text,
    money,
    money_text,
    pct,
    pct_text,
    side,
    signed_money_text,
    totals,
)
from recon_job.report.run import unpriced_list, window_dict
from recon_job.store import Difference, GroupRecord, RunRecord


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
        "difference": None if diff is None else difference_dict(diff),
        "groups": run.group_count,
        "mismatches": run.mismatch_count,
        "pending_days": [d.isoformat() for d in run.pending_days],
        "unpriced_models": unpriced_list(run.unpriced),
        "skipped": dict(sorted(run.skipped.items())),
        "untracked": [{"family": f, **side(u, f)} for f, u in run.untracked.items()],
        "unavailable_families": list(run.unavailable_families),
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
        names = (
            key.model if key.tier in (None, "standard") else f"{key.model} ({key.tier})"
            for key in sorted(run.unpriced, key=unpriced_order)
        )
        text += f", unpriced: {', '.join(names)}"
    if run.untracked:
        billed = (f"{family} ({money_text(u.cost)})" for family, u in run.untracked.items())
        text += f", untracked: {', '.join(billed)}"
    return text


def difference_dict(diff: Difference) -> dict[str, Any]:
    """A stored difference: local - OpenAI in tokens, requests and USD, with percentages."""
    return {
        "tokens": diff.tokens,
        "tokens_pct": pct(diff.tokens_pct),
        "requests": diff.requests,
        "requests_pct": pct(diff.requests_pct),
        "cost": money(diff.cost),
        "cost_pct": pct(diff.cost_pct),
    }


def group_record_dict(group: GroupRecord) -> dict[str, Any]:
    """One stored group of a past run (the ``breakdown`` rows of ``history --run``)."""
    family = group.key.family
    # The quantities either side has beyond the family's own (a logged image model's tokens).
    extra = [q for q in EXTRA_QUANTITIES if group.local.quantity(q) or group.openai.quantity(q)]
    return {
        "date": group.key.day.isoformat(),
        "family": family,
        "model": group.key.model,
        "project_id": group.key.project_id,
        "api_key_id": group.key.api_key_id,
        "status": str(group.status),
        "local": side(group.local, family, extra),
        "openai": side(group.openai, family, extra),
        "difference": difference_dict(group.difference),
    }


def run_detail_dict(run: RunRecord, groups: Sequence[GroupRecord]) -> dict[str, Any]:
    """One past run in full, as ``recon-job history --run ID --format json`` prints it: the
    fields of a ``history`` entry, and the floors, facts, local sources and every group."""
    t = run.tolerance
    return {
        **run_record_dict(run),
        "owner": run.owner,
        "floors": None
        if t is None
        else {"cost": money(t.cost_floor), "tokens": t.token_floor, "requests": t.request_floor},
        "info": dict(sorted(run.info.items())),
        "sources": [{"name": n, **totals(u)} for n, u in run.local_sources.items()],
        "breakdown": [group_record_dict(g) for g in groups],
    }


def run_detail_text(run: RunRecord, groups: Sequence[GroupRecord]) -> str:
    """One past run in full, for people: what ran when, the totals, and every group."""
    lines = [f"run {run.id} · {run.window_key} · status: {run.status}", *_facts(run)]
    if run.local is not None and run.openai is not None and run.difference is not None:
        lines += ["", *_totals(run.local, run.openai, run.difference)]
    lines += [
        f"  source {name}: {u.total_tokens:,} tokens, {u.requests:,} requests, "
        f"cost {money_text(u.cost)}"
        for name, u in run.local_sources.items()
    ]
    lines += _groups(groups)
    lines += _footnotes(run)
    return "\n".join(lines) + "\n"


def _facts(run: RunRecord) -> list[str]:
    finished = f"{run.finished_at:%Y-%m-%d %H:%M:%S} UTC" if run.finished_at else "not finished"
    lines = [
        f"  trigger:  {run.trigger}" + (f" (by {run.owner})" if run.owner else ""),
        f"  started:  {run.started_at:%Y-%m-%d %H:%M:%S} UTC; finished: {finished}",
        f"  version:  recon-job {run.tool_version}",
    ]
    t = run.tolerance
    if t is not None:
        lines.append(
            f"  rule:     over {t.threshold_pct}% and over {money_text(t.cost_floor)} / "
            f"{count_text(t.token_floor)} tokens / {count_text(t.request_floor)} requests"
        )
    if run.pending_days:
        days = ", ".join(d.isoformat() for d in run.pending_days)
        lines.append(f"  pending:  {days} (not settled yet, not judged)")
    if run.error_reason is not None:
        lines.append(f"  error:    {run.error_reason}: {run.error_message or ''}".rstrip())
    return lines


def _table(rows: Sequence[Sequence[str]], *, left: int) -> list[str]:
    """Rows as aligned columns: the first ``left`` columns left-aligned, the others right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(width) if i < left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def _totals(local: Usage, openai: Usage, diff: Difference) -> list[str]:
    rows = [
        ("", "local (yours)", "OpenAI", "difference", "%"),
        (
            "tokens",
            count_text(local.total_tokens),
            count_text(openai.total_tokens),
            count_text(diff.tokens, signed=True),
            pct_text(diff.tokens_pct),
        ),
        (
            "requests",
            count_text(local.requests),
            count_text(openai.requests),
            count_text(diff.requests, signed=True),
            pct_text(diff.requests_pct),
        ),
        (
            "cost",
            money_text(local.cost),
            money_text(openai.cost),
            signed_money_text(diff.cost),
            pct_text(diff.cost_pct),
        ),
    ]
    return _table(rows, left=1)


def _groups(groups: Sequence[GroupRecord]) -> list[str]:
    if not groups:
        return []
    drifting = sum(1 for g in groups if g.status is Status.MISMATCH)
    header = ("group", "status", "tokens local", "OpenAI", "%", "requests local", "OpenAI")
    rows: list[tuple[str, ...]] = [(*header, "cost local", "OpenAI", "%")]
    for g in groups:
        key, d = g.key, g.difference
        family = None if key.family == COMPLETIONS else key.family
        parts = (str(key.day), family, key.model, key.project_id, key.api_key_id)
        name = " ".join(p for p in parts if p)
        rows.append(
            (
                name,
                str(g.status),
                count_text(g.local.total_tokens),
                count_text(g.openai.total_tokens),
                pct_text(d.tokens_pct),
                count_text(g.local.requests),
                count_text(g.openai.requests),
                money_text(g.local.cost),
                money_text(g.openai.cost),
                pct_text(d.cost_pct),
            )
        )
    head = f"groups ({len(groups):,}, {drifting:,} out of tolerance):"
    return ["", head, *("  " + line for line in _table(rows, left=2))]


def _requests(count: int) -> str:
    return f"{count:,} request" + ("" if count == 1 else "s")


def _footnotes(run: RunRecord) -> list[str]:
    lines = [
        f"unpriced: {u['model']}"
        + (f" at the {u['service_tier']} tier" if u.get("service_tier") else "")
        + f" ({_requests(u['requests'])}): no price and no logged cost; its cost is NOT included"
        for u in unpriced_list(run.unpriced)
    ]
    lines += [
        f"untracked: OpenAI billed {money_text(u.cost)} of "
        + ("line items that map to no family" if f == OTHER else f)
        + " you do not log"
        for f, u in run.untracked.items()
    ]
    if run.unavailable_families:
        lines.append(
            f"unavailable: {', '.join(run.unavailable_families)} (OpenAI's usage endpoint "
            "does not know them here; compared by cost only)"
        )
    if run.skipped:
        parts = ", ".join(f"{r} {n:,}" for r, n in sorted(run.skipped.items()))
        lines.append(f"skipped log records: {parts}")
    return ["", *lines] if lines else []
