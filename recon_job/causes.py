"""Likely causes of a drift: short sentences derived from a result alone (pure).

Each rule looks at groups whose figure is out of tolerance (and at the totals, once every day is
settled), so a one-request wobble explains nothing. The sentences end up in every message part
(``likely_causes`` in the template context and in the webhook payload) and in the text report.

The rules never contradict each other: request gaps are netted per day, so requests one side
counts under another name on the same day are not listed both as missing and as extra; a model
only in the logs while OpenAI reports one the logs lack on the same days is named once, as a
likely alias (``[models.aliases]``), not as an unpriced model to add to the pricing file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal

from recon_job.compare import metric
from recon_job.modelnames import snapshot_base
from recon_job.models import (
    UNATTRIBUTED,
    UNDATED_REASONS,
    GroupResult,
    ReconResult,
    Status,
    UnpricedKey,
    Usage,
    unpriced_order,
)


def _count(value: Decimal) -> str:
    return f"{int(value):,}"


def _names(models: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(models[:limit])
    return shown if len(models) <= limit else f"{shown} and {len(models) - limit} more"


def _days(days: Sequence[date], limit: int = 3) -> str:
    return _names([d.isoformat() for d in days], limit)


def _seen(usage: Usage) -> bool:
    return bool(usage.requests or usage.total_tokens)


def _by_model(groups: Sequence[GroupResult]) -> dict[str, tuple[Usage, Usage]]:
    out: dict[str, tuple[Usage, Usage]] = {}
    for g in groups:
        local, openai = out.get(g.key.model, (Usage(), Usage()))
        out[g.key.model] = (local + g.local, openai + g.openai)
    return out


def _compared(name: str) -> str:
    """The name an unpriced model's usage is compared under (a snapshot's date stripped)."""
    return snapshot_base(name) or name


@dataclass(frozen=True)
class _Rename:
    """A model only in the logs and one only at OpenAI on the same days: one model, two names."""

    #: The model as the logs name it (the comparison name).
    logged: str
    #: The model OpenAI reports on those days that the logs never name.
    reported: str
    #: The settled UTC days both were used.
    days: tuple[date, ...]

    @property
    def alias_line(self) -> str:
        """The line to add under ``[models.aliases]`` in the settings."""
        return f'"{self.logged}" = "{self.reported}"'


def _renames(settled: Sequence[GroupResult]) -> tuple[_Rename, ...]:
    """Each model only in the logs, paired with the closest model only at OpenAI on its days."""
    local_days: dict[str, set[date]] = {}
    openai_days: dict[str, set[date]] = {}
    for g in settled:
        if g.key.model == UNATTRIBUTED:
            continue
        if _seen(g.local):
            local_days.setdefault(g.key.model, set()).add(g.key.day)
        if _seen(g.openai):
            openai_days.setdefault(g.key.model, set()).add(g.key.day)
    totals = _by_model(settled)
    reported = sorted(set(openai_days) - set(local_days))
    found: list[_Rename] = []
    for logged in sorted(set(local_days) - set(openai_days)):
        days = local_days[logged]
        candidates = [m for m in reported if days & openai_days[m]]
        if not candidates:
            continue
        mine = totals[logged][0]
        best = min(
            candidates,
            key=lambda m: (
                abs(totals[m][1].requests - mine.requests),
                abs(totals[m][1].total_tokens - mine.total_tokens),
            ),
        )
        reported.remove(best)
        found.append(_Rename(logged, best, tuple(sorted(days & openai_days[best]))))
    return tuple(found)


@dataclass(frozen=True)
class _Scope:
    """What every rule looks at: the result, its settled groups, and whether totals count."""

    result: ReconResult
    #: Groups on settled days: an unsettled day explains nothing yet.
    settled: tuple[GroupResult, ...]
    #: The totals count once every day is settled (many small drifts can add up).
    totals_settled: bool
    #: Models that are likely one model under two names (see :func:`_renames`).
    renames: tuple[_Rename, ...]

    def renamed(self, model: str) -> _Rename | None:
        """The rename an unpriced model's usage belongs to, if any."""
        name = _compared(model)
        return next((r for r in self.renames if r.logged == name), None)


