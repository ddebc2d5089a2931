"""OpenAI's organization Usage and Costs APIs as usage sources: what OpenAI counted and billed.

:class:`OpenAIClient` fetches every page of one endpoint over the one HTTP session
(:mod:`recon_job.http`), bounded by the run's deadline; :class:`OpenAIUsageSource` (one per
usage family, :func:`usage_sources`) and :class:`OpenAICostsSource` turn the pages into usage per
UTC day and group; :func:`map_line_item` says which family, model and piece a billed line item
is. Every failure is a :class:`~recon_job.errors.UsageApiError`, never partial data — except a
family endpoint that answers 404, reported as unavailable.
"""

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
from recon_job.sources.openai.usage import OpenAIUsageSource, usage_sources

__all__ = [
    "Attribution",
    "Bucket",
    "Fetched",
    "LineItem",
    "LineItemRules",
    "OpenAIClient",
    "OpenAICostsSource",
    "OpenAIOptions",
    "OpenAIUsageSource",
    "map_line_item",
    "parse_amount",
    "parse_line_item",
    "parse_result",
    "per_family_models",
    "usage_sources",
]
