"""Settings -> components: the ONLY place that maps :class:`~recon_job.config.Settings` to options.

Every component (a source, a transport, the price table, the model namer) takes plain options or
values, never the settings; this module reads the settings once and builds them. The kinds of
local source and of notification channel are plain registries keyed by the configuration value
(:data:`SOURCES`, :data:`TRANSPORTS`), so adding a kind is adding one entry.

:func:`deps` builds everything one run needs (:class:`recon_job.job.Deps`) for ``run``,
``run --due`` and the daemon. It first runs :func:`recon_job.config.checks.problems`, the checks
``check-config`` runs, so a run refuses exactly what ``check-config`` reports. Every rule about a
setting lives in :mod:`recon_job.config`; the options built here carry validated data only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from recon_job.alerts import AlertPolicy
from recon_job.compare import Rules
from recon_job.config import (
    LogsSettings,
    NdjsonSourceSettings,
    Settings,
    SqlSourceSettings,
    Uses,
    admin_key_problems,
    alias_problems,
    channel_problems,
    load_price_table,
    problems,
)
from recon_job.delivery import Alerting
from recon_job.diagnosis import TrendRule
from recon_job.errors import ConfigError
from recon_job.investigate import DiagnosisOptions, Investigator
from recon_job.job import Deps, RunControl, Sources
from recon_job.modelnames import ModelNamer
from recon_job.models import Tolerance, Window, WindowKind
from recon_job.notify.base import Transport
from recon_job.pricing import PriceTable
from recon_job.sources.base import SeriesSource, UsageSource
from recon_job.store import HistoryStore

#: Builds one local source from its settings: (source settings, all settings, namer, pricer).
SourceFactory = Callable[[Any, Settings, ModelNamer, PriceTable], UsageSource]
#: Builds one notification channel from the settings (None when it is not configured).
TransportFactory = Callable[[Settings], Transport | None]


def model_namer(settings: Settings) -> ModelNamer:
    """The model-name normaliser both sides go through."""
    return ModelNamer(
        aliases=dict(settings.models.aliases),
        strip_date_suffix=settings.models.strip_date_suffix,
    )


def price_table(settings: Settings, namer: ModelNamer) -> PriceTable:
    """The bundled price table with the user's file over it; aliases must name priced models."""
    table = load_price_table(settings.pricing.file, namer=namer)
    found = alias_problems(settings, table.models())
    if found:
        raise ConfigError(found)
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


def rules(settings: Settings) -> Rules:
    """Which families are compared and what an untracked family does to the verdict."""
    r = settings.reconcile
    return Rules(
        untracked=r.untracked,
        families=None if r.families is None else frozenset(r.families),
    )


def settle(settings: Settings) -> timedelta:
    """How long after its end a UTC day counts as settled."""
    return timedelta(hours=settings.reconcile.settle_hours)


# --- local sources ------------------------------------------------------------------------


def _ndjson(
    logs: LogsSettings, settings: Settings, namer: ModelNamer, pricer: PriceTable
) -> UsageSource:
    from recon_job.sources.ndjson import NdjsonLogSource

    return NdjsonLogSource(ndjson_options(logs, settings), pricer, namer)


def with_cache(
    local: tuple[tuple[str, UsageSource], ...], cache: Any
) -> tuple[tuple[str, UsageSource], ...]:
    """``local`` with ``cache`` (the history store) given to each NDJSON source: the files
    they read once are taken from it after (:mod:`recon_job.sources.ndjson.cache`)."""
    from recon_job.sources.ndjson import CachedNdjsonLogSource, NdjsonLogSource

    return tuple(
        (
            name,
            CachedNdjsonLogSource(source.options, source.pricer, source.namer, cache)
            if isinstance(source, NdjsonLogSource)
            else source,
        )
        for name, source in local
    )


def ndjson_options(logs: LogsSettings, settings: Settings) -> Any:
    """The NDJSON reading options of ``logs`` (``[logs]`` or an ndjson ``[[sources]]``)."""
    from recon_job.sources.ndjson import NdjsonOptions

    o = settings.openai
    return NdjsonOptions(
        paths=tuple(logs.paths),
        timezone=logs.timezone,
        fields=dict(logs.fields),
        group_by=tuple(o.group_by),
        project_ids=tuple(o.project_ids),
        cost_unit=logs.cost_unit,
        workers=settings.logs.workers,
        dedupe=logs.dedupe,
        max_groups=settings.reconcile.max_groups,
        setting=f"sources.{logs.name}" if isinstance(logs, NdjsonSourceSettings) else "logs",
    )