def _dollars_only(group: GroupResult) -> GroupResult:
    return replace(group, local=Usage(cost=group.local.cost), openai=Usage(cost=group.openai.cost))


def _scope(result: ReconResult) -> _Scope:
    # Untracked families are listed apart with their cost: no cause of the tracked drift. A
    # family OpenAI could not count has only dollars to compare: its counts explain nothing.
    settled = tuple(
        _dollars_only(g) if g.key.family in result.unavailable_families else g
        for g in result.groups
        if g.status not in (Status.PENDING, Status.UNTRACKED)
    )
    return _Scope(
        result=result,
        settled=settled,
        totals_settled=not result.pending_days,
        renames=_renames(settled),
    )


@dataclass(frozen=True)
class _Gaps:
    """Request differences, netted per day."""

    #: Requests OpenAI counted that the logs lack (days where OpenAI counted more).
    missing: int
    #: Requests the logs have that OpenAI lacks (days where the logs counted more).
    extra: int
    #: Requests counted under another model, project or API key on one side on the same day.
    moved: int


def _request_gaps(scope: _Scope) -> _Gaps:
    """Each day with a drifting request count, netted over its groups; else the totals.

    A request logged as ``prod-4o`` that OpenAI counts as ``gpt-4o`` shows as +1 in one group
    and -1 in another: it is neither missing nor extra, only named differently. A day's net
    counts only when it is itself out of tolerance.
    """
    drifting = {g.key.day for g in scope.settled if g.comparison.requests.exceeds}
    per_day: dict[date, list[GroupResult]] = {}
    for g in scope.settled:
        if g.key.day in drifting:
            per_day.setdefault(g.key.day, []).append(g)
    tolerance = scope.result.tolerance
    missing = extra = moved = 0
    for groups in per_day.values():
        differences = [int(g.comparison.requests.difference) for g in groups]
        more = sum(d for d in differences if d > 0)
        fewer = -sum(d for d in differences if d < 0)
        moved += min(more, fewer)
        net = metric(
            sum(g.local.requests for g in groups),
            sum(g.openai.requests for g in groups),
            tolerance.threshold_pct,
            Decimal(tolerance.request_floor),
        )
        if net.exceeds:
            missing += max(0, fewer - more)
            extra += max(0, more - fewer)
    requests = scope.result.comparison.requests
    if not drifting and scope.totals_settled and requests.exceeds:
        missing = max(0, -int(requests.difference))
        extra = max(0, int(requests.difference))
    return _Gaps(missing, extra, moved)


def _coverage(scope: _Scope) -> list[str]:
    gaps = _request_gaps(scope)
    causes = []
    if gaps.missing:
        causes.append(
            f"{gaps.missing:,} requests OpenAI counted are not in your logs — retries, timeouts "
            "or traffic that bypasses the logger."
        )
    if gaps.extra:
        causes.append(
            f"{gaps.extra:,} more requests in your logs than OpenAI counted — duplicated log "
            "lines, requests that never reached OpenAI, or logs from outside the window."
        )
    # A rename already says which names to map; otherwise say what kind of gap this is.
    if gaps.moved and not scope.renames:
        causes.append(
            f"{gaps.moved:,} requests are counted under a different model, project or API key "
            "in your logs than at OpenAI on the same days — check [models.aliases] in your "
            "settings and how your logger records the project and key."
        )
    return causes


