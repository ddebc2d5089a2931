"""A cost difference in named parts that add up to it exactly: the cost bridge (issue 12 item 3).

A group's difference (local cost - OpenAI's billed cost, USD) is split by a *telescoping*
waterfall: each part is the step between two figures of one chain, so the parts sum to the
difference by construction, with no remainder and no part made up to close it. ``P(q)`` is
the price table's cost of the quantities ``q`` at the tier the local side logged, ``r`` a
side's requests, ``s = r_L / r_O`` (the local requests at OpenAI's average request):

=================  ==============================================  ==============================
part               amount                                          what it says
=================  ==============================================  ==============================
``duplicates``     the dollars of duplicate records in local       dedupe off: extra records
``local_estimate`` ``C_L - P(q_L)``                                the app's logged cost differs
                                                                   from the table's
``token_mix``      ``(P(q_L) - dup) - P(q_O)·s'``                  same requests, other tokens
``coverage``       ``P(q_O)·s' - P(q_O)``                          requests missing or extra
``tier``           ``P(q_O) - P_billed(q_O)``                      OpenAI billed another tier
``price``          ``P_billed(q_O) - C_O``                         same quantities, other dollars
=================  ==============================================  ==============================

(``s'`` counts the local requests without the duplicate ones.) The chain starts at ``C_L``
and ends at ``C_O``, so the sum is ``C_L - C_O``. Whole-difference cases come first: a group
on a pending day is all ``pending`` (OpenAI's figures may still change); a group whose usage
the table cannot price, or whose local usage has no price (``unpriced``), is all ``unpriced``.
When OpenAI has no requests (``r_O = 0``) every dollar of ``P(q_L) - P(q_O)`` is coverage.

``tier``: the groups carry no tier today; a caller that knows the tier OpenAI billed the
group at (``billed_tier``) and finds it differs from the logged ``tier`` gets the part, priced
at the table's two tiers; without that knowledge, or when the billed tier has no price, the
part is 0 and any tier effect stays in ``price``.

The window's bridge adds the group bridges part by part (untracked groups aside) and one more
part, ``untracked``: minus OpenAI's dollars of the families the logs never record, so the
window bridge explains local against every dollar OpenAI billed.

Parts of amount zero are left out; the others are listed in :data:`PARTS` order. Arithmetic
is in :data:`recon_job.models.MONEY` (96 digits); the one figure that is not a difference of
inputs, ``P(q_O)·s'``, is rounded to :data:`QUANTUM` once, before it enters two parts, so the
chain stays exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

from recon_job.diagnosis.words import dollars
from recon_job.findings import Bridge, BridgePart, Duplicates
from recon_job.models import MONEY, GroupResult, ReconResult, Status, Tier, Usage, UsageKey
from recon_job.pricing import TOKEN_CLASSES, PriceTable

#: Every part name, in the order a bridge lists them (``untracked``, of the window only, last).
PARTS: Final[tuple[str, ...]] = (
    "coverage",
    "token_mix",
    "price",
    "tier",
    "local_estimate",
    "duplicates",
    "unpriced",
    "pending",
    "untracked",
)

#: ``P(q_O)·s`` is rounded to this (far below a cent, far above the precision of the sums).
QUANTUM: Final = Decimal("1e-24")

_ZERO = Decimal(0)

#: Token classes as a person reads them, by the :class:`~recon_job.models.Usage` property.
_CLASS_LABELS: Final[Mapping[str, str]] = {
    "input_text_tokens": "uncached input",
    "cached_text_tokens": "cached input",
    "cache_write_tokens": "cache writes",
    "input_audio_tokens": "audio input",
    "cached_audio_tokens": "cached audio input",
    "input_image_tokens": "image input",
    "cached_image_tokens": "cached image input",
    "output_text_tokens": "output",
    "output_audio_tokens": "audio output",
    "output_image_tokens": "image output",
}


def group_bridge(  # noqa: PLR0913 -- each keyword is one fact the caller may know
    group: GroupResult,
    prices: PriceTable,
    *,
    pending: bool,
    duplicates_cost: Decimal = _ZERO,
    duplicate_requests: int = 0,
    tier: Tier = "standard",
    billed_tier: Tier | None = None,
    unpriced: bool = False,
    counted: bool = True,
) -> Bridge:
    """The bridge of one group: ``group.local.cost - group.openai.cost`` in named parts.

    ``pending``: the group's day is not settled (the whole difference is ``pending``).
    ``duplicates_cost`` / ``duplicate_requests``: dollars and records of duplicates the local
    side counted (dedupe off); with dedupe on they are not in local and stay 0. ``tier``: the
    tier the local side logged the group at (priced with); ``billed_tier``: the tier OpenAI
    billed it at, when known. ``unpriced``: part of the local usage has no price, so its local
    cost is unknown (the whole difference is ``unpriced``). ``counted``: False for a family
    whose Usage endpoint OpenAI did not know (only its dollars are billed): with no quantities
    of OpenAI's to split by, all but ``local_estimate`` and ``duplicates`` is ``price``.
    """
    local, official = group.local, group.openai
    difference = MONEY.subtract(local.cost, official.cost)
    key = group.key
    where = f"{key.model} on {key.day.isoformat()}"
    if pending:
        detail = f"{key.day.isoformat()} is not settled: OpenAI's figures may still change"
        return _bridge(difference, [BridgePart("pending", difference, detail)])
    priced_local = prices.cost(key.model, key.day, tier, local)
    priced_official = prices.cost(key.model, key.day, tier, official)
    if unpriced or priced_local is None or priced_official is None:
        detail = (
            f"{where} has no price at the {tier} tier: its local cost is unknown"
            if unpriced or priced_local is None
            else f"OpenAI's usage of {where} has no price at the {tier} tier"
        )
        return _bridge(difference, [BridgePart("unpriced", difference, detail)])

    steps: list[BridgePart] = []
    if duplicates_cost or duplicate_requests:
        steps.append(
            BridgePart(
                "duplicates",
                duplicates_cost,
                f"{duplicate_requests:,} duplicate record{_s(duplicate_requests)} counted "
                f"locally (dedupe off), {dollars(duplicates_cost)}",
            )
        )
    steps.append(
        BridgePart(
            "local_estimate",
            MONEY.subtract(local.cost, priced_local),
            f"your logged cost {dollars(local.cost)} against the table's "
            f"{dollars(priced_local)} for the same usage",
        )
    )
    if not counted:
        steps.append(
            BridgePart(
                "price",
                MONEY.subtract(MONEY.subtract(priced_local, duplicates_cost), official.cost),
                f"OpenAI reports no quantities of {key.family}: it billed "
                f"{dollars(official.cost)}, the table prices your usage at "
                f"{dollars(priced_local)}",
            )
        )
        return _bridge(difference, steps)
    requests = local.requests - duplicate_requests
    scaled = _scaled(priced_official, requests, official.requests, priced_local, duplicates_cost)
    steps.append(
        BridgePart(
            "token_mix",
            MONEY.subtract(MONEY.subtract(priced_local, duplicates_cost), scaled),
            _mix_detail(local, official, requests),
        )
    )
    steps.append(
        BridgePart(
            "coverage",
            MONEY.subtract(scaled, priced_official),
            _coverage_detail(requests, official.requests, priced_official, priced_local),
        )
    )
    at_billed = priced_official
    if billed_tier is not None and billed_tier != tier:
        found = prices.cost(key.model, key.day, billed_tier, official)
        if found is not None:
            at_billed = found
            steps.append(
                BridgePart(
                    "tier",
                    MONEY.subtract(priced_official, found),
                    f"OpenAI billed {where} at the {billed_tier} tier ({dollars(found)}), "
                    f"logged as {tier} ({dollars(priced_official)})",
                )
            )
    steps.append(
        BridgePart(
            "price",
            MONEY.subtract(at_billed, official.cost),
            f"the table prices OpenAI's quantities at {dollars(at_billed)}, "
            f"OpenAI billed {dollars(official.cost)}",
        )
    )
    return _bridge(difference, steps)


def window_bridge(
    result: ReconResult,
    prices: PriceTable,
    *,
    duplicates: Mapping[UsageKey, Duplicates] | None = None,
    billed_tiers: Mapping[UsageKey, Tier] | None = None,
) -> Bridge:
    """The window's bridge: local against every dollar OpenAI billed, in named parts.

    The group bridges (:func:`group_bridge`; a group of a pending day is ``pending``, a group
    of a model in ``result.unpriced`` is ``unpriced``, a group of a family in
    ``result.unavailable_families`` is not split by quantities) added part by part, and
    ``untracked``: minus the cost of the families the logs never record (``result.untracked``).
    ``duplicates``: per group, the duplicate records the local side counted (dedupe off).
    ``billed_tiers``: per group, the tier OpenAI billed it at, when known.
    """
    dupes = duplicates or {}
    tiers = billed_tiers or {}
    pending = frozenset(result.pending_days)
    without_price = {k.model for k in result.unpriced}
    bridges: list[Bridge] = []
    for group in result.groups:
        # By family, not status: an untracked family's group of a pending day is PENDING.
        if group.status is Status.UNTRACKED or group.key.family in result.untracked:
            continue
        dup = dupes.get(group.key)
        model = group.key.model
        bridges.append(
            group_bridge(
                group,
                prices,
                pending=group.key.day in pending or group.status is Status.PENDING,
                duplicates_cost=dup.cost if dup else _ZERO,
                duplicate_requests=dup.count if dup else 0,
                billed_tier=tiers.get(group.key),
                unpriced=model in without_price or prices.namer.aliased(model) in without_price,
                counted=group.key.family not in result.unavailable_families,
            )
        )
    untracked_cost = _sum(u.cost for u in result.untracked.values())
    families = ", ".join(result.untracked)
    extra: list[BridgePart] = []
    if result.untracked:
        extra.append(
            BridgePart(
                "untracked",
                MONEY.minus(untracked_cost),
                f"OpenAI billed {dollars(untracked_cost)} of {families} you do not log",
            )
        )
    return combine(bridges, extra=extra)


def combine(bridges: Iterable[Bridge], *, extra: Iterable[BridgePart] = ()) -> Bridge:
    """Several bridges as one: differences and parts added by name, in :data:`PARTS` order.

    A part's detail is the single bridge's detail when one bridge has it, else a count of
    the groups; ``extra`` parts (``untracked``) are appended and added to the difference.
    """
    difference = _ZERO
    amounts: dict[str, Decimal] = {}
    details: dict[str, list[str]] = {}
    for bridge in bridges:
        difference = MONEY.add(difference, bridge.difference)
        for part in bridge.parts:
            amounts[part.name] = MONEY.add(amounts.get(part.name, _ZERO), part.amount)
            details.setdefault(part.name, []).append(part.detail)
    steps = [
        BridgePart(name, amounts[name], _combined_detail(details[name]))
        for name in sorted(amounts, key=_part_rank)
    ]
    for part in extra:
        difference = MONEY.add(difference, part.amount)
        steps.append(part)
    return _bridge(difference, steps)


def bridge_sentences(bridge: Bridge, *, limit: int = 1) -> list[str]:
    """The ``limit`` largest parts as sentences: ``coverage: -$1.28 of the -$1.30 difference
    (312 requests missing locally at $0.0041 each)``."""
    parts = sorted((p for p in bridge.parts if p.amount), key=lambda p: -abs(p.amount))
    return [
        f"{p.name}: {dollars(p.amount, signed=True)} of the "
        f"{dollars(bridge.difference, signed=True)} cost difference ({p.detail})"
        for p in parts[:limit]
    ]


def _bridge(difference: Decimal, steps: Iterable[BridgePart]) -> Bridge:
    parts = sorted((s for s in steps if s.amount), key=lambda s: _part_rank(s.name))
    return Bridge(difference=difference, parts=tuple(parts))


def _scaled(
    priced_official: Decimal,
    requests: int,
    official_requests: int,
    priced_local: Decimal,
    duplicates_cost: Decimal,
) -> Decimal:
    """``P(q_O)·s``: OpenAI's quantities at the local number of requests (see the module)."""
    if official_requests == 0:
        # Nothing to scale: every locally priced dollar is usage OpenAI did not count.
        return MONEY.subtract(priced_local, duplicates_cost)
    ratio = MONEY.divide(MONEY.multiply(priced_official, requests), official_requests)
    return ratio.quantize(QUANTUM, rounding=ROUND_HALF_EVEN, context=MONEY)


