"""``recon-job prices check``: what the price table lacks, and where a LiteLLM price map differs.

Two checks keep the table current. :func:`unpriced_models` takes the usage past runs could not
price (stored with each run) and keeps what the table still cannot price today. :func:`compare`
reads a price map in LiteLLM's ``model_prices_and_context_window.json`` format and lists every
figure that differs from the table's: model, piece, ours, theirs.

LiteLLM writes USD per token (or per character, second, image, pixel) as JSON floats; they are
read as ``Decimal`` from their text (``json`` ``parse_float=Decimal``) and converted exactly:
per token × 1,000,000 = per 1M tokens, per character × 1,000,000 = per 1M characters, per
second × 60 = per minute. Per-pixel image prices (LiteLLM's form for DALL·E) are multiplied by
the image's pixels and rounded to 0.001 USD, the precision OpenAI publishes per-image prices in
(LiteLLM's per-pixel figures are themselves rounded). A piece LiteLLM lists and the table does
not is a difference (ours: none) unless LiteLLM's figure is 0 (its way of saying "no such
class", as for embedding output); a piece only the table lists is not (LiteLLM's map is partial).

A third check asks OpenAI itself: :func:`billed_prices` fetches the Costs API for a few recent
settled days and compares the unit price of every billed line carrying a quantity with the
table's (:mod:`recon_job.diagnosis.prices`): a piece billed at another price is a stale or wrong
table entry, with the day it started.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from recon_job.config.load import UnusableFile, read_text
from recon_job.diagnosis.prices import check_prices
from recon_job.errors import ConfigError
from recon_job.findings import PriceFinding
from recon_job.modelnames import ModelNamer
from recon_job.models import Tier, UnpricedKey, Usage, Window, unpriced_order
from recon_job.pricing import PriceTable, Rates
from recon_job.sources.base import UsageSource

_MILLION = Decimal(1_000_000)
#: LiteLLM's per-token keys -> the table's token rates (USD per 1M tokens).
TOKEN_KEYS: Mapping[str, str] = {
    "input_cost_per_token": "input",
    "cache_read_input_token_cost": "cached_input",
    "cache_creation_input_token_cost": "cache_write",
    "output_cost_per_token": "output",
    "input_cost_per_audio_token": "audio_input",
    "cache_read_input_audio_token_cost": "cached_audio_input",
    "output_cost_per_audio_token": "audio_output",
    "input_cost_per_image_token": "image_input",
    "cache_read_input_image_token_cost": "cached_image_input",
    "output_cost_per_image_token": "image_output",
}
#: LiteLLM's suffixes of tier prices (``input_cost_per_token_batches``) -> the tier.
TIER_SUFFIXES: Mapping[str, Tier] = {"_batches": "batch", "_flex": "flex", "_priority": "priority"}
#: LiteLLM's per-unit keys -> (the table's rate, the factor from LiteLLM's unit to ours).
UNIT_KEYS: Mapping[str, tuple[str, Decimal]] = {
    "input_cost_per_character": ("per_1m_characters", _MILLION),
    "input_cost_per_second": ("per_minute", Decimal(60)),
    "output_cost_per_second": ("per_minute", Decimal(60)),
}
#: Providers whose entries are OpenAI's own prices (an entry naming none is taken as OpenAI's).
OPENAI_PROVIDERS = frozenset({"openai", "text-completion-openai"})
_LONG = re.compile(r"(?P<base>.+)_above_(?P<k>[0-9]+)k_tokens")
_SIZE = re.compile(r"(?P<w>[0-9]+)-?x-?(?P<h>[0-9]+)")
_PIXEL_PRECISION = Decimal("0.001")


@dataclass(frozen=True, slots=True)
class Difference:
    """One figure the LiteLLM map gives otherwise than the table."""

    #: The model as the LiteLLM map names it (without an ``openai/`` prefix or image variant).
    model: str
    #: Which rate: a :meth:`Rates.pieces` name, prefixed with its tier unless standard
    #: (``priority.output``, ``per_image.1024x1024/hd``, ``long_context.input``).
    piece: str
    #: The table's figure in its unit (USD per 1M tokens, per image ...); None: not in the table.
    ours: Decimal | None
    #: The LiteLLM figure converted to the same unit.
    theirs: Decimal


@dataclass(frozen=True)
class Comparison:
    """What comparing the table with a LiteLLM map found."""

    #: Every differing figure, by model and piece.
    differences: tuple[Difference, ...] = ()
    #: How many of the map's OpenAI models the table prices (and were compared).
    compared: int = 0
    #: OpenAI models of the map the table does not price at all (not compared).
    not_in_table: tuple[str, ...] = ()


@dataclass(frozen=True)
class Unpriced:
    """A model and tier some past runs could not price, and whether the table prices it now."""

    key: UnpricedKey
    #: Ids of the runs that recorded it, newest first.
    runs: tuple[int, ...]
    #: True when today's table prices the usage those runs could not.
    priced_now: bool
    #: The unpriced usage, summed over those runs.
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True)
class BilledPrices:
    """What the Costs API billed over a window, compared with the table's unit prices."""

    window: Window
    #: Every model x piece x tier billed at another price than the table's.
    findings: tuple[PriceFinding, ...] = ()
    #: Billed lines (day x model x piece x tier) compared.
    compared: int = 0
    #: Lines not compared, by reason (``unpriced_model``, ``unknown_unit`` ..., and
    #: ``without_quantity``: line items OpenAI sent no quantity for).
    skipped: Mapping[str, int] = field(default_factory=dict)


