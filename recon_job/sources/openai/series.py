"""One usage family from OpenAI's Usage API in hourly or minute buckets: the gap locator's input.

:func:`fetch_series` asks ``/organization/usage/{family}`` for ``[start, end)`` (aware UTC,
aligned to the width) with ``bucket_width`` ``1h`` or ``1m``, at most 168 or 1440 buckets a page
(reference §1.2), grouped by model and by project wherever the endpoint accepts them, with the
configured ``project_ids`` / ``api_key_ids`` filters. Grouping by project always costs no extra
request (``limit`` counts buckets, not results) and makes one fetch serve both a per-model and a
per-project diagnosis, so the history's cache (:mod:`recon_job.store.series`) needs one row per
family x width x span. Each result is parsed like the daily source's
(:func:`~recon_job.sources.openai.results.parse_result`); model names stay OpenAI's snapshots,
and a family reported per project only gets its product name, as in
:mod:`~recon_job.sources.openai.usage`. Errors are :class:`~recon_job.errors.UsageApiError`,
never partial data.

:class:`SeriesFetcher` is the callable :mod:`recon_job.investigate` asks for a series: the cache
first, then OpenAI, saving what it fetched once the span is settled.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Final, Protocol

import requests
import structlog

from recon_job.errors import UsageApiError
from recon_job.families import PRODUCT_MODELS, SPECS
from recon_job.http import Deadline
from recon_job.models import EMPTY, SeriesPoint, Usage
from recon_job.sources.openai.base import array_params, optional_str
from recon_job.sources.openai.client import OpenAIClient
from recon_job.sources.openai.options import OpenAIOptions
from recon_job.sources.openai.results import parse_result
from recon_job.sources.openai.usage import UNKNOWN_MODEL, endpoint_name

log = structlog.get_logger(__name__)

#: Logged once per series fetched from OpenAI.
EVENT_SERIES_FETCHED: Final = "openai.series.fetched"
#: Logged when a series came from the history's cache.
EVENT_SERIES_CACHED: Final = "openai.series.cached"

#: The two widths a series may have.
HOUR_WIDTH: Final = timedelta(hours=1)
MINUTE_WIDTH: Final = timedelta(minutes=1)
#: ``bucket_width`` name -> width.
WIDTHS: Final = {"1h": HOUR_WIDTH, "1m": MINUTE_WIDTH}
#: The most buckets one page may hold, per width (reference §1.2).
PAGE_LIMITS: Final = {"1h": 168, "1m": 1440}

#: A series in the shape :mod:`recon_job.investigate` reads: (family, model, project id) ->
#: bucket start (aware UTC) -> usage.
Series = dict[tuple[str, str, str | None], dict[datetime, Usage]]


@dataclass(frozen=True, slots=True)
class FetchedSeries:
    """One family's buckets over ``[start, end)`` and what fetching them cost."""

    family: str
    #: ``1h`` or ``1m``.
    width: str
    start: datetime
    end: datetime
    points: tuple[SeriesPoint, ...]
    #: HTTP requests made (pages); 0 when the series came from the cache.
    requests: int


class SeriesCache(Protocol):
    """Where fetched series are kept (:class:`recon_job.store.HistoryStore` is one)."""

    def cached_series(
        self, family: str, width: str, start_at: datetime, end_at: datetime
    ) -> list[SeriesPoint] | None:
        """The stored points of exactly this family, width and span; None when not stored."""
        ...

    def save_series(  # noqa: PLR0913 -- the row's key, then its content
        self,
        family: str,
        width: str,
        start_at: datetime,
        end_at: datetime,
        points: Sequence[SeriesPoint],
        fetched_at: datetime,
    ) -> None:
        """Store ``points`` for this family, width and span (replacing what was there)."""
        ...


def width_name(width: timedelta | str) -> str:
    """``1h`` or ``1m`` for a width; ValueError for any other."""
    if isinstance(width, str):
        if width in WIDTHS:
            return width
    else:
        for name, value in WIDTHS.items():
            if value == width:
                return name
    raise ValueError(f"series width must be 1h or 1m, got {width}")


