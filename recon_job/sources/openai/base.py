"""What the OpenAI Usage and Costs sources share: options, query parameters, result fields.

:class:`OpenAISource` is their common base: construction, the first page's parameters and the
group key of a result. Fetching the pages is :mod:`~recon_job.sources.openai.client`'s job and
wording the errors :mod:`~recon_job.sources.openai.errors`'; parsing the results is left to
``openai_usage`` and ``openai_costs``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, ClassVar, Final

import requests

from recon_job.errors import ConfigError
from recon_job.http import Deadline
from recon_job.models import UsageKey, Window
from recon_job.sources.openai.client import EVENT_PAGE_FETCHED as EVENT_PAGE_FETCHED
from recon_job.sources.openai.client import MAX_BODY_BYTES as MAX_BODY_BYTES
from recon_job.sources.openai.client import MAX_ERROR_BODY_BYTES as MAX_ERROR_BODY_BYTES
from recon_job.sources.openai.client import Bucket as Bucket
from recon_job.sources.openai.client import Fetched as Fetched
from recon_job.sources.openai.client import OpenAIClient as OpenAIClient
from recon_job.sources.openai.errors import EVENT_REQUEST_FAILED as EVENT_REQUEST_FAILED
from recon_job.sources.openai.errors import describe
from recon_job.sources.openai.errors import schema_error as schema_error
from recon_job.sources.openai.errors import scrub as scrub

#: The ``group_by`` values recon-job understands (both endpoints also accept more).
GROUP_BY_KEYS: Final = frozenset({"model", "project_id", "api_key_id"})


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
            endpoint, f"field {name!r} should be a non-negative integer, got {describe(value)}"
        )
    return value


def optional_str(result: Mapping[str, Any], name: str, endpoint: str) -> str | None:
    """The string-or-null field ``name`` (a group-by key); anything else is a schema error."""
    value = result.get(name)
    if value is None or isinstance(value, str):
        return value
    raise schema_error(
        endpoint, f"field {name!r} should be a string or null, got {describe(value)}"
    )


class OpenAISource:
    """What the Usage and Costs sources share: construction, query parameters and group keys.

    A subclass names its endpoint, path and page limit, and implements ``fetch``.
    """

    #: The API's name in messages ("Usage", "Costs"), its path under the base URL, and the
    #: most daily buckets one page may hold.
    _endpoint: ClassVar[str]
    _path: ClassVar[str]
    _limit: ClassVar[int]

    def __init__(
        self,
        options: OpenAIOptions,
        session: requests.Session,
        deadline: Deadline | None = None,
    ) -> None:
        self.options = options
        self._client = OpenAIClient(options, session, deadline)

    def params(self, window: Window) -> list[tuple[str, str]]:
        """The query parameters of the first page for ``window`` (without ``page``)."""
        options = self.options
        return [
            *window_params(window, limit=self._limit),
            *array_params("group_by", self._group_by()),
            *array_params("project_ids", options.project_ids),
            *array_params("api_key_ids", options.api_key_ids),
        ]

    def _group_by(self) -> Sequence[str]:
        """The ``group_by[]`` values to ask the endpoint for."""
        return self.options.group_by

    def _fetch(self, window: Window) -> Fetched:
        return self._client.fetch(
            endpoint=self._endpoint, path=self._path, params=self.params(window)
        )

    def _key(self, day: date, model: str, result: Mapping[str, Any]) -> UsageKey:
        """The group of one result: project and API key only when grouped by them."""

        def grouped(name: str) -> str | None:
            return (
                optional_str(result, name, self._endpoint)
                if name in self.options.group_by
                else None
            )

        return UsageKey(
            day=day, model=model, project_id=grouped("project_id"), api_key_id=grouped("api_key_id")
        )
