"""The diagnosis stage of a run: fetch what the rules need, within a budget, and ask them.

:func:`diagnose` takes a window's :class:`~recon_job.models.ReconResult` and the two sides'
totals and returns a :class:`~recon_job.findings.Diagnosis`: the cost bridge of the window and of
each drifting group, the billed prices that differ from the table, duplicates, restatements of
days an earlier run completed, shadow usage, and — with extra Usage API requests, at most
``max_requests`` per run, most-drifting groups first — the UTC intervals holding each gap and a
clock shift between the two sides. The rules are the pure functions of
:mod:`recon_job.diagnosis`; this module only chooses what to fetch, spends the budget and puts
the findings in order. Everything it fetches from OpenAI goes through the history's series
cache, so a rerun, ``recon-job explain`` or the dashboard never asks again.

The fetchers are plain callables (:class:`Investigator`), built from the settings by
:mod:`recon_job.wiring`, so that this stage is tested against a fake OpenAI server and real
files without knowing how they are made.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Final, Protocol, TypeVar

import structlog

from recon_job import diagnosis as rules
from recon_job.errors import ReconError
from recon_job.findings import (
    Bridge,
    ChangePoint,
    Diagnosis,
    Duplicates,
    Gap,
    GroupDiagnosis,
    GroupRef,
    PriceFinding,
    Restatement,
    ShadowEntry,
)
from recon_job.modelnames import ModelNamer
from recon_job.models import (
    EMPTY,
    GroupResult,
    ReconResult,
    Status,
    Usage,
    UsageKey,
    UsageTotals,
    Window,
)
from recon_job.pricing import PriceTable
from recon_job.store import HistoryStore

log = structlog.get_logger(__name__)

EV_DIAGNOSED: Final = "recon.diagnosis.finished"
EV_DIAGNOSIS_FAILED: Final = "recon.diagnosis.part_failed"

#: A series of one side: (family, model, project) -> bucket start (aware UTC) -> usage.
Series = Mapping[tuple[str, str, str | None], Mapping[datetime, Usage]]

HOUR: Final = timedelta(hours=1)
MINUTE: Final = timedelta(minutes=1)
ZERO: Final = Decimal(0)
#: Days on either side of a drifting day fetched with it: a clock shift moves usage across
#: midnight, so the hours around the day are needed to see it.
SHIFT_MARGIN: Final = timedelta(days=1)


class OpenAISeries(Protocol):
    """OpenAI's usage of one family over ``[start, end)`` in ``width`` buckets, and how many
    HTTP requests it cost (0 when it came from the history's cache)."""

    def __call__(
        self, family: str, start: datetime, end: datetime, width: timedelta
    ) -> tuple[Series, int]: ...

    def requests_needed(self, family: str, start: datetime, end: datetime, width: timedelta) -> int:
        """What a call would cost: 0 when the span is in the history's cache."""
        ...


class ScopeFetch(Protocol):
    """OpenAI's usage of a window per project, API key and user, in at most ``max_requests``."""

    def __call__(self, window: Window, max_requests: int) -> rules.Scope: ...


class NameFetch(Protocol):
    """Names of projects and API keys (best effort): ``(projects, api_keys, requests made)``."""

    def __call__(
        self,
        project_ids: Sequence[str],
        api_key_ids: Sequence[str],
        key_projects: Mapping[str, str],
        max_requests: int,
    ) -> tuple[Mapping[str, str], Mapping[str, str], int]: ...


class LocalSeries(Protocol):
    """The local side's usage over ``[start, end)`` in ``width`` buckets (every family)."""

    def __call__(self, start: datetime, end: datetime, width: timedelta) -> Series: ...


@dataclass(frozen=True)
class DiagnosisOptions:
    """The ``[diagnosis]`` settings this stage obeys."""

    max_requests: int = 20
    #: Percent of a gap the worst hour must hold before it is refined to minutes.
    minute_share_pct: Decimal = Decimal(50)
    max_shift_hours: int = 14
    #: ``logs.timezone`` as configured, quoted by the clock-shift sentence.
    timezone: str = "UTC"
    #: Which findings are told through the channels (each once per subject).
    price_alert: bool = True
    restated_alert: bool = True
    #: None: no ``shadow_usage`` alert.
    shadow_alert_pct: Decimal | None = None
    trend_alert: bool = False
    #: The trend rule's parameters, and the days of history it reads.
    trend: rules.TrendRule = field(default_factory=rules.TrendRule)
    trend_days: int = 90


@dataclass(frozen=True)
class Investigator:
    """What the diagnosis may use; None for a part it cannot have (no admin key, CSV exports)."""

    options: DiagnosisOptions = field(default_factory=DiagnosisOptions)
    openai_series: OpenAISeries | None = None
    local_series: tuple[LocalSeries, ...] = ()
    namer: ModelNamer = field(default_factory=ModelNamer)
    #: The price table the local side is priced with (None: no bridge, no price check).
    prices: PriceTable | None = None
    scope: ScopeFetch | None = None
    names: NameFetch | None = None


@dataclass
class Budget:
    """Extra API requests left to this run's diagnosis."""

    left: int
    used: int = 0

    def spend(self, n: int) -> None:
        """Count ``n`` requests made."""
        self.used += n
        self.left -= n


def drifting(result: ReconResult) -> list[GroupResult]:
    """The groups to locate, most drifting first: by |cost difference|, then |requests|, then
    |tokens| (the order in which a finance reader cares)."""
    groups = [g for g in result.groups if g.status is Status.MISMATCH]
    return sorted(
        groups,
        key=lambda g: (
            -abs(g.comparison.cost.difference),
            -abs(g.comparison.requests.difference),
            -abs(g.comparison.tokens.difference),
            g.key.day,
            g.key.family,
            g.key.model,
        ),
    )


def ref(key: UsageKey) -> GroupRef:
    """The finding's name of a group."""
    return GroupRef(day=key.day, family=key.family, model=key.model, project_id=key.project_id)


def day_span(day: date, margin: timedelta = SHIFT_MARGIN) -> tuple[datetime, datetime]:
    """``[day - margin, day + 1 day + margin)`` in aware UTC."""
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start - margin, start + timedelta(days=1) + margin


def group_series(
    series: Series,
    key: UsageKey,
    namer: ModelNamer,
    *,
    by_project: bool,
) -> dict[datetime, Usage]:
    """One group's buckets from a side's series: models normalised as the run normalises them
    (a snapshot and its alias are one group), projects summed unless grouped by them."""
    out: dict[datetime, Usage] = {}
    for (family, model, project), buckets in series.items():
        if family != key.family or namer.normalize(model) != key.model:
            continue
        if by_project and project != key.project_id:
            continue
        for start, usage in buckets.items():
            out[start] = out.get(start, EMPTY) + usage
    return out


def quantity_of(group: GroupResult) -> str:
    """The quantity whose gap is located: requests when they drift, else the first deciding
    quantity that does, else cost."""
    comparison = group.comparison
    if comparison.requests.exceeds:
        return "requests"
    for name in comparison.deciding:
        metric = comparison.metric(name)
        if metric is not None and metric.exceeds:
            return name
    return "cost"


def values(buckets: Mapping[datetime, Usage], quantity: str) -> dict[datetime, Decimal]:
    """One quantity of each bucket, as a Decimal."""
    return {start: Decimal(usage.quantity(quantity)) for start, usage in buckets.items()}


def merge_series(
    parts: Iterable[Series],
) -> dict[tuple[str, str, str | None], dict[datetime, Usage]]:
    """Several local sources' series as one."""
    out: dict[tuple[str, str, str | None], dict[datetime, Usage]] = {}
    for part in parts:
        for key, buckets in part.items():
            target = out.setdefault(key, {})
            for start, usage in buckets.items():
                target[start] = target.get(start, EMPTY) + usage
    return out


def order_groups(groups: Sequence[GroupDiagnosis]) -> tuple[GroupDiagnosis, ...]:
    """Group findings by day, family, model, project (the report's order)."""
    return tuple(
        sorted(
            groups,
            key=lambda g: (g.group.day, g.group.family, g.group.model, g.group.project_id or ""),
        )
    )


def diagnose(  # noqa: PLR0913 -- the result, both sides, then keyword-only facts
    inv: Investigator,
    result: ReconResult,
    *,
    official: UsageTotals,
    local: UsageTotals,
    store: HistoryStore | None,
    restated: Sequence[Restatement] = (),
) -> Diagnosis:
    """Every finding about ``result``'s window (module docstring). Never raises a
    ``ReconError``: a part that cannot be had is logged and left out."""
    budget = Budget(inv.options.max_requests)
    window = result.window
    prices = _part("prices", lambda: _prices(inv, official)) or ()
    # The drifting groups spend the budget first, most drifting first (issue 12 item 1); shadow
    # usage gets what they leave.
    groups = _part("groups", lambda: _groups(inv, result, local, prices, budget)) or ()
    # Usage nobody logs matters when the window drifts, or when it is to be told at any share.
    wants_shadow = bool(result.mismatches) or inv.options.shadow_alert_pct is not None
    shadow = (
        (_part("shadow", lambda: _shadow(inv, window, local, budget)) or ()) if wants_shadow else ()
    )
    points = _part("trends", lambda: _trends(inv, window, store)) or ()
    duplicates = local.duplicates if local.duplicates and local.duplicates.count else None
    bridge = _part("bridge", lambda: _window_bridge(inv, result))
    found = Diagnosis(
        groups=order_groups(groups),
        bridge=bridge,
        shadow=tuple(shadow),
        duplicates=duplicates,
        restatements=tuple(restated),
        price_findings=tuple(prices),
        change_points=tuple(points),
        requests_used=budget.used,
    )
    found = replace(found, summary=summary(found, inv.options))
    log.info(
        EV_DIAGNOSED,
        window=window.key,
        groups=len(found.groups),
        findings=len(found.summary),
        requests=budget.used,
    )
    return found


T = TypeVar("T")


def _part(name: str, compute: Callable[[], T]) -> T | None:
    """``compute()``, or None when it fails at a boundary (logged, never raised)."""
    try:
        return compute()
    except ReconError as e:
        log.warning(EV_DIAGNOSIS_FAILED, part=name, reason=e.reason, error=str(e))
        return None


def _prices(inv: Investigator, official: UsageTotals) -> tuple[PriceFinding, ...]:
    if inv.prices is None or not official.billed_lines:
        return ()
    return rules.price_findings(official.billed_lines, inv.prices, inv.namer)


def _shadow(
    inv: Investigator, window: Window, local: UsageTotals, budget: Budget
) -> tuple[ShadowEntry, ...]:
    if inv.scope is None or budget.left <= 0:
        return ()
    scope = inv.scope(window, budget.left)
    budget.spend(scope.requests)
    ids = rules.LocalIds.from_keys(local.groups)
    entries = rules.shadow(scope, ids)
    if not entries or inv.names is None or budget.left <= 0:
        return entries
    projects = [e.id for e in entries if e.kind == "project"]
    keys = [e.id for e in entries if e.kind == "api_key"]
    project_names, key_names, used = inv.names(projects, keys, scope.key_projects, budget.left)
    budget.spend(used)
    return rules.shadow(scope, ids, project_names=project_names, key_names=key_names)


def _trends(
    inv: Investigator, window: Window, store: HistoryStore | None
) -> tuple[ChangePoint, ...]:
    if store is None:
        return ()
    series = store.drift_series(window.last_day, inv.options.trend_days)
    return rules.all_change_points(series, inv.options.trend)


def summary(found: Diagnosis, options: DiagnosisOptions) -> tuple[str, ...]:
    """One sentence per finding, most important first: located gaps and clock shifts, the
    largest bridge part, stale prices, duplicates, shadow usage, restatements, trends."""
    lines: list[str] = []
    for group in found.groups:
        lines.extend(group_sentences(group, options))
    if found.bridge is not None:
        lines.extend(bridge_sentences(found.bridge))
    lines.extend(rules.price_sentence(f) for f in found.price_findings)
    if found.duplicates is not None:
        lines.append(duplicates_sentence(found.duplicates))
    lines.extend(rules.shadow_sentence(e) for e in found.shadow)
    lines.extend(rules.restatement_sentence(r) for r in found.restatements)
    lines.extend(rules.trend_sentence(p) for p in found.change_points)
    return tuple(dict.fromkeys(lines))


def duplicates_sentence(d: Duplicates) -> str:
    """``41 duplicate records of 37 request ids counted once ($1.23 they would have added);
    first at app.ndjson:120``."""
    where = f"; first at {d.locations[0]}" if d.locations else ""
    return (
        f"{d.count:,} duplicate record{'s' if d.count != 1 else ''} of {d.request_ids:,} "
        f"request id{'s' if d.request_ids != 1 else ''} counted once "
        f"({rules.dollars(d.cost)} they would have added){where}"
    )


class _Sides:
    """The hourly and minute series of both sides, fetched once per day and family."""

    def __init__(self, inv: Investigator, budget: Budget) -> None:
        self.inv = inv
        self.budget = budget
        self._openai: dict[tuple[str, datetime, datetime, timedelta], Series | None] = {}
        self._local: dict[tuple[datetime, datetime, timedelta], Series] = {}

    def openai(
        self, family: str, start: datetime, end: datetime, width: timedelta
    ) -> Series | None:
        """OpenAI's series, or None when the budget cannot pay for it."""
        fetch = self.inv.openai_series
        if fetch is None:
            return None
        key = (family, start, end, width)
        if key not in self._openai:
            cost = fetch.requests_needed(family, start, end, width)
            if cost > self.budget.left:
                return None
            series, used = fetch(family, start, end, width)
            self.budget.spend(used)
            self._openai[key] = series
        return self._openai[key]

    def local(self, start: datetime, end: datetime, width: timedelta) -> Series:
        """The local sources' series, summed."""
        key = (start, end, width)
        if key not in self._local:
            self._local[key] = merge_series(f(start, end, width) for f in self.inv.local_series)
        return self._local[key]


def _groups(
    inv: Investigator,
    result: ReconResult,
    local: UsageTotals,
    prices: Sequence[PriceFinding],
    budget: Budget,
) -> tuple[GroupDiagnosis, ...]:
    """A finding per drifting group, most drifting first while the budget lasts."""
    pending = frozenset(result.pending_days)
    by_project = any(g.key.project_id for g in result.groups)
    sides = _Sides(inv, budget)
    unpriced = {k.model for k in result.unpriced}
    found = []
    for group in drifting(result):
        name = ref(group.key)
        bridge = (
            rules.group_bridge(
                group,
                inv.prices,
                pending=group.key.day in pending,
                unpriced=group.key.model in unpriced,
                counted=group.key.family not in result.unavailable_families,
            )
            if inv.prices is not None
            else None
        )
        mine = tuple(f for f in prices if f.model == group.key.model)
        diagnosis = GroupDiagnosis(group=name, bridge=bridge, price_findings=mine)
        if group.key.day in pending:
            diagnosis = replace(diagnosis, skipped="pending")
        elif inv.openai_series is None or not inv.local_series:
            diagnosis = replace(diagnosis, skipped="no_series")
        elif group.key.api_key_id is not None:
            # The hourly series are per model and project: a key's share of an hour is not
            # known, and another key's hours would be blamed on this one (shadow usage names
            # the keys the logs never mention).
            diagnosis = replace(diagnosis, skipped="by_api_key")
        else:
            diagnosis = _locate(inv, sides, group, diagnosis, by_project=by_project)
        found.append(diagnosis)
    return tuple(found)


def _locate(
    inv: Investigator,
    sides: _Sides,
    group: GroupResult,
    diagnosis: GroupDiagnosis,
    *,
    by_project: bool,
) -> GroupDiagnosis:
    """Where in the day the group's gap is, to the minute when one interval holds most of it;
    or the clock shift that explains it."""
    key, namer = group.key, inv.namer
    quantity = quantity_of(group)
    if quantity == "cost":
        # Only dollars drift: the Usage API's hours carry no dollars, and the bridge's price
        # part (and the billed prices) say why.
        return replace(diagnosis, skipped="cost_only")
    start, end = day_span(key.day)
    openai = sides.openai(key.family, start, end, HOUR)
    if openai is None:
        return replace(diagnosis, skipped="budget")
    local = sides.local(start, end, HOUR)
    # Every hour of the span, 0 where a side has no bucket: the shift rule compares the hours
    # at least max_shift_hours from the span's ends, and quiet nights must not shorten it.
    every_hour = dict.fromkeys((start + i * HOUR for i in range((end - start) // HOUR)), ZERO)
    local_hours = every_hour | values(
        group_series(local, key, namer, by_project=by_project), quantity
    )
    openai_hours = every_hour | values(
        group_series(openai, key, namer, by_project=by_project), quantity
    )
    shift = rules.best_shift(local_hours, openai_hours, max_hours=inv.options.max_shift_hours)
    day_start, day_end = day_span(key.day, timedelta(0))
    if shift is not None and explains_day(local_hours, openai_hours, shift, day_start, day_end):
        return replace(diagnosis, shift_hours=shift)

    def on_day(series: Mapping[datetime, Decimal]) -> dict[datetime, Decimal]:
        return {t: v for t, v in series.items() if day_start <= t < day_end}

    if misplaced(on_day(local_hours), on_day(openai_hours)):
        return replace(diagnosis, skipped="misplaced")
    gaps = rules.locate(
        on_day(local_hours),
        on_day(openai_hours),
        width=HOUR,
        quantity=quantity,
        resolution="1h",
    )
    if gaps and gaps[0].share_pct >= inv.options.minute_share_pct:
        gaps = (_refined(inv, sides, group, gaps[0], quantity, by_project), *gaps[1:])
    return replace(diagnosis, gaps=gaps)


#: Hours whose differences add up to more than this many times the day's difference are usage
#: put in other hours, not a gap in some of them.
MISPLACED_FACTOR: Final = 3


def misplaced(local: Mapping[datetime, Decimal], openai: Mapping[datetime, Decimal]) -> bool:
    """True when the two sides' hours differ far more than their day totals do: the local side
    has the usage, at other times (no interval can hold "the" gap, its share would pass 100%)."""
    hours = set(local) | set(openai)
    spread = sum((abs(local.get(h, ZERO) - openai.get(h, ZERO)) for h in hours), ZERO)
    total = abs(sum(local.values(), ZERO) - sum(openai.values(), ZERO))
    return spread > total * MISPLACED_FACTOR


#: A clock shift is the cause of a day's drift only when, read shifted, the local side's day
#: leaves at most this fraction of the day's difference.
SHIFT_EXPLAINS: Final = Decimal("0.25")


def explains_day(
    local_hours: Mapping[datetime, Decimal],
    openai_hours: Mapping[datetime, Decimal],
    shift: int,
    day_start: datetime,
    day_end: datetime,
) -> bool:
    """True when reading the local side ``shift`` hours earlier removes (nearly) all of the
    day's difference: two series that line up at a shift but still differ by the same total
    (usage missing, not misplaced) are not a clock problem."""
    moved = timedelta(hours=shift)

    def total(series: Mapping[datetime, Decimal], start: datetime, end: datetime) -> Decimal:
        return sum((v for t, v in series.items() if start <= t < end), Decimal(0))

    openai_day = total(openai_hours, day_start, day_end)
    before = abs(total(local_hours, day_start, day_end) - openai_day)
    after = abs(total(local_hours, day_start + moved, day_end + moved) - openai_day)
    return before > 0 and after <= before * SHIFT_EXPLAINS


def _refined(  # noqa: PLR0913 -- the group's facts, passed through
    inv: Investigator,
    sides: _Sides,
    group: GroupResult,
    gap: Gap,
    quantity: str,
    by_project: bool,
) -> Gap:
    """``gap`` narrowed with minute buckets, when the budget allows; else as found."""
    key = group.key
    local_minutes: dict[datetime, Decimal] = {}
    openai_minutes: dict[datetime, Decimal] = {}
    for start, end in rules.minute_spans(gap):
        openai = sides.openai(key.family, start, end, MINUTE)
        if openai is None:
            return gap
        local = sides.local(start, end, MINUTE)
        local_minutes.update(
            values(group_series(local, key, inv.namer, by_project=by_project), quantity)
        )
        openai_minutes.update(
            values(group_series(openai, key, inv.namer, by_project=by_project), quantity)
        )
    return rules.refine(gap, local_minutes, openai_minutes)


def group_sentences(group: GroupDiagnosis, options: DiagnosisOptions) -> list[str]:
    """The group's located gaps, or its clock shift."""
    if group.shift_hours is not None:
        return [rules.shift_sentence(group.group, group.shift_hours, options.timezone)]
    if group.skipped == "misplaced":
        return [
            f"{group.group.label}: your logs put this usage in other hours than OpenAI does "
            "(the hours differ far more than the day's total), but no whole-hour shift "
            "explains it: check how your logger writes timestamps"
        ]
    return [rules.gap_sentence(group.group, gap) for gap in group.gaps]


def _window_bridge(inv: Investigator, result: ReconResult) -> Bridge | None:
    """The window's bridge, when there is a difference to explain and prices to explain it."""
    if inv.prices is None or not (result.mismatches or result.untracked):
        return None
    return rules.window_bridge(result, inv.prices)


def bridge_sentences(bridge: Bridge) -> list[str]:
    """The largest part of the window's bridge, as one sentence."""
    return rules.bridge_sentences(bridge, limit=1)
