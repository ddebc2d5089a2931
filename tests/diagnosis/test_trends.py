"""The trend rule: a two-sided CUSUM finds a persistent shift of a daily drift % series at the
day it started, and nothing in noise under the slack."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recon_job.diagnosis.trends import TrendRule, all_change_points, change_points, trend_sentence
from recon_job.findings import ChangePoint

D = Decimal
START = date(2026, 9, 1)
RULE = TrendRule(slack_pct=D("0.5"), threshold_pct=D(5), min_days=5)


def series(values: list[Decimal], start: date = START) -> dict[date, Decimal]:
    return {start + timedelta(days=i): value for i, value in enumerate(values)}


def test_a_clean_step_gives_one_change_point_on_its_first_day() -> None:
    values = [D("0.2")] * 30 + [D("-3.8")] * 20

    points = change_points("completions", "gpt-4o", series(values), RULE)

    assert points == (
        ChangePoint("completions", "gpt-4o", START + timedelta(days=30), D("0.20"), D("-3.80")),
    )
    assert trend_sentence(points[0]) == (
        "gpt-4o drift moved from +0.2% to \N{MINUS SIGN}3.8% on 2026-10-01 and stayed"
    )


def test_a_flat_series_has_no_change_point() -> None:
    assert change_points("completions", "gpt-4o", series([D("1.5")] * 90), RULE) == ()


def test_a_spike_of_two_days_is_not_a_persistent_shift() -> None:
    values = [D(0)] * 20 + [D(12), D(12)] + [D(0)] * 20

    assert change_points("completions", "gpt-4o", series(values), RULE) == ()


def test_a_new_level_not_held_for_min_days_yet_is_not_reported() -> None:
    values = [D(0)] * 20 + [D(-4)] * 4

    assert change_points("completions", "gpt-4o", series(values), RULE) == ()
    held = change_points("completions", "gpt-4o", series([*values, D(-4)]), RULE)
    assert [p.day for p in held] == [START + timedelta(days=20)]


def test_a_shift_under_the_slack_is_noise() -> None:
    values = [D(0)] * 30 + [D("0.4")] * 30

    assert change_points("completions", "gpt-4o", series(values), RULE) == ()


def test_missing_days_are_skipped_and_the_change_is_dated_by_its_first_day_with_a_figure() -> None:
    values = series([D("0.1")] * 20 + [D(3)] * 15)
    # No figure for the step's own day nor the two before it: the first day seen at the new
    # level is the change point.
    for offset in (18, 19, 20):
        del values[START + timedelta(days=offset)]

    points = change_points("images", "gpt-image-1", values, RULE)

    assert [(p.day, p.before_pct, p.after_pct) for p in points] == [
        (START + timedelta(days=21), D("0.10"), D("3.00"))
    ]
    assert trend_sentence(points[0]).startswith("images gpt-image-1 drift moved from +0.1% to +3")


def test_two_steps_give_two_change_points_with_the_means_of_each_level() -> None:
    values = [D(0)] * 20 + [D(-5)] * 10 + [D(2)] * 10

    points = change_points("completions", "gpt-4o", series(values), RULE)

    assert [(p.day, p.before_pct, p.after_pct) for p in points] == [
        (START + timedelta(days=20), D("0.00"), D("-5.00")),
        (START + timedelta(days=30), D("-5.00"), D("2.00")),
    ]


def test_every_series_is_searched_and_points_come_by_day() -> None:
    late = series([D(0)] * 25 + [D(4)] * 10)
    early = series([D(1)] * 10 + [D(-3)] * 25)

    points = all_change_points(
        {("completions", "gpt-4o"): late, ("embeddings", "e3"): early, ("images", "i"): {}}
    )

    assert [(p.model, p.day) for p in points] == [
        ("e3", START + timedelta(days=10)),
        ("gpt-4o", START + timedelta(days=25)),
    ]


def test_a_rule_with_a_threshold_of_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="threshold_pct"):
        TrendRule(threshold_pct=D(0))


# Noise within half the slack either way: no two days differ by more than the slack.
noise = st.lists(st.integers(min_value=-24, max_value=24), min_size=90, max_size=90)


@given(level=st.integers(min_value=-2000, max_value=2000), offsets=noise)
def test_noise_under_the_slack_never_gives_a_change_point(level: int, offsets: list[int]) -> None:
    values = [D(level) / 100 + D(o) / 100 for o in offsets]

    assert change_points("completions", "gpt-4o", series(values), RULE) == ()


@given(
    level=st.integers(min_value=-1000, max_value=1000),
    step=st.integers(min_value=300, max_value=3000),
    down=st.booleans(),
    day=st.integers(min_value=5, max_value=85),
    offsets=noise,
)
def test_a_step_far_above_the_slack_gives_exactly_one_change_point_on_its_day(
    level: int, step: int, down: bool, day: int, offsets: list[int]
) -> None:
    shift = -step if down else step
    values = [D(level + (shift if i >= day else 0) + o) / 100 for i, o in enumerate(offsets)]

    points = change_points("completions", "gpt-4o", series(values), RULE)

    assert [p.day for p in points] == [START + timedelta(days=day)]
    assert abs(points[0].before_pct - D(level) / 100) <= D("0.25")
    assert abs(points[0].after_pct - D(level + shift) / 100) <= D("0.25")
