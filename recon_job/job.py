"""One reconciliation run: fetch -> normalise -> compare -> persist.

``run_once`` is the whole orchestration; the CLI and the daemon only parse, load settings, read the
clock and call it. Sources and the store can be passed in (tests, embedding); otherwise they are
built from the settings.
"""

from __future__ import annotations

import difflib
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import structlog

from recon_job import compare, windows
from recon_job.config.settings import LogsSettings, Settings, SqlSourceSettings
from recon_job.delivery import plan as alerting
from recon_job.errors import ConfigError, Interrupted, ReconError
from recon_job.faults import fault_point
from recon_job.http import Deadline, make_session
from recon_job.modelnames import ModelNamer
from recon_job.models import (
    EMPTY,
    ReconResult,
    Status,
    Tolerance,
    Usage,
    UsageKey,
    UsageTotals,
    Window,
)
from recon_job.notify.base import Transport
from recon_job.pricing import PriceTable
from recon_job.sources.base import UsageSource
from recon_job.sources.exports.source import CsvActivitySource, CsvCostSource, detect_export_kind
from recon_job.sources.ndjson.source import NdjsonLogSource, NdjsonOptions
from recon_job.sources.openai.base import OpenAIOptions
from recon_job.sources.openai.costs import OpenAICostsSource
from recon_job.sources.openai.usage import OpenAIUsageSource
from recon_job.sources.sql.source import SqlTableOptions, SqlTableSource
from recon_job.store import HistoryStore, RunStatus

log = structlog.get_logger(__name__)

K = TypeVar("K")

EV_RUN_STARTED = "recon.run.started"
EV_RUN_FINISHED = "recon.run.finished"
EV_RUN_FAILED = "recon.run.failed"
EV_RUN_INTERRUPTED = "recon.run.interrupted"


@dataclass(frozen=True)
class Sources:
    """Where a run gets its figures: named local sources and OpenAI's official ones."""

    #: The team's own records, by name (priced where records carry no cost); summed.
    local: tuple[tuple[str, UsageSource], ...]
    #: OpenAI's figures; their groups are summed (Usage API tokens + Costs API dollars).
    official: tuple[UsageSource, ...]


@dataclass(frozen=True)
class RunOutcome:
    """What a run produced: a result, or the error that stopped it. Never both."""

    run_id: int
    window: Window
    started_at: datetime
    finished_at: datetime
    result: ReconResult | None = None
    error: ReconError | None = None
    #: One ``{"channel", "event", "status"}`` per notification (see ``alerting.shown_alerts``).
    alerts: tuple[dict[str, Any], ...] = ()

    @property
    def status(self) -> Status:
        """The run's status; ``failed`` when it produced no result."""
        return self.result.status if self.result is not None else Status.FAILED


def model_namer(settings: Settings) -> ModelNamer:
    """The model-name normaliser both sides go through."""
    return ModelNamer(
        aliases=dict(settings.models.aliases),
        strip_date_suffix=settings.models.strip_date_suffix,
    )


