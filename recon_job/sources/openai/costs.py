"""OpenAI's organization Costs API as a usage source: what OpenAI billed, in USD.

``GET {base_url}/organization/costs`` with daily buckets, grouped by ``line_item`` (plus project /
API key when configured). Costs results carry no ``model`` field (reference §4.9), so the family
and the model are recovered from the free-text line item (``"gpt-4o-2024-08-06, cached input"``,
``"web search tool calls"``) by :func:`~recon_job.sources.openai.lineitems.map_line_item`; a line
item no rule knows is kept under family ``other`` with its verbatim text, never dropped and never
an error. :func:`parse_line_item` is the plain ``<model>, <piece>`` split the Python API uses.

Line items that carry a ``quantity`` and ``quantity_unit`` (reference §1.5) are also kept as
:class:`~recon_job.findings.BilledLine` (per day x model x piece x tier x unit), from which the
stale-price check (:mod:`recon_job.diagnosis.prices`) finds the unit price OpenAI billed. A
missing, null or unusable quantity never fails the fetch: the line is left out of them, counted.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any, Final

import requests
import structlog

from recon_job.errors import UsageApiError
from recon_job.families import COMPLETIONS, OTHER
from recon_job.findings import BilledLine
from recon_job.http import Deadline
from recon_job.models import UNATTRIBUTED, Usage, UsageKey, UsageTotals, Window
from recon_job.sources.base import MAX_COST_USD
from recon_job.sources.groups import GroupLimit
from recon_job.sources.openai.base import OpenAISource, optional_str
from recon_job.sources.openai.errors import out_of_range_error, schema_error
from recon_job.sources.openai.lineitems import Attribution, LineItemRules, map_line_item
from recon_job.sources.openai.options import OpenAIOptions

log = structlog.get_logger(__name__)

#: Logged once per successful fetch.
EVENT_COSTS_FETCHED: Final = "openai.costs.fetched"

#: Path under the base URL.
COSTS_PATH: Final = "/organization/costs"
#: The most daily buckets one costs page may hold (reference §1.2).
COSTS_LIMIT: Final = 180
#: Decimal digits kept while summing amounts (the default context keeps only 28).
SUM_PRECISION: Final = 100
#: Model name of an ungrouped (``line_item: null``) result: the whole day's cost.
ALL_LINE_ITEMS: Final = UNATTRIBUTED

_ENDPOINT: Final = "Costs"

# Reference §1.8's suggested parse of observed line items, e.g.
# "priority | gpt-5.6-sol, output, long context", "gpt-audio-mini-2025-12-15 audio, input".
_LINE_ITEM = re.compile(
    r"(?:(?P<tier>\w+) \| )?(?P<model>[^,]+?)(?: (?P<modality>text|audio|image))?"
    r", (?P<piece>input|output|cached input|cache writes|[^,]+)(?P<long>, long context)?"
)


@dataclass(frozen=True, slots=True)
class LineItem:
    """A Costs line item split into its parts."""

    #: Service tier prefix (``priority``), or None for standard.
    tier: str | None
    #: Model snapshot name, as billed (``gpt-4o-2024-08-06``).
    model: str
    #: ``text``, ``audio`` or ``image`` when the line item names one.
    modality: str | None
    #: What is billed: ``input``, ``output``, ``cached input``, ``cache writes`` or other text.
    piece: str
    #: True for the ``, long context`` variant.
    long_context: bool


def parse_line_item(text: str) -> LineItem | None:
    """Split a Costs ``line_item`` string; None when it is not ``<model>, <piece>`` shaped.

    Never raises: the format is free text that changes over time (reference §1.8).
    """
    match = _LINE_ITEM.fullmatch(text.strip())
    if match is None:
        return None
    return LineItem(
        tier=match["tier"],
        model=match["model"],
        modality=match["modality"],
        piece=match["piece"],
        long_context=match["long"] is not None,
    )


def parse_amount(amount: Any) -> Decimal | None:
    """USD of a result's ``amount``; None when the amount or its value is null (spec: optional).

    ``value`` may be a JSON number or a string (reference §1.8, openai-java#769); both become an
    exact ``Decimal``. A missing value, a bool, NaN or infinity is a schema error; a currency other
    than ``usd`` is a permanent error.
    """
    if amount is None:
        return None
    if not isinstance(amount, Mapping):
        raise schema_error(_ENDPOINT, "a result's amount is not an object")
    if "value" not in amount:
        raise schema_error(_ENDPOINT, "a result's amount has no value")
    value = amount["value"]
    if value is None:
        return None
    result = _exact(value)
    _require_usd(amount.get("currency"))
    return result


def parse_quantity(result: Mapping[str, Any]) -> tuple[Decimal, str] | None:
    """A result's ``quantity`` (a JSON number or a string) and ``quantity_unit``, or None.

    None when either is missing or null, the quantity is not a finite number or is negative,
    or the unit is not a string: the line stays in the costs, only its unit price is unknown.
    """
    value, unit = result.get("quantity"), result.get("quantity_unit")
    if value is None or isinstance(value, bool) or not isinstance(unit, str) or not unit.strip():
        return None
    if not isinstance(value, int | float | str):
        return None
    try:
        quantity = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    if not quantity.is_finite() or quantity < 0:
        return None
    return quantity, unit.strip().lower()


def billed_piece(found: Attribution) -> str:
    """The piece of a billed line as :class:`BilledLine` names it: ``cached input``, ``audio
    input``, ``output, long context`` (text, the default modality, is left out)."""
    piece = found.piece.strip().lower()
    if found.modality and found.modality.lower() != "text":
        piece = f"{found.modality.lower()} {piece}"
    return f"{piece}, long context" if found.long_context else piece


def _exact(value: object) -> Decimal:
    """An amount's ``value`` (a JSON number or a string) as an exact, finite Decimal."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise schema_error(_ENDPOINT, f"an amount value is a {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise schema_error(_ENDPOINT, "an amount value is not finite")
    try:
        result = Decimal(str(value).strip())
    except InvalidOperation as e:
        raise schema_error(_ENDPOINT, "an amount value is not a number") from e
    if not result.is_finite():
        raise schema_error(_ENDPOINT, "an amount value is not finite")
    if result.copy_abs() >= MAX_COST_USD:  # copy_abs: abs() would round, and could overflow
        # Summing a few of these overflows Decimal's range (decimal.Overflow, a traceback).
        raise out_of_range_error(
            _ENDPOINT, f"an amount of {str(value)[:40]} USD, beyond any real cost"
        )
    return result


def _require_usd(currency: object) -> None:
    """Nothing for USD (any case); a schema error without a currency, a permanent one for others."""
    if not isinstance(currency, str):
        raise schema_error(_ENDPOINT, "an amount has no currency")
    if currency.strip().lower() != "usd":
        raise UsageApiError(
            f"OpenAI Costs API reported an amount in {currency[:10]!r}; recon-job reconciles "
            "USD only",
            permanent=True,
            reason="currency",
        )


class OpenAICostsSource(OpenAISource):
    """Billed USD per UTC day × family × model (from the line item) [× project × API key].

    Same construction and contract as :class:`~recon_job.sources.openai.usage.OpenAIUsageSource`;
    every :class:`~recon_job.models.Usage` it returns has only ``cost`` set. ``options.line_items``
    (the user's patterns) are tried before the built-in rules.
    """

    _endpoint = _ENDPOINT
    _path = COSTS_PATH
    _limit = COSTS_LIMIT

    def __init__(
        self,
        options: OpenAIOptions,
        session: requests.Session,
        deadline: Deadline | None = None,
    ) -> None:
        super().__init__(options, session, deadline)
        #: The user's line-item patterns, compiled once (validated by the settings).
        self.rules = LineItemRules.compile(options.line_items)

    def _group_by(self) -> list[str]:
        # Costs results carry no model: group by line item, from which it is recovered.
        return ["line_item"] + [
            name for name in ("project_id", "api_key_id") if name in self.options.group_by
        ]

    def fetch(self, window: Window) -> UsageTotals:
        """Costs of every UTC day in ``window``; raises ``UsageApiError`` if they cannot be had."""
        fetched = self._fetch(window)
        groups: defaultdict[UsageKey, Usage] = defaultdict(Usage)
        billed: defaultdict[tuple[Any, ...], tuple[Decimal, Decimal]] = defaultdict(
            lambda: (Decimal(0), Decimal(0))
        )
        counts: Counter[str] = Counter()
        limit = GroupLimit(self.options.max_groups)
        # The default context keeps 28 significant digits but amounts carry up to 36 decimals
        # (reference §3.3): sum with room to spare so no digit OpenAI sent is rounded away.
        with localcontext(prec=SUM_PRECISION):
            for day, result in self._results(fetched, window, counts):
                line_item = optional_str(result, "line_item", _ENDPOINT)
                # An ungrouped result is the whole day's cost; it stays where it always was.
                family, model = COMPLETIONS, ALL_LINE_ITEMS
                found: Attribution | None = None
                if line_item is not None and line_item.strip():
                    found = map_line_item(line_item, self.rules)
                    family, model = found.family, found.model
                    if family == OTHER:
                        counts["unparsed_line_items"] += 1
                cost = parse_amount(result.get("amount"))
                if cost is None:
                    counts["results_without_amount"] += 1
                    cost = Decimal(0)
                key = self._key(day, model, result, family)
                if key not in groups:
                    self._count_group(limit, key, window)
                groups[key] = groups[key] + Usage(cost=cost)
                if found is not None and family != OTHER and found.piece:
                    self._add_billed(billed, counts, day, found, result)
        lines = tuple(
            BilledLine(day, model, piece, tier, amount, quantity, unit, family)
            for (day, model, piece, tier, unit, family), (amount, quantity) in sorted(
                billed.items()
            )
        )
        if not lines:
            # No line carried a quantity (data before 2026-08-21, or ungrouped): nothing to say.
            counts["results_without_quantity"] = 0
        info = self._info(
            fetched,
            counts,
            (
                "results_without_amount",
                "unparsed_line_items",
                "buckets_outside_window",
                "results_without_quantity",
            ),
        )
        log.info(EVENT_COSTS_FETCHED, window=window.key, groups=len(groups), **info)
        return UsageTotals(groups=dict(groups), info=info, billed_lines=lines)

    @staticmethod
    def _add_billed(
        billed: defaultdict[tuple[Any, ...], tuple[Decimal, Decimal]],
        counts: Counter[str],
        day: date,
        found: Attribution,
        result: Mapping[str, Any],
    ) -> None:
        """Add one parsed line item with an amount and a quantity to ``billed``."""
        parsed = parse_quantity(result)
        amount = parse_amount(result.get("amount"))
        if parsed is None or amount is None:
            counts["results_without_quantity"] += 1
            return
        quantity, unit = parsed
        tier = found.tier or "standard"
        key = (day, found.model, billed_piece(found), tier, unit, found.family)
        total, count = billed[key]
        billed[key] = (total + amount, count + quantity)