def _prices(scope: _Scope) -> list[str]:
    # A model with unpriced usage has a cost gap the unpriced rule explains.
    unpriced = {_compared(k.model) for k in scope.result.unpriced}
    repriced = sorted(
        {
            g.key.model
            for g in scope.settled
            if g.comparison.cost.exceeds
            and not g.comparison.tokens.exceeds
            and g.local.total_tokens
            and g.openai.total_tokens
            and g.key.model not in unpriced
        }
    )
    if not repriced:
        return []
    return [
        f"Tokens match but cost differs for {_names(repriced)} — the price table may be "
        "out of date, or a batch/flex/priority tier is priced at the standard rate."
    ]


def _naming(scope: _Scope) -> list[str]:
    causes = []
    for r in scope.renames:
        unpriced = any(scope.renamed(k.model) is r for k in scope.result.unpriced)
        causes.append(
            f"Model {r.logged} appears only in your logs and {r.reported} only at OpenAI, on "
            f"the same days ({_days(r.days)}) — if {r.logged} is your deployment name for "
            f"{r.reported}, map it in your settings: [models.aliases] {r.alias_line}"
            + (f" (that also prices it as {r.reported})." if unpriced else ".")
        )
    return causes


def _one_sided_models(scope: _Scope) -> list[str]:
    named = {r.logged for r in scope.renames} | {r.reported for r in scope.renames}
    causes = []
    for model, (local, openai) in sorted(_by_model(scope.settled).items()):
        if model in named:
            continue
        if _seen(openai) and not _seen(local):
            causes.append(
                f"Model {model} appears only at OpenAI (unlogged traffic, a new model, or a "
                "name the alias map does not cover)."
            )
        elif _seen(local) and not _seen(openai):
            causes.append(
                f"Model {model} appears only in your logs (a name the alias map does not "
                "cover, another organization or project, or traffic OpenAI never billed)."
            )
    return causes


def _its(models: Sequence[str]) -> str:
    return "its entry" if len(models) == 1 else "their entries"


def _unpriced(scope: _Scope) -> list[str]:
    """What to add for the unpriced usage, by kind; usage a rename explains is left to it."""
    keys = [
        k for k in sorted(scope.result.unpriced, key=unpriced_order) if not scope.renamed(k.model)
    ]
    unknown = sorted({k.model for k in keys if k.tier in (None, "standard")})
    plain = [m for m in unknown if snapshot_base(m) is None]
    causes = []
    if plain:
        its = "its" if len(plain) == 1 else "their"
        causes.append(
            f"No price for {_names(plain)}: {its} cost is not counted on your side — add a "
            "price to your pricing file."
        )
    causes += [
        f"No price for snapshot {m}: its cost is not counted on your side — {_snapshot_hint(m)}."
        for m in unknown
        if snapshot_base(m) is not None
    ]
    for tier in ("batch", "flex", "priority"):
        models = sorted({k.model for k in keys if k.tier == tier} - set(unknown))
        if models:
            causes.append(
                f"No {tier} price for {_names(models)}: that usage's cost is not counted on "
                f"your side — {_tier_hint(tier, _its(models))}."
            )
    return causes


def _snapshot_hint(model: str) -> str:
    base = snapshot_base(model)
    return (
        f'add [[models."{model}"]] entries to your pricing file, or the line "{model}" = '
        f'"{base}" under [snapshots] if it is billed at {base}\'s price'
    )


def _tier_hint(tier: str, entry: str) -> str:
    if tier == "batch":
        return (
            f"add batch rates (batch = {{ input = …, output = … }}) to {entry} in your pricing "
            "file, or the rates the batch discount applies to"
        )
    return (
        f"add {tier} rates ({tier} = {{ input = …, output = … }}) to {entry} in your pricing file"
    )


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
    """Skipped local records, and where the first ones are.

    Records without a usable date (:data:`~recon_job.models.UNDATED_REASONS`) belong to no
    window: every window's fetch skips them again, so they are not blamed on this one as usage
    missing from your side, but named once, by the files that hold them.
    """
    result = scope.result
    skipped = {r: n for r, n in result.skipped.items() if not r.startswith("openai.") and n}
    dated = {r: n for r, n in skipped.items() if r not in UNDATED_REASONS}
    undated = {r: n for r, n in skipped.items() if r in UNDATED_REASONS}
    causes = []
    if dated:
        first = [where[0] for r, where in sorted(result.skipped_locations.items()) if r in dated]
        at = f"; the first at {_names(first, 2)}" if first else ""
        causes.append(
            f"{sum(dated.values()):,} log lines were skipped ({_counts(dated)}{at}) — their "
            "usage is missing from your side."
        )
    if undated:
        files = _undated_files(result.skipped_locations)
        where = f" in {_names(files, 2)}" if files else ""
        causes.append(
            f"{sum(undated.values()):,} log lines have no usable date ({_counts(undated)})"
            f"{where} — they belong to no day, so no window counts them: fix the timestamps "
            "your logger writes."
        )
    return causes


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{reason} {n:,}" for reason, n in sorted(counts.items()))


