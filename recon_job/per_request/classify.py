"""Per-request classification, pure: each billed request against the record that logged it.

:func:`classify` matches billed rows to local records by request id and sorts each into a
:class:`RequestStatus` (the rules are in :mod:`recon_job.per_request.reconcile`);
:class:`RequestReconReport` holds the rows, counts and totals, and the updates a write-back sends.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING

from recon_job.models import MONEY, ZERO

if TYPE_CHECKING:  # types only: classifying reads nothing and imports no database library
    from recon_job.per_request.billing import BilledRequest
    from recon_job.per_request.local import LocalRequest
    from recon_job.per_request.writeback import Update

#: How many duplicate local ids a report lists.
MAX_DUPLICATES_LISTED = 20
_HUNDRED = Decimal(100)
_CENTS_SCALE = Decimal("0.000001")  # the NUMERIC(20, 6) the migrations create


class RequestStatus(enum.StrEnum):
    """The class of one request."""

    MATCHED = "matched"
    DISCREPANCY = "discrepancy"
    NOT_FOUND = "not_found"
    PENDING = "pending"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class RequestRow:
    """The outcome for one request id."""

    request_id: str
    status: RequestStatus
    #: USD, local estimate (None: not logged, or unpriced).
    estimated: Decimal | None
    #: USD, as billed (None: not billed).
    actual: Decimal | None
    #: estimated - actual in USD, when both are known.
    difference: Decimal | None
    model: str | None = None
    #: Why an ``error`` row is one: ``duplicate_local_request_id`` or ``unpriced``.
    reason: str = ""


@dataclass(frozen=True)
class RequestReconReport:
    """Everything one per-request reconciliation found (and wrote)."""

    #: One row per billed request, then pending and error-only rows.
    rows: tuple[RequestRow, ...]
    #: Rows per status value; every status is present.
    counts: dict[str, int]
    #: USD over matched and discrepancy rows (the requests both sides know and priced).
    estimated_total: Decimal
    actual_total: Decimal
    #: estimated_total - actual_total.
    difference: Decimal
    #: USD over every billed row, and over those not found locally.
    billed_total: Decimal
    not_found_total: Decimal
    #: USD over pending rows that could be priced.
    pending_total: Decimal
    #: Local ids logged more than once (at most 20 listed) and how many there are.
    duplicate_ids: tuple[str, ...] = ()
    duplicates: int = 0
    #: First and last UTC day of the billing file, when it has timestamps.
    span: tuple[date, date] | None = None
    #: Local records outside ``span`` and not billed: out of scope, only counted.
    outside_span: int = 0
    #: Local records left out, by reason (``no_request_id``, ``malformed_json`` ...).
    skipped: dict[str, int] = field(default_factory=dict)
    #: The rule used: matched within ``pct`` percent of actual or within ``floor`` USD.
    pct: Decimal = Decimal(5)
    floor: Decimal = Decimal("0.05")
    #: The local source's name and the billing file's path, as given.
    source: str = ""
    billing_file: str = ""
    #: True when the source is a database table (a write-back is possible).
    writable: bool = False
    #: True when the statuses were written back; ``written`` counts the updates sent.
    applied: bool = False
    written: int = 0
    notes: tuple[str, ...] = ()

    @property
    def needs_attention(self) -> bool:
        """True when anything is a discrepancy, not found, or an error."""
        return any(self.counts[s] for s in ("discrepancy", "not_found", "error"))

    def updates(self) -> list[Update]:
        """What a write-back sends: actual cents for billed rows, ``pending`` for unbilled ones."""
        out: list[Update] = []
        for row in self.rows:
            if row.status in (RequestStatus.MATCHED, RequestStatus.DISCREPANCY):
                assert row.actual is not None
                # Rounded half-even to the NUMERIC(20, 6) the migrations create, here rather
                # than by the server: MariaDB truncates where PostgreSQL rounds.
                cents = MONEY.multiply(row.actual, _HUNDRED).quantize(_CENTS_SCALE, context=MONEY)
                out.append((row.request_id, cents, row.status.value))
            elif row.status is RequestStatus.PENDING:
                out.append((row.request_id, None, row.status.value))
        return out


def within(estimated: Decimal, actual: Decimal, pct: Decimal, floor: Decimal) -> bool:
    """True when |estimated − actual| is at most ``pct`` percent of actual or at most ``floor``."""
    gap = abs(MONEY.subtract(estimated, actual))
    return gap <= floor or MONEY.multiply(gap, _HUNDRED) <= MONEY.multiply(abs(actual), pct)


def classify(
    billed: Sequence[BilledRequest],
    local: Iterable[LocalRequest],
    *,
    pct: Decimal = Decimal(5),
    floor: Decimal = Decimal("0.05"),
) -> RequestReconReport:
    """Classify every billed request and every in-scope local record (streams ``local``)."""
    by_id = {b.request_id: b for b in billed}
    scope = _scope(billed, local, by_id)
    rows = [_billed_row(b, scope, pct, floor) for b in billed]
    rows += _unbilled_rows(scope, by_id)
    return _summarise(rows, billed, scope, pct, floor)


@dataclass(frozen=True, slots=True)
class _Scope:
    """The local records a billing file is matched against, by request id."""

    #: First and last UTC day of the billing file, when it has timestamps.
    span: tuple[date, date] | None
    #: The first in-scope record of each request id.
    kept: dict[str, LocalRequest]
    #: The second record of each request id logged more than once.
    dupes: dict[str, LocalRequest]
    #: Records outside ``span`` and not billed: out of scope, only counted.
    outside: int


def _scope(
    billed: Sequence[BilledRequest], local: Iterable[LocalRequest], by_id: Mapping[str, object]
) -> _Scope:
    days = [b.timestamp.date() for b in billed if b.timestamp is not None]
    span = (min(days), max(days)) if days else None
    kept: dict[str, LocalRequest] = {}
    dupes: dict[str, LocalRequest] = {}
    outside = 0
    for record in local:
        rid = record.request_id
        in_span = span is None or (record.day is not None and span[0] <= record.day <= span[1])
        if not in_span and rid not in by_id:
            outside += 1
            continue
        if rid in kept:
            dupes.setdefault(rid, record)
        else:
            kept[rid] = record
    return _Scope(span, kept, dupes, outside)


def _billed_row(b: BilledRequest, scope: _Scope, pct: Decimal, floor: Decimal) -> RequestRow:
    """The row of one billed request: matched, discrepancy, not found or error."""
    found = scope.kept.get(b.request_id)
    if found is None:
        return RequestRow(b.request_id, RequestStatus.NOT_FOUND, None, b.actual, None)
    model = found.model or b.model
    if b.request_id in scope.dupes:
        reason = "duplicate_local_request_id"
    elif found.estimated is None:
        reason = "unpriced"
    else:
        ok = within(found.estimated, b.actual, pct, floor)
        status = RequestStatus.MATCHED if ok else RequestStatus.DISCREPANCY
        diff = MONEY.subtract(found.estimated, b.actual)
        return RequestRow(b.request_id, status, found.estimated, b.actual, diff, model)
    return RequestRow(b.request_id, RequestStatus.ERROR, None, b.actual, None, model, reason)


def _unbilled_rows(scope: _Scope, by_id: Mapping[str, object]) -> Iterator[RequestRow]:
    """A row for each in-scope local record that was not billed: pending, or an error."""
    for rid, record in scope.kept.items():
        if rid in by_id:
            continue
        if rid in scope.dupes:
            yield RequestRow(
                rid,
                RequestStatus.ERROR,
                None,
                None,
                None,
                record.model,
                "duplicate_local_request_id",
            )
        else:
            yield RequestRow(rid, RequestStatus.PENDING, record.estimated, None, None, record.model)


def _summarise(
    rows: list[RequestRow],
    billed: Sequence[BilledRequest],
    scope: _Scope,
    pct: Decimal,
    floor: Decimal,
) -> RequestReconReport:
    counts = dict.fromkeys((s.value for s in RequestStatus), 0)
    estimated = actual = not_found = pending = ZERO
    for row in rows:
        counts[row.status.value] += 1
        if row.difference is not None:
            assert row.estimated is not None
            assert row.actual is not None
            estimated = MONEY.add(estimated, row.estimated)
            actual = MONEY.add(actual, row.actual)
        elif row.status is RequestStatus.NOT_FOUND and row.actual is not None:
            not_found = MONEY.add(not_found, row.actual)
        elif row.status is RequestStatus.PENDING and row.estimated is not None:
            pending = MONEY.add(pending, row.estimated)
    billed_total = ZERO
    for b in billed:
        billed_total = MONEY.add(billed_total, b.actual)
    return RequestReconReport(
        rows=tuple(rows),
        counts=counts,
        estimated_total=estimated,
        actual_total=actual,
        difference=MONEY.subtract(estimated, actual),
        billed_total=billed_total,
        not_found_total=not_found,
        pending_total=pending,
        duplicate_ids=tuple(sorted(scope.dupes)[:MAX_DUPLICATES_LISTED]),
        duplicates=len(scope.dupes),
        span=scope.span,
        outside_span=scope.outside,
        pct=pct,
        floor=floor,
    )
