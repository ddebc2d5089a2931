"""The effective-dated price table that turns usage into USD: lookup and arithmetic only.

A price applies from its ``effective`` UTC day until the next entry's day, so usage is always
priced at what OpenAI charged on the day it happened, not at today's price.

Every class of usage has its own rate (:class:`Rates`): tokens by class per 1M (text, cached,
cache-write, audio and image input/output), images per image by size and quality, characters
per 1M, audio per minute, tool calls per 1k, vector storage per GB-day, sessions each.

Nothing here guesses: an unknown model, a day before a model's first price, a tier without
published rates, or a class of usage without a rate (cached tokens on an embedding model,
seconds on a model priced by tokens only) gives ``None`` — *unpriced* — never ``$0`` and never
the standard price.

A dated snapshot is priced at its own entry when the table has one, at its alias's entries only
when the table says it shares them (``shares``: ``gpt-4o-2024-08-06`` -> ``gpt-4o``), and is
unpriced otherwise: snapshots may cost more than their alias (``gpt-4o-2024-05-13``), so the date
is never stripped to find a price. The user's ``[models.aliases]`` apply as asked.

No I/O: the bundled ``recon_job/data/pricing.toml`` (OpenAI list prices; its header documents the
file format, the units and the sources) and a user's file over it are read and validated by
:mod:`recon_job.config.prices`, which builds the :class:`PriceTable`.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date
from decimal import Context, Decimal

from recon_job.modelnames import ModelNamer
from recon_job.models import TIERS, Tier, Usage

#: The Batch API's price as a share of the standard one, unless a price file says otherwise.
DEFAULT_BATCH_DISCOUNT = Decimal("0.5")

#: Wide enough that no product or sum of realistic counts and rates is ever rounded; only a
#: per-minute rate not divisible by 60 rounds, at the 60th significant digit.
_EXACT = Context(prec=60)
_MILLION = Decimal(1_000_000)
_THOUSAND = Decimal(1000)
_SECONDS_PER_MINUTE = Decimal(60)
#: A GB of vector storage is 10**9 bytes (decimal gigabyte, as OpenAI writes "GB").
BYTES_PER_GB = Decimal(1_000_000_000)

#: Token classes: (rate field of :class:`Rates`, the part of :class:`Usage` it prices). The
#: parts add up to ``input_tokens + output_tokens`` (reference §1.5), each token priced once.
TOKEN_CLASSES: tuple[tuple[str, str], ...] = (
    ("input", "input_text_tokens"),
    ("cached_input", "cached_text_tokens"),
    ("cache_write", "cache_write_tokens"),
    ("audio_input", "input_audio_tokens"),
    ("cached_audio_input", "cached_audio_tokens"),
    ("image_input", "input_image_tokens"),
    ("cached_image_input", "cached_image_tokens"),
    ("output", "output_text_tokens"),
    ("audio_output", "output_audio_tokens"),
    ("image_output", "output_image_tokens"),
)
#: Quantities priced per unit: (rate field, :class:`Usage` field, units the rate is per).
UNIT_CLASSES: tuple[tuple[str, str, Decimal], ...] = (
    ("per_1m_characters", "characters", _MILLION),
    ("per_minute", "seconds", _SECONDS_PER_MINUTE),
    ("per_1k_calls", "calls", _THOUSAND),
    ("per_gb_day", "usage_bytes", BYTES_PER_GB),
    ("per_session", "sessions", Decimal(1)),
)
#: Quantities a model's rates may list as counted but billed through its tokens (``unbilled``).
UNBILLABLE: tuple[str, ...] = ("images", *(usage for _, usage, _ in UNIT_CLASSES))


def _scale(value: Decimal | None, factor: Decimal) -> Decimal | None:
    return None if value is None else _EXACT.multiply(value, factor)


@dataclass(frozen=True, slots=True)
class LongContext:
    """Rates of a request whose input passes ``threshold`` tokens (OpenAI's ``long context``)."""

    #: Input tokens above which a request is long-context (more than, not equal).
    threshold: int
    #: The token rates that replace the normal ones; a class left out keeps its normal rate.
    rates: Rates


@dataclass(frozen=True, slots=True)
class Rates:
    """What one tier of one model costs during one price period: a rate per class of usage.

    Token rates are USD per 1M tokens; an unset rate (None) makes usage of that class unpriced.
    """

    #: Uncached text input tokens (everything uncached when the usage names no modality).
    input: Decimal | None = None
    #: Text input tokens read from the prompt cache.
    cached_input: Decimal | None = None
    #: Text output tokens (reasoning included).
    output: Decimal | None = None
    #: Input tokens written to the prompt cache.
    cache_write: Decimal | None = None
    #: Uncached audio input tokens.
    audio_input: Decimal | None = None
    #: Audio input tokens read from the cache.
    cached_audio_input: Decimal | None = None
    #: Audio output tokens.
    audio_output: Decimal | None = None
    #: Uncached image input tokens.
    image_input: Decimal | None = None
    #: Image input tokens read from the cache.
    cached_image_input: Decimal | None = None
    #: Image output tokens.
    image_output: Decimal | None = None
    #: USD per image by variant, ``("1024x1024/hd", 0.08)`` pairs sorted by variant: ``SIZE``
    #: or ``SIZE/QUALITY`` (see :meth:`image_price`).
    per_image: tuple[tuple[str, Decimal], ...] = ()
    #: USD per 1M characters of speech input.
    per_1m_characters: Decimal | None = None
    #: USD per minute of audio (usage counts whole seconds: seconds × rate ÷ 60).
    per_minute: Decimal | None = None
    #: USD per 1,000 tool calls.
    per_1k_calls: Decimal | None = None
    #: USD per GB (10**9 bytes) stored for a day; usage_bytes is the day's level.
    per_gb_day: Decimal | None = None
    #: USD per session.
    per_session: Decimal | None = None
    #: Rates of long-context requests, or None when the model has none.
    long_context: LongContext | None = None
    #: Quantities (``seconds``, ``characters``, ``images`` ...) OpenAI counts for this model
    #: but bills through its tokens: they add nothing, but usage with one of them and no billed
    #: class at all is unpriced (a token-billed transcription logged with seconds only).
    unbilled: frozenset[str] = frozenset()

    def scaled(self, factor: Decimal) -> Rates:
        """Every rate multiplied by ``factor`` (the default batch price)."""
        changes: dict[str, object] = {
            f.name: _scale(getattr(self, f.name), factor) for f in fields(self) if _is_rate(f.name)
        }
        changes["per_image"] = tuple((v, _EXACT.multiply(p, factor)) for v, p in self.per_image)
        if self.long_context is not None:
            changes["long_context"] = LongContext(
                self.long_context.threshold, self.long_context.rates.scaled(factor)
            )
        return Rates(**changes, unbilled=self.unbilled)  # type: ignore[arg-type]

    def image_price(self, variant: str | None) -> Decimal | None:
        """USD per image of ``variant`` (``1024x1024/hd``), or None when it has no price.

        Looked up as given, then by its size alone (``1024x1024`` prices every quality of a
        model without qualities, such as dall-e-2). Without a variant, a model with one price
        uses it; a model with several is unpriced (the size decides the price).
        """
        prices = dict(self.per_image)
        if variant is None:
            return next(iter(prices.values())) if len(prices) == 1 else None
        name = variant.strip().lower()
        found = prices.get(name)
        if found is None and "/" in name:
            found = prices.get(name.split("/", 1)[0])
        return found

    def cost(
        self, usage: Usage, variant: str | None = None, long_context: bool | None = None
    ) -> Decimal | None:
        """USD for ``usage`` at these rates, exact; None when a class it uses has no rate.

        Each token is priced once, in its class (:data:`TOKEN_CLASSES`). Images are priced per
        image of ``variant`` only when the usage has no output tokens (with them, as gpt-image-1
        logs, the tokens are the images' price). ``long_context``: True or False as the caller
        knows it per request; None decides from the usage when it can: input tokens at or below
        the threshold are short whatever the number of requests, above it one request
        (``requests == 1``) is long, and a sum of several (or an unknown number of) requests
        above it cannot be told apart and is unpriced — a sum is not one long request.
        Usage with a negative count or more cached than input tokens gives None.
        """
        token_rates = self._token_rates(usage, long_context)
        if token_rates is None:
            return None
        parts = (
            token_rates._token_cost(usage),
            self._image_cost(usage, variant),
            self._unit_cost(usage),
        )
        if any(part is None for part in parts):
            return None
        billed = [part for part in parts if part is not _NOTHING]
        if not billed and any(usage.quantity(name) for name in self.unbilled):
            return None
        total = Decimal(0)
        for part in billed:
            total = _EXACT.add(total, part)  # type: ignore[arg-type]
        return total

    def _token_rates(self, usage: Usage, long_context: bool | None) -> Rates | None:
        """The rates of the usage's tokens; None when it cannot be told long or short."""
        if self.long_context is None:
            return self
        is_long = long_context
        if is_long is None:
            if usage.input_tokens <= self.long_context.threshold:
                is_long = False
            elif usage.requests == 1:
                is_long = True
            else:
                return None
        return self._long() if is_long else self

    def _token_cost(self, usage: Usage) -> Decimal | None:
        """USD of the token classes; :data:`_NOTHING` when no token was used."""
        total = _NOTHING
        for rate_name, part in TOKEN_CLASSES:
            count: int = getattr(usage, part)
            if count < 0:
                return None
            if count:
                rate: Decimal | None = getattr(self, rate_name)
                if rate is None:
                    return None
                share = _EXACT.divide(_EXACT.multiply(count, rate), _MILLION)
                total = share if total is _NOTHING else _EXACT.add(total, share)
        return total

    def _image_cost(self, usage: Usage, variant: str | None) -> Decimal | None:
        """USD of the images priced per image; :data:`_NOTHING` when none is."""
        if not usage.images or "images" in self.unbilled:
            return _NOTHING
        if usage.output_tokens > 0:
            return _NOTHING  # the output tokens (gpt-image-1) are the images' price
        price = self.image_price(variant)
        if price is None or usage.images < 0:
            return None
        return _EXACT.multiply(usage.images, price)

    def _unit_cost(self, usage: Usage) -> Decimal | None:
        """USD of characters, minutes, calls, GB-days and sessions; :data:`_NOTHING` for none."""
        total = _NOTHING
        for rate_name, part, per in UNIT_CLASSES:
            count: int = getattr(usage, part)
            if not count or part in self.unbilled:
                continue
            rate: Decimal | None = getattr(self, rate_name)
            if rate is None or count < 0:
                return None
            share = _EXACT.divide(_EXACT.multiply(count, rate), per)
            total = share if total is _NOTHING else _EXACT.add(total, share)
        return total

    def _long(self) -> Rates:
        assert self.long_context is not None
        long = self.long_context.rates
        changes = {
            name: getattr(long, name)
            for name, _ in TOKEN_CLASSES
            if getattr(long, name) is not None
        }
        return Rates(**{name: getattr(self, name) for name, _ in TOKEN_CLASSES} | changes)

    def pieces(self) -> dict[str, Decimal]:
        """Every rate set, by name (``input``, ``per_image.1024x1024/hd``, ``long_context.output``
        ...): what ``recon-job prices check`` compares."""
        found: dict[str, Decimal] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if _is_rate(f.name) and value is not None:
                found[f.name] = value
        for variant, price in self.per_image:
            found[f"per_image.{variant}"] = price
        if self.long_context is not None:
            found["long_context.threshold"] = Decimal(self.long_context.threshold)
            for name, value in self.long_context.rates.pieces().items():
                found[f"long_context.{name}"] = value
        return found


#: "No usage of these classes": told apart from a cost of $0 by identity.
_NOTHING = Decimal(0)


def _is_rate(name: str) -> bool:
    return name not in ("per_image", "long_context", "unbilled")


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

    def cost(  # noqa: PLR0913 -- the Pricer signature plus two optional facts of a request
        self,
        model: str,
        day: date,
        tier: Tier,
        usage: Usage,
        variant: str | None = None,
        long_context: bool | None = None,
    ) -> Decimal | None:
        """USD for ``usage`` of ``model`` on UTC ``day`` at ``tier``, exact; None when unpriced.

        ``variant`` is the image size and quality (``1024x1024/hd``) when known; see
        :meth:`Rates.cost` for it and ``long_context``. Cost is linear in usage apart from the
        long-context threshold, so pricing a group's summed usage equals summing per-record
        costs as long as long context is passed in (or the model has none).
        """
        rates = self.rates(model, day, tier)
        return None if rates is None else rates.cost(usage, variant, long_context)

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
