"""The checks that need more than the settings: files, prices, templates, URLs that resolve.

:func:`problems` is the one list of them. ``recon-job check-config`` runs it, and so does every
run, through :func:`recon_job.wiring.deps`, before anything is built or recorded: the two never
disagree. A run that replaces a configured part (``--openai-from-csv``, ``--no-alerts``, sources
or channels handed in by a caller) skips that part's checks, saying so with :class:`Uses`.

:func:`every_problem` is what ``check-config`` lists: the settings' own problems and, when some
values are invalid, these checks on the rest (:class:`~recon_job.config.loader.Loaded`), so one
bad setting never hides the others.

Heavy imports stay inside the check that needs them, so they happen only when a setting asks
for them: requests for a webhook URL, Jinja2 for a templates directory, SQLAlchemy for a
database URL other than the default.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from recon_job.config.load import FALLBACK_KEY_VAR, UnusableFile, has_password, read_text
from recon_job.config.loader import Loaded
from recon_job.config.prices import load_price_table
from recon_job.config.settings import Settings
from recon_job.config.sources import LogsSettings, SqlSourceSettings
from recon_job.errors import ConfigError, ReconError

#: Why a run that calls OpenAI cannot start without an admin key.
NO_ADMIN_KEY = (
    "no OpenAI admin key: set OPENAI_ADMIN_KEY (or OPENAI_ADMIN_KEY_FILE) to an admin key "
    "(sk-admin-...) from platform.openai.com/settings/organization/admin-keys, or reconcile "
    "offline from dashboard exports with --openai-from-csv"
)
#: Where admin keys are made, for messages.
ADMIN_KEYS_PAGE = "https://platform.openai.com/settings/organization/admin-keys"
#: Key prefixes that are not admin keys, and what they are: OpenAI's organization APIs refuse
#: them (401/403). Admin keys begin ``sk-admin-``.
OTHER_KEYS = (
    ("sk-proj-", "a project API key (sk-proj-...)"),
    ("sk-svcacct-", "a service account key (sk-svcacct-...)"),
    ("sk-", "an API key (sk-...)"),
)
#: The sections each part of a run reads: unknown values in them skip that part's checks.
PART_SECTIONS = {
    "openai_api": {"openai"},
    "local_sources": {"logs", "sources"},
    "channels": {"alerts", "email", "slack", "webhook"},
    "prices": {"pricing", "models"},
    "history": {"history"},
}


@dataclass(frozen=True)
class Uses:
    """Which configured parts a command uses; the checks of the others are skipped."""

    #: The local sources of ``[logs]`` / ``[[sources]]`` (their log files must exist).
    local_sources: bool = True
    #: OpenAI's Usage and Costs APIs (an admin key is needed), not dashboard CSV exports.
    openai_api: bool = True
    #: The configured notification channels (URLs, templates), when alerts are on.
    channels: bool = True
    #: The price table (``[pricing]`` and the ``[models.aliases]`` naming its models). Every run
    #: uses it; only ``check-config`` skips it, when those settings could not be read.
    prices: bool = True
    #: The history database (its driver). Skipped like :attr:`prices`.
    history: bool = True

    @classmethod
    def known(cls, unknown: Iterable[str]) -> Uses:
        """Every part whose sections are all known (see :data:`PART_SECTIONS`)."""
        sections = set(unknown)
        return cls(**{part: not (needs & sections) for part, needs in PART_SECTIONS.items()})


def problems(settings: Settings, uses: Uses | None = None) -> list[str]:
    """Everything a run would trip over that the settings' own validation cannot see, at once."""
    uses = uses or Uses()
    found: list[str] = []
    if uses.openai_api:
        found.extend(admin_key_problems(settings))
    if uses.prices:
        found.extend(price_problems(settings))
    if uses.local_sources:
        found.extend(log_path_problems(settings))
    found.extend(driver_problems(settings, uses))
    if uses.channels and settings.alerts.enabled:
        found.extend(channel_problems(settings))
    return found


def every_problem(loaded: Loaded) -> list[str]:
    """What ``check-config`` lists: the problems of the settings themselves and those of
    :func:`problems` — on the usable settings when some values were invalid, skipping the
    parts those values belong to."""
    if loaded.settings is not None:
        return problems(loaded.settings)
    found = list(loaded.problems)
    if loaded.usable is not None:
        more = problems(loaded.usable, Uses.known(loaded.unknown))
        found.extend(p for p in more if p not in found)
    return found


