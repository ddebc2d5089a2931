"""Stale or wrong prices: the unit price OpenAI billed against the price table (issue 12, item 4).

The Costs API gives, per line item, the USD billed and the quantity billed with its unit
(reference §1.5): :class:`~recon_job.findings.BilledLine`, summed per day x model x piece x tier.
Their ratio is the unit price OpenAI charged; converted to the price table's unit (USD per 1M
tokens, per image, per minute, per 1M characters, per GB-day) it is compared with
:meth:`recon_job.pricing.PriceTable.rates` for the same model, day and tier. Every piece billed at
another price than the table's becomes a :class:`~recon_job.findings.PriceFinding` with both
figures and the first day of the data billed at that price.

Tolerance: OpenAI rounds what it bills (the amounts of a day's line are sums of rounded request
charges; the reference's own example bills 53,440 gpt-4o input tokens $0.1332 where $2.50/1M
gives $0.1336, 0.3% off). A day's line therefore differs from the table only when the amount is
off by more than :data:`RELATIVE_TOLERANCE` (0.5%) of what the table gives *and* by more than
:data:`ABSOLUTE_TOLERANCE` (one cent): the relative rule absorbs rounding on large lines, the
cent absorbs it on small ones (a line of a few hundred tokens rounds to a cent or to zero). No
real price change is that small: OpenAI's changes move prices by 10% or more.

The billed price reported is the amount over the quantity of the days billed at it, snapped to
the fewest decimals within :data:`SNAP_TOLERANCE` (``0.12501`` -> ``0.125``); the history takes
a price within the relative tolerance of one it already holds for the same piece as that one
(:meth:`recon_job.store.HistoryStore.record_price_findings`), so rounding never sends a second
alert.

Model names: the table is asked for the billed name first (a snapshot with a price of its own,
or one the table says shares its alias's), then for the name the run compares under
(:meth:`recon_job.modelnames.ModelNamer.normalize`: ``gpt-4o-2024-08-06`` -> ``gpt-4o``): that is
the price the local side's records of ``gpt-4o`` are charged at, the one that matters. Findings
name the model the way the run does (normalised).

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Context, Decimal

from recon_job.findings import BilledLine, PriceFinding
from recon_job.modelnames import ModelNamer
from recon_job.models import TIERS, Tier
from recon_job.pricing import PriceTable, Rates

#: A day's line is off only beyond this share of the table's amount (and beyond the cent).
RELATIVE_TOLERANCE = Decimal("0.005")
#: ... and beyond this many USD on the day's line (OpenAI bills in rounded amounts).
ABSOLUTE_TOLERANCE = Decimal("0.01")
#: A billed price is shown with the fewest decimals that stay this close to it (:func:`snap`):
#: tighter than the mismatch rule, so a published price of 4 digits (``0.1625``) keeps them.
SNAP_TOLERANCE = Decimal("0.001")

_EXACT = Context(prec=60)
_MILLION = Decimal(1_000_000)
#: A GiB is 2**30 bytes; the table's GB is 10**9 (see :data:`recon_job.pricing.BYTES_PER_GB`).
_GB_PER_GIB = Decimal(2**30) / Decimal(10**9)

#: Units of the table, as :attr:`PriceFinding.unit` names them.
PER_1M_TOKENS = "1M tokens"
PER_IMAGE = "image"
PER_MINUTE = "minute"
PER_1M_CHARACTERS = "1M characters"
PER_GB_DAY = "GB-day"

#: OpenAI's ``quantity_unit`` -> (the table's unit, how many table units one quantity is).
UNITS: Mapping[str, tuple[str, Decimal]] = {
    "tokens": (PER_1M_TOKENS, 1 / _MILLION),
    "1000_tokens": (PER_1M_TOKENS, Decimal(1000) / _MILLION),
    "duration_seconds": (PER_MINUTE, 1 / Decimal(60)),
    "duration_minutes": (PER_MINUTE, Decimal(1)),
    "duration_hours": (PER_MINUTE, Decimal(60)),
    "characters": (PER_1M_CHARACTERS, 1 / _MILLION),
    "images": (PER_IMAGE, Decimal(1)),
    "gibibyte_hours": (PER_GB_DAY, _EXACT.divide(_GB_PER_GIB, Decimal(24))),
}

#: Token pieces of a line item (modality first, text left out) -> the rate of :class:`Rates`.
TOKEN_PIECES: Mapping[str, str] = {
    "input": "input",
    "uncached input": "input",
    "cached input": "cached_input",
    "output": "output",
    "cache writes": "cache_write",
    "cache write": "cache_write",
    "cached writes": "cache_write",
    "audio input": "audio_input",
    "audio cached input": "cached_audio_input",
    "cached audio input": "cached_audio_input",
    "audio output": "audio_output",
    "image input": "image_input",
    "image cached input": "cached_image_input",
    "cached image input": "cached_image_input",
    "image output": "image_output",
}
#: Unit -> the rate used whatever the piece says (audio minutes, characters, storage).
UNIT_RATES: Mapping[str, str] = {
    PER_MINUTE: "per_minute",
    PER_1M_CHARACTERS: "per_1m_characters",
    PER_GB_DAY: "per_gb_day",
}
_LONG = ", long context"
#: Standard-tier synonyms OpenAI may print as a line item's tier prefix.
_STANDARD = frozenset({"standard", "default", "auto", "scale"})


@dataclass(frozen=True)
class PriceCheck:
    """What comparing billed lines with the table found, and what it could not compare."""

    findings: tuple[PriceFinding, ...] = ()
    #: Billed lines compared (day x model x piece x tier).
    compared: int = 0
    #: Lines left out, by reason: ``unknown_unit``, ``unknown_piece``, ``unknown_tier``,
    #: ``unpriced_model``, ``no_quantity`` (a zero quantity), ``credit`` (a negative amount).
    skipped: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Day:
    day: date
    amount: Decimal
    #: In the table's unit.
    quantity: Decimal
    #: The table's rate that day; None: the table has rates for the model but not this piece.
    table: Decimal | None


def price_findings(
    lines: Iterable[BilledLine], prices: PriceTable, namer: ModelNamer | None = None
) -> tuple[PriceFinding, ...]:
    """Every model x piece x tier OpenAI billed at another unit price than the table's.

    Sorted by model, piece, tier and ``since``; see :func:`check_prices` for what is skipped.
    """
    return check_prices(lines, prices, namer).findings


def check_prices(
    lines: Iterable[BilledLine], prices: PriceTable, namer: ModelNamer | None = None
) -> PriceCheck:
    """:func:`price_findings` with the number of lines compared and skipped (by reason)."""
    namer = namer if namer is not None else prices.namer
    skipped: Counter[str] = Counter()
    series: dict[tuple[str, str, str, str], list[_Day]] = {}
    compared = 0
    for line in lines:
        found = _day_of(line, prices, namer, skipped)
        if found is None:
            continue
        unit, line_tier, day = found
        compared += 1
        series.setdefault((line.model, line.piece, line_tier, unit), []).append(day)
    findings: dict[tuple[str, str, str, Decimal], PriceFinding] = {}
    for (model, piece, tier, unit), days in series.items():
        for finding in _series_findings(namer.normalize(model), piece, tier, unit, days):
            key = (finding.model, finding.piece, finding.tier, finding.billed)
            findings[key] = _merged(findings.get(key), finding)
    ordered = sorted(findings.values(), key=lambda f: (f.model, f.piece, f.tier, f.since))
    return PriceCheck(tuple(ordered), compared, dict(sorted(skipped.items())))


def price_sentence(finding: PriceFinding) -> str:
    """``OpenAI bills gpt-5 cached input at $0.125/1M since 2026-08-07; your table: $0.25``."""
    tier = "" if finding.tier == "standard" else f" ({finding.tier})"
    unit = "/1M" if finding.unit == PER_1M_TOKENS else f"/{finding.unit}"
    table = (
        f"your table: {usd(finding.table)}"
        if finding.table is not None
        else "your table has no price for it"
    )
    return (
        f"OpenAI bills {finding.model} {finding.piece}{tier} at {usd(finding.billed)}{unit} "
        f"since {finding.since.isoformat()}; {table}"
    )


def usd(value: Decimal) -> str:
    """``$0.125``, ``$2.50``, ``$0.0375``: every digit, at least cents."""
    value = value.normalize()
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        value = value.quantize(Decimal("0.01"))
    return f"${value:f}"


def _tier(text: str) -> Tier | None:
    name = text.strip().lower()
    if name in _STANDARD:
        return "standard"
    return next((t for t in TIERS if t == name), None)


def _day_of(
    line: BilledLine, prices: PriceTable, namer: ModelNamer, skipped: Counter[str]
) -> tuple[str, Tier, _Day] | None:
    """One line in the table's unit with the table's rate that day; None when skipped."""
    unit = UNITS.get(line.unit.strip().lower())
    tier = _tier(line.tier)
    if unit is None:
        skipped["unknown_unit"] += 1
        return None
    if tier is None:
        skipped["unknown_tier"] += 1
        return None
    if line.quantity <= 0:
        skipped["no_quantity"] += 1
        return None
    if line.amount < 0:
        skipped["credit"] += 1
        return None
    rates = prices.rates(line.model, line.day, tier) or prices.rates(
        namer.normalize(line.model), line.day, tier
    )
    if rates is None:
        skipped["unpriced_model"] += 1
        return None
    name, factor = unit
    known, rate = _rate(rates, line.piece, name)
    if not known:
        skipped["unknown_piece"] += 1
        return None
    quantity = _EXACT.multiply(line.quantity, factor)
    return name, tier, _Day(line.day, line.amount, quantity, rate)


def _rate(rates: Rates, piece: str, unit: str) -> tuple[bool, Decimal | None]:
    """(whether the piece is understood, the table's rate for it or None)."""
    if unit in UNIT_RATES:
        rate: Decimal | None = getattr(rates, UNIT_RATES[unit])
        return True, rate
    if unit == PER_IMAGE:
        variant = piece.replace(", ", "/").replace(" ", "")
        generic = piece in ("image", "images", "")
        return True, rates.image_price(None if generic else variant)
    long = piece.endswith(_LONG)
    name = TOKEN_PIECES.get(piece.removesuffix(_LONG).strip())
    if name is None:
        return False, None
    normal: Decimal | None = getattr(rates, name)
    if long and rates.long_context is not None:
        # A class the long-context rates leave out keeps its normal rate (as Rates does).
        long_rate: Decimal | None = getattr(rates.long_context.rates, name)
        return True, long_rate if long_rate is not None else normal
    # Without long-context rates the run charges the normal rate: compare with that one.
    return True, normal


def _off(amount: Decimal, quantity: Decimal, price: Decimal) -> bool:
    """True when ``amount`` is beyond both tolerances from ``quantity`` at ``price``."""
    return _beyond(amount, _EXACT.multiply(quantity, price))


def _beyond(amount: Decimal, expected: Decimal) -> bool:
    """True when ``amount`` differs from ``expected`` by more than both tolerances."""
    difference = abs(_EXACT.subtract(amount, expected))
    return difference > ABSOLUTE_TOLERANCE and difference > RELATIVE_TOLERANCE * abs(expected)


def _series_findings(
    model: str, piece: str, tier: str, unit: str, days: list[_Day]
) -> list[PriceFinding]:
    """The runs of days billed at one price that differ from the table, as findings."""
    found: list[PriceFinding] = []
    for run in _runs(_by_day(days)):
        amount = sum((d.amount for d in run), Decimal(0))
        quantity = sum((d.quantity for d in run), Decimal(0))
        table = run[-1].table
        if any(d.table is None for d in run):
            # Billed, and the table cannot price it: a finding once it is more than a cent.
            table, off = None, amount > ABSOLUTE_TOLERANCE
        else:
            expected = sum((_EXACT.multiply(d.quantity, d.table or 0) for d in run), Decimal(0))
            off = _beyond(amount, expected)
        if not off or quantity == 0:
            continue
        billed = snap(_EXACT.divide(amount, quantity))
        if table is not None and billed == table.normalize():
            continue  # the rounding rules disagree on a price equal to the table's
        found.append(
            PriceFinding(
                model=model,
                piece=piece,
                tier=tier,
                billed=billed,
                table=table,
                unit=unit,
                since=run[0].day,
                last_day=run[-1].day,
            )
        )
    return found


def _by_day(days: list[_Day]) -> list[_Day]:
    """One entry per day (several snapshots of one name on a day add up), oldest first."""
    merged: dict[date, _Day] = {}
    for d in days:
        before = merged.get(d.day)
        if before is None:
            merged[d.day] = d
            continue
        table = before.table if before.table == d.table else None
        merged[d.day] = _Day(d.day, before.amount + d.amount, before.quantity + d.quantity, table)
    return [merged[day] for day in sorted(merged)]


def _runs(days: list[_Day]) -> list[list[_Day]]:
    """Consecutive days (in data order, days without usage skipped) billed at one price.

    A day joins the run before it when its amount agrees with the run's price so far, within
    the tolerances; otherwise it starts a new run (the price changed).
    """
    runs: list[list[_Day]] = []
    for day in days:
        if runs:
            run = runs[-1]
            quantity = sum((d.quantity for d in run), Decimal(0))
            if quantity == 0 or not _off(
                day.amount,
                day.quantity,
                _EXACT.divide(sum((d.amount for d in run), Decimal(0)), quantity),
            ):
                run.append(day)
                continue
        runs.append([day])
    return runs


def snap(price: Decimal) -> Decimal:
    """``price`` with the fewest decimals (2 at least) within :data:`SNAP_TOLERANCE` of it.

    ``0.12501`` -> ``0.125``, ``2.4996`` -> ``2.5``: what OpenAI publishes is a short number; the
    digits past it are rounding. Normalised, so equal prices compare and store as equal.
    """
    if price == 0:
        return Decimal(0)
    for places in range(2, 13):
        candidate = price.quantize(Decimal(1).scaleb(-places))
        if candidate != 0 and abs(candidate - price) <= SNAP_TOLERANCE * abs(price):
            return candidate.normalize()
    return _EXACT.plus(price).normalize()


def _merged(before: PriceFinding | None, new: PriceFinding) -> PriceFinding:
    """One finding per model x piece x tier x price: the earliest ``since``, the latest day."""
    if before is None:
        return new
    first = before if before.since <= new.since else new
    last = max(
        (d for d in (before.last_day, new.last_day) if d is not None),
        default=None,
    )
    later = before if (before.last_day or before.since) >= (new.last_day or new.since) else new
    return PriceFinding(
        model=first.model,
        piece=first.piece,
        tier=first.tier,
        billed=first.billed,
        table=later.table,
        unit=first.unit,
        since=first.since,
        last_day=last,
    )
