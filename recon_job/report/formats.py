"""How figures are written out: money and percentages as exact decimal strings, usage as fields.

Shared by the run report (:mod:`recon_job.report.run`), the per-request report and the Python API,
so a figure reads the same wherever it appears. Imports only :mod:`recon_job.models`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from recon_job.models import MONEY, Usage

_SIX = Decimal("0.000001")


def money(value: Decimal, *, keep_zeros: bool = False) -> str:
    """Exact USD as a string with at least 6 decimals, never rounded (``1.5`` -> ``1.500000``).

    Digits past the sixth are shown only when they are not zeros, unless ``keep_zeros``: then
    they stay as ``value`` carries them (``0.00123400``), as a billing file wrote them.
    """
    shown = value if keep_zeros else value.normalize()
    exponent = shown.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -6:
        return format(value.quantize(_SIX, context=MONEY), "f")
    return format(shown, "f")


def pct(value: Decimal | None) -> str | None:
    """A percentage with 6 decimals, or None when undefined."""
    return None if value is None else str(value.quantize(_SIX))


def pct_text(value: Decimal | None) -> str:
    """A percentage for people: signed, two decimals (``+5.00%``), ``n/a`` when undefined."""
    return "n/a" if value is None else f"{value:+.2f}%"


def usage_counts(usage: Usage, *, total: str = "tokens") -> dict[str, int]:
    """The token and request counts of ``usage``, the token total under the key ``total``."""
    return {
        "input_tokens": usage.input_tokens,
        "cached_tokens": usage.cached_tokens,
        "output_tokens": usage.output_tokens,
        total: usage.total_tokens,
        "requests": usage.requests,
    }


def totals(usage: Usage) -> dict[str, Any]:
    """The totals object: tokens, requests and cost of one side."""
    return {**usage_counts(usage), "cost": money(usage.cost)}
