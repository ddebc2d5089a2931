"""Reconcile local usage against OpenAI's figures: pure, per group and over the window.

Both sides arrive already grouped by :class:`~recon_job.models.UsageKey` with normalised model
names. Every key seen on either side is compared; a key missing on one side counts as zero usage
there, so traffic only one side saw shows up as drift instead of disappearing.

For each quantity, difference = local − OpenAI (positive: local shows more) and pct = difference
as a percent of OpenAI's figure (None when OpenAI's figure is zero: no division by zero). A metric
*exceeds* the tolerance when it is relatively off — |pct| strictly above ``threshold_pct``, or
OpenAI shows zero while local does not — **and** absolutely off — |difference| strictly above its
floor (``token_floor``, ``request_floor`` or ``cost_floor``), so 5 % of nothing pages nobody. The
threshold test is done by exact cross-multiplication (``|diff| × 100 > threshold × |OpenAI|``), so
5.00 % is within tolerance and 5.0001 % is not, with no rounding of the percentage involved.

Only total tokens, requests and cost decide a group's status (``Comparison.exceeds``); the
per-class token metrics (input, cached, output) carry ``exceeds`` too, as a diagnosis of *which*
token class drifted.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import date
from decimal import Context, Decimal
from typing import Any, Literal

from recon_job.families import (
    COMPLETIONS,
    EXTRA_QUANTITIES,
    OTHER,
    SPECS,
    TOKEN_DETAILS,
    deciding,
    family_rank,
)
from recon_job.models import (
    EMPTY,
    UNATTRIBUTED,
    Comparison,
    GroupResult,
    Metric,
    ReconResult,
    Status,
    Tolerance,
    UnpricedKey,
    Usage,
    UsageKey,
    UsageTotals,
    Window,
    group_order,
    window_total,
)

#: Wide enough that no product of realistic figures is rounded.
_EXACT = Context(prec=60)
_HUNDRED = Decimal(100)
#: Prefix for facts the official side reports, so they never collide with the local side's.
OPENAI_PREFIX = "openai."
#: What decides a group of a family OpenAI could not report quantities of: its billed dollars.
COST_ONLY: tuple[str, ...] = ("cost",)
#: Quantities a token-billed model's answer does not carry: gpt-4o-transcribe answers with
#: tokens and no duration, gpt-4o-mini-tts with tokens and no character count. Logs of them count
#: none while OpenAI's usage counts the seconds or characters (and bills the tokens).
TOKEN_BILLED_QUANTITIES: tuple[str, ...] = ("characters", "seconds")


@dataclass(frozen=True, slots=True)
class Rules:
    """Which families are compared and what an untracked family does to the verdict."""

    #: ``report``: an untracked family is listed with its cost and the window can still
    #: reconcile; ``mismatch``: it also makes the window a mismatch.
    untracked: Literal["report", "mismatch"] = "report"
    #: Compare only these families (None: every family either side reports).
    families: frozenset[str] | None = None


def reconcile(  # noqa: PLR0913 -- all but the two sides are keyword-only options
    local: UsageTotals,
    official: UsageTotals,
    *,
    window: Window,
    tolerance: Tolerance,
    pending_days: Collection[date] = (),
    rules: Rules = Rules(),
) -> ReconResult:
    """Compare ``local`` with ``official`` (OpenAI) over ``window``.

    A group on a day in ``pending_days`` is PENDING whatever its figures; otherwise it is a
    MISMATCH when tokens, requests or cost exceed ``tolerance``, else RECONCILED. The run is
    PENDING when any day of the window is pending: it is not judged as a whole before every day
    settled, so it never completes its period (its settled groups keep their own status); else a
    MISMATCH when any group is, or when the totals exceed the tolerance (many small drifts can
    add up); else RECONCILED. Groups come sorted by day, family, model, project and API key.

    A family OpenAI reports in the window while the local side has no group of it at all is
    *untracked* (so is ``other``, billed line items that map to no family): its groups are
    UNTRACKED, listed in ``ReconResult.untracked`` and left out of the totals, so an app that
    does not log embeddings is not told every day that its completions drift. Under
    ``rules.untracked == "mismatch"`` a settled window with an untracked family is a MISMATCH.
    When the local side has no group at all, no family is untracked (but ``other``): that is a
    gap in the logs, and every group OpenAI reports is judged.
    Only ``rules.families`` are compared when given.

    A family whose endpoint OpenAI did not know (``unavailable_families`` of either side) has no
    official quantities, only the dollars the Costs API bills: its groups are judged by cost
    alone, and only its cost counts in the totals (quantities are totalled where both sides
    could count them).
    """
    pending = frozenset(pending_days)
    wanted = rules.families
    unavailable = tuple(
        sorted(
            set(local.unavailable_families) | set(official.unavailable_families),
            key=family_rank,
        )
    )

    def kept(groups: Mapping[UsageKey, Usage]) -> dict[UsageKey, Usage]:
        return {k: u for k, u in groups.items() if wanted is None or k.family in wanted}

    mine_by_key, theirs_by_key = kept(local.groups), kept(official.groups)
    # No local record at all is a gap in the logs (an app that stopped logging, log paths that
    # match the wrong files), not a choice of what to log: every family is compared, so that a
    # logging outage is a mismatch, never an all-clear.
    tracked = {k.family for k in mine_by_key or theirs_by_key} - {OTHER}
    untracked_families = {k.family for k in theirs_by_key} - tracked
    keys = sorted(set(mine_by_key) | set(theirs_by_key), key=group_order)
    # When OpenAI's dollars are not attributed to models (an ungrouped Costs answer or dashboard
    # export), a model's local cost has nothing to be compared with: only the totals decide cost.
    unattributed = any(k.model == UNATTRIBUTED and u.cost for k, u in official.groups.items())
    per_group = replace(tolerance, cost_floor=Decimal("Infinity")) if unattributed else tolerance
    groups: list[GroupResult] = []
    for key in keys:
        mine = mine_by_key.get(key, EMPTY)
        theirs = theirs_by_key.get(key, EMPTY)
        comparison = compare_usage(mine, theirs, per_group, family=key.family)
        if key.family in unavailable:
            comparison = replace(comparison, deciding=COST_ONLY)
        if key.day in pending:
            status = Status.PENDING
        elif key.family in untracked_families:
            status = Status.UNTRACKED
        elif comparison.exceeds:
            status = Status.MISMATCH
        else:
            status = Status.RECONCILED
        groups.append(GroupResult(key, mine, theirs, comparison, status))

    judged = [
        _totalled(_measured(g), unavailable)
        for g in groups
        if g.key.family not in untracked_families
    ]
    local_total = window_total((g.key, g.local) for g in judged)
    openai_total = window_total((g.key, g.openai) for g in judged)
    settled = [g for g in judged if g.status is not Status.PENDING]
    settled_comparison = compare_usage(
        window_total((g.key, g.local) for g in settled),
        window_total((g.key, g.openai) for g in settled),
        tolerance,
        family=None,
    )
    window_pending = tuple(day for day in window.days() if day in pending)
    untracked = {
        family: window_total((g.key, g.openai) for g in groups if g.key.family == family)
        for family in sorted(untracked_families, key=family_rank)
    }

    if window_pending:
        status = Status.PENDING
    elif (
        settled_comparison.exceeds
        or any(g.status is Status.MISMATCH for g in settled)
        or (rules.untracked == "mismatch" and untracked)
    ):
        status = Status.MISMATCH
    else:
        status = Status.RECONCILED

    return ReconResult(
        window=window,
        status=status,
        tolerance=tolerance,
        local=local_total,
        openai=openai_total,
        comparison=compare_usage(local_total, openai_total, tolerance, family=None),
        groups=tuple(groups),
        untracked=untracked,
        unavailable_families=unavailable,
        pending_days=window_pending,
        unpriced=_merge_usage(local.unpriced, official.unpriced),
        skipped=_merge_counts(local.skipped, official.skipped),
        skipped_locations=dict(local.skipped_locations),
        info=_merge_counts(local.info, official.info),
    )


def _totalled(group: GroupResult, unavailable: Collection[str]) -> GroupResult:
    return replace(
        group,
        local=counted(group.key, group.local, unavailable),
        openai=counted(group.key, group.openai, unavailable),
    )


def counted(key: UsageKey, usage: Usage, unavailable: Collection[str] = ()) -> Usage:
    """``usage`` of the group ``key`` as it counts in a window's totals: dollars always; tokens
    only of a family measured in tokens (an image model's logged tokens are not text tokens
    OpenAI counts); and the dollars alone of a family whose quantities OpenAI could not report.
    Every total of groups (runs, reports, the dashboard) adds groups through this."""
    if key.family in unavailable:
        return Usage(cost=usage.cost)
    spec = SPECS.get(key.family)
    if spec is None or spec.counts_tokens:
        return usage
    return _without_tokens(usage)


#: Every token count of a Usage set to zero (the classes are all parts of input or output).
_NO_TOKENS: Mapping[str, Any] = dict.fromkeys(TOKEN_DETAILS, 0)


def _without_tokens(usage: Usage) -> Usage:
    return replace(usage, **_NO_TOKENS)


def unlogged(family: str | None, local: Usage) -> frozenset[str]:
    """The deciding quantities of ``family`` the local side of a group could not count: it has
    tokens and none of the quantity (:data:`TOKEN_BILLED_QUANTITIES`: a token-billed speech or
    transcription model). They do not decide the group and stay out of the totals; its requests
    and dollars still decide."""
    if family is None or not local.quantity("tokens"):
        return frozenset()
    decides = deciding(family)
    return frozenset(q for q in TOKEN_BILLED_QUANTITIES if q in decides and not local.quantity(q))


def _measured(group: GroupResult) -> GroupResult:
    """``group`` without the quantities its local side could not count (:func:`unlogged`), on
    both sides, so the totals add them only where both sides counted them."""
    missing = unlogged(group.key.family, group.local)
    if not missing:
        return group
    zero: dict[str, Any] = dict.fromkeys(missing, 0)
    return replace(group, local=replace(group.local, **zero), openai=replace(group.openai, **zero))


def compare_usage(
    local: Usage, openai: Usage, tolerance: Tolerance, *, family: str | None = COMPLETIONS
) -> Comparison:
    """Every compared quantity of one group of ``family`` (None: a total over families).

    The six quantities every comparison carries are always there; the family's other ones
    (images, seconds, token classes ...) are in ``extra`` when either side has some, and always
    when they decide. A total decides on tokens, requests and cost, plus each other quantity
    either side has (a window of images alone is judged by its images).
    """
    threshold = tolerance.threshold_pct

    def of(name: str) -> Metric:
        return metric(local.quantity(name), openai.quantity(name), threshold, tolerance.floor(name))

    if family is None:
        decides: tuple[str, ...] = ("tokens", "requests", "cost")
        wanted = [q for q in EXTRA_QUANTITIES if local.quantity(q) or openai.quantity(q)]
        decides += tuple(q for q in wanted if not q.endswith("_tokens"))
    else:
        decides = deciding(family)
        wanted = [
            q for q in EXTRA_QUANTITIES if q in decides or local.quantity(q) or openai.quantity(q)
        ]
        missing = unlogged(family, local)
        decides = tuple(q for q in decides if q not in missing)
    return Comparison(
        input_tokens=of("input_tokens"),
        cached_tokens=of("cached_tokens"),
        output_tokens=of("output_tokens"),
        tokens=of("tokens"),
        requests=of("requests"),
        cost=of("cost"),
        extra={q: of(q) for q in wanted},
        deciding=decides,
    )


def metric(
    local: int | Decimal, openai: int | Decimal, threshold_pct: Decimal, floor: Decimal
) -> Metric:
    """One quantity compared: difference, percentage, and whether it exceeds the tolerance."""
    mine, theirs = Decimal(local), Decimal(openai)
    difference = _EXACT.subtract(mine, theirs)
    size = _EXACT.abs(difference)
    if theirs == 0:
        pct = None
        relatively_off = mine != 0
    else:
        pct = _EXACT.divide(_EXACT.multiply(difference, _HUNDRED), theirs)
        # abs(): a negative official figure (a credit line) still gives a magnitude to compare to.
        relatively_off = _EXACT.multiply(size, _HUNDRED) > _EXACT.multiply(
            threshold_pct, _EXACT.abs(theirs)
        )
    return Metric(
        local=mine,
        openai=theirs,
        difference=difference,
        pct=pct,
        exceeds=relatively_off and size > floor,
    )


def _merge_counts(local: Mapping[str, int], official: Mapping[str, int]) -> dict[str, int]:
    merged = dict(local)
    for name, count in official.items():
        merged[OPENAI_PREFIX + name] = merged.get(OPENAI_PREFIX + name, 0) + count
    return merged


def _merge_usage(
    local: Mapping[UnpricedKey, Usage], official: Mapping[UnpricedKey, Usage]
) -> dict[UnpricedKey, Usage]:
    merged = dict(local)
    for model, usage in official.items():
        merged[model] = merged.get(model, EMPTY) + usage
    return merged
