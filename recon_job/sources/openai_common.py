"""What the OpenAI Usage and Costs sources share: options, paging, HTTP and error translation.

Both endpoints return the same envelope (reference §1.4): a ``page`` holding ``bucket``s, each
with a list of ``results``, paged with ``has_more``/``next_page``. This module fetches every
page of one endpoint for one window, checks the envelope, and turns every failure into a
:class:`~recon_job.errors.UsageApiError` whose message says what to do and never contains the
admin key. Parsing the results is left to ``openai_usage`` and ``openai_costs``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Final

import requests
import structlog
import urllib3.exceptions

from recon_job.errors import ConfigError, UsageApiError
from recon_job.http import Deadline, failure_kind, max_retry_after, parse_retry_after, timeout_for
from recon_job.models import Window

log = structlog.get_logger(__name__)

#: Logged once per page received.
EVENT_PAGE_FETCHED: Final = "openai.page.fetched"
#: Logged when a request to OpenAI fails for good (after the adapter's retries).
EVENT_REQUEST_FAILED: Final = "openai.request.failed"

#: The ``group_by`` values recon-job understands (both endpoints also accept more).
GROUP_BY_KEYS: Final = frozenset({"model", "project_id", "api_key_id"})
#: A successful page bigger than this is refused (a 31-day page is a few hundred KiB at most).
MAX_BODY_BYTES: Final = 64 * 1024 * 1024
#: How much of an error body is read to find OpenAI's error message.
MAX_ERROR_BODY_BYTES: Final = 64 * 1024

_KEY_LIKE = re.compile(r"sk-[A-Za-z0-9_\-*.…]{3,}")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")


@dataclass(frozen=True, kw_only=True)
class OpenAIOptions:
    """How to reach OpenAI's organization Usage and Costs APIs, and what to ask for."""

    #: API root, without a trailing slash (``OPENAI_BASE_URL`` in tests and proxies).
    base_url: str = "https://api.openai.com/v1"
    #: Organization admin key (``sk-admin-…``) with ``api.usage.read``. Secret: left out of repr.
    admin_key: str = field(repr=False)
    #: Only count these projects (``project_ids[]`` filter); empty means the whole organization.
    project_ids: tuple[str, ...] = ()
    #: Only count these API key ids (``api_key_ids[]`` filter); empty means every key.
    api_key_ids: tuple[str, ...] = ()
    #: Dimensions to group by: ``model`` and optionally ``project_id``, ``api_key_id``.
    group_by: tuple[str, ...] = ("model",)
    #: Seconds to wait for a TCP connection.
    connect_timeout: float = 5.0
    #: Seconds to wait between bytes of the response (not a wall-clock limit).
    read_timeout: float = 30.0
    #: Refuse to fetch more pages than this for one window (a pagination loop guard).
    max_pages: int = 1000

    def __post_init__(self) -> None:
        problems = []
        # Secret files usually end in a newline; anything else odd would make requests reject
        # the header with the key quoted in its message, so refuse it here without echoing it.
        key = self.admin_key.strip()
        if not key:
            problems.append("the OpenAI admin key is empty; set OPENAI_ADMIN_KEY")
        elif not all("!" <= char <= "~" for char in key):
            problems.append(
                "the OpenAI admin key contains spaces or non-ASCII characters; "
                "check OPENAI_ADMIN_KEY"
            )
        unknown = sorted(set(self.group_by) - GROUP_BY_KEYS)
        if unknown:
            problems.append(
                f"unknown OpenAI group_by value(s) {unknown}; use {sorted(GROUP_BY_KEYS)}"
            )
        if not (self.connect_timeout > 0 and self.read_timeout > 0):
            problems.append("OpenAI connect and read timeouts must be positive")
        if self.max_pages < 1:
            problems.append("OpenAI max_pages must be at least 1")
        if not self.base_url.startswith(("https://", "http://")):
            problems.append(f"OpenAI base_url must be an http(s) URL, got {self.base_url!r}")
        if problems:
            raise ConfigError(problems)
        # Config loaders may hand over lists; keep the dataclass hashable and immutable.
        object.__setattr__(self, "admin_key", key)
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        object.__setattr__(self, "project_ids", tuple(self.project_ids))
        object.__setattr__(self, "api_key_ids", tuple(self.api_key_ids))
        object.__setattr__(self, "group_by", tuple(self.group_by))


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


