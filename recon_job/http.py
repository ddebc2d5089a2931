"""The one ``requests.Session`` factory every outbound HTTP call in recon-job goes through.

Why a factory and not bare ``requests.get``: requests never retries and never times out on its
own ("Failure to do so can cause your program to hang indefinitely", requests quickstart), so
every session made here mounts a urllib3 ``Retry`` with the rules of reliability.md §5.2:

* only ``GET`` is retried by the adapter — a ``POST`` (a webhook, a Pushgateway push) is never
  replayed behind the caller's back, unless the caller says that replaying it is safe
  (``allowed_methods``: a dead-man's-switch ping, idempotent for the monitor);
* 500/502/503/504 and connect/read failures are retried with exponential backoff and jitter;
* 429 is retried **only** when the server sent ``Retry-After`` — OpenAI omits it for 429s that
  "require user action" (``insufficient_quota``), and retrying those only burns the budget;
* ``Retry-After`` is honoured, including the fractional seconds stock urllib3 crashes on
  (``InvalidHeader: Invalid Retry-After header: 1.5``, verified in reliability.md §5.1) and
  HTTP-dates, but a delay longer than ``max_retry_after`` is *not* slept: the response goes
  back to the caller, which fails with a clear "rate limited for N s" error instead of sleeping
  for hours (urllib3 only clamps at 6 h);
* with a :class:`Deadline`, a retry whose sleep would pass the deadline is not attempted, and
  every attempt's connect and read timeouts — urllib3's own retries included — are capped by
  what is left of the deadline when the attempt starts (:class:`DeadlineTimeout`): a server
  that never answers cannot keep a run past its deadline by one read timeout per retry.

The session sets no timeout itself — requests has no session-wide timeout. **Every caller must
pass** ``timeout=(connect, read)``, preferably from :func:`timeout_for`, which also fails fast
once the deadline has passed.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Callable, Collection
from datetime import UTC
from typing import Any, Final, Self, TypedDict, Unpack, cast

import requests
import structlog
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from requests.models import PreparedRequest, Response
from urllib3.connectionpool import ConnectionPool
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry
from urllib3.util.timeout import Timeout

from recon_job.errors import DeadlineExceeded
from recon_job.version import __version__

log = structlog.get_logger(__name__)

#: Logged when the adapter is about to sleep and retry.
EVENT_RETRY_SCHEDULED: Final = "http.retry.scheduled"
#: Logged when a retryable response is handed back because its delay is too long.
EVENT_RETRY_REFUSED: Final = "http.retry.refused"

#: Statuses retried with backoff whatever the headers say.
RETRY_STATUSES: Final = (500, 502, 503, 504)
#: Default cap on a server-requested ``Retry-After`` delay, in seconds (the OpenAI SDK uses 60).
DEFAULT_MAX_RETRY_AFTER: Final = 60.0

_SECONDS = re.compile(r"^\s*(?:\d+(?:\.\d*)?|\.\d+)\s*$")
#: The shortest timeout an attempt gets, in seconds, however little of the deadline is left: a
#: timeout of 0 would make the socket non-blocking rather than time out.
MIN_ATTEMPT_TIMEOUT: Final = 0.01


class Deadline:
    """A wall-clock budget for a whole operation (a fetch of every page, say).

    Read and connect timeouts are per socket operation, not wall clock ("Neither the connect nor
    read timeouts are wall clock", requests docs), so a slow-dripping server can outlast any
    timeout; a deadline checked between pages and body chunks bounds the whole fetch.
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        #: The budget, in seconds.
        self.seconds = seconds
        self._clock = clock
        self._expires_at = clock() + seconds

    def remaining(self) -> float:
        """Seconds left (0.0 once expired)."""
        return max(0.0, self._expires_at - self._clock())

    @property
    def expired(self) -> bool:
        """True once no time is left."""
        return self.remaining() <= 0.0

    def check(self, what: str) -> None:
        """Raise :class:`~recon_job.errors.DeadlineExceeded` if the deadline has passed.

        ``what`` names the step that could not start, for the message ("fetching page 3 ...").
        """
        if self.expired:
            raise DeadlineExceeded(f"gave up {what}: the deadline of {self.seconds:g} s has passed")

    def __repr__(self) -> str:
        return f"Deadline(seconds={self.seconds:g}, remaining={self.remaining():.3f})"


def timeout_for(deadline: Deadline | None, connect: float, read: float) -> tuple[float, float]:
    """The ``(connect, read)`` timeout for the next request, capped by what the deadline leaves.

    Raises ``DeadlineExceeded`` when the deadline has already passed: a
    timeout of 0 would make the socket non-blocking rather than fail fast.
    """
    if deadline is None:
        return (connect, read)
    deadline.check("sending a request")
    remaining = deadline.remaining()
    return (min(connect, remaining), min(read, remaining))


class DeadlineTimeout(Timeout):
    """A urllib3 ``Timeout`` whose connect and read timeouts never exceed the deadline's rest.

    urllib3 clones the timeout for every attempt, its own retries included, and reads
    ``connect_timeout`` and ``read_timeout`` as the attempt connects and sends; each reading is
    capped by what is left of ``deadline`` then (never below :data:`MIN_ATTEMPT_TIMEOUT`).
    A plain ``(connect, read)`` tuple is fixed when the request is made, so with a 30 s read
    timeout and 45 s of deadline the second attempt still got its whole 30 s.
    """

    def __init__(
        self, deadline: Deadline, connect: float | None = None, read: float | None = None
    ) -> None:
        super().__init__(connect=connect, read=read)
        #: The deadline every attempt's timeouts are capped by.
        self.deadline = deadline

    def clone(self) -> DeadlineTimeout:
        """A fresh copy for one attempt, still bound to the deadline (urllib3's would not be)."""
        connect, read = self._connect, self._read
        return DeadlineTimeout(
            self.deadline,
            connect if isinstance(connect, int | float) else None,
            read if isinstance(read, int | float) else None,
        )

    @property
    def connect_timeout(self) -> float:
        """The connect timeout, capped by what is left of the deadline."""
        return self._capped(super().connect_timeout)

    @property
    def read_timeout(self) -> float:
        """The read timeout, capped by what is left of the deadline."""
        return self._capped(super().read_timeout)

    def _capped(self, seconds: object) -> float:
        left = max(self.deadline.remaining(), MIN_ATTEMPT_TIMEOUT)
        # None (wait forever) and urllib3's "socket default" sentinel are capped alike.
        return min(seconds, left) if isinstance(seconds, int | float) else left


def parse_retry_after(value: str, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value, or None if it is not a valid value.

    Accepts integer and fractional seconds ("1.5": RFC 9110 says integer, but real servers and
    the OpenAI SDK use fractions) and HTTP-dates (relative to ``now``, epoch seconds, default
    ``time.time()``). Negative results become 0.
    """
    if _SECONDS.match(value):
        seconds = float(value)
        return seconds if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # RFC 5322 "-0000": UTC, origin unknown
    reference = time.time() if now is None else now
    return max(0.0, when.timestamp() - reference)


class _RetryRefusedError(urllib3.exceptions.HTTPError):
    """Reason of the ``MaxRetryError`` raised when a retry is refused (too long, deadline)."""

    def __init__(self, message: str, original: Exception | None) -> None:
        super().__init__(message)
        #: The connection error that would have been retried, if any.
        self.original = original


def _stop(
    pool: ConnectionPool | None, url: str | None, reason: Exception
) -> urllib3.exceptions.MaxRetryError:
    # urllib3 raises MaxRetryError with a possibly-None pool itself (retry.py); with
    # raise_on_status=False it hands the last response back to the caller instead.
    return urllib3.exceptions.MaxRetryError(cast(ConnectionPool, pool), url, reason)


class DeadlineRetryStop(_RetryRefusedError):
    """A retry was not attempted because its sleep would pass the deadline."""


class CappedRetry(Retry):
    """urllib3 ``Retry`` that tolerates fractional ``Retry-After`` and refuses over-long waits.

    Extra parameters: ``max_retry_after`` (seconds; a longer server-requested delay is not
    slept, the response is returned instead), ``deadline`` (retries that would sleep past it are
    not attempted) and ``wall_clock`` (epoch seconds, for HTTP-date ``Retry-After`` values).
    ``new()`` carries them over, since urllib3 copies the object on every increment.
    """

    def __init__(
        self,
        *args: Any,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
        deadline: Deadline | None = None,
        wall_clock: Callable[[], float] = time.time,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_retry_after = max_retry_after
        self.deadline = deadline
        self.wall_clock = wall_clock

    def new(self, **kw: Any) -> Self:
        """A copy with ``kw`` changed; keeps the extra parameters (urllib3's ``new`` would not)."""
        kw.setdefault("max_retry_after", self.max_retry_after)
        kw.setdefault("deadline", self.deadline)
        kw.setdefault("wall_clock", self.wall_clock)
        return super().new(**kw)

    def parse_retry_after(self, retry_after: str) -> float:
        """Seconds from a ``Retry-After`` value; fractions allowed, never clamped to 6 h."""
        seconds = parse_retry_after(retry_after, now=self.wall_clock())
        if seconds is None:
            raise urllib3.exceptions.InvalidHeader(f"Invalid Retry-After header: {retry_after}")
        return seconds

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        """The ``Retry-After`` delay, or None when absent or unparseable (then: backoff)."""
        value = response.headers.get("Retry-After")
        if value is None:
            return None
        return parse_retry_after(value, now=self.wall_clock())

    def _max_backoff(self) -> float:
        # Upper bound of what ``get_backoff_time`` may return (it adds random jitter).
        base = self.get_backoff_time()
        if base <= 0:
            return 0.0
        return min(self.backoff_max, base + self.backoff_jitter)

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: Any = None,
    ) -> Self:
        """Count one retry, or raise ``MaxRetryError`` to stop (the response is then returned)."""
        retry_after = None
        if response is not None and error is None:
            retry_after = self.get_retry_after(response)
            status = response.status
            if retry_after is None and status not in self.status_forcelist:
                # A 429/413 whose Retry-After did not parse: urllib3 saw the header and would
                # retry; treat it as absent and hand the response back.
                raise _stop(_pool, url, _RetryRefusedError("unusable Retry-After header", None))
            if retry_after is not None and retry_after > self.max_retry_after:
                log.warning(
                    EVENT_RETRY_REFUSED,
                    status=status,
                    retry_after=retry_after,
                    max_retry_after=self.max_retry_after,
                )
                raise _stop(_pool, url, _RetryRefusedError("Retry-After beyond the cap", None))
        new = super().increment(method, url, response, error, _pool, _stacktrace)
        wait = retry_after if retry_after else new._max_backoff()
        if self.deadline is not None and wait >= self.deadline.remaining():
            raise _stop(_pool, url, DeadlineRetryStop("the retry would pass the deadline", error))
        log.info(
            EVENT_RETRY_SCHEDULED,
            status=None if response is None else response.status,
            error=None if error is None else type(error).__name__,
            sleep=round(wait, 3),
            retries_left=new.total,
        )
        return new


class _DeadlineAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` that caps every attempt's timeouts by a deadline (see DeadlineTimeout)."""

    def __init__(self, deadline: Deadline, max_retries: Retry) -> None:
        super().__init__(max_retries=max_retries)
        self.deadline = deadline

    def send(  # noqa: PLR0913 - the signature of requests' HTTPAdapter.send
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | Timeout | None = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> Response:
        """Send ``request`` with its timeouts bound to the deadline."""
        if isinstance(timeout, Timeout):
            connect, read = timeout.connect_timeout, timeout.read_timeout
        elif isinstance(timeout, tuple):
            connect, read = timeout
        else:
            connect = read = timeout
        bound = DeadlineTimeout(
            self.deadline,
            connect if isinstance(connect, int | float) else None,
            read if isinstance(read, int | float) else None,
        )
        return super().send(request, stream, bound, verify, cert, proxies)  # type: ignore[arg-type]


class RetryOptions(TypedDict, total=False):
    """How a session from :func:`make_session` retries; every key is optional."""

    #: Bounds every kind of retry (connect, read, status) and their total (default 4).
    retries: int
    #: Seconds; backoff is ``backoff_factor * 2**(n-1)`` plus jitter up to it (default 0.5).
    backoff_factor: float
    #: Seconds; the longest backoff (default 30).
    backoff_max: float
    #: Seconds; a longer server-requested ``Retry-After`` is not slept (default 60).
    max_retry_after: float
    #: Retries that would sleep past it are not attempted (default: none).
    deadline: Deadline | None
    #: Methods the adapter may replay (default ``GET`` only).
    allowed_methods: Collection[str]


def make_session(
    *, user_agent: str | None = None, **options: Unpack[RetryOptions]
) -> requests.Session:
    """A session that retries idempotent GETs safely (see the module docstring).

    ``retries`` bounds every kind of retry (connect, read, status) and their total, so a
    request is sent at most ``retries + 1`` times. Backoff is ``backoff_factor * 2**(n-1)``
    seconds plus up to ``backoff_factor`` of jitter, none before the first retry, at most
    ``backoff_max``. ``deadline``, when given, stops retries that would sleep past it and caps
    every attempt's connect and read timeouts by what is left of it (:class:`DeadlineTimeout`).
    ``allowed_methods`` are the methods the adapter may replay; add ``POST`` only for requests
    that are idempotent for the receiver (a dead-man's-switch ping), never for a webhook.

    The session has no default timeout: pass ``timeout=`` on every request (see
    :func:`timeout_for`). Close the session when done (it is a context manager).
    """
    session = requests.Session()
    deadline, retry = options.get("deadline"), _retry(options)
    adapter = (
        HTTPAdapter(max_retries=retry) if deadline is None else _DeadlineAdapter(deadline, retry)
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = user_agent or f"recon-job/{__version__}"
    return session


def _retry(options: RetryOptions) -> CappedRetry:
    retries = options.get("retries", 4)
    backoff_factor = options.get("backoff_factor", 0.5)
    return CappedRetry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        other=0,
        allowed_methods=frozenset(options.get("allowed_methods", ("GET",))),
        status_forcelist=RETRY_STATUSES,
        backoff_factor=backoff_factor,
        backoff_jitter=backoff_factor,
        backoff_max=options.get("backoff_max", 30.0),
        respect_retry_after_header=True,
        raise_on_status=False,
        max_retry_after=options.get("max_retry_after", DEFAULT_MAX_RETRY_AFTER),
        deadline=options.get("deadline"),
    )


def max_retry_after(session: requests.Session, url: str) -> float:
    """The ``Retry-After`` cap of the adapter ``session`` uses for ``url`` (default if unknown)."""
    adapter = session.get_adapter(url)
    retry = getattr(adapter, "max_retries", None)
    if isinstance(retry, CappedRetry):
        return retry.max_retry_after
    return DEFAULT_MAX_RETRY_AFTER


def failure_kind(exc: BaseException) -> str:
    """Classify a requests/urllib3 exception: ``deadline``, ``timeout`` or ``connection``.

    requests wraps exhausted read retries as ``ConnectionError(MaxRetryError(ReadTimeoutError))``
    rather than ``ReadTimeout``, so the cause chain is walked, not just the outer type.
    """
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    timeout = False
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, DeadlineRetryStop):
            return "deadline"
        if isinstance(current, urllib3.exceptions.NewConnectionError):
            # urllib3 derives it from ConnectTimeoutError, but it is a refusal, not a timeout.
            continue
        if isinstance(current, requests.Timeout | urllib3.exceptions.TimeoutError | TimeoutError):
            timeout = True
        if isinstance(current, urllib3.exceptions.MaxRetryError) and current.reason is not None:
            todo.append(current.reason)
        if isinstance(current, _RetryRefusedError) and current.original is not None:
            todo.append(current.original)
        todo.extend(arg for arg in current.args if isinstance(arg, BaseException))
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                todo.append(linked)
    return "timeout" if timeout else "connection"