def admin_key_problems(settings: Settings) -> list[str]:
    """An admin key is needed to call OpenAI's organization APIs, and only an admin key will do.

    A project or user key (``sk-proj-...``, an ``sk-...`` key without ``admin``) is refused by
    the Usage API; the message names the variable the key came from (``OPENAI_API_KEY`` when
    ``OPENAI_ADMIN_KEY`` was unset) and never shows the key.
    """
    key = settings.openai.admin_key
    if key is None:
        return [NO_ADMIN_KEY]
    value = key.get_secret_value()
    kind = next((text for prefix, text in OTHER_KEYS if value.startswith(prefix)), None)
    if kind is None or "admin" in value:
        return []
    variable = settings.openai.admin_key_variable
    fell_back = (
        f" (OPENAI_ADMIN_KEY is not set, so {FALLBACK_KEY_VAR} was used)"
        if variable.startswith(FALLBACK_KEY_VAR)
        else ""
    )
    return [
        f"{variable} holds {kind}, not an admin key{fell_back}: OpenAI's organization Usage "
        f"and Costs APIs refuse it. Create an admin key (sk-admin-...) at {ADMIN_KEYS_PAGE} "
        "and set it as OPENAI_ADMIN_KEY (or OPENAI_ADMIN_KEY_FILE)"
    ]


def price_problems(settings: Settings) -> list[str]:
    """The price file's problems, or else the aliases naming a model the table does not price."""
    try:
        table = load_price_table(settings.pricing.file)
    except ConfigError as e:
        return e.problems
    return alias_problems(settings, table.models())