def sql_options(source: SqlSourceSettings, settings: Settings) -> Any:
    """The table options of one SQL ``[[sources]]`` entry."""
    from recon_job.sources.sql import SqlTableOptions

    assert source.url is not None  # settings validation guarantees it
    o = settings.openai
    return SqlTableOptions(
        url=source.url.get_secret_value(),
        table=source.table,
        columns=dict(source.columns),
        cost_unit=source.cost_unit,
        filter=source.filter,
        timestamp_timezone=source.timestamp_timezone,
        dedupe=source.dedupe,
        relation=source.relation,
        group_by=tuple(o.group_by),
        project_ids=tuple(o.project_ids),
        max_groups=settings.reconcile.max_groups,
    )


def _sql(
    source: SqlSourceSettings, settings: Settings, namer: ModelNamer, pricer: PriceTable
) -> UsageSource:
    from recon_job.sources.sql import SqlTableSource

    return SqlTableSource(sql_options(source, settings), pricer, namer)


#: Local source kinds by their ``kind`` value in ``[[sources]]``.
SOURCES: Mapping[str, SourceFactory] = {"ndjson": _ndjson, "sql": _sql}


def sql_source(source: SqlSourceSettings, settings: Settings) -> Any:
    """The ``SqlTableSource`` of one SQL ``[[sources]]`` entry, priced as a run prices it (for
    ``check-config --connect``, which opens it without running)."""
    namer = model_namer(settings)
    return _sql(source, settings, namer, price_table(settings, namer))


def local_sources(
    settings: Settings, *, namer: ModelNamer, pricer: PriceTable
) -> tuple[tuple[str, UsageSource], ...]:
    """``[[sources]]`` by name, or the one NDJSON source of ``[logs]`` when none is listed."""
    if not settings.sources:
        return (("logs", _ndjson(settings.logs, settings, namer, pricer)),)
    return tuple(
        (source.name, SOURCES[source.kind](source, settings, namer, pricer))
        for source in settings.sources
    )


# --- OpenAI's side ------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenAIConnection:
    """What every request to OpenAI's organization APIs shares: options, session, deadline."""

    options: Any
    session: Any
    deadline: Any


def openai_connection(settings: Settings) -> OpenAIConnection:
    """The options, the one session (retries, ``Retry-After``) and the deadline of OpenAI's
    APIs; a ``ConfigError`` without an admin key."""
    from recon_job.http import Deadline, make_session
    from recon_job.sources.openai import OpenAIOptions

    o = settings.openai
    if o.admin_key is None:
        raise ConfigError(admin_key_problems(settings))
    options = OpenAIOptions(
        base_url=o.base_url,
        admin_key=o.admin_key.get_secret_value(),
        project_ids=tuple(o.project_ids),
        api_key_ids=tuple(o.api_key_ids),
        group_by=tuple(o.group_by),
        connect_timeout=o.connect_timeout_seconds,
        read_timeout=o.read_timeout_seconds,
        max_pages=o.max_pages,
        families=tuple(o.families),
        line_items=tuple(settings.families.line_items.items()),
        max_groups=settings.reconcile.max_groups,
    )
    deadline = Deadline(o.deadline_seconds)
    session = make_session(
        retries=o.max_retries, max_retry_after=o.max_retry_after_seconds, deadline=deadline
    )
    return OpenAIConnection(options, session, deadline)


def api_sources(
    settings: Settings, connection: OpenAIConnection | None = None
) -> tuple[UsageSource, ...]:
    """OpenAI's Usage API, one source per family of ``openai.families`` (tokens, images,
    seconds ...), and its Costs API (dollars), sharing one session and one deadline."""
    from recon_job.sources.openai import OpenAICostsSource, usage_sources

    c = connection or openai_connection(settings)
    return (
        *usage_sources(c.options, c.session, c.deadline),
        OpenAICostsSource(c.options, c.session, c.deadline),
    )


