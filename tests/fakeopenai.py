"""A fake OpenAI organization Usage/Costs API on a real HTTP socket, for tests.

It serves spec-shaped pages (reference §1.4) for every usage family endpoint
(``/v1/organization/usage/{completions,embeddings,moderations,images,audio_speeches,
audio_transcriptions,vector_stores,code_interpreter_sessions,file_search_calls,web_search_calls}``)
and ``/v1/organization/costs`` from the usage and costs you add, honouring ``start_time``,
``end_time``, ``bucket_width`` (``1d``; ``1h`` and ``1m`` on usage endpoints, rows placed by
their ``at``, with each width's ``limit`` bounds), ``limit``, ``page`` (opaque cursors),
``group_by`` / ``group_by[]`` (only the values each endpoint's spec enum lists; others are a
400) and the filters each endpoint accepts
(``api_key_ids`` on vector stores is a 400), and checks ``Authorization: Bearer <admin key>``.
Completions results come in one of three field sets (``field_set``): ``"new"`` (the 2026-07-15
spec: every token class, modality inputs uncached), ``"audio"`` (2024-12 to 2026-07:
``input_audio_tokens`` includes cached audio, no cache writes, no uncached/text/image fields) or
``"launch"`` (four counters). Families listed in ``unavailable`` answer 404, like an older
deployment. Faults (status codes, headers, bodies, delays, a slow drip) are queued per request.
The Admin API's ``/v1/organization/projects`` and ``/v1/organization/projects/{id}/api_keys``
lists (``after``/``limit`` paging) serve what :meth:`FakeOpenAI.add_project` and
:meth:`FakeOpenAI.add_api_key` add.

Real HTTP matters: urllib3's ``Retry`` only runs end to end over a socket.

Use it as a context manager, or through the ``fake_openai`` fixture::

    from tests.fakeopenai import FakeOpenAI, fake_openai_fixture  # noqa: F401

    def test_something(fake_openai: FakeOpenAI) -> None:
        fake_openai.add_usage(date(2025, 8, 1), "gpt-4o-2024-08-06", input_tokens=10, requests=1)
        ...  # OPENAI_BASE_URL=fake_openai.base_url
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, localcontext
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from recon_job.http import make_session

#: The admin key the fake accepts unless told otherwise. Long, like a real one.
DEFAULT_ADMIN_KEY = "sk-admin-FAKE.fake.0123456789.abcdefghij.klmnopqrst.uvwxyzTAIL8chr"

USAGE_PATH = "/v1/organization/usage/completions"
COSTS_PATH = "/v1/organization/costs"
_DEFAULT_LIMIT = 7
#: Usage ``bucket_width`` values (reference §1.2): seconds, default ``limit``, max ``limit``
#: (``1d``'s max is the endpoint's ``max_limit``).
_WIDTHS = {"1d": (86400, 7, None), "1h": (3600, 24, 168), "1m": (60, 60, 1440)}
_BY = ("project_id", "user_id", "api_key_id", "model")
_FILTERS = ("project_ids", "user_ids", "api_key_ids", "models")


@dataclass(frozen=True)
class Endpoint:
    """One endpoint as the spec (reference §1.3, §1.5) describes it, written out here on purpose
    (not taken from recon_job.families) so the tests check recon-job's table against the spec."""

    path: str
    result_object: str
    #: The spec's ``group_by`` enum.
    group_by: tuple[str, ...]
    #: The array filters it accepts.
    filters: tuple[str, ...]
    #: The counters of its result object (summed over the rows of a group).
    counters: tuple[str, ...]
    max_limit: int = 31


