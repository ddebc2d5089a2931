"""A generic JSON webhook: the versioned alert payload, HMAC-SHA256-signed when a secret is set.

The request::

    POST <url>
    Content-Type: application/json
    User-Agent: recon-job/<version>
    Idempotency-Key: <dedupe_key>          same on every retry and re-run of the same alert
    X-Recon-Event: opened
    X-Recon-Timestamp: 1773532800          only with a secret: unix seconds
    X-Recon-Signature: sha256=<hex>        only with a secret

    {"schema": "recon-job.alert/v1", "event": …}   (see recon_job.notify.context)

The body lists the top drifting groups, the first likely causes …, and ``omitted`` counts what
was left out; with ``full_detail`` (``[webhook] full_detail = true``) it holds every entry
instead (:func:`recon_job.notify.detail.webhook_body`).

The signature is ``hex(HMAC-SHA256(secret, f"{timestamp}.".encode() + body))`` over the **raw
body bytes** as received. A receiver verifies it like this::

    import hashlib, hmac, time

    def verify(secret: bytes, headers, body: bytes, tolerance: int = 300) -> bool:
        timestamp = headers["X-Recon-Timestamp"]
        if abs(time.time() - int(timestamp)) > tolerance:
            return False                       # too old: a replay
        expected = "sha256=" + hmac.new(
            secret, timestamp.encode() + b"." + body, hashlib.sha256
        ).hexdigest()
        return hmac.compare_digest(expected, headers["X-Recon-Signature"])

and drops a second delivery with an ``Idempotency-Key`` it has already processed (the relay
delivers at least once: after a crash between the 2xx and its bookkeeping, it sends again).

Outcomes: 2xx → delivered; 429 (with ``retry_after`` from ``Retry-After``), 5xx, timeouts and
connection errors → transient; 3xx (redirects are never followed: a redirect to an internal
address is an SSRF path, reliability.md §8) and other 4xx → permanent.

The URL may carry a token and the secret is a secret: neither appears in an exception, a log
line or a ``repr`` (:class:`~recon_job.notify.base.HttpTransport` masks both). Which URLs are
allowed is checked at config load, by :mod:`recon_job.notify.urls`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import requests
import structlog

from recon_job.errors import NotifyError
from recon_job.models import Message
from recon_job.notify.base import DEFAULT_HTTP, HttpOptions, HttpTransport, Wording
from recon_job.notify.detail import webhook_body

log = structlog.get_logger(__name__)

#: Logged (debug) after a 2xx.
EVENT_SENT: Final = "notify.webhook.sent"

SIGNATURE_HEADER: Final = "X-Recon-Signature"
TIMESTAMP_HEADER: Final = "X-Recon-Timestamp"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Recon-Signature`` value: ``sha256=`` + hex HMAC-SHA256 of ``timestamp.body``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def verify_signature(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance: float = 300.0,
) -> bool:
    """True when ``headers`` sign ``body`` with ``secret`` and their timestamp is fresh.

    The receiver's side of :func:`sign`, for Python receivers and tests: ``headers`` are the
    request's (any case), ``body`` its raw bytes; a timestamp more than ``tolerance`` seconds
    from ``now`` (default: the current time) is a replay. Constant-time.
    """
    named = {str(k).lower(): str(v) for k, v in headers.items()}
    timestamp = named.get(TIMESTAMP_HEADER.lower(), "")
    signature = named.get(SIGNATURE_HEADER.lower(), "")
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - sent) > tolerance:
        return False
    expected = sign(secret, timestamp, body).encode()
    return hmac.compare_digest(expected, signature.encode("utf-8", "replace"))


def encode_payload(payload: Mapping[str, Any]) -> bytes:
    """The exact body bytes sent (and signed): compact UTF-8 JSON."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class WebhookOptions:
    """What the generic webhook signs with and how much it sends."""

    #: Signs each body with HMAC-SHA256 (``X-Recon-Signature``); None: unsigned. A secret.
    secret: str | None = field(default=None, repr=False)
    #: Send every drifting group, likely cause, resolved group and unpriced model instead of
    #: the top ones and ``omitted`` counts (``[webhook] full_detail``).
    full_detail: bool = False


#: Unsigned, top entries only.
NO_SIGNING: Final = WebhookOptions()


class WebhookTransport(HttpTransport):
    """POST ``message.payload`` as JSON to a configured URL."""

    channel = "webhook"
    wording = Wording(
        receiver="webhook",
        rate_limited="webhook receiver is rate limiting (429){detail}",
        server_error="webhook receiver failed ({status}){detail}",
        redirect="webhook answered {status} (a redirect); redirects are not followed — "
        "configure the final URL",
        rejected="webhook receiver rejected the alert ({status}){detail}",
    )

    def __init__(
        self,
        url: str,
        session: requests.Session,
        options: HttpOptions = DEFAULT_HTTP,
        webhook: WebhookOptions = NO_SIGNING,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(url, session, options)
        self._secret = webhook.secret or None
        #: Send every drifting group, cause … instead of the top ones and counts.
        self.full_detail = webhook.full_detail
        # The signature timestamp must be the real time of sending: the one clock read here.
        self._clock = clock

    def __repr__(self) -> str:
        return f"WebhookTransport(signed={self._secret is not None})"

    def secrets(self) -> tuple[str, ...]:
        """The URL's parts and the signing secret."""
        return (*super().secrets(), *([self._secret] if self._secret else []))

    def notify(self, message: Message) -> None:
        """POST the payload once; raise ``NotifyError`` unless the receiver answers 2xx."""
        try:
            body = encode_payload(webhook_body(message.payload, full_detail=self.full_detail))
        except (TypeError, ValueError) as e:
            raise NotifyError(
                f"the alert payload is not JSON-serialisable: {e}",
                permanent=True,
                reason="payload",
            ) from e
        with self.post(body, self._headers(message, body)) as response:
            status = response.status_code
            if 200 <= status < 300:
                log.debug(EVENT_SENT, dedupe_key=message.dedupe_key, status=status)
                return
            raise self.failure(response, self.excerpt(response))

    def _headers(self, message: Message, body: bytes) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": str(self._session.headers.get("User-Agent") or "recon-job"),
            "Idempotency-Key": message.dedupe_key,
            "X-Recon-Event": message.event,
        }
        if self._secret is not None:
            timestamp = str(int(self._clock()))
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = sign(self._secret, timestamp, body)
        return headers


__all__ = [
    "NO_SIGNING",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookOptions",
    "WebhookTransport",
    "encode_payload",
    "sign",
    "verify_signature",
]