def csv_sources(settings: Settings, files: Sequence[str | Path]) -> tuple[UsageSource, ...]:
    """The dashboard's Activity and Cost exports in place of the two APIs: both are needed."""
    from recon_job.sources.exports import CsvActivitySource, CsvCostSource, detect_export_kind
    from recon_job.sources.openai.lineitems import LineItemRules

    kinds = {str(f): detect_export_kind(f) for f in files}
    activity = [f for f, kind in kinds.items() if kind in ("activity", "empty")]
    cost = [f for f, kind in kinds.items() if kind in ("cost", "empty")]
    found = []
    if not cost:
        found.append(
            "--openai-from-csv needs the Cost export too (Usage dashboard -> Cost -> Export, "
            "group by line item, 1-day interval): dollars come only from it"
        )
    if not activity:
        found.append(
            "--openai-from-csv needs the Activity export too (Usage dashboard -> Activity -> "
            "Export, 1-day interval): tokens and requests come only from it"
        )
    if found:
        raise ConfigError(found)
    o = settings.openai
    return (
        CsvActivitySource(
            activity,
            organization_id=o.organization_id,
            group_by=tuple(o.group_by),
            project_ids=tuple(o.project_ids),
        ),
        CsvCostSource(
            cost,
            line_items=LineItemRules.compile(settings.families.line_items),
            organization_id=o.organization_id,
            group_by=tuple(o.group_by),
            project_ids=tuple(o.project_ids),
        ),
    )


def sources(
    settings: Settings,
    *,
    namer: ModelNamer,
    pricer: PriceTable,
    openai_csv: Sequence[str | Path] = (),
    connection: OpenAIConnection | None = None,
) -> Sources:
    """The configured local sources, and OpenAI's APIs (or dashboard CSV exports instead);
    ``connection``: the one the APIs share with the rest of the run (made here when None)."""
    local = local_sources(settings, namer=namer, pricer=pricer)
    official = (
        csv_sources(settings, openai_csv) if openai_csv else api_sources(settings, connection)
    )
    return Sources(local=local, official=official)


# --- notification channels ----------------------------------------------------------------


def _email(settings: Settings) -> Transport | None:
    e = settings.email
    if not (e.configured and e.host and e.sender):
        return None
    from recon_job.notify.email import EmailOptions, EmailTransport

    return EmailTransport(
        EmailOptions(
            host=e.host,
            port=e.effective_port,
            sender=e.sender,
            recipients=tuple(e.recipients),
            security=e.security,
            username=e.username,
            password=e.password.get_secret_value() if e.password else None,
            timeout=e.timeout_seconds,
            cafile=str(e.cafile) if e.cafile else None,
        )
    )


def _post_session() -> Any:
    from recon_job.http import make_session

    # POSTs are never retried by the session; retries are the relay's, at its next pass.
    return make_session(retries=0)


def _slack(settings: Settings) -> Transport | None:
    s = settings.slack
    if s.webhook_url is None:
        return None
    from recon_job.notify.base import HttpOptions
    from recon_job.notify.slack import SlackTransport

    return SlackTransport(
        s.webhook_url.get_secret_value(),
        _post_session(),
        HttpOptions(timeout=(5.0, s.timeout_seconds), allow_private=s.allow_other_hosts),
    )


def _webhook(settings: Settings) -> Transport | None:
    w = settings.webhook
    if w.url is None:
        return None
    from recon_job.notify.base import HttpOptions
    from recon_job.notify.webhook import WebhookOptions, WebhookTransport

    return WebhookTransport(
        w.url.get_secret_value(),
        _post_session(),
        HttpOptions(timeout=(5.0, w.timeout_seconds), allow_private=w.allow_private),
        WebhookOptions(
            secret=w.secret.get_secret_value() if w.secret else None, full_detail=w.full_detail
        ),
    )


#: Notification channels by name; each factory returns None when its channel is not set.
TRANSPORTS: Mapping[str, TransportFactory] = {
    "email": _email,
    "slack": _slack,
    "webhook": _webhook,
}


def transports(settings: Settings) -> dict[str, Transport]:
    """The configured channels by name; raises ``ConfigError`` listing every problem."""
    found = channel_problems(settings)
    if found:
        raise ConfigError(found)
    built = {name: factory(settings) for name, factory in TRANSPORTS.items()}
    return {name: transport for name, transport in built.items() if transport is not None}


