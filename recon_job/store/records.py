"""What the history store hands back: frozen records of past runs and their groups.

Records are detached from the database: plain frozen dataclasses built from the rows, with
money as ``Decimal``, timestamps as aware UTC datetimes and totals as ``Usage`` values.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Row

from recon_job.compare import COST_ONLY, compare_usage
from recon_job.families import EXTRA_QUANTITIES
from recon_job.models import (
    TIERS,
    Comparison,
    GroupResult,
    Metric,
    ReconResult,
    Status,
    Tier,
    Tolerance,
    UnpricedKey,
    Usage,
    UsageKey,
    Window,
    WindowKind,
    unpriced_order,
)


class RunStatus(enum.StrEnum):
    """State of a run in the history: ``running`` until it finishes, then its outcome.

    ``reconciled`` and ``mismatch`` complete a period (see :data:`COMPLETE`); ``pending`` (some
    days not settled yet), ``failed``, ``interrupted`` (stopped by SIGTERM at a checkpoint) and
    ``abandoned`` (its process died mid-run; marked by a later run) leave it due for catch-up.
    ``skipped`` is reserved: a run that loses the period lock records no row at all.
    """

    RUNNING = "running"
    RECONCILED = "reconciled"
    MISMATCH = "mismatch"
    PENDING = "pending"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    ABANDONED = "abandoned"
    SKIPPED = "skipped"


#: Statuses that complete a period: re-running it is a no-op unless forced. ``pending`` is not
#: one: its unsettled days were judged too early and must be judged again once settled.
COMPLETE = frozenset({RunStatus.RECONCILED, RunStatus.MISMATCH})
#: Statuses of a run whose row holds a result (totals, groups), complete or not.
HOLDS_RESULT = frozenset({RunStatus.RECONCILED, RunStatus.MISMATCH, RunStatus.PENDING})
#: The quantities of a :class:`~recon_job.models.Comparison`, in its field order.
METRICS: tuple[str, ...] = (
    "input_tokens",
    "cached_tokens",
    "output_tokens",
    "tokens",
    "requests",
    "cost",
)


@dataclass(frozen=True, slots=True)
class Difference:
    """Local minus OpenAI, and that difference as a percent of OpenAI's figure."""

    #: Total tokens (input + output), local - OpenAI.
    tokens: int
    #: Requests, local - OpenAI.
    requests: int
    #: USD, local - OpenAI.
    cost: Decimal
    #: Percent of OpenAI's tokens; None when OpenAI's figure is zero.
    tokens_pct: Decimal | None
    #: Percent of OpenAI's requests; None when OpenAI's figure is zero.
    requests_pct: Decimal | None
    #: Percent of OpenAI's cost; None when OpenAI's figure is zero.
    cost_pct: Decimal | None


@dataclass(frozen=True, slots=True)
class GroupRecord:
    """One stored day x model [x project x API key] group of a finished run."""

    run_id: int
    key: UsageKey
    local: Usage
    openai: Usage
    difference: Difference
    status: Status
    #: The metrics judged out of tolerance (:data:`METRICS` names); None: stored before 0005.
    exceeds: frozenset[str] | None = None


