"""The two small interfaces every usage source is built on.

A *source* turns one window into :class:`~recon_job.models.UsageTotals`. Local sources (NDJSON
logs, a database table) estimate cost with a *pricer* when a record carries no cost of its own;
official sources (OpenAI's Usage and Costs APIs, dashboard CSV exports) report what OpenAI counted.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Protocol

from recon_job.models import Tier, Usage, UsageTotals, Window

#: The largest token count a record may carry: 2**53 - 1, the largest integer every JSON reader
#: keeps exactly (JavaScript's ``Number.MAX_SAFE_INTEGER``). A larger count is garbage, and sums
#: of such counts overflow the 64-bit integers of the history database.
MAX_TOKENS = 2**53 - 1
#: A record's cost must be below this many USD (a quadrillion: no request costs that much), so
#: that sums and percentages of costs stay far inside Decimal's range (``1e999999`` overflows).
MAX_COST_USD = Decimal(10) ** 15


def cost_in_range(amount: Decimal) -> bool:
    """True for a finite, non-negative ``amount`` of USD below :data:`MAX_COST_USD`: what a
    local record's cost may be (else it is skipped as ``bad_cost``)."""
    # is_finite first: ordering a NaN raises InvalidOperation.
    return amount.is_finite() and _ZERO <= amount < MAX_COST_USD


_ZERO = Decimal(0)


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


#: A local series' group: (family, model as logged, project id or None).
SeriesKey = tuple[str, str, str | None]


class SeriesSource(Protocol):
    """A local source that can sum its usage per time bucket (the gap locator's local side).

    ``series`` returns, per (family, model as logged, project id), the usage of each bucket of
    ``width`` (``1h`` or ``1m``; any width dividing a day) that has some: bucket start (aware
    UTC, aligned to ``width`` from UTC midnight) -> usage, priced and deduped exactly as
    ``fetch`` prices and dedupes it. Only records in ``[start, end)`` (aware datetimes) count.
    Bad records are skipped as ``fetch`` skips them, never raised.
    """

    def series(
        self, start: datetime, end: datetime, width: timedelta
    ) -> dict[SeriesKey, dict[datetime, Usage]]:
        """Usage per group and bucket of ``width`` in ``[start, end)``."""
        ...


def series_bounds(start: datetime, end: datetime, width: timedelta) -> tuple[datetime, datetime]:
    """``start`` and ``end`` in UTC, checked: aware, ``start < end``, ``width`` dividing a day.

    Raises ValueError otherwise (a caller's mistake, not data).
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("series bounds must be aware datetimes")
    seconds = width.total_seconds()
    if seconds <= 0 or seconds != int(seconds) or 86400 % int(seconds):
        raise ValueError(f"series width {width} does not divide a day into whole seconds")
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        raise ValueError(f"series end {end} must be after its start {start}")
    return start, end


def bucket_of(moment: datetime, width: timedelta) -> datetime:
    """The start of the bucket of ``width`` holding aware UTC ``moment``, aligned from midnight."""
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + ((moment - midnight) // width) * width


class Pricer(Protocol):
    """Prices usage in USD.

    ``cost`` returns the cost of ``usage`` (its ``input_tokens`` include ``cached_tokens``) for
    ``model`` on UTC ``day`` at ``tier``, or None when the model or tier has no price for that day.
    None means *unpriced*, never $0. ``variant`` is an image's ``SIZE/QUALITY``
    (``1024x1024/hd``), passed only for usage of images logged with a size.
    """

    def cost(
        self, model: str, day: date, tier: Tier, usage: Usage, variant: str | None = None
    ) -> Decimal | None:
        """USD for ``usage``, or None when unpriced."""
        ...
