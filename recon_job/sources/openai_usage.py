"""OpenAI's organization Usage API (completions) as a usage source: what OpenAI counted, in tokens.

``GET {base_url}/organization/usage/completions`` with daily buckets over the window, grouped by
model (and project / API key when configured). Every result of every bucket is summed into its
:class:`~recon_job.models.UsageKey`; model names stay the dated snapshots OpenAI reports
(``gpt-4o-2024-08-06``) — the job normalises both sides later. Cost is left at zero: money comes
from the Costs API (``openai_costs``), which is OpenAI's source of truth for spend.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Final

import requests
import structlog

from recon_job.http import Deadline
from recon_job.models import Usage, UsageKey, UsageTotals, Window
from recon_job.sources.openai_common import (
    OpenAIClient,
    OpenAIOptions,
    array_params,
    optional_int,
    optional_str,
    require_int,
    window_params,
)

log = structlog.get_logger(__name__)

#: Logged once per successful fetch.
EVENT_USAGE_FETCHED: Final = "openai.usage.fetched"

#: Path under the base URL.
USAGE_PATH: Final = "/organization/usage/completions"
#: The most daily buckets one page may hold (reference §1.2).
USAGE_LIMIT: Final = 31
#: Model name used when OpenAI reports none (not grouped by model, or null in the data).
UNKNOWN_MODEL: Final = "(unknown)"

_ENDPOINT: Final = "Usage"


class OpenAIUsageSource:
    """Token usage per UTC day × model [× project × API key] from OpenAI's Usage API.

    ``session`` must come from :func:`recon_job.http.make_session` (ideally made with the same
    ``deadline``, so the adapter's retries stop at it too). ``fetch`` raises
    :class:`~recon_job.errors.UsageApiError` on any failure, never returns partial data.
    """

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
            *window_params(window, limit=USAGE_LIMIT),
            *array_params("group_by", options.group_by),
            *array_params("project_ids", options.project_ids),
            *array_params("api_key_ids", options.api_key_ids),
        ]

    def fetch(self, window: Window) -> UsageTotals:
        """Usage of every UTC day in ``window``; raises ``UsageApiError`` if it cannot be had."""
        fetched = self._client.fetch(
            endpoint=_ENDPOINT, path=USAGE_PATH, params=self.params(window)
        )
        by_project = "project_id" in self.options.group_by
        by_api_key = "api_key_id" in self.options.group_by
        groups: defaultdict[UsageKey, Usage] = defaultdict(Usage)
        outside = results = 0
        for bucket in fetched.buckets:
            day = bucket.day
            if day not in window:
                # We send aligned start/end times, so this should not happen; never count it.
                outside += 1
                continue
            # Sum every result: a bucket holds one per group-by combination (reference §1.8).
            for result in bucket.results:
                results += 1
                key = UsageKey(
                    day=day,
                    model=optional_str(result, "model", _ENDPOINT) or UNKNOWN_MODEL,
                    project_id=optional_str(result, "project_id", _ENDPOINT)
                    if by_project
                    else None,
                    api_key_id=optional_str(result, "api_key_id", _ENDPOINT)
                    if by_api_key
                    else None,
                )
                groups[key] = groups[key] + Usage(
                    input_tokens=require_int(result, "input_tokens", _ENDPOINT),
                    # Optional: absent from older data; already inside input_tokens (§4.3).
                    cached_tokens=optional_int(result, "input_cached_tokens", _ENDPOINT),
                    output_tokens=require_int(result, "output_tokens", _ENDPOINT),
                    requests=require_int(result, "num_model_requests", _ENDPOINT),
                )
        info = {
            "usage_pages": fetched.pages,
            "usage_buckets": len(fetched.buckets),
            "usage_results": results,
        }
        if outside:
            info["usage_buckets_outside_window"] = outside
        log.info(EVENT_USAGE_FETCHED, window=window.key, groups=len(groups), **info)
        return UsageTotals(groups=dict(groups), info=info)