@dataclass(frozen=True)
class RunRecord:
    """One stored run. Totals are None while it runs and when it failed (never zero)."""

    id: int
    window: Window
    #: ``Window.key`` at the time of the run.
    window_key: str
    status: RunStatus
    #: What started the run (``cli``, ``daemon``, a command line ...).
    trigger: str
    #: Aware UTC.
    started_at: datetime
    #: Aware UTC; None while running (or when the process died mid-run).
    finished_at: datetime | None
    #: recon-job version that wrote the run.
    tool_version: str
    #: ``hostname:pid`` of the process that ran it (None for runs recorded before 0003).
    owner: str | None = None
    #: Short machine-readable failure reason (``quota_exhausted``, ``deadline`` ...).
    error_reason: str | None = None
    #: Readable failure message, redacted before it was stored.
    error_message: str | None = None
    #: The tolerance the run was judged by (None until finished, and for failed runs).
    tolerance: Tolerance | None = None
    local: Usage | None = None
    openai: Usage | None = None
    difference: Difference | None = None
    group_count: int | None = None
    mismatch_count: int | None = None
    pending_days: tuple[date, ...] = ()
    skipped: Mapping[str, int] = field(default_factory=dict)
    #: ``file:line`` of the first skipped local records, by reason (empty before 0006).
    skipped_locations: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Unpriced local usage per model and tier (the tier is None in rows stored before 0.x
    #: recorded it).
    unpriced: Mapping[UnpricedKey, Usage] = field(default_factory=dict)
    info: Mapping[str, int] = field(default_factory=dict)
    #: Local usage per named source, when several were combined.
    local_sources: Mapping[str, Usage] = field(default_factory=dict)
    #: The metrics of the totals judged out of tolerance; None: not finished, or before 0005.
    exceeds: frozenset[str] | None = None
    #: Families billed that the local side has no record of, with OpenAI's usage of each
    #: (empty before 0007).
    untracked: Mapping[str, Usage] = field(default_factory=dict)
    #: Families whose endpoint OpenAI did not know (empty before 0007).
    unavailable_families: tuple[str, ...] = ()
    #: The run's diagnosis as stored (the ``diagnosis`` object of ``run --format json``; read it
    #: with ``recon_job.report.diagnosis_from_dict``); None when nothing was found, or before
    #: 0008.
    diagnosis: Mapping[str, Any] | None = None

    @property
    def threshold_pct(self) -> Decimal | None:
        """The mismatch threshold in percent, when the run finished."""
        return self.tolerance.threshold_pct if self.tolerance is not None else None


_DEFAULT_TOLERANCE = Tolerance()


def integral(metric: Metric, name: str) -> int:
    """A token or request difference as ``int`` (compare keeps every metric as ``Decimal``)."""
    value = metric.difference
    if value != value.to_integral_value():
        raise ValueError(f"{name} difference {value} is not a whole number")
    return int(value)


def usage_to_json(usage: Usage) -> dict[str, Any]:
    """A ``Usage`` as JSON-ready values (cost as an exact decimal string); the quantities of
    other families (images, seconds, token classes ...) only when not zero."""
    return {
        "input_tokens": usage.input_tokens,
        "cached_tokens": usage.cached_tokens,
        "output_tokens": usage.output_tokens,
        "requests": usage.requests,
        "cost": format(usage.cost, "f"),
        **_extras_of(usage),
    }


def _extras_of(usage: Usage) -> dict[str, int]:
    return {name: value for name in EXTRA_QUANTITIES if (value := int(usage.quantity(name)))}


def extras_json(local: Usage, openai: Usage) -> str | None:
    """The ``extras`` column: each side's quantities beyond the token columns; None when none."""
    sides = {"local": _extras_of(local), "openai": _extras_of(openai)}
    return dumps(sides) if any(sides.values()) else None


def _with_extras(usage: Usage, text: str | None, side: str) -> Usage:
    if text is None:
        return usage
    return replace(usage, **json.loads(text).get(side, {}))


def untracked_json(untracked: Mapping[str, Usage]) -> str:
    """The ``untracked`` column: a JSON list of ``{"family", <usage>}`` in report order."""
    return dumps([{"family": family, **usage_to_json(u)} for family, u in untracked.items()])


def _untracked(text: str | None) -> dict[str, Usage]:
    return {entry.pop("family"): _usage_of(entry) for entry in _loads(text, [])}


def dumps(value: object) -> str:
    """Stable JSON text for the JSON columns."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def exceeds_json(comparison: Comparison) -> str:
    """The ``exceeds`` column: the metrics of ``comparison`` out of tolerance, as JSON."""
    names = (*METRICS, *comparison.extra)
    return dumps([name for name in names if (m := comparison.metric(name)) and m.exceeds])


def _exceeds(text: str | None) -> frozenset[str] | None:
    return None if text is None else frozenset(json.loads(text))


def stored_result(run: RunRecord, groups: Sequence[GroupRecord]) -> ReconResult:
    """The result ``run`` recorded, rebuilt from its row and its ``groups``' rows.

    Differences and percentages follow from the stored figures; the verdicts are the stored
    ones — every status, and which metrics exceeded the tolerance (judged again with the stored
    tolerance only for rows written before revision 0005). ValueError when ``run`` holds no
    result (running, failed, interrupted or abandoned).
    """
    tolerance, local, openai = run.tolerance, run.local, run.openai
    if tolerance is None or local is None or openai is None or run.status not in HOLDS_RESULT:
        raise ValueError(f"run {run.id} is {run.status}: it holds no result")
    unavailable = run.unavailable_families
    return ReconResult(
        window=run.window,
        status=Status(run.status.value),
        tolerance=tolerance,
        local=local,
        openai=openai,
        comparison=_judged(local, openai, tolerance, run.exceeds, family=None),
        groups=tuple(
            GroupResult(
                g.key,
                g.local,
                g.openai,
                _judged(
                    g.local,
                    g.openai,
                    tolerance,
                    g.exceeds,
                    family=g.key.family,
                    cost_only=g.key.family in unavailable,
                ),
                g.status,
            )
            for g in groups
        ),
        untracked=run.untracked,
        unavailable_families=unavailable,
        pending_days=run.pending_days,
        unpriced=run.unpriced,
        skipped=run.skipped,
        info=run.info,
        local_sources=run.local_sources,
        skipped_locations=run.skipped_locations,
    )


def _judged(  # noqa: PLR0913 -- the stored facts of one comparison
    local: Usage,
    openai: Usage,
    tolerance: Tolerance,
    exceeds: frozenset[str] | None,
    *,
    family: str | None,
    cost_only: bool = False,
) -> Comparison:
    """``local`` compared with ``openai`` as a group of ``family`` (None: the totals), with the
    stored verdict per metric when there is one; by cost alone for a family OpenAI could not
    count (``cost_only``)."""
    comparison = compare_usage(local, openai, tolerance, family=family)
    if cost_only:
        comparison = replace(comparison, deciding=COST_ONLY)
    if exceeds is None:
        return comparison
    fixed = {name: replace(getattr(comparison, name), exceeds=name in exceeds) for name in METRICS}
    extra = {name: replace(m, exceeds=name in exceeds) for name, m in comparison.extra.items()}
    return Comparison(**fixed, extra=extra, deciding=comparison.deciding)


def run_record(row: Row[Any]) -> RunRecord:
    """Build a ``RunRecord`` from a ``runs`` row."""
    tolerance = None
    if row.threshold_pct is not None:
        tolerance = Tolerance(
            threshold_pct=row.threshold_pct,
            cost_floor=_DEFAULT_TOLERANCE.cost_floor if row.cost_floor is None else row.cost_floor,
            token_floor=_DEFAULT_TOLERANCE.token_floor
            if row.token_floor is None
            else row.token_floor,
            request_floor=(
                _DEFAULT_TOLERANCE.request_floor if row.request_floor is None else row.request_floor
            ),
        )
    local = openai = difference = None
    if row.local_cost is not None and row.openai_cost is not None:
        local = _with_extras(_usage(row, "local"), row.extras, "local")
        openai = _with_extras(_usage(row, "openai"), row.extras, "openai")
        difference = Difference(
            tokens=_int(row.diff_tokens),
            requests=_int(row.diff_requests),
            cost=row.diff_cost if row.diff_cost is not None else Decimal(0),
            tokens_pct=row.tokens_pct,
            requests_pct=row.requests_pct,
            cost_pct=row.cost_pct,
        )
    unpriced = _unpriced(row.unpriced)
    return RunRecord(
        id=row.id,
        window=Window(cast(WindowKind, row.window_kind), row.window_start, row.window_end),
        window_key=row.window_key,
        status=RunStatus(row.status),
        trigger=row.trigger,
        started_at=row.started_at,
        finished_at=row.finished_at,
        tool_version=row.tool_version,
        owner=row.owner,
        error_reason=row.error_reason,
        error_message=row.error_message,
        tolerance=tolerance,
        local=local,
        openai=openai,
        difference=difference,
        group_count=row.group_count,
        mismatch_count=row.mismatch_count,
        pending_days=tuple(date.fromisoformat(d) for d in _loads(row.pending_days, [])),
        skipped=_loads(row.skipped),
        skipped_locations={
            reason: tuple(where) for reason, where in _loads(row.skipped_locations).items()
        },
        unpriced=unpriced,
        info=_loads(row.info),
        local_sources=_usages(row.sources),
        exceeds=_exceeds(row.exceeds),
        untracked=_untracked(row.untracked),
        unavailable_families=tuple(_loads(row.unavailable_families, [])),
        diagnosis=_diagnosis(row.diagnosis),
    )


def unpriced_json(unpriced: Mapping[UnpricedKey, Usage]) -> str:
    """The ``unpriced`` column: a JSON list of ``{"model", "tier", <usage>}`` objects.

    A list, since one model may be unpriced at several tiers. Rows written before the tier was
    recorded hold an object keyed by model instead; :func:`run_record` reads both.
    """
    return dumps(
        [
            {"model": key.model, "tier": key.tier, **usage_to_json(unpriced[key])}
            for key in sorted(unpriced, key=unpriced_order)
        ]
    )


def _unpriced(text: str | None) -> dict[UnpricedKey, Usage]:
    data = _loads(text)
    if isinstance(data, Mapping):  # stored before the tier was recorded: it is not known
        return {UnpricedKey(name, None): _usage_of(fields) for name, fields in data.items()}
    return {
        UnpricedKey(entry["model"], _tier(entry.get("tier"))): _usage_of(entry) for entry in data
    }


def _tier(value: object) -> Tier | None:
    return value if value in TIERS else None


def _usage_of(fields: Mapping[str, Any]) -> Usage:
    return Usage(
        input_tokens=fields["input_tokens"],
        cached_tokens=fields["cached_tokens"],
        output_tokens=fields["output_tokens"],
        requests=fields["requests"],
        cost=Decimal(fields["cost"]),
        **{name: fields[name] for name in EXTRA_QUANTITIES if name in fields},
    )


def _usages(text: str | None) -> dict[str, Usage]:
    return {
        name: Usage(**{**fields, "cost": Decimal(fields["cost"])})
        for name, fields in _loads(text).items()
    }


#: The ``run_groups`` columns a :class:`GroupRecord` is built from, in the order
#: :func:`group_record_of` takes them (a query selecting these columns hands its rows over as
#: they are).
GROUP_COLUMNS: tuple[str, ...] = (
    "run_id",
    "day",
    "model",
    "project_id",
    "api_key_id",
    "family",
    "local_input_tokens",
    "local_cached_tokens",
    "local_output_tokens",
    "local_requests",
    "local_cost",
    "openai_input_tokens",
    "openai_cached_tokens",
    "openai_output_tokens",
    "openai_requests",
    "openai_cost",
    "diff_tokens",
    "diff_requests",
    "diff_cost",
    "tokens_pct",
    "requests_pct",
    "cost_pct",
    "status",
    "exceeds",
    "extras",
)


def group_record(row: Row[Any]) -> GroupRecord:
    """Build a ``GroupRecord`` from a ``run_groups`` row."""
    return group_record_of(tuple(getattr(row, name) for name in GROUP_COLUMNS))


def group_record_of(values: Sequence[Any]) -> GroupRecord:
    """Build a ``GroupRecord`` from the values of :data:`GROUP_COLUMNS`, in that order (a Core
    row selecting those columns).

    The one place a group row becomes a record. An overview builds thousands of these, so it
    unpacks the row at once (a Core row's attributes cost more than building the record),
    parses each distinct ``exceeds`` text once and passes arguments by position.
    """
    (
        run_id,
        day,
        model,
        project_id,
        api_key_id,
        family,
        local_input,
        local_cached,
        local_output,
        local_requests,
        local_cost,
        openai_input,
        openai_cached,
        openai_output,
        openai_requests,
        openai_cost,
        diff_tokens,
        diff_requests,
        diff_cost,
        tokens_pct,
        requests_pct,
        cost_pct,
        status,
        exceeds,
        extras,
    ) = values
    local = Usage(
        local_input or 0, local_cached or 0, local_output or 0, local_requests or 0, local_cost
    )
    openai = Usage(
        openai_input or 0, openai_cached or 0, openai_output or 0, openai_requests or 0, openai_cost
    )
    if extras is not None:
        local = _with_extras(local, extras, "local")
        openai = _with_extras(openai, extras, "openai")
    return GroupRecord(
        run_id,
        UsageKey(day, model, project_id, api_key_id, family),
        local,
        openai,
        Difference(diff_tokens, diff_requests, diff_cost, tokens_pct, requests_pct, cost_pct),
        _STATUSES[status],
        None if exceeds is None else _exceeds_cached(exceeds),
    )


_STATUSES: Mapping[str, Status] = {s.value: s for s in Status}


@lru_cache(maxsize=256)
def _exceeds_cached(text: str) -> frozenset[str]:
    # A few distinct texts ("[]", '["cost"]' ...) repeat over thousands of rows.
    return frozenset(json.loads(text))


def _usage(row: Row[Any], side: str) -> Usage:
    return Usage(
        input_tokens=_int(getattr(row, f"{side}_input_tokens")),
        cached_tokens=_int(getattr(row, f"{side}_cached_tokens")),
        output_tokens=_int(getattr(row, f"{side}_output_tokens")),
        requests=_int(getattr(row, f"{side}_requests")),
        cost=getattr(row, f"{side}_cost"),
    )


def _int(value: int | None) -> int:
    return int(value) if value is not None else 0


def _diagnosis(text: str | None) -> Mapping[str, Any] | None:
    """The stored diagnosis; None when there is none or it is not a JSON object (a damaged
    row shows no diagnosis instead of failing the page that shows the run)."""
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _loads(text: str | None, default: Any = None) -> Any:
    if text is None:
        return {} if default is None else default
    return json.loads(text)
