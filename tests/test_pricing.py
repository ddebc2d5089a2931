"""Tests of the effective-dated price table (recon_job.pricing)."""

from __future__ import annotations

import tomllib
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from recon_job.errors import ConfigError
from recon_job.modelnames import ModelNamer
from recon_job.models import TIERS, Tier, Usage
from recon_job.pricing import BUNDLED_SOURCE, PriceTable, Rates
from recon_job.sources.base import Pricer

ROOT = Path(__file__).resolve().parents[1]
BUNDLED_FILE = ROOT / "recon_job" / "data" / "pricing.toml"
CONFIG_COPY = ROOT / "config" / "pricing.toml"
TODAY = date(2026, 11, 22)
REQUIRED_MODELS = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "o3",
    "o4-mini",
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "text-embedding-3-small",
    "text-embedding-3-large",
)
FLEX_MODELS = ("o3", "o4-mini", "gpt-5", "gpt-5-mini", "gpt-5-nano")
O3_CUT = date(2025, 6, 10)


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.load()


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
    return PriceTable.from_mapping(data, "test.toml")


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
    table = PriceTable.from_mapping(data, "t.toml")

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
    table = PriceTable.load(namer=ModelNamer(aliases={"my-deployment": "gpt-4.1-mini"}))

    assert table.rates("my-deployment", TODAY, "standard") == table.rates(
        "gpt-4.1-mini", TODAY, "standard"
    )


def test_a_snapshot_listed_in_the_table_wins_over_its_alias() -> None:
    data = {
        "models": {
            "gpt-4o": [{"effective": date(2024, 1, 1), "input": "2.50"}],
            "gpt-4o-2024-05-13": [{"effective": date(2024, 1, 1), "input": "5.00"}],
        }
    }
    table = PriceTable.from_mapping(data, "t.toml")

    assert table.price_version("gpt-4o-2024-05-13", TODAY) == "gpt-4o-2024-05-13@2024-01-01"
    assert table.price_version("gpt-4o-2024-08-06", TODAY) == "gpt-4o@2024-01-01"


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
    assert rates.input > 0
    if not model.startswith("text-embedding"):
        assert rates.cached_input is not None
        assert 0 < rates.cached_input < rates.input
        assert rates.output is not None
        assert rates.output > rates.input


def test_the_bundled_table_lists_exactly_the_documented_models(table: PriceTable) -> None:
    assert table.models() == set(REQUIRED_MODELS)
    assert table.source == BUNDLED_SOURCE


def test_the_config_copy_is_identical_to_the_bundled_table() -> None:
    assert CONFIG_COPY.read_bytes() == BUNDLED_FILE.read_bytes()


def test_every_bundled_tier_prices_a_typical_usage(table: PriceTable) -> None:
    usage = Usage(input_tokens=1000, cached_tokens=200, output_tokens=300)
    for model in REQUIRED_MODELS:
        for tier in TIERS:
            cost = table.cost(model, TODAY, tier, usage)
            if cost is not None:
                assert cost > 0, (model, tier)


# --- user overrides ---------------------------------------------------------------------------


def test_a_user_file_replaces_one_model_and_adds_another(tmp_path: Path) -> None:
    user = tmp_path / "prices.toml"
    user.write_text(
        'batch_discount = "0.25"\n'
        '[[models."gpt-4o"]]\n'
        "effective = 2026-01-01\n"
        'input = "1.00"\n'
        'cached_input = "0.10"\n'
        'output = "4.00"\n'
        '[[models."my-model"]]\n'
        "effective = 2026-01-01\n"
        "input = 3\n"
        "cached_input = 0.3\n"
        "output = 12\n",
        encoding="utf-8",
    )

    table = PriceTable.load(user)

    # The user's list replaces the bundled gpt-4o list entirely: no price before 2026.
    assert table.rates("gpt-4o", date(2025, 12, 31), "standard") is None
    assert table.rates("gpt-4o", TODAY, "standard") == Rates(
        Decimal("1.00"), Decimal("0.10"), Decimal("4.00")
    )
    assert table.rates("gpt-4o", TODAY, "priority") is None
    assert table.rates("my-model", TODAY, "standard") == Rates(
        Decimal(3), Decimal("0.3"), Decimal(12)
    )
    assert table.rates("my-model", TODAY, "batch") == Rates(
        Decimal("0.75"), Decimal("0.075"), Decimal("3")
    )
    assert table.rates("o3", TODAY, "standard") == Rates(
        Decimal("2.00"), Decimal("0.50"), Decimal("8.00")
    )
    assert str(user) in table.source


def test_a_missing_user_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"

    with pytest.raises(ConfigError, match="cannot read the price file") as info:
        PriceTable.load(missing)
    assert str(missing) in str(info.value)


def test_a_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[models."x"]]\ninput = \n', encoding="utf-8")

    with pytest.raises(ConfigError, match="not valid TOML") as info:
        PriceTable.load(bad)
    assert str(bad) in str(info.value)


# --- validation -------------------------------------------------------------------------------

