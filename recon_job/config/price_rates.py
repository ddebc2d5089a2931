"""The rates of one price period, as pydantic models: every rate key of a price file.

:class:`PeriodTable` is one ``[[models."NAME"]]`` entry: an ``effective`` day, the rates
(:class:`RatesTable`: token rates per 1M by class, ``per_image``, ``per_1m_characters``,
``per_minute``, ``per_1k_calls``, ``per_gb_day``, ``per_session``, ``long_context``,
``unbilled``) and optional ``batch``/``flex``/``priority`` tables of the same rates. The file
around them (:class:`~recon_job.config.prices.PriceFile`), its cross-entry rules and its
messages live in :mod:`recon_job.config.prices`. Unknown keys are refused; amounts are read via
their text, never float arithmetic.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainValidator, model_validator
from pydantic_core import PydanticCustomError

from recon_job.config.load import rule
from recon_job.pricing import UNBILLABLE, LongContext, PriceEntry, Rates


def amount(value: object) -> Decimal:
    """A non-negative finite Decimal from a TOML string or number (via its text, never float)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise rule(f"{value!r} is not a number")
    try:
        number = Decimal(value.strip() if isinstance(value, str) else str(value))
    except InvalidOperation:
        raise rule(f"{value!r} is not a number") from None
    if not number.is_finite():
        raise rule(f"{value!r} is not a number")
    if number < 0:
        raise rule(f"{value!r} is negative")
    return number


def effective_day(value: object) -> date:
    """A TOML date (or an ISO ``YYYY-MM-DD`` string) as a date; a datetime is not one."""
    day = value
    if isinstance(day, str):
        with contextlib.suppress(ValueError):
            day = date.fromisoformat(day)
    if isinstance(day, datetime) or not isinstance(day, date):
        raise rule(f"{value!r} is not a date like 2025-06-10")
    return day


Amount = Annotated[Decimal, PlainValidator(amount)]
Effective = Annotated[date, PlainValidator(effective_day)]


class Table(BaseModel):
    """A table of a price file: no unknown key, frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


_VARIANT = re.compile(r"[0-9]+x[0-9]+(?:/[a-z0-9_-]+)?")


def _per_image(value: object) -> tuple[tuple[str, Decimal], ...]:
    """``{ "1024x1024/hd" = "0.08", ... }`` as sorted (variant, USD) pairs."""
    if not isinstance(value, Mapping) or not value:
        raise rule('must be a table like { "1024x1024/standard" = "0.04" } (USD per image)')
    prices: dict[str, Decimal] = {}
    for key, price in value.items():
        variant = str(key).strip().lower()
        if not _VARIANT.fullmatch(variant):
            raise rule(
                f"{key!r} is not an image variant: write SIZE or SIZE/QUALITY, "
                'like "1024x1024" or "1024x1536/high"'
            )
        try:
            prices[variant] = amount(price)
        except PydanticCustomError as e:
            raise rule(f"{key}: {e.context['message'] if e.context else e}") from None
    return tuple(sorted(prices.items()))


def _unbilled(value: object) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise rule(f"must be a list of quantity names, any of {', '.join(UNBILLABLE)}")
    unknown = sorted(set(value) - set(UNBILLABLE))
    if unknown:
        raise rule(f"{', '.join(unknown)}: not a quantity; expected any of {', '.join(UNBILLABLE)}")
    return frozenset(value)


def _threshold(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise rule(f"{value!r} is not a whole number of input tokens above 0, like 272000")
    return value


PerImage = Annotated[tuple[tuple[str, Decimal], ...], PlainValidator(_per_image)]
Unbilled = Annotated[frozenset[str], PlainValidator(_unbilled)]
Threshold = Annotated[int, PlainValidator(_threshold)]


class TokenRatesTable(Table):
    """Token rates, USD per 1M tokens of each class; unset: usage of that class is unpriced."""

    #: Uncached text input tokens.
    input: Amount | None = None
    #: Text input tokens read from the prompt cache.
    cached_input: Amount | None = None
    #: Text output tokens (reasoning included).
    output: Amount | None = None
    #: Input tokens written to the prompt cache.
    cache_write: Amount | None = None
    #: Uncached audio input tokens.
    audio_input: Amount | None = None
    #: Audio input tokens read from the cache.
    cached_audio_input: Amount | None = None
    #: Audio output tokens.
    audio_output: Amount | None = None
    #: Uncached image input tokens.
    image_input: Amount | None = None
    #: Image input tokens read from the cache.
    cached_image_input: Amount | None = None
    #: Image output tokens.
    image_output: Amount | None = None

    def _rate_values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in TokenRatesTable.model_fields}


class LongContextTable(TokenRatesTable):
    """``long_context = { threshold = 272000, input = ..., output = ... }``."""

    #: Input tokens above which a request is priced at these rates.
    threshold: Threshold

    @model_validator(mode="after")
    def _some_rate(self) -> LongContextTable:
        if all(v is None for v in self._rate_values().values()):
            raise rule("no rate given: list the token rates of long-context requests")
        return self

    def long_context(self) -> LongContext:
        """These rates for the price table."""
        return LongContext(self.threshold, Rates(**self._rate_values()))


class RatesTable(TokenRatesTable):
    """One tier's rates: ``{ input = ..., output = ... }``; at least one rate."""

    #: USD per image by ``SIZE`` or ``SIZE/QUALITY``.
    per_image: PerImage = ()
    #: USD per 1M characters (text to speech).
    per_1m_characters: Amount | None = None
    #: USD per minute of audio (seconds × rate ÷ 60).
    per_minute: Amount | None = None
    #: USD per 1,000 tool calls.
    per_1k_calls: Amount | None = None
    #: USD per GB (10**9 bytes) stored per day.
    per_gb_day: Amount | None = None
    #: USD per session.
    per_session: Amount | None = None
    #: Rates of requests whose input passes a threshold.
    long_context: LongContextTable | None = None
    #: Quantities counted for the model but billed through its tokens.
    unbilled: Unbilled = frozenset()

    @model_validator(mode="after")
    def _some_rate(self) -> RatesTable:
        if all(v is None for v in self._all_rates().values()) and not self.per_image:
            raise rule('no rate given: list at least one rate, e.g. input = "1.25"')
        return self

    def _all_rates(self) -> dict[str, Any]:
        units = {name: getattr(self, name) for name in _UNIT_RATES}
        return self._rate_values() | units

    def rates(self) -> Rates:
        """These rates for the price table."""
        return Rates(
            **self._all_rates(),
            per_image=self.per_image,
            long_context=self.long_context.long_context() if self.long_context else None,
            unbilled=self.unbilled,
        )


_UNIT_RATES = ("per_1m_characters", "per_minute", "per_1k_calls", "per_gb_day", "per_session")


class PeriodTable(RatesTable):
    """One ``[[models."NAME"]]`` entry: a model's prices from its effective day on."""

    #: First UTC day these prices apply (a TOML date).
    effective: Effective
    #: Explicit Batch API rates; unset: standard × ``batch_discount``.
    batch: RatesTable | None = None
    #: Flex processing rates; unset: flex is unpriced.
    flex: RatesTable | None = None
    #: Priority processing rates; unset: priority is unpriced.
    priority: RatesTable | None = None

    def entry(self) -> PriceEntry:
        """This period for the price table."""
        return PriceEntry(
            effective=self.effective,
            standard=self.rates(),
            batch=self.batch.rates() if self.batch else None,
            flex=self.flex.rates() if self.flex else None,
            priority=self.priority.rates() if self.priority else None,
        )
