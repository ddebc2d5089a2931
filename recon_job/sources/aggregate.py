"""Local usage sums made into a result: the one place cost-less local usage is priced.

The NDJSON and SQL sources both sum usage per UTC day × group × tier and leave the pricing to
:func:`price_aggregates`, which prices each cost-less sum once. That equals per-record pricing,
because pricing is linear and exact in ``Decimal``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

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

#: What an aggregate is summed by: UTC day, model as logged, project id, API key id, and the
#: tier to price it at — None when the sum is of logged costs and needs no pricing.
AggregateKey = tuple[date, str, str | None, str | None, Tier | None]


def price_aggregates(
    aggregates: Iterable[tuple[AggregateKey, Sequence[Any]]],
    pricer: Pricer,
    namer: ModelNamer | None,
    *,
    skipped: Mapping[str, int],
    info: Mapping[str, int],
) -> UsageTotals:
    """Sum the aggregates per group, pricing each one without a logged cost.

    Each aggregate's sums are (input, cached and output tokens, requests, logged cost in USD).
    A cost-less aggregate is priced under the model name as logged, then under the user's alias
    of it (:meth:`ModelNamer.aliased`; the price table applies the aliases itself, another pricer
    may not). A snapshot's date is never stripped to find a price: ``gpt-4o-2024-05-13`` costs
    more than ``gpt-4o``, and the price table decides which snapshots share their model's price.
    Usage neither prices is left out of the cost and reported in ``UsageTotals.unpriced`` under
    its aliased name and its tier, so a priced model's unpriced flex usage is told apart.
    """
    groups: dict[UsageKey, list[Any]] = {}
    unpriced: dict[UnpricedKey, Usage] = {}
    for (day, model, project, api_key, tier), (inp, cached, out, n, cost) in aggregates:
        sums = groups.setdefault(UsageKey(day, model, project, api_key), [0, 0, 0, 0, ZERO])
        sums[0] += inp
        sums[1] += cached
        sums[2] += out
        sums[3] += n
        if tier is None:
            sums[4] += cost
            continue
        usage = Usage(input_tokens=inp, cached_tokens=cached, output_tokens=out, requests=n)
        price = pricer.cost(model, day, tier, usage)
        name = namer.aliased(model) if namer is not None else model
        if price is None and name != model:
            price = pricer.cost(name, day, tier, usage)
        if price is None:
            missing = UnpricedKey(name, tier)
            unpriced[missing] = unpriced.get(missing, EMPTY) + usage
        else:
            sums[4] += price
    return UsageTotals(
        groups={key: Usage(*groups[key]) for key in sorted(groups, key=group_order)},
        skipped=dict(sorted(skipped.items())),
        unpriced={key: unpriced[key] for key in sorted(unpriced, key=unpriced_order)},
        info=dict(info),
    )