def price_table(settings: Settings, namer: ModelNamer) -> PriceTable:
    """The bundled price table with the user's file over it; aliases must name priced models."""
    table = PriceTable.load(settings.pricing.file, namer=namer)
    known = table.models()
    problems = []
    for alias, target in sorted(settings.models.aliases.items()):
        if target not in known:
            close = difflib.get_close_matches(target, sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(
                f"models.aliases: {alias!r} maps to {target!r}, which is not a model in the "
                f"price table{hint}; fix the alias or add the model to your pricing file"
            )
    if problems:
        raise ConfigError(problems)
    return table


def tolerance(settings: Settings) -> Tolerance:
    """The mismatch rule from the settings."""
    r = settings.reconcile
    return Tolerance(
        threshold_pct=r.threshold_pct,
        cost_floor=r.cost_floor,
        token_floor=r.token_floor,
        request_floor=r.request_floor,
    )


def build_sources(
    settings: Settings,
    *,
    namer: ModelNamer,
    pricer: PriceTable,
    openai_csv: Sequence[str | Path] = (),
) -> Sources:
    """The configured local sources, and OpenAI's APIs (or dashboard CSV exports instead)."""
    local = build_local_sources(settings, namer=namer, pricer=pricer)
    if openai_csv:
        return Sources(local=local, official=csv_sources(settings, openai_csv))
    return Sources(local=local, official=api_sources(settings))


def build_local_sources(
    settings: Settings, *, namer: ModelNamer, pricer: PriceTable
) -> tuple[tuple[str, UsageSource], ...]:
    """``[[sources]]`` by name, or the one NDJSON source of ``[logs]`` when none is listed."""
    o = settings.openai

    def ndjson(logs: LogsSettings) -> UsageSource:
        options = NdjsonOptions(
            paths=tuple(logs.paths),
            timezone=logs.timezone,
            fields=dict(logs.fields),
            group_by=tuple(o.group_by),
            project_ids=tuple(o.project_ids),
            cost_unit=logs.cost_unit,
            workers=settings.logs.workers,
        )
        return NdjsonLogSource(options, pricer, namer)

    if not settings.sources:
        return (("logs", ndjson(settings.logs)),)
    built: list[tuple[str, UsageSource]] = []
    for source in settings.sources:
        if isinstance(source, SqlSourceSettings):
            assert source.url is not None  # settings validation guarantees it
            options = SqlTableOptions(
                url=source.url.get_secret_value(),
                table=source.table,
                columns=dict(source.columns),
                cost_unit=source.cost_unit,
                filter=source.filter,
                timestamp_timezone=source.timestamp_timezone,
                group_by=tuple(o.group_by),
                project_ids=tuple(o.project_ids),
            )
            built.append((source.name, SqlTableSource(options, pricer, namer)))
        else:
            built.append((source.name, ndjson(source)))
    return tuple(built)


def api_sources(settings: Settings) -> tuple[UsageSource, ...]:
    """OpenAI's Usage API (tokens, requests) and Costs API (dollars), sharing one session."""
    o = settings.openai
    if o.admin_key is None or not o.admin_key.get_secret_value():
        raise ConfigError(
            "no OpenAI admin key: set OPENAI_ADMIN_KEY (or OPENAI_ADMIN_KEY_FILE) to an admin key "
            "(sk-admin-...) from platform.openai.com/settings/organization/admin-keys, or "
            "reconcile offline from dashboard exports with --openai-from-csv"
        )
    options = OpenAIOptions(
        base_url=o.base_url,
        admin_key=o.admin_key.get_secret_value(),
        project_ids=tuple(o.project_ids),
        api_key_ids=tuple(o.api_key_ids),
        group_by=tuple(o.group_by),
        connect_timeout=o.connect_timeout_seconds,
        read_timeout=o.read_timeout_seconds,
        max_pages=o.max_pages,
    )
    deadline = Deadline(o.deadline_seconds)
    session = make_session(
        retries=o.max_retries, max_retry_after=o.max_retry_after_seconds, deadline=deadline
    )
    return (
        OpenAIUsageSource(options, session, deadline),
        OpenAICostsSource(options, session, deadline),
    )


def csv_sources(settings: Settings, files: Sequence[str | Path]) -> tuple[UsageSource, ...]:
    """The dashboard's Activity and Cost exports in place of the two APIs: both are needed."""
    kinds = {str(f): detect_export_kind(f) for f in files}
    activity = [f for f, kind in kinds.items() if kind in ("activity", "empty")]
    cost = [f for f, kind in kinds.items() if kind in ("cost", "empty")]
    problems = []
    if not cost:
        problems.append(
            "--openai-from-csv needs the Cost export too (Usage dashboard -> Cost -> Export, "
            "group by line item, 1-day interval): dollars come only from it"
        )
    if not activity:
        problems.append(
            "--openai-from-csv needs the Activity export too (Usage dashboard -> Activity -> "
            "Export, 1-day interval): tokens and requests come only from it"
        )
    if problems:
        raise ConfigError(problems)
    o = settings.openai
    common: dict[str, Any] = {
        "organization_id": o.organization_id,
        "group_by": tuple(o.group_by),
        "project_ids": tuple(o.project_ids),
    }
    return CsvActivitySource(activity, **common), CsvCostSource(cost, **common)


def normalize(totals: UsageTotals, namer: ModelNamer) -> UsageTotals:
    """``totals`` with every model name normalised and groups that now coincide summed."""
    groups: dict[UsageKey, Usage] = {}
    _add(
        groups, ((replace(k, model=namer.normalize(k.model)), u) for k, u in totals.groups.items())
    )
    return replace(totals, groups=groups)


def merge(parts: list[UsageTotals]) -> UsageTotals:
    """Several sources' totals as one: groups and unpriced usage summed, counts added."""
    groups: dict[UsageKey, Usage] = {}
    unpriced: dict[str, Usage] = {}
    skipped: Counter[str] = Counter()
    info: Counter[str] = Counter()
    for part in parts:
        _add(groups, part.groups.items())
        _add(unpriced, part.unpriced.items())
        skipped.update(part.skipped)
        info.update(part.info)
    return UsageTotals(groups=groups, skipped=dict(skipped), unpriced=unpriced, info=dict(info))


def _add(target: dict[K, Usage], items: Iterable[tuple[K, Usage]]) -> None:
    for key, usage in items:
        target[key] = target.get(key, EMPTY) + usage


def run_once(
    settings: Settings,
    window: Window,
    *,
    now: datetime,
    clock: Callable[[], datetime],
    sources: Sources | None = None,
    store: HistoryStore | None = None,
    trigger: str = "run",
    openai_csv: Sequence[str | Path] = (),
    channels: Mapping[str, Transport] | None = None,
    stop: threading.Event | None = None,
) -> RunOutcome:
    """Reconcile ``window`` and record the run; a failed fetch is recorded as failed, not zero.

    ``now`` decides which days are settled; ``clock`` stamps the end of the run. Configuration
    errors raise before anything is recorded; source errors end the run as ``failed``; store
    errors raise. ``channels`` are the notification channels (default: the configured ones;
    ``{}`` sends nothing, as ``--no-alerts`` does); their notifications are committed with the
    result and then delivered, with any an earlier run left pending.

    ``stop`` is checked at checkpoints (before the OpenAI fetch, between sources, before the
    commit); once set, the run is marked ``interrupted`` (not failed) and ``Interrupted`` is
    raised. Any other exception escaping a started run marks it ``failed``: no row stays
    ``running`` unless the process itself dies.
    """
    namer = model_namer(settings)
    if channels is None:
        channels = alerting.build_transports(settings) if settings.alerts.enabled else {}
    if sources is None:
        pricer = price_table(settings, namer)
        sources = build_sources(settings, namer=namer, pricer=pricer, openai_csv=openai_csv)
    own_store = store is None
    history = store or HistoryStore(settings.history.database_url.get_secret_value())
    run_id: int | None = None
    try:
        run_id = history.start_run(window, started_at=now, trigger=trigger)
        bound = log.bind(run_id=run_id, window=window.key)
        bound.info(EV_RUN_STARTED, start=window.start.isoformat(), end=window.end.isoformat())
        try:
            _checkpoint(stop, "the OpenAI fetch")
            # OpenAI first: if it fails there is no point reading gigabytes of logs.
            fetched = []
            for source in sources.official:
                fetched.append(source.fetch(window))
                _checkpoint(stop, "the next source")
            official = normalize(merge(fetched), namer)
            parts = []
            for name, source in sources.local:
                parts.append((name, normalize(source.fetch(window), namer)))
                _checkpoint(stop, "the next source")
        except Interrupted:
            raise
        except ReconError as e:
            planned = alerting.plan_run(
                settings,
                history,
                channels,
                window=window,
                run_id=run_id,
                result=None,
                error=e,
                now=now,
            )
            finished = clock()
            history.fail_run(
                run_id, reason=e.reason, message=str(e), finished_at=finished, outbox=planned.items
            )
            bound.error(
                EV_RUN_FAILED,
                reason=e.reason,
                error=str(e),
                permanent=e.permanent,
                duration_s=round((finished - now).total_seconds(), 3),
            )
            shown = _deliver(settings, history, channels, planned, clock)
            return RunOutcome(run_id, window, now, finished, error=e, alerts=shown)
        settle = timedelta(hours=settings.reconcile.settle_hours)
        result = compare.reconcile(
            merge([totals for _, totals in parts]),
            official,
            window=window,
            tolerance=tolerance(settings),
            pending_days=windows.pending_days(window, now, settle),
        )
        if len(parts) > 1:
            result = replace(result, local_sources={name: t.total for name, t in parts})
        planned = alerting.plan_run(
            settings,
            history,
            channels,
            window=window,
            run_id=run_id,
            result=result,
            error=None,
            now=now,
        )
        # The last checkpoint: after the commit the run is complete and is reported as such.
        _checkpoint(stop, "committing the result")
        finished = clock()
        history.finish_run(run_id, result, finished_at=finished, outbox=planned.items)
        bound.info(
            EV_RUN_FINISHED,
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
        shown = _deliver(settings, history, channels, planned, clock)
        return RunOutcome(run_id, window, now, finished, result=result, alerts=shown)
    except BaseException as e:
        # Whatever stops a run must not leave its row "running" forever (reliability.md R38);
        # abort_run changes nothing once the row is finished or failed.
        if run_id is not None:
            _abort(history, run_id, e, clock)
        raise
    finally:
        if own_store:
            history.close()


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
    if isinstance(error, Interrupted):
        error.run_id = run_id
    try:
        changed = history.abort_run(
            run_id, status=status, reason=reason, message=message, finished_at=clock()
        )
    except ReconError:
        return  # the store itself is failing; the next run reaps the row (abandoned)
    if changed and interrupted:
        log.warning(EV_RUN_INTERRUPTED, run_id=run_id, reason=reason)


def _deliver(
    settings: Settings,
    store: HistoryStore,
    channels: Mapping[str, Transport],
    planned: alerting.Planned,
    clock: Callable[[], datetime],
) -> tuple[dict[str, Any], ...]:
    # Test-only crash point: the result and its notifications are committed, nothing is sent.
    fault_point("after_outbox_commit")
    if not channels:
        return ()
    report = alerting.deliver(settings, store, channels, now=clock(), clock=clock)
    return tuple(alerting.shown_alerts(planned, report))


def _pct(value: object) -> str | None:
    return None if value is None else str(value)