def _short(raw: bytes, secret: str, limit: int = 60) -> str:
    """A short, printable, scrubbed prefix of a body, for a message — never a dump."""
    text = raw[: limit * 4].decode("utf-8", errors="replace")
    text = _UNPRINTABLE.sub(" ", text).strip()
    text = scrub(text, secret)
    return text[:limit] + ("…" if len(text) > limit else "")


@dataclass(frozen=True, slots=True)
class Bucket:
    """One time bucket of a page."""

    #: Bucket start, Unix seconds (00:00 UTC for aligned daily buckets).
    start_time: int
    #: The bucket's results, one per group-by combination.
    results: tuple[Mapping[str, Any], ...]

    @property
    def day(self) -> date:
        """The UTC day the bucket starts on."""
        return datetime.fromtimestamp(self.start_time, tz=UTC).date()


@dataclass(frozen=True, slots=True)
class Fetched:
    """Every bucket of every page of one endpoint for one window."""

    buckets: tuple[Bucket, ...]
    #: How many pages were fetched.
    pages: int


def window_params(window: Window, *, limit: int) -> list[tuple[str, str]]:
    """``start_time``/``end_time`` on 00:00 UTC (end exclusive), daily buckets, ``limit``.

    Aligned times matter: an unaligned ``start_time`` gives a partial first usage bucket but an
    aligned first costs bucket (reference §1.8), and the two would not compare.
    """
    return [
        ("start_time", str(int(window.start_at.timestamp()))),
        ("end_time", str(int(window.end_at.timestamp()))),
        ("bucket_width", "1d"),
        ("limit", str(limit)),
    ]


def array_params(name: str, values: Sequence[str]) -> list[tuple[str, str]]:
    """``name[]=v`` pairs: the brackets form the official SDK sends (reference §1.1)."""
    return [(f"{name}[]", value) for value in values]


def schema_error(endpoint: str, problem: str) -> UsageApiError:
    """A transient error for a page whose results do not have the documented fields."""
    return UsageApiError(
        f"OpenAI {endpoint} API returned data recon-job cannot read: {problem}. "
        "Nothing was counted for this window; if this persists, OpenAI changed the format.",
        permanent=False,
        reason="schema",
    )


def _describe(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}"


def require_int(result: Mapping[str, Any], name: str, endpoint: str) -> int:
    """The integer field ``name`` of ``result``; missing or not an integer is a schema error."""
    if name not in result:
        raise schema_error(endpoint, f"a result lacks the required field {name!r}")
    return optional_int(result, name, endpoint)


