"""One reconciliation run: fetch -> normalise -> compare -> persist -> plan alerts -> deliver.

:func:`run_once` is the whole orchestration. It takes one :class:`Deps` — the sources, the history
store, the channels and the rules, built from the settings by :mod:`recon_job.wiring` — so the CLI,
the run loop and the daemon only build the dependencies, read the clock and call it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final, TypeVar

import structlog

from recon_job import compare, investigate, windows
from recon_job.delivery import (
    Alerting,
    Planned,
    RunFacts,
    deliver,
    plan_findings,
    plan_run,
    shown_alerts,
)
from recon_job.diagnosis import official_figures, recheck_window, restatements
from recon_job.errors import Interrupted, ReconError, StoreError
from recon_job.faults import fault_point
from recon_job.findings import BilledLine, Diagnosis, Duplicates, Restatement
from recon_job.modelnames import ModelNamer
from recon_job.models import (
    EMPTY,
    ReconResult,
    RunOutcome,
    Tolerance,
    UnpricedKey,
    Usage,
    UsageKey,
    UsageTotals,
    Window,
)
from recon_job.report import diagnosis_dict, pct
from recon_job.sources.base import UsageSource
from recon_job.sources.openai.lineitems import per_family_models
from recon_job.store import HistoryStore, RunStatus

log = structlog.get_logger(__name__)

K = TypeVar("K")

#: How many locations of duplicate records a merged result keeps.
MAX_LOCATIONS: Final = 10

EV_RUN_STARTED: Final = "recon.run.started"
EV_RUN_FINISHED: Final = "recon.run.finished"
EV_RUN_FAILED: Final = "recon.run.failed"
EV_RUN_INTERRUPTED: Final = "recon.run.interrupted"
EV_RESULT_UNRECORDED: Final = "recon.run.result_unrecorded"
EV_DELIVERY_STOPPED: Final = "recon.run.delivery_stopped"
EV_RESTATEMENTS_UNREAD: Final = "recon.run.restatements_unread"
EV_FINDINGS_UNRECORDED: Final = "recon.run.findings_unrecorded"


@dataclass(frozen=True)
class Sources:
    """Where a run gets its figures: named local sources and OpenAI's official ones."""

    #: The team's own records, by name (priced where records carry no cost); summed.
    local: tuple[tuple[str, UsageSource], ...]
    #: OpenAI's figures; their groups are summed (Usage API tokens + Costs API dollars).
    official: tuple[UsageSource, ...]


@dataclass(frozen=True)
class RunControl:
    """How a run is driven: who started it, the clock that stamps it, the stop it obeys."""

    #: Stamps the end of a run (and each delivery); the start is the ``now`` passed in.
    clock: Callable[[], datetime]
    #: Checked at checkpoints: once set, the run stops and is recorded as ``interrupted``.
    stop: threading.Event | None = None
    #: Recorded with the run: ``cli``, ``due``, ``daemon`` ...
    trigger: str = "run"


@dataclass(frozen=True)
class Deps:
    """Everything one run needs; built by :func:`recon_job.wiring.deps`."""

    sources: Sources
    #: The history database; the caller opens and closes it.
    store: HistoryStore
    #: Normalises model names on both sides before they are compared.
    namer: ModelNamer
    tolerance: Tolerance
    #: How long after its end a UTC day counts as settled.
    settle: timedelta
    #: The channels and their rules (no channel: nothing is planned or sent).
    alerting: Alerting
    control: RunControl
    #: Which families are compared and what an untracked family does to the verdict.
    rules: compare.Rules = field(default_factory=compare.Rules)
    #: Settled days before a daily window re-checked for revisions by OpenAI (0: none).
    restatement_days: int = 0
    #: What the diagnosis may fetch and use; None: no diagnosis (restatements still found).
    investigator: investigate.Investigator | None = None

    @property
    def clock(self) -> Callable[[], datetime]:
        """The run's clock."""
        return self.control.clock

    @property
    def stop(self) -> threading.Event | None:
        """The stop event checked at checkpoints."""
        return self.control.stop

    @property
    def trigger(self) -> str:
        """Who started the run."""
        return self.control.trigger


