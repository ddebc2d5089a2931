"""The effective-dated price table that turns token usage into USD.

Prices come from the bundled ``recon_job/data/pricing.toml`` (OpenAI list prices, its header
documents the file format and the sources), optionally overridden per model by a user file. A
price applies from its ``effective`` UTC day until the next entry's day, so usage is always priced
at what OpenAI charged on the day it happened, not at today's price.

Nothing here guesses: an unknown model, a day before a model's first price, a tier without
published rates, or a token class without a rate (cached tokens on an embedding model) gives
``None`` — *unpriced* — never ``$0`` and never the standard price.

The only I/O is reading the TOML files in :meth:`PriceTable.load`.
"""

from __future__ import annotations

import bisect
import contextlib
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Context, Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

from recon_job.errors import ConfigError
from recon_job.modelnames import ModelNamer
from recon_job.models import TIERS, Tier, Usage

#: Where the bundled table lives inside the package, as named in error messages.
BUNDLED_SOURCE = "recon_job/data/pricing.toml"

_PER = 1_000_000
#: Wide enough that no product or sum of realistic token counts and rates is ever rounded.
_EXACT = Context(prec=60)
_RATE_KEYS = ("input", "cached_input", "output")
_TIER_KEYS = ("batch", "flex", "priority")
_ENTRY_KEYS = ("effective", *_RATE_KEYS, *_TIER_KEYS)
_TOP_KEYS = ("batch_discount", "models")

#: Records one validation problem: (where, what is wrong).
_Report = Callable[[str, str], None]


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
    batch_discount: Decimal = Decimal("0.5")
    #: Normalises a logged or reported model name before lookup.
    namer: ModelNamer = field(default_factory=ModelNamer)
    #: Where the prices came from (file names), for messages.
    source: str = BUNDLED_SOURCE
    # Memo of name -> table key (or None): sources price millions of records with few names,
    # and normalising runs a regex.
    _resolved: dict[str, str | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def load(cls, user_file: Path | None = None, namer: ModelNamer | None = None) -> PriceTable:
        """The bundled table; every model listed in ``user_file`` gets the user's entries instead.

        A user file may also set ``batch_discount``. Raises :class:`ConfigError` listing every
        problem of the file when it cannot be read or is invalid.
        """
        bundled_text = (
            resources.files("recon_job")
            .joinpath("data", "pricing.toml")
            .read_text(encoding="utf-8")
        )
        entries, discount = _parse(_loads(bundled_text, BUNDLED_SOURCE), BUNDLED_SOURCE)
        merged: dict[str, tuple[PriceEntry, ...]] = dict(entries)
        source = BUNDLED_SOURCE
        if user_file is not None:
            name = str(user_file)
            try:
                text = user_file.read_text(encoding="utf-8")
            except OSError as e:
                raise ConfigError(
                    f"{name}: cannot read the price file ({e.strerror or e}); "
                    "fix the path or leave the setting out to use the bundled prices"
                ) from e
            except UnicodeDecodeError as e:
                raise ConfigError(f"{name}: not UTF-8 text ({e.reason})") from e
            data = _loads(text, name)
            user_entries, user_discount = _parse(data, name)
            merged.update(user_entries)
            if user_discount is not None:
                discount = user_discount
            source = f"{BUNDLED_SOURCE} + {name}"
        return cls(
            entries=merged,
            batch_discount=Decimal("0.5") if discount is None else discount,
            namer=namer or ModelNamer(),
            source=source,
        )

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], source: str, namer: ModelNamer | None = None
    ) -> PriceTable:
        """A table from parsed TOML data (the file's shape); ``source`` names it in errors."""
        entries, discount = _parse(data, source)
        return cls(
            entries=entries,
            batch_discount=Decimal("0.5") if discount is None else discount,
            namer=namer or ModelNamer(),
            source=source,
        )

    def models(self) -> set[str]:
        """Every model name the table prices (on some day)."""
        return set(self.entries)

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
        # The name as logged first, so a table may price one snapshot apart from its alias;
        # an explicit alias in the namer still wins, since the user asked for it.
        name, normal = model.strip(), self.namer.normalize(model)
        candidates = (normal,) if name in self.namer.aliases else (name, normal)
        key: str | None = None
        for candidate in candidates:
            if candidate in self.entries:
                key = candidate
                break
        self._resolved[model] = key
        return key

    def _entry(self, model: str, day: date) -> PriceEntry | None:
        key = self._key(model)
        if key is None:
            return None
        periods = self.entries[key]
        index = bisect.bisect_right([p.effective for p in periods], day) - 1
        return periods[index] if index >= 0 else None


