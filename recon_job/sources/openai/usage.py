"""OpenAI's organization Usage API as a usage source: what OpenAI counted, one family at a time.

``GET {base_url}/organization/usage/{family}`` with daily buckets over the window (reference
§1.3), asking only for the ``group_by`` values that endpoint accepts among the configured ones
(vector stores and code-interpreter sessions: the project only; file searches: no model). Every
result of every bucket is parsed by :mod:`~recon_job.sources.openai.results` and summed into its
:class:`~recon_job.models.UsageKey`, with the family in the key. Model names stay the dated
snapshots OpenAI reports (``gpt-4o-2024-08-06``) — the job normalises both sides later; a family
OpenAI reports per project only gets its product name (:data:`recon_job.families.PRODUCT_MODELS`).
Cost is left at zero: money comes from the Costs API (``openai_costs``).

A family whose endpoint answers 404 (an older deployment that does not know it yet) is reported
in ``UsageTotals.unavailable_families``, not raised; so is a family whose endpoint cannot apply
the configured ``api_key_ids`` filter. Completions is the exception: its endpoint has always
existed, so a 404 there means a wrong base URL and fails the run like any other error.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Final

import requests
import structlog

from recon_job.errors import UsageApiError
from recon_job.families import COMPLETIONS, PRODUCT_MODELS, SPECS
from recon_job.http import Deadline
from recon_job.models import Usage, UsageKey, UsageTotals, Window
from recon_job.sources.groups import GroupLimit
from recon_job.sources.openai.base import OpenAISource, optional_str
from recon_job.sources.openai.options import OpenAIOptions
from recon_job.sources.openai.results import parse_result

log = structlog.get_logger(__name__)

#: Logged once per successful fetch of one family.
EVENT_USAGE_FETCHED: Final = "openai.usage.fetched"
#: Logged when a family's endpoint is not there (HTTP 404) or cannot apply the filters.
EVENT_FAMILY_UNAVAILABLE: Final = "openai.usage.family_unavailable"

#: Path of the completions endpoint under the base URL.
USAGE_PATH: Final = SPECS[COMPLETIONS].path
#: The most daily buckets one page may hold (reference §1.2).
USAGE_LIMIT: Final = 31
#: Model name used when OpenAI reports none (not grouped by model, or null in the data).
UNKNOWN_MODEL: Final = "(unknown)"


def endpoint_name(family: str) -> str:
    """The API's name in messages: ``Usage`` for completions, ``Usage (embeddings)`` ..."""
    return "Usage" if family == COMPLETIONS else f"Usage ({family})"


class OpenAIUsageSource(OpenAISource):
    """Usage of one family per UTC day × model [× project × API key] from OpenAI's Usage API.

    ``family`` is a name of :data:`recon_job.families.FAMILIES` (default: completions).
    ``session`` must come from :func:`recon_job.http.make_session` (ideally made with the same
    ``deadline``, so the adapter's retries stop at it too). ``fetch`` raises
    :class:`~recon_job.errors.UsageApiError` on any failure, never returns partial data.
    """

    _limit = USAGE_LIMIT

    def __init__(
        self,
        options: OpenAIOptions,
        session: requests.Session,
        deadline: Deadline | None = None,
        *,
        family: str = COMPLETIONS,
    ) -> None:
        super().__init__(options, session, deadline)
        self.spec = SPECS[family]
        self._endpoint = endpoint_name(family)
        self._path = self.spec.path

    @property
    def family(self) -> str:
        """The family this source fetches."""
        return self.spec.name

    @property
    def _prefix(self) -> str:
        return "usage" if self.family == COMPLETIONS else f"usage_{self.family}"

    def _group_by(self) -> list[str]:
        # Only what this endpoint accepts (reference §1.3): another value is a 400.
        return [name for name in self.options.group_by if name in self.spec.group_by]

    def fetch(self, window: Window) -> UsageTotals:
        """Usage of every UTC day in ``window``; raises ``UsageApiError`` if it cannot be had."""
        family = self.family
        if self.options.api_key_ids and "api_key_id" not in self.spec.group_by:
            # The endpoint has no api_key_ids filter: its figures would be the whole project's.
            return self._unavailable(window, "no api_key_ids filter")
        try:
            fetched = self._fetch(window)
        except UsageApiError as e:
            if e.status == 404 and family != COMPLETIONS:
                return self._unavailable(window, "HTTP 404")
            raise
        groups: defaultdict[UsageKey, Usage] = defaultdict(Usage)
        counts: Counter[str] = Counter()
        product = PRODUCT_MODELS.get(family)
        limit = GroupLimit(self.options.max_groups)
        for day, result in self._results(fetched, window, counts):
            if product is not None:
                model = product
            else:
                model = optional_str(result, "model", self._endpoint) or UNKNOWN_MODEL
            usage, consistent = parse_result(family, result, self._endpoint)
            if not consistent:
                counts["inconsistent_results"] += 1
            key = self._key(day, model, result, family)
            if key not in groups:
                self._count_group(limit, key, window)
            groups[key] = groups[key] + usage
        info = self._info(fetched, counts, ("buckets_outside_window", "inconsistent_results"))
        log.info(EVENT_USAGE_FETCHED, family=family, window=window.key, groups=len(groups), **info)
        return UsageTotals(groups=dict(groups), info=info)

    def _unavailable(self, window: Window, reason: str) -> UsageTotals:
        log.warning(EVENT_FAMILY_UNAVAILABLE, family=self.family, window=window.key, reason=reason)
        return UsageTotals(unavailable_families=(self.family,))


def usage_sources(
    options: OpenAIOptions, session: requests.Session, deadline: Deadline | None = None
) -> tuple[OpenAIUsageSource, ...]:
    """One source per family of ``options.families``, sharing the session and the deadline."""
    return tuple(
        OpenAIUsageSource(options, session, deadline, family=family) for family in options.families
    )
