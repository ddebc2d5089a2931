"""Settings: one TOML file, environment variables and ``*_FILE`` secrets, validated loudly.

Precedence, highest first:

1. any setting as ``RECON_<SECTION>__<KEY>`` (e.g. ``RECON_RECONCILE__TOKEN_FLOOR=500``);
2. the documented environment variables (``OPENAI_ADMIN_KEY``, ``OPENAI_BASE_URL``,
   ``RECON_LOG_PATHS`` ... see :data:`ENV_VARS`), each also readable from a file named by
   ``<NAME>_FILE`` (Docker/Kubernetes secrets);
3. the TOML file (``--config`` or ``RECON_CONFIG``; every key is listed in
   ``config/recon.example.toml``);
4. the defaults below.

Secrets (the admin key, a database URL with a password) come only from the environment or a
secrets file, never from the TOML file, and are held as ``SecretStr`` so they never print.
Every problem is collected and reported at once as one :class:`~recon_job.errors.ConfigError`.

The input side (environment variables, the TOML file, secrets) lives in
:mod:`recon_job.config.load`, the loading itself (:func:`~recon_job.config.loader.load_settings`)
in :mod:`recon_job.config.loader`; the local sources' sections in
:mod:`recon_job.config.sources`.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from recon_job.config.alerts import AlertsSettings, EmailSettings, SlackSettings, WebhookSettings
from recon_job.config.daemon import DaemonSettings
from recon_job.config.families import FamiliesSettings
from recon_job.config.load import Problem, rule, rule_errors, with_problems
from recon_job.config.sources import (
    LogsSettings,
    NdjsonSourceSettings,
    SourceSettings,
    SqlSourceSettings,
)
from recon_job.config.web import WebSettings
from recon_job.families import FAMILIES, parse_families
from recon_job.sources.base import MAX_COST_USD, MAX_TOKENS

GroupKey = Literal["model", "project_id", "api_key_id"]
#: The databases the history can live in.
HISTORY_BACKENDS = ("sqlite", "postgresql")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OpenAISettings(_Section):
    """How to reach OpenAI's organization Usage and Costs APIs."""

    #: API root; ``OPENAI_BASE_URL``.
    base_url: str = "https://api.openai.com/v1"
    #: Admin key (``sk-admin-...``); ``OPENAI_ADMIN_KEY``, falling back to ``OPENAI_API_KEY``.
    admin_key: SecretStr | None = None
    #: Only these OpenAI projects (the APIs are organisation-wide); ``RECON_PROJECT_IDS``.
    project_ids: tuple[str, ...] = ()
    #: Only these API key ids; ``RECON_API_KEY_IDS``.
    api_key_ids: tuple[str, ...] = ()
    #: Comparison groups besides the UTC day: ``model`` plus optionally project/api key.
    group_by: tuple[GroupKey, ...] = ("model",)
    #: Seconds to wait for a TCP connection.
    connect_timeout_seconds: float = Field(5.0, gt=0, le=120)
    #: Seconds to wait between bytes of a response.
    read_timeout_seconds: float = Field(30.0, gt=0, le=600)
    #: Retries of 5xx answers and connection errors (with exponential backoff).
    max_retries: int = Field(4, ge=0, le=20)
    #: Longest ``Retry-After`` honoured, in seconds; a longer one fails the run (retry later).
    max_retry_after_seconds: float = Field(60.0, ge=0, le=3600)
    #: Overall deadline for fetching OpenAI's figures, in seconds.
    deadline_seconds: float = Field(600.0, gt=0, le=6 * 3600)
    #: Guard against a runaway pagination.
    max_pages: int = Field(1000, ge=1, le=100_000)
    #: Your organization id (``org-...``): dashboard CSV exports of another org are refused.
    organization_id: str | None = None
    #: The usage families fetched, each from its own endpoint; ``RECON_FAMILIES`` (a comma
    #: list, or ``all``, the default).
    families: tuple[str, ...] = FAMILIES
    # Not a setting: which variable the key was read from, for messages (set by the loader).
    _admin_key_variable: str = PrivateAttr("OPENAI_ADMIN_KEY")

    @property
    def admin_key_variable(self) -> str:
        """The variable the admin key came from: ``OPENAI_ADMIN_KEY``, ``OPENAI_API_KEY`` (the
        fallback), one of their ``_FILE`` twins, or ``RECON_OPENAI__ADMIN_KEY``."""
        return self._admin_key_variable

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{value!r} is not an http(s) URL like https://api.openai.com/v1")
        return value.rstrip("/")

    @field_validator("admin_key")
    @classmethod
    def _check_admin_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        # Secret files usually end in a newline; an empty one means no key. Anything else odd
        # would make requests reject the header with the key quoted in its message.
        key = value.get_secret_value().strip()
        if not key:
            return None
        if not all("!" <= char <= "~" for char in key):
            raise ValueError(
                "the OpenAI admin key contains spaces or non-ASCII characters; "
                "check OPENAI_ADMIN_KEY"
            )
        return SecretStr(key)

    @field_validator("project_ids")
    @classmethod
    def _check_project_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not p for p in value):
            raise ValueError("project_ids may not contain an empty id")
        return value

    @field_validator("families", mode="before")
    @classmethod
    def _check_families(cls, value: Any) -> Any:
        # One rule for the file, RECON_FAMILIES and RECON_OPENAI__FAMILIES: names in report order.
        if isinstance(value, str | list | tuple) and all(isinstance(v, str) for v in value):
            return parse_families(value)
        return value

    @field_validator("group_by")
    @classmethod
    def _check_group_by(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if "model" not in value:
            raise ValueError("must include 'model' (reconciliation is per model)")
        return tuple(dict.fromkeys(value))


class ModelsSettings(_Section):
    """How model names are matched between the logs and OpenAI."""

    #: Compare ``gpt-4o-mini-2024-07-18`` as ``gpt-4o-mini``.
    strip_date_suffix: bool = True
    #: Exact name -> name to compare (and price) under, e.g. a deployment name -> ``gpt-4o``.
    aliases: dict[str, str] = Field(default_factory=dict)


class PricingSettings(_Section):
    """The price table used for records that carry no cost of their own."""

    #: A TOML price file whose models replace or extend the bundled table.
    file: Path | None = None


class ReconcileSettings(_Section):
    """When a difference is a mismatch."""

    #: Percent relative to OpenAI's figure; ``RECON_THRESHOLD_PCT``.
    threshold_pct: Decimal = Field(Decimal(5), ge=0, le=1000)
    #: USD; cost differences at or below this never alert.
    cost_floor: Decimal = Field(Decimal("0.05"), ge=0, le=MAX_COST_USD)
    #: Tokens; token differences at or below this never alert.
    token_floor: int = Field(1000, ge=0, le=MAX_TOKENS)
    #: Requests; request-count differences at or below this never alert.
    request_floor: int = Field(0, ge=0, le=MAX_TOKENS)
    #: Hours after a UTC day ends before OpenAI's figures for it count as settled;
    #: ``RECON_SETTLE_HOURS``.
    settle_hours: float = Field(24.0, ge=0, le=24 * 31)
    #: A family OpenAI bills that the local side has no record of: ``report`` lists it with its
    #: cost and the window can still reconcile; ``mismatch`` also fails the window.
    untracked: Literal["report", "mismatch"] = "report"
    #: Compare only these families (None: every family either side reports); a comma list or
    #: ``all``, like ``openai.families``.
    families: tuple[str, ...] | None = None
    #: Settled UTC days a ``run --due`` re-checks for revisions by OpenAI (restatements), at no
    #: extra request where the window's page already covers them; 0 turns it off.
    restatement_days: int = Field(7, ge=0, le=31)
    #: The most distinct groups (UTC day × family × model × project × API key) one source may
    #: report for one window; more stops that source with an error naming the field that looks
    #: unique per request (a request id mapped as the model), before memory grows with it.
    max_groups: int = Field(10_000, ge=1, le=10_000_000)

    @field_validator("families", mode="before")
    @classmethod
    def _check_families(cls, value: Any) -> Any:
        # The same names and order as openai.families: one rule for both lists.
        if isinstance(value, str | list | tuple) and all(isinstance(v, str) for v in value):
            return parse_families(value)
        return value


class DiagnosisSettings(_Section):
    """Where and why figures drift: gaps by hour, clock shift, the cost bridge, prices, shadow
    usage, trends (issue 12)."""

    #: Diagnose drifting windows in every run (``recon-job explain`` works either way).
    enabled: bool = True
    #: Extra Usage API requests one run may make to locate gaps (hourly and minute buckets),
    #: most-drifting groups first; 0 locates nothing (the bridge, prices and shadow usage need
    #: no extra request).
    max_requests: int = Field(20, ge=0, le=500)
    #: Refine the worst hour to minutes when it holds at least this share of a gap, percent.
    minute_share_pct: Decimal = Field(Decimal(50), ge=0, le=100)
    #: The largest clock shift looked for, whole hours either way.
    max_shift_hours: int = Field(14, ge=1, le=26)
    #: Opt-in ``shadow_usage`` alert: a project, key or user the logs never mention holding at
    #: least this share of the window's OpenAI tokens or cost, percent (None: no alert).
    shadow_alert_pct: Decimal | None = Field(None, ge=0, le=100)
    #: Days of history the trend rule reads.
    trend_days: int = Field(90, ge=14, le=730)
    #: CUSUM slack: drift moves smaller than this (percentage points) are noise.
    trend_slack_pct: Decimal = Field(Decimal("0.5"), ge=0, le=1000)
    #: CUSUM decision level (percentage points x days) at which a shift counts.
    trend_threshold_pct: Decimal = Field(Decimal(5), gt=0, le=1000)
    #: Days the new level must hold before a change point is reported.
    trend_min_days: int = Field(5, ge=2, le=60)
    #: Opt-in ``trend`` alert on a new change point.
    trend_alert: bool = False
    #: Send ``price_changed`` when OpenAI bills another price than the table's (once per
    #: model x piece x tier x price).
    price_alert: bool = True
    #: Send ``restated`` when OpenAI revises a completed day.
    restated_alert: bool = True


class HistorySettings(_Section):
    """Where run history is kept."""

    #: SQLAlchemy URL; ``RECON_DATABASE_URL``. PostgreSQL needs ``recon-job[postgres]``.
    database_url: SecretStr = SecretStr("sqlite:///recon_history.db")
    #: UTC days of history ``recon-job history prune`` keeps, today included (the dashboard's
    #: longest range is 400 days); 0 keeps everything. See :func:`retention_floor`.
    keep_days: int = Field(400, ge=0, le=36_500)

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: SecretStr) -> SecretStr:
        # Only a URL that is set is parsed (the default needs no SQLAlchemy import), by the
        # parser the history store uses.
        from recon_job.database import parse_url

        try:
            backend = parse_url(value.get_secret_value()).get_backend_name()
        except ValueError:
            raise ValueError(
                "not a database URL; use e.g. sqlite:///recon_history.db or "
                "postgresql+psycopg://user@host/db"
            ) from None
        if backend not in HISTORY_BACKENDS:
            # Period locks (a lock file, pg_try_advisory_xact_lock) and the outbox's upserts
            # exist only for these two.
            raise rule(
                f"the history database must be SQLite or PostgreSQL, not {backend}; use e.g. "
                "sqlite:///recon_history.db or postgresql+psycopg://user@host/db"
            )
        return value


