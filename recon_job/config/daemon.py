"""Settings of ``recon-job daemon`` and of run monitoring (section ``[daemon]``).

The cron expressions are checked at load time with APScheduler's own parser
(``CronTrigger.from_crontab``), imported lazily inside the validator: this module only borrows
the parser so that a typo is a :class:`~recon_job.errors.ConfigError` at load (listed with every
other problem by ``recon-job check-config``) rather than a crash when the daemon starts. The
scheduler itself is built only in ``recon_job.daemon.scheduler``.

``ping_url`` (healthchecks.io style: ``<url>/start``, ``<url>``, ``<url>/fail``) carries the
check's UUID, which lets anyone ping the check: it is a secret, read only from
``RECON_PING_URL`` or ``RECON_PING_URL_FILE`` (reliability.md §6).
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

#: Default where /healthz and /metrics listen: loopback only unless told (a container sets
#: ``RECON_DAEMON__LISTEN=0.0.0.0:9108``).
DEFAULT_LISTEN = "127.0.0.1:9108"
_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")


class DaemonSettings(BaseModel):
    """The always-on scheduler: when it fires, where it answers probes, how it stops."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Five-field cron expression (UTC) of the daily job; each tick runs every due daily period.
    daily_cron: str = "0 6 * * *"
    #: Five-field cron expression (UTC) of the monthly job.
    monthly_cron: str = "0 7 2 * *"
    #: Seconds a fire time may be late and still run. APScheduler's default (1 s) silently
    #: skips a run found 2 s late (reliability.md §3.1); missed periods are caught up anyway.
    misfire_grace_seconds: int = Field(3600, ge=1, le=7 * 24 * 3600)
    #: ``host:port`` (``[v6]:port`` for IPv6) of the /healthz and /metrics server.
    listen: str = DEFAULT_LISTEN
    #: Seconds between SIGTERM and exit: the running step stops at its next checkpoint within
    #: it. Keep it below the orchestrator's grace period (Kubernetes: 30 s by default).
    shutdown_budget_seconds: float = Field(25.0, gt=0, le=3600)
    #: Hours past the time a period becomes settled after which /healthz reports it overdue
    #: (503). Must cover the gap between settling and the cron's next fire time (up to a day
    #: for the daily job) plus a run.
    overdue_hours: float = Field(36.0, gt=0, le=24 * 62)
    #: Seconds between relay passes that retry pending notifications between ticks (a 5xx, a
    #: Slack 429 ...); 0 leaves retries to the next tick, a day later for the daily job.
    relay_interval_seconds: int = Field(300, ge=0, le=24 * 3600)
    #: Dead-man's-switch base URL (a secret): ``RECON_PING_URL`` or ``RECON_PING_URL_FILE``.
    ping_url: SecretStr | None = None
    #: Prometheus Pushgateway (``http://host:9091``) that run-once mode pushes its metrics to;
    #: ``RECON_PUSHGATEWAY_URL``. The daemon serves /metrics itself.
    pushgateway_url: str | None = None

    @field_validator("daily_cron", "monthly_cron")
    @classmethod
    def _check_cron(cls, value: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        expression = " ".join(value.split())
        try:
            CronTrigger.from_crontab(expression, timezone="UTC")
        except ValueError as e:
            raise ValueError(
                f"{value!r} is not a five-field cron expression (minute hour day month "
                f"day-of-week, UTC), e.g. '0 6 * * *': {e}"
            ) from None
        return expression

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        split_listen(value)
        return value

    @field_validator("ping_url")
    @classmethod
    def _check_ping_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        parts = urlsplit(value.get_secret_value().strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            # The value itself is never echoed: it is the check's secret address.
            raise ValueError("is not an http(s) URL like https://hc-ping.com/<uuid>")
        return SecretStr(value.get_secret_value().strip().rstrip("/"))

    @field_validator("pushgateway_url")
    @classmethod
    def _check_pushgateway_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        parts = urlsplit(value if "://" in value else f"http://{value}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not a Pushgateway address like http://host:9091")
        return value

    @property
    def listen_address(self) -> tuple[str, int]:
        """``listen`` as ``(host, port)``."""
        return split_listen(self.listen)


def split_listen(value: str) -> tuple[str, int]:
    """``"host:port"`` or ``"[v6]:port"`` as ``(host, port)``; ValueError with a readable hint."""
    host, sep, port_text = value.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    hint = "use host:port, e.g. 127.0.0.1:9108 or 0.0.0.0:9108 (port 0 picks a free one)"
    if (
        not sep
        or not host
        or not (port_text.isascii() and port_text.isdigit())
        or int(port_text) > 65535
    ):
        raise ValueError(f"{value!r} is not an address to listen on; {hint}")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOSTNAME.fullmatch(host):
            raise ValueError(f"{value!r} is not an address to listen on; {hint}") from None
    return host, int(port_text)
