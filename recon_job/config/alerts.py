"""Settings of the alerting side: the lifecycle and the three channels (email, Slack, webhook).

A channel is on when its address is set: ``RECON_SMTP_HOST`` (with a sender and recipients),
``RECON_SLACK_WEBHOOK_URL``, ``RECON_WEBHOOK_URL``. The SMTP password and both webhook URLs
(their paths are credentials) and the webhook signing secret are secrets: environment or
``*_FILE`` only, held as ``SecretStr``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from recon_job.config.load import Problem, rule_errors


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AlertsSettings(_Section):
    """When notifications are sent (Alertmanager's rules; see the README)."""

    #: Send notifications at all (``recon-job run --no-alerts`` skips them once).
    enabled: bool = True
    #: Hours before a still-drifting daily window is notified again.
    repeat_interval_daily_hours: float = Field(24.0, gt=0, le=24 * 366)
    #: Days before a still-drifting monthly (or range) window is notified again.
    repeat_interval_monthly_days: float = Field(30.0, gt=0, le=366)
    #: Also send a summary when a window reconciles (off: only problems are sent).
    summaries: bool = False
    #: A directory of templates overriding the bundled ones, file by file.
    templates_dir: Path | None = None
    #: Delivery attempts per notification before it is given up (``dead``).
    max_attempts: int = Field(8, ge=1, le=100)

    def repeat_interval(self, window_kind: str) -> timedelta:
        """How long a persisting alert of this window kind stays quiet."""
        if window_kind == "daily":
            return timedelta(hours=self.repeat_interval_daily_hours)
        return timedelta(days=self.repeat_interval_monthly_days)


class EmailSettings(_Section):
    """SMTP delivery."""

    #: ``RECON_SMTP_HOST``; unset: no email.
    host: str | None = None
    #: ``RECON_SMTP_PORT``; default 465 for ``ssl``, 587 for ``starttls``, 25 for ``none``.
    port: int | None = Field(None, ge=1, le=65535)
    #: ``RECON_SMTP_USERNAME``; login happens only over TLS.
    username: str | None = None
    #: ``RECON_SMTP_PASSWORD`` (or ``_FILE``).
    password: SecretStr | None = None
    #: ``RECON_SMTP_SECURITY``: ``ssl`` (implicit TLS), ``starttls`` or ``none``.
    security: Literal["ssl", "starttls", "none"] = "starttls"
    #: ``RECON_EMAIL_FROM``.
    sender: str | None = None
    #: ``RECON_EMAIL_TO`` (comma-separated).
    recipients: tuple[str, ...] = ()
    #: Seconds for each SMTP operation.
    timeout_seconds: float = Field(10.0, gt=0, le=300)
    #: Also email when a drift resolves (Alertmanager's default for email: no).
    send_resolved: bool = False
    #: A CA bundle to trust for the SMTP server's certificate (private CAs).
    cafile: Path | None = None

    @property
    def configured(self) -> bool:
        """True when email is switched on (a host is set)."""
        return bool(self.host)

    @property
    def effective_port(self) -> int:
        """The port, defaulted from the security mode."""
        return self.port or {"ssl": 465, "starttls": 587, "none": 25}[self.security]

    @field_validator("sender")
    @classmethod
    def _check_sender(cls, value: str | None) -> str | None:
        if value is not None:
            _check_address(value)
        return value

    @field_validator("recipients")
    @classmethod
    def _check_recipients(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(v.strip() for v in value if v.strip())
        for address in cleaned:
            _check_address(address)
        return cleaned

    @model_validator(mode="after")
    def _check_complete(self) -> EmailSettings:
        if not self.host:
            return self
        found: list[Problem] = []
        missing = [
            name
            for name, value in (
                ("RECON_EMAIL_FROM", self.sender),
                ("RECON_EMAIL_TO", self.recipients),
            )
            if not value
        ]
        if missing:
            found.append(
                (
                    (),
                    f"email is on (RECON_SMTP_HOST is set) but {' and '.join(missing)} is not",
                    None,
                )
            )
        if self.username and self.security == "none":
            found.append(
                (
                    (),
                    "refusing to log in to SMTP without TLS; set RECON_SMTP_SECURITY to ssl or "
                    "starttls",
                    None,
                )
            )
        if self.username and not (self.password and self.password.get_secret_value()):
            found.append(((), "an SMTP username is set but no password", None))
        if found:
            raise rule_errors(type(self).__name__, found)
        return self


class SlackSettings(_Section):
    """Slack incoming webhook delivery."""

    #: ``RECON_SLACK_WEBHOOK_URL`` (or ``_FILE``); unset: no Slack.
    webhook_url: SecretStr | None = None
    #: Also post when a drift resolves (Alertmanager's default for Slack: no).
    send_resolved: bool = False
    #: Seconds to wait for Slack.
    timeout_seconds: float = Field(10.0, gt=0, le=120)
    #: Accept a webhook URL on another host than hooks.slack.com, http and private addresses
    #: included: a Slack-compatible receiver (Mattermost, Rocket.Chat) on an intranet.
    allow_other_hosts: bool = False

    @property
    def configured(self) -> bool:
        """True when Slack is switched on."""
        return self.webhook_url is not None


class WebhookSettings(_Section):
    """Generic JSON webhook delivery."""

    #: ``RECON_WEBHOOK_URL`` (or ``_FILE``); unset: no webhook.
    url: SecretStr | None = None
    #: ``RECON_WEBHOOK_SECRET`` (or ``_FILE``): signs each body with HMAC-SHA256.
    secret: SecretStr | None = None
    #: Also call when a drift resolves (Alertmanager's default for webhooks: yes).
    send_resolved: bool = True
    #: Seconds to wait for the receiver.
    timeout_seconds: float = Field(10.0, gt=0, le=120)
    #: Allow http:// and private or loopback addresses (an intranet receiver). Off by default,
    #: so a URL cannot point the job at internal services (SSRF): then the address actually
    #: dialled is checked on every connection too (DNS rebinding).
    allow_private: bool = False
    #: Send every drifting group, likely cause, resolved group and unpriced model. Off: the
    #: top ones, with ``omitted`` counting the rest (the body stays small).
    full_detail: bool = False

    @property
    def configured(self) -> bool:
        """True when the webhook is switched on."""
        return self.url is not None


def _check_address(value: str) -> None:
    # Imported here: only a configured email channel has addresses to check (saves the email
    # header parser on every run without one).
    from email.headerregistry import Address

    try:
        Address(addr_spec=value.strip())
    except (ValueError, IndexError) as e:
        raise ValueError(f"{value!r} is not an email address ({e})") from None
