"""The overview of a date range, built from the history alone (never from OpenAI).

For each day of the range the newest finished run covering it that holds a result (a daily,
monthly or range run) gives that day's groups; a day with no such run shows the newest failed run
covering it with its reason, or "not reconciled yet" — never zero. The totals are the sums of
the days shown, compared with the tolerance of the settings; the status is a mismatch when the
totals or any day are out of tolerance.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, timedelta
from decimal import Decimal, localcontext
from operator import attrgetter
from typing import Final, Literal, Protocol

from recon_job import windows
from recon_job.causes import likely_causes
from recon_job.compare import compare_usage, counted
from recon_job.models import (
    MONEY,
    ZERO,
    Comparison,
    GroupResult,
    ReconResult,
    Status,
    Tolerance,
    Usage,
    UsageKey,
    group_order,
)
from recon_job.store import GroupRecord, RunRecord, RunStatus
from recon_job.windows import date_range

#: The longest range an overview covers (days): a bound on work per page view.
MAX_DAYS: Final = 400

DayState = Literal["reconciled", "mismatch", "pending", "failed", "never"]
_RESULT = frozenset({RunStatus.RECONCILED, RunStatus.MISMATCH, RunStatus.PENDING})


class HistoryReader(Protocol):
    """What the overview reads: :class:`~recon_job.store.HistoryStore`'s read methods."""

    def runs_overlapping(self, start: date, end: date) -> list[RunRecord]:
        """Finished runs overlapping ``[start, end)``, newest first."""

    def groups_between(self, run_ids: Collection[int], start: date, end: date) -> list[GroupRecord]:
        """The runs' groups with a day in ``[start, end)``, by run."""


class RangeError(ValueError):
    """A range the overview refuses (bad dates, end before start, too long): a 400."""


@dataclass(frozen=True)
class Day:
    """One day of the range: its state, the run it comes from and that run's failure."""

    day: date
    state: DayState
    run_id: int | None = None
    reason: str | None = None
    local: Usage = field(default_factory=Usage)
    openai: Usage = field(default_factory=Usage)


@dataclass(frozen=True)
class Overview:
    """Everything the overview page and its JSON and CSV show."""

    start: date
    #: Inclusive last day.
    end: date
    tolerance: Tolerance
    days: tuple[Day, ...]
    #: One row per day x family x model [x project x key], from the run chosen for each day.
    groups: tuple[GroupRecord, ...]
    local: Usage
    openai: Usage
    comparison: Comparison
    #: The runs the figures come from, newest first.
    runs: tuple[RunRecord, ...]
    causes: tuple[str, ...]

    @property
    def reconciled_days(self) -> int:
        """Days with a stored result."""
        return sum(1 for d in self.days if d.state in ("reconciled", "mismatch", "pending"))

    @property
    def status(self) -> Literal["reconciled", "mismatch", "not_reconciled"]:
        """``not_reconciled`` when no day has a result; else mismatch or reconciled."""
        if not self.reconciled_days:
            return "not_reconciled"
        if self.comparison.exceeds or any(d.state == "mismatch" for d in self.days):
            return "mismatch"
        return "reconciled"

    @property
    def pending_days(self) -> tuple[date, ...]:
        """Days whose result is not settled yet."""
        return tuple(d.day for d in self.days if d.state == "pending")


def parse_range(
    start_text: str | None, end_text: str | None, *, default_end: date, default_days: int = 7
) -> tuple[date, date]:
    """``start_date``/``end_date`` (YYYY-MM-DD, inclusive) or the default: the ``default_days``
    days ending on ``default_end``. RangeError names what is wrong."""
    end = _day(end_text, "end_date") if end_text else default_end
    if start_text:
        start = _day(start_text, "start_date")
    else:
        start = max(end - timedelta(days=default_days - 1), windows.FIRST_DAY)
    if end < start:
        raise RangeError(f"end_date {end} is before start_date {start}")
    if (end - start).days + 1 > MAX_DAYS:
        raise RangeError(
            f"the range {start}..{end} is {(end - start).days + 1} days; at most {MAX_DAYS}"
        )
    return start, end


def _day(text: str, name: str) -> date:
    shown = text if len(text) <= 40 else text[:40] + "…"
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise RangeError(f"{name} {shown!r} is not a date like 2026-03-14 (YYYY-MM-DD)") from None
    try:
        return windows.usable_day(day, shown=f"{name} {shown}")
    except ValueError as e:
        raise RangeError(str(e)) from None