def billed_prices(
    costs: UsageSource, window: Window, table: PriceTable, namer: ModelNamer
) -> BilledPrices:
    """Fetch ``window`` from the Costs API source ``costs`` and compare its unit prices.

    Raises what the source raises (``UsageApiError``) when OpenAI cannot be asked.
    """
    totals = costs.fetch(window)
    checked = check_prices(totals.billed_lines, table, namer)
    skipped = dict(checked.skipped)
    without = sum(v for k, v in totals.info.items() if k.endswith("results_without_quantity"))
    if without:
        skipped["without_quantity"] = without
    return BilledPrices(window, checked.findings, checked.compared, dict(sorted(skipped.items())))


def unpriced_models(
    table: PriceTable, runs: Iterable[tuple[int, date, Mapping[UnpricedKey, Usage]]]
) -> list[Unpriced]:
    """Every model and tier unpriced in ``runs`` (run id, last day, unpriced usage per key).

    A key counts as priced now when the table prices every run's usage of it on that run's
    last day (a run stored before tiers were recorded is tried at standard).
    """
    seen: dict[UnpricedKey, tuple[list[int], bool, Usage]] = {}
    for run_id, day, unpriced in runs:
        for key, usage in unpriced.items():
            ids, priced, total = seen.get(key, ([], True, Usage()))
            ids.append(run_id)
            cost = table.cost(key.model, day, key.tier or "standard", usage)
            seen[key] = (ids, priced and cost is not None, total + usage)
    return [
        Unpriced(key, tuple(ids), priced, usage)
        for key in sorted(seen, key=unpriced_order)
        for ids, priced, usage in [seen[key]]
    ]


def read_price_map(path: Path) -> dict[str, dict[str, Any]]:
    """A LiteLLM price map: model name -> its entry, numbers as Decimal.

    Raises :class:`ConfigError` (permanent) naming the file when it cannot be read, is not JSON,
    or is not an object of objects; an entry with a price that is not a number is named too.
    """
    name = str(path)
    try:
        text = read_text(path)
    except UnusableFile as e:
        raise ConfigError(f"{name}: cannot read the price map ({e})") from e
    try:
        data = json.loads(text, parse_float=Decimal)
    except ValueError as e:
        raise ConfigError(
            f"{name}: not JSON ({e}); expected LiteLLM's model_prices_and_context_window.json"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{name}: expected a JSON object of model name -> prices, like LiteLLM's "
            f"model_prices_and_context_window.json, not a {type(data).__name__}"
        )
    entries = {k: v for k, v in data.items() if k != "sample_spec" and isinstance(v, dict)}
    if data and not entries:
        raise ConfigError(f"{name}: no entry is an object of prices (model name -> {{...}})")
    problems = [
        f"{name}: {model}.{key}: {value!r} is not a number"
        for model, entry in entries.items()
        for key, value in entry.items()
        if _is_price_key(key) and (isinstance(value, bool) or not isinstance(value, int | Decimal))
    ]
    if problems:
        raise ConfigError(problems)
    return entries


