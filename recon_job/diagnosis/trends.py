"""Trends: a persistent shift of a model's daily drift %, found by a two-sided CUSUM (issue 12,
item 8).

A day's drift % (local - OpenAI, as a percent of OpenAI's cost; tokens when the family is not
billed) is noisy, and a shift from +0.2% to -3.8% stays under a 5% threshold for ever while
saying that something changed on one day (a new code path that does not log, a price edited).
The rule, per family x model, over the days that have a figure (missing days are skipped: they
neither confirm nor break a level):

1. A level starts with ``min_days`` days (the first ``min_days`` of the series, or of the level
   after a change point): their mean is the reference mean ``mu``, which then follows every later
   day of the level that stays in control (both sums at zero).
2. Two cumulative sums run over the following days: ``up = max(0, up + x - mu - k)`` and
   ``down = max(0, down + mu - x - k)``, ``k`` the slack (:attr:`TrendRule.slack_pct`): a day
   within ``k`` of the mean adds nothing, so noise under the slack never accumulates.
3. A sum above ``h`` (:attr:`TrendRule.threshold_pct`, percentage points x days) is an alarm.
   The new level starts on the first day of the excursion (the day after the sum was last zero),
   moved forward past days closer to the old mean than to the excursion's mean.
4. The new level counts only when it held: each of its first ``min_days`` days is beyond the
   slack from the old mean, on the side of the shift. Then it is a :class:`ChangePoint` and the
   search starts again from it (step 1); otherwise (a spike of a day or two, a level that has not
   lasted long enough yet) the alarming sum restarts from zero.

For a clean step the change point is the step's day exactly; a step needs ``min_days`` days of
the old level before it and ``min_days`` of the new level after it. The means reported are those
of every day of the old level and of the new one (up to the next change point). Pure: no I/O,
no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Context, Decimal

from recon_job.families import family_rank
from recon_job.findings import ChangePoint

_CONTEXT = Context(prec=34)
_ZERO = Decimal(0)
_CENT = Decimal("0.01")
_TENTH = Decimal("0.1")
_MINUS = "\N{MINUS SIGN}"


@dataclass(frozen=True, slots=True)
class TrendRule:
    """The CUSUM's parameters (``[diagnosis]`` ``trend_slack_pct``, ``trend_threshold_pct``,
    ``trend_min_days``)."""

    #: Percentage points: a day within this of the level's mean is noise (``k``).
    slack_pct: Decimal = Decimal("0.5")
    #: Percentage points x days a cumulative sum must pass to raise an alarm (``h``).
    threshold_pct: Decimal = Decimal(5)
    #: Days (with a figure) a new level must hold, and the days that set a level's mean.
    min_days: int = 5

    def __post_init__(self) -> None:
        if self.slack_pct < 0:
            raise ValueError(f"slack_pct must not be negative, got {self.slack_pct}")
        if self.threshold_pct <= 0:
            raise ValueError(f"threshold_pct must be positive, got {self.threshold_pct}")
        if self.min_days < 1:
            raise ValueError(f"min_days must be at least 1, got {self.min_days}")


def change_points(
    family: str, model: str, series: Mapping[date, Decimal], rule: TrendRule = TrendRule()
) -> tuple[ChangePoint, ...]:
    """The persistent shifts of one family x model's daily drift % ``series``, oldest first."""
    days = sorted(series)
    values = [series[day] for day in days]
    starts: list[int] = []
    level = 0
    while (found := _next_change(values, level, rule)) is not None:
        starts.append(found)
        level = found
    bounds = [0, *starts, len(values)]
    return tuple(
        ChangePoint(
            family=family,
            model=model,
            day=days[start],
            before_pct=_mean(values[bounds[i] : start]).quantize(_CENT, ROUND_HALF_EVEN),
            after_pct=_mean(values[start : bounds[i + 2]]).quantize(_CENT, ROUND_HALF_EVEN),
        )
        for i, start in enumerate(starts)
    )


def all_change_points(
    series: Mapping[tuple[str, str], Mapping[date, Decimal]], rule: TrendRule = TrendRule()
) -> tuple[ChangePoint, ...]:
    """:func:`change_points` of every ``(family, model)`` series (what
    :meth:`recon_job.store.HistoryStore.drift_series` returns), by day, family and model."""
    found = [
        point
        for (family, model), one in series.items()
        for point in change_points(family, model, one, rule)
    ]
    return tuple(sorted(found, key=lambda p: (p.day, family_rank(p.family), p.family, p.model)))


def trend_sentence(point: ChangePoint) -> str:
    """``gpt-4o drift moved from +0.2% to −3.8% on 2026-11-14 and stayed`` (the family named
    when it is not completions)."""
    family = "" if point.family == "completions" else f"{point.family} "
    return (
        f"{family}{point.model} drift moved from {_signed(point.before_pct)} to "
        f"{_signed(point.after_pct)} on {point.day.isoformat()} and stayed"
    )


def _next_change(values: Sequence[Decimal], level: int, rule: TrendRule) -> int | None:
    """The index of the first day of the next level after the level starting at ``level``."""
    k, h, m = rule.slack_pct, rule.threshold_pct, rule.min_days
    if len(values) - level < 2 * m:
        return None
    total, count = sum(values[level : level + m], _ZERO), m
    up = down = _ZERO
    up_start = down_start = level + m
    for t in range(level + m, len(values)):
        x, mu = values[t], _CONTEXT.divide(total, Decimal(count))
        new_up, new_down = max(_ZERO, up + x - mu - k), max(_ZERO, down + mu - x - k)
        if not up and new_up:
            up_start = t
        if not down and new_down:
            down_start = t
        up, down = new_up, new_down
        if not up and not down:
            # In control: the day joins the level's mean (an excursion's days never do).
            total, count = total + x, count + 1
            continue
        if up > h:
            start = _first_of_level(values, up_start, t, mu)
            if _held(values, start, mu, rule, side=1):
                return start
            up = _ZERO
        if down > h:
            start = _first_of_level(values, down_start, t, mu)
            if _held(values, start, mu, rule, side=-1):
                return start
            down = _ZERO
    return None


def _first_of_level(values: Sequence[Decimal], start: int, alarm: int, mu: Decimal) -> int:
    """The excursion's first day closer to its own mean than to the old mean ``mu``."""
    new = _mean(values[start : alarm + 1])
    while start < alarm and abs(values[start] - new) >= abs(values[start] - mu):
        start += 1
    return start


def _held(
    values: Sequence[Decimal], start: int, mu: Decimal, rule: TrendRule, *, side: int
) -> bool:
    """True when each of the ``min_days`` days from ``start`` is beyond the slack from ``mu`` on
    ``side`` (+1 above, -1 below)."""
    days = values[start : start + rule.min_days]
    return len(days) == rule.min_days and all(side * (x - mu) > rule.slack_pct for x in days)


def _mean(values: Sequence[Decimal]) -> Decimal:
    return _CONTEXT.divide(sum(values, _ZERO), Decimal(len(values)))


def _signed(pct: Decimal) -> str:
    """``+0.2%``, ``−3.8%``, ``0.0%``: one decimal, the sign always said."""
    value = pct.quantize(_TENTH, ROUND_HALF_EVEN)
    if value > 0:
        return f"+{value:f}%"
    if value < 0:
        return f"{_MINUS}{-value:f}%"
    return "0.0%"
