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
from dataclasses import replace
from datetime import date
from decimal import Context, Decimal

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
    UsageTotals,
    Window,
    group_order,
    sum_usage,
)

#: Wide enough that no product of realistic figures is rounded.
_EXACT = Context(prec=60)
_HUNDRED = Decimal(100)
#: Prefix for facts the official side reports, so they never collide with the local side's.
OPENAI_PREFIX = "openai."


def reconcile(
    local: UsageTotals,
    official: UsageTotals,
    *,
    window: Window,
    tolerance: Tolerance,
    pending_days: Collection[date] = (),
) -> ReconResult:
    """Compare ``local`` with ``official`` (OpenAI) over ``window``.

    A group on a day in ``pending_days`` is PENDING whatever its figures; otherwise it is a
    MISMATCH when tokens, requests or cost exceed ``tolerance``, else RECONCILED. The run is
    PENDING when any day of the window is pending: it is not judged as a whole before every day
    settled, so it never completes its period (its settled groups keep their own status); else a
    MISMATCH when any group is, or when the totals exceed the tolerance (many small drifts can
    add up); else RECONCILED. Groups come sorted by day, model, project and API key.
    """
    pending = frozenset(pending_days)
    keys = sorted(set(local.groups) | set(official.groups), key=group_order)
    # When OpenAI's dollars are not attributed to models (an ungrouped Costs answer or dashboard
    # export), a model's local cost has nothing to be compared with: only the totals decide cost.
    unattributed = any(k.model == UNATTRIBUTED and u.cost for k, u in official.groups.items())
    per_group = replace(tolerance, cost_floor=Decimal("Infinity")) if unattributed else tolerance
    groups: list[GroupResult] = []
    for key in keys:
        mine = local.groups.get(key, EMPTY)
        theirs = official.groups.get(key, EMPTY)
        comparison = compare_usage(mine, theirs, per_group)
        if key.day in pending:
            status = Status.PENDING
        elif comparison.exceeds:
            status = Status.MISMATCH
        else:
            status = Status.RECONCILED
        groups.append(GroupResult(key, mine, theirs, comparison, status))

    local_total = sum_usage([g.local for g in groups])
    openai_total = sum_usage([g.openai for g in groups])
    settled = [g for g in groups if g.status is not Status.PENDING]
    settled_comparison = compare_usage(
        sum_usage([g.local for g in settled]), sum_usage([g.openai for g in settled]), tolerance
    )
    window_pending = tuple(day for day in window.days() if day in pending)

    if window_pending:
        status = Status.PENDING
    elif settled_comparison.exceeds or any(g.status is Status.MISMATCH for g in settled):
        status = Status.MISMATCH
    else:
        status = Status.RECONCILED

    return ReconResult(
        window=window,
        status=status,
        tolerance=tolerance,
        local=local_total,
        openai=openai_total,
        comparison=compare_usage(local_total, openai_total, tolerance),
        groups=tuple(groups),
        pending_days=window_pending,
        unpriced=_merge_usage(local.unpriced, official.unpriced),
        skipped=_merge_counts(local.skipped, official.skipped),
        skipped_locations=dict(local.skipped_locations),
        info=_merge_counts(local.info, official.info),
    )


def compare_usage(local: Usage, openai: Usage, tolerance: Tolerance) -> Comparison:
    """Every compared quantity of one group (or total) against ``tolerance``."""
    tokens = Decimal(tolerance.token_floor)
    threshold = tolerance.threshold_pct
    return Comparison(
        input_tokens=metric(local.input_tokens, openai.input_tokens, threshold, tokens),
        cached_tokens=metric(local.cached_tokens, openai.cached_tokens, threshold, tokens),
        output_tokens=metric(local.output_tokens, openai.output_tokens, threshold, tokens),
        tokens=metric(local.total_tokens, openai.total_tokens, threshold, tokens),
        requests=metric(
            local.requests, openai.requests, threshold, Decimal(tolerance.request_floor)
        ),
        cost=metric(local.cost, openai.cost, threshold, tolerance.cost_floor),
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