def normalize(
    totals: UsageTotals, namer: ModelNamer, per_family: Mapping[str, str] | None = None
) -> UsageTotals:
    """``totals`` with every model name normalised and groups that now coincide summed.

    ``per_family`` maps a family OpenAI bills without a model (``"web search tool calls"``) to
    the model its cost is keyed under: every group of that family is keyed under it too, so the
    family is compared as a whole instead of its dollars missing from every per-model group.
    """
    models = per_family or {}

    def model(key: UsageKey) -> str:
        return models.get(key.family) or namer.normalize(key.model)

    groups: dict[UsageKey, Usage] = {}
    _add(groups, ((replace(k, model=model(k)), u) for k, u in totals.groups.items()))
    return replace(totals, groups=groups)


def merge(parts: list[UsageTotals]) -> UsageTotals:
    """Several sources' totals as one: groups and unpriced usage summed, counts added, the
    skipped lines' locations listed source after source."""
    groups: dict[UsageKey, Usage] = {}
    unpriced: dict[UnpricedKey, Usage] = {}
    skipped: Counter[str] = Counter()
    info: Counter[str] = Counter()
    located: dict[str, tuple[str, ...]] = {}
    unavailable: dict[str, None] = {}
    billed: list[BilledLine] = []
    for part in parts:
        _add(groups, part.groups.items())
        _add(unpriced, part.unpriced.items())
        skipped.update(part.skipped)
        info.update(part.info)
        for reason, where in part.skipped_locations.items():
            located[reason] = located.get(reason, ()) + tuple(where)
        unavailable.update(dict.fromkeys(part.unavailable_families))
        billed.extend(part.billed_lines)
    return UsageTotals(
        groups=groups,
        skipped=dict(skipped),
        unpriced=unpriced,
        info=dict(info),
        skipped_locations=dict(sorted(located.items())),
        unavailable_families=tuple(unavailable),
        duplicates=merge_duplicates(p.duplicates for p in parts),
        billed_lines=tuple(billed),
    )


def merge_duplicates(parts: Iterable[Duplicates | None]) -> Duplicates | None:
    """The duplicates several sources found, added (None when none of them dedupes)."""
    found = [d for d in parts if d is not None]
    if not found:
        return None
    return Duplicates(
        count=sum(d.count for d in found),
        request_ids=sum(d.request_ids for d in found),
        cost=sum((d.cost for d in found), Decimal(0)),
        locations=tuple(loc for d in found for loc in d.locations)[:MAX_LOCATIONS],
    )


def _add(target: dict[K, Usage], items: Iterable[tuple[K, Usage]]) -> None:
    for key, usage in items:
        target[key] = target.get(key, EMPTY) + usage