def _bounds(start: datetime, end: datetime, width: str) -> tuple[datetime, datetime]:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("series bounds must be aware datetimes")
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    step = WIDTHS[width]
    if end <= start:
        raise ValueError(f"series end {end} must be after its start {start}")
    for moment in (start, end):
        # Aligned like the buckets, or the first bucket would be partial (reference §1.8).
        if (moment - moment.replace(hour=0, minute=0, second=0, microsecond=0)) % step:
            raise ValueError(f"series bound {moment} is not aligned to {width} buckets")
    return start, end


def series_requests(start: datetime, end: datetime, width: timedelta | str) -> int:
    """The pages (HTTP requests) a fetch of ``[start, end)`` in ``width`` buckets takes."""
    name = width_name(width)
    start, end = _bounds(start, end, name)
    buckets = (end - start) // WIDTHS[name]
    return math.ceil(buckets / PAGE_LIMITS[name])


def fetch_series(  # noqa: PLR0913 -- the span, then keyword-only bounds
    options: OpenAIOptions,
    session: requests.Session,
    family: str,
    start: datetime,
    end: datetime,
    width: timedelta | str,
    *,
    deadline: Deadline | None = None,
    max_requests: int | None = None,
) -> FetchedSeries:
    """``family``'s usage over ``[start, end)`` in ``width`` buckets (module docstring).

    ``max_requests`` bounds the pages (None: ``options.max_pages``); more would be needed is a
    ``UsageApiError`` (``reason="budget"``) before any request. Raises ``UsageApiError`` on any
    failure, ``ValueError`` for bounds that are not aware and aligned.
    """
    name = width_name(width)
    start, end = _bounds(start, end, name)
    spec = SPECS[family]
    endpoint = endpoint_name(family)
    if options.api_key_ids and "api_key_id" not in spec.group_by:
        raise UsageApiError(
            f"OpenAI {endpoint} API cannot filter by api_key_ids; its series would be the "
            "whole project's",
            permanent=True,
            reason="unavailable",
        )
    pages = series_requests(start, end, name)
    allowed = options.max_pages if max_requests is None else min(options.max_pages, max_requests)
    if pages > allowed:
        raise UsageApiError(
            f"a {name} series of {start:%Y-%m-%d %H:%M}–{end:%Y-%m-%d %H:%M} UTC takes {pages} "
            f"requests of the OpenAI {endpoint} API; only {allowed} allowed",
            permanent=True,
            reason="budget",
        )
    buckets = (end - start) // WIDTHS[name]
    params = [
        ("start_time", str(int(start.timestamp()))),
        ("end_time", str(int(end.timestamp()))),
        ("bucket_width", name),
        ("limit", str(min(buckets, PAGE_LIMITS[name]))),
        *array_params("group_by", [g for g in ("model", "project_id") if g in spec.group_by]),
        *array_params("project_ids", options.project_ids),
        *array_params("api_key_ids", options.api_key_ids),
    ]
    client = OpenAIClient(replace(options, max_pages=allowed), session, deadline)
    fetched = client.fetch(endpoint=endpoint, path=spec.path, params=params)
    product = PRODUCT_MODELS.get(family)
    sums: defaultdict[tuple[datetime, str, str | None], Usage] = defaultdict(lambda: EMPTY)
    for bucket in fetched.buckets:
        moment = datetime.fromtimestamp(bucket.start_time, tz=UTC)
        if not start <= moment < end:
            continue  # aligned bounds: should not happen, and is never counted
        for result in bucket.results:
            model = product or optional_str(result, "model", endpoint) or UNKNOWN_MODEL
            project = optional_str(result, "project_id", endpoint)
            usage, _ = parse_result(family, result, endpoint)
            sums[moment, model, project] = sums[moment, model, project] + usage
    points = tuple(
        SeriesPoint(start=moment, model=model, project_id=project, usage=usage)
        for (moment, model, project), usage in sorted(
            sums.items(), key=lambda item: (item[0][0], item[0][1], item[0][2] or "")
        )
    )
    log.info(
        EVENT_SERIES_FETCHED,
        family=family,
        width=name,
        start=start.isoformat(),
        end=end.isoformat(),
        points=len(points),
        pages=fetched.pages,
    )
    return FetchedSeries(family, name, start, end, points, fetched.pages)


