"""The one interface every notification channel implements, and the base of the HTTP channels.

:class:`Transport` is the interface: ``notify(message)`` returns None or raises ``NotifyError``.
Every channel gets the same :class:`~recon_job.models.Message` (rendered once, stored in the
outbox, holding no secret) and picks the parts it needs.

:class:`HttpTransport` holds what the channels that POST one request per message (Slack, the
generic webhook) share, as healthchecks' ``HttpTransport`` does for its integrations:

* one POST, never following a redirect (a redirect to an internal address is an SSRF path,
  reliability.md §8) and never retried here — retries are the relay's, at its next pass;
* errors built from scratch, with nothing chained: ``requests`` puts the full URL in its
  exception texts, and the URL (a Slack webhook's path, a webhook's token) is a secret;
* the status rules: 429 → transient with ``retry_after`` from ``Retry-After``; 5xx, timeouts
  and connection errors → transient; 3xx → permanent ("redirect not followed"); other 4xx →
  permanent;
* the start of a response body, on one line, with the URL's parts and other secrets masked:
  the URL, its path and query whole, and every token-like path segment and query value
  (:func:`recon_job.logconfig.secret_parts`) — Slack answers a revoked hook with
  ``no_such_hook: token <the last path segment>``, and that text is stored and shown;
* unless :attr:`HttpOptions.allow_private`, every connection is checked at connect time: the
  address actually dialled must be public (:mod:`recon_job.notify.guard`, DNS rebinding).

:func:`mrkdwn_escape` is the one Slack mrkdwn escape: the Slack blocks and the templates'
``mrkdwn`` filter both use it.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Final, Protocol
from urllib.parse import unquote, urlsplit

import requests
from urllib3.exceptions import HTTPError

from recon_job.errors import NotifyError
from recon_job.http import failure_kind, parse_retry_after
from recon_job.logconfig import secret_parts
from recon_job.models import Message
from recon_job.notify.guard import blocked_by, public_only

#: Default ``(connect, read)`` timeout of an HTTP channel, in seconds.
DEFAULT_TIMEOUT: Final = (5.0, 10.0)
#: How long an error body is read for its excerpt, and how much of it.
EXCERPT_SECONDS: Final = 2.0
EXCERPT_BYTES: Final = 2000


class Transport(Protocol):
    """A notification channel.

    ``notify`` delivers ``message`` and returns None on success. It raises
    :class:`~recon_job.errors.NotifyError` on failure, with ``permanent=True`` when retrying
    cannot help (a 404 webhook, a refused login, a rejected recipient) and ``retry_after`` when
    the receiver named a wait (Slack 429). Every attempt has a timeout; nothing here retries in a
    loop: retries are the relay's, at its next pass.
    """

    #: ``email``, ``slack`` or ``webhook``.
    channel: str

    def notify(self, message: Message) -> None:
        """Deliver ``message``; raise ``NotifyError`` on failure."""
        ...


def mrkdwn_escape(value: object) -> str:
    """Escape ``&``, ``<`` and ``>`` for Slack mrkdwn, so data can't form links or @mentions.

    Slack reads ``<!channel>`` and ``<https://x|text>`` as control sequences; its docs ask for
    exactly these three characters to be escaped in message text.
    """
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def url_secrets(url: str) -> tuple[str, ...]:
    """The parts of ``url`` to mask in anything shown, longest first.

    The URL, its path and its query whole (however short), and each credential on its own:
    every token-like path segment and query value (:func:`recon_job.logconfig.secret_parts`),
    also as a receiver may quote them percent-decoded.
    """
    try:
        parts = urlsplit(url)
        whole = [url, parts.path, parts.query]
    except ValueError:
        whole = [url]
    found = [*whole, *secret_parts(url)]
    found += [unquote(p) for p in found]
    unique = dict.fromkeys(p for p in found if p and len(p) > 1)
    return tuple(sorted(unique, key=len, reverse=True))


def body_excerpt(
    response: requests.Response,
    *secrets: str | None,
    limit: int = 200,
    seconds: float = EXCERPT_SECONDS,
) -> str:
    """The start of a response body on one line, with ``secrets`` (URL, its path…) masked.

    Receivers echo request paths in error pages ("Cannot POST /hooks/<token>"), so the URL's
    parts are scrubbed even from what the server said. Read for at most about ``seconds``: the
    read timeout bounds each socket read, not the body, and a receiver dripping its error page a
    byte at a time held a run for a quarter of an hour.
    """
    head = _head(response, EXCERPT_BYTES, time.monotonic() + seconds)
    text = " ".join(head.decode("utf-8", "replace").split())
    for secret in sorted((s for s in secrets if s and len(s) > 1), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text[:limit]


def _head(response: requests.Response, size: int, deadline: float) -> bytes:
    """Up to ``size`` bytes of the body, as they come, until ``deadline``."""
    raw = response.raw
    read1 = getattr(raw, "read1", None)
    try:
        if read1 is None:  # not urllib3 (a test double): its first chunk
            return next(response.iter_content(size), b"")
        parts: list[bytes] = []
        got = 0
        while got < size and time.monotonic() < deadline:
            chunk = read1(size - got, decode_content=True)
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)
    except (requests.RequestException, OSError, HTTPError):
        # urllib3's read errors are not requests' until requests wraps them.
        return b""  # a body cut short says nothing more than the status already does


@dataclass(frozen=True)
class HttpOptions:
    """How an HTTP channel posts: its timeouts and which addresses it may reach."""

    #: ``(connect, read)`` seconds of every POST.
    timeout: tuple[float, float] = DEFAULT_TIMEOUT
    #: Reach private, loopback and link-local addresses too (an intranet receiver, tests).
    #: Off: every connection is checked at connect time (:mod:`recon_job.notify.guard`).
    allow_private: bool = False


#: Default timeouts, public addresses only.
DEFAULT_HTTP: Final = HttpOptions()


@dataclass(frozen=True)
class Wording:
    """What an HTTP channel says when a POST fails, outcome by outcome.

    Each text is a ``str.format`` template: ``{status}`` is the HTTP status, ``{detail}`` the
    masked start of the body as ``": <excerpt>"`` (empty when there is none) and ``{seconds}``
    the wait after a 429. None of them may contain the URL.
    """

    #: The receiver in connection errors: "could not connect to the <receiver>".
    receiver: str
    #: A 429.
    rate_limited: str
    #: A 5xx.
    server_error: str
    #: A 3xx (never followed).
    redirect: str
    #: Any other status that did not deliver.
    rejected: str


class HttpTransport(abc.ABC):
    """Base of a channel that POSTs one request per message to a URL that is a secret.

    The session is the channel's own: unless ``options.allow_private``, its adapters are
    replaced by ones that check every address dialled (:func:`recon_job.notify.guard.public_only`).

    A subclass sets ``channel`` and ``wording``, builds its body in :meth:`notify`, sends it
    with :meth:`post` and raises :meth:`failure` for a response that did not deliver. It may
    name more secrets to mask (:meth:`secrets`), its own reasons (:meth:`reason`) and a wait
    for a 429 without ``Retry-After`` (``default_retry_after``).
    """

    #: ``slack`` or ``webhook``.
    channel: str
    #: What the channel says when a POST fails.
    wording: ClassVar[Wording]
    #: Seconds to wait after a 429 that names no (valid) ``Retry-After``; None: no wait named.
    default_retry_after: ClassVar[float | None] = None

    def __init__(
        self, url: str, session: requests.Session, options: HttpOptions = DEFAULT_HTTP
    ) -> None:
        self._url = url
        self._session = session
        #: ``(connect, read)`` seconds of every POST.
        self.timeout = options.timeout
        #: Private and loopback addresses allowed (else checked on every connection).
        self.allow_private = options.allow_private
        if not options.allow_private:
            # The config-time URL check cannot see what DNS answers later (reliability.md §8).
            public_only(session)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"  # never the URL: it is a secret

    @abc.abstractmethod
    def notify(self, message: Message) -> None:
        """Deliver ``message``; raise ``NotifyError`` on failure."""

    def secrets(self) -> tuple[str, ...]:
        """What to mask in anything shown: the URL's parts, plus a subclass's own secrets."""
        return url_secrets(self._url)

    def post(self, body: bytes, headers: Mapping[str, str]) -> requests.Response:
        """POST ``body`` once, without following redirects; connection faults → ``NotifyError``.

        The response is streamed: only the start of a body is ever read (:meth:`excerpt`), so a
        receiver answering with megabytes costs nothing. Use it as a context manager.
        """
        try:
            return self._session.post(
                self._url,
                data=body,
                headers=dict(headers),
                timeout=self.timeout,
                allow_redirects=False,
                stream=True,
            )
        except requests.RequestException as e:
            error = _request_failure(e, self.timeout, self.wording.receiver)
        # Raised outside the except block, so neither __cause__ nor __context__ holds requests'
        # exception: its text contains the URL, i.e. the channel's token (reliability.md §8).
        raise error

    def excerpt(self, response: requests.Response) -> str:
        """The start of ``response``'s body on one line, every secret masked."""
        return body_excerpt(response, *self.secrets())

    def reason(self, status: int, excerpt: str) -> str:
        """The machine-readable reason of a 5xx or a rejection: ``http_<status>``."""
        return f"http_{status}"

    def failure(self, response: requests.Response, excerpt: str) -> NotifyError:
        """The error for ``response``, which did not deliver; ``excerpt`` is its masked body.

        429 → transient with ``retry_after``; 5xx → transient; 3xx → permanent (redirects are
        not followed); anything else → permanent.
        """
        status = response.status_code
        words = {"status": status, "detail": f": {excerpt}" if excerpt else ""}
        if status == 429:
            value = response.headers.get("Retry-After")
            seconds = None if value is None else parse_retry_after(value)
            if seconds is None:
                seconds = self.default_retry_after
            return NotifyError(
                self.wording.rate_limited.format(**words, seconds=seconds),
                permanent=False,
                reason="rate_limited",
                retry_after=seconds,
            )
        if status >= 500:
            return NotifyError(
                self.wording.server_error.format(**words),
                permanent=False,
                reason=self.reason(status, excerpt),
            )
        if 300 <= status < 400:
            return NotifyError(
                self.wording.redirect.format(**words), permanent=True, reason="redirect"
            )
        return NotifyError(
            self.wording.rejected.format(**words),
            permanent=True,
            reason=self.reason(status, excerpt),
        )