class RunsSettings(_Section):
    """Which periods a ``run --due`` (or a daemon tick) catches up on (section ``[schedule]``)."""

    #: Settled UTC days looked back over for days without a completed run.
    lookback_days: int = Field(7, ge=1, le=366)
    #: Settled calendar months looked back over for months without a completed run.
    lookback_months: int = Field(2, ge=1, le=24)


class LoggingSettings(_Section):
    """Log output (always on stderr)."""

    #: ``debug``, ``info``, ``warning`` or ``error``; ``RECON_LOG_LEVEL``.
    level: Literal["debug", "info", "warning", "error"] = "info"
    #: ``json``, ``console``, or ``auto`` (console on a terminal, JSON otherwise);
    #: ``RECON_LOG_FORMAT``.
    format: Literal["auto", "json", "console"] = "auto"


# Lets load_settings() hand a replacement environment to the generic RECON_<SECTION>__<KEY>
# source, which pydantic-settings builds inside the model constructor.
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("recon_environ", default=None)


class Settings(BaseSettings):
    """Every setting of recon-job. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="RECON_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    openai: OpenAISettings = Field(default_factory=OpenAISettings)
    logs: LogsSettings = Field(default_factory=LogsSettings)
    models: ModelsSettings = Field(default_factory=ModelsSettings)
    pricing: PricingSettings = Field(default_factory=PricingSettings)
    reconcile: ReconcileSettings = Field(default_factory=ReconcileSettings)
    history: HistorySettings = Field(default_factory=HistorySettings)
    schedule: RunsSettings = Field(default_factory=RunsSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)
    email: EmailSettings = Field(default_factory=EmailSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    families: FamiliesSettings = Field(default_factory=FamiliesSettings)
    diagnosis: DiagnosisSettings = Field(default_factory=DiagnosisSettings)
    #: Several local sources, combined and compared against one OpenAI figure. Empty: the one
    #: NDJSON source of ``[logs]``.
    sources: tuple[SourceSettings, ...] = ()

    @field_validator("sources", mode="wrap")
    @classmethod
    def _check_names(
        cls, value: Any, handler: ValidatorFunctionWrapHandler
    ) -> tuple[SourceSettings, ...]:
        # Names are read from the raw entries, so a repeated name is reported along with the
        # problems of the entries themselves.
        entries = value if isinstance(value, list | tuple) else ()
        names = [s.get("name") for s in entries if isinstance(s, Mapping)]
        duplicates = sorted({str(n) for n in names if names.count(n) > 1})
        found: list[Problem] = []
        if duplicates:
            found.append(((), f"names must be unique; repeated: {', '.join(duplicates)}", None))
        try:
            sources: tuple[SourceSettings, ...] = handler(value)
        except ValidationError as e:
            raise with_problems(e, found) from None
        if found:
            raise rule_errors(cls.__name__, found)
        return sources

    @model_validator(mode="after")
    def _check_sources(self) -> Settings:
        o = self.openai
        found = [
            (("sources", index, source.kind, *loc), message, value)
            for index, source in enumerate(self.sources)
            if isinstance(source, SqlSourceSettings)
            for loc, message, value in source.grouping_problems(o.group_by, o.project_ids)
        ]
        if found:
            raise rule_errors(type(self).__name__, found)
        return self

    @model_validator(mode="after")
    def _check_retention(self) -> Settings:
        # A prune must never delete what recon-job itself reads back: a completed period in the
        # look-back of run --due (it would be run again) or a day of the trend rule's series.
        keep, floor = self.history.keep_days, retention_floor(self)
        if keep and keep < floor:
            message = (
                f"keeps {keep} days, fewer than recon-job reads back from the history "
                f"(schedule.lookback_days {self.schedule.lookback_days}, "
                f"schedule.lookback_months {self.schedule.lookback_months}, "
                f"diagnosis.trend_days {self.diagnosis.trend_days}): use at least {floor}, "
                "or 0 to keep everything"
            )
            raise rule_errors(type(self).__name__, [(("history", "keep_days"), message, keep)])
        return self

    @model_validator(mode="after")
    def _check_compared_families(self) -> Settings:
        # A family compared but never fetched would show every local record of it as drift.
        compared = self.reconcile.families
        unfetched = [f for f in compared or () if f not in self.openai.families]
        if unfetched:
            message = (
                f"lists {', '.join(unfetched)}, which openai.families does not fetch "
                f"(fetched: {', '.join(self.openai.families)})"
            )
            raise rule_errors(type(self).__name__, [(("reconcile", "families"), message, compared)])
        return self

    @property
    def log_sources(self) -> tuple[LogsSettings, ...]:
        """The NDJSON logs a run reads: the ``ndjson`` ``[[sources]]``, or ``[logs]`` alone."""
        if not self.sources:
            return (self.logs,)
        return tuple(s for s in self.sources if isinstance(s, NdjsonSourceSettings))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init_settings carries the TOML file with the documented variables merged over it.
        generic = EnvSettingsSource(settings_cls)
        environ = _ENVIRON.get()
        if environ is not None:
            generic.env_vars = {k.lower(): v for k, v in environ.items()}
        return generic, init_settings


def retention_floor(settings: Settings) -> int:
    """The fewest days ``history.keep_days`` may keep (unless 0): what runs read back.

    The trend rule reads ``diagnosis.trend_days``; ``run --due`` looks for completed runs of
    the last ``schedule.lookback_days`` settled days and ``schedule.lookback_months`` settled
    months, a day or month being settled up to 31 days late (``reconcile.settle_hours``).
    """
    schedule = settings.schedule
    return max(
        settings.diagnosis.trend_days,
        schedule.lookback_days + 32,
        31 * (schedule.lookback_months + 2),
    )


def build_settings(
    data: Mapping[str, Any], environ: Mapping[str, str] | None, *, key_variable: str | None = None
) -> Settings:
    """Validate ``data`` (the TOML file with the documented variables over it) into
    :class:`Settings`, the generic ``RECON_<SECTION>__<KEY>`` variables of ``environ`` (None:
    ``os.environ``) over both.

    ``key_variable`` names the variable the admin key came from, for messages. Raises pydantic's
    ``ValidationError``, or pydantic-settings' ``SettingsError`` for a generic variable it
    cannot parse.
    """
    token = _ENVIRON.set(environ)
    try:
        settings = Settings(**data)
    finally:
        _ENVIRON.reset(token)
    if key_variable is not None:
        # A private attribute, so not a setting anyone can set; the model is frozen otherwise.
        settings.openai._admin_key_variable = key_variable
    return settings