def run_once(deps: Deps, window: Window, now: datetime) -> RunOutcome:
    """Reconcile ``window`` and record the run; a failed fetch is recorded as failed, not zero.

    ``now`` decides which days are settled; ``deps.clock`` stamps the end of the run. Source
    errors end the run as ``failed``; store errors raise. The run's notifications are committed
    with its result and then delivered, with any an earlier run left pending.

    ``deps.stop`` is checked at checkpoints (before the OpenAI fetch, between sources, before the
    commit); once set, the run is marked ``interrupted`` (not failed) and ``Interrupted`` is
    raised. After the commit a stop only ends the delivery (the rest waits in the outbox) and
    the run is returned complete. Any other exception escaping a started run marks it
    ``failed``: no row stays ``running`` unless the process itself dies.

    A result the store refuses to record (a ``StoreError`` on commit) makes the run ``failed``
    with that error and its ``failed`` notification, like a failed fetch: the people behind the
    channels hear that the period could not be recorded. If even the failure cannot be recorded,
    the ``StoreError`` is raised (the run loop's alarm reports it).
    """
    history = deps.store
    run_id: int | None = None
    try:
        run_id = history.start_run(window, started_at=now, trigger=deps.trigger)
        bound = log.bind(run_id=run_id, window=window.key)
        bound.info(EV_RUN_STARTED, start=window.start.isoformat(), end=window.end.isoformat())
        try:
            fetched, parts = _fetch(deps, window, now)
        except Interrupted:
            raise
        except ReconError as e:
            return _failed(deps, window, run_id, e, now)
        official = within(fetched, window)
        local = merge([totals for _, totals in parts])
        result = compare.reconcile(
            local,
            official,
            window=window,
            tolerance=deps.tolerance,
            pending_days=windows.pending_days(window, now, deps.settle),
            rules=deps.rules,
        )
        if len(parts) > 1:
            result = replace(result, local_sources={name: t.total for name, t in parts})
        # A day evaluated again after OpenAI revised it says why its figures changed: the
        # revisions of the window's days earlier runs recorded come first, then this run's.
        known = _known_restatements(deps, window)
        restated = (*known, *_restated(deps, fetched, now))
        if deps.investigator is not None:
            _checkpoint(deps.stop, "the diagnosis")
            found = investigate.diagnose(
                deps.investigator,
                result,
                official=official,
                local=local,
                store=history,
                restated=restated,
            )
            result = replace(result, diagnosis=found)
        elif restated:
            result = replace(result, diagnosis=Diagnosis(restatements=restated))
        return _finished(deps, window, run_id, result, now, known=known)
    except BaseException as e:
        # Whatever stops a run must not leave its row "running" forever (reliability.md R38);
        # abort_run changes nothing once the row is finished or failed.
        if run_id is not None:
            _abort(history, run_id, e, deps.clock)
        raise


def _fetch(
    deps: Deps, window: Window, now: datetime
) -> tuple[UsageTotals, list[tuple[str, UsageTotals]]]:
    """OpenAI's figures, then each local source's, normalised; checkpoints in between.

    OpenAI's figures may cover more days than ``window``: the settled days before it that the
    same page covers (``reconcile.restatement_days``), re-checked for revisions.
    """
    _checkpoint(deps.stop, "the OpenAI fetch")
    official_window = window
    if deps.restatement_days and window.kind == "daily":
        official_window = recheck_window(window, now, deps.settle, deps.restatement_days)
    # OpenAI first: if it fails there is no point reading gigabytes of logs.
    fetched = []
    for source in deps.sources.official:
        fetched.append(source.fetch(official_window))
        _checkpoint(deps.stop, "the next source")
    merged = merge(fetched)
    # Usage and Costs groups meet by family and model; a family billed without a model meets
    # as a whole (reference §1.8: "web search tool calls").
    per_family = per_family_models((k.family, k.model) for k in merged.groups)
    official = normalize(merged, deps.namer, per_family)
    parts = []
    for name, source in deps.sources.local:
        parts.append((name, normalize(source.fetch(window), deps.namer, per_family)))
        _checkpoint(deps.stop, "the next source")
    return official, parts


def within(totals: UsageTotals, window: Window) -> UsageTotals:
    """``totals`` with only the groups and billed lines of ``window``'s days."""
    if all(k.day in window for k in totals.groups) and all(
        line.day in window for line in totals.billed_lines
    ):
        return totals
    return replace(
        totals,
        groups={k: u for k, u in totals.groups.items() if k.day in window},
        billed_lines=tuple(line for line in totals.billed_lines if line.day in window),
    )