_COMPLETIONS_COUNTERS = (
    "input_tokens",
    "output_tokens",
    "num_model_requests",
    "input_cached_tokens",
    "input_cache_write_tokens",
    "input_uncached_tokens",
    "input_text_tokens",
    "output_text_tokens",
    "input_cached_text_tokens",
    "input_audio_tokens",
    "input_cached_audio_tokens",
    "output_audio_tokens",
    "input_image_tokens",
    "input_cached_image_tokens",
    "output_image_tokens",
)
#: Every endpoint by family name (``costs`` for the Costs API).
ENDPOINTS: dict[str, Endpoint] = {
    "completions": Endpoint(
        USAGE_PATH,
        "organization.usage.completions.result",
        (*_BY, "batch", "service_tier"),
        (*_FILTERS, "batch"),
        _COMPLETIONS_COUNTERS,
    ),
    "embeddings": Endpoint(
        "/v1/organization/usage/embeddings",
        "organization.usage.embeddings.result",
        _BY,
        _FILTERS,
        ("input_tokens", "num_model_requests"),
    ),
    "moderations": Endpoint(
        "/v1/organization/usage/moderations",
        "organization.usage.moderations.result",
        _BY,
        _FILTERS,
        ("input_tokens", "num_model_requests"),
    ),
    "images": Endpoint(
        "/v1/organization/usage/images",
        "organization.usage.images.result",
        (*_BY, "size", "source"),
        (*_FILTERS, "sources", "sizes"),
        ("images", "num_model_requests"),
    ),
    "audio_speeches": Endpoint(
        "/v1/organization/usage/audio_speeches",
        "organization.usage.audio_speeches.result",
        _BY,
        _FILTERS,
        ("characters", "num_model_requests"),
    ),
    "audio_transcriptions": Endpoint(
        "/v1/organization/usage/audio_transcriptions",
        "organization.usage.audio_transcriptions.result",
        _BY,
        _FILTERS,
        ("seconds", "num_model_requests"),
    ),
    "vector_stores": Endpoint(
        "/v1/organization/usage/vector_stores",
        "organization.usage.vector_stores.result",
        ("project_id",),
        ("project_ids",),
        ("usage_bytes",),
    ),
    "code_interpreter_sessions": Endpoint(
        "/v1/organization/usage/code_interpreter_sessions",
        "organization.usage.code_interpreter_sessions.result",
        ("project_id",),
        ("project_ids",),
        ("num_sessions",),
    ),
    "file_search_calls": Endpoint(
        "/v1/organization/usage/file_search_calls",
        "organization.usage.file_searches.result",
        ("project_id", "user_id", "api_key_id", "vector_store_id"),
        ("project_ids", "user_ids", "api_key_ids", "vector_store_ids"),
        ("num_requests",),
    ),
    "web_search_calls": Endpoint(
        "/v1/organization/usage/web_search_calls",
        "organization.usage.web_searches.result",
        (*_BY, "context_level"),
        (*_FILTERS, "context_levels"),
        ("num_model_requests", "num_requests"),
    ),
    "costs": Endpoint(
        COSTS_PATH,
        "organization.costs.result",
        ("project_id", "line_item", "api_key_id"),
        ("project_ids", "api_key_ids"),
        (),
        max_limit=180,
    ),
}
_BY_PATH = {endpoint.path: (family, endpoint) for family, endpoint in ENDPOINTS.items()}
#: Completions fields of each field set (reference §1.7); ``new`` has them all.
FIELD_SETS = {
    "new": _COMPLETIONS_COUNTERS,
    "audio": (
        "input_tokens",
        "output_tokens",
        "num_model_requests",
        "input_cached_tokens",
        "input_audio_tokens",
        "output_audio_tokens",
    ),
    "launch": ("input_tokens", "output_tokens", "num_model_requests", "input_cached_tokens"),
}

