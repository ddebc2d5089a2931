"""How a failed OpenAI request is told: every failure as a UsageApiError, the admin key kept out.

Each function here turns one kind of failure — a transport error, an HTTP status, a result
without the documented fields — into a :class:`~recon_job.errors.UsageApiError` whose message
says what to do. Text from the network is shortened, made printable and scrubbed of anything
key-shaped before it is quoted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Final

import requests
import structlog

from recon_job.errors import UsageApiError
from recon_job.http import Deadline, failure_kind, parse_retry_after

log = structlog.get_logger(__name__)

#: Logged when a request to OpenAI fails for good (after the adapter's retries).
EVENT_REQUEST_FAILED: Final = "openai.request.failed"

_KEY_LIKE = re.compile(r"sk-[A-Za-z0-9_\-*.…]{3,}")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")


def scrub(text: str, secret: str, *, key_like: bool = True) -> str:
    """``text`` without ``secret``, its last 8 characters and (``key_like``) key-shaped tokens.

    OpenAI echoes part of a rejected key in its 401 message ("Incorrect API key provided:
    sk-admin-****abcd"), so key-shaped tokens in text from the network are masked even when
    they are not exactly ours.
    """
    if secret:
        text = text.replace(secret, "[redacted]")
        if len(secret) >= 8:
            text = text.replace(secret[-8:], "[redacted]")
    return _KEY_LIKE.sub("sk-[redacted]", text) if key_like else text


def short(raw: bytes, secret: str, limit: int = 60) -> str:
    """A short, printable, scrubbed prefix of a body, for a message — never a dump."""
    text = raw[: limit * 4].decode("utf-8", errors="replace")
    text = _UNPRINTABLE.sub(" ", text).strip()
    text = scrub(text, secret)
    return text[:limit] + ("…" if len(text) > limit else "")


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What a message about a failed request names, and the key it must never show."""

    #: The API's name in messages ("Usage", "Costs").
    endpoint: str
    #: Where the request went (the configured base URL).
    base_url: str
    #: The admin key: kept out of every message.
    secret: str


def schema_error(endpoint: str, problem: str) -> UsageApiError:
    """A transient error for a page whose results do not have the documented fields."""
    return UsageApiError(
        f"OpenAI {endpoint} API returned data recon-job cannot read: {problem}. "
        "Nothing was counted for this window; if this persists, OpenAI changed the format.",
        permanent=False,
        reason="schema",
    )


def out_of_range_error(endpoint: str, problem: str) -> UsageApiError:
    """A permanent error for a figure no real answer holds (``2**63`` tokens, ``1e999999`` USD).

    Permanent, unlike :func:`schema_error`: the answer has the documented shape, and asking
    again returns the same stored figure. Counting it would overflow the run's sums and the
    history database's integers.
    """
    return UsageApiError(
        f"OpenAI {endpoint} API returned a figure recon-job cannot count: {problem}. Nothing "
        "was counted for this window; retrying returns the same figure, so report it to OpenAI.",
        permanent=True,
        reason="schema",
    )


def describe(value: object) -> str:
    """A value's type and the start of its repr, for a schema error."""
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}"


def transport_error(
    exc: Exception, context: RequestContext, *, deadline: Deadline | None
) -> UsageApiError:
    """The error of a request that got no response: deadline, timeout or no connection."""
    endpoint = context.endpoint
    kind = failure_kind(exc)
    if kind != "deadline" and deadline is not None and deadline.expired:
        kind = "deadline"
    what = {
        "deadline": "gave up at the run's deadline",
        "timeout": "timed out",
        "connection": "could not be reached",
    }[kind]
    log.warning(EVENT_REQUEST_FAILED, endpoint=endpoint, reason=kind, error=type(exc).__name__)
    return UsageApiError(
        f"OpenAI {endpoint} API {what} at {context.base_url}: {_cause(exc, context.secret)}; "
        "nothing was counted for this window (retry later: exit 3 is transient)",
        permanent=False,
        reason=kind,
    )


