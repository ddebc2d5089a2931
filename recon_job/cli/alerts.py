"""``recon-job alerts``: send a sample through each channel, send what is pending, list recent
notifications."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from recon_job.cli.common import (
    EXIT_PERMANENT,
    EXIT_TRANSIENT,
    WholeSummaryGroup,
    config_option,
    exit_code,
    fail,
    format_option,
    read_history,
    setup,
    utcnow,
)
from recon_job.errors import ConfigError, ReconError

if TYPE_CHECKING:
    from recon_job.delivery import RelayReport


@click.group(cls=WholeSummaryGroup)
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
        what = f"the {channel} channel is not" if channel else "no channel is"
        fail(ConfigError(f"{what} configured; see the Alerts section of the README"))
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
@click.option(
    "--limit",
    type=click.IntRange(1, 10_000),
    default=20,
    show_default=True,
    help="How many notifications to list, newest first.",
)
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


@alerts.command("send")
@format_option
@config_option
def alerts_send(fmt: str, config: str | None) -> None:
    """Send the notifications still pending now: retries, or what a crash left unsent.

    Every run --due and every daemon tick does this first; this command does it on demand. Exit
    0 when nothing is left to send, 3 when some still wait (a channel is down or asked to wait:
    retried later), 2 when some were given up (a permanent failure: fix the channel).
    """
    from recon_job import wiring
    from recon_job.delivery import deliver
    from recon_job.errors import StoreError
    from recon_job.store import HistoryStore

    settings = setup(config, fmt)
    try:
        alerting = wiring.alerting(settings)
    except ConfigError as e:
        fail(e, fmt)
    if not alerting.channels:
        fail(ConfigError("no notification channel is configured (or alerts.enabled is false)"), fmt)
    url = settings.history.database_url.get_secret_value()
    try:
        with HistoryStore(url, create=False) as store:
            report = deliver(alerting, store, now=utcnow(), clock=utcnow)
            waiting = store.pending_count()
    except StoreError as e:
        fail(e, fmt)
    _print_sent(report, waiting, fmt)
    if report.dead:
        sys.exit(EXIT_PERMANENT)
    if waiting:
        sys.exit(EXIT_TRANSIENT)


def _print_sent(report: RelayReport, waiting: int, fmt: str) -> None:
    """What a relay pass did, and how many notifications still wait."""
    if fmt == "json":
        doc = {
            "sent": report.sent + report.partial,
            "failed": report.dead,
            "pending": waiting,
            "alerts": report.alerts(),
        }
        click.echo(json.dumps(doc, indent=2))
        return
    for row in report.alerts():
        why = f" ({row['reason']})" if row["reason"] else ""
        click.echo(
            f"{row['outbox_id']:>5}  {row['channel']:<8} {row['event']:<15} {row['status']}{why}"
        )
    if not report.outcomes:
        click.echo("nothing due to send")
    click.echo(
        f"sent {report.sent + report.partial}, given up {report.dead}, still pending {waiting}"
    )