def _coverage_detail(requests: int, official_requests: int, priced: Decimal, local: Decimal) -> str:
    if official_requests == 0:
        return f"OpenAI counts no requests; the table prices the local usage at {dollars(local)}"
    missing = requests - official_requests
    if missing == 0:
        return "the same number of requests on both sides"
    each = MONEY.divide(priced, official_requests)
    what = "extra" if missing > 0 else "missing"
    return f"{abs(missing):,} request{_s(missing)} {what} locally at {dollars(each)} each"


def _mix_detail(local: Usage, official: Usage, requests: int) -> str:
    """The token classes that differ most at the same number of requests."""
    found: list[tuple[Decimal, str]] = []
    for _, part in TOKEN_CLASSES:
        mine: int = getattr(local, part)
        theirs: int = getattr(official, part)
        scaled = (
            Decimal(theirs)
            if official.requests == 0
            else MONEY.divide(MONEY.multiply(theirs, requests), official.requests)
        )
        change = MONEY.subtract(mine, scaled)
        if change.to_integral_value():
            found.append((change, _CLASS_LABELS.get(part, part)))
    if not found:
        return "the same tokens per request on both sides"
    found.sort(key=lambda item: -abs(item[0]))
    shown = ", ".join(
        f"{label} {int(change.to_integral_value()):+,}" for change, label in found[:3]
    )
    return f"tokens against OpenAI's mix at the same requests: {shown}"


def _combined_detail(details: list[str]) -> str:
    kept = [d for d in details if d]
    if len(kept) == 1:
        return kept[0]
    return f"over {len(details):,} groups"


def _part_rank(name: str) -> tuple[int, str]:
    return (PARTS.index(name) if name in PARTS else len(PARTS), name)


def _sum(values: Iterable[Decimal]) -> Decimal:
    total = _ZERO
    for value in values:
        total = MONEY.add(total, value)
    return total


def _s(count: int) -> str:
    return "" if abs(count) == 1 else "s"
