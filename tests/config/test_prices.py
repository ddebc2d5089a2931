"""The price file (recon_job.config.prices): reading, the user's file over the bundled one, and
its validation as pydantic models — every problem at once, each with its path."""

from __future__ import annotations

import tomllib
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from recon_job.config.prices import (
    BUNDLED_SOURCE,
    PriceFile,
    bundled_prices,
    load_price_table,
    parse_price_file,
    price_table_from,
)
from recon_job.errors import ConfigError
from recon_job.pricing import Rates

TODAY = date(2026, 11, 22)


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

    table = load_price_table(user)

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
        load_price_table(missing)
    assert str(missing) in str(info.value)


def test_a_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[models."x"]]\ninput = \n', encoding="utf-8")

    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_price_table(bad)
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

[[models."o1"]]
effective = 2024-12-17
per_image = { "big" = "1" }
long_context = { threshold = 0, output = "2", speed = 1 }
unbilled = ["seconds", "minutes"]
priority = { long_context = { input = "1" } }

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
    "config/pricing.toml: models.o3[0]: no rate given",
    "config/pricing.toml: models.o1[0].priority.long_context.threshold: missing (input tokens",
    "config/pricing.toml: models.o1[0].per_image: 'big' is not an image variant",
    "config/pricing.toml: models.o1[0].long_context.threshold: 0 is not a whole number",
    "config/pricing.toml: models.o1[0].long_context.speed: unknown key (expected one of input,",
    "config/pricing.toml: models.o1[0].unbilled: minutes: not a quantity",
    "config/pricing.toml: models.o4-mini[0].effective: missing",
    "config/pricing.toml: models.gpt-5[0].effective: 'soon' is not a date",
]


def test_every_validation_problem_is_reported_at_once() -> None:
    data = tomllib.loads(BAD_FILE)

    with pytest.raises(ConfigError) as info:
        price_table_from(data, "config/pricing.toml")

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
        load_price_table(user)

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
        price_table_from(data, "f.toml")
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(f"f.toml: {message}")


def test_a_single_table_entry_is_accepted_as_one_period() -> None:
    data = {"models": {"m": {"effective": date(2025, 1, 1), "input": 1.5}}}

    table = price_table_from(data, "t.toml")

    assert table.rates("m", TODAY, "standard") == Rates(Decimal("1.5"))


def test_numbers_are_read_via_their_text_not_float_math() -> None:
    data = {"models": {"m": [{"effective": date(2025, 1, 1), "input": 0.1, "output": 0.3}]}}

    rates = price_table_from(data, "t.toml").rates("m", TODAY, "standard")

    assert rates == Rates(Decimal("0.1"), None, Decimal("0.3"))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("inf", "'inf' is not a number"),
        (float("nan"), "nan is not a number"),
        (-0.5, "-0.5 is negative"),
        ({"x": 1}, "{'x': 1} is not a number"),
    ],
)
def test_amounts_must_be_finite_non_negative_numbers(value: object, message: str) -> None:
    data = {"models": {"m": [{"effective": date(2025, 1, 1), "input": value}]}}

    with pytest.raises(ConfigError) as info:
        parse_price_file(data, "f.toml")

    assert info.value.problems == [f"f.toml: models.m[0].input: {message}"]


def test_an_effective_day_is_a_date_not_a_datetime_and_iso_text_is_read() -> None:
    data = {
        "models": {
            "m": [{"effective": "2025-01-01", "input": "1"}],
            "n": [{"effective": datetime(2025, 1, 1, 12), "input": "1"}],
        }
    }

    with pytest.raises(ConfigError) as info:
        parse_price_file(data, "f.toml")

    [problem] = info.value.problems
    assert problem.startswith("f.toml: models.n[0].effective: datetime.datetime(2025, 1, 1, 12")
    assert "is not a date like 2025-06-10" in problem


def test_a_tier_table_refuses_unknown_keys_and_needs_a_rate() -> None:
    data = {
        "models": {
            "m": [
                {
                    "effective": date(2025, 1, 1),
                    "input": "1",
                    "priority": {"output": "2", "colour": "red"},
                }
            ]
        }
    }

    with pytest.raises(ConfigError) as info:
        parse_price_file(data, "f.toml")

    [unknown] = info.value.problems
    assert unknown.startswith(
        "f.toml: models.m[0].priority.colour: unknown key (expected one of input, cached_input, "
        "output, cache_write, audio_input,"
    )
    assert "per_image, per_1m_characters, per_minute, per_1k_calls, per_gb_day, per_session" in (
        unknown
    )

    data["models"]["m"][0]["priority"] = {}
    with pytest.raises(ConfigError) as info:
        parse_price_file(data, "f.toml")
    assert info.value.problems == [
        'f.toml: models.m[0].priority: no rate given: list at least one rate, e.g. input = "1.25"'
    ]