def optional_int(result: Mapping[str, Any], name: str, endpoint: str) -> int:
    """The integer field ``name``, 0 when missing or null (older data lacks newer fields)."""
    value = result.get(name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise schema_error(
            endpoint, f"field {name!r} should be a non-negative integer, got {_describe(value)}"
        )
    return value


def optional_str(result: Mapping[str, Any], name: str, endpoint: str) -> str | None:
    """The string-or-null field ``name`` (a group-by key); anything else is a schema error."""
    value = result.get(name)
    if value is None or isinstance(value, str):
        return value
    raise schema_error(
        endpoint, f"field {name!r} should be a string or null, got {_describe(value)}"
    )


class OpenAIClient:
    """Fetches every page of one OpenAI organization endpoint, translating every failure."""

    def __init__(
        self,
        options: OpenAIOptions,
        session: requests.Session,
        deadline: Deadline | None = None,
    ) -> None:
        self.options = options
        self.session = session
        self.deadline = deadline

    def fetch(self, *, endpoint: str, path: str, params: Sequence[tuple[str, str]]) -> Fetched:
        """All buckets of ``GET {base_url}{path}?{params}``, following ``next_page`` to the end.

        ``endpoint`` names the API in messages ("Usage", "Costs"). Raises ``UsageApiError`` on
        any failure; a partial result is never returned.
        """
        options = self.options
        url = f"{options.base_url}{path}"
        cursor: str | None = None
        seen: set[str] = set()
        pages = 0
        buckets: list[Bucket] = []
        while True:
            if pages >= options.max_pages:
                raise UsageApiError(
                    f"OpenAI {endpoint} API still had more pages after {options.max_pages}; "
                    "stopping (pagination loop guard, max_pages)",
                    permanent=False,
                    reason="pagination_loop",
                )
            if self.deadline is not None:
                self.deadline.check(f"fetching page {pages + 1} of the OpenAI {endpoint} API")
            query = [*params, ("page", cursor)] if cursor is not None else list(params)
            body = self._get_json(url, query, endpoint)
            page_buckets, has_more, next_page = _parse_page(body, endpoint, options.admin_key)
            pages += 1
            buckets.extend(page_buckets)
            log.info(
                EVENT_PAGE_FETCHED,
                endpoint=endpoint,
                page=pages,
                buckets=len(page_buckets),
                has_more=has_more,
            )
            if not has_more:
                return Fetched(buckets=tuple(buckets), pages=pages)
            if not next_page:
                raise UsageApiError(
                    f"OpenAI {endpoint} API said has_more=true but gave no next_page cursor "
                    f"(page {pages}); the data would be incomplete",
                    permanent=False,
                    reason="bad_response",
                )
            if next_page in seen or next_page == cursor:
                raise UsageApiError(
                    f"OpenAI {endpoint} API returned the same next_page cursor twice "
                    f"(page {pages}); stopping a pagination loop",
                    permanent=False,
                    reason="pagination_loop",
                )
            seen.add(next_page)
            cursor = next_page

    def _get_json(self, url: str, query: list[tuple[str, str]], endpoint: str) -> Any:
        options = self.options
        timeout = timeout_for(self.deadline, options.connect_timeout, options.read_timeout)
        try:
            response = self.session.get(
                url,
                params=query,
                headers={
                    "Authorization": f"Bearer {options.admin_key}",
                    "Accept": "application/json",
                },
                timeout=timeout,
                stream=True,
                # Never follow a redirect with the admin key; OpenAI does not redirect.
                allow_redirects=False,
            )
        except requests.RequestException as e:
            raise self._transport_error(e, endpoint) from e
        with response:
            ok = response.status_code == 200
            try:
                raw = self._read_body(response, endpoint, limit=MAX_BODY_BYTES if ok else None)
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as e:
                # Raw reads raise urllib3's errors (ReadTimeoutError, ProtocolError) unwrapped.
                raise self._transport_error(e, endpoint) from e
            if not ok:
                raise self._status_error(response, raw, endpoint, url)
        content_type = response.headers.get("Content-Type", "?")
        try:
            # Decimal keeps every digit of amounts like 0.0034000000000000000000000000000000.
            return json.loads(raw, parse_float=Decimal)
        except (ValueError, RecursionError) as e:
            raise UsageApiError(
                f"OpenAI {endpoint} API answered 200 with a body that is not JSON "
                f"(content-type {_short(content_type.encode(), options.admin_key)!r}, "
                f"{len(raw)} bytes, starting {_short(raw, options.admin_key)!r}); "
                "a proxy or captive portal may be in the way",
                permanent=False,
                reason="bad_response",
                status=200,
            ) from e

    def _read_body(self, response: requests.Response, endpoint: str, *, limit: int | None) -> bytes:
        # Read what has arrived (read1) and check the deadline between reads, so the deadline
        # also bounds a server that drips bytes faster than the read timeout: timeouts "are not
        # wall clock" (requests docs; reliability.md R08). read1 needs urllib3 >= 2.3.
        raw = response.raw
        read = getattr(raw, "read1", None)
        chunks: list[bytes] = []
        size = 0
        while True:
            if read is not None:
                chunk = read(64 * 1024, decode_content=True)
            else:  # pragma: no cover - older urllib3
                chunk = raw.read(64 * 1024, decode_content=True)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if limit is None and size >= MAX_ERROR_BODY_BYTES:
                break
            if limit is not None and size > limit:
                raise UsageApiError(
                    f"OpenAI {endpoint} API sent a page larger than {limit} bytes; refusing it",
                    permanent=False,
                    reason="bad_response",
                    status=response.status_code,
                )
            if self.deadline is not None:
                self.deadline.check(f"reading a response of the OpenAI {endpoint} API")
        return b"".join(chunks)

    def _transport_error(self, exc: Exception, endpoint: str) -> UsageApiError:
        kind = failure_kind(exc)
        if kind != "deadline" and self.deadline is not None and self.deadline.expired:
            kind = "deadline"
        what = {
            "deadline": "gave up at the run's deadline",
            "timeout": "timed out",
            "connection": "could not be reached",
        }[kind]
        detail = scrub(str(exc), self.options.admin_key)[:300]
        log.warning(EVENT_REQUEST_FAILED, endpoint=endpoint, reason=kind, error=type(exc).__name__)
        return UsageApiError(
            f"OpenAI {endpoint} API {what} at {self.options.base_url} "
            f"({type(exc).__name__}: {detail})",
            permanent=False,
            reason=kind,
        )

    def _status_error(
        self, response: requests.Response, raw: bytes, endpoint: str, url: str
    ) -> UsageApiError:
        status = response.status_code
        key = self.options.admin_key
        detail = _error_detail(raw, key)
        suffix = f": {detail}" if detail else ""
        header = response.headers.get("Retry-After")
        delay = parse_retry_after(header) if header is not None else None
        cap = max_retry_after(self.session, url)
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
                f"follow with the admin key; check the base URL {self.options.base_url}"
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
            scrub(message, key, key_like=False), permanent=permanent, reason=reason, status=status
        )