def alias_problems(settings: Settings, priced: Iterable[str]) -> list[str]:
    """Every ``[models.aliases]`` target that is not a model of the price table."""
    known = sorted(priced)
    found = []
    for alias, target in sorted(settings.models.aliases.items()):
        if target not in known:
            close = difflib.get_close_matches(target, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            found.append(
                f"models.aliases: {alias!r} maps to {target!r}, which is not a model in the "
                f"price table{hint}; fix the alias or add the model to your pricing file"
            )
    return found


def log_path_problems(settings: Settings) -> list[str]:
    """Every NDJSON path or glob that names no log file."""
    from recon_job.sources.ndjson import resolve_log_files

    found: list[str] = []
    for logs in settings.log_sources:
        try:
            resolve_log_files(logs.paths)
        except ReconError as e:
            found.append(str(e))
    return found


def driver_problems(settings: Settings, uses: Uses) -> list[str]:
    """Every database URL whose driver is not installed (a run would stop opening it)."""
    urls: list[tuple[str, str]] = []
    if uses.history:
        urls.append(("history.database_url", settings.history.database_url.get_secret_value()))
    if uses.local_sources:
        urls.extend(
            (f"sources: {s.name!r}", s.url.get_secret_value())
            for s in settings.sources
            if isinstance(s, SqlSourceSettings) and s.url is not None
        )
    found: list[str] = []
    for where, url in urls:
        # SQLite's driver is the standard library's, and the default URL then needs no
        # SQLAlchemy import at all.
        if url.partition(":")[0] != "sqlite":
            found.extend(_driver_problem(where, url))
    return found


def _driver_problem(where: str, url: str) -> list[str]:
    from sqlalchemy import exc

    from recon_job.database import display_url, first_line, parse_url

    parsed = parse_url(url)
    try:
        parsed.get_dialect().import_dbapi()
    except (ImportError, exc.ArgumentError) as e:
        driver = parsed.get_driver_name()
        return [
            f"{where}: cannot use {display_url(parsed)}: the {driver} driver is not installed "
            f"({first_line(e)}); pip install 'recon-job[postgres]' (PostgreSQL) or "
            "'recon-job[mysql]' (MySQL/MariaDB)"
        ]
    return []


def channel_problems(settings: Settings) -> list[str]:
    """What is wrong with the configured channels (URLs, templates, CA file), all at once."""
    found: list[str] = []
    if settings.email.configured and settings.email.cafile is not None:
        found.extend(cafile_problems(settings.email.cafile))
    slack, webhook = settings.slack, settings.webhook
    if slack.webhook_url is not None:
        from recon_job.notify.urls import validate_slack_webhook_url, validate_webhook_url

        url = slack.webhook_url.get_secret_value()
        urls = (
            validate_webhook_url(url, allow_private=True)
            if slack.allow_other_hosts
            else validate_slack_webhook_url(url)
        )
        found.extend(f"RECON_SLACK_WEBHOOK_URL: {p}" for p in urls)
    if webhook.url is not None:
        from recon_job.notify.urls import validate_webhook_url

        urls = validate_webhook_url(
            webhook.url.get_secret_value(), allow_private=webhook.allow_private
        )
        found.extend(f"RECON_WEBHOOK_URL: {p}" for p in urls)
    if settings.alerts.templates_dir is not None:
        from recon_job.notify.render import check_templates

        found.extend(check_templates(settings.alerts.templates_dir))
    return found


def cafile_problems(path: Path) -> list[str]:
    """``email.cafile`` must be a readable file of PEM certificates (checked before a send)."""
    import ssl

    try:
        ssl.create_default_context(cadata=read_text(path))
    except UnusableFile as e:
        return [f"email.cafile: cannot read {str(path)!r} ({e})"]
    except (ssl.SSLError, ValueError) as e:
        return [f"email.cafile: {str(path)!r} holds no usable PEM certificate ({e})"]
    return []


def _shown_url(url: str) -> str:
    if not has_password(url):
        return url  # nothing to mask: no need to import SQLAlchemy
    from recon_job.database import display_url

    return display_url(url)


def _ndjson_line(name: str, logs: LogsSettings) -> str:
    return f"{name}: NDJSON {', '.join(logs.paths)} (naive times in {logs.timezone})"


def _sql_line(source: SqlSourceSettings) -> str:
    url = _shown_url(source.url.get_secret_value()) if source.url is not None else "no URL"
    where = f" where {source.filter}" if source.filter else ""
    what = f"table {source.table}" if source.relation is None else f"relation {source.relation}"
    return f"{source.name}: SQL {what} in {url}{where}"


def source_lines(settings: Settings) -> list[str]:
    """One line per local source: ``[logs]``, or each ``[[sources]]`` table (URLs masked)."""
    if not settings.sources:
        return [_ndjson_line("logs", settings.logs)]
    return [
        _sql_line(s) if isinstance(s, SqlSourceSettings) else _ndjson_line(s.name, s)
        for s in settings.sources
    ]


def channel_line(settings: Settings) -> str:
    """Where notifications go (no secret: the webhook URLs are not shown)."""
    if not settings.alerts.enabled:
        return "off (alerts.enabled = false)"
    e = settings.email
    channels = []
    if e.configured:
        channels.append(f"email to {', '.join(e.recipients)} via {e.host}:{e.effective_port}")
    if settings.slack.configured:
        channels.append("Slack")
    if settings.webhook.configured:
        channels.append("webhook")
    return "; ".join(channels) if channels else "no channel configured"


def describe(settings: Settings) -> str:
    """A summary of the effective settings, secrets masked."""
    o, r = settings.openai, settings.reconcile
    sources = source_lines(settings)
    key = "no admin key" if o.admin_key is None else f"admin key from {o.admin_key_variable}"
    lines = [
        "configuration OK",
        f"  OpenAI:    {o.base_url} ({key}), group by {', '.join(o.group_by)}"
        + (f", projects {', '.join(o.project_ids)}" if o.project_ids else ""),
        f"  sources:   {sources[0]}",
        *(f"             {line}" for line in sources[1:]),
        f"  tolerance: {r.threshold_pct}% and more than ${r.cost_floor} / {r.token_floor} tokens"
        f" / {r.request_floor} requests; days settle {r.settle_hours:g} h after they end",
        f"  families:  compared: {', '.join(r.families) if r.families else 'every one fetched'};"
        f" untracked ones: {r.untracked}",
        "  pricing:   bundled table"
        + (f" + {settings.pricing.file}" if settings.pricing.file else ""),
        f"  history:   {_shown_url(settings.history.database_url.get_secret_value())}",
        f"  alerts:    {channel_line(settings)}",
    ]
    return "\n".join(lines)
