"""Notifications: the channels that send them and the messages they send.

This package owns:

* the one channel interface, :class:`Transport` (``notify(message)``, raising ``NotifyError``),
  and :class:`HttpTransport`, the base of the channels that POST (the status rules, no
  redirects, no secret in any error, every token-like part of the URL masked) — :mod:`.base`;
* the channels: email over SMTP (:mod:`.email`), Slack incoming webhooks (:mod:`.slack`) and a
  signed generic JSON webhook (:mod:`.webhook`);
* which URLs those may post to, checked at config load (:mod:`.urls`), and the same rules
  applied to the address actually dialled, on every connection (:mod:`.guard`);
* the messages: one :class:`Notice` made into a template context and the webhook payload
  (:mod:`.context`), rendered from the Jinja templates in ``templates/`` (:mod:`.render`), with
  figures written for people (:mod:`.figures`) and sizes bounded whatever the drift
  (:mod:`.detail`: the top entries listed, the rest counted, sent in full only where asked);
  a drift alert shows the run's diagnosis (its first sentences, the largest cost-bridge parts);
* finding notices told once per subject (a stale price, a revised day, shadow usage, a drift
  trend): :class:`FindingNotice` and its pure builders (:mod:`.findings`), rendered from
  ``templates/finding/`` by :func:`render_finding`.

When to notify is the core's (:mod:`recon_job.alerts`); queueing, sending and retrying are
:mod:`recon_job.delivery`'s.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recon_job.notify.base import HttpOptions, HttpTransport, Transport, Wording, mrkdwn_escape
    from recon_job.notify.context import EVENT_TITLES, PAYLOAD_SCHEMA, Notice, build_payload
    from recon_job.notify.detail import LIMITS, Limits, groups_csv, webhook_body
    from recon_job.notify.email import EmailOptions, EmailTransport, PartialDelivery
    from recon_job.notify.findings import (
        FINDING_SCHEMA,
        FindingNotice,
        price_notices,
        restated_notices,
        shadow_notices,
        trend_notices,
    )
    from recon_job.notify.guard import ForbiddenAddressError, public_only
    from recon_job.notify.render import (
        CHANNEL_FAILING_TEMPLATES,
        TEMPLATES,
        check_templates,
        render_finding,
        render_message,
        render_parts,
        sample_message,
    )
    from recon_job.notify.slack import SlackTransport
    from recon_job.notify.urls import validate_slack_webhook_url, validate_webhook_url
    from recon_job.notify.webhook import WebhookOptions, WebhookTransport, sign, verify_signature

__all__ = [
    "CHANNEL_FAILING_TEMPLATES",
    "EVENT_TITLES",
    "FINDING_SCHEMA",
    "LIMITS",
    "PAYLOAD_SCHEMA",
    "TEMPLATES",
    "EmailOptions",
    "EmailTransport",
    "FindingNotice",
    "ForbiddenAddressError",
    "HttpOptions",
    "HttpTransport",
    "Limits",
    "Notice",
    "PartialDelivery",
    "SlackTransport",
    "Transport",
    "WebhookOptions",
    "WebhookTransport",
    "Wording",
    "build_payload",
    "check_templates",
    "groups_csv",
    "mrkdwn_escape",
    "price_notices",
    "public_only",
    "render_finding",
    "render_message",
    "render_parts",
    "restated_notices",
    "sample_message",
    "shadow_notices",
    "sign",
    "trend_notices",
    "validate_slack_webhook_url",
    "validate_webhook_url",
    "verify_signature",
    "webhook_body",
]

#: Where each public name lives. The names are imported on first use (PEP 562), so that a run
#: with no channel configured does not import smtplib and the channels' modules.
_HOMES = {
    **dict.fromkeys(
        ("HttpOptions", "HttpTransport", "Transport", "Wording", "mrkdwn_escape"), "base"
    ),
    **dict.fromkeys(("EVENT_TITLES", "PAYLOAD_SCHEMA", "Notice", "build_payload"), "context"),
    **dict.fromkeys(("LIMITS", "Limits", "groups_csv", "webhook_body"), "detail"),
    **dict.fromkeys(("EmailOptions", "EmailTransport", "PartialDelivery"), "email"),
    **dict.fromkeys(
        (
            "FINDING_SCHEMA",
            "FindingNotice",
            "price_notices",
            "restated_notices",
            "shadow_notices",
            "trend_notices",
        ),
        "findings",
    ),
    **dict.fromkeys(("ForbiddenAddressError", "public_only"), "guard"),
    **dict.fromkeys(
        (
            "CHANNEL_FAILING_TEMPLATES",
            "TEMPLATES",
            "check_templates",
            "render_finding",
            "render_message",
            "render_parts",
            "sample_message",
        ),
        "render",
    ),
    "SlackTransport": "slack",
    **dict.fromkeys(("validate_slack_webhook_url", "validate_webhook_url"), "urls"),
    **dict.fromkeys(("WebhookOptions", "WebhookTransport", "sign", "verify_signature"), "webhook"),
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