def _error_detail(raw: bytes, secret: str) -> str:
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


def _parse_page(body: Any, endpoint: str, secret: str) -> tuple[list[Bucket], bool, str | None]:
    """Check the page envelope (reference §1.4); return its buckets, has_more and next_page."""

    def bad(problem: str) -> UsageApiError:
        return UsageApiError(
            f"OpenAI {endpoint} API answered 200 but not with a page of buckets ({problem})",
            permanent=False,
            reason="bad_response",
            status=200,
        )

    if not isinstance(body, dict):
        return_type = type(body).__name__
        raise bad(f"a JSON {return_type} instead of an object")
    if body.get("object", "page") != "page":
        raise bad(f"object is {scrub(str(body.get('object'))[:40], secret)!r}")
    data = body.get("data")
    if not isinstance(data, list):
        raise bad("no data list")
    next_page = body.get("next_page")
    if next_page is not None and not isinstance(next_page, str):
        raise bad("next_page is not a string")
    has_more = body.get("has_more", bool(next_page))
    if not isinstance(has_more, bool):
        raise bad("has_more is not a boolean")
    buckets = []
    for item in data:
        if not isinstance(item, dict):
            raise schema_error(endpoint, "a bucket is not an object")
        start = item.get("start_time")
        if isinstance(start, bool) or not isinstance(start, int):
            raise schema_error(endpoint, f"a bucket's start_time is {_describe(start)}")
        # The spec named the list ``result`` from 2024-12 to 2025-06 (reference §1.4).
        results = item["results"] if "results" in item else item.get("result")
        if not isinstance(results, list):
            raise schema_error(endpoint, "a bucket has no results list")
        for result in results:
            if not isinstance(result, dict):
                raise schema_error(endpoint, "a result is not an object")
        bucket = Bucket(start_time=start, results=tuple(results))
        try:
            bucket.day  # noqa: B018 - an out-of-range timestamp must fail here, as a schema error
        except (OverflowError, OSError, ValueError) as e:
            raise schema_error(endpoint, f"a bucket's start_time {start} is not a date") from e
        buckets.append(bucket)
    return buckets, has_more, next_page
