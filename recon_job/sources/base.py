"""The two small interfaces every usage source is built on.

A *source* turns one window into :class:`~recon_job.models.UsageTotals`. Local sources (NDJSON
logs, a database table) estimate cost with a *pricer* when a record carries no cost of its own;
official sources (OpenAI's Usage and Costs APIs, dashboard CSV exports) report what OpenAI counted.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Protocol

from recon_job.models import Tier, Usage, UsageTotals, Window


class UsageSource(Protocol):
    """Anything that reports usage for a window.

    ``fetch`` returns the usage of every UTC day in ``window`` grouped by
    :class:`~recon_job.models.UsageKey`. Expected gaps (a malformed line, an empty day) are data:
    counted in ``UsageTotals.skipped``, not raised. It raises a
    :class:`~recon_job.errors.SourceError` when the figures cannot be had at all; a failed or
    partial fetch is never returned as zero usage.
    """

    def fetch(self, window: Window) -> UsageTotals:
        """Report the usage of ``window``; raise ``SourceError`` if it cannot."""
        ...


class Pricer(Protocol):
    """Prices token usage in USD.

    ``cost`` returns the cost of ``usage`` (its ``input_tokens`` include ``cached_tokens``) for
    ``model`` on UTC ``day`` at ``tier``, or None when the model or tier has no price for that day.
    None means *unpriced*, never $0.
    """

    def cost(self, model: str, day: date, tier: Tier, usage: Usage) -> Decimal | None:
        """USD for ``usage``, or None when unpriced."""
        ...