def policies(settings: Settings) -> dict[WindowKind, AlertPolicy]:
    """The alert lifecycle rules per window kind."""
    send_resolved = {
        "email": settings.email.send_resolved,
        "slack": settings.slack.send_resolved,
        "webhook": settings.webhook.send_resolved,
    }
    kinds: tuple[WindowKind, ...] = ("daily", "monthly", "range")
    return {
        kind: AlertPolicy(
            repeat_interval=settings.alerts.repeat_interval(kind),
            send_resolved=send_resolved,
            summaries=settings.alerts.summaries,
        )
        for kind in kinds
    }


def alerting(settings: Settings, *, channels: Mapping[str, Transport] | None = None) -> Alerting:
    """The channels (default: the configured ones, none when alerts are off) and their rules."""
    if channels is None:
        channels = transports(settings) if settings.alerts.enabled else {}
    return Alerting(
        channels=channels,
        policies=policies(settings),
        templates_dir=settings.alerts.templates_dir,
        max_attempts=settings.alerts.max_attempts,
    )


@dataclass(frozen=True)
class Overrides:
    """Parts of a run the caller gives instead of having them built from the settings."""

    #: Local and official sources (tests, embedding): their checks are skipped.
    sources: Sources | None = None
    #: Channel name -> transport; ``{}`` sends nothing (``--no-alerts``).
    channels: Mapping[str, Transport] | None = None
    #: Dashboard exports read instead of OpenAI's APIs (``--openai-from-csv``).
    openai_csv: Sequence[str | Path] = ()
    #: Read every log file, neither using nor updating the cache kept with the history
    #: (``--no-cache``).
    no_cache: bool = False


#: Build every part from the settings.
NO_OVERRIDES = Overrides()


def deps(
    settings: Settings,
    store: HistoryStore,
    control: RunControl,
    overrides: Overrides = NO_OVERRIDES,
) -> Deps:
    """Everything a run needs. Raises ``ConfigError`` before anything is recorded.

    First come the checks ``check-config`` runs (:func:`recon_job.config.checks.problems`), every
    problem listed at once; those of a part the caller replaces (``overrides``) are skipped.
    ``control`` is how the run is driven: its clock, stop event and trigger.
    """
    uses = Uses(
        local_sources=overrides.sources is None,
        openai_api=overrides.sources is None and not overrides.openai_csv,
        channels=overrides.channels is None,
    )
    found = problems(settings, uses)
    if found:
        raise ConfigError(found)
    namer = model_namer(settings)
    chosen, diagnosing = overrides.sources, None
    if chosen is None:
        pricer = price_table(settings, namer)
        # One session and one deadline for every request of the run, the diagnosis's too.
        connection = None if overrides.openai_csv else openai_connection(settings)
        chosen = sources(
            settings,
            namer=namer,
            pricer=pricer,
            openai_csv=overrides.openai_csv,
            connection=connection,
        )
        if not overrides.no_cache:
            chosen = replace(chosen, local=with_cache(chosen.local, store))
        if settings.diagnosis.enabled:
            diagnosing = investigator(
                settings,
                store,
                namer=namer,
                pricer=pricer,
                local=chosen.local,
                connection=connection,
                now=control.clock(),
            )
    return Deps(
        sources=chosen,
        store=store,
        namer=namer,
        tolerance=tolerance(settings),
        settle=settle(settings),
        alerting=alerting(settings, channels=overrides.channels),
        control=control,
        rules=rules(settings),
        restatement_days=settings.reconcile.restatement_days,
        investigator=diagnosing,
    )


def diagnosis_options(settings: Settings) -> DiagnosisOptions:
    """The ``[diagnosis]`` settings as the diagnosis stage takes them."""
    d = settings.diagnosis
    return DiagnosisOptions(
        max_requests=d.max_requests,
        minute_share_pct=d.minute_share_pct,
        max_shift_hours=d.max_shift_hours,
        timezone=settings.logs.timezone,
        price_alert=d.price_alert,
        restated_alert=d.restated_alert,
        shadow_alert_pct=d.shadow_alert_pct,
        trend_alert=d.trend_alert,
        trend=TrendRule(
            slack_pct=d.trend_slack_pct,
            threshold_pct=d.trend_threshold_pct,
            min_days=d.trend_min_days,
        ),
        trend_days=d.trend_days,
    )