def _restated(deps: Deps, fetched: UsageTotals, now: datetime) -> tuple[Restatement, ...]:
    """OpenAI's revisions of days an earlier run completed: every settled day fetched, compared
    with the figures the history holds for it (recorded with the run's result)."""
    last = windows.last_settled_day(now, deps.settle)
    settled = sorted({k.day for k in fetched.groups if k.day <= last})
    if not settled:
        return ()
    by_project = any(k.project_id for k in fetched.groups)
    try:
        previous, runs = deps.store.previous_official(settled, by_project=by_project)
    except StoreError as e:
        log.warning(EV_RESTATEMENTS_UNREAD, reason=e.reason)
        return ()
    current = official_figures(fetched.groups, days=runs.keys(), by_project=by_project)
    return restatements(
        previous,
        current,
        deps.tolerance,
        seen_at=now,
        days=runs.keys(),
        previous_runs=runs,
        cost_only=fetched.unavailable_families,
    )


def _known_restatements(deps: Deps, window: Window) -> tuple[Restatement, ...]:
    """The revisions of ``window``'s days the history holds, oldest seen first."""
    try:
        found = deps.store.restatements_since(first_day=window.start, last_day=window.last_day)
    except StoreError as e:
        log.warning(EV_RESTATEMENTS_UNREAD, reason=e.reason)
        return ()
    return tuple(found)


def _failed(
    deps: Deps, window: Window, run_id: int, error: ReconError, now: datetime
) -> RunOutcome:
    """Record a run whose sources failed, with its ``failed`` notifications."""
    planned = plan_run(deps.alerting, deps.store, RunFacts(window, run_id, None, error), now=now)
    finished = deps.clock()
    deps.store.fail_run(
        run_id, reason=error.reason, message=str(error), finished_at=finished, outbox=planned.items
    )
    log.error(
        EV_RUN_FAILED,
        run_id=run_id,
        window=window.key,
        reason=error.reason,
        error=str(error),
        permanent=error.permanent,
        duration_s=round((finished - now).total_seconds(), 3),
    )
    shown = _deliver(deps, planned)
    return RunOutcome(run_id, window, now, finished, error=error, alerts=shown)


def _finished(  # noqa: PLR0913 -- the run's facts, passed through
    deps: Deps,
    window: Window,
    run_id: int,
    result: ReconResult,
    now: datetime,
    *,
    known: tuple[Restatement, ...] = (),
) -> RunOutcome:
    """Commit a run's result with its notifications, then deliver them. ``known``: the
    restatements in the result that the history already holds (not recorded again)."""
    planned = plan_run(deps.alerting, deps.store, RunFacts(window, run_id, result), now=now)
    planned = _with_findings(deps, planned, window, run_id, result, now)
    # The last checkpoint: after the commit the run is complete and is reported as such.
    _checkpoint(deps.stop, "committing the result")
    finished = deps.clock()
    try:
        deps.store.finish_run(
            run_id,
            result,
            finished_at=finished,
            outbox=planned.items,
            diagnosis=None if result.diagnosis.empty else diagnosis_dict(result.diagnosis),
        )
    except StoreError as e:
        # Say so through the channels instead of failing silently at every later run.
        log.error(EV_RESULT_UNRECORDED, run_id=run_id, window=window.key, reason=e.reason)
        return _failed(deps, window, run_id, e, now)
    _record_findings(deps, run_id, result, finished, known)
    log.info(
        EV_RUN_FINISHED,
        run_id=run_id,
        window=window.key,
        status=str(result.status),
        groups=len(result.groups),
        mismatches=len(result.mismatches),
        pending_days=len(result.pending_days),
        tokens_pct=_pct(result.comparison.tokens.pct),
        cost_pct=_pct(result.comparison.cost.pct),
        local_cost=str(result.local.cost),
        openai_cost=str(result.openai.cost),
        skipped=sum(result.skipped.values()),
        unpriced_models=sorted(result.unpriced),
        duration_s=round((finished - now).total_seconds(), 3),
    )
    shown = _deliver(deps, planned)
    return RunOutcome(run_id, window, now, finished, result=result, alerts=shown)