Body = bytes | str | Mapping[str, Any] | list[Any] | None


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received."""

    method: str
    path: str
    #: Query parameters as parsed by ``parse_qs`` (``group_by[]`` keeps its brackets).
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    #: ``time.monotonic()`` when the request line arrived.
    at: float

    def param(self, name: str) -> str | None:
        """The first value of query parameter ``name``."""
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class Fault:
    """What to do with one upcoming request instead of (or before) answering normally."""

    #: Status to answer with; None answers normally (after ``delay``).
    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Body = None
    #: Seconds to wait before answering (a "never answers" server: a delay > read timeout).
    delay: float = 0.0
    #: Send headers, then the body one byte every ``drip`` seconds.
    drip: float = 0.0
    #: Only requests whose path ends with this (``/costs``, ``/completions``); None: any.
    path: str | None = None
    #: Only requests this accepts (``lambda r: r.param("page") is not None``); None: any.
    match: Callable[[RecordedRequest], bool] | None = None


def _epoch(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _encode_cursor(offset: int, start: int) -> str:
    return "page_" + base64.urlsafe_b64encode(f"{offset}:{start}".encode()).decode()


def _decode_cursor(cursor: str, start: int) -> int | None:
    try:
        offset_text, start_text = (
            base64.urlsafe_b64decode(cursor.removeprefix("page_").encode()).decode().split(":")
        )
        offset = int(offset_text)
    except ValueError:
        return None
    return offset if int(start_text) == start and offset >= 0 else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    fake: FakeOpenAI

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients time out and hang up on purpose in these tests (broken pipes are expected).
        return


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes: with Nagle on, the body waits for the client's
    # delayed ACK of the headers (~40 ms a response), which no real server costs.
    disable_nagle_algorithm = True
    # Idle keep-alive connections end on their own, so no thread outlives a test for long.
    timeout = 5

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self.server.fake._handle(self)

    def do_POST(self) -> None:
        # Only faults answer POSTs (the fake API has none); used to test that POST is not retried.
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.fake._handle(self)

    def send_body(
        self, status: int, body: Body, headers: Mapping[str, str] | None = None, drip: float = 0.0
    ) -> None:
        headers = dict(headers or {})
        if isinstance(body, Mapping | list):
            raw = json.dumps(body if isinstance(body, list) else dict(body)).encode()
            headers.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            raw = body.encode()
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        else:
            raw = body or b""
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        if not drip:
            self.wfile.write(raw)
            return
        self.wfile.flush()
        for index in range(len(raw)):
            if self.server.fake._stopped.wait(drip):
                return
            self.wfile.write(raw[index : index + 1])
            self.wfile.flush()


class FakeOpenAI:
    """A fake of OpenAI's organization Usage and Costs endpoints (see the module docstring)."""

    def __init__(self, admin_key: str = DEFAULT_ADMIN_KEY, *, host: str = "127.0.0.1") -> None:
        self.admin_key = admin_key
        self.host = host
        #: Every request received, in arrival order (faulted ones too).
        self.requests: list[RecordedRequest] = []
        #: The completions field set served: ``new``, ``audio`` or ``launch`` (module docstring).
        self.field_set = "new"
        #: Families whose endpoint answers 404 (an older deployment that lacks them).
        self.unavailable: set[str] = set()
        self._rows: dict[str, dict[date, list[dict[str, Any]]]] = {p: {} for p in _BY_PATH}
        self._raw: dict[str, dict[date, list[dict[str, Any]]]] = {p: {} for p in _BY_PATH}
        #: Admin API objects: projects in creation order, and each project's API keys.
        self.projects: list[dict[str, Any]] = []
        self.api_keys: dict[str, list[dict[str, Any]]] = {}
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeOpenAI:
        """Listen on a free port of ``host``."""
        server = _Server((self.host, 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-openai"
        )
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; wakes delayed handlers so they end."""
        self._stopped.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The TCP port it listens on."""
        assert self._server is not None, "call start() first"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``: what ``OPENAI_BASE_URL`` should be."""
        return f"http://{self.host}:{self.port}/v1"

    def gaps(self) -> list[float]:
        """Seconds between consecutive requests (for asserting retry waits)."""
        times = [r.at for r in self.requests]
        return [later - earlier for earlier, later in itertools.pairwise(times)]

    # -- data ------------------------------------------------------------------------------

    def add_usage(
        self,
        day: date,
        model: str | None,
        *,
        input_tokens: int = 0,
        cached_tokens: int = 0,
        output_tokens: int = 0,
        requests: int = 0,
        project_id: str | None = None,
        api_key_id: str | None = None,
        user_id: str | None = None,
        batch: bool | None = None,
        service_tier: str | None = None,
        cache_write_tokens: int = 0,
        input_audio_tokens: int = 0,
        cached_audio_tokens: int = 0,
        input_image_tokens: int = 0,
        cached_image_tokens: int = 0,
        output_audio_tokens: int = 0,
        output_image_tokens: int = 0,
        at: datetime | None = None,
    ) -> None:
        """Record completions usage on UTC ``day``; rows of the same group are summed.

        ``at`` (aware, on ``day`` in UTC) is when it happened, for ``1h``/``1m`` buckets;
        default: 00:00 UTC of ``day``. ``1d`` buckets sum every row of the day either way.

        Token classes mean what :class:`recon_job.models.Usage` says: ``input_tokens`` is all
        input; audio and image inputs are the uncached parts. Served in :attr:`field_set`.
        """
        uncached = input_tokens - cached_tokens - cache_write_tokens
        classes = {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "num_model_requests": requests,
            "input_cached_tokens": cached_tokens,
            "input_cache_write_tokens": cache_write_tokens,
            "input_uncached_tokens": uncached,
            "input_text_tokens": uncached - input_audio_tokens - input_image_tokens,
            "output_text_tokens": output_tokens - output_audio_tokens - output_image_tokens,
            "input_cached_text_tokens": cached_tokens - cached_audio_tokens - cached_image_tokens,
            "input_audio_tokens": input_audio_tokens,
            "input_cached_audio_tokens": cached_audio_tokens,
            "output_audio_tokens": output_audio_tokens,
            "input_image_tokens": input_image_tokens,
            "input_cached_image_tokens": cached_image_tokens,
            "output_image_tokens": output_image_tokens,
        }
        keys = {"batch": batch, "service_tier": service_tier}
        self.add_family_usage(
            "completions", day, model, project_id, api_key_id, user_id, at=at, **keys, **classes
        )

    def add_family_usage(
        self,
        family: str,
        day: date,
        model: str | None = None,
        project_id: str | None = None,
        api_key_id: str | None = None,
        user_id: str | None = None,
        *,
        at: datetime | None = None,
        **fields: Any,
    ) -> None:
        """Record usage of ``family`` on UTC ``day`` under its spec field names
        (``input_tokens=…, num_model_requests=…``, ``images=…, size="1024x1024"``,
        ``usage_bytes=…``, ``num_sessions=…``, ``num_requests=…``); rows of one group are
        summed. Grouping keys the endpoint does not have (``model`` of vector stores) are
        ignored. ``at``: as in :meth:`add_usage`."""
        if at is not None and at.astimezone(UTC).date() != day:
            raise ValueError(f"at={at} is not on UTC day {day}")
        row = {
            "_at": _epoch(day) if at is None else int(at.timestamp()),
            "model": model,
            "project_id": project_id,
            "api_key_id": api_key_id,
            "user_id": user_id,
            **fields,
        }
        with self._lock:
            self._rows[ENDPOINTS[family].path].setdefault(day, []).append(row)

    def add_cost(
        self,
        day: date,
        line_item: str | None,
        amount: Decimal | str | float | int | None,
        *,
        project_id: str | None = None,
        api_key_id: str | None = None,
        currency: str = "usd",
        as_string: bool | None = None,
        quantity: Decimal | str | float | int | None = None,
        quantity_unit: str | None = None,
    ) -> None:
        """Record a cost on UTC ``day``.

        The amount is served as a JSON string when ``amount`` is a ``str`` (or ``as_string``),
        else as a JSON number (OpenAI sends both, reference §1.8); ``None`` serves a null value.
        ``quantity`` and ``quantity_unit`` (reference §1.5) are served when grouped by line
        item, the quantities of one result summed (null when one of them is null).
        """
        row = {
            "quantity": None if quantity is None else Decimal(str(quantity)),
            "quantity_unit": quantity_unit,
            "line_item": line_item,
            "project_id": project_id,
            "api_key_id": api_key_id,
            "amount": None if amount is None else Decimal(str(amount)),
            "as_string": isinstance(amount, str) if as_string is None else as_string,
            "currency": currency,
        }
        with self._lock:
            self._rows[COSTS_PATH].setdefault(day, []).append(row)

    def add_raw_result(self, endpoint: str, day: date, result: Mapping[str, Any]) -> None:
        """Serve ``result`` verbatim in ``day``'s bucket (``endpoint``: "usage" for completions,
        "costs", or a family name)."""
        path = ENDPOINTS["completions" if endpoint == "usage" else endpoint].path
        with self._lock:
            self._raw[path].setdefault(day, []).append(dict(result))

    def add_project(self, project_id: str, name: str, *, archived: bool = False) -> None:
        """Serve a project at ``/v1/organization/projects`` (Admin API object shape)."""
        created = 1_700_000_000 + len(self.projects)
        with self._lock:
            self.projects.append(
                {
                    "id": project_id,
                    "object": "organization.project",
                    "name": name,
                    "created_at": created,
                    "archived_at": created + 1 if archived else None,
                    "status": "archived" if archived else "active",
                }
            )

    def add_api_key(
        self, project_id: str, key_id: str, name: str, *, redacted_value: str = "sk-...WXYZ"
    ) -> None:
        """Serve an API key at ``/v1/organization/projects/{project_id}/api_keys``."""
        with self._lock:
            self.api_keys.setdefault(project_id, []).append(
                {
                    "object": "organization.project.api_key",
                    "id": key_id,
                    "name": name,
                    "redacted_value": redacted_value,
                    "created_at": 1_700_000_000,
                    "last_used_at": 1_700_000_100,
                    "owner": {"type": "service_account", "service_account": {"id": "svc_1"}},
                }
            )

    # -- faults ----------------------------------------------------------------------------

    def respond_next(
        self,
        n: int = 1,
        *,
        status: int | None = 200,
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        delay: float = 0.0,
        drip: float = 0.0,
        path: str | None = None,
        match: Callable[[RecordedRequest], bool] | None = None,
    ) -> None:
        """Answer the next ``n`` matching requests like this instead of normally."""
        with self._lock:
            for _ in range(n):
                self._faults.append(
                    Fault(status, dict(headers or {}), body, delay, drip, path, match)
                )

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        *,
        delay: float = 0.0,
        path: str | None = None,
        match: Callable[[RecordedRequest], bool] | None = None,
    ) -> None:
        """Fail the next ``n`` requests with ``status`` (default body: an OpenAI error object)."""
        if body is None:
            body = {
                "error": {
                    "message": f"fake failure {status}",
                    "type": "server_error" if status >= 500 else "invalid_request_error",
                    "param": None,
                    "code": None,
                }
            }
        self.respond_next(
            n, status=status, headers=headers, body=body, delay=delay, path=path, match=match
        )

    def delay_next(self, n: int, seconds: float, *, drip: float = 0.0) -> None:
        """Answer the next ``n`` requests normally, but only after ``seconds`` (and dripping)."""
        self.respond_next(n, status=None, delay=seconds, drip=drip)

    def clear_faults(self) -> None:
        """Forget every queued fault."""
        with self._lock:
            self._faults.clear()

    # -- serving ---------------------------------------------------------------------------

    def _next_fault(self, request: RecordedRequest) -> Fault | None:
        with self._lock:
            for index, fault in enumerate(self._faults):
                if (fault.path is None or request.path.endswith(fault.path)) and (
                    fault.match is None or fault.match(request)
                ):
                    del self._faults[index]
                    return fault
        return None

    def _handle(self, handler: _Handler) -> None:
        parts = urlsplit(handler.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        request = RecordedRequest(
            method=handler.command,
            path=parts.path,
            query=query,
            headers=dict(handler.headers.items()),
            at=time.monotonic(),
        )
        with self._lock:
            self.requests.append(request)
        fault = self._next_fault(request)
        if fault is not None:
            if fault.delay and self._stopped.wait(fault.delay):
                return
            if fault.status is not None:
                handler.send_body(fault.status, fault.body, fault.headers, fault.drip)
                return
        status, body = self._answer(parts.path, query, handler.headers.get("Authorization"))
        handler.send_body(status, body, None, fault.drip if fault else 0.0)

    def _answer(
        self, path: str, query: Mapping[str, list[str]], authorization: str | None
    ) -> tuple[int, Any]:
        if path.startswith("/v1/organization/projects") and path not in _BY_PATH:
            return self._admin_list(path, query, authorization)
        family = _BY_PATH[path][0] if path in _BY_PATH else None
        if family is None or family in self.unavailable:
            return 404, _error(f"Invalid URL (GET {path})", "invalid_request_error", None)
        endpoint = ENDPOINTS[family]
        if authorization != f"Bearer {self.admin_key}":
            given = (authorization or "").removeprefix("Bearer ")
            # Like OpenAI: echo a masked prefix and the last 4 characters of the given key.
            masked = f"{given[:8]}{'*' * 8}{given[-4:]}" if given else "(none)"
            return 401, _error(
                f"Incorrect API key provided: {masked}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                "invalid_api_key",
            )

        def values(name: str) -> list[str]:
            return [*query.get(name, []), *query.get(f"{name}[]", [])]

        def bad(message: str) -> tuple[int, Any]:
            return 400, _error(message, "invalid_request_error", None)

        try:
            start = int(query["start_time"][0])
            end = int(query["end_time"][0]) if "end_time" in query else None
            width = query.get("bucket_width", ["1d"])[0]
            seconds, default_limit, max_limit = _WIDTHS[width]
            limit = int(query["limit"][0]) if "limit" in query else default_limit
        except (KeyError, ValueError):
            return bad(
                "start_time is required; start_time, end_time and limit are integers; "
                "bucket_width is 1m, 1h or 1d"
            )
        if family == "costs" and width != "1d":
            return bad("the Costs API only serves bucket_width=1d")
        max_limit = max_limit or endpoint.max_limit
        if not 1 <= limit <= max_limit:
            return bad(f"limit must be between 1 and {max_limit}")
        group_by = values("group_by")
        unknown = set(group_by) - set(endpoint.group_by)
        if unknown:
            return bad(f"invalid group_by {sorted(unknown)}")
        for name in {*_FILTERS, "vector_store_ids", "context_levels", "sources", "sizes"}:
            if values(name) and name not in endpoint.filters:
                return bad(f"Unrecognized request argument supplied: {name}")
        offset = 0
        if "page" in query:
            decoded = _decode_cursor(query["page"][0], start)
            if decoded is None:
                return bad("invalid page cursor")
            offset = decoded
        if seconds != _WIDTHS["1d"][0]:
            buckets = self._short_buckets(family, start, end, seconds, group_by, values)
        else:
            buckets = self._buckets(family, start, end, group_by, values)
        chunk = buckets[offset : offset + limit]
        has_more = offset + limit < len(buckets)
        return 200, {
            "object": "page",
            "data": chunk,
            "has_more": has_more,
            "next_page": _encode_cursor(offset + limit, start) if has_more else None,
        }

    def _admin_list(
        self, path: str, query: Mapping[str, list[str]], authorization: str | None
    ) -> tuple[int, Any]:
        """An Admin API list (projects, or a project's API keys) paged with ``after``/``limit``."""
        if authorization != f"Bearer {self.admin_key}":
            return 401, _error("Incorrect API key provided", "invalid_request_error", None)
        parts = path.removeprefix("/v1/organization/projects").strip("/").split("/")
        with self._lock:
            if parts == [""]:
                archived = query.get("include_archived", ["false"]) == ["true"]
                items = [p for p in self.projects if archived or p["archived_at"] is None]
            elif (
                len(parts) == 2
                and parts[1] == "api_keys"
                and parts[0] in {p["id"] for p in self.projects}
            ):
                items = list(self.api_keys.get(parts[0], []))
            else:
                return 404, _error(f"Invalid URL (GET {path})", "invalid_request_error", None)
        limit = int(query.get("limit", ["20"])[0])
        if not 1 <= limit <= 100:
            return 400, _error("limit must be between 1 and 100", "invalid_request_error", None)
        ids = [item["id"] for item in items]
        after = query.get("after", [None])[0]
        start = ids.index(after) + 1 if after in ids else 0
        chunk = items[start : start + limit]
        return 200, {
            "object": "list",
            "data": chunk,
            "first_id": chunk[0]["id"] if chunk else None,
            "last_id": chunk[-1]["id"] if chunk else None,
            "has_more": start + limit < len(items),
        }

    def _buckets(
        self, family: str, start: int, end: int | None, group_by: list[str], values: Any
    ) -> list[dict[str, Any]]:
        path = ENDPOINTS[family].path
        with self._lock:
            rows_by_day = self._rows[path]
            days = set(rows_by_day) | set(self._raw[path])
            if end is None:
                last = max(days, default=datetime.fromtimestamp(start, UTC).date())
                end = _epoch(last + timedelta(days=1))
            buckets = []
            bucket_start = start
            while bucket_start < end:
                day = datetime.fromtimestamp(bucket_start, UTC).date()
                bucket_end = min(end, _epoch(day + timedelta(days=1)))
                rows = [
                    row
                    for row in rows_by_day.get(day, [])
                    if _selected(row, "project_id", values("project_ids"))
                    and _selected(row, "api_key_id", values("api_key_ids"))
                    and _selected(row, "model", values("models"))
                ]
                results = _aggregate(family, rows, group_by, self.field_set) + [
                    dict(r) for r in self._raw[path].get(day, [])
                ]
                buckets.append(
                    {
                        "object": "bucket",
                        "start_time": bucket_start,
                        "end_time": bucket_end,
                        "results": results,
                    }
                )
                bucket_start = bucket_end
            return buckets

    def _short_buckets(
        self,
        family: str,
        start: int,
        end: int | None,
        seconds: int,
        group_by: list[str],
        values: Any,
    ) -> list[dict[str, Any]]:
        """``1h`` / ``1m`` buckets from ``start`` (each row in the bucket holding its ``_at``);
        raw results go in the bucket holding their day's midnight."""
        path = ENDPOINTS[family].path
        with self._lock:
            days = set(self._rows[path]) | set(self._raw[path])
            if end is None:
                last = max(days, default=datetime.fromtimestamp(start, UTC).date())
                end = _epoch(last + timedelta(days=1))
            count = -(-(end - start) // seconds)
            rows: dict[int, list[dict[str, Any]]] = {}
            raw: dict[int, list[dict[str, Any]]] = {}
            for day in days:
                for row in self._rows[path].get(day, []):
                    if start <= row["_at"] < end and (
                        _selected(row, "project_id", values("project_ids"))
                        and _selected(row, "api_key_id", values("api_key_ids"))
                        and _selected(row, "model", values("models"))
                    ):
                        rows.setdefault((row["_at"] - start) // seconds, []).append(row)
                if start <= _epoch(day) < end:
                    index = (_epoch(day) - start) // seconds
                    raw.setdefault(index, []).extend(self._raw[path].get(day, []))
            buckets = []
            for index in range(count):
                bucket_start = start + index * seconds
                results = _aggregate(family, rows.get(index, []), group_by, self.field_set)
                results += [dict(r) for r in raw.get(index, [])]
                buckets.append(
                    {
                        "object": "bucket",
                        "start_time": bucket_start,
                        "end_time": min(end, bucket_start + seconds),
                        "results": results,
                    }
                )
            return buckets


def _selected(row: Mapping[str, Any], name: str, wanted: list[str]) -> bool:
    return not wanted or row.get(name) in wanted


def _error(message: str, type_: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def _aggregate(
    family: str, rows: list[dict[str, Any]], group_by: list[str], field_set: str
) -> list[dict[str, Any]]:
    endpoint = ENDPOINTS[family]
    keys = endpoint.group_by
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        group = tuple(row.get(k) if k in group_by else None for k in keys)
        groups.setdefault(group, []).append(row)
    results = []
    for group, members in groups.items():
        result: dict[str, Any] = {"object": endpoint.result_object}
        if family == "completions":
            sums = {c: sum(int(m.get(c, 0)) for m in members) for c in endpoint.counters}
            if field_set == "audio":
                # Before 2026-07-15 input_audio_tokens counted cached audio too (reference §1.7).
                sums["input_audio_tokens"] += sums["input_cached_audio_tokens"]
            result.update((name, sums[name]) for name in FIELD_SETS[field_set])
        elif family != "costs":
            for counter in endpoint.counters:
                result[counter] = sum(int(m.get(counter, 0)) for m in members)
        else:
            amounts = [m["amount"] for m in members if m["amount"] is not None]
            if amounts:
                # OpenAI's amounts carry up to 36 decimals: the default context's 28 digits
                # would round them before recon-job ever saw them.
                with localcontext(prec=96):
                    total = sum(amounts, Decimal(0))
                as_string = any(m["as_string"] for m in members)
                value: Any = str(total) if as_string else float(total)
                result["amount"] = {"value": value, "currency": members[0]["currency"]}
            else:
                result["amount"] = {"value": None, "currency": members[0]["currency"]}
            quantities = [m.get("quantity") for m in members]
            if "line_item" in group_by and None not in quantities:
                summed = sum(quantities, Decimal(0))
                result["quantity"] = int(summed) if summed == int(summed) else float(summed)
                result["quantity_unit"] = members[0].get("quantity_unit")
            else:
                result["quantity"] = None
                result["quantity_unit"] = None
        result.update(dict(zip(keys, group, strict=True)))
        results.append(result)
    return results


@pytest.fixture(name="fake_openai")
def fake_openai_fixture() -> Iterator[FakeOpenAI]:
    """A started :class:`FakeOpenAI` with the default admin key, stopped after the test."""
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(name="fast_session")
def fast_session_fixture() -> Iterator[requests.Session]:
    """A ``make_session`` session with 2 retries and near-zero backoff, closed after the test."""
    with make_session(retries=2, backoff_factor=0.01, backoff_max=0.05) as session:
        yield session