def investigator(  # noqa: PLR0913 -- the run's parts, keyword-only
    settings: Settings,
    store: HistoryStore,
    *,
    namer: ModelNamer,
    pricer: PriceTable,
    local: Sequence[tuple[str, UsageSource]],
    connection: OpenAIConnection | None,
    now: datetime,
) -> Investigator:
    """What the diagnosis may use: hourly and minute series of both sides (OpenAI's through
    the history's cache), the price table, and per-project/key usage with names. Without a
    connection (dashboard CSV exports instead of the APIs) it locates nothing and finds no
    shadow usage; the bridge, prices and trends need no request."""
    # A source that can bucket its records by hour (NDJSON, SQL) helps locate gaps.
    series = tuple(
        cast(SeriesSource, source).series
        for _, source in local
        if callable(getattr(source, "series", None))
    )
    options = diagnosis_options(settings)
    if connection is None:
        return Investigator(options=options, local_series=series, namer=namer, prices=pricer)
    from recon_job.sources.openai import AdminNames, SeriesFetcher, fetch_scope

    c = connection
    fetcher = SeriesFetcher(
        c.options,
        c.session,
        now=now,
        cache=store,
        deadline=c.deadline,
        settled_before=now - settle(settings),
    )

    def scope(window: Window, max_requests: int) -> Any:
        return fetch_scope(
            c.options, c.session, window, deadline=c.deadline, max_requests=max_requests
        )

    def names(
        project_ids: Sequence[str],
        api_key_ids: Sequence[str],
        key_projects: Mapping[str, str],
        max_requests: int,
    ) -> tuple[Mapping[str, str], Mapping[str, str], int]:
        found = AdminNames(c.options, c.session, c.deadline).names(
            project_ids, api_key_ids, key_projects, max_requests=max_requests
        )
        return found.projects, found.api_keys, found.requests

    return Investigator(
        options=options,
        openai_series=fetcher,
        local_series=series,
        namer=namer,
        prices=pricer,
        scope=scope,
        names=names,
    )


# --- per-request reconciliation -----------------------------------------------------------


def request_source(settings: Settings, name: str | None) -> Any:
    """The logged requests ``reconcile-requests`` reads: the named ``[[sources]]`` entry, the
    only one, or the ``[logs]`` NDJSON source; with the price table and the matching rule."""
    from recon_job.per_request import RequestSource, TableSpec

    chosen_name, chosen = _pick_source(settings, name)
    r = settings.reconcile
    pricer = price_table(settings, model_namer(settings))
    if isinstance(chosen, SqlSourceSettings):
        if "request_id" not in chosen.columns:
            raise ConfigError(
                f"sources: {chosen_name!r} maps no request_id column; add request_id = "
                '"openai_request_id" (your column) to its columns'
            )
        if chosen.table is None:
            raise ConfigError(
                f"sources: {chosen_name!r} reads a relation (files); reconcile-requests reads "
                "and writes back a table — point it at a source with a table"
            )
        assert chosen.url is not None  # settings validation guarantees it
        table = TableSpec(
            url=chosen.url.get_secret_value(),
            table=chosen.table,
            columns=dict(chosen.columns),
            filter=chosen.filter,
            cost_unit=chosen.cost_unit,
            timezone=chosen.timestamp_timezone,
        )
        return RequestSource(chosen_name, pricer, r.threshold_pct, r.cost_floor, table=table)
    from recon_job.sources.ndjson import NdjsonOptions

    logs = chosen or settings.logs
    options = NdjsonOptions(
        paths=tuple(logs.paths),
        timezone=logs.timezone,
        fields=dict(logs.fields),
        project_ids=tuple(settings.openai.project_ids),
        cost_unit=logs.cost_unit,
        workers=1,
    )
    return RequestSource(chosen_name, pricer, r.threshold_pct, r.cost_floor, logs=options)


def _pick_source(
    settings: Settings, name: str | None
) -> tuple[str, SqlSourceSettings | NdjsonSourceSettings | None]:
    """The named ``[[sources]]`` entry, the only one, or (None) the ``[logs]`` NDJSON source."""
    names = [s.name for s in settings.sources]
    if name is not None:
        for candidate in settings.sources:
            if candidate.name == name:
                return name, candidate
        listed = ", ".join(names) if names else "none ([logs] is used without --source)"
        raise ConfigError(f"no source named {name!r}; configured [[sources]]: {listed}")
    if len(settings.sources) > 1:
        raise ConfigError(
            f"several sources are configured ({', '.join(names)}); choose one with --source NAME"
        )
    if settings.sources:
        return names[0], settings.sources[0]
    return "logs", None
