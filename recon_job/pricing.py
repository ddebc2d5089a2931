"""The effective-dated price table that turns token usage into USD: lookup and arithmetic only.

A price applies from its ``effective`` UTC day until the next entry's day, so usage is always
priced at what OpenAI charged on the day it happened, not at today's price.

Nothing here guesses: an unknown model, a day before a model's first price, a tier without
published rates, or a token class without a rate (cached tokens on an embedding model) gives
``None`` — *unpriced* — never ``$0`` and never the standard price.

A dated snapshot is priced at its own entry when the table has one, at its alias's entries only
when the table says it shares them (``shares``: ``gpt-4o-2024-08-06`` -> ``gpt-4o``), and is
unpriced otherwise: snapshots may cost more than their alias (``gpt-4o-2024-05-13``), so the date
is never stripped to find a price. The user's ``[models.aliases]`` apply as asked.

No I/O: the bundled ``recon_job/data/pricing.toml`` (OpenAI list prices; its header documents the
file format and the sources) and a user's file over it are read and validated by
:mod:`recon_job.config.prices`, which builds the :class:`PriceTable`.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Context, Decimal

from recon_job.modelnames import ModelNamer
from recon_job.models import TIERS, Tier, Usage

#: The Batch API's price as a share of the standard one, unless a price file says otherwise.
DEFAULT_BATCH_DISCOUNT = Decimal("0.5")

_PER = 1_000_000
#: Wide enough that no product or sum of realistic token counts and rates is ever rounded.
_EXACT = Context(prec=60)


@dataclass(frozen=True, slots=True)
class Rates:
    """What one tier of one model costs during one price period."""

    #: USD per 1M uncached input tokens.
    input: Decimal
    #: USD per 1M input tokens read from the prompt cache; None when the model has no cached rate
    #: (then usage with cached tokens is unpriced).
    cached_input: Decimal | None = None
    #: USD per 1M output tokens; None for input-only models such as embeddings (then usage with
    #: output tokens is unpriced).
    output: Decimal | None = None

    def scaled(self, factor: Decimal) -> Rates:
        """These rates multiplied by ``factor`` (the default batch price)."""
        return Rates(
            input=_EXACT.multiply(self.input, factor),
            cached_input=None
            if self.cached_input is None
            else _EXACT.multiply(self.cached_input, factor),
            output=None if self.output is None else _EXACT.multiply(self.output, factor),
        )

    def cost(self, usage: Usage) -> Decimal | None:
        """USD for ``usage`` at these rates, exact; None when a token class it uses has no rate.

        ``usage.input_tokens`` includes ``usage.cached_tokens``: the uncached part is priced at
        ``input`` and the cached part at ``cached_input``, each token once. Usage with more cached
        than input tokens (or negative counts) cannot be priced sensibly and gives None.
        """
        cached, uncached, output = (
            usage.cached_tokens,
            usage.uncached_input_tokens,
            usage.output_tokens,
        )
        if cached < 0 or uncached < 0 or output < 0:
            return None
        total = _EXACT.multiply(Decimal(uncached), self.input)
        if cached:
            if self.cached_input is None:
                return None
            total = _EXACT.add(total, _EXACT.multiply(Decimal(cached), self.cached_input))
        if output:
            if self.output is None:
                return None
            total = _EXACT.add(total, _EXACT.multiply(Decimal(output), self.output))
        return _EXACT.divide(total, Decimal(_PER))


@dataclass(frozen=True, slots=True)
class PriceEntry:
    """The prices of one model from one effective day on."""

    #: First UTC day these prices apply.
    effective: date
    #: Standard tier (OpenAI's default/auto/scale processing).
    standard: Rates
    #: Explicit Batch API rates; None means standard × the table's ``batch_discount``.
    batch: Rates | None = None
    #: Flex processing rates; None means flex is unpriced for this model.
    flex: Rates | None = None
    #: Priority processing rates; None means priority is unpriced for this model.
    priority: Rates | None = None


@dataclass(frozen=True)
class PriceTable:
    """Effective-dated prices per model; satisfies :class:`~recon_job.sources.base.Pricer`."""

    #: Price periods per model name, oldest first, effective days strictly increasing.
    entries: Mapping[str, tuple[PriceEntry, ...]]
    #: Multiplier for batch prices of entries without explicit batch rates (0.5 = half price).
    batch_discount: Decimal = DEFAULT_BATCH_DISCOUNT
    #: Its aliases map a logged name to the name it is priced under (dates are not stripped).
    namer: ModelNamer = field(default_factory=ModelNamer)
    #: Where the prices came from (file names), for messages; empty when built in memory.
    source: str = ""
    #: Dated snapshots billed at another model's prices: snapshot name -> key of ``entries``.
    #: A snapshot with entries of its own is priced at those.
    shares: Mapping[str, str] = field(default_factory=dict)
    # Memo of name -> table key (or None): sources price millions of records with few names.
    _resolved: dict[str, str | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def models(self) -> set[str]:
        """Every model name the table prices (on some day), snapshots sharing a price included."""
        return set(self.entries) | {s for s, key in self.shares.items() if key in self.entries}

    def rates(self, model: str, day: date, tier: Tier) -> Rates | None:
        """The rates of ``model`` on UTC ``day`` at ``tier``, or None when unpriced."""
        if tier not in TIERS:
            raise ValueError(f"unknown tier {tier!r}; expected one of {', '.join(TIERS)}")
        entry = self._entry(model, day)
        if entry is None:
            return None
        if tier == "standard":
            return entry.standard
        if tier == "batch":
            if entry.batch is not None:
                return entry.batch
            return entry.standard.scaled(self.batch_discount)
        if tier == "flex":
            return entry.flex
        return entry.priority

    def cost(self, model: str, day: date, tier: Tier, usage: Usage) -> Decimal | None:
        """USD for ``usage`` of ``model`` on UTC ``day`` at ``tier``, exact; None when unpriced.

        Cost is linear in usage, so pricing a group's summed usage equals summing per-record costs.
        """
        rates = self.rates(model, day, tier)
        return None if rates is None else rates.cost(usage)

    def price_version(self, model: str, day: date) -> str | None:
        """Which price period applies, e.g. ``gpt-4o@2024-10-02``; None when unpriced that day."""
        key = self._key(model)
        entry = self._entry(model, day)
        if key is None or entry is None:
            return None
        return f"{key}@{entry.effective.isoformat()}"

    def _key(self, model: str) -> str | None:
        try:
            return self._resolved[model]
        except KeyError:
            pass
        # The user's alias wins, since the user asked for it; the snapshot date is kept (see
        # the module docstring): a snapshot prices at its own entry, or at the one it shares.
        name = self.namer.aliased(model)
        key = name if name in self.entries else self.shares.get(name)
        if key not in self.entries:
            key = None
        self._resolved[model] = key
        return key

    def _entry(self, model: str, day: date) -> PriceEntry | None:
        key = self._key(model)
        if key is None:
            return None
        periods = self.entries[key]
        index = bisect.bisect_right([p.effective for p in periods], day) - 1
        return periods[index] if index >= 0 else None