# The innermost urllib3/OS cause names what went wrong far better than requests' own text,
# which repeats the whole pool and URL and is cut off mid-word when shortened.
_CAUSES = (
    ("NameResolutionError", "cannot resolve the host name (DNS)"),
    ("ConnectionRefusedError", "connection refused"),
    ("ConnectTimeoutError", "no answer while connecting"),
    ("ReadTimeoutError", "no answer within the read timeout"),
    ("SSLError", "TLS handshake failed (certificate or proxy?)"),
    ("ProxyError", "the proxy refused or failed"),
    ("RemoteDisconnected", "the server closed the connection"),
)


def _cause(exc: BaseException, secret: str) -> str:
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__ or _reason(seen)
    names = " ".join(type(e).__name__ for e in chain) + " " + " ".join(str(e) for e in chain)
    for marker, text in _CAUSES:
        if marker in names:
            return text
    return scrub(f"{type(chain[-1]).__name__}: {chain[-1]}", secret)[:200]


def _reason(exc: BaseException) -> BaseException | None:
    # urllib3's MaxRetryError keeps its cause in .reason, not in __cause__.
    reason = getattr(exc, "reason", None)
    if isinstance(reason, BaseException):
        return reason
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], BaseException) else None


def status_error(
    response: requests.Response, raw: bytes, context: RequestContext, *, cap: float
) -> UsageApiError:
    """The error of a non-200 response; ``cap`` is the longest Retry-After worth waiting for."""
    endpoint, base_url, secret = context.endpoint, context.base_url, context.secret
    status = response.status_code
    detail = error_detail(raw, secret)
    suffix = f": {detail}" if detail else ""
    header = response.headers.get("Retry-After")
    delay = parse_retry_after(header) if header is not None else None
    permanent = True
    if status in (401, 403):
        reason = "unauthorized" if status == 401 else "forbidden"
        message = (
            f"OpenAI {endpoint} API refused the admin key (HTTP {status}{suffix}). "
            "It needs an organization admin key (sk-admin-…) with the api.usage.read "
            "scope; an ordinary project key does not work. Check OPENAI_ADMIN_KEY."
        )
    elif status in (429, 503) and delay is not None and delay > cap:
        permanent, reason = False, "rate_limited_too_long"
        message = (
            f"OpenAI {endpoint} API is rate limited for {delay:.0f} s (HTTP {status}), "
            f"beyond the {cap:g} s cap recon-job will wait; try again later{suffix}"
        )
    elif status == 429 and delay is None:
        # OpenAI omits Retry-After on 429s that "require user action" (spec), e.g.
        # insufficient_quota: retrying cannot help until someone fixes billing.
        reason = "quota_exhausted"
        message = (
            f"OpenAI {endpoint} API returned HTTP 429 without Retry-After{suffix}. "
            "The organization's quota or billing needs attention; retrying will not help."
        )
    elif status == 429:
        permanent, reason = False, "rate_limited"
        message = f"OpenAI {endpoint} API still rate limited after retries (HTTP 429{suffix})"
    elif status >= 500:
        permanent, reason = False, "server_error"
        message = f"OpenAI {endpoint} API failed with HTTP {status} after retries{suffix}"
    elif 300 <= status < 400:
        reason = f"http_{status}"
        message = (
            f"OpenAI {endpoint} API redirected (HTTP {status}), which recon-job does not "
            f"follow with the admin key; check the base URL {base_url}"
        )
    elif status >= 400:
        reason = f"http_{status}"
        message = f"OpenAI {endpoint} API rejected the request with HTTP {status}{suffix}"
    else:
        permanent, reason = False, "bad_response"
        message = f"OpenAI {endpoint} API answered with unexpected HTTP {status}"
    log.warning(EVENT_REQUEST_FAILED, endpoint=endpoint, reason=reason, status=status)
    # ``detail`` is scrubbed already; this pass only guards against our own key.
    return UsageApiError(
        scrub(message, secret, key_like=False), permanent=permanent, reason=reason, status=status
    )


def error_detail(raw: bytes, secret: str) -> str:
    """``type/code: message`` from an OpenAI ``{"error": {...}}`` body, scrubbed and short."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return ""
    labels = [
        str(error[name])
        for name in ("type", "code")
        if isinstance(error.get(name), str) and error[name]
    ]
    label = "/".join(dict.fromkeys(labels))
    message = error.get("message")
    text = label
    if isinstance(message, str) and message:
        text = f"{label}: {message}" if label else message
    text = scrub(_UNPRINTABLE.sub(" ", text).strip(), secret)
    return text[:300]
