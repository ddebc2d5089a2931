"""OpenAI's organization Usage and Costs APIs as usage sources: what OpenAI counted and billed.

:class:`OpenAIClient` fetches every page of one endpoint over the one HTTP session
(:mod:`recon_job.http`), bounded by the run's deadline; :class:`OpenAIUsageSource` (one per
usage family, :func:`usage_sources`) and :class:`OpenAICostsSource` turn the pages into usage per
UTC day and group; :func:`map_line_item` says which family, model and piece a billed line item
is. Every failure is a :class:`~recon_job.errors.UsageApiError`, never partial data — except a
family endpoint that answers 404, reported as unavailable. For the shadow-usage finding,
:func:`fetch_scope` sums a window per project, API key and user, and :class:`AdminNames` reads
project and key names; both are best effort and never raise.
:func:`fetch_series` (through :class:`SeriesFetcher` and a :class:`SeriesCache`) reads one family
in hourly or minute buckets for the gap locator.
"""

from recon_job.models import SeriesPoint
from recon_job.sources.openai.admin import AdminNames, Names
from recon_job.sources.openai.client import Bucket, Fetched, OpenAIClient
from recon_job.sources.openai.costs import (
    LineItem,
    OpenAICostsSource,
    parse_amount,
    parse_line_item,
)
from recon_job.sources.openai.lineitems import (
    Attribution,
    LineItemRules,
    map_line_item,
    per_family_models,
)
from recon_job.sources.openai.options import OpenAIOptions
from recon_job.sources.openai.results import parse_result
from recon_job.sources.openai.scope import fetch_scope
from recon_job.sources.openai.series import (
    FetchedSeries,
    SeriesCache,
    SeriesFetcher,
    as_series,
    fetch_series,
    quantity_series,
    series_requests,
)
from recon_job.sources.openai.usage import OpenAIUsageSource, usage_sources

__all__ = [
    "AdminNames",
    "Attribution",
    "Bucket",
    "Fetched",
    "FetchedSeries",
    "LineItem",
    "LineItemRules",
    "Names",
    "OpenAIClient",
    "OpenAICostsSource",
    "OpenAIOptions",
    "OpenAIUsageSource",
    "SeriesCache",
    "SeriesFetcher",
    "SeriesPoint",
    "as_series",
    "fetch_scope",
    "fetch_series",
    "map_line_item",
    "parse_amount",
    "parse_line_item",
    "parse_result",
    "per_family_models",
    "quantity_series",
    "series_requests",
    "usage_sources",
]