def build(reader: HistoryReader, start: date, end: date, tolerance: Tolerance) -> Overview:
    """The overview of ``start..end`` (inclusive) from the history."""
    stop = end + timedelta(days=1)
    runs = reader.runs_overlapping(start, stop)
    days: list[Day] = []
    chosen: dict[int, list[date]] = {}
    used: dict[int, RunRecord] = {}
    for offset in range((end - start).days + 1):
        day = start + timedelta(days=offset)
        covering = [r for r in runs if r.window.start <= day < r.window.end]
        with_result = next((r for r in covering if r.status in _RESULT), None)
        if with_result is not None:
            chosen.setdefault(with_result.id, []).append(day)
            used[with_result.id] = with_result
            continue
        failed = next(iter(covering), None)
        if failed is not None:
            used[failed.id] = failed
            reason = failed.error_reason or str(failed.status)
            days.append(Day(day, "failed", failed.id, reason))
        else:
            days.append(Day(day, "never"))
    # One read for every chosen run; each keeps only the groups of the days it was chosen for.
    by_run_day: dict[tuple[int, date], list[GroupRecord]] = {}
    if chosen:
        first = min(min(run_days) for run_days in chosen.values())
        last = max(max(run_days) for run_days in chosen.values())
        for g in reader.groups_between(chosen.keys(), first, last + timedelta(days=1)):
            by_run_day.setdefault((g.run_id, g.key.day), []).append(g)
    groups: list[GroupRecord] = []
    result_days: list[Day] = []
    for run_id, run_days in chosen.items():
        run = used[run_id]
        for day in run_days:
            of_day = by_run_day.get((run_id, day), [])
            groups += of_day
            result_days.append(_day_of(run, day, of_day))
    days += result_days
    days.sort(key=lambda d: d.day)
    groups.sort(key=lambda g: group_order(g.key))
    unavailable = {f for run in used.values() for f in run.unavailable_families}
    if all(set(used[r].unavailable_families) == unavailable for r in chosen):
        # Each day's totals counted the groups as the range's do: add the days (exact, so the
        # order does not matter), not the thousands of groups once more.
        local = window_sum((UsageKey(d.day, ""), d.local) for d in result_days)
        openai = window_sum((UsageKey(d.day, ""), d.openai) for d in result_days)
    else:
        compared = [g for g in groups if g.status is not Status.UNTRACKED]
        local = window_sum((g.key, counted(g.key, g.local, unavailable)) for g in compared)
        openai = window_sum((g.key, counted(g.key, g.openai, unavailable)) for g in compared)
    comparison = compare_usage(local, openai, tolerance, family=None)
    overview = Overview(
        start=start,
        end=end,
        tolerance=tolerance,
        days=tuple(days),
        groups=tuple(groups),
        local=local,
        openai=openai,
        comparison=comparison,
        runs=tuple(sorted(used.values(), key=lambda r: r.id, reverse=True)),
        causes=(),
    )
    return _with_causes(overview)


def _day_of(run: RunRecord, day: date, groups: Sequence[GroupRecord]) -> Day:
    # The day's totals add groups as the run's totals do (untracked families apart).
    compared = [g for g in groups if g.status is not Status.UNTRACKED]
    unavailable = run.unavailable_families
    local = window_sum((g.key, counted(g.key, g.local, unavailable)) for g in compared)
    openai = window_sum((g.key, counted(g.key, g.openai, unavailable)) for g in compared)
    if day in run.pending_days:
        state: DayState = "pending"
    elif any(g.status is Status.MISMATCH for g in groups):
        state = "mismatch"
    else:
        state = "reconciled"
    return Day(day, state, run.id, None, local, openai)


def _with_causes(overview: Overview) -> Overview:
    """The likely causes of the drift (:func:`recon_job.causes.likely_causes`)."""
    if overview.status != "mismatch":
        return overview
    t = overview.tolerance
    groups = tuple(
        GroupResult(
            g.key,
            g.local,
            g.openai,
            compare_usage(g.local, g.openai, t, family=g.key.family),
            g.status,
        )
        for g in overview.groups
    )
    result = ReconResult(
        window=date_range(overview.start, overview.end),
        status=Status.MISMATCH,
        tolerance=t,
        local=overview.local,
        openai=overview.openai,
        comparison=overview.comparison,
        groups=groups,
        pending_days=overview.pending_days,
    )
    causes = tuple(likely_causes(result))
    return Overview(**{**overview.__dict__, "causes": causes})


