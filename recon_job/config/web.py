"""Settings of the dashboard and admin API (section ``[web]``).

The web application (:mod:`recon_job.web`) is served by ``recon-job serve`` alone and by
``recon-job daemon`` beside its scheduler, on ``listen``. The dashboard key is a secret, read only
from ``RECON_DASHBOARD_KEY`` or ``RECON_DASHBOARD_KEY_FILE``; without it the dashboard and the
admin API are off (404) while the probes and ``/metrics`` stay open.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from recon_job.config.daemon import split_listen

#: The shortest dashboard key accepted: a guessable key would make the rate limit the only guard.
MIN_KEY_CHARS = 16


class WebSettings(BaseModel):
    """Where the web application listens and what it accepts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: ``host:port`` (``[v6]:port``) of the web application; None: ``[daemon] listen`` (its
    #: older name), which defaults to ``127.0.0.1:9108``.
    listen: str | None = None
    #: The largest request body the admin API reads, in MiB (413 above it).
    max_upload_mb: int = Field(50, ge=1, le=1024)
    #: Session cookies with the ``Secure`` flag: set it when the app is reached over https (an
    #: ingress with TLS). Also set on its own when the request arrived over https.
    secure_cookies: bool = False
    #: The dashboard and admin API key (a secret): ``RECON_DASHBOARD_KEY`` or its ``_FILE``.
    dashboard_key: SecretStr | None = None

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str | None) -> str | None:
        if value is not None:
            split_listen(value)
        return value

    @field_validator("dashboard_key")
    @classmethod
    def _check_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        key = value.get_secret_value().strip()
        if len(key) < MIN_KEY_CHARS:
            # The key itself is never echoed.
            raise ValueError(
                f"is shorter than {MIN_KEY_CHARS} characters; use a random key, e.g. "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        return SecretStr(key)