def _with_findings(  # noqa: PLR0913 -- the run's facts, passed through
    deps: Deps, planned: Planned, window: Window, run_id: int, result: ReconResult, now: datetime
) -> Planned:
    """``planned`` plus the notices of the diagnosis's findings the settings ask to tell."""
    if not deps.alerting.channels or result.diagnosis.empty:
        return planned
    # Imported here: only a run with channels and findings makes notices of them.
    from recon_job.notify.findings import (
        price_notices,
        restated_notices,
        shadow_notices,
        trend_notices,
    )

    found = result.diagnosis
    options = deps.investigator.options if deps.investigator else investigate.DiagnosisOptions()
    notices = [
        *(price_notices(found.price_findings) if options.price_alert else ()),
        *(restated_notices(found.restatements) if options.restated_alert else ()),
        *(
            shadow_notices(found.shadow, window, min_share_pct=options.shadow_alert_pct)
            if options.shadow_alert_pct is not None
            else ()
        ),
        *(trend_notices(found.change_points) if options.trend_alert else ()),
    ]
    if not notices:
        return planned
    more = plan_findings(deps.alerting, deps.store, notices, run_id=run_id, now=now)
    return Planned(planned.items + more.items, planned.shown + more.shown)


def _record_findings(
    deps: Deps,
    run_id: int,
    result: ReconResult,
    finished: datetime,
    known: tuple[Restatement, ...] = (),
) -> None:
    """Keep the findings later runs compare with: restatements (applied on top of the figures
    they revise) and billed prices (their first and last day). A failure is logged: the run's
    result is already committed."""
    found = result.diagnosis
    try:
        new = [r for r in found.restatements if r not in known]
        if new:
            deps.store.record_restatements(run_id, new)
        if found.price_findings:
            deps.store.record_price_findings(found.price_findings, finished)
    except StoreError as e:
        log.warning(EV_FINDINGS_UNRECORDED, run_id=run_id, reason=e.reason)


def _checkpoint(stop: threading.Event | None, before: str) -> None:
    """Raise ``Interrupted`` when a shutdown was requested; called between the run's steps."""
    if stop is not None and stop.is_set():
        raise Interrupted(f"interrupted before {before}: shutdown requested")


def _abort(
    history: HistoryStore, run_id: int, error: BaseException, clock: Callable[[], datetime]
) -> None:
    """End a still-running run as interrupted (a stop, Ctrl-C) or failed (a bug, the store)."""
    interrupted = isinstance(error, Interrupted | KeyboardInterrupt)
    status = RunStatus.INTERRUPTED if interrupted else RunStatus.FAILED
    reason = "interrupted" if interrupted else getattr(error, "reason", type(error).__name__)
    message = str(error) if isinstance(error, Interrupted) else "internal error"
    try:
        changed = history.abort_run(
            run_id, status=status, reason=reason, message=message, finished_at=clock()
        )
    except ReconError:
        changed = False  # the store itself is failing; the next run reaps the row (abandoned)
    if changed and isinstance(error, Interrupted):
        error.run_id = run_id
    if changed and interrupted:
        log.warning(EV_RUN_INTERRUPTED, run_id=run_id, reason=reason)


def _deliver(deps: Deps, planned: Planned) -> tuple[dict[str, Any], ...]:
    # Test-only crash point: the result and its notifications are committed, nothing is sent.
    fault_point("after_outbox_commit")
    if not deps.alerting.channels:
        return ()
    try:
        report = deliver(
            deps.alerting, deps.store, now=deps.clock(), clock=deps.clock, stop=deps.stop
        )
    except Interrupted:
        # The shutdown budget cut a hung send short. The run is committed, hence complete; what
        # was not sent waits in the outbox, and the run loop's next checkpoint ends the tick.
        log.warning(EV_DELIVERY_STOPPED)
        report = None
    return tuple(shown_alerts(planned, report))


def _pct(value: Decimal | None) -> str | None:
    """A percentage for the log line, rounded as every report rounds it (never 60 digits)."""
    return pct(value)
