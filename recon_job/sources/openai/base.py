"""What the OpenAI Usage and Costs sources share: query parameters, result fields, the base class.

:class:`OpenAISource` is their common base: construction, the first page's parameters and the
group key of a result. Fetching the pages is :mod:`~recon_job.sources.openai.client`'s job and
wording the errors :mod:`~recon_job.sources.openai.errors`'; parsing the results is left to
:mod:`.usage` and :mod:`.costs`; the options are :mod:`.options`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from typing import Any

import requests

from recon_job.errors import UsageApiError
from recon_job.http import Deadline
from recon_job.models import UsageKey, Window
from recon_job.sources.base import MAX_TOKENS
from recon_job.sources.groups import DIMENSIONS, GroupLimit
from recon_job.sources.openai.client import Fetched, OpenAIClient
from recon_job.sources.openai.errors import describe, out_of_range_error, schema_error, scrub
from recon_job.sources.openai.options import OpenAIOptions


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
    """The integer field ``name``, 0 when missing or null (older data lacks newer fields).

    A count above ``MAX_TOKENS`` (2**53 - 1) is a permanent error: it is no real figure, and
    its sums would overflow the history database's integers.
    """
    value = result.get(name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise schema_error(
            endpoint, f"field {name!r} should be a non-negative integer, got {describe(value)}"
        )
    if value > MAX_TOKENS:
        raise out_of_range_error(
            endpoint, f"field {name!r} is {value:,}, above the largest count ({MAX_TOKENS:,})"
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
    #: most daily buckets one page may hold (a subclass may set them per instance).
    _endpoint: str
    _path: str
    _limit: int

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

    def _results(
        self, fetched: Fetched, window: Window, counts: Counter[str]
    ) -> Iterator[tuple[date, Mapping[str, Any]]]:
        """Every result of every bucket in ``window``, with the bucket's day.

        Counts ``results``, and ``buckets_outside_window``: we send aligned start and end
        times, so those should not happen, and are never counted as usage.
        """
        for bucket in fetched.buckets:
            day = bucket.day
            if day not in window:
                counts["buckets_outside_window"] += 1
                continue
            # A bucket holds one result per group-by combination (reference §1.8).
            for result in bucket.results:
                counts["results"] += 1
                yield day, result

    def _info(
        self, fetched: Fetched, counts: Counter[str], optional: Sequence[str]
    ) -> dict[str, int]:
        """A fetch's ``info``: pages, buckets, results, and the ``optional`` counts not zero.

        Each is named with the endpoint's prefix (``usage_pages``, ``costs_results`` ...).
        """
        prefix = self._prefix
        info = {
            f"{prefix}_pages": fetched.pages,
            f"{prefix}_buckets": len(fetched.buckets),
            f"{prefix}_results": counts["results"],
        }
        info.update((f"{prefix}_{name}", counts[name]) for name in optional if counts[name])
        return info

    @property
    def _prefix(self) -> str:
        """The prefix of this source's ``info`` counts."""
        return self._endpoint.lower()

    def _count_group(self, limit: GroupLimit, key: UsageKey, window: Window) -> None:
        """Count the group of a result new to this fetch; a permanent UsageApiError when the
        window's answer holds more than ``max_groups`` of them (a pathological answer)."""
        if limit.add((key.day, key.family, key.model, key.project_id, key.api_key_id)):
            fields = {name: f"OpenAI's {name!r} field" for name in DIMENSIONS}
            message = limit.message(
                f"OpenAI's {self._endpoint} API",
                window.key,
                fields,
                advice="far more than an organization's real groups: check the base URL and "
                "the group_by settings",
            )
            raise UsageApiError(
                scrub(message, self.options.admin_key), permanent=True, reason="too_many_groups"
            )

    def _key(self, day: date, model: str, result: Mapping[str, Any], family: str) -> UsageKey:
        """The group of one result: project and API key only when grouped by them."""
        asked = self._group_by()

        def grouped(name: str) -> str | None:
            return optional_str(result, name, self._endpoint) if name in asked else None

        return UsageKey(
            day=day,
            model=model,
            project_id=grouped("project_id"),
            api_key_id=grouped("api_key_id"),
            family=family,
        )
