"""The checks that need more than the settings themselves: files, templates, URLs that resolve.

:func:`problems` is run by ``recon-job check-config`` and, through :mod:`recon_job.wiring`, by
every run, so the two never disagree.
"""

from __future__ import annotations

from recon_job.config.settings import NdjsonSourceSettings, Settings
from recon_job.errors import ConfigError, ReconError


def channel_problems(settings: Settings) -> list[str]:
    """What is wrong with the configured channels (URLs, templates), all at once."""
    from recon_job.notify.webhook import validate_slack_webhook_url, validate_webhook_url

    problems: list[str] = []
    slack, webhook = settings.slack, settings.webhook
    if slack.webhook_url is not None:
        url = slack.webhook_url.get_secret_value()
        found = (
            validate_webhook_url(url, allow_private=True)
            if slack.allow_other_hosts
            else validate_slack_webhook_url(url)
        )
        problems.extend(f"RECON_SLACK_WEBHOOK_URL: {p}" for p in found)
    if webhook.url is not None:
        found = validate_webhook_url(
            webhook.url.get_secret_value(), allow_private=webhook.allow_private
        )
        problems.extend(f"RECON_WEBHOOK_URL: {p}" for p in found)
    if settings.alerts.templates_dir is not None:
        from recon_job.notify.render import check_templates

        problems.extend(check_templates(settings.alerts.templates_dir))
    return problems


def problems(settings: Settings) -> list[str]:
    """What a run would trip over that the settings' own validation cannot see."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from recon_job import wiring
    from recon_job.sources.ndjson import resolve_log_files

    found: list[str] = []
    if settings.openai.admin_key is None:
        found.append("no OpenAI admin key: set OPENAI_ADMIN_KEY (or OPENAI_ADMIN_KEY_FILE)")
    namer = wiring.model_namer(settings)
    try:
        wiring.price_table(settings, namer)
    except ConfigError as e:
        found.extend(e.problems)
    ndjson = [s for s in settings.sources if isinstance(s, NdjsonSourceSettings)]
    for paths in [s.paths for s in ndjson] if settings.sources else [settings.logs.paths]:
        try:
            resolve_log_files(paths)
        except ReconError as e:
            found.append(str(e))
    found.extend(channel_problems(settings))
    try:
        make_url(settings.history.database_url.get_secret_value())
    except ArgumentError:
        found.append(
            "history.database_url: not a database URL; use e.g. sqlite:///recon_history.db or "
            "postgresql+psycopg://user@host/db"
        )
    return found


def describe(settings: Settings) -> str:
    """A summary of the effective settings, secrets masked."""
    from recon_job.database import display_url

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
        f"  history:   {display_url(settings.history.database_url.get_secret_value())}",
    ]
    return "\n".join(lines)
