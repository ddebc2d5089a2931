"""OpenAI's organization Usage and Costs APIs as usage sources: what OpenAI counted and billed.

:class:`OpenAIClient` fetches every page of one endpoint over the one HTTP session
(:mod:`recon_job.http`), bounded by the run's deadline; :class:`OpenAIUsageSource` and
:class:`OpenAICostsSource` turn the pages into usage per UTC day and group. Every failure is a
:class:`~recon_job.errors.UsageApiError`, never partial data.
"""

from recon_job.sources.openai.client import Bucket, Fetched, OpenAIClient
from recon_job.sources.openai.costs import (
    LineItem,
    OpenAICostsSource,
    parse_amount,
    parse_line_item,
)
from recon_job.sources.openai.options import OpenAIOptions
from recon_job.sources.openai.usage import OpenAIUsageSource

__all__ = [
    "Bucket",
    "Fetched",
    "LineItem",
    "OpenAIClient",
    "OpenAICostsSource",
    "OpenAIOptions",
    "OpenAIUsageSource",
    "parse_amount",
    "parse_line_item",
]