@dataclass(frozen=True)
class ModelTrend:
    """One model's figures over a range: its totals, drift and days out of tolerance."""

    family: str
    model: str
    local: Usage
    openai: Usage
    mismatch_days: int

    @property
    def cost_difference(self) -> Decimal:
        """USD, local - OpenAI."""
        return self.local.cost - self.openai.cost

    @property
    def cost_pct(self) -> Decimal | None:
        """The cost difference as a percent of OpenAI's cost."""
        return pct_of(self.cost_difference, self.openai.cost)


def by_model(overview: Overview) -> list[ModelTrend]:
    """Each family x model of the overview, the largest absolute cost drift first."""
    groups: dict[tuple[str, str], list[GroupRecord]] = {}
    for g in overview.groups:
        groups.setdefault((g.key.family, g.key.model), []).append(g)
    trends = [
        ModelTrend(
            family=family,
            model=model,
            local=window_sum((g.key, g.local) for g in rows),
            openai=window_sum((g.key, g.openai) for g in rows),
            mismatch_days=len({g.key.day for g in rows if g.status is Status.MISMATCH}),
        )
        for (family, model), rows in groups.items()
    ]
    trends.sort(key=lambda t: (-abs(t.cost_difference), t.family, t.model))
    return trends


@dataclass(frozen=True)
class DriftSeries:
    """One model's cost drift % per day of a range: None where there is nothing to compare."""

    family: str
    model: str
    #: One per day of :attr:`Overview.days`: (local - OpenAI) * 100 / OpenAI cost, or None on
    #: a day without the model's groups or with no OpenAI cost (a gap, never 0).
    points: tuple[Decimal | None, ...]


def drift_series(overview: Overview, top: int = 6) -> list[DriftSeries]:
    """The cost drift % per day of the ``top`` models with the largest absolute cost drift
    over the range (:func:`by_model`'s order); models without any drift are left out."""
    chosen = [t for t in by_model(overview) if t.cost_difference][:top]
    # One pass over the groups for every chosen model (each model's groups in table order).
    costs: dict[tuple[str, str], tuple[dict[date, Decimal], dict[date, Decimal]]] = {
        (t.family, t.model): ({}, {}) for t in chosen
    }
    for g in overview.groups:
        of_model = costs.get((g.key.family, g.key.model))
        if of_model is not None:
            local, openai = of_model
            local[g.key.day] = local.get(g.key.day, Decimal(0)) + g.local.cost
            openai[g.key.day] = openai.get(g.key.day, Decimal(0)) + g.openai.cost
    series = []
    for t in chosen:
        local, openai = costs[(t.family, t.model)]
        points = tuple(
            pct_of(local[d.day] - openai[d.day], openai[d.day]) if d.day in openai else None
            for d in overview.days
        )
        series.append(DriftSeries(t.family, t.model, points))
    return series


#: Every count of a Usage (all its fields but ``cost``), read at once by one C call.
_COUNTS: Final = tuple(f.name for f in fields(Usage) if f.name != "cost")
_counts_of: Final = attrgetter(*_COUNTS)


def window_sum(groups: Iterable[tuple[UsageKey, Usage]]) -> Usage:
    """:func:`recon_job.models.window_total`, equal to it field for field, without building a
    Usage per addition: every count summed as a column of plain ints, the cost exactly
    (``MONEY``), and ``usage_bytes`` the level of the last day that has one (all its groups
    summed). An overview adds thousands of groups per page; this keeps that to milliseconds."""
    pairs = list(groups)
    if not pairs:
        return Usage()
    total = dict(
        zip(_COUNTS, map(sum, zip(*[_counts_of(u) for _, u in pairs], strict=True)), strict=True)
    )
    with localcontext(MONEY):
        cost = sum((u.cost for _, u in pairs), ZERO)
    if total["usage_bytes"]:
        last = max(key.day for key, u in pairs if u.usage_bytes)
        total["usage_bytes"] = sum(u.usage_bytes for key, u in pairs if key.day == last)
    return Usage(cost=cost, **total)


def pct_of(part: Decimal | int, whole: Decimal | int) -> Decimal | None:
    """``part`` as a percent of ``whole``; None when ``whole`` is zero."""
    return None if not whole else Decimal(part) * 100 / Decimal(whole)


__all__ = ["Day", "Overview", "RangeError", "build", "parse_range"]