def _loads(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: not valid TOML: {e}") from e


def _parse(
    data: Mapping[str, Any], source: str
) -> tuple[dict[str, tuple[PriceEntry, ...]], Decimal | None]:
    """Validate TOML data; every problem is collected and raised together as one ConfigError."""
    problems: list[str] = []

    def problem(where: str, text: str) -> None:
        problems.append(f"{source}: {where}: {text}")

    for key in data:
        if key not in _TOP_KEYS:
            problem(key, f"unknown key (expected {' or '.join(_TOP_KEYS)})")

    discount: Decimal | None = None
    if "batch_discount" in data:
        discount = _amount(data["batch_discount"], "batch_discount", problem)
        if discount is not None and not (0 < discount <= 1):
            problem(
                "batch_discount", f"{discount} must be above 0 and at most 1 (0.5 = half price)"
            )
            discount = None

    entries: dict[str, tuple[PriceEntry, ...]] = {}
    models = data.get("models", {})
    if not isinstance(models, Mapping):
        problem("models", 'must be a table of [[models."NAME"]] entries')
        models = {}
    for model, raw_list in models.items():
        where = f"models.{model}"
        if isinstance(raw_list, Mapping):
            raw_list = [raw_list]  # [models."x"] written instead of [[models."x"]]: one entry
        if not isinstance(raw_list, list) or not raw_list:
            problem(where, f'must be one or more [[models."{model}"]] entries')
            continue
        parsed: list[PriceEntry] = []
        previous: date | None = None
        for index, raw in enumerate(raw_list):
            entry = _entry(raw, f"{where}[{index}]", problem)
            # Order is checked even for entries with other problems, so all are reported at once.
            effective = _effective(raw.get("effective") if isinstance(raw, Mapping) else None)
            if effective is not None:
                if previous is not None and effective <= previous:
                    problem(
                        f"{where}[{index}].effective",
                        f"{effective} is not after the previous entry's {previous}; "
                        "list price periods oldest first, one per day",
                    )
                previous = effective
            if entry is not None:
                parsed.append(entry)
        entries[str(model)] = tuple(parsed)

    if problems:
        raise ConfigError(problems)
    return entries, discount


def _entry(raw: Any, where: str, problem: _Report) -> PriceEntry | None:
    if not isinstance(raw, Mapping):
        problem(where, "must be a table with effective, input, cached_input, output")
        return None
    for key in raw:
        if key not in _ENTRY_KEYS:
            problem(f"{where}.{key}", f"unknown key (expected one of {', '.join(_ENTRY_KEYS)})")
    raw_effective = raw.get("effective")
    effective = _effective(raw_effective)
    ok = effective is not None
    if raw_effective is None:
        problem(f"{where}.effective", "missing (the first UTC day of this price, e.g. 2025-06-10)")
    elif effective is None:
        problem(f"{where}.effective", f"{raw_effective!r} is not a date like 2025-06-10")
    standard = _rates(raw, where, problem)
    tiers: dict[str, Rates | None] = {}
    for tier in _TIER_KEYS:
        if tier not in raw:
            tiers[tier] = None
        elif not isinstance(raw[tier], Mapping):
            problem(f"{where}.{tier}", "must be a table like { input = ..., output = ... }")
            ok = False
        else:
            tier_where = f"{where}.{tier}"
            for key in raw[tier]:
                if key not in _RATE_KEYS:
                    problem(
                        f"{tier_where}.{key}",
                        f"unknown key (expected one of {', '.join(_RATE_KEYS)})",
                    )
            tiers[tier] = _rates(raw[tier], tier_where, problem)
            ok = ok and tiers[tier] is not None
    if not ok or standard is None or effective is None:
        return None
    return PriceEntry(
        effective=effective,
        standard=standard,
        batch=tiers["batch"],
        flex=tiers["flex"],
        priority=tiers["priority"],
    )


def _effective(value: Any) -> date | None:
    """A TOML date (or an ISO ``YYYY-MM-DD`` string) as a date; None when it is not one."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = date.fromisoformat(value)
    if isinstance(value, datetime) or not isinstance(value, date):
        return None
    return value


def _rates(raw: Mapping[str, Any], where: str, problem: _Report) -> Rates | None:
    values: dict[str, Decimal | None] = {}
    ok = True
    for key in _RATE_KEYS:
        if key not in raw:
            values[key] = None
            continue
        value = _amount(raw[key], f"{where}.{key}", problem)
        ok = ok and value is not None
        values[key] = value
    if "input" not in raw:
        problem(f"{where}.input", "missing (USD per 1M input tokens)")
        return None
    input_rate = values["input"]
    if not ok or input_rate is None:
        return None
    return Rates(input=input_rate, cached_input=values["cached_input"], output=values["output"])


def _amount(value: Any, where: str, problem: _Report) -> Decimal | None:
    """A non-negative finite Decimal from a TOML string or number (via its text, never float)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        problem(where, f"{value!r} is not a number")
        return None
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else str(value))
    except InvalidOperation:
        problem(where, f"{value!r} is not a number")
        return None
    if not amount.is_finite():
        problem(where, f"{value!r} is not a number")
        return None
    if amount < 0:
        problem(where, f"{value!r} is negative")
        return None
    return amount
