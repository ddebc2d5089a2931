"""Tests of the effective-dated price table (recon_job.pricing): lookup and arithmetic.

The tables come from :mod:`recon_job.config.prices`, whose reading and validation of price files
is tested in ``tests/config/test_prices.py``.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from recon_job.config.prices import BUNDLED_SOURCE, load_price_table, price_table_from
from recon_job.modelnames import ModelNamer
from recon_job.models import TIERS, Tier, Usage
from recon_job.pricing import PriceTable, Rates
from recon_job.sources.base import Pricer

ROOT = Path(__file__).resolve().parents[1]
BUNDLED_FILE = ROOT / "recon_job" / "data" / "pricing.toml"
CONFIG_COPY = ROOT / "config" / "pricing.toml"
TODAY = date(2026, 11, 22)
#: Models priced by text tokens with a cached rate (the output dearer than the input).
REQUIRED_MODELS = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "o1",
    "o1-mini",
    "o3",
    "o3-mini",
    "o4-mini",
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "gpt-5.1",
    "gpt-5.2",
    "gpt-5-codex",
    "gpt-5.1-codex",
    "gpt-5.1-codex-mini",
    "gpt-5-search-api",
    "gpt-realtime",
    "gpt-realtime-mini",
    "gpt-4o-realtime-preview",
    "gpt-4o-mini-realtime-preview",
)
#: Every other model of the bundled table, by what it is priced by.
OTHER_MODELS = (
    # text tokens, no cached rate
    "gpt-5-pro",
    "gpt-5.2-pro",
    "o1-pro",
    "o3-pro",
    "gpt-4o-search-preview",
    "gpt-4o-mini-search-preview",
    "gpt-audio",
    "gpt-audio-mini",
    "gpt-4o-audio-preview",
    "gpt-4o-mini-audio-preview",
    "gpt-4-turbo",
    "gpt-4",
    "gpt-4-0613",
    "gpt-3.5-turbo",
    "gpt-3.5-turbo-0125",
    # embeddings and moderation
    "text-embedding-3-small",
    "text-embedding-3-large",
    "text-embedding-ada-002",
    "omni-moderation-latest",
    "omni-moderation-2024-09-26",
    # images, speech, transcription
    "dall-e-2",
    "dall-e-3",
    "gpt-image-1",
    "gpt-image-1-mini",
    "whisper-1",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "tts-1",
    "tts-1-hd",
    "gpt-4o-mini-tts",
    # the product names of per-project families, and web search calls
    "vector-storage",
    "code-interpreter",
    "file-search",
    "web-search",
)
#: Dated snapshots priced apart from their model, with entries of their own.
PRICED_SNAPSHOTS = (
    "gpt-4o-2024-05-13",
    "gpt-4o-realtime-preview-2024-10-01",
    "gpt-4o-audio-preview-2024-10-01",
)
#: Dated snapshots billed at their model's prices (``[snapshots]`` of the bundled table).
SHARED_SNAPSHOTS = {
    "gpt-5-2025-08-07": "gpt-5",
    "gpt-5-mini-2025-08-07": "gpt-5-mini",
    "gpt-5-nano-2025-08-07": "gpt-5-nano",
    "gpt-5-pro-2025-10-06": "gpt-5-pro",
    "gpt-5-search-api-2025-10-14": "gpt-5-search-api",
    "gpt-5.1-2025-11-13": "gpt-5.1",
    "gpt-5.2-2025-12-11": "gpt-5.2",
    "gpt-5.2-pro-2025-12-11": "gpt-5.2-pro",
    "gpt-4.1-2025-04-14": "gpt-4.1",
    "gpt-4.1-mini-2025-04-14": "gpt-4.1-mini",
    "gpt-4.1-nano-2025-04-14": "gpt-4.1-nano",
    "gpt-4o-2024-08-06": "gpt-4o",
    "gpt-4o-2024-11-20": "gpt-4o",
    "gpt-4o-mini-2024-07-18": "gpt-4o-mini",
    "gpt-4o-search-preview-2025-03-11": "gpt-4o-search-preview",
    "gpt-4o-mini-search-preview-2025-03-11": "gpt-4o-mini-search-preview",
    "o1-2024-12-17": "o1",
    "o1-mini-2024-09-12": "o1-mini",
    "o1-pro-2025-03-19": "o1-pro",
    "o3-mini-2025-01-31": "o3-mini",
    "o3-2025-04-16": "o3",
    "o3-pro-2025-06-10": "o3-pro",
    "o4-mini-2025-04-16": "o4-mini",
    "gpt-realtime-2025-08-28": "gpt-realtime",
    "gpt-realtime-mini-2025-10-06": "gpt-realtime-mini",
    "gpt-4o-realtime-preview-2024-12-17": "gpt-4o-realtime-preview",
    "gpt-4o-realtime-preview-2025-06-03": "gpt-4o-realtime-preview",
    "gpt-4o-mini-realtime-preview-2024-12-17": "gpt-4o-mini-realtime-preview",
    "gpt-audio-2025-08-28": "gpt-audio",
    "gpt-audio-mini-2025-10-06": "gpt-audio-mini",
    "gpt-4o-audio-preview-2024-12-17": "gpt-4o-audio-preview",
    "gpt-4o-audio-preview-2025-06-03": "gpt-4o-audio-preview",
    "gpt-4o-mini-audio-preview-2024-12-17": "gpt-4o-mini-audio-preview",
    "gpt-4-turbo-2024-04-09": "gpt-4-turbo",
}
FLEX_MODELS = ("o3", "o4-mini", "gpt-5", "gpt-5-mini", "gpt-5-nano")
O3_CUT = date(2025, 6, 10)


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return load_price_table()


def small_table(**extra: Any) -> PriceTable:
    data: dict[str, Any] = {
        "models": {
            "chat": [
                {
                    "effective": date(2025, 1, 1),
                    "input": "2.00",
                    "cached_input": "0.50",
                    "output": "8.00",
                }
            ],
            "embed": [{"effective": date(2025, 1, 1), "input": "0.02"}],
        },
        **extra,
    }
    return price_table_from(data, "test.toml")


# --- cached tokens ----------------------------------------------------------------------------


def test_it_prices_cached_tokens_once_at_the_cached_rate(table: PriceTable) -> None:
    usage = Usage(input_tokens=1_000_000, cached_tokens=900_000)

    cost = table.cost("gpt-4o", TODAY, "standard", usage)

    # 100,000 uncached at $2.50/M + 900,000 cached at $1.25/M; double counting gives $3.625.
    assert cost == Decimal("0.25") + Decimal("1.125") == Decimal("1.375")
    assert cost != Decimal("3.625")


def test_it_prices_input_cached_and_output_exactly(table: PriceTable) -> None:
    usage = Usage(input_tokens=1234, cached_tokens=1000, output_tokens=77)

    cost = table.cost("gpt-5", TODAY, "standard", usage)

    expected = (
        Decimal(234) * Decimal("1.25") + Decimal(1000) * Decimal("0.125") + Decimal(77) * 10
    ) / Decimal(1_000_000)
    assert cost == expected == Decimal("0.0011875")


def test_zero_usage_costs_zero_not_unpriced(table: PriceTable) -> None:
    assert table.cost("gpt-4o", TODAY, "standard", Usage()) == 0


def test_more_cached_than_input_tokens_is_unpriced() -> None:
    rates = Rates(input=Decimal(1), cached_input=Decimal("0.5"), output=Decimal(2))

    assert rates.cost(Usage(input_tokens=10, cached_tokens=11)) is None


# --- effective dates --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2025, 4, 16), Rates(Decimal("10.00"), Decimal("2.50"), Decimal("40.00"))),
        (date(2025, 6, 9), Rates(Decimal("10.00"), Decimal("2.50"), Decimal("40.00"))),
        (O3_CUT, Rates(Decimal("2.00"), Decimal("0.50"), Decimal("8.00"))),
        (TODAY, Rates(Decimal("2.00"), Decimal("0.50"), Decimal("8.00"))),
    ],
)
def test_o3_is_priced_on_both_sides_of_its_price_cut(
    table: PriceTable, day: date, expected: Rates
) -> None:
    assert table.rates("o3", day, "standard") == expected


def test_the_price_version_names_the_period_used(table: PriceTable) -> None:
    assert table.price_version("o3", date(2025, 6, 9)) == "o3@2025-04-16"
    assert table.price_version("o3-2025-04-16", O3_CUT) == "o3@2025-06-10"
    assert table.price_version("o3", date(2025, 4, 15)) is None
    assert table.price_version("no-such-model", TODAY) is None


def test_a_day_before_the_first_price_is_unpriced(table: PriceTable) -> None:
    usage = Usage(input_tokens=10)

    assert table.rates("o3", date(2025, 4, 15), "standard") is None
    assert table.cost("o3", date(2025, 4, 15), "standard", usage) is None


# --- tiers ------------------------------------------------------------------------------------


def test_batch_defaults_to_standard_times_the_discount(table: PriceTable) -> None:
    assert table.rates("gpt-4o", TODAY, "batch") == Rates(
        Decimal("1.25"), Decimal("0.625"), Decimal("5.00")
    )
    usage = Usage(input_tokens=2_000_000, output_tokens=1_000_000)
    assert table.cost("gpt-4o", TODAY, "batch", usage) == Decimal("7.5")


def test_batch_discount_can_be_set_in_the_file() -> None:
    table = small_table(batch_discount="0.4")

    assert table.rates("chat", TODAY, "batch") == Rates(
        Decimal("0.8"), Decimal("0.2"), Decimal("3.2")
    )


def test_explicit_batch_rates_win_over_the_discount() -> None:
    data = {
        "models": {
            "m": [
                {
                    "effective": date(2025, 1, 1),
                    "input": "1",
                    "output": "4",
                    "batch": {"input": "0.7", "output": "3"},
                }
            ]
        }
    }
    table = price_table_from(data, "t.toml")

    assert table.rates("m", TODAY, "batch") == Rates(Decimal("0.7"), None, Decimal(3))


@pytest.mark.parametrize("model", FLEX_MODELS)
def test_flex_is_priced_where_published_and_below_standard(table: PriceTable, model: str) -> None:
    flex = table.rates(model, TODAY, "flex")
    standard = table.rates(model, TODAY, "standard")

    assert flex is not None
    assert standard is not None
    assert flex.input < standard.input


def test_o3_flex_follows_the_price_cut(table: PriceTable) -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)

    assert table.cost("o3", date(2025, 6, 9), "flex", usage) == Decimal("25.00")
    assert table.cost("o3", O3_CUT, "flex", usage) == Decimal("5.00")


@pytest.mark.parametrize(
    ("model", "tier"),
    [
        ("gpt-4o", "flex"),
        ("gpt-4.1", "flex"),
        ("gpt-5-nano", "priority"),
        ("text-embedding-3-small", "priority"),
        ("o3", "priority"),  # published only after the 2025-06-10 cut entry
    ],
)
def test_a_tier_without_published_rates_is_unpriced(
    table: PriceTable, model: str, tier: Tier
) -> None:
    day = date(2025, 5, 1) if model == "o3" else TODAY

    assert table.rates(model, day, tier) is None
    assert table.cost(model, day, tier, Usage(input_tokens=1000)) is None


def test_priority_costs_its_published_premium(table: PriceTable) -> None:
    usage = Usage(input_tokens=1_000_000, cached_tokens=1_000_000, output_tokens=1_000_000)

    assert table.cost("gpt-4o", TODAY, "priority", usage) == Decimal("2.125") + Decimal("17.00")


def test_an_unknown_tier_is_a_programming_error(table: PriceTable) -> None:
    with pytest.raises(ValueError, match="unknown tier"):
        table.rates("gpt-4o", TODAY, "turbo")  # type: ignore[arg-type]


# --- names ------------------------------------------------------------------------------------


def test_an_unknown_model_is_unpriced_not_free(table: PriceTable) -> None:
    assert table.rates("gpt-6-astra", TODAY, "standard") is None
    assert table.cost("gpt-6-astra", TODAY, "standard", Usage(input_tokens=5)) is None


@pytest.mark.parametrize("name", ["gpt-4o-2024-08-06", "gpt-4o-2024-11-20", " gpt-4o "])
def test_a_snapshot_name_prices_as_its_alias(table: PriceTable, name: str) -> None:
    assert table.rates(name, TODAY, "standard") == table.rates("gpt-4o", TODAY, "standard")


def test_the_namer_aliases_are_applied() -> None:
    table = load_price_table(namer=ModelNamer(aliases={"my-deployment": "gpt-4.1-mini"}))

    assert table.rates("my-deployment", TODAY, "standard") == table.rates(
        "gpt-4.1-mini", TODAY, "standard"
    )


def test_a_snapshot_listed_in_the_table_wins_over_its_alias() -> None:
    data = {
        "models": {
            "gpt-4o": [{"effective": date(2024, 1, 1), "input": "2.50"}],
            "gpt-4o-2024-05-13": [{"effective": date(2024, 1, 1), "input": "5.00"}],
        },
        "snapshots": {"gpt-4o-2024-08-06": "gpt-4o"},
    }
    table = price_table_from(data, "t.toml")

    assert table.price_version("gpt-4o-2024-05-13", TODAY) == "gpt-4o-2024-05-13@2024-01-01"
    assert table.price_version("gpt-4o-2024-08-06", TODAY) == "gpt-4o@2024-01-01"
    assert table.price_version("gpt-4o-2024-11-20", TODAY) is None  # shares nothing here


# --- snapshots (issue 9 item 5) -----------------------------------------------------------------


def test_a_dated_snapshot_is_priced_at_its_own_price_not_its_aliases(table: PriceTable) -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)

    # USD 5 / 15 per 1M; it was priced at gpt-4o's 2.50 / 10 (12.50) before.
    assert table.cost("gpt-4o-2024-05-13", TODAY, "standard", usage) == Decimal("20.00")
    assert table.cost("gpt-4o-2024-05-13", TODAY, "batch", usage) == Decimal("10.00")
    assert table.cost("gpt-4o", TODAY, "standard", usage) == Decimal("12.50")
    assert table.price_version("gpt-4o-2024-05-13", TODAY) == "gpt-4o-2024-05-13@2024-05-13"


def test_a_snapshot_price_without_a_cached_rate_leaves_cached_usage_unpriced(
    table: PriceTable,
) -> None:
    usage = Usage(input_tokens=1000, cached_tokens=500)

    assert table.cost("gpt-4o-2024-05-13", TODAY, "standard", usage) is None


@pytest.mark.parametrize("name", ["gpt-4o-2025-12-01", "gpt-4.1-2026-01-01", "o3-2024-01-01"])
def test_a_snapshot_the_table_does_not_list_is_unpriced(table: PriceTable, name: str) -> None:
    # Its alias is priced, but a snapshot may cost more: no guess from the stripped name.
    assert table.rates(name, TODAY, "standard") is None
    assert table.cost(name, TODAY, "standard", Usage(input_tokens=5)) is None
    assert table.price_version(name, TODAY) is None


@pytest.mark.parametrize(("snapshot", "model"), sorted(SHARED_SNAPSHOTS.items()))
def test_a_shared_snapshot_gets_every_tier_and_period_of_its_model(
    table: PriceTable, snapshot: str, model: str
) -> None:
    for day in (TODAY, date(2025, 5, 1)):
        for tier in TIERS:
            assert table.rates(snapshot, day, tier) == table.rates(model, day, tier)
        assert table.price_version(snapshot, day) == table.price_version(model, day)


def test_o3s_snapshot_follows_the_price_cut(table: PriceTable) -> None:
    usage = Usage(input_tokens=1_000_000)

    assert table.cost("o3-2025-04-16", date(2025, 6, 9), "standard", usage) == Decimal("10.00")
    assert table.cost("o3-2025-04-16", O3_CUT, "standard", usage) == Decimal("2.00")


def test_usage_logged_as_the_alias_is_priced_at_the_alias(table: PriceTable) -> None:
    assert table.rates("gpt-4o", TODAY, "standard") == Rates(
        Decimal("2.50"), Decimal("1.25"), Decimal("10.00")
    )


def test_a_user_alias_to_a_snapshot_prices_at_the_snapshot() -> None:
    table = load_price_table(namer=ModelNamer(aliases={"legacy-4o": "gpt-4o-2024-05-13"}))

    assert table.rates("legacy-4o", TODAY, "standard") == Rates(
        Decimal("5.00"), None, Decimal("15.00")
    )


def test_turning_date_stripping_off_for_comparison_does_not_change_prices() -> None:
    namer = ModelNamer(strip_date_suffix=False)
    table = load_price_table(namer=namer)

    assert table.rates("gpt-4o-2024-08-06", TODAY, "standard") == table.rates(
        "gpt-4o", TODAY, "standard"
    )
    assert table.rates("gpt-4o-2025-12-01", TODAY, "standard") is None


# --- embeddings -------------------------------------------------------------------------------


def test_embeddings_price_input_only(table: PriceTable) -> None:
    usage = Usage(input_tokens=3_000_000)

    assert table.cost("text-embedding-3-small", TODAY, "standard", usage) == Decimal("0.06")
    assert table.cost("text-embedding-3-large", TODAY, "batch", usage) == Decimal("0.195")


@pytest.mark.parametrize(
    "usage",
    [Usage(input_tokens=10, output_tokens=1), Usage(input_tokens=10, cached_tokens=5)],
)
def test_embedding_usage_with_output_or_cached_tokens_is_unpriced(usage: Usage) -> None:
    assert small_table().cost("embed", TODAY, "standard", usage) is None


# --- the bundled table ------------------------------------------------------------------------


@pytest.mark.parametrize("model", REQUIRED_MODELS)
def test_every_required_model_has_a_standard_price_today(table: PriceTable, model: str) -> None:
    rates = table.rates(model, TODAY, "standard")

    assert rates is not None
    assert rates.input is not None
    assert rates.input > 0
    assert rates.cached_input is not None
    assert 0 < rates.cached_input < rates.input
    assert rates.output is not None
    assert rates.output > rates.input


@pytest.mark.parametrize("model", OTHER_MODELS)
def test_every_other_model_has_a_standard_price_today(table: PriceTable, model: str) -> None:
    rates = table.rates(model, TODAY, "standard")

    assert rates is not None
    assert rates.pieces()


def test_the_bundled_table_lists_exactly_the_documented_models(table: PriceTable) -> None:
    listed = set(REQUIRED_MODELS) | set(OTHER_MODELS) | set(PRICED_SNAPSHOTS)
    assert set(table.entries) == listed
    assert dict(table.shares) == SHARED_SNAPSHOTS
    assert table.models() == listed | set(SHARED_SNAPSHOTS)
    assert table.source == BUNDLED_SOURCE


def test_the_config_copy_is_identical_to_the_bundled_table() -> None:
    assert CONFIG_COPY.read_bytes() == BUNDLED_FILE.read_bytes()


def test_every_bundled_tier_prices_a_typical_usage(table: PriceTable) -> None:
    usage = Usage(input_tokens=1000, cached_tokens=200, output_tokens=300)
    for model in table.models():
        for tier in TIERS:
            cost = table.cost(model, TODAY, tier, usage)
            if cost is not None:
                assert cost > 0, (model, tier)


def test_an_explicit_alias_wins_over_an_exact_table_entry() -> None:
    data = {
        "models": {
            "gpt-4o": [{"effective": date(2024, 1, 1), "input": "2.50"}],
            "gpt-4o-2024-05-13": [{"effective": date(2024, 1, 1), "input": "5.00"}],
        }
    }
    namer = ModelNamer(aliases={"gpt-4o-2024-05-13": "gpt-4o"})

    table = price_table_from(data, "t.toml", namer)

    assert table.price_version("gpt-4o-2024-05-13", TODAY) == "gpt-4o@2024-01-01"


def test_the_table_is_a_pricer(table: PriceTable) -> None:
    pricer: Pricer = table  # checked by mypy: the protocol the local sources take

    assert pricer.cost("gpt-4o", TODAY, "standard", Usage(output_tokens=100_000)) == Decimal(1)
