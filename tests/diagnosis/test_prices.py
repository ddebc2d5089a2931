"""Stale or wrong prices: the unit price OpenAI billed (Costs quantities) against the table."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from recon_job.diagnosis.prices import (
    check_prices,
    price_findings,
    price_sentence,
    snap,
    usd,
)
from recon_job.findings import BilledLine, PriceFinding
from recon_job.modelnames import ModelNamer
from recon_job.pricing import LongContext, PriceEntry, PriceTable, Rates

AUG1 = date(2026, 8, 1)
D = Decimal
GPT5 = Rates(
    input=D("1.25"),
    cached_input=D("0.25"),
    output=D("10"),
    long_context=LongContext(272_000, Rates(input=D("2.50"), output=D("15"))),
)
TABLE = PriceTable(
    entries={
        "gpt-5": (PriceEntry(date(2025, 8, 7), GPT5, priority=GPT5.scaled(D(2))),),
        "gpt-4o": (PriceEntry(date(2024, 5, 13), Rates(input=D("2.50"), output=D("10"))),),
        "whisper-1": (PriceEntry(date(2023, 3, 1), Rates(per_minute=D("0.006"))),),
        "tts-1": (PriceEntry(date(2023, 11, 6), Rates(per_1m_characters=D("15"))),),
        "dall-e-3": (
            PriceEntry(
                date(2023, 11, 6),
                Rates(per_image=(("1024x1024", D("0.04")), ("1024x1024/hd", D("0.08")))),
            ),
        ),
        "vector-store": (PriceEntry(date(2024, 4, 17), Rates(per_gb_day=D("0.10"))),),
    }
)
NAMER = ModelNamer()


def line(
    day: date,
    amount: str,
    quantity: str | int,
    *,
    model: str = "gpt-5-2025-08-07",
    piece: str = "cached input",
    tier: str = "standard",
    unit: str = "tokens",
) -> BilledLine:
    return BilledLine(day, model, piece, tier, D(amount), D(quantity), unit, "completions")


def days(n: int) -> list[date]:
    return [AUG1 + timedelta(days=i) for i in range(n)]


def test_a_price_change_mid_window_is_one_finding_since_the_day_it_started() -> None:
    # 4M cached tokens a day: $1.00 at the table's $0.25/1M, then $0.50 from Aug 7 (0.125/1M).
    lines = [line(d, "1.00", 4_000_000) for d in days(6)]
    lines += [line(d, "0.50", 4_000_000) for d in days(10)[6:]]

    found = price_findings(lines, TABLE, NAMER)

    assert found == (
        PriceFinding(
            model="gpt-5",
            piece="cached input",
            tier="standard",
            billed=D("0.125"),
            table=D("0.25"),
            unit="1M tokens",
            since=date(2026, 8, 7),
            last_day=date(2026, 8, 10),
        ),
    )
    assert price_sentence(found[0]) == (
        "OpenAI bills gpt-5 cached input at $0.125/1M since 2026-08-07; your table: $0.25"
    )


def test_since_is_the_first_day_of_the_data_billed_at_that_price() -> None:
    # The table is right from Aug 1 on... but OpenAI has billed the old price all along.
    lines = [line(d, "0.50", 4_000_000) for d in days(3)]

    (found,) = price_findings(lines, TABLE, NAMER)

    assert (found.since, found.last_day, found.billed) == (AUG1, date(2026, 8, 3), D("0.125"))


def test_a_price_that_matches_the_table_is_no_finding() -> None:
    lines = [line(d, "1.00", 4_000_000) for d in days(5)]
    lines.append(line(AUG1, "12.50", 10_000_000, piece="input"))

    checked = check_prices(lines, TABLE, NAMER)

    assert checked.findings == ()
    assert checked.compared == 6
    assert checked.skipped == {}


def test_openai_rounding_within_half_a_percent_or_a_cent_is_no_finding() -> None:
    # The reference's example: 53,440 gpt-4o input tokens billed $0.1332 ($2.50/1M: $0.1336),
    # 0.3% off; and a tiny line rounded up to a whole cent (100 tokens: $0.00025).
    lines = [
        line(AUG1, "0.1332", 53_440, model="gpt-4o-2024-08-06", piece="input"),
        line(AUG1, "0.01", 100, piece="input"),
        line(AUG1, "249.00", 100_000_000, model="gpt-4o-2024-08-06", piece="input"),
    ]

    assert price_findings(lines, TABLE, NAMER) == ()


def test_a_change_beyond_the_tolerance_is_a_finding() -> None:
    # 1% off on a $250 line: $2.50 more than the table says.
    lines = [line(AUG1, "252.50", 100_000_000, model="gpt-4o", piece="input")]

    (found,) = price_findings(lines, TABLE, NAMER)

    assert (found.billed, found.table) == (D("2.525"), D("2.50"))


def test_a_snapshot_finds_its_aliases_price_and_the_finding_names_the_alias() -> None:
    lines = [line(AUG1, "50", 10_000_000, model="gpt-4o-2024-08-06", piece="input")]

    (found,) = price_findings(lines, TABLE, NAMER)

    assert (found.model, found.billed, found.table) == ("gpt-4o", D("5"), D("2.50"))
    assert price_sentence(found) == (
        "OpenAI bills gpt-4o input at $5.00/1M since 2026-08-01; your table: $2.50"
    )


def test_1000_tokens_convert_to_the_price_per_million_exactly() -> None:
    # 7,000 units of 1,000 tokens = 7M tokens; $0.875 is $0.125/1M.
    lines = [line(AUG1, "0.875", 7_000, unit="1000_tokens")]

    (found,) = price_findings(lines, TABLE, NAMER)

    assert (found.billed, found.unit) == (D("0.125"), "1M tokens")


def test_durations_convert_to_the_price_per_minute_exactly() -> None:
    whisper = {"model": "whisper-1", "piece": "audio"}
    agreeing = [
        line(AUG1, "6.00", 1_000, unit="duration_minutes", **whisper),
        line(AUG1 + timedelta(days=1), "6.00", 60_000, unit="duration_seconds", **whisper),
        line(AUG1 + timedelta(days=2), "3.60", 10, unit="duration_hours", **whisper),
    ]
    assert price_findings(agreeing, TABLE, NAMER) == ()

    dearer = [line(AUG1, "9.00", 1_000, unit="duration_minutes", **whisper)]
    (found,) = price_findings(dearer, TABLE, NAMER)
    assert (found.billed, found.table, found.unit) == (D("0.009"), D("0.006"), "minute")
    assert price_sentence(found).startswith("OpenAI bills whisper-1 audio at $0.009/minute")


def test_characters_images_and_storage_compare_in_the_tables_units() -> None:
    lines = [
        line(AUG1, "30", 1_000_000, model="tts-1", piece="characters", unit="characters"),
        line(AUG1, "8.00", 100, model="dall-e-3", piece="1024x1024, hd", unit="images"),
        # 24 GiB-hours is one GiB for a day: 1.073741824 GB-days at $0.10.
        line(
            AUG1,
            "10.7374182400",
            2400,
            model="vector-store",
            piece="storage",
            unit="gibibyte_hours",
        ),
    ]

    (found,) = price_findings(lines, TABLE, NAMER)

    assert (found.model, found.billed, found.table, found.unit) == (
        "tts-1",
        D("30"),
        D("15"),
        "1M characters",
    )


def test_a_tier_and_long_context_are_compared_with_their_own_rates() -> None:
    lines = [
        line(AUG1, "2.50", 1_000_000, piece="input", tier="priority"),  # priority: 2 x 1.25
        line(AUG1, "2.50", 1_000_000, piece="input, long context"),  # long context: 2.50
        line(AUG1, "40", 2_000_000, piece="output, long context", tier="priority"),
    ]

    (found,) = price_findings(lines, TABLE, NAMER)

    assert (found.piece, found.tier, found.billed, found.table) == (
        "output, long context",
        "priority",
        D("20"),
        D("30"),
    )
    assert price_sentence(found) == (
        "OpenAI bills gpt-5 output, long context (priority) at $20.00/1M since 2026-08-01; "
        "your table: $30.00"
    )


def test_a_piece_the_table_has_no_rate_for_is_a_finding_without_a_table_figure() -> None:
    lines = [line(AUG1, "1.25", 1_000_000, piece="cache writes")]

    (found,) = price_findings(lines, TABLE, NAMER)

    assert (found.billed, found.table) == (D("1.25"), None)
    assert price_sentence(found).endswith("; your table has no price for it")


def test_lines_it_cannot_compare_are_counted_by_reason() -> None:
    lines = [
        line(AUG1, "1", 10, unit="furlongs"),
        line(AUG1, "1", 10, piece="telepathy"),
        line(AUG1, "1", 10, model="my-private-model"),
        line(AUG1, "1", 10, tier="turbo"),
        line(AUG1, "1", 0),
        line(AUG1, "-1", 10),
    ]

    checked = check_prices(lines, TABLE, NAMER)

    assert checked.findings == ()
    assert checked.compared == 0
    assert checked.skipped == {
        "credit": 1,
        "no_quantity": 1,
        "unknown_piece": 1,
        "unknown_tier": 1,
        "unknown_unit": 1,
        "unpriced_model": 1,
    }


def test_two_snapshots_billed_the_same_wrong_price_are_one_finding_from_the_earliest_day() -> None:
    lines = [
        line(AUG1 + timedelta(days=3), "50", 10_000_000, model="gpt-4o-2024-08-06", piece="input"),
        line(AUG1, "50", 10_000_000, model="gpt-4o-2024-11-20", piece="input"),
    ]

    (found,) = price_findings(lines, TABLE, NAMER)

    assert (found.since, found.last_day) == (AUG1, date(2026, 8, 4))


def test_billed_prices_snap_to_the_published_digits() -> None:
    assert snap(D("0.12501")) == D("0.125")
    assert snap(D("2.4999")) == D("2.5")
    assert snap(D("0.1625")) == D("0.1625")
    assert snap(D("0.0375")) == D("0.0375")
    assert usd(D("2.5")) == "$2.50"
    assert usd(D("0.0375")) == "$0.0375"
    assert usd(D("1E+2")) == "$100.00"


@given(
    cents=st.integers(min_value=1, max_value=10_000_000),
    millions=st.integers(min_value=1, max_value=1000),
)
def test_a_line_billed_at_the_tables_price_is_never_a_finding(cents: int, millions: int) -> None:
    table = PriceTable(entries={"m": (PriceEntry(date(2020, 1, 1), Rates(input=D(cents) / 100)),)})
    amount = D(cents) / 100 * millions

    found = price_findings(
        [line(AUG1, str(amount), millions * 1_000_000, model="m", piece="input")], table, NAMER
    )

    assert found == ()
