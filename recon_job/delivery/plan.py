"""The alerting half of a run: channels from the settings, what to notify, and delivering it.

Part of the job (only ``job``, ``cli`` and the daemon import it): it turns a run's outcome
into outbox rows with :func:`recon_job.alerts.plan` and the Jinja renderer, and the relay sends
them. The pure rules live in ``alerts``; the channels in ``notify``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from recon_job import alerts
from recon_job.config.settings import Settings
from recon_job.delivery.relay import RelayReport, relay
from recon_job.errors import ConfigError, ReconError
from recon_job.http import make_session
from recon_job.models import ReconResult, Window
from recon_job.notify.base import Transport
from recon_job.notify.email import EmailOptions, EmailTransport
from recon_job.notify.render import check_templates, render_message
from recon_job.notify.slack import SlackTransport
from recon_job.notify.webhook import (
    WebhookTransport,
    validate_slack_webhook_url,
    validate_webhook_url,
)
from recon_job.store import HistoryStore, OutboxItem

#: What the CLI shows for a row's delivery state: sent, pending (will be retried) or failed.
_SHOWN_STATUS = {"sent": "sent", "partial": "sent", "dead": "failed", "failed": "failed"}


def channel_problems(settings: Settings) -> list[str]:
    """What is wrong with the configured channels (URLs, templates), all at once."""
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
        problems.extend(check_templates(settings.alerts.templates_dir))
    return problems


def build_transports(settings: Settings) -> dict[str, Transport]:
    """The configured channels by name; raises ``ConfigError`` listing every problem."""
    problems = channel_problems(settings)
    if problems:
        raise ConfigError(problems)
    transports: dict[str, Transport] = {}
    e = settings.email
    if e.configured and e.host and e.sender:
        transports["email"] = EmailTransport(
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
    # POSTs are never retried by the session; retries are the relay's, at its next pass.
    session = make_session(retries=0)
    if settings.slack.webhook_url is not None:
        transports["slack"] = SlackTransport(
            settings.slack.webhook_url.get_secret_value(),
            session,
            timeout=(5.0, settings.slack.timeout_seconds),
        )
    w = settings.webhook
    if w.url is not None:
        transports["webhook"] = WebhookTransport(
            w.url.get_secret_value(),
            session,
            w.secret.get_secret_value() if w.secret else None,
            timeout=(5.0, w.timeout_seconds),
        )
    return transports


def policy(settings: Settings, window: Window) -> alerts.AlertPolicy:
    """The lifecycle rules for ``window``'s kind."""
    return alerts.AlertPolicy(
        repeat_interval=settings.alerts.repeat_interval(window.kind),
        send_resolved={
            "email": settings.email.send_resolved,
            "slack": settings.slack.send_resolved,
            "webhook": settings.webhook.send_resolved,
        },
        summaries=settings.alerts.summaries,
    )


@dataclass(frozen=True)
class Planned:
    """The outbox rows of one run, and a line each for the run's output."""

    items: tuple[OutboxItem, ...]
    #: ``{"channel", "event", "status": "pending"|"suppressed"}`` per notification.
    shown: tuple[dict[str, Any], ...]


def plan_run(
    settings: Settings,
    store: HistoryStore,
    channels: Mapping[str, Transport],
    *,
    window: Window,
    run_id: int,
    result: ReconResult | None,
    error: ReconError | None,
    now: datetime,
) -> Planned:
    """Decide and render the notifications of one run (``result`` None: the run failed)."""
    states = {channel: store.notification_state(window.key, channel) for channel in channels}
    planned = alerts.plan(
        group_key=window.key,
        states=states,
        result=result,
        policy=policy(settings, window),
        now=now,
    )
    items: list[OutboxItem] = []
    shown: list[dict[str, Any]] = []
    for n in planned:
        state = states.get(n.channel)
        resolved = sorted(state.firing - n.state.firing) if state is not None else []
        message = render_message(
            event=n.event,
            group_key=window.key,
            dedupe_key=n.dedupe_key,
            window=window,
            result=result,
            error=None if error is None else (error.reason, str(error)),
            firing=result.mismatches if result is not None else (),
            resolved=resolved,
            run_id=run_id,
            templates_dir=settings.alerts.templates_dir,
        )
        items.append(
            OutboxItem(n.channel, message, run_id, state=n.state, suppressed=not n.deliver)
        )
        shown.append(
            {
                "channel": n.channel,
                "event": n.event,
                "status": "pending" if n.deliver else "suppressed",
            }
        )
    return Planned(tuple(items), tuple(shown))


def deliver(
    settings: Settings,
    store: HistoryStore,
    channels: Mapping[str, Transport],
    *,
    now: datetime,
    clock: Callable[[], datetime],
) -> RelayReport:
    """Send everything due in the outbox, this run's rows and any a crash left behind."""
    return relay(store, channels, now=now, clock=clock, max_attempts=settings.alerts.max_attempts)


def shown_alerts(planned: Planned, report: RelayReport | None) -> list[dict[str, Any]]:
    """One ``{"channel", "event", "status"}`` per notification of this run, after delivery.

    ``status`` is ``sent``, ``pending`` (will be retried at the next run or daemon tick) or
    ``failed`` (given up; reported through the other channels). Rows from earlier runs that
    this run's relay pass delivered are listed too, marked ``"earlier": true``.
    """
    delivered = {} if report is None else {(o["channel"], o["event"]): o for o in report.alerts()}
    out: list[dict[str, Any]] = []
    for entry in planned.shown:
        if entry["status"] == "suppressed":
            continue
        outcome = delivered.pop((entry["channel"], entry["event"]), None)
        status = _SHOWN_STATUS.get(outcome["status"], "pending") if outcome else "pending"
        out.append({**entry, "status": status})
    for outcome in delivered.values():
        out.append(
            {
                "channel": outcome["channel"],
                "event": outcome["event"],
                "status": _SHOWN_STATUS.get(outcome["status"], "pending"),
                "earlier": True,
            }
        )
    return out
