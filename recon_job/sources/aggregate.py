"""Local usage sums made into a result: the one place cost-less local usage is priced.

The NDJSON and SQL sources both sum usage per UTC day × group × tier × family × image variant and
leave the pricing to :func:`price_aggregates`, which prices each cost-less sum once. That equals
per-record pricing, because pricing is linear and exact in ``Decimal``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from recon_job.families import PRODUCT_MODELS, SPECS
from recon_job.modelnames import ModelNamer
from recon_job.models import (
    EMPTY,
    ZERO,
    Tier,
    UnpricedKey,
    Usage,
    UsageKey,
    UsageTotals,
    group_order,
    unpriced_order,
)
from recon_job.sources.base import Pricer

#: What an aggregate is summed by: UTC day, model as logged, project id, API key id, the tier
#: to price it at — None when the sum is of logged costs and needs no pricing —, the usage
#: family, and the image price variant (``1024x1024/hd``; None for anything else).
AggregateKey = tuple[date, str, str | None, str | None, Tier | None, str, str | None]
#: Where ``usage_bytes`` is in a sum (the fields of ``Usage``, in order): a level, whose
#: aggregates of one group take the largest, never the sum.
_BYTES = 17


def price_aggregates(
    aggregates: Iterable[tuple[AggregateKey, Sequence[Any]]],
    pricer: Pricer,
    namer: ModelNamer | None,
    *,
    skipped: Mapping[str, int],
    info: Mapping[str, int],
) -> UsageTotals:
    """Sum the aggregates per group, pricing each one without a logged cost.

    Each aggregate's sums are the fields of :class:`~recon_job.models.Usage` in order, the
    first five at least (input, cached and output tokens, requests, logged cost in USD); the
    rest are 0 when left out. A cost-less aggregate is priced under the model name as logged,
    then under the user's alias of it (:meth:`ModelNamer.aliased`; the price table applies the
    aliases itself, another pricer may not), with its image variant when it has one. A
    snapshot's date is never stripped to find a price: ``gpt-4o-2024-05-13`` costs more than
    ``gpt-4o``, and the price table decides which snapshots share their model's price. Usage
    neither prices is left out of the cost and reported in ``UsageTotals.unpriced`` under its
    aliased name and its tier, so a priced model's unpriced flex usage is told apart; a family
    without prices is unpriced the same way, never $0.

    The families OpenAI reports per project only are keyed under their product's name
    (:data:`~recon_job.families.PRODUCT_MODELS`) and without the dimensions their endpoint
    does not group by, so local groups meet OpenAI's.
    """
    groups: dict[UsageKey, list[Any]] = {}
    unpriced: dict[UnpricedKey, Usage] = {}
    for aggregate, sums in aggregates:
        day, tier, variant = aggregate[0], aggregate[4], aggregate[6]
        key = group_key(aggregate)
        model = key.model
        found = groups.get(key)
        if found is None:
            found = groups[key] = [0, 0, 0, 0, ZERO, *[0] * (_BYTES - 4)]
        for i, value in enumerate(sums):
            if i == _BYTES:
                found[i] = max(found[i], value)
            elif i != 4:
                found[i] += value
        if tier is None:
            found[4] += sums[4]
            continue
        values = list(sums)
        values[4] = ZERO
        usage = Usage(*values)
        price = _price(pricer, model, day, tier, usage, variant)
        name = namer.aliased(model) if namer is not None else model
        if price is None and name != model:
            price = _price(pricer, name, day, tier, usage, variant)
        if price is None:
            missing = UnpricedKey(name, tier)
            unpriced[missing] = unpriced.get(missing, EMPTY) + usage
        else:
            found[4] += price
    return UsageTotals(
        # Popped: each group's running sums go as its Usage is made (a lower peak per group).
        groups={key: Usage(*groups.pop(key)) for key in sorted(groups, key=group_order)},
        skipped=dict(sorted(skipped.items())),
        unpriced={key: unpriced[key] for key in sorted(unpriced, key=unpriced_order)},
        info=dict(info),
    )


def group_key(aggregate: AggregateKey) -> UsageKey:
    """The comparison group of an aggregate: a family OpenAI reports per project only is keyed
    under its product's name, and without the dimensions its endpoint does not group by."""
    day, model, project, api_key, _tier, family, _variant = aggregate
    spec = SPECS.get(family)
    if spec is not None:
        if not spec.by_model:
            model = PRODUCT_MODELS.get(family, model)
        project = project if "project_id" in spec.group_by else None
        api_key = api_key if "api_key_id" in spec.group_by else None
    return UsageKey(day, model, project, api_key, family)


def _price(  # noqa: PLR0913 -- the Pricer's arguments
    pricer: Pricer, model: str, day: date, tier: Tier, usage: Usage, variant: str | None
) -> Decimal | None:
    if variant is None:
        return pricer.cost(model, day, tier, usage)
    return pricer.cost(model, day, tier, usage, variant=variant)
