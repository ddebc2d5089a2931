"""How the findings' sentences write dollars: one rule for every sentence.

``$1,234.56``; a non-zero amount under a cent keeps two significant digits (``$0.0041``), so a
key that cost a fraction of a cent never reads as ``$0.00`` and a 36-decimal amount never prints
36 digits.
"""

from __future__ import annotations

from decimal import Decimal

from recon_job.models import MONEY

_CENT = Decimal("0.01")


def dollars(value: Decimal, *, signed: bool = False) -> str:
    """``value`` in USD as the sentences write it (``+`` on a positive amount when ``signed``)."""
    sign = "-" if value < 0 else ("+" if signed and value > 0 else "")
    size = abs(value)
    places = 2
    if size and size < _CENT:
        places = min(-size.adjusted() + 1, 12)
    shown = size.quantize(Decimal(1).scaleb(-places), context=MONEY)
    return f"{sign}${shown:,.{places}f}"
