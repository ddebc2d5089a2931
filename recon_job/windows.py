"""Which UTC periods to reconcile: daily, monthly and custom ranges, and when a day is settled.

Pure: the clock is passed in (``now``, timezone-aware), never read here. Every window is a span of
whole UTC days, because OpenAI buckets its Usage and Costs data on UTC days; a local date would
cut days in the wrong place.

A day is *settled* once ``settle`` has passed since it ended (00:00 UTC of the next day):
OpenAI's figures for a day keep arriving for hours after it ends, so judging a day earlier would
report drift that is only lag.

Periods are the unit of scheduled work: a daily period is one UTC day, a monthly period one UTC
calendar month, each named by :attr:`Window.key`. The key is derived from the period, never from
the wall clock of the run, so a schedule that fires twice or not at all (Kubernetes CronJobs and
APScheduler both document that) still maps onto the same keys, and the catch-up in
:func:`due_periods` heals missed runs (reliability.md §0 rules 1 and 2).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from recon_job.models import Window, day_start

PeriodKind = Literal["daily", "monthly"]

#: How many settled periods back a run looks for ones without a completed run: a week of days
#: covers a long weekend of downtime; two months cover a monthly run missed on the 2nd.
DEFAULT_LOOKBACK: Mapping[PeriodKind, int] = {"daily": 7, "monthly": 2}

_ONE_DAY = timedelta(days=1)
_DAY_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_MONTH_RE = re.compile(r"(\d{4})-(\d{2})")
_KEY_FORMS = "daily:YYYY-MM-DD, monthly:YYYY-MM or range:YYYY-MM-DD..YYYY-MM-DD"


def daily(day: date) -> Window:
    """The window of one UTC day; ValueError for a day after :data:`LAST_DAY`."""
    if day > LAST_DAY:
        raise ValueError(f"{day.isoformat()} is too far in the future")
    return Window("daily", day, day + _ONE_DAY)


def monthly(year: int, month: int) -> Window:
    """The window of one calendar month in UTC (28 to 31 days; ``end`` is the next month's 1st)."""
    if not 1 <= month <= 12:
        raise ValueError(f"month {month} is not between 1 and 12")
    try:
        start = date(year, month, 1)
        end = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    except ValueError as e:
        raise ValueError(f"{year:04d}-{month:02d} is not a usable month ({e})") from e
    return Window("monthly", start, end)


def date_range(first: date, last_inclusive: date) -> Window:
    """The window from ``first`` to ``last_inclusive``, both UTC days and both included."""
    if last_inclusive < first:
        raise ValueError(
            f"range end {last_inclusive.isoformat()} is before its start {first.isoformat()}"
        )
    if last_inclusive > LAST_DAY:
        raise ValueError(f"{last_inclusive.isoformat()} is too far in the future")
    return Window("range", first, last_inclusive + _ONE_DAY)


def last_settled_day(now: datetime, settle: timedelta) -> date:
    """The latest UTC day D for which 00:00 UTC of D+1 plus ``settle`` is at or before ``now``.

    ``now`` must be timezone-aware (any offset; it is converted to UTC); a naive datetime raises
    ValueError because its meaning depends on the machine's zone.
    """
    now_utc = _utc(now)
    _check_settle(settle)
    # D+1 is the UTC day of (now - settle): its 00:00 is the latest day end at or before it.
    return (now_utc - settle).date() - _ONE_DAY


def previous_month(now: datetime) -> Window:
    """The calendar month before the UTC month of ``now`` (the monthly job's default)."""
    today = _utc(now).date()
    if today.month == 1:
        return monthly(today.year - 1, 12)
    return monthly(today.year, today.month - 1)


def pending_days(window: Window, now: datetime, settle: timedelta) -> tuple[date, ...]:
    """The days of ``window`` not yet settled at ``now`` (future days included), oldest first."""
    settled = last_settled_day(now, settle)
    return tuple(day for day in window.days() if day > settled)


def is_settled(day: date, now: datetime, settle: timedelta) -> bool:
    """True when UTC ``day`` ended at least ``settle`` before ``now``."""
    return day_start(day + _ONE_DAY) + settle <= _utc(now)


#: The last day a window can cover: its exclusive end must still be a date.
LAST_DAY = date.max - _ONE_DAY
#: The first day anyone can ask about: OpenAI's ``start_time`` is a Unix timestamp, and a day
#: before it would also make the look-backs (trends, restatements) run off the calendar.
FIRST_DAY = date(1970, 1, 1)


def parse_day(text: str) -> date:
    """A UTC day from ``YYYY-MM-DD``, from :data:`FIRST_DAY` to :data:`LAST_DAY`; ValueError with
    a readable message otherwise."""
    return usable_day(_parse_day(text), shown=repr(text))


def usable_day(day: date, *, shown: str | None = None) -> date:
    """``day`` when a window may start or end on it (:data:`FIRST_DAY` to :data:`LAST_DAY`);
    ValueError naming it (as ``shown``, by default its ISO form) otherwise."""
    name = shown or day.isoformat()
    if day < FIRST_DAY:
        raise ValueError(
            f"{name} is before {FIRST_DAY.isoformat()}, the first day OpenAI's Usage and "
            "Costs APIs can be asked about (their times are Unix timestamps)"
        )
    if day > LAST_DAY:
        raise ValueError(
            f"{name} is too far in the future; the last usable day is {LAST_DAY.isoformat()}"
        )
    return day


def _parse_day(text: str) -> date:
    """:func:`parse_day` without the lower bound: the history may hold older keys."""
    value = text.strip()
    if _DAY_RE.fullmatch(value):
        try:
            day = date.fromisoformat(value)
        except ValueError:
            pass
        else:
            if day > LAST_DAY:
                raise ValueError(
                    f"{text!r} is too far in the future; the last usable day is "
                    f"{LAST_DAY.isoformat()}"
                )
            return day
    raise ValueError(f"{text!r} is not a day; use YYYY-MM-DD")


def parse_month(text: str) -> Window:
    """The monthly window of ``YYYY-MM``, from :data:`FIRST_DAY` on; ValueError with a readable
    message otherwise."""
    window = _parse_month(text)
    if window.start < FIRST_DAY:
        raise ValueError(
            f"{text!r} is before {FIRST_DAY.isoformat()[:7]}, the first month OpenAI's Usage "
            "and Costs APIs can be asked about (their times are Unix timestamps)"
        )
    return window


def _parse_month(text: str) -> Window:
    """:func:`parse_month` without the lower bound."""
    match = _MONTH_RE.fullmatch(text.strip())
    if match:
        year, month = int(match[1]), int(match[2])
        if year >= 1 and 1 <= month <= 12:
            try:
                return monthly(year, month)
            except ValueError:
                pass
    raise ValueError(f"{text!r} is not a month; use YYYY-MM")


def settled(window: Window, now: datetime, settle: timedelta) -> bool:
    """True when the LAST day of ``window`` ended at least ``settle`` before ``now``.

    A period is judged as a whole, so it waits for its last day: a month is not eligible on the
    1st at 00:30 with a 24 h settle delay, because its last day's figures are still arriving
    (reliability.md R13, R16). Exactly at the boundary counts as settled.
    """
    _check_settle(settle)
    return window.end_at + settle <= _utc(now)


def due_periods(
    kind: PeriodKind,
    *,
    now: datetime,
    settle: timedelta,
    lookback: int | None = None,
    completed: Collection[str],
) -> list[Window]:
    """The settled periods of ``kind`` in the look-back with no completed run, oldest first.

    ``lookback`` counts settled periods back from the latest one (default
    :data:`DEFAULT_LOOKBACK`: 7 days or 2 months); ``completed`` holds the keys of periods already
    reconciled. Oldest first, so that a run cut short by its deadline leaves the newest periods,
    not a hole, for the next run. Catch-up lives here rather than in the scheduler because neither
    APScheduler 3.x nor a CronJob runs a missed fire time later (reliability.md §0 rule 2, R36).
    """
    if kind not in DEFAULT_LOOKBACK:
        raise ValueError(f"period kind {kind!r} is not daily or monthly")
    count = DEFAULT_LOOKBACK[kind] if lookback is None else lookback
    if count < 1:
        raise ValueError(f"look-back {count} must be at least 1 {kind} period")
    if kind == "daily":
        last_day = last_settled_day(now, settle)
        periods = [daily(last_day - offset * _ONE_DAY) for offset in range(count)]
    else:
        # The month before the UTC month of (now - settle) is the latest one whose end (the 1st
        # of the next month, 00:00 UTC) plus the settle delay is at or before now.
        _check_settle(settle)
        latest = previous_month(_utc(now) - settle)
        periods = [latest]
        for _ in range(count - 1):
            periods.append(previous_month(periods[-1].start_at))
    return [period for period in reversed(periods) if period.key not in completed]


def parse_period_key(key: str) -> Window:
    """The window named by a period key; the inverse of :attr:`Window.key`.

    Accepts ``daily:YYYY-MM-DD``, ``monthly:YYYY-MM`` and ``range:YYYY-MM-DD..YYYY-MM-DD``
    exactly as :attr:`Window.key` writes them (no spaces, zero-padded); anything else raises
    ValueError with a readable message, since keys come back from the history database and a
    corrupt one must not be silently read as another period.
    """
    kind, sep, rest = key.partition(":")
    try:
        if not sep:
            raise ValueError("no kind before ':'")
        if kind == "daily":
            window = daily(_parse_day(rest))
        elif kind == "monthly":
            window = _parse_month(rest)
        elif kind == "range":
            first, dots, last = rest.partition("..")
            if not dots:
                raise ValueError("a range needs FIRST..LAST")
            window = date_range(_parse_day(first), _parse_day(last))
        else:
            raise ValueError(f"unknown kind {kind!r}")
    except ValueError as e:
        raise ValueError(f"{key!r} is not a period key ({e}); use {_KEY_FORMS}") from e
    if window.key != key:
        raise ValueError(f"{key!r} is not a period key (not in canonical form); use {_KEY_FORMS}")
    return window


def _check_settle(settle: timedelta) -> None:
    if settle < timedelta(0):
        raise ValueError(f"settle delay {settle} must not be negative")


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(
            f"now={now.isoformat()} has no timezone; pass an aware datetime such as "
            "datetime.now(UTC)"
        )
    return now.astimezone(UTC)
