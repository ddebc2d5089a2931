"""Which UTC periods to reconcile: daily, monthly and custom ranges, and when a day is settled.

Pure: the clock is passed in (``now``, timezone-aware), never read here. Every window is a span of
whole UTC days, because OpenAI buckets its Usage and Costs data on UTC days; a local date would
cut days in the wrong place.

A day is *settled* once ``settle`` has passed since it ended (00:00 UTC of the next day):
OpenAI's figures for a day keep arriving for hours after it ends, so judging a day earlier would
report drift that is only lag.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from recon_job.models import Window, day_start

_ONE_DAY = timedelta(days=1)
_DAY_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_MONTH_RE = re.compile(r"(\d{4})-(\d{2})")


def daily(day: date) -> Window:
    """The window of one UTC day."""
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
    return Window("range", first, last_inclusive + _ONE_DAY)


def last_settled_day(now: datetime, settle: timedelta) -> date:
    """The latest UTC day D for which 00:00 UTC of D+1 plus ``settle`` is at or before ``now``.

    ``now`` must be timezone-aware (any offset; it is converted to UTC); a naive datetime raises
    ValueError because its meaning depends on the machine's zone.
    """
    now_utc = _utc(now)
    if settle < timedelta(0):
        raise ValueError(f"settle delay {settle} must not be negative")
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


def parse_day(text: str) -> date:
    """A UTC day from ``YYYY-MM-DD``; ValueError with a readable message otherwise."""
    value = text.strip()
    if _DAY_RE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"{text!r} is not a day; use YYYY-MM-DD")


def parse_month(text: str) -> Window:
    """The monthly window of ``YYYY-MM``; ValueError with a readable message otherwise."""
    match = _MONTH_RE.fullmatch(text.strip())
    if match:
        year, month = int(match[1]), int(match[2])
        if year >= 1 and 1 <= month <= 12:
            try:
                return monthly(year, month)
            except ValueError:
                pass
    raise ValueError(f"{text!r} is not a month; use YYYY-MM")


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(
            f"now={now.isoformat()} has no timezone; pass an aware datetime such as "
            "datetime.now(UTC)"
        )
    return now.astimezone(UTC)
