"""Per-request classification: each billed request against the record that logged it.

:func:`classify` matches billed rows to local records by request id and sorts each into a
:class:`RequestStatus` (the rules are in :mod:`recon_job.per_request.reconcile`);
:class:`RequestReconReport` holds the rows, counts and totals, and the updates a write-back sends.
It streams the local records against an index of the billing rows: the unbilled ones go to a
temporary file (:mod:`~recon_job.per_request.unbilled`), so memory grows with the bill, not
with the logs.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, overload

from recon_job.models import MONEY, ZERO
from recon_job.per_request.billing import BillingIndex
from recon_job.per_request.unbilled import Unbilled

if TYPE_CHECKING:  # types only: classifying imports no database library
    from recon_job.per_request.billing import BilledRequest
    from recon_job.per_request.local import LocalRequest
    from recon_job.per_request.writeback import Update

#: How many duplicate local ids a report lists.
MAX_DUPLICATES_LISTED = 20
#: What the local side holds of a billed request id: no record, one, more than one.
_NOT_FOUND, _FOUND, _REPEATED = 0, 1, 2
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

    #: One row per billed request, then pending and error-only rows (a sequence made as it is
    #: read: see :class:`RequestRows`).
    rows: Sequence[RequestRow]
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
        return list(self.iter_updates())

    @property
    def update_count(self) -> int:
        """How many updates a write-back sends."""
        c = self.counts
        return c["matched"] + c["discrepancy"] + c["pending"]

    def iter_updates(self) -> Iterator[Update]:
        """:meth:`updates` one at a time, made as the rows are read (a write-back of millions
        of pending rows never holds them all)."""
        for row in self.rows:
            if row.status in (RequestStatus.MATCHED, RequestStatus.DISCREPANCY):
                assert row.actual is not None
                # Rounded half-even to the NUMERIC(20, 6) the migrations create, here rather
                # than by the server: MariaDB truncates where PostgreSQL rounds.
                cents = MONEY.multiply(row.actual, _HUNDRED).quantize(_CENTS_SCALE, context=MONEY)
                yield (row.request_id, cents, row.status.value)
            elif row.status is RequestStatus.PENDING:
                yield (row.request_id, None, row.status.value)


def within(estimated: Decimal, actual: Decimal, pct: Decimal, floor: Decimal) -> bool:
    """True when |estimated − actual| is at most ``pct`` percent of actual or at most ``floor``."""
    gap = abs(MONEY.subtract(estimated, actual))
    return gap <= floor or MONEY.multiply(gap, _HUNDRED) <= MONEY.multiply(abs(actual), pct)


def classify(
    billed: Sequence[BilledRequest] | BillingIndex,
    local: Iterable[LocalRequest],
    *,
    pct: Decimal = Decimal(5),
    floor: Decimal = Decimal("0.05"),
) -> RequestReconReport:
    """Classify every billed request and every in-scope local record (streams ``local``).

    Memory holds the billing rows (best given as a
    :class:`~recon_job.per_request.billing.BillingIndex`) and, per billed id, the first local
    record's estimate and model; the unbilled in-scope records (``pending`` rows: a month of
    logs against a bill of it) are kept by :class:`~recon_job.per_request.unbilled.Unbilled`
    in a temporary file, and the report's rows are made from both as they are read
    (:class:`RequestRows`).
    """
    index = billed if isinstance(billed, BillingIndex) else BillingIndex.of(billed)
    scope = _scope(index, local)
    return _summarise(RequestRows(index, scope, pct, floor), index, scope, pct, floor)


@dataclass(frozen=True, slots=True)
class _Scope:
    """The local records a billing file is matched against, by request id."""

    #: First and last UTC day of the billing file, when it has timestamps.
    span: tuple[date, date] | None
    #: Per billed id (by its position in the index): :data:`_NOT_FOUND`, :data:`_FOUND` or
    #: :data:`_REPEATED` (logged more than once); then its first local record's USD estimate
    #: and model.
    #: Three flat lists, not a tuple per row: a bill has hundreds of thousands of rows.
    state: bytearray
    estimates: list[Decimal | None]
    models: list[str | None]
    #: The unbilled in-scope records, in reading order.
    unbilled: Unbilled
    #: Records outside ``span`` and not billed: out of scope, only counted.
    outside: int


def _scope(billed: BillingIndex, local: Iterable[LocalRequest]) -> _Scope:
    span, index = billed.span, billed.position
    state = bytearray(len(billed))
    estimates: list[Decimal | None] = [None] * len(billed)
    models: list[str | None] = [None] * len(billed)
    # One string per model name, not one per record: a billed row keeps its record's.
    names: dict[str, str] = {}
    unbilled = Unbilled()
    outside = 0
    for record in local:
        rid = record.request_id
        i = index.get(rid)
        if i is not None:
            if state[i] == _NOT_FOUND:
                state[i] = _FOUND
                estimates[i] = record.estimated
                model = record.model
                models[i] = None if model is None else names.setdefault(model, model)
            else:
                state[i] = _REPEATED
        elif span is None or (record.day is not None and span[0] <= record.day <= span[1]):
            unbilled.add(rid, record.estimated, record.model)
        else:
            outside += 1
    unbilled.finish()
    return _Scope(span, state, estimates, models, unbilled, outside)


class RequestRows(Sequence[RequestRow]):
    """The rows of a report: one per billed request, then the pending and error-only rows of
    the unbilled records; made as they are read, from the billing rows and the records kept.

    A sequence like the tuple it replaces (``len``, iteration, indexing, ``==``), but built
    anew on each read, so a report over millions of logged requests holds none of them as
    objects. Indexing past the billed rows reads the unbilled ones up to the index.
    """

    def __init__(self, billed: BillingIndex, scope: _Scope, pct: Decimal, floor: Decimal) -> None:
        self._billed = billed
        self._scope = scope
        self._pct = pct
        self._floor = floor
        unbilled = scope.unbilled
        self._len = len(billed) + unbilled.count - unbilled.repeats

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[RequestRow]:
        scope, pct, floor = self._scope, self._pct, self._floor
        for i in range(len(self._billed)):
            yield _billed_row(self._billed, i, scope, pct, floor)
        yield from _unbilled_rows(scope.unbilled)

    @overload
    def __getitem__(self, index: int) -> RequestRow: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[RequestRow, ...]: ...

    def __getitem__(self, index: int | slice) -> RequestRow | tuple[RequestRow, ...]:
        if isinstance(index, slice):
            return tuple(self)[index]
        position = index + self._len if index < 0 else index
        if not 0 <= position < self._len:
            raise IndexError("request row index out of range")
        if position < len(self._billed):
            return _billed_row(self._billed, position, self._scope, self._pct, self._floor)
        rows = _unbilled_rows(self._scope.unbilled)
        return next(itertools.islice(rows, position - len(self._billed), None))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RequestRows | tuple | list):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable-looking: compared by content

    def __repr__(self) -> str:
        return f"RequestRows({self._len} rows)"


def _billed_row(
    billed: BillingIndex, i: int, scope: _Scope, pct: Decimal, floor: Decimal
) -> RequestRow:
    """The row of the ``i``-th billed request: matched, discrepancy, not found or error."""
    rid, billed_actual = billed.request_ids[i], billed.actual[i]
    found = billed.position[rid]  # a repeated billed id (never from a file) shares its first's
    state = scope.state[found]
    if state == _NOT_FOUND:
        return RequestRow(rid, RequestStatus.NOT_FOUND, None, billed_actual, None)
    estimated = scope.estimates[found]
    model = scope.models[found] or billed.models[i]
    if state == _REPEATED:
        reason = "duplicate_local_request_id"
    elif estimated is None:
        reason = "unpriced"
    else:
        ok = within(estimated, billed_actual, pct, floor)
        status = RequestStatus.MATCHED if ok else RequestStatus.DISCREPANCY
        diff = MONEY.subtract(estimated, billed_actual)
        return RequestRow(rid, status, estimated, billed_actual, diff, model)
    return RequestRow(rid, RequestStatus.ERROR, None, billed_actual, None, model, reason)


def _unbilled_rows(unbilled: Unbilled) -> Iterator[RequestRow]:
    """A row for each in-scope local record that was not billed: pending, or an error (the
    first record of an id logged more than once stands for them all)."""
    dupes = unbilled.dupes
    shown: set[str] = set()
    for rid, estimated, model in unbilled.records():
        if rid in dupes:
            if rid in shown:
                continue
            shown.add(rid)
            yield RequestRow(
                rid, RequestStatus.ERROR, None, None, None, model, "duplicate_local_request_id"
            )
        else:
            yield RequestRow(rid, RequestStatus.PENDING, estimated, None, None, model)


def _summarise(
    rows: RequestRows,
    billed: BillingIndex,
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
    for amount in billed.actual:
        billed_total = MONEY.add(billed_total, amount)
    state = scope.state
    repeated = (rid for rid, i in billed.position.items() if state[i] == _REPEATED)
    dupes = {*repeated, *scope.unbilled.dupes}
    return RequestReconReport(
        rows=rows,
        counts=counts,
        estimated_total=estimated,
        actual_total=actual,
        difference=MONEY.subtract(estimated, actual),
        billed_total=billed_total,
        not_found_total=not_found,
        pending_total=pending,
        duplicate_ids=tuple(sorted(dupes)[:MAX_DUPLICATES_LISTED]),
        duplicates=len(dupes),
        span=scope.span,
        outside_span=scope.outside,
        pct=pct,
        floor=floor,
    )