BAD_FILE = """\
colour = "blue"
batch_discount = "2"

[[models."gpt-4o"]]
effective = 2024-10-01
input = "2.50"
cached_input = "-1"
output = "abc"
turbo = { input = "1" }

[[models."gpt-4o"]]
effective = 2024-10-01
input = "2.00"
flex = { input = "1", speed = "fast" }

[[models."gpt-4o"]]
effective = 2024-09-01
input = "NaN"
output = true

[[models."o3"]]
effective = 2025-04-16
output = "8"
priority = { output = "14" }

[[models."o4-mini"]]
input = "1.10"

[[models."gpt-5"]]
effective = "soon"
input = "1.25"
"""

EXPECTED_PROBLEMS = [
    "config/pricing.toml: colour: unknown key",
    "config/pricing.toml: batch_discount: 2 must be above 0 and at most 1",
    "config/pricing.toml: models.gpt-4o[0].turbo: unknown key",
    "config/pricing.toml: models.gpt-4o[0].cached_input: '-1' is negative",
    "config/pricing.toml: models.gpt-4o[0].output: 'abc' is not a number",
    "config/pricing.toml: models.gpt-4o[1].effective: 2024-10-01 is not after the previous",
    "config/pricing.toml: models.gpt-4o[1].flex.speed: unknown key",
    "config/pricing.toml: models.gpt-4o[2].input: 'NaN' is not a number",
    "config/pricing.toml: models.gpt-4o[2].output: True is not a number",
    "config/pricing.toml: models.gpt-4o[2].effective: 2024-09-01 is not after the previous",
    "config/pricing.toml: models.o3[0].input: missing",
    "config/pricing.toml: models.o3[0].priority.input: missing",
    "config/pricing.toml: models.o4-mini[0].effective: missing",
    "config/pricing.toml: models.gpt-5[0].effective: 'soon' is not a date",
]


def test_every_validation_problem_is_reported_at_once() -> None:
    data = tomllib.loads(BAD_FILE)

    with pytest.raises(ConfigError) as info:
        PriceTable.from_mapping(data, "config/pricing.toml")

    problems = info.value.problems
    for expected in EXPECTED_PROBLEMS:
        assert any(p.startswith(expected) for p in problems), (expected, problems)
    assert len(problems) == len(EXPECTED_PROBLEMS), problems
    assert f"configuration has {len(EXPECTED_PROBLEMS)} problems" in str(info.value)
    assert info.value.permanent


def test_a_user_file_with_problems_lists_them_with_its_path(tmp_path: Path) -> None:
    user = tmp_path / "pricing.toml"
    user.write_text(
        '[[models."gpt-4o"]]\neffective = 2024-10-01\ninput = "x"\noutput = "-2"\n',
        encoding="utf-8",
    )

    with pytest.raises(ConfigError) as info:
        PriceTable.load(user)

    assert info.value.problems == [
        f"{user}: models.gpt-4o[0].input: 'x' is not a number",
        f"{user}: models.gpt-4o[0].output: '-2' is negative",
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"models": []}, "models: must be a table"),
        ({"models": {"m": []}}, "models.m: must be one or more"),
        ({"models": {"m": ["x"]}}, "models.m[0]: must be a table"),
        (
            {"models": {"m": [{"effective": date(2025, 1, 1), "input": "1", "flex": "cheap"}]}},
            "models.m[0].flex: must be a table",
        ),
        ({"batch_discount": "0"}, "batch_discount: 0 must be above 0"),
        ({"batch_discount": [1]}, "batch_discount: [1] is not a number"),
    ],
)
def test_malformed_structure_is_reported(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        PriceTable.from_mapping(data, "f.toml")
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(f"f.toml: {message}")


def test_a_single_table_entry_is_accepted_as_one_period() -> None:
    data = {"models": {"m": {"effective": date(2025, 1, 1), "input": 1.5}}}

    table = PriceTable.from_mapping(data, "t.toml")

    assert table.rates("m", TODAY, "standard") == Rates(Decimal("1.5"))


def test_numbers_are_read_via_their_text_not_float_math() -> None:
    data = {"models": {"m": [{"effective": date(2025, 1, 1), "input": 0.1, "output": 0.3}]}}

    rates = PriceTable.from_mapping(data, "t.toml").rates("m", TODAY, "standard")

    assert rates == Rates(Decimal("0.1"), None, Decimal("0.3"))


def test_an_explicit_alias_wins_over_an_exact_table_entry() -> None:
    data = {
        "models": {
            "gpt-4o": [{"effective": date(2024, 1, 1), "input": "2.50"}],
            "gpt-4o-2024-05-13": [{"effective": date(2024, 1, 1), "input": "5.00"}],
        }
    }
    namer = ModelNamer(aliases={"gpt-4o-2024-05-13": "gpt-4o"})

    table = PriceTable.from_mapping(data, "t.toml", namer)

    assert table.price_version("gpt-4o-2024-05-13", TODAY) == "gpt-4o@2024-01-01"


def test_the_table_is_a_pricer(table: PriceTable) -> None:
    pricer: Pricer = table  # checked by mypy: the protocol the local sources take

    assert pricer.cost("gpt-4o", TODAY, "standard", Usage(output_tokens=100_000)) == Decimal(1)
