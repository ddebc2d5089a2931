"""The checks that need more than the settings: files, prices, templates, URLs that resolve.

:func:`problems` is the one list of them. ``recon-job check-config`` runs it, and so does every
run, through :func:`recon_job.wiring.deps`, before anything is built or recorded: the two never
disagree. A run that replaces a configured part (``--openai-from-csv``, ``--no-alerts``, sources
or channels handed in by a caller) skips that part's checks, saying so with :class:`Uses`.

Heavy imports stay inside the check that needs them, so they happen only when a setting asks
for them: requests for a webhook URL, Jinja2 for a templates directory, SQLAlchemy to show a
history URL that carries a password.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

from recon_job.config.load import has_password
from recon_job.config.prices import load_price_table
from recon_job.config.settings import Settings
from recon_job.errors import ConfigError, ReconError

#: Why a run that calls OpenAI cannot start without an admin key.
NO_ADMIN_KEY = (
    "no OpenAI admin key: set OPENAI_ADMIN_KEY (or OPENAI_ADMIN_KEY_FILE) to an admin key "
    "(sk-admin-...) from platform.openai.com/settings/organization/admin-keys, or reconcile "
    "offline from dashboard exports with --openai-from-csv"
)


@dataclass(frozen=True)
class Uses:
    """Which configured parts a command uses; the checks of the others are skipped."""

    #: The local sources of ``[logs]`` / ``[[sources]]`` (their log files must exist).
    local_sources: bool = True
    #: OpenAI's Usage and Costs APIs (an admin key is needed), not dashboard CSV exports.
    openai_api: bool = True
    #: The configured notification channels (URLs, templates), when alerts are on.
    channels: bool = True


def problems(settings: Settings, uses: Uses | None = None) -> list[str]:
    """Everything a run would trip over that the settings' own validation cannot see, at once."""
    uses = uses or Uses()
    found: list[str] = []
    if uses.openai_api:
        found.extend(admin_key_problems(settings))
    found.extend(price_problems(settings))
    if uses.local_sources:
        found.extend(log_path_problems(settings))
    if uses.channels and settings.alerts.enabled:
        found.extend(channel_problems(settings))
    return found


def admin_key_problems(settings: Settings) -> list[str]:
    """An admin key is needed to call OpenAI's organization APIs."""
    return [] if settings.openai.admin_key is not None else [NO_ADMIN_KEY]


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


def channel_problems(settings: Settings) -> list[str]:
    """What is wrong with the configured channels (URLs, templates), all at once."""
    found: list[str] = []
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


def _shown_url(url: str) -> str:
    if not has_password(url):
        return url  # nothing to mask: no need to import SQLAlchemy
    from recon_job.database import display_url

    return display_url(url)


def describe(settings: Settings) -> str:
    """A summary of the effective settings, secrets masked."""
    o, r = settings.openai, settings.reconcile
    lines = [
        "configuration OK",
        f"  OpenAI:    {o.base_url} (admin key set), group by {', '.join(o.group_by)}"
        + (f", projects {', '.join(o.project_ids)}" if o.project_ids else ""),
        f"  logs:      {', '.join(settings.logs.paths)} (naive times in {settings.logs.timezone})",
        f"  tolerance: {r.threshold_pct}% and more than ${r.cost_floor} / {r.token_floor} tokens"
        f" / {r.request_floor} requests; days settle {r.settle_hours:g} h after they end",
        "  pricing:   bundled table"
        + (f" + {settings.pricing.file}" if settings.pricing.file else ""),
        f"  history:   {_shown_url(settings.history.database_url.get_secret_value())}",
    ]
    return "\n".join(lines)