def as_series(family: str, points: Iterable[SeriesPoint]) -> Series:
    """``points`` as (family, model, project id) -> bucket start -> usage."""
    out: Series = {}
    for point in points:
        buckets = out.setdefault((family, point.model, point.project_id), {})
        buckets[point.start] = buckets.get(point.start, EMPTY) + point.usage
    return out


def quantity_series(
    points: Iterable[SeriesPoint],
    quantity: str,
    *,
    select: Callable[[SeriesPoint], bool] | None = None,
) -> dict[datetime, Decimal]:
    """One quantity (a ``Usage`` field, or ``tokens``) per bucket, summed over the points
    ``select`` accepts (all by default): the OpenAI side of :func:`recon_job.diagnosis.locate`."""
    out: dict[datetime, Decimal] = {}
    for point in points:
        if select is None or select(point):
            out[point.start] = out.get(point.start, Decimal(0)) + Decimal(
                point.usage.quantity(quantity)
            )
    return out


class SeriesFetcher:
    """``(family, start, end, width) -> (series, requests made)``, through a cache.

    A span in the cache costs no request. A fetched span is saved when it ends at or before
    ``settled_before`` (aware UTC; None: always): OpenAI still adds to recent buckets, and a
    cached series of an unsettled day would be stale on the next run. ``now`` stamps what is
    saved (the clock is passed in).
    """

    def __init__(  # noqa: PLR0913 -- keyword-only collaborators
        self,
        options: OpenAIOptions,
        session: requests.Session,
        *,
        now: datetime,
        cache: SeriesCache | None = None,
        deadline: Deadline | None = None,
        settled_before: datetime | None = None,
    ) -> None:
        self.options = options
        self.session = session
        self.now = now
        self.cache = cache
        self.deadline = deadline
        self.settled_before = settled_before

    def requests_needed(
        self, family: str, start: datetime, end: datetime, width: timedelta | str
    ) -> int:
        """What :meth:`fetch` would cost: 0 when the span is cached, else its pages (for a
        caller spending a request budget)."""
        name = width_name(width)
        start, end = _bounds(start, end, name)
        if (
            self.cache is not None
            and self.cache.cached_series(family, name, start, end) is not None
        ):
            return 0
        return series_requests(start, end, name)

    def fetch(
        self,
        family: str,
        start: datetime,
        end: datetime,
        width: timedelta | str,
        *,
        max_requests: int | None = None,
    ) -> FetchedSeries:
        """The series, from the cache or from OpenAI (see :func:`fetch_series`)."""
        name = width_name(width)
        start, end = _bounds(start, end, name)
        if self.cache is not None:
            cached = self.cache.cached_series(family, name, start, end)
            if cached is not None:
                log.debug(EVENT_SERIES_CACHED, family=family, width=name, points=len(cached))
                return FetchedSeries(family, name, start, end, tuple(cached), 0)
        fetched = fetch_series(
            self.options,
            self.session,
            family,
            start,
            end,
            name,
            deadline=self.deadline,
            max_requests=max_requests,
        )
        if self.cache is not None and (self.settled_before is None or end <= self.settled_before):
            self.cache.save_series(family, name, start, end, fetched.points, self.now)
        return fetched

    def __call__(
        self, family: str, start: datetime, end: datetime, width: timedelta
    ) -> tuple[Series, int]:
        """The series as :mod:`recon_job.investigate` reads it, and the requests it cost."""
        fetched = self.fetch(family, start, end, width)
        return as_series(family, fetched.points), fetched.requests
