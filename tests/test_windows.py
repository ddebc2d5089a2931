"""Tests of UTC windows and settling (recon_job.windows)."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from recon_job.models import Window
from recon_job.windows import (
    FIRST_DAY,
    LAST_DAY,
    PeriodKind,
    daily,
    date_range,
    due_periods,
    is_settled,
    last_settled_day,
    monthly,
    parse_day,
    parse_month,
    parse_period_key,
    pending_days,
    previous_month,
    settled,
    usable_day,
)

DAY = timedelta(days=1)
SETTLE = timedelta(hours=24)
IST = timezone(timedelta(hours=5, minutes=30))
PACIFIC = timezone(timedelta(hours=-8))
HELSINKI = ZoneInfo("Europe/Helsinki")


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


TEN_DAYS = date_range(date(2026, 3, 1), date(2026, 3, 10))


# --- periods: settled ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "now", "settle", "expected"),
    [
        # A day settles `settle` after its end (00:00 UTC of the next day); the boundary counts.
        (daily(date(2026, 3, 14)), "2026-03-16T00:00:00+00:00", SETTLE, True),
        (daily(date(2026, 3, 14)), "2026-03-15T23:59:59.999999+00:00", SETTLE, False),
        (daily(date(2026, 3, 14)), "2026-03-15T00:00:00+00:00", timedelta(0), True),
        (daily(date(2026, 3, 14)), "2026-03-14T23:59:59+00:00", timedelta(0), False),
        # A month waits for its LAST day: March 2026 ends 04-01 00:00 and settles 04-02 00:00.
        (monthly(2026, 3), "2026-04-01T00:30:00+00:00", SETTLE, False),
        (monthly(2026, 3), "2026-04-01T23:59:59+00:00", SETTLE, False),
        (monthly(2026, 3), "2026-04-02T00:00:00+00:00", SETTLE, True),
        (monthly(2026, 3), "2026-04-01T00:30:00+00:00", timedelta(0), True),
        (monthly(2028, 2), "2028-03-02T00:00:00+00:00", SETTLE, True),  # 29 days, leap year
        (monthly(2028, 2), "2028-03-01T12:00:00+00:00", SETTLE, False),
        (monthly(2100, 2), "2100-03-02T00:00:00+00:00", SETTLE, True),  # 28 days, not leap
        (monthly(2026, 12), "2027-01-02T00:00:00+00:00", SETTLE, True),  # year rollover
        (monthly(2026, 12), "2027-01-01T23:00:00+00:00", SETTLE, False),
        (TEN_DAYS, "2026-03-11T23:00:00+00:00", SETTLE, False),
        (TEN_DAYS, "2026-03-12T00:00:00+00:00", SETTLE, True),
    ],
)
def test_a_period_is_settled_only_once_its_last_day_has_settled(
    window: Window, now: str, settle: timedelta, expected: bool
) -> None:
    assert settled(window, at(now), settle) is expected


def test_settled_rejects_a_naive_now_and_a_negative_delay() -> None:
    naive = datetime(2026, 4, 2, 12, 0)  # naive on purpose

    with pytest.raises(ValueError, match="has no timezone"):
        settled(monthly(2026, 3), naive, SETTLE)
    with pytest.raises(ValueError, match="must not be negative"):
        settled(monthly(2026, 3), at("2026-04-02T12:00:00+00:00"), -SETTLE)


# --- periods: due ----------------------------------------------------------------------------


def days(*texts: str) -> list[Window]:
    return [daily(date.fromisoformat(text)) for text in texts]


@pytest.mark.parametrize(
    ("now", "lookback", "completed", "expected"),
    [
        # The default look-back is the last 7 settled days, oldest first.
        (
            "2026-03-16T06:00:00+00:00",
            None,
            set(),
            days(*(f"2026-03-{d:02d}" for d in range(8, 15))),
        ),
        # Completed days are skipped; the rest still come oldest first.
        (
            "2026-03-16T06:00:00+00:00",
            None,
            {f"daily:2026-03-{d:02d}" for d in (8, 9, 10, 11, 13)},
            days("2026-03-12", "2026-03-14"),
        ),
        # Everything done: nothing is due (a CronJob fired twice is then a no-op, R33).
        (
            "2026-03-16T06:00:00+00:00",
            3,
            {"daily:2026-03-12", "daily:2026-03-13", "daily:2026-03-14"},
            [],
        ),
        # The look-back bounds catch-up: a day older than it is never picked up again.
        ("2026-03-16T06:00:00+00:00", 1, set(), days("2026-03-14")),
        ("2026-03-16T06:00:00+00:00", 2, {"daily:2026-03-14"}, days("2026-03-13")),
        # Keys outside the look-back in `completed` change nothing.
        (
            "2026-03-16T06:00:00+00:00",
            2,
            {"daily:2026-03-01", "monthly:2026-03"},
            days("2026-03-13", "2026-03-14"),
        ),
        # Exactly at the boundary the day is settled; a moment before, it is not.
        ("2026-03-16T00:00:00+00:00", 1, set(), days("2026-03-14")),
        ("2026-03-15T23:59:59+00:00", 1, set(), days("2026-03-13")),
        # Across a month and a year end.
        ("2027-01-02T06:00:00+00:00", 3, set(), days("2026-12-29", "2026-12-30", "2026-12-31")),
        ("2028-03-03T06:00:00+00:00", 2, set(), days("2028-02-29", "2028-03-01")),
    ],
)
def test_due_days_are_the_settled_days_in_the_look_back_without_a_completed_run(
    now: str, lookback: int | None, completed: set[str], expected: list[Window]
) -> None:
    assert (
        due_periods("daily", now=at(now), settle=SETTLE, lookback=lookback, completed=completed)
        == expected
    )


@pytest.mark.parametrize(
    ("now", "settle", "lookback", "completed", "expected"),
    [
        # The default look-back is the last 2 settled months, oldest first.
        ("2026-04-02T07:00:00+00:00", SETTLE, None, set(), [monthly(2026, 2), monthly(2026, 3)]),
        # On the 1st at 00:30 with a 24 h settle, the month just ended is not due yet (R16).
        ("2026-04-01T00:30:00+00:00", SETTLE, None, set(), [monthly(2026, 1), monthly(2026, 2)]),
        ("2026-04-01T00:30:00+00:00", SETTLE, 1, set(), [monthly(2026, 2)]),
        # Without a settle delay it is.
        ("2026-04-01T00:30:00+00:00", timedelta(0), 1, set(), [monthly(2026, 3)]),
        # Exactly at the boundary the month is settled.
        ("2026-04-02T00:00:00+00:00", SETTLE, 1, set(), [monthly(2026, 3)]),
        ("2026-04-01T23:59:59+00:00", SETTLE, 1, set(), [monthly(2026, 2)]),
        # Completed months are skipped.
        (
            "2026-04-02T07:00:00+00:00",
            SETTLE,
            3,
            {"monthly:2026-02"},
            [
                monthly(2026, 1),
                monthly(2026, 3),
            ],
        ),
        ("2026-04-02T07:00:00+00:00", SETTLE, None, {"monthly:2026-02", "monthly:2026-03"}, []),
        # Across a year end, oldest first.
        (
            "2027-01-02T07:00:00+00:00",
            SETTLE,
            3,
            set(),
            [monthly(2026, 10), monthly(2026, 11), monthly(2026, 12)],
        ),
        # A leap February and its non-leap neighbour a century later.
        ("2028-03-02T00:00:00+00:00", SETTLE, 1, set(), [monthly(2028, 2)]),
        ("2100-03-02T00:00:00+00:00", SETTLE, 1, set(), [monthly(2100, 2)]),
    ],
)
def test_due_months_are_the_settled_months_in_the_look_back_without_a_completed_run(
    now: str,
    settle: timedelta,
    lookback: int | None,
    completed: set[str],
    expected: list[Window],
) -> None:
    assert (
        due_periods("monthly", now=at(now), settle=settle, lookback=lookback, completed=completed)
        == expected
    )


@pytest.mark.parametrize(("kind", "lookback"), [("daily", 30), ("monthly", 12)])
def test_due_periods_are_contiguous_and_oldest_first(kind: PeriodKind, lookback: int) -> None:
    due = due_periods(
        kind, now=at("2026-03-16T06:00:00+00:00"), settle=SETTLE, lookback=lookback, completed=()
    )

    assert len(due) == lookback
    assert all(earlier.end == later.start for earlier, later in itertools.pairwise(due))
    assert {window.kind for window in due} == {kind}


def test_a_february_period_has_its_leap_year_length() -> None:
    [feb_2028] = due_periods(
        "monthly", now=at("2028-03-05T00:00:00+00:00"), settle=SETTLE, lookback=1, completed=()
    )
    [feb_2100] = due_periods(
        "monthly", now=at("2100-03-05T00:00:00+00:00"), settle=SETTLE, lookback=1, completed=()
    )

    assert (feb_2028.key, feb_2028.num_days) == ("monthly:2028-02", 29)
    assert (feb_2100.key, feb_2100.num_days) == ("monthly:2100-02", 28)


@pytest.mark.parametrize("kind", ["daily", "monthly"])
def test_due_periods_do_not_depend_on_the_zone_or_dst_of_now(kind: PeriodKind) -> None:
    # 2026-03-29 is the night Helsinki springs forward (03:00 EET -> 04:00 EEST). The same
    # instants written in Helsinki time, before and after the jump, give the same periods as UTC.
    instants = [
        datetime(2026, 3, 29, 0, 30, tzinfo=UTC),  # 02:30 EET
        datetime(2026, 3, 29, 1, 30, tzinfo=UTC),  # 04:30 EEST
        datetime(2026, 3, 30, 0, 0, tzinfo=UTC),  # the settle boundary of 03-28
        datetime(2026, 4, 1, 23, 59, tzinfo=UTC),  # 02:59 on 04-02 in Helsinki, still 04-01 UTC
        datetime(2026, 4, 2, 0, 0, tzinfo=UTC),  # March settles
    ]
    for instant in instants:
        in_utc = due_periods(kind, now=instant, settle=SETTLE, completed=())
        for zone in (HELSINKI, IST, PACIFIC):
            assert due_periods(kind, now=instant.astimezone(zone), settle=SETTLE, completed=()) == (
                in_utc
            )


@pytest.mark.parametrize("kind", ["daily", "monthly"])
def test_due_periods_reject_a_naive_now(kind: PeriodKind) -> None:
    naive = datetime(2026, 3, 16, 6, 0)  # naive on purpose

    with pytest.raises(ValueError, match="has no timezone"):
        due_periods(kind, now=naive, settle=SETTLE, completed=())


@pytest.mark.parametrize(
    ("kind", "settle", "lookback", "message"),
    [
        ("daily", SETTLE, 0, "look-back 0 must be at least 1 daily period"),
        ("monthly", SETTLE, -1, "look-back -1 must be at least 1 monthly period"),
        ("daily", -SETTLE, 1, "must not be negative"),
        ("monthly", -SETTLE, 1, "must not be negative"),
        ("range", SETTLE, 1, "period kind 'range' is not daily or monthly"),
    ],
)
def test_due_periods_reject_bad_arguments(
    kind: str, settle: timedelta, lookback: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        due_periods(
            kind,  # type: ignore[arg-type]
            now=at("2026-03-16T06:00:00+00:00"),
            settle=settle,
            lookback=lookback,
            completed=(),
        )


# --- periods: keys ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "window",
    [
        daily(date(2026, 3, 14)),
        daily(date(2028, 2, 29)),
        monthly(2026, 2),
        monthly(2028, 2),
        monthly(2026, 12),
        date_range(date(2026, 2, 27), date(2026, 3, 2)),
        date_range(date(2026, 1, 1), date(2026, 1, 1)),
    ],
)
def test_a_period_key_parses_back_into_its_window(window: Window) -> None:
    assert parse_period_key(window.key) == window


@pytest.mark.parametrize(
    "key",
    [
        "",
        "2026-03-14",
        "daily:",
        "daily:2026-02-29",
        "daily:2026-3-14",
        "daily: 2026-03-14",
        "Daily:2026-03-14",
        "weekly:2026-03-14",
        "monthly:2026-13",
        "monthly:2026-03-01",
        "range:2026-03-01",
        "range:2026-03-02..2026-03-01",
        "range:2026-03-01..2026-03-02 ",
    ],
)
def test_a_bad_period_key_is_rejected_readably(key: str) -> None:
    with pytest.raises(ValueError, match="is not a period key") as info:
        parse_period_key(key)
    assert repr(key) in str(info.value)
    assert "daily:YYYY-MM-DD, monthly:YYYY-MM or range:YYYY-MM-DD..YYYY-MM-DD" in str(info.value)


@pytest.mark.parametrize("text", ["9999-12-31", " 9999-12-31"])
def test_a_day_whose_window_would_end_after_the_last_date_is_refused_readably(text: str) -> None:
    with pytest.raises(ValueError, match="future; the last usable day is 9999-12-30"):
        parse_day(text)
    with pytest.raises(ValueError, match="too far in the future"):
        daily(date.max)
    with pytest.raises(ValueError, match="too far in the future"):
        date_range(date(9999, 12, 1), date.max)
    assert daily(LAST_DAY).end == date.max


def test_days_before_the_unix_epoch_are_refused_readably_but_old_history_keys_still_read() -> None:
    # OpenAI's start_time is a Unix timestamp; year 1 also ran the trend look-back off the
    # calendar (an OverflowError and a failed run).
    for text in ("1969-12-31", "0001-01-01"):
        with pytest.raises(ValueError, match=f"'{text}' is before 1970-01-01, the first day"):
            parse_day(text)
    with pytest.raises(ValueError, match="'1969-12' is before 1970-01, the first month"):
        parse_month("1969-12")
    with pytest.raises(ValueError, match="0001-01-01 is before 1970-01-01"):
        usable_day(date(1, 1, 1))
    with pytest.raises(ValueError, match="9999-12-31 is too far in the future"):
        usable_day(date.max)
    assert parse_day("1970-01-01") == FIRST_DAY == usable_day(FIRST_DAY)
    assert parse_month("1970-01") == monthly(1970, 1)
    # A run recorded before the bound existed still names its period.
    assert parse_period_key("daily:1969-12-31") == daily(date(1969, 12, 31))
    assert parse_period_key("monthly:1969-12").start == date(1969, 12, 1)
