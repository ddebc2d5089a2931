"""Fetching one OpenAI organization endpoint: every page of one window, the envelope checked.

Both endpoints return the same envelope (reference §1.4): a ``page`` holding ``bucket``s, each
with a list of ``results``, paged with ``has_more``/``next_page``. :class:`OpenAIClient` follows
the pages to the end, bounds the body size and the run's deadline, and turns every failure into
a :class:`~recon_job.errors.UsageApiError` (worded in :mod:`~recon_job.sources.openai.errors`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Final

import requests
import structlog
import urllib3.exceptions

from recon_job.errors import DeadlineExceeded, UsageApiError
from recon_job.http import Deadline, max_retry_after, timeout_for
from recon_job.sources.openai.errors import (
    RequestContext,
    describe,
    schema_error,
    scrub,
    short,
    status_error,
    transport_error,
)
from recon_job.sources.openai.options import OpenAIOptions

log = structlog.get_logger(__name__)

#: Logged once per page received.
EVENT_PAGE_FETCHED: Final = "openai.page.fetched"
#: A successful page bigger than this is refused (a 31-day page is a few hundred KiB at most).
MAX_BODY_BYTES: Final = 64 * 1024 * 1024
#: How much of an error body is read to find OpenAI's error message.
MAX_ERROR_BODY_BYTES: Final = 64 * 1024


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
        """All buckets of ``GET {base_url}{path}?{params}``; see :meth:`_fetch`."""
        try:
            return self._fetch(endpoint=endpoint, path=path, params=params)
        except DeadlineExceeded as e:  # the HTTP layer's, reported as this API's error
            raise UsageApiError(str(e), permanent=False, reason=e.reason) from e

    def _fetch(self, *, endpoint: str, path: str, params: Sequence[tuple[str, str]]) -> Fetched:
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

    def get_json(self, path: str, query: Sequence[tuple[str, str]], *, endpoint: str) -> Any:
        """The JSON body of one GET of ``path`` under the base URL (the Admin API's lists):
        the same request, limits and errors as a page (``UsageApiError`` with the status)."""
        return self._get_json(f"{self.options.base_url}{path}", list(query), endpoint)

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
                raise status_error(
                    response,
                    raw,
                    self._context(endpoint),
                    cap=max_retry_after(self.session, url),
                )
        content_type = response.headers.get("Content-Type", "?")
        try:
            # Decimal keeps every digit of amounts like 0.0034000000000000000000000000000000.
            return json.loads(raw, parse_float=Decimal)
        except (ValueError, RecursionError) as e:
            raise UsageApiError(
                f"OpenAI {endpoint} API answered 200 with a body that is not JSON "
                f"(content-type {short(content_type.encode(), options.admin_key)!r}, "
                f"{len(raw)} bytes, starting {short(raw, options.admin_key)!r}); "
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
        return transport_error(exc, self._context(endpoint), deadline=self.deadline)

    def _context(self, endpoint: str) -> RequestContext:
        return RequestContext(endpoint, self.options.base_url, self.options.admin_key)


def _parse_page(body: Any, endpoint: str, secret: str) -> tuple[list[Bucket], bool, str | None]:
    """Check the page envelope (reference §1.4); return its buckets, has_more and next_page."""
    if not isinstance(body, dict):
        raise _not_a_page(endpoint, f"a JSON {type(body).__name__} instead of an object")
    if body.get("object", "page") != "page":
        raise _not_a_page(endpoint, f"object is {scrub(str(body.get('object'))[:40], secret)!r}")
    data = body.get("data")
    if not isinstance(data, list):
        raise _not_a_page(endpoint, "no data list")
    next_page = body.get("next_page")
    if next_page is not None and not isinstance(next_page, str):
        raise _not_a_page(endpoint, "next_page is not a string")
    has_more = body.get("has_more", bool(next_page))
    if not isinstance(has_more, bool):
        raise _not_a_page(endpoint, "has_more is not a boolean")
    return [_bucket(item, endpoint) for item in data], has_more, next_page


def _not_a_page(endpoint: str, problem: str) -> UsageApiError:
    return UsageApiError(
        f"OpenAI {endpoint} API answered 200 but not with a page of buckets ({problem})",
        permanent=False,
        reason="bad_response",
        status=200,
    )


def _bucket(item: Any, endpoint: str) -> Bucket:
    """One bucket of a page's ``data``, checked; a schema error when it is not one."""
    if not isinstance(item, dict):
        raise schema_error(endpoint, "a bucket is not an object")
    start = item.get("start_time")
    if isinstance(start, bool) or not isinstance(start, int):
        raise schema_error(endpoint, f"a bucket's start_time is {describe(start)}")
    # The spec named the list ``result`` from 2024-12 to 2025-06 (reference §1.4).
    results = item["results"] if "results" in item else item.get("result")
    if not isinstance(results, list):
        raise schema_error(endpoint, "a bucket has no results list")
    if not all(isinstance(result, dict) for result in results):
        raise schema_error(endpoint, "a result is not an object")
    bucket = Bucket(start_time=start, results=tuple(results))
    try:
        bucket.day  # noqa: B018 - an out-of-range timestamp must fail here, as a schema error
    except (OverflowError, OSError, ValueError) as e:
        raise schema_error(endpoint, f"a bucket's start_time {start} is not a date") from e
    return bucket
