"""Notifications: the channels that send them and the messages they send.

This package owns:

* the one channel interface, :class:`Transport` (``notify(message)``, raising ``NotifyError``),
  and :class:`HttpTransport`, the base of the channels that POST (the status rules, no
  redirects, no secret in any error) — :mod:`.base`;
* the channels: email over SMTP (:mod:`.email`), Slack incoming webhooks (:mod:`.slack`) and a
  signed generic JSON webhook (:mod:`.webhook`);
* which URLs those may post to, checked at config load (:mod:`.urls`);
* the messages: one :class:`Notice` made into a template context and the webhook payload
  (:mod:`.context`), rendered from the Jinja templates in ``templates/`` (:mod:`.render`).

When to notify is the core's (:mod:`recon_job.alerts`); queueing, sending and retrying are
:mod:`recon_job.delivery`'s.
"""

from recon_job.notify.base import HttpTransport, Transport, Wording, mrkdwn_escape
from recon_job.notify.context import EVENT_TITLES, PAYLOAD_SCHEMA, Notice, build_payload
from recon_job.notify.email import EmailOptions, EmailTransport, PartialDelivery
from recon_job.notify.render import (
    CHANNEL_FAILING_TEMPLATES,
    TEMPLATES,
    check_templates,
    render_message,
    render_parts,
    sample_message,
)
from recon_job.notify.slack import SlackTransport
from recon_job.notify.urls import validate_slack_webhook_url, validate_webhook_url
from recon_job.notify.webhook import WebhookTransport, sign, verify_signature

__all__ = [
    "CHANNEL_FAILING_TEMPLATES",
    "EVENT_TITLES",
    "PAYLOAD_SCHEMA",
    "TEMPLATES",
    "EmailOptions",
    "EmailTransport",
    "HttpTransport",
    "Notice",
    "PartialDelivery",
    "SlackTransport",
    "Transport",
    "WebhookTransport",
    "Wording",
    "build_payload",
    "check_templates",
    "mrkdwn_escape",
    "render_message",
    "render_parts",
    "sample_message",
    "sign",
    "validate_slack_webhook_url",
    "validate_webhook_url",
    "verify_signature",
]