def _undated_files(locations: Mapping[str, Sequence[str]]) -> list[str]:
    """Each file with undated lines, once, at its first such line (``file:line``)."""
    first: dict[str, tuple[int, str]] = {}
    for reason, where in locations.items():
        if reason in UNDATED_REASONS:
            for location in where:
                path, _, line = location.rpartition(":")
                number = int(line) if line.isascii() and line.isdigit() else 0
                if path not in first or number < first[path][0]:
                    first[path] = (number, location)
    return [location for _, location in (first[path] for path in sorted(first))]


def _pending(scope: _Scope) -> list[str]:
    if not scope.result.pending_days:
        return []
    days = ", ".join(d.isoformat() for d in scope.result.pending_days)
    return [f"Not settled yet: {days} — OpenAI's figures for these days may still change."]


def _silent_logs(scope: _Scope) -> list[str]:
    """No local record at all while OpenAI counted: the logs, not the figures, are the story."""
    if not scope.settled or any(_seen(g.local) or g.local.cost for g in scope.settled):
        return []
    requests = sum(g.openai.requests for g in scope.settled)
    if not requests and not any(g.openai.cost for g in scope.settled):
        return []
    counted = f"{requests:,} requests" if requests else "billed usage"
    return [
        f"Your side has no record at all in this window while OpenAI counted {counted} — the "
        "app may have stopped logging, or the log paths (or the table and its filter) match "
        "none of its records."
    ]


#: The rules, in the order their sentences are listed.
RULES: tuple[Callable[[_Scope], list[str]], ...] = (
    _coverage,
    _prices,
    _naming,
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
    scope = _scope(result)
    silent = _silent_logs(scope)
    # With no local record at all, "requests not in your logs" and "models only at OpenAI" say
    # the same thing less clearly; skipped lines and late data still matter.
    rules = (_skipped, _pending) if silent else RULES
    return silent + [cause for rule in rules for cause in rule(scope)]


def unpriced_hints(result: ReconResult) -> dict[UnpricedKey, str]:
    """What to add so each unpriced entry of ``result`` gets a price, as a clause to show.

    The same advice as :func:`likely_causes`, one entry at a time (the report's footnotes): the
    alias line for a model that is likely a deployment name, the missing tier's rates for a
    priced model's flex/priority/batch usage, a ``[snapshots]`` line or entries for a snapshot,
    else a price in the pricing file.
    """
    scope = _scope(result)
    return {key: _hint(scope, key) for key in sorted(result.unpriced, key=unpriced_order)}


def _hint(scope: _Scope, key: UnpricedKey) -> str:
    rename = scope.renamed(key.model)
    if rename is not None:
        return (
            f"if it is your deployment name for {rename.reported}, add {rename.alias_line} "
            "under [models.aliases] in your settings"
        )
    if key.tier in ("batch", "flex", "priority"):
        return _tier_hint(key.tier, "its entry")
    if snapshot_base(key.model) is not None:
        return _snapshot_hint(key.model)
    return "add a price to your pricing file"


__all__ = ["RULES", "likely_causes", "unpriced_hints"]
