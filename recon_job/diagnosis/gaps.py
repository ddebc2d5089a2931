"""The gap locator: the contiguous UTC intervals that hold a group's difference (issue 12 item 1).

Input: one quantity of one group on both sides, per time bucket (bucket start, aware UTC ->
``Decimal``), as :mod:`recon_job.investigate` builds it from the local side's and OpenAI's
series. A bucket missing from a side counts 0 there. Pure: no I/O, no clock.

The rule (:func:`locate`), with ``d`` = local - OpenAI of each bucket and ``D`` their sum (the
group's difference over the span):

1. A bucket is *material* when its ``d`` has the sign of ``D`` and ``|d|`` is at least
   :data:`MATERIAL_FRACTION` of the largest such ``|d|``. Relative to the worst bucket rather
   than to ``D``: an outage's partial edge hour stays in, a drift spread evenly over the day is
   located as the whole day, and the same rule works at minute width, where every bucket is a
   small part of ``D``. Buckets drifting the other way are never part of a gap.
2. Adjacent material buckets (no bucket between them) are merged into one interval.
3. Each interval's share is its difference over ``D``, percent (above 100 when other buckets
   drift the other way). The :data:`MAX_GAPS` largest shares are returned, largest first.

:func:`refine` then narrows an interval found in hourly buckets to the minute, from minute
buckets of its edge hours (:func:`minute_spans` says which to fetch): the interval starts at the
first material minute of its first hour and ends after the last material minute of its last
hour, materiality judged as in step 1 among the minutes of the interval.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Final

from recon_job.diagnosis.words import dollars
from recon_job.findings import Gap, GroupRef

#: A bucket is material when its difference is at least this fraction of the worst bucket's.
MATERIAL_FRACTION: Final = Decimal("0.1")
#: At most this many intervals are returned per group.
MAX_GAPS: Final = 3
#: Shares are kept to a tenth of a percent.
_SHARE_QUANTUM: Final = Decimal("0.1")
HOUR: Final = timedelta(hours=1)
MINUTE: Final = timedelta(minutes=1)
#: Minute buckets one Usage API page may hold (reference §1.2).
_MINUTES_PER_PAGE: Final = 1440
_ZERO: Final = Decimal(0)
#: Amounts of money under a cent are written with every digit (``$0.0027``), not ``$0.00``.

Series = Mapping[datetime, Decimal]


def differences(local: Series, openai: Series) -> dict[datetime, Decimal]:
    """local - OpenAI per bucket, over every bucket either side has, in time order."""
    return {
        start: local.get(start, _ZERO) - openai.get(start, _ZERO)
        for start in sorted(set(local) | set(openai))
    }


def _sign(value: Decimal) -> int:
    return (value > 0) - (value < 0)


def _material(diffs: Mapping[datetime, Decimal], sign: int) -> set[datetime]:
    """The buckets of ``diffs`` that are material for a difference of ``sign`` (rule 1)."""
    same = {start: abs(d) for start, d in diffs.items() if _sign(d) == sign}
    if not same:
        return set()
    floor = max(same.values()) * MATERIAL_FRACTION
    return {start for start, size in same.items() if size >= floor}


def _share(part: Decimal, total: Decimal) -> Decimal:
    return (part / total * 100).quantize(_SHARE_QUANTUM)


def locate(
    local: Series,
    openai: Series,
    *,
    width: timedelta,
    quantity: str,
    resolution: str,
) -> tuple[Gap, ...]:
    """The intervals holding the difference of ``local`` - ``openai`` (module docstring).

    ``width`` is the buckets' width (``resolution`` names it in the gaps: ``1h`` or ``1m``);
    ``quantity`` names what the values count (``requests``, ``tokens``, ``cost`` ...). Empty
    when the sides agree over the span.
    """
    if width <= timedelta(0):
        raise ValueError("width must be positive")
    diffs = differences(local, openai)
    total = sum(diffs.values(), _ZERO)
    if not total:
        return ()
    material = sorted(_material(diffs, _sign(total)))
    runs: list[tuple[datetime, datetime, Decimal]] = []
    for start in material:
        if runs and runs[-1][1] == start:
            first, _, amount = runs[-1]
            runs[-1] = (first, start + width, amount + diffs[start])
        else:
            runs.append((start, start + width, diffs[start]))
    gaps = [
        Gap(
            start=first,
            end=end,
            quantity=quantity,
            difference=amount,
            share_pct=_share(amount, total),
            resolution=resolution,
        )
        for first, end, amount in runs
    ]
    gaps.sort(key=lambda g: (-abs(g.difference), g.start))
    return tuple(gaps[:MAX_GAPS])


def minute_spans(
    gap: Gap, *, per_page: int = _MINUTES_PER_PAGE
) -> tuple[tuple[datetime, datetime], ...]:
    """The ``[start, end)`` spans to fetch in minute buckets to :func:`refine` ``gap``.

    The whole interval when it fits one page of minute buckets (a day: one request); otherwise
    its first and last hours (two requests). The edges are all :func:`refine` reads.
    """
    if gap.end - gap.start <= per_page * MINUTE:
        return ((gap.start, gap.end),)
    return ((gap.start, gap.start + HOUR), (gap.end - HOUR, gap.end))


def refine(gap: Gap, local_minutes: Series, openai_minutes: Series) -> Gap:
    """``gap`` (found in hourly buckets) narrowed to the minute with minute buckets.

    The start moves to the first material minute of the gap's first hour, the end to just after
    the last material minute of its last hour (materiality as in :func:`locate`, among the
    minutes inside the gap, for the gap's sign). The difference loses what the trimmed minutes
    held and the share follows it. An edge whose hour has no minute data stays where it was;
    ``gap`` comes back unchanged when nothing can be narrowed.
    """
    sign = _sign(gap.difference)
    if not sign:
        return gap
    diffs = {
        start: d
        for start, d in differences(local_minutes, openai_minutes).items()
        if gap.start <= start < gap.end
    }
    material = sorted(_material(diffs, sign))
    if not material:
        return gap
    first_hour_end = min(gap.start + HOUR, gap.end)
    last_hour_start = max(gap.end - HOUR, gap.start)
    start, end = gap.start, gap.end
    if any(gap.start <= m < first_hour_end for m in diffs):
        start = material[0] if material[0] < first_hour_end else first_hour_end
    if any(last_hour_start <= m < gap.end for m in diffs):
        end = material[-1] + MINUTE if material[-1] >= last_hour_start else last_hour_start
    if end <= start:
        return gap
    trimmed = sum((d for m, d in diffs.items() if m < start or m >= end), _ZERO)
    difference = gap.difference - trimmed
    if _sign(difference) != sign:
        return gap
    total = gap.difference / gap.share_pct * 100 if gap.share_pct else None
    share = _share(difference, total) if total else gap.share_pct
    return replace(
        gap, start=start, end=end, difference=difference, share_pct=share, resolution="1m"
    )


def _clock(moment: datetime, day: date) -> str:
    """``14:00``; ``24:00`` for the midnight ending ``day``; the date too when on another day."""
    if moment.date() == day:
        return moment.strftime("%H:%M")
    if moment.date() == day + timedelta(days=1) and moment.time() == datetime.min.time():
        return "24:00"
    return moment.strftime("%Y-%m-%d %H:%M")


def _amount(value: Decimal, quantity: str) -> str:
    """``312 requests``, ``1,500 input tokens``, ``$12.50`` (``$0.0027`` under a cent): the
    size only, the sentence says which side has more."""
    size = abs(value)
    if quantity == "cost":
        return dollars(size)
    number = f"{size:,.0f}" if size == size.to_integral_value() else f"{size:,.2f}"
    return f"{number} {quantity.replace('_', ' ')}"


def _percent(share: Decimal) -> str:
    return f"{share:.0f}%" if abs(share) >= 1 else f"{share:.1f}%"


def gap_sentence(group: GroupRef, gap: Gap) -> str:
    """``2026-02-03 completions gpt-4o: your logs are missing 312 requests during
    14:00–15:20 UTC (94% of the difference): a logging outage?``: the one line a finance reader
    acts on.

    Times are UTC clock times on the group's day (the date is added for an edge on another
    day). The closing question says what a negative (local missing usage) or positive (local
    counting more) interval usually is.
    """
    span = f"{_clock(gap.start, group.day)}\u2013{_clock(gap.end, group.day)} UTC"
    amount = _amount(gap.difference, gap.quantity)
    what, hint = (
        (f"your logs are missing {amount}", "a logging outage?")
        if gap.difference < 0
        else (
            f"your logs count {amount} more than OpenAI",
            "lines logged twice, or another organization's key?",
        )
    )
    return (
        f"{group.label}: {what} during {span} ({_percent(gap.share_pct)} of the difference): {hint}"
    )
