"""OpenAI's organization Usage API (completions) as a usage source: what OpenAI counted, in tokens.

``GET {base_url}/organization/usage/completions`` with daily buckets over the window, grouped by
model (and project / API key when configured). Every result of every bucket is summed into its
:class:`~recon_job.models.UsageKey`; model names stay the dated snapshots OpenAI reports
(``gpt-4o-2024-08-06``) — the job normalises both sides later. Cost is left at zero: money comes
from the Costs API (``openai_costs``), which is OpenAI's source of truth for spend.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Final

import structlog

from recon_job.models import Usage, UsageKey, UsageTotals, Window
from recon_job.sources.openai.base import OpenAISource, optional_int, optional_str, require_int

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


class OpenAIUsageSource(OpenAISource):
    """Token usage per UTC day × model [× project × API key] from OpenAI's Usage API.

    ``session`` must come from :func:`recon_job.http.make_session` (ideally made with the same
    ``deadline``, so the adapter's retries stop at it too). ``fetch`` raises
    :class:`~recon_job.errors.UsageApiError` on any failure, never returns partial data.
    """

    _endpoint = _ENDPOINT
    _path = USAGE_PATH
    _limit = USAGE_LIMIT

    def fetch(self, window: Window) -> UsageTotals:
        """Usage of every UTC day in ``window``; raises ``UsageApiError`` if it cannot be had."""
        fetched = self._fetch(window)
        groups: defaultdict[UsageKey, Usage] = defaultdict(Usage)
        counts: Counter[str] = Counter()
        for day, result in self._results(fetched, window, counts):
            model = optional_str(result, "model", _ENDPOINT) or UNKNOWN_MODEL
            key = self._key(day, model, result)
            groups[key] = groups[key] + Usage(
                input_tokens=require_int(result, "input_tokens", _ENDPOINT),
                # Optional: absent from older data; already inside input_tokens (§4.3).
                cached_tokens=optional_int(result, "input_cached_tokens", _ENDPOINT),
                output_tokens=require_int(result, "output_tokens", _ENDPOINT),
                requests=require_int(result, "num_model_requests", _ENDPOINT),
            )
        info = self._info(fetched, counts, ("buckets_outside_window",))
        log.info(EVENT_USAGE_FETCHED, window=window.key, groups=len(groups), **info)
        return UsageTotals(groups=dict(groups), info=info)
