"""The local side of per-request reconciliation: one :class:`LocalRequest` per logged request.

Records are read from a database table (:func:`table_requests`, through
:class:`~recon_job.per_request.writeback.RequestTable`) or from NDJSON logs (:func:`log_requests`),
and streamed; a record without a cost of its own is priced from the price table.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from recon_job.models import Usage
from recon_job.pricing import PriceTable
from recon_job.sources.base import MAX_COST_USD, MAX_TOKENS
from recon_job.sources.ndjson.source import NdjsonOptions, iter_records
from recon_job.sources.sql.query import row_tier

if TYPE_CHECKING:
    from recon_job.per_request.writeback import RequestTable


@dataclass(frozen=True, slots=True)
class LocalRequest:
    """One locally logged request."""

    request_id: str
    #: USD: the logged cost, else priced from the table; None when it cannot be priced.
    estimated: Decimal | None
    model: str | None = None
    #: UTC day of the request; None when the record has no usable timestamp.
    day: date | None = None


def log_requests(
    options: NdjsonOptions, pricer: PriceTable, skipped: MutableMapping[str, int]
) -> Iterator[LocalRequest]:
    """Every NDJSON record with a request id; the others are counted as ``no_request_id``."""
    inner: dict[str, int] = {}
    for record in iter_records(options, None, inner):
        if record.request_id is None:
            _bump(skipped, "no_request_id")
            continue
        cost = record.cost
        if cost is None:
            cost = pricer.cost(record.model, record.day, record.tier, record.usage)
        yield LocalRequest(record.request_id, cost, record.model, record.day)
    for reason, count in inner.items():
        skipped[reason] = skipped.get(reason, 0) + count


def table_requests(
    table: RequestTable,
    pricer: PriceTable,
    *,
    cost_unit: str = "usd",
    timezone: str = "UTC",
    skipped: MutableMapping[str, int],
) -> Iterator[LocalRequest]:
    """Every row of ``table`` with a request id, as a LocalRequest (streamed).

    Rows are skipped (and counted in ``skipped``) as the SQL source skips them: without a
    request id (``no_request_id``), with a NUL in the model name (``bad_model``), or with a cost
    that is not a number in range (``bad_cost``: negative, ``1e999999``, text).
    """
    zone = ZoneInfo(timezone)
    scale = Decimal(100) if cost_unit == "cents" else Decimal(1)
    for row in table.rows():
        m = row._mapping
        request_id = str(m["request_id"]).strip()
        if not request_id:
            _bump(skipped, "no_request_id")
            continue
        model = None if m.get("model") is None else str(m["model"])
        if model is not None and "\x00" in model:
            _bump(skipped, "bad_model")
            continue
        day = utc_day(m.get("timestamp"), zone)
        cost: Decimal | None = None
        if m.get("cost") is not None:
            cost = _usd(m["cost"], scale)
            if cost is None:
                _bump(skipped, "bad_cost")
                continue
        elif model is not None and day is not None:
            # NULL cached or output counts mean none (embeddings have no output side);
            # a NULL, fractional or out-of-range input count leaves the request unpriced.
            inp = _count(m.get("input_tokens"))
            cached = _count(m.get("cached_tokens") or 0)
            out = _count(m.get("output_tokens") or 0)
            if inp is not None and cached is not None and out is not None:
                tier = row_tier(m.get("batch"), m.get("service_tier"))
                cost = pricer.cost(model, day, tier, Usage(inp, cached, out, 1))
        yield LocalRequest(request_id, cost, model, day)


def utc_moment(value: Any, zone: ZoneInfo) -> datetime | None:
    """A timestamp column value as an aware UTC datetime (ISO text, epoch seconds or ms, a
    datetime; naive values are in ``zone``); None when it is none of these."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            value = _number(text)
    if isinstance(value, Decimal | int | float) and not isinstance(value, bool):
        seconds = float(value)
        try:
            value = datetime.fromtimestamp(seconds / 1000 if seconds > 1e11 else seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, datetime):
        aware = value.replace(tzinfo=zone) if value.tzinfo is None else value
        return aware.astimezone(UTC)
    return None


def utc_day(value: Any, zone: ZoneInfo) -> date | None:
    """The UTC day of a timestamp column value; naive values are in ``zone``."""
    moment = utc_moment(value, zone)
    if moment is not None:
        return moment.date()
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    return None


def _number(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _usd(value: Any, scale: Decimal) -> Decimal | None:
    """A cost column's value in USD (``scale``: 100 for cents), unless it is not a number from
    0 to below ``MAX_COST_USD``: bounded before it is divided, which could overflow."""
    number = _number(value)
    if number is None or not 0 <= number < MAX_COST_USD * scale:
        return None
    return number / scale


def _count(value: Any) -> int | None:
    """A token count: a whole number from 0 to ``MAX_TOKENS``, else None."""
    number = _number(value)
    if number is None or number != number.to_integral_value() or not 0 <= number <= MAX_TOKENS:
        return None
    return int(number)


def _bump(counts: MutableMapping[str, int], name: str) -> None:
    counts[name] = counts.get(name, 0) + 1