def _request_failure(
    exc: requests.RequestException, timeout: tuple[float, float], receiver: str
) -> NotifyError:
    blocked = blocked_by(exc)
    if blocked is not None:
        where = (
            f"address {blocked.address} is"
            if blocked.host == blocked.address
            else f"host {blocked.host} resolved to {blocked.address},"
        )
        return NotifyError(
            f"not sent: the {receiver} {where} {blocked.why}, when connecting (a DNS answer "
            "that changed since the settings were checked?); set allow_private only for a "
            "receiver on your own network",
            permanent=True,
            reason="forbidden_address",
        )
    if isinstance(exc, requests.Timeout) or failure_kind(exc) == "timeout":
        seconds = timeout[0] if isinstance(exc, requests.ConnectTimeout) else timeout[1]
        return NotifyError(
            f"{receiver} timed out after {seconds:g} s", permanent=False, reason="timeout"
        )
    if isinstance(exc, requests.ConnectionError):
        return NotifyError(
            f"could not connect to the {receiver}", permanent=False, reason="connection"
        )
    return NotifyError(
        f"could not send to the {receiver} ({type(exc).__name__}); check its URL",
        permanent=True,
        reason="request",
    )


__all__ = [
    "DEFAULT_HTTP",
    "DEFAULT_TIMEOUT",
    "HttpOptions",
    "HttpTransport",
    "Transport",
    "Wording",
    "body_excerpt",
    "mrkdwn_escape",
    "url_secrets",
]
