"""Tests of UTC windows and settling (recon_job.windows)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from recon_job.models import Window
from recon_job.windows import (
    daily,
    date_range,
    is_settled,
    last_settled_day,
    monthly,
    parse_day,
    parse_month,
    pending_days,
    previous_month,
)

DAY = timedelta(days=1)
SETTLE = timedelta(hours=24)
IST = timezone(timedelta(hours=5, minutes=30))
PACIFIC = timezone(timedelta(hours=-8))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- shapes -----------------------------------------------------------------------------------


def test_a_daily_window_is_one_utc_day() -> None:
    window = daily(date(2026, 3, 14))

    assert window == Window("daily", date(2026, 3, 14), date(2026, 3, 15))
    assert window.key == "daily:2026-03-14"
    assert window.num_days == 1
    assert window.start_at == datetime(2026, 3, 14, tzinfo=UTC)
    assert window.end_at == datetime(2026, 3, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("year", "month", "days"),
    [
        (2026, 1, 31),
        (2026, 2, 28),
        (2028, 2, 29),  # leap year
        (2100, 2, 28),  # divisible by 100, not by 400: not a leap year
        (2000, 2, 29),  # divisible by 400: leap year
        (2026, 4, 30),
        (2026, 7, 31),
        (2026, 12, 31),
    ],
)
def test_a_month_has_its_calendar_length(year: int, month: int, days: int) -> None:
    window = monthly(year, month)

    assert window.start == date(year, month, 1)
    assert window.num_days == days
    assert window.last_day == date(year, month, days)


def test_december_ends_on_the_first_of_january_next_year() -> None:
    window = monthly(2026, 12)

    assert window.end == date(2027, 1, 1)
    assert window.end_at == datetime(2027, 1, 1, tzinfo=UTC)
    assert window.key == "monthly:2026-12"


def test_a_monthly_key_names_the_month() -> None:
    assert monthly(2026, 2).key == "monthly:2026-02"


@pytest.mark.parametrize("month", [0, 13, -1])
def test_a_month_out_of_range_is_rejected(month: int) -> None:
    with pytest.raises(ValueError, match="not between 1 and 12"):
        monthly(2026, month)


def test_a_range_includes_both_ends() -> None:
    window = date_range(date(2026, 2, 27), date(2026, 3, 2))

    assert window.kind == "range"
    assert list(window.days()) == [
        date(2026, 2, 27),
        date(2026, 2, 28),
        date(2026, 3, 1),
        date(2026, 3, 2),
    ]
    assert window.end == date(2026, 3, 3)
    assert window.key == "range:2026-02-27..2026-03-02"


def test_a_one_day_range_is_allowed() -> None:
    assert date_range(date(2026, 1, 1), date(2026, 1, 1)).num_days == 1


def test_a_backwards_range_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"range end 2026-01-01 is before its start 2026-01-02"):
        date_range(date(2026, 1, 2), date(2026, 1, 1))


# --- settling ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "settle", "expected"),
    [
        # Day 2026-03-14 ends at 03-15 00:00 UTC and settles 24 h later, at 03-16 00:00 UTC.
        ("2026-03-16T00:00:00+00:00", SETTLE, date(2026, 3, 14)),  # exactly at the boundary
        ("2026-03-15T23:59:59.999999+00:00", SETTLE, date(2026, 3, 13)),  # a moment before
        ("2026-03-16T23:59:59+00:00", SETTLE, date(2026, 3, 14)),
        ("2026-03-15T00:00:00+00:00", timedelta(0), date(2026, 3, 14)),  # no delay
        ("2026-03-14T23:59:59+00:00", timedelta(0), date(2026, 3, 13)),
        ("2026-03-15T06:00:00+00:00", timedelta(hours=6), date(2026, 3, 14)),
        ("2026-03-15T05:59:59+00:00", timedelta(hours=6), date(2026, 3, 13)),
        ("2026-03-18T12:00:00+00:00", timedelta(hours=48), date(2026, 3, 15)),
    ],
)
def test_the_last_settled_day_respects_the_settle_delay(
    now: str, settle: timedelta, expected: date
) -> None:
    moment = at(now)

    assert last_settled_day(moment, settle) == expected
    assert is_settled(expected, moment, settle)
    assert not is_settled(expected + DAY, moment, settle)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # 05:00 on the 16th in India is 23:30 UTC on the 15th: 03-14 has not settled yet.
        (datetime(2026, 3, 16, 5, 0, tzinfo=IST), date(2026, 3, 13)),
        # 05:30 in India is exactly 00:00 UTC on the 16th: 03-14 settles now.
        (datetime(2026, 3, 16, 5, 30, tzinfo=IST), date(2026, 3, 14)),
        # 16:00 on the 15th in UTC-8 is 00:00 UTC on the 16th.
        (datetime(2026, 3, 15, 16, 0, tzinfo=PACIFIC), date(2026, 3, 14)),
    ],
)
def test_a_non_utc_now_is_converted_to_utc(now: datetime, expected: date) -> None:
    assert last_settled_day(now, SETTLE) == expected


def test_a_naive_now_is_rejected() -> None:
    naive = datetime(2026, 3, 16, 12, 0)  # naive on purpose

    with pytest.raises(ValueError, match="has no timezone"):
        last_settled_day(naive, SETTLE)
    with pytest.raises(ValueError, match="has no timezone"):
        previous_month(naive)
    with pytest.raises(ValueError, match="has no timezone"):
        pending_days(daily(date(2026, 3, 14)), naive, SETTLE)


def test_a_negative_settle_delay_is_rejected() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        last_settled_day(at("2026-03-16T00:00:00+00:00"), timedelta(hours=-1))


def test_pending_days_are_the_unsettled_and_future_days_of_the_window() -> None:
    window = monthly(2026, 3)
    now = at("2026-03-16T10:00:00+00:00")  # 03-14 settled; 03-15 onwards is not

    pending = pending_days(window, now, SETTLE)

    assert pending[0] == date(2026, 3, 15)
    assert pending[-1] == date(2026, 3, 31)
    assert len(pending) == 17


def test_a_settled_window_has_no_pending_days() -> None:
    now = at("2026-04-02T00:00:00+00:00")

    assert pending_days(monthly(2026, 3), now, SETTLE) == ()


def test_the_monthly_run_on_the_first_shortly_after_midnight_has_the_last_day_pending() -> None:
    now = at("2026-04-01T00:30:00+00:00")
    window = previous_month(now)

    assert window == monthly(2026, 3)
    assert window.end_at == datetime(2026, 4, 1, tzinfo=UTC)
    assert pending_days(window, now, SETTLE) == (date(2026, 3, 31),)
    assert pending_days(window, now, timedelta(0)) == ()


# --- previous month ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (at("2026-03-01T00:30:00+00:00"), monthly(2026, 2)),  # 28 days
        (at("2028-03-01T00:30:00+00:00"), monthly(2028, 2)),  # 29 days
        (at("2026-08-15T12:00:00+00:00"), monthly(2026, 7)),  # 31 days
        (at("2027-01-01T00:00:00+00:00"), monthly(2026, 12)),  # year rollover
        # 2026-03-01 02:00 in India is still February in UTC: the previous month is January.
        (datetime(2026, 3, 1, 2, 0, tzinfo=IST), monthly(2026, 1)),
    ],
)
def test_the_previous_month_is_taken_in_utc(now: datetime, expected: Window) -> None:
    assert previous_month(now) == expected


# --- parsing ----------------------------------------------------------------------------------


def test_a_day_is_parsed() -> None:
    assert parse_day("2026-03-14") == date(2026, 3, 14)
    assert parse_day(" 2028-02-29 ") == date(2028, 2, 29)


@pytest.mark.parametrize(
    "text", ["2026-02-29", "2026-13-01", "2026-3-14", "20260314", "14/03/2026", "", "yesterday"]
)
def test_a_bad_day_is_rejected_readably(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a day; use YYYY-MM-DD") as info:
        parse_day(text)
    assert repr(text) in str(info.value)


def test_a_month_is_parsed_into_its_window() -> None:
    assert parse_month("2026-02") == monthly(2026, 2)
    assert parse_month("2028-02").num_days == 29


@pytest.mark.parametrize(
    "text", ["2026-13", "2026-00", "2026-1", "202602", "2026-02-01", "", "feb"]
)
def test_a_bad_month_is_rejected_readably(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a month; use YYYY-MM"):
        parse_month(text)


def test_the_month_message_quotes_the_input() -> None:
    with pytest.raises(ValueError, match="2026-13") as info:
        parse_month("2026-13")
    assert str(info.value) == "'2026-13' is not a month; use YYYY-MM"
