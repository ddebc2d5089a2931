"""The billing side of per-request reconciliation: a CSV with one row per billed request.

:func:`read_billing` reads it by header name (case-insensitive) into :class:`BilledRequest` rows;
anything it cannot use is a permanent :class:`~recon_job.errors.LogSourceError` naming the file,
line and column.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TypeVar

import structlog

from recon_job.errors import LogSourceError
from recon_job.models import MONEY
from recon_job.sources.base import MAX_COST_USD

log = structlog.get_logger(__name__)

EV_BILLING_READ = "recon.requests.billing_read"

_Kept = TypeVar("_Kept", bound=Sized)

#: Accepted headers (case-insensitive), in order of preference.
ID_HEADERS = ("request_id", "openai_request_id", "id")
USD_HEADERS = ("cost", "cost_usd", "amount", "amount_value", "actual_cost")
CENT_HEADERS = ("cost_cents", "actual_cost_cents")
TIME_HEADERS = ("created_at", "timestamp", "start_time")
_HUNDRED = Decimal(100)
#: The most decimal places an amount may have: OpenAI's amounts have up to 36.
MAX_PLACES = 40


@dataclass(frozen=True, slots=True)
class BilledRequest:
    """One row of the billing file."""

    request_id: str
    #: USD, as billed (exact, from the file's text).
    actual: Decimal
    #: Line of the file the row starts on (the header is line 1).
    line: int
    #: When the request was made (UTC), when the file says.
    timestamp: datetime | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class BillingIndex:
    """A billing file as per-request reconciliation holds it: columns, not a row object each.

    Per row, in file order: its request id, its USD amount as billed and its model (interned);
    and an index of the ids. What a row also has — its line, its time — is not kept, only the
    span of the days: 200,000 rows take about a third of the memory of as many
    :class:`BilledRequest` objects.
    """

    request_ids: list[str]
    #: USD, as billed.
    actual: list[Decimal]
    models: list[str | None]
    #: Request id -> the position of its (first) row.
    position: dict[str, int]
    #: First and last UTC day of the rows' times, when any row has one.
    span: tuple[date, date] | None

    def __len__(self) -> int:
        return len(self.request_ids)

    @classmethod
    def of(cls, rows: Iterable[BilledRequest]) -> BillingIndex:
        """The index of ``rows`` (read as they come: an iterator of a file's rows is never held)."""
        ids: list[str] = []
        actual: list[Decimal] = []
        models: list[str | None] = []
        position: dict[str, int] = {}
        first = last = None
        for row in rows:
            position.setdefault(row.request_id, len(ids))
            ids.append(row.request_id)
            actual.append(row.actual)
            models.append(row.model)
            if row.timestamp is not None:
                day = row.timestamp.date()
                first = day if first is None or day < first else first
                last = day if last is None or day > last else last
        span = None if first is None or last is None else (first, last)
        return cls(ids, actual, models, position, span)


def read_billing(path: str | Path) -> list[BilledRequest]:
    """Every row of a per-request billing CSV; LogSourceError naming file, line and column.

    Headers are matched case-insensitively: an id (:data:`ID_HEADERS`), an amount in USD
    (:data:`USD_HEADERS`) or cents (:data:`CENT_HEADERS`), optionally ``currency`` (must be
    usd), a time (:data:`TIME_HEADERS`: epoch seconds or ISO; naive means UTC) and ``model``.
    """
    return _read(path, list)


def index_billing(path: str | Path) -> BillingIndex:
    """The rows :func:`read_billing` reads, indexed as they are read (:class:`BillingIndex`)."""
    return _read(path, BillingIndex.of)


def _read(path: str | Path, keep: Callable[[Iterator[BilledRequest]], _Kept]) -> _Kept:
    name = str(path)
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            # strict: a quote opened and never closed is an error, not the rest of the file
            # read as one request id.
            kept = keep(_read_rows(name, csv.DictReader(fh, strict=True)))
        log.info(EV_BILLING_READ, file=name, rows=len(kept))
        return kept
    except OSError as e:
        raise LogSourceError(
            f"{name}: cannot read the billing file ({e.strerror or e}); check the path",
            permanent=True,
            reason="billing_unreadable",
        ) from e
    except UnicodeDecodeError as e:
        raise LogSourceError(
            f"{name}: not UTF-8 text ({e.reason}); export the billing file as UTF-8 CSV",
            permanent=True,
            reason="billing_unreadable",
        ) from e
    except csv.Error as e:
        raise LogSourceError(
            f"{name}: not a readable CSV file ({e}; is a quote opened and never closed?)",
            permanent=True,
            reason="billing_invalid",
        ) from e


def _bad(name: str, line: int, text: str) -> LogSourceError:
    return LogSourceError(f"{name}: line {line}: {text}", permanent=True, reason="billing_invalid")


@dataclass(frozen=True, slots=True)
class _Columns:
    """Which header of a billing file holds what, and the file's name for messages."""

    file: str
    request_id: str
    amount: str
    #: What the amount column's figures are divided by to make USD: 1, or 100 for cents.
    scale: Decimal
    time: str | None
    model: str | None
    currency: str | None


def _columns(name: str, fieldnames: Sequence[str] | None) -> _Columns:
    """The columns to read, picked from the header by :data:`ID_HEADERS` etc."""
    if fieldnames is None:
        raise LogSourceError(
            f"{name}: the file is empty (no header line); export the billing data again",
            permanent=True,
            reason="billing_invalid",
        )
    lower = {h.strip().lower(): h for h in fieldnames if h is not None}

    def pick(candidates: Sequence[str]) -> str | None:
        return next((lower[c] for c in candidates if c in lower), None)

    id_col, usd_col, cents_col = pick(ID_HEADERS), pick(USD_HEADERS), pick(CENT_HEADERS)
    amount_col = usd_col or cents_col
    if id_col is None or amount_col is None:
        need = (
            f"request id column (one of {', '.join(ID_HEADERS)})"
            if id_col is None
            else f"cost column (one of {', '.join(USD_HEADERS + CENT_HEADERS)})"
        )
        found = ", ".join(repr(h) for h in fieldnames) or "none"
        raise _bad(name, 1, f"the header has no {need}; found columns {found}")
    return _Columns(
        file=name,
        request_id=id_col,
        amount=amount_col,
        scale=Decimal(1) if usd_col else _HUNDRED,
        time=pick(TIME_HEADERS),
        model=pick(("model",)),
        currency=pick(("currency",)),
    )


def _read_rows(name: str, reader: csv.DictReader[str]) -> Iterator[BilledRequest]:
    columns = _columns(name, reader.fieldnames)
    seen: dict[str, int] = {}
    start = 2
    for raw in reader:
        line, start = start, reader.line_num + 1
        yield _row(raw, line, columns, seen)


def _row(raw: dict[str, str], line: int, columns: _Columns, seen: dict[str, int]) -> BilledRequest:
    """One row as a BilledRequest; its request id is added to ``seen`` (id -> line)."""
    name, id_col = columns.file, columns.request_id
    if None in raw:
        # csv.DictReader keeps the fields past the header's under the key None.
        header = len(raw) - 1
        fields = header + len(raw[None])  # type: ignore[index]
        raise _bad(
            name,
            line,
            f"the row has {fields} fields, the header {header}; quote a field that holds a comma",
        )
    request_id = (raw.get(id_col) or "").strip()
    if not request_id:
        raise _bad(name, line, f"column {id_col!r} is empty; every row needs a request id")
    if request_id in seen:
        raise _bad(
            name,
            line,
            f"column {id_col!r}: request id {request_id!r} is also on line "
            f"{seen[request_id]}; each request must appear once — remove the duplicate row",
        )
    seen[request_id] = line
    cur_col = columns.currency
    if cur_col is not None and (raw.get(cur_col) or "usd").strip().lower() not in ("usd", ""):
        raise _bad(name, line, f"column {cur_col!r}: currency {raw[cur_col]!r} is not usd")
    amount = _amount(raw, line, columns)
    when = _when(raw, line, columns)
    # Interned: a bill names a few models on hundreds of thousands of rows.
    model = sys.intern((raw.get(columns.model) or "").strip()) if columns.model else ""
    # USD amounts are kept as read: dividing by 1 changes nothing but makes a new Decimal with
    # a 96-digit coefficient buffer (twice the memory of the one parsed, per row).
    actual = amount if columns.scale == 1 else MONEY.divide(amount, columns.scale)
    return BilledRequest(request_id, actual, line, when, model or None)


def _amount(raw: dict[str, str], line: int, columns: _Columns) -> Decimal:
    """The row's amount as written (not yet scaled to USD); finite and not negative."""
    column = columns.amount
    text = (raw.get(column) or "").strip()
    shown = text if len(text) <= 40 else text[:40] + "…"
    try:
        # Python reads "1_000" as 1000; no export writes that.
        amount = Decimal("NaN" if "_" in text else text)
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite():
        raise _bad(columns.file, line, f"column {column!r}: {shown!r} is not a number")
    if amount < 0:
        raise _bad(columns.file, line, f"column {column!r}: {shown!r} is negative")
    # Bounded as the log side is: 1e999999 overflowed the comparison, 9e-1000000 came back as
    # a megabyte of zeros.
    if amount >= MAX_COST_USD * columns.scale:
        raise _bad(
            columns.file,
            line,
            f"column {column!r}: {shown!r} is out of range (no request costs "
            f"{MAX_COST_USD:,} USD or more)",
        )
    if amount.as_tuple().exponent < -MAX_PLACES:  # type: ignore[operator]
        raise _bad(
            columns.file,
            line,
            f"column {column!r}: {shown!r} has more than {MAX_PLACES} decimal places",
        )
    return amount


def _when(raw: dict[str, str], line: int, columns: _Columns) -> datetime | None:
    """When the request was made, if the file has a time column and the row a time."""
    column = columns.time
    if column is None or not (raw.get(column) or "").strip():
        return None
    when = _parse_time(raw[column].strip())
    if when is None:
        raise _bad(
            columns.file,
            line,
            f"column {column!r}: {raw[column]!r} is not an epoch or ISO timestamp",
        )
    return when


def _parse_time(text: str) -> datetime | None:
    try:
        seconds = float(text)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    if seconds > 1e11:  # milliseconds
        seconds /= 1000
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None