def _is_price_key(key: str) -> bool:
    return "cost_per" in key or key.endswith("_token_cost") or "_token_cost_" in key


def compare(table: PriceTable, entries: Mapping[str, Mapping[str, Any]], day: date) -> Comparison:
    """Every figure of the OpenAI entries of ``entries`` that differs from the table on ``day``."""
    differences: dict[tuple[str, str], Difference] = {}
    compared: set[str] = set()
    missing: set[str] = set()
    for key, entry in entries.items():
        if entry.get("litellm_provider", "openai") not in OPENAI_PROVIDERS:
            continue
        model, variant = _model_and_variant(key)
        if model is None:
            continue
        if table.rates(model, day, "standard") is None:
            missing.add(model)
            continue
        compared.add(model)
        for piece, theirs in _their_pieces(entry, variant):
            tier, _, name = piece.rpartition(":")
            rates = table.rates(model, day, tier or "standard")  # type: ignore[arg-type]
            ours = _our_piece(rates, name)
            if ours is None and not theirs:
                continue  # LiteLLM's 0 for a class the model does not have (embedding output)
            if ours is None or ours != theirs:
                shown = name if not tier else f"{tier}.{name}"
                differences[(model, shown)] = Difference(model, shown, ours, theirs)
    return Comparison(
        differences=tuple(differences[k] for k in sorted(differences)),
        compared=len(compared),
        not_in_table=tuple(sorted(missing - compared)),
    )


def _our_piece(rates: Rates | None, name: str) -> Decimal | None:
    if rates is None:
        return None
    if name.startswith("per_image."):
        return rates.image_price(name.removeprefix("per_image."))
    return rates.pieces().get(name)


def _model_and_variant(key: str) -> tuple[str | None, str | None]:
    """``hd/1024-x-1792/dall-e-3`` -> (``dall-e-3``, ``1024x1792/hd``); ``openai/gpt-4o`` ->
    (``gpt-4o``, None); a key with other parts (``ft:…``, ``azure/…``) -> (None, None)."""
    name = key.removeprefix("openai/")
    if name.startswith("ft:"):
        return None, None
    if "/" not in name:
        return name, None
    *parts, model = name.split("/")
    size = next((p for p in parts if _SIZE.fullmatch(p)), None)
    if size is None:
        return None, None
    match = _SIZE.fullmatch(size)
    assert match is not None
    quality = [p for p in parts if p != size]
    variant = f"{match['w']}x{match['h']}" + (f"/{quality[0].lower()}" if quality else "")
    return model, variant


def _their_pieces(entry: Mapping[str, Any], variant: str | None) -> list[tuple[str, Decimal]]:
    """The entry's figures as ``(tier:piece, value in the table's unit)``; standard has no tier."""
    found: dict[str, Decimal] = {}
    for key, value in entry.items():
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            continue
        amount = Decimal(value)
        base, tier = _tier_of(key)
        long = _LONG.fullmatch(base)
        if long is not None and long["base"] in TOKEN_KEYS:
            found[f"{tier}:long_context.threshold"] = Decimal(int(long["k"]) * 1000)
            found[f"{tier}:long_context.{TOKEN_KEYS[long['base']]}"] = amount * _MILLION
        elif base in TOKEN_KEYS:
            found[f"{tier}:{TOKEN_KEYS[base]}"] = amount * _MILLION
        elif base in UNIT_KEYS:
            piece, factor = UNIT_KEYS[base]
            if base != "output_cost_per_second" or "input_cost_per_second" not in entry:
                found[f"{tier}:{piece}"] = amount * factor
        elif base == "output_cost_per_image" and variant is not None:
            found[f"{tier}:per_image.{variant}"] = amount
        elif base == "input_cost_per_pixel" and variant is not None and amount:
            width, height = variant.split("/")[0].split("x")
            per_image = (amount * int(width) * int(height)).quantize(_PIXEL_PRECISION)
            found[f"{tier}:per_image.{variant}"] = per_image
    return sorted(found.items())


def _tier_of(key: str) -> tuple[str, str]:
    """``input_cost_per_token_priority`` -> (``input_cost_per_token``, ``priority``)."""
    for suffix, tier in TIER_SUFFIXES.items():
        if key.endswith(suffix):
            return key.removesuffix(suffix), tier
    return key, ""
