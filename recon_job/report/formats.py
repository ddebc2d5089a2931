"""How figures are written out: money and percentages as exact decimal strings, usage as fields.

Shared by the run report (:mod:`recon_job.report.run`), the per-request report and the Python API,
so a figure reads the same wherever it appears. Imports only :mod:`recon_job.models` and
:mod:`recon_job.families`.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Context, Decimal
from typing import Any

from recon_job.families import EXTRA_QUANTITIES, SPECS
from recon_job.models import MONEY, Usage

_SIX = Decimal("0.000001")
_MILLION = Decimal(1_000_000)
#: Percentages with this many integer digits or more are rounded to significant digits.
_HUGE_PCT_DIGITS = 18
_WIDE = Context(prec=_HUGE_PCT_DIGITS + 8)
_SIGNIFICANT = Context(prec=7, Emax=999_999_999, Emin=-999_999_999)
_WIDE_MONEY = Context(prec=120, Emax=999_999_999, Emin=-999_999_999)
#: Decimals shown at most for a tiny amount; below that it reads "<$0.0000000001".
_MAX_MONEY_PLACES = 10


# A spreadsheet runs a cell starting with one of these as a formula (OWASP "CSV injection").
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def sheet_text(value: object) -> str:
    """A CSV cell of text that a spreadsheet shows as text: a leading ``'`` when it would run
    as a formula. Model names, project and key ids come from logs and from OpenAI: untrusted."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(_FORMULA) else text


def money(value: Decimal, *, keep_zeros: bool = False) -> str:
    """Exact USD as a string with at least 6 decimals, never rounded (``1.5`` -> ``1.500000``).

    Digits past the sixth are shown only when they are not zeros, unless ``keep_zeros``: then
    they stay as ``value`` carries them (``0.00123400``), as a billing file wrote them.
    """
    shown = value if keep_zeros else value.normalize(MONEY)  # the default context rounds to 28
    exponent = shown.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -6:
        return format(value.quantize(_SIX, context=MONEY), "f")
    return format(shown, "f")


def money_text(value: Decimal, *, places: int = 2) -> str:
    """USD for people: ``$18,047.83``, ``-$0.60``, with ``places`` decimals.

    A non-zero figure that would round to zero keeps two significant digits instead
    (``$0.0034``, never ``$0.00``), so a small cost never reads as free.
    """
    shown = value.quantize(Decimal(1).scaleb(-places), context=_WIDE_MONEY)
    sign = "-" if value < 0 else ""
    if shown == 0 and value != 0:
        digits = max(places, -value.adjusted() + 1)
        if digits > _MAX_MONEY_PLACES:
            return f"{sign}<${Decimal(1).scaleb(-_MAX_MONEY_PLACES):.{_MAX_MONEY_PLACES}f}"
        shown = value.quantize(Decimal(1).scaleb(-digits), context=_WIDE_MONEY)
        return f"{sign}${abs(shown):,.{digits}f}"
    return f"{sign if shown else ''}${abs(shown):,.{places}f}"


def signed_money_text(value: Decimal, *, places: int = 2) -> str:
    """A difference in USD for people: ``+$0.42``, ``-$1,200.00``, ``$0.00`` when none."""
    text = money_text(value, places=places)
    return text if value <= 0 else f"+{text}"


def count_text(value: int | Decimal, *, signed: bool = False) -> str:
    """A count with thousands separators (``1,529``), signed for differences (``+12``)."""
    return f"{int(value):+,}" if signed else f"{int(value):,}"


def pct_value(value: Decimal | None) -> Decimal | None:
    """A percentage rounded for reporting: 6 decimals, or 7 significant digits when huge.

    A percentage relative to a tiny official figure can be astronomically large (local $0.036
    against an OpenAI cost of 1e-36 is +3.6e36 %). Quantizing that to 6 decimals needs 43
    digits, more than the default context holds, so it is rounded to significant digits instead
    (``3.600E+36``); every context used here is wide enough that rounding never overflows.
    """
    if value is None:
        return None
    if not value.is_finite() or value.adjusted() >= _HUGE_PCT_DIGITS:
        return _SIGNIFICANT.plus(value)
    return value.quantize(_SIX, context=_WIDE)


def pct(value: Decimal | None) -> str | None:
    """A percentage as a decimal string (6 decimals; see :func:`pct_value`), None if undefined."""
    shown = pct_value(value)
    return None if shown is None else str(shown)


def pct_text(value: Decimal | None) -> str:
    """A percentage for people: signed, two decimals (``+5.00%``), ``n/a`` when undefined.

    Beyond ±1,000,000 % the figure says "far off" better in scientific notation (``+3.60e+36%``).
    """
    if value is None:
        return "n/a"
    if not value.is_finite() or value.copy_abs() >= _MILLION:
        return f"{value:+.2e}%"
    return f"{value:+.2f}%"


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


#: How each quantity is named for people (the token classes read as in OpenAI's docs).
QUANTITY_LABELS: dict[str, str] = {
    "tokens": "tokens",
    "requests": "requests",
    "cost": "cost",
    "cache_write_tokens": "cache-write tokens",
    "input_audio_tokens": "audio input tokens",
    "cached_audio_tokens": "cached audio tokens",
    "input_image_tokens": "image input tokens",
    "cached_image_tokens": "cached image tokens",
    "output_audio_tokens": "audio output tokens",
    "output_image_tokens": "image output tokens",
    "images": "images",
    "characters": "characters",
    "seconds": "seconds of audio",
    "sessions": "sessions",
    "calls": "calls",
    "usage_bytes": "bytes stored",
}


def quantity_label(name: str) -> str:
    """``name`` as people read it (``seconds of audio``, ``bytes stored``)."""
    return QUANTITY_LABELS.get(name, name.replace("_", " "))


def family_quantities(family: str | None) -> tuple[str, ...]:
    """The quantities of ``family`` beyond tokens, requests and cost (images, seconds, token
    classes ...): its deciding and detail quantities (:data:`recon_job.families.SPECS`); none
    for ``other`` or a total (None)."""
    spec = SPECS.get(family) if family is not None else None
    if spec is None:
        return ()
    return tuple(q for q in (*spec.deciding, *spec.details) if q in EXTRA_QUANTITIES)


def side(usage: Usage, family: str | None, extra: Iterable[str] = ()) -> dict[str, Any]:
    """One side of a group (or total): the totals object plus the quantities of ``family`` and
    any ``extra`` quantity names, each only where it applies."""
    names = dict.fromkeys((*family_quantities(family), *extra))
    return {**totals(usage), **{name: int(usage.quantity(name)) for name in names}}
