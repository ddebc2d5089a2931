"""A generic JSON webhook: the versioned alert payload, HMAC-SHA256-signed when a secret is set.

The request::

    POST <url>
    Content-Type: application/json
    User-Agent: recon-job/<version>
    Idempotency-Key: <dedupe_key>          same on every retry and re-run of the same alert
    X-Recon-Event: opened
    X-Recon-Timestamp: 1773532800          only with a secret: unix seconds
    X-Recon-Signature: sha256=<hex>        only with a secret

    {"schema": "recon-job.alert/v1", "event": …}   (see recon_job.notify.render)

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
line or a ``repr``. ``requests`` puts the full URL in its exception texts, so errors are built
here from scratch and raised with no exception chained.

:func:`validate_webhook_url` and :func:`validate_slack_webhook_url` check URLs at config load.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

import requests
import structlog

from recon_job.errors import NotifyError
from recon_job.http import failure_kind, parse_retry_after
from recon_job.models import Message

log = structlog.get_logger(__name__)

#: Logged (debug) after a 2xx.
EVENT_SENT: Final = "notify.webhook.sent"

SIGNATURE_HEADER: Final = "X-Recon-Signature"
TIMESTAMP_HEADER: Final = "X-Recon-Timestamp"
#: Default ``(connect, read)`` timeout in seconds.
DEFAULT_TIMEOUT: Final = (5.0, 10.0)
SLACK_HOST: Final = "hooks.slack.com"

Resolver = Callable[..., Iterable[tuple[Any, ...]]]


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Recon-Signature`` value: ``sha256=`` + hex HMAC-SHA256 of ``timestamp.body``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def verify_signature(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    now: float | None = None,
    tolerance: float = 300.0,
) -> bool:
    """True when ``signature`` is valid for ``body`` and ``timestamp`` is within ``tolerance``.

    The receiver's side of :func:`sign`, for Python receivers and tests. Constant-time.
    """
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - sent) > tolerance:
        return False
    expected = sign(secret, timestamp, body).encode()
    return hmac.compare_digest(expected, signature.encode("utf-8", "replace"))


# --- shared by the HTTP channels --------------------------------------------------------


def body_excerpt(response: requests.Response, *secrets: str | None, limit: int = 200) -> str:
    """The start of a response body on one line, with ``secrets`` (URL, its path…) masked.

    Receivers echo request paths in error pages ("Cannot POST /hooks/<token>"), so the URL's
    parts are scrubbed even from what the server said.
    """
    try:
        head = next(response.iter_content(2000), b"")
    except requests.RequestException:
        head = b""  # a body cut short says nothing more than the status already does
    text = " ".join(head.decode("utf-8", "replace").split())
    for secret in sorted((s for s in secrets if s and len(s) > 1), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text[:limit]


def url_secrets(url: str) -> tuple[str, ...]:
    """The parts of ``url`` to mask in anything shown: itself, its path and its query."""
    parts = urlsplit(url)
    return tuple(p for p in (url, parts.path, parts.query) if p and p != "/")


def post(
    session: requests.Session,
    url: str,
    *,
    body: bytes,
    headers: Mapping[str, str],
    timeout: tuple[float, float],
    what: str,
) -> requests.Response:
    """POST once, without following redirects; connection faults become ``NotifyError``.

    ``what`` names the receiver in messages ("Slack webhook"); the URL never appears.
    """
    try:
        return session.post(
            url,
            data=body,
            headers=dict(headers),
            timeout=timeout,
            allow_redirects=False,
            # Streamed: only the start of a body is ever read (body_excerpt), so a receiver
            # answering with megabytes costs nothing.
            stream=True,
        )
    except requests.RequestException as e:
        error = _request_failure(e, timeout, what)
    # Raised outside the except block, so neither __cause__ nor __context__ holds requests'
    # exception: its text contains the URL, i.e. the webhook's token (reliability.md §8).
    raise error


def _request_failure(
    exc: requests.RequestException, timeout: tuple[float, float], what: str
) -> NotifyError:
    if isinstance(exc, requests.Timeout) or failure_kind(exc) == "timeout":
        seconds = timeout[0] if isinstance(exc, requests.ConnectTimeout) else timeout[1]
        return NotifyError(
            f"{what} timed out after {seconds:g} s", permanent=False, reason="timeout"
        )
    if isinstance(exc, requests.ConnectionError):
        return NotifyError(f"could not connect to the {what}", permanent=False, reason="connection")
    return NotifyError(
        f"could not send to the {what} ({type(exc).__name__}); check its URL",
        permanent=True,
        reason="request",
    )


# --- the transport ----------------------------------------------------------------------


def encode_payload(payload: Mapping[str, Any]) -> bytes:
    """The exact body bytes sent (and signed): compact UTF-8 JSON."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class WebhookTransport:
    """POST ``message.payload`` as JSON to a configured URL."""

    channel = "webhook"

    def __init__(
        self,
        url: str,
        session: requests.Session,
        secret: str | None = None,
        *,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._url = url
        self._session = session
        self._secret = secret or None
        self.timeout = timeout
        # The signature timestamp must be the real time of sending: the one clock read here.
        self._clock = clock

    def __repr__(self) -> str:
        return f"WebhookTransport(signed={self._secret is not None})"

    def notify(self, message: Message) -> None:
        """POST the payload once; raise ``NotifyError`` unless the receiver answers 2xx."""
        try:
            body = encode_payload(message.payload)
        except (TypeError, ValueError) as e:
            raise NotifyError(
                f"the alert payload is not JSON-serialisable: {e}",
                permanent=True,
                reason="payload",
            ) from e
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

        with post(
            self._session,
            self._url,
            body=body,
            headers=headers,
            timeout=self.timeout,
            what="webhook",
        ) as response:
            status = response.status_code
            if 200 <= status < 300:
                log.debug(EVENT_SENT, dedupe_key=message.dedupe_key, status=status)
                return
            excerpt = body_excerpt(response, *url_secrets(self._url), self._secret)
            detail = f": {excerpt}" if excerpt else ""
            if status == 429:
                value = response.headers.get("Retry-After")
                raise NotifyError(
                    f"webhook receiver is rate limiting (429){detail}",
                    permanent=False,
                    reason="rate_limited",
                    retry_after=None if value is None else parse_retry_after(value),
                )
            if status >= 500:
                raise NotifyError(
                    f"webhook receiver failed ({status}){detail}",
                    permanent=False,
                    reason=f"http_{status}",
                )
            if 300 <= status < 400:
                raise NotifyError(
                    f"webhook answered {status} (a redirect); redirects are not followed — "
                    "configure the final URL",
                    permanent=True,
                    reason="redirect",
                )
            raise NotifyError(
                f"webhook receiver rejected the alert ({status}){detail}",
                permanent=True,
                reason=f"http_{status}",
            )


# --- URL checks at config load ----------------------------------------------------------


def _forbidden(address: str) -> str | None:
    """Why ``address`` may not be a webhook target (None: it is a public address)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if ip.is_private:
        return "a private address"
    if not ip.is_global or ip.is_multicast:
        return "not a public address"
    return None


def _basic_problems(url: str, what: str, *, allow_http: bool) -> tuple[list[str], str, int]:
    problems: list[str] = []
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return [f"the {what} URL is not a valid URL"], "", 0
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        problems.append(
            f"the {what} URL must use https"
            + (" (or http)" if allow_http else "")
            + f", not {parts.scheme or 'no scheme'}"
        )
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        problems.append(f"the {what} URL must not contain a user name or password")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        problems.append(f"the {what} URL has no host")
    return problems, host, port or (443 if parts.scheme == "https" else 80)


def validate_webhook_url(
    url: str, *, allow_private: bool = False, resolve: Resolver = socket.getaddrinfo
) -> list[str]:
    """Problems with a generic webhook URL (empty list: fine). Never quotes the URL itself.

    Only ``https`` (``http`` too when ``allow_private``, for tests and intranets); no user
    info; and unless ``allow_private``, no host that is, or resolves to, a loopback, private
    (RFC 1918, unique-local), link-local (``169.254.169.254``) or otherwise non-public address
    (OWASP SSRF cheat sheet; reliability.md §8). A name that does not resolve is a problem
    too. This is a config-time check; DNS may change later, so egress rules (a proxy, a K8s
    NetworkPolicy) remain the real fence — redirects are never followed, which closes the
    other path.
    """
    problems, host, port = _basic_problems(url, "webhook", allow_http=allow_private)
    if problems or allow_private:
        return problems
    try:
        literal: str | None = str(ipaddress.ip_address(host.split("%", 1)[0]))
    except ValueError:
        literal = None
    if literal is not None:
        why = _forbidden(literal)
        if why:
            return [f"the webhook host {host} is {why}"]
        return []
    try:
        infos = list(resolve(host, port, proto=socket.IPPROTO_TCP))
    except (OSError, UnicodeError):
        return [f"cannot resolve the webhook host {host}"]
    for info in infos:
        address = str(info[4][0])
        why = _forbidden(address)
        if why:
            return [f"the webhook host {host} resolves to {address}, {why}"]
    if not infos:
        return [f"cannot resolve the webhook host {host}"]
    return []


def validate_slack_webhook_url(url: str) -> list[str]:
    """Problems with a Slack incoming-webhook URL: https, host exactly ``hooks.slack.com``.

    An exact host match, not a prefix or suffix test: ``hooks.slack.com.evil.tld`` and
    ``evilhooks.slack.com`` are refused. The URL itself (a secret) is never quoted.
    """
    problems, host, port = _basic_problems(url, "Slack webhook", allow_http=False)
    if host and host.lower() != SLACK_HOST:
        problems.append(f"the Slack webhook host must be {SLACK_HOST}, not {host}")
    if host and port != 443:
        problems.append("the Slack webhook URL must not name a port other than 443")
    return problems


__all__ = [
    "DEFAULT_TIMEOUT",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookTransport",
    "body_excerpt",
    "encode_payload",
    "post",
    "sign",
    "url_secrets",
    "validate_slack_webhook_url",
    "validate_webhook_url",
    "verify_signature",
]
