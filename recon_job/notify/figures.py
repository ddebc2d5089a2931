"""How a notification shows figures: one money style per message, counts, aligned text columns.

Every part of a message (email text and HTML, Slack) writes money the way the text report does
(:func:`recon_job.report.formats.money_text`): a ``$`` sign, thousands separators and
:data:`PLACES` decimals throughout — more only for an amount that would otherwise read as
``$0.00`` — so two figures in one message always line up and compare. Counts carry thousands
separators, percentages two decimals. The webhook JSON keeps the exact decimal strings of
``recon-job run --format json``; only what people read is rounded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from recon_job.families import deciding
from recon_job.models import Comparison, Metric
from recon_job.report.formats import (
    count_text,
    money_text,
    pct_text,
    quantity_label,
    signed_money_text,
)

#: Decimals of every amount in a message (a tiny non-zero amount keeps two significant digits).
PLACES: Final = 2

#: The quantities a message compares, in the order it lists them, with their labels.
QUANTITIES: Final = (("cost", "Cost"), ("tokens", "Tokens"), ("requests", "Requests"))


def money(value: Decimal) -> str:
    """An amount for people: ``$18,047.83``, ``-$0.60``, ``$0.0034``."""
    return money_text(value, places=PLACES)


def signed_money(value: Decimal) -> str:
    """A difference in USD for people: ``+$0.42``, ``-$1,200.00``, ``$0.00``."""
    return signed_money_text(value, places=PLACES)


def metric_row(label: str, metric: Metric, *, is_money: bool) -> dict[str, Any]:
    """One compared quantity as display strings: ``label``, ``local``, ``openai``,
    ``difference``, ``pct`` and ``exceeds`` (out of tolerance)."""
    if is_money:
        local, openai = money(metric.local), money(metric.openai)
        difference = signed_money(metric.difference)
    else:
        local, openai = count_text(metric.local), count_text(metric.openai)
        difference = count_text(metric.difference, signed=True)
    return {
        "label": label,
        "local": local,
        "openai": openai,
        "difference": difference,
        "pct": pct_text(metric.pct),
        "exceeds": metric.exceeds,
    }


def main_quantity(family: str | None) -> str:
    """The count a group of ``family`` is shown by: its first deciding quantity other than
    requests and cost (``images``, ``characters``, ``seconds`` ...); ``tokens`` for token
    families, ``other`` and the totals (None)."""
    if family is None:
        return "tokens"
    return next((q for q in deciding(family) if q not in ("requests", "cost")), "tokens")


def metric_rows(comparison: Comparison, family: str | None = None) -> dict[str, dict[str, Any]]:
    """``tokens``, ``requests`` and ``cost`` rows of a comparison (see :func:`metric_row`).

    For a group of a family not counted in tokens the ``tokens`` row shows that family's own
    count instead, labelled so (``Images``, ``Characters``, ``Seconds of audio`` ...): three
    rows for every group, so a message keeps its size.
    """
    main = main_quantity(family)
    metric = comparison.metric(main) or comparison.tokens
    return {
        "tokens": metric_row(quantity_label(main).capitalize(), metric, is_money=False),
        "requests": metric_row("Requests", comparison.requests, is_money=False),
        "cost": metric_row("Cost", comparison.cost, is_money=True),
    }


def aligned(rows: Sequence[Sequence[str]], *, left: int = 1) -> list[str]:
    """``rows`` as aligned text columns: the first ``left`` columns left-aligned, the rest right.

    Every row must have as many cells as the first one.
    """
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(width) if i < left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


#: The header of a text table of metric rows: which side is which, and the difference.
TEXT_HEADER: Final = ("", "local (yours)", "OpenAI", "difference", "%", "")


def text_cells(rows: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, ...]]:
    """The cost, tokens and requests rows as text table cells; ``!`` marks one out of
    tolerance."""
    return [
        (
            row["label"],
            row["local"],
            row["openai"],
            row["difference"],
            row["pct"],
            "!" if row["exceeds"] else "",
        )
        for row in (rows[name] for name, _ in QUANTITIES)
    ]


def decimal_or_none(value: object) -> Decimal | None:
    """An exact decimal string of the payload (``"12.500000"``) as a Decimal; None if absent."""
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


__all__ = [
    "PLACES",
    "QUANTITIES",
    "TEXT_HEADER",
    "aligned",
    "decimal_or_none",
    "main_quantity",
    "metric_row",
    "metric_rows",
    "money",
    "signed_money",
    "text_cells",
]
