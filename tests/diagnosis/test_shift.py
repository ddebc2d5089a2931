"""Clock-shift detection: the shift found, its sign (local = OpenAI + shift), and when none is."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from recon_job.diagnosis.shift import HOUR, best_shift, residuals, shift_sentence
from recon_job.findings import GroupRef

BERLIN = ZoneInfo("Europe/Berlin")


def traffic(first_day: date, days: int = 3, seed: int = 7) -> dict[datetime, Decimal]:
    """Requests per UTC hour: a daily curve with noise, over ``days`` days from ``first_day``."""
    rng = random.Random(seed)
    start = datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)
    curve = [2, 1, 1, 1, 2, 4, 8, 15, 30, 45, 50, 52, 48, 50, 55, 52, 45, 35, 25, 18, 12, 8, 5, 3]
    return {
        start + h * HOUR: Decimal(curve[h % 24] * 10 + rng.randint(0, 20)) for h in range(days * 24)
    }


def read_as_utc(openai: dict[datetime, Decimal], zone: ZoneInfo) -> dict[datetime, Decimal]:
    """What the local side sees when each request's naive wall time in ``zone`` is read as UTC."""
    local: dict[datetime, Decimal] = {}
    for moment, value in openai.items():
        naive = moment.astimezone(zone).replace(tzinfo=None)
        local[naive.replace(tzinfo=UTC)] = value
    return local


def test_berlin_naive_times_read_as_utc_are_shifted_by_plus_one_hour_in_winter() -> None:
    openai = traffic(date(2026, 2, 2))  # the drifting day 2026-02-03, ±1 day

    assert best_shift(read_as_utc(openai, BERLIN), openai, max_hours=14) == 1


def test_berlin_naive_times_read_as_utc_are_shifted_by_plus_two_hours_in_summer() -> None:
    openai = traffic(date(2026, 7, 14))

    assert best_shift(read_as_utc(openai, BERLIN), openai, max_hours=14) == 2


def test_new_york_naive_times_read_as_utc_are_shifted_backwards() -> None:
    openai = traffic(date(2026, 1, 10))

    shift = best_shift(read_as_utc(openai, ZoneInfo("America/New_York")), openai, max_hours=14)

    assert shift == -5


def test_series_that_line_up_without_a_shift_have_none() -> None:
    openai = traffic(date(2026, 2, 2))
    local = {t: v - 3 if t.hour == 14 else v for t, v in openai.items()}  # a small real gap

    assert best_shift(local, openai, max_hours=14) is None
    assert best_shift(openai, openai, max_hours=14) is None


def test_a_shift_that_explains_only_part_of_the_drift_is_not_reported() -> None:
    openai = traffic(date(2026, 2, 2))
    shifted = {t + HOUR: v for t, v in openai.items()}
    # Half the traffic is missing locally as well: no shift makes the sides agree.
    local = {t: v / 2 for t, v in shifted.items()}

    assert best_shift(local, openai, max_hours=14) is None


def test_a_span_too_short_for_the_largest_shift_finds_nothing() -> None:
    openai = traffic(date(2026, 2, 3), days=1)

    assert residuals(openai, openai, max_hours=12) == {}
    assert best_shift(openai, openai, max_hours=12) is None


@given(st.integers(-6, 6).filter(bool), st.integers(0, 1000))
def test_a_series_shifted_by_k_hours_is_found_shifted_by_k(k: int, seed: int) -> None:
    openai = traffic(date(2026, 3, 1), seed=seed)
    local = {t + k * HOUR: v for t, v in openai.items()}

    assert best_shift(local, openai, max_hours=8) == k


def test_the_sentence_gives_the_signed_shift_and_the_setting_to_change() -> None:
    group = GroupRef(date(2026, 2, 3), "completions", "gpt-4o")

    assert shift_sentence(group, 1) == (
        "2026-02-03 completions gpt-4o: your log times are +1 h off OpenAI's (times without a "
        "zone are read as UTC), so usage lands in the wrong hours and days: set logs.timezone "
        "to the zone the logs are written in, e.g. Europe/Berlin; if your log times carry a "
        "zone, the clock or zone of the machine writing them is off instead"
    )
    assert "are \u22125 h off" in shift_sentence(group, -5, "Europe/Paris")
    assert "read as Europe/Paris" in shift_sentence(group, -5, "Europe/Paris")
    assert timedelta(hours=1) == HOUR