def test_the_bundled_file_is_a_valid_price_file_read_once() -> None:
    assert isinstance(bundled_prices(), PriceFile)
    assert bundled_prices() is bundled_prices()
    first, second = load_price_table(), load_price_table()
    assert first.entries == second.entries
    assert first.entries is not second.entries  # a user file never changes the bundled table
    assert first.source == BUNDLED_SOURCE


def test_amounts_keep_every_digit_of_their_text() -> None:
    text = '[[models."m"]]\neffective = 2025-01-01\ninput = "0.1375"\noutput = 1.100\n'

    table = price_table_from(tomllib.loads(text), "t.toml")

    assert table.rates("m", TODAY, "standard") == Rates(Decimal("0.1375"), None, Decimal("1.1"))


# --- snapshots (issue 9 item 5) -----------------------------------------------------------------


def _period(input_rate: str = "1") -> dict[str, Any]:
    return {"effective": date(2025, 1, 1), "input": input_rate}


def test_a_snapshot_shares_its_models_price_only_where_the_file_says_so() -> None:
    data = {
        "models": {"m": [_period("2")]},
        "snapshots": {"m-2025-01-01": "m"},
    }

    table = price_table_from(data, "t.toml")

    assert table.rates("m-2025-01-01", TODAY, "standard") == Rates(Decimal(2))
    assert table.rates("m-2025-02-02", TODAY, "standard") is None


def test_every_snapshots_problem_is_reported_with_its_path() -> None:
    data = {
        "models": {"m": [_period()], "m-2025-01-01": [_period()]},
        "snapshots": {
            "m-2025-01-01": "m",  # also has entries of its own
            "m-latest": "m",  # not a dated snapshot
            "m-2025-03-03": "other",  # a snapshot of m, not of other
            "m-2025-04-04": 7,  # not a model name
        },
    }

    with pytest.raises(ConfigError) as info:
        price_table_from(data, "f.toml")

    assert sorted(info.value.problems) == [
        "f.toml: snapshots.m-2025-01-01: 'm-2025-01-01' also has [[models.\"m-2025-01-01\"]] "
        "entries: a snapshot is priced at its own entries or shares another model's, not both",
        "f.toml: snapshots.m-2025-03-03: 'm-2025-03-03' is not a dated snapshot of 'other': "
        'list a snapshot as "other-YYYY-MM-DD" = "other"',
        "f.toml: snapshots.m-2025-04-04: 7 is not a model name",
        "f.toml: snapshots.m-latest: 'm-latest' is not a dated snapshot of 'm': "
        'list a snapshot as "m-YYYY-MM-DD" = "m"',
    ]


def test_snapshots_must_be_a_table() -> None:
    with pytest.raises(ConfigError) as info:
        price_table_from({"snapshots": ["x"]}, "f.toml")

    assert info.value.problems == [
        'f.toml: snapshots: must be a table of "SNAPSHOT" = "MODEL" lines'
    ]


def test_a_snapshot_sharing_a_model_without_entries_is_a_config_error(tmp_path: Path) -> None:
    user = tmp_path / "prices.toml"
    user.write_text('[snapshots]\n"gpt-9-2026-01-01" = "gpt-9"\n', encoding="utf-8")

    with pytest.raises(ConfigError) as info:
        load_price_table(user)

    assert info.value.problems == [
        f"{user}: snapshots.gpt-9-2026-01-01: 'gpt-9' is not a model of the price table; "
        'add [[models."gpt-9"]] entries, or give gpt-9-2026-01-01 entries of its own'
    ]


def test_a_user_file_may_share_a_bundled_models_price_or_end_a_bundled_share(
    tmp_path: Path,
) -> None:
    user = tmp_path / "prices.toml"
    user.write_text(
        "[snapshots]\n"
        '"gpt-4.1-2026-02-01" = "gpt-4.1"\n'
        '"gpt-4o-2024-05-13" = "gpt-4o"\n'
        '[[models."gpt-4o-2024-08-06"]]\n'
        "effective = 2024-08-06\n"
        'input = "9.00"\n',
        encoding="utf-8",
    )

    table = load_price_table(user)

    # A new share of a bundled model.
    assert table.rates("gpt-4.1-2026-02-01", TODAY, "standard") == table.rates(
        "gpt-4.1", TODAY, "standard"
    )
    # The user's share replaces the bundled entries of that snapshot ...
    assert table.rates("gpt-4o-2024-05-13", TODAY, "standard") == table.rates(
        "gpt-4o", TODAY, "standard"
    )
    # ... and the user's own entries replace a bundled share.
    assert table.rates("gpt-4o-2024-08-06", TODAY, "standard") == Rates(Decimal("9.00"))
    # Bundled shares the file does not mention stay.
    assert table.rates("gpt-4o-2024-11-20", TODAY, "standard") == table.rates(
        "gpt-4o", TODAY, "standard"
    )


def test_the_bundled_snapshots_all_share_a_bundled_model() -> None:
    bundled = bundled_prices()

    assert bundled.snapshots
    assert set(bundled.snapshots.values()) <= set(bundled.models)
    assert not set(bundled.snapshots) & set(bundled.models)
