"""``recon-job alerts``: send a sample through each channel, list recent notifications."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from recon_job.cli.common import (
    config_option,
    exit_code,
    fail,
    format_option,
    read_history,
    setup,
    utcnow,
)
from recon_job.errors import ConfigError, ReconError


@click.group()
def alerts() -> None:
    """Check the notification channels and see what was sent."""


@alerts.command("test")
@click.option(
    "--channel",
    type=click.Choice(["email", "slack", "webhook"]),
    help="Only this channel (default: every configured one).",
)
@config_option
def alerts_test(channel: str | None, config: str | None) -> None:
    """Send a sample drift alert through each configured channel, right now."""
    from recon_job import wiring
    from recon_job.notify.render import sample_message

    settings = setup(config)
    try:
        transports = wiring.transports(settings)
    except ConfigError as e:
        fail(e)
    chosen = {n: t for n, t in transports.items() if channel in (None, n)}
    if not chosen:
        what = f"the {channel} channel is" if channel else "no channel is"
        fail(ConfigError(f"{what} not configured; see the Alerts section of the README"))
    message = sample_message(
        f"test-{utcnow():%Y%m%dT%H%M%S}", templates_dir=settings.alerts.templates_dir
    )
    worst: ReconError | None = None
    for name, transport in chosen.items():
        try:
            transport.notify(message)
        except ReconError as e:
            click.echo(f"{name}: FAILED ({e.reason}): {e}")
            if worst is None or (e.permanent and not worst.permanent):
                worst = e
        else:
            click.echo(f"{name}: sent")
    if worst is not None:
        sys.exit(exit_code(worst))


@alerts.command("list")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@format_option
@config_option
def alerts_list(limit: int, fmt: str, config: str | None) -> None:
    """Recent notifications and their delivery state, newest first."""
    settings = setup(config, fmt)
    records = read_history(settings, fmt, lambda store: store.list_notifications(limit))
    rows: list[dict[str, Any]] = [
        {
            "id": r.row.id,
            "run_id": r.row.run_id,
            "window": r.row.group_key,
            "channel": r.row.channel,
            "event": r.row.event,
            "status": str(r.row.status),
            "attempts": r.attempt_count,
            "created_at": r.row.created_at.isoformat(),
            "sent_at": r.row.sent_at.isoformat() if r.row.sent_at else None,
            "last_error": r.row.last_error,
            "subject": r.row.subject,
        }
        for r in records
    ]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no notifications yet")
        return
    for row in rows:
        error = f"  ({row['last_error']})" if row["last_error"] else ""
        click.echo(
            f"{row['id']:>5}  {row['created_at'][:19]}  {row['window']:<22} {row['channel']:<8} "
            f"{row['event']:<9} {row['status']:<10} tries {row['attempts']}{error}"
        )
