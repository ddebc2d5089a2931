"""The gap locator: intervals holding a difference, their shares, minute refinement, sentences."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from recon_job.diagnosis.gaps import (
    HOUR,
    MINUTE,
    differences,
    gap_sentence,
    locate,
    minute_spans,
    refine,
)
from recon_job.findings import Gap, GroupRef

DAY = date(2026, 2, 3)
MIDNIGHT = datetime(2026, 2, 3, tzinfo=UTC)
GROUP = GroupRef(DAY, "completions", "gpt-4o")


def at(hour: int, minute: int = 0) -> datetime:
    return MIDNIGHT + timedelta(hours=hour, minutes=minute)


def outage_minutes(per_minute: int = 4) -> tuple[dict[datetime, Decimal], dict[datetime, Decimal]]:
    """OpenAI: ``per_minute`` requests every minute of the day; local: none 14:00-15:20."""
    openai = {MIDNIGHT + m * MINUTE: Decimal(per_minute) for m in range(24 * 60)}
    local = {t: v for t, v in openai.items() if not at(14) <= t < at(15, 20)}
    return local, openai


def hourly(series: dict[datetime, Decimal]) -> dict[datetime, Decimal]:
    out: dict[datetime, Decimal] = {}
    for t, v in series.items():
        hour = t.replace(minute=0)
        out[hour] = out.get(hour, Decimal(0)) + v
    return out


def test_it_locates_a_logging_outage_to_the_hours_that_hold_it() -> None:
    local, openai = outage_minutes()

    gaps = locate(hourly(local), hourly(openai), width=HOUR, quantity="requests", resolution="1h")

    assert gaps == (Gap(at(14), at(16), "requests", Decimal(-320), Decimal("100.0"), "1h"),)


def test_it_narrows_the_outage_to_the_minute_with_minute_buckets_of_its_span() -> None:
    local, openai = outage_minutes()
    (gap,) = locate(hourly(local), hourly(openai), width=HOUR, quantity="requests", resolution="1h")
    (span,) = minute_spans(gap)
    minutes = {t: v for t, v in openai.items() if span[0] <= t < span[1]}
    local_minutes = {t: v for t, v in local.items() if span[0] <= t < span[1]}

    refined = refine(gap, local_minutes, minutes)

    assert (refined.start, refined.end) == (at(14), at(15, 20))
    assert refined.difference == Decimal(-320)
    assert refined.share_pct == Decimal("100.0")
    assert refined.resolution == "1m"


def test_refining_trims_a_partial_first_hour_and_moves_its_part_of_the_difference() -> None:
    openai = {at(13) + m * MINUTE: Decimal(1) for m in range(180)}
    # Missing 13:45-15:00, and one extra request logged at 13:10 (a retry logged twice).
    local = {t: v for t, v in openai.items() if not at(13, 45) <= t < at(15)}
    local[at(13, 10)] = Decimal(2)
    (gap,) = locate(hourly(local), hourly(openai), width=HOUR, quantity="requests", resolution="1h")
    assert (gap.start, gap.end, gap.difference) == (at(13), at(15), Decimal(-74))

    refined = refine(gap, local, openai)

    assert (refined.start, refined.end, refined.difference) == (at(13, 45), at(15), Decimal(-75))
    assert refined.share_pct == Decimal("101.4")  # the retry drifts the other way


def test_an_edge_hour_without_minute_data_keeps_its_hour_edge() -> None:
    gap = Gap(at(14), at(16), "requests", Decimal(-80), Decimal(100), "1h")
    openai = {at(15) + m * MINUTE: Decimal(1) for m in range(60)}
    local = {t: v for t, v in openai.items() if t >= at(15, 20)}

    refined = refine(gap, local, openai)

    assert (refined.start, refined.end) == (at(14), at(15, 20))


def test_a_long_gap_is_refined_from_its_two_edge_hours_only() -> None:
    gap = Gap(at(0), at(0) + timedelta(hours=30), "tokens", Decimal(-5), Decimal(100))

    assert minute_spans(gap) == ((at(0), at(1)), (at(29), at(30)))


def test_it_merges_only_adjacent_material_buckets_of_the_differences_sign() -> None:
    openai = {at(h): Decimal(100) for h in range(24)}
    local = dict(openai)
    local[at(3)] = Decimal(40)  # -60
    local[at(4)] = Decimal(50)  # -50
    local[at(10)] = Decimal(70)  # -30
    local[at(12)] = Decimal(99)  # -1: noise, not material
    local[at(20)] = Decimal(120)  # +20: the other way, never a gap

    gaps = locate(local, openai, width=HOUR, quantity="requests", resolution="1h")

    assert [(g.start, g.end, g.difference) for g in gaps] == [
        (at(3), at(5), Decimal(-110)),
        (at(10), at(11), Decimal(-30)),
    ]
    assert [g.share_pct for g in gaps] == [Decimal("90.9"), Decimal("24.8")]  # of -121


def test_a_drift_spread_over_the_whole_day_is_the_whole_day() -> None:
    openai = {at(h): Decimal(100) for h in range(24)}
    local = {t: Decimal(98) for t in openai}

    (gap,) = locate(local, openai, width=HOUR, quantity="requests", resolution="1h")

    assert (gap.start, gap.end, gap.share_pct) == (at(0), at(24), Decimal("100.0"))


def test_sides_that_agree_have_no_gap() -> None:
    openai = {at(1): Decimal(5), at(2): Decimal(-3)}
    local = {at(1): Decimal(2), at(2): Decimal(0)}

    assert locate(local, openai, width=HOUR, quantity="requests", resolution="1h") == ()


def test_at_most_three_gaps_are_kept_largest_first() -> None:
    openai = {at(h): Decimal(10) for h in range(0, 24, 2)}
    local = {t: Decimal(h % 5) for h, t in enumerate(openai)}

    gaps = locate(local, openai, width=HOUR, quantity="requests", resolution="1h")

    assert len(gaps) == 3
    assert [abs(g.difference) for g in gaps] == sorted(
        (abs(g.difference) for g in gaps), reverse=True
    )


def test_the_sentence_says_the_side_the_amount_the_span_and_the_share() -> None:
    gap = Gap(at(14), at(15, 20), "requests", Decimal(-312), Decimal("94.2"), "1m")

    assert gap_sentence(GROUP, gap) == (
        "2026-02-03 completions gpt-4o: your logs are missing 312 requests during "
        "14:00\u201315:20 UTC (94% of the difference): a logging outage?"
    )


def test_the_sentence_writes_money_and_a_span_that_leaves_the_day() -> None:
    gap = Gap(at(23), at(25), "cost", Decimal("12.5"), Decimal("0.4"))

    text = gap_sentence(GroupRef(DAY, "completions", "gpt-4o", "proj_a"), gap)

    assert (
        "[proj_a]: your logs count $12.50 more than OpenAI during 23:00\u20132026-02-04 01:00 UTC "
        "(0.4% of the difference): lines logged twice"
    ) in text
    assert gap_sentence(
        GROUP, Gap(at(22), at(24), "input_tokens", Decimal(-1500), Decimal(50))
    ).startswith(
        "2026-02-03 completions gpt-4o: your logs are missing 1,500 input tokens during "
        "22:00\u201324:00 UTC (50%"
    )


buckets = st.dictionaries(
    st.integers(0, 47).map(lambda h: MIDNIGHT + h * HOUR),
    st.integers(-50, 50).map(Decimal),
    max_size=48,
)


@given(buckets, buckets)
def test_gaps_never_count_a_bucket_twice(
    local: dict[datetime, Decimal], openai: dict[datetime, Decimal]
) -> None:
    diffs = differences(local, openai)
    total = sum(diffs.values(), Decimal(0))

    gaps = locate(local, openai, width=HOUR, quantity="requests", resolution="1h")

    covered = [t for g in gaps for t in diffs if g.start <= t < g.end]
    assert len(covered) == len(set(covered))  # disjoint intervals
    assert sum((g.difference for g in gaps), Decimal(0)) == sum(
        (diffs[t] for t in covered), Decimal(0)
    )
    same_sign = sum((d for d in diffs.values() if d * total > 0), Decimal(0))
    assert all(g.difference * total > 0 for g in gaps)
    assert abs(sum((g.difference for g in gaps), Decimal(0))) <= abs(same_sign)
    if gaps:
        assert sum((g.share_pct for g in gaps), Decimal(0)) <= same_sign / total * 100 + Decimal(
            "0.2"
        )
