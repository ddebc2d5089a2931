"""Tests of pricing local aggregates (recon_job.sources.aggregate) with the bundled price table.

Issue 9: a dated snapshot is priced at its own price, not its alias's (item 5), and unpriced
usage is reported per model *and tier*, so a priced model's flex usage is told apart (item 6).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from recon_job.config.prices import load_price_table
from recon_job.modelnames import ModelNamer
from recon_job.models import Tier, UnpricedKey, Usage, UsageKey, UsageTotals
from recon_job.pricing import PriceTable
from recon_job.sources.aggregate import AggregateKey, price_aggregates

DAY = date(2026, 3, 14)
MILLION = 1_000_000


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return load_price_table()


def priced(
    table: PriceTable,
    rows: Iterable[tuple[str, Tier, Sequence[Any]]],
    namer: ModelNamer | None = None,
) -> UsageTotals:
    aggregates: list[tuple[AggregateKey, Sequence[Any]]] = [
        ((DAY, model, None, None, tier, "completions", None), sums) for model, tier, sums in rows
    ]
    return price_aggregates(aggregates, table, namer, skipped={}, info={})


def sums(inp: int, out: int = 0, requests: int = 1) -> tuple[int, int, int, int, Decimal]:
    return (inp, 0, out, requests, Decimal(0))


def test_flex_usage_of_a_priced_model_is_unpriced_at_the_flex_tier_only(table: PriceTable) -> None:
    totals = priced(
        table,
        [("gpt-4o", "standard", sums(MILLION, requests=3)), ("gpt-4o", "flex", sums(MILLION))],
    )

    assert totals.unpriced == {UnpricedKey("gpt-4o", "flex"): Usage(MILLION, 0, 0, 1)}
    # The standard usage is priced; the flex usage's cost is left out, not $0 and not standard.
    assert totals.groups == {UsageKey(DAY, "gpt-4o"): Usage(2 * MILLION, 0, 0, 4, Decimal("2.50"))}


def test_one_model_unpriced_at_several_tiers_gets_one_entry_per_tier(table: PriceTable) -> None:
    totals = priced(
        table,
        [
            ("gpt-4.1", "flex", sums(10)),
            ("gpt-5-nano", "priority", sums(20)),
            ("gpt-4.1", "flex", sums(5)),
            ("my-model", "batch", sums(7)),
            ("my-model", "standard", sums(8)),
        ],
    )

    assert list(totals.unpriced) == [
        UnpricedKey("gpt-4.1", "flex"),
        UnpricedKey("gpt-5-nano", "priority"),
        UnpricedKey("my-model", "standard"),
        UnpricedKey("my-model", "batch"),
    ]
    assert totals.unpriced[UnpricedKey("gpt-4.1", "flex")] == Usage(15, 0, 0, 2)


def test_a_dated_snapshot_is_priced_at_its_own_price(table: PriceTable) -> None:
    totals = priced(
        table, [("gpt-4o-2024-05-13", "standard", sums(MILLION, MILLION))], namer=ModelNamer()
    )

    # USD 5 + 15, not gpt-4o's 2.50 + 10.
    assert totals.groups[UsageKey(DAY, "gpt-4o-2024-05-13")].cost == Decimal("20.00")
    assert totals.unpriced == {}


def test_a_snapshot_the_table_does_not_list_is_unpriced_under_its_own_name(
    table: PriceTable,
) -> None:
    totals = priced(table, [("gpt-4o-2025-12-01", "standard", sums(100))], namer=ModelNamer())

    assert totals.groups[UsageKey(DAY, "gpt-4o-2025-12-01")].cost == 0
    assert totals.unpriced == {UnpricedKey("gpt-4o-2025-12-01", "standard"): Usage(100, 0, 0, 1)}


def test_a_shared_snapshot_is_priced_at_its_model(table: PriceTable) -> None:
    totals = priced(table, [("gpt-4o-2024-08-06", "standard", sums(MILLION))])

    assert totals.groups[UsageKey(DAY, "gpt-4o-2024-08-06")].cost == Decimal("2.50")


def test_aliased_usage_is_priced_and_reported_under_the_alias() -> None:
    namer = ModelNamer(aliases={"prod-4o": "gpt-4o"})
    aliased = load_price_table(namer=namer)

    totals = priced(
        aliased,
        [("prod-4o", "standard", sums(MILLION)), ("prod-4o", "flex", sums(10))],
        namer=namer,
    )

    assert totals.groups[UsageKey(DAY, "prod-4o")].cost == Decimal("2.50")
    # The flex rates to add belong to gpt-4o's entry, so it is named as gpt-4o.
    assert totals.unpriced == {UnpricedKey("gpt-4o", "flex"): Usage(10, 0, 0, 1)}
