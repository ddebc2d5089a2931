"""structlog, configured once: console on a terminal, JSON lines otherwise, secrets scrubbed.

Everything goes to stderr, so ``--format json`` output on stdout stays one clean document.
The redaction processor runs after tracebacks are rendered and before the renderer, so a secret
can leak neither through an event field, nor through an exception message, nor through a
traceback (rendered without local variables, which structlog shows by default).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, WrappedLogger

_SECRET_KEY = re.compile(
    r"authorization|api[_-]?key|admin[_-]?key|token|secret|password|passwd|webhook|ping_url",
    re.IGNORECASE,
)
# Keys whose names match _SECRET_KEY but that carry counts, not secrets.
_NOT_SECRET = re.compile(r"(_tokens|tokens_pct|^tokens|_token_floor|token_floor)$", re.IGNORECASE)
_OPENAI_KEY = re.compile(r"sk-(?:admin-|proj-|svcacct-)?[A-Za-z0-9_\-]{8,}")
MASK = "***"


#: Shorter values are not scrubbed by value: masking every ``v1`` or ``api`` would garble logs.
MIN_SECRET_LENGTH = 6
# A URL path segment or query value that reads as a word ("services", "hooks", "json") names a
# route, not a credential; anything else (digits, mixed case, base64) is treated as a token.
_WORDLIKE = re.compile(r"[a-z]+(?:[-_.][a-z]+)*")


def secret_parts(value: str | None) -> tuple[str, ...]:
    """``value`` and, when it is a URL, every part of it that is a credential on its own.

    A webhook URL's path *is* its token (Slack: ``/services/T…/B…/X…``) and a query may carry
    one (``?token=…``), while receivers and HTTP libraries quote those parts alone ("Cannot POST
    /hooks/…", ``no_such_hook: token …``, "Max retries exceeded with url: /services/…"). So the
    parts are the URL, its path with and without the query, the query, every token-like path
    segment and every token-like query value. Longest first, so a redactor replacing them in this
    order never leaves the tail of a longer one behind.
    """
    if not value:
        return ()
    parts = [value]
    try:
        url = urlsplit(value) if "://" in value else None
    except ValueError:  # "Invalid IPv6 URL": the whole value is still scrubbed
        url = None
    if url is not None and url.scheme and url.netloc:
        if len(url.path) > 1:
            parts += [url.path + (f"?{url.query}" if url.query else ""), url.path]
        if url.query:
            parts.append(url.query)
            parts += [v for _, v in parse_qsl(url.query, keep_blank_values=True) if _token(v)]
        parts += [segment for segment in url.path.split("/") if _token(segment)]
    # HTTP libraries re-encode a URL before sending and logging it ("%41" goes out as "A", a
    # space as "%20"): each part is also masked as it reads decoded and encoded again.
    parts += [form for part in parts[1:] for form in _encodings(part)]
    unique = dict.fromkeys(p for p in parts if len(p) >= MIN_SECRET_LENGTH)
    return tuple(sorted(unique, key=len, reverse=True))


def _encodings(part: str) -> tuple[str, ...]:
    """``part`` percent-decoded, and decoded then encoded as requests re-encodes a URL."""
    plain = unquote(part)
    return plain, quote(plain, safe="/?&=:@!$'()*+,;~-._")


def _token(part: str) -> bool:
    return len(part) >= MIN_SECRET_LENGTH and not _WORDLIKE.fullmatch(part)


class Redactor:
    """A structlog processor that masks secrets by key name and by known value."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._longest_first: tuple[str, ...] = ()

    def add(self, *values: str | None) -> None:
        """Remember secret values (and a URL's credential parts) to scrub from every string."""
        for value in values:
            self._values.update(secret_parts(value))
        # Longest first: replacing a URL's path before its path?query would leave the query
        # (a secret too) in the text, and set order depends on PYTHONHASHSEED.
        self._longest_first = tuple(sorted(self._values, key=lambda v: (-len(v), v)))

    def scrub(self, text: str) -> str:
        """``text`` with every known secret and anything shaped like an OpenAI key masked."""
        for value in self._longest_first:
            if value in text:
                text = text.replace(value, MASK)
        return _OPENAI_KEY.sub(MASK, text)

    def _clean(self, value: Any, key: str = "") -> Any:
        if key and _SECRET_KEY.search(key) and not _NOT_SECRET.search(key):
            return MASK if value not in (None, "", 0) else value
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, MutableMapping):
            return {k: self._clean(v, str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        return value

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        return {k: self._clean(v, k) for k, v in event_dict.items()}


#: The one redactor; ``configure_logging`` registers the run's secrets with it.
REDACTOR = Redactor()


def library_defaults() -> None:
    """Route recon-job's log events to the standard library's loggers, unless configured.

    structlog's own default prints every event to stdout, which a library must never do: used
    from a notebook or another program (``recon_job.api``), recon-job's events then go to the
    ``logging`` loggers named after its modules, which drop info and below and print warnings on
    stderr until the application configures ``logging`` itself. Does nothing once structlog was
    configured (by :func:`configure_logging`, or by the application).
    """
    if structlog.is_configured():
        return
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.processors.format_exc_info,
            REDACTOR,
            structlog.processors.KeyValueRenderer(key_order=["event"]),
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )


def configure_logging(
    *,
    level: str = "info",
    fmt: str = "auto",
    secrets: Iterable[str | None] = (),
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and the stdlib loggers (urllib3, sqlalchemy, apscheduler) alike."""
    out = stream or sys.stderr
    REDACTOR.add(*secrets)
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if use_json:
        exception_step: Any = structlog.processors.ExceptionRenderer(
            ExceptionDictTransformer(show_locals=False)
        )
        renderer = structlog.processors.JSONRenderer()
    else:
        exception_step = structlog.processors.format_exc_info
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    numeric = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            exception_step,
            REDACTOR,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    # Route stdlib logging (urllib3 logs request lines, requests' errors carry URLs) through the
    # same chain so redaction applies to it too.
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                exception_step,
                REDACTOR,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.INFO) if numeric > logging.DEBUG else numeric)
    for noisy in ("sqlalchemy", "alembic"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    # urllib3 warns on every retry with the whole request line; recon_job.http logs each retry
    # as its own event already, so urllib3 speaks up only at debug level or on errors.
    logging.getLogger("urllib3").setLevel(numeric if numeric <= logging.DEBUG else logging.ERROR)
