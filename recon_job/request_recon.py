"""Per-request reconciliation: each billed request id against the record that logged it.

A billing CSV with one row per request (request id, actual USD) is matched by request id to the
team's own records — a database table (``[[sources]] kind = "sql"``) or NDJSON logs — and each
request is classified (:func:`classify`, pure):

* ``matched`` — the logged estimate is within 5% of the actual cost **or** within $0.05;
* ``discrepancy`` — beyond both;
* ``not_found`` — billed, but no local record carries the id;
* ``pending`` — logged, not (yet) billed. When the billing file has timestamps only local
  records dated (UTC day) within its first to last day count; records outside that span are
  out of scope and only counted. Without timestamps every local record that no billed row
  matched is pending;
* ``error`` — the id is logged more than once locally, or its estimate cannot be priced.

The estimated and actual totals cover the requests both sides know and priced (matched and
discrepancy); what was billed but not found is reported beside them, never blended in.

With a database source and ``apply=True`` the actual cost (``actual_cost_cents``, exact to six
decimals of a cent) and ``reconciliation_status`` are written back to the table
(:mod:`recon_job.request_writeback`): ``matched``/``discrepancy`` for billed rows, ``pending``
(and no cost) for logged unbilled ones. Error rows are left alone: a duplicated id does not say
which row is meant. The default is a dry run that never opens a write transaction.
"""

from __future__ import annotations

import csv
import enum
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import structlog

from recon_job import job
from recon_job.config import NdjsonSourceSettings, Settings, SqlSourceSettings
from recon_job.errors import ConfigError, LogSourceError
from recon_job.models import MONEY, ZERO
from recon_job.request_writeback import (
    STATUS_COLUMN,
    WRITEBACK_COLUMNS,
    LocalRequest,
    RequestTable,
    Update,
    log_requests,
    table_requests,
)
from recon_job.sources.ndjson_logs import NdjsonOptions

__all__ = [
    "BilledRequest",
    "LocalRequest",
    "RequestReconReport",
    "RequestRow",
    "RequestStatus",
    "classify",
    "read_billing",
    "reconcile_requests",
    "render_text",
    "report_dict",
]

log = structlog.get_logger(__name__)

EV_BILLING_READ = "recon.requests.billing_read"
EV_FINISHED = "recon.requests.finished"

#: Accepted headers (case-insensitive), in order of preference.
ID_HEADERS = ("request_id", "openai_request_id", "id")
USD_HEADERS = ("cost", "cost_usd", "amount", "amount_value", "actual_cost")
CENT_HEADERS = ("cost_cents", "actual_cost_cents")
TIME_HEADERS = ("created_at", "timestamp", "start_time")
#: How many duplicate local ids a report lists.
MAX_DUPLICATES_LISTED = 20
_HUNDRED = Decimal(100)
_CENTS_SCALE = Decimal("0.000001")  # the NUMERIC(20, 6) the migrations create
_PROGRESS_EVERY = 10_000


class RequestStatus(enum.StrEnum):
    """The class of one request."""

    MATCHED = "matched"
    DISCREPANCY = "discrepancy"
    NOT_FOUND = "not_found"
    PENDING = "pending"
    ERROR = "error"


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


# -- the billing file -------------------------------------------------------------------------


def read_billing(path: str | Path) -> list[BilledRequest]:
    """Every row of a per-request billing CSV; LogSourceError naming file, line and column.

    Headers are matched case-insensitively: an id (:data:`ID_HEADERS`), an amount in USD
    (:data:`USD_HEADERS`) or cents (:data:`CENT_HEADERS`), optionally ``currency`` (must be
    usd), a time (:data:`TIME_HEADERS`: epoch seconds or ISO; naive means UTC) and ``model``.
    """
    name = str(path)
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            return _read_rows(name, csv.DictReader(fh))
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
            f"{name}: not a readable CSV file ({e})", permanent=True, reason="billing_invalid"
        ) from e


def _bad(name: str, line: int, text: str) -> LogSourceError:
    return LogSourceError(f"{name}: line {line}: {text}", permanent=True, reason="billing_invalid")


def _read_rows(name: str, reader: csv.DictReader[str]) -> list[BilledRequest]:
    if reader.fieldnames is None:
        raise LogSourceError(
            f"{name}: the file is empty (no header line); export the billing data again",
            permanent=True,
            reason="billing_invalid",
        )
    lower = {h.strip().lower(): h for h in reader.fieldnames if h is not None}
    found = ", ".join(repr(h) for h in reader.fieldnames) or "none"

    def pick(candidates: Sequence[str]) -> str | None:
        return next((lower[c] for c in candidates if c in lower), None)

    id_col, usd_col, cents_col = pick(ID_HEADERS), pick(USD_HEADERS), pick(CENT_HEADERS)
    amount_col = usd_col or cents_col
    if id_col is None or amount_col is None:
        need = (
            f"a request id column ({', '.join(ID_HEADERS)})"
            if id_col is None
            else f"a cost column ({', '.join(USD_HEADERS + CENT_HEADERS)})"
        )
        raise _bad(name, 1, f"no {need}; found columns {found}")
    time_col, model_col, cur_col = pick(TIME_HEADERS), pick(("model",)), pick(("currency",))
    scale = Decimal(1) if usd_col else _HUNDRED
    seen: dict[str, int] = {}
    out: list[BilledRequest] = []
    start = 2
    for raw in reader:
        line, start = start, reader.line_num + 1
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
        if cur_col is not None and (raw.get(cur_col) or "usd").strip().lower() not in ("usd", ""):
            raise _bad(name, line, f"column {cur_col!r}: currency {raw[cur_col]!r} is not usd")
        text = (raw.get(amount_col) or "").strip()
        try:
            amount = Decimal(text)
        except InvalidOperation:
            amount = Decimal("NaN")
        if not amount.is_finite():
            raise _bad(name, line, f"column {amount_col!r}: {text!r} is not a number")
        if amount < 0:
            raise _bad(name, line, f"column {amount_col!r}: {text!r} is negative")
        when = None
        if time_col is not None and (raw.get(time_col) or "").strip():
            when = _parse_time(raw[time_col].strip())
            if when is None:
                raise _bad(
                    name,
                    line,
                    f"column {time_col!r}: {raw[time_col]!r} is not an epoch or ISO timestamp",
                )
        model = (raw.get(model_col) or "").strip() if model_col else ""
        actual = MONEY.divide(amount, scale)
        out.append(BilledRequest(request_id, actual, line, when, model or None))
    log.info(EV_BILLING_READ, file=name, rows=len(out))
    return out


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


# -- classification ---------------------------------------------------------------------------


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

    rows: list[RequestRow] = []
    for b in billed:
        found = kept.get(b.request_id)
        if found is None:
            rows.append(RequestRow(b.request_id, RequestStatus.NOT_FOUND, None, b.actual, None))
            continue
        model = found.model or b.model
        reason = ""
        if b.request_id in dupes:
            reason = "duplicate_local_request_id"
        elif found.estimated is None:
            reason = "unpriced"
        if reason:
            row = RequestRow(b.request_id, RequestStatus.ERROR, None, b.actual, None, model, reason)
        else:
            assert found.estimated is not None
            ok = within(found.estimated, b.actual, pct, floor)
            status = RequestStatus.MATCHED if ok else RequestStatus.DISCREPANCY
            diff = MONEY.subtract(found.estimated, b.actual)
            row = RequestRow(b.request_id, status, found.estimated, b.actual, diff, model)
        rows.append(row)
    for rid, record in kept.items():
        if rid in by_id:
            continue
        if rid in dupes:
            rows.append(
                RequestRow(
                    rid,
                    RequestStatus.ERROR,
                    None,
                    None,
                    None,
                    record.model,
                    "duplicate_local_request_id",
                )
            )
        else:
            rows.append(
                RequestRow(rid, RequestStatus.PENDING, record.estimated, None, None, record.model)
            )
    return _summarise(rows, billed, span, outside, dupes, pct, floor)


def _summarise(
    rows: list[RequestRow],
    billed: Sequence[BilledRequest],
    span: tuple[date, date] | None,
    outside: int,
    dupes: dict[str, LocalRequest],
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
        duplicate_ids=tuple(sorted(dupes)[:MAX_DUPLICATES_LISTED]),
        duplicates=len(dupes),
        span=span,
        outside_span=outside,
        pct=pct,
        floor=floor,
    )


# -- orchestration ----------------------------------------------------------------------------


def pick_source(
    settings: Settings, name: str | None
) -> tuple[str, SqlSourceSettings | NdjsonSourceSettings | None]:
    """The named ``[[sources]]`` entry, the only one, or (None) the ``[logs]`` NDJSON source."""
    names = [s.name for s in settings.sources]
    if name is not None:
        for candidate in settings.sources:
            if candidate.name == name:
                return name, candidate
        listed = ", ".join(names) if names else "none ([logs] is used without --source)"
        raise ConfigError(f"no source named {name!r}; configured [[sources]]: {listed}")
    if len(settings.sources) > 1:
        raise ConfigError(
            f"several sources are configured ({', '.join(names)}); choose one with --source NAME"
        )
    if settings.sources:
        return names[0], settings.sources[0]
    return "logs", None


def reconcile_requests(
    settings: Settings,
    billing_path: str | Path,
    *,
    source: str | None = None,
    apply: bool = False,
    batch_size: int = 1000,
    progress: Callable[[int, int], None] | None = None,
) -> RequestReconReport:
    """Read the billing file and the local records, classify, and write back when ``apply``.

    ``progress(done, total)`` is called every 10,000 local records read with ``total`` 0 (not
    known yet), then after each written batch with the number of updates as ``total``. Raises
    ConfigError for a bad choice of source, LogSourceError for bad input or a database failure.
    """
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, not {batch_size}")
    name, chosen = pick_source(settings, source)
    if apply and not isinstance(chosen, SqlSourceSettings):
        raise ConfigError(
            f"write-back needs a database source; {name!r} is NDJSON logs, which are never "
            'modified — leave out --apply, or choose a kind = "sql" source with --source'
        )
    pricer = job.price_table(settings, job.model_namer(settings))
    billed = read_billing(billing_path)
    r = settings.reconcile
    skipped: dict[str, int] = {}
    notes: list[str] = []
    written = 0
    if isinstance(chosen, SqlSourceSettings):
        table = _open_table(name, chosen)
        try:
            existing = table.existing_columns()
            table.check_mapped_columns(existing)
            if apply:
                table.require_writeback_columns(existing)
            elif not set(WRITEBACK_COLUMNS) <= existing:
                notes.append(
                    f"the table lacks {STATUS_COLUMN!r}/actual_cost_cents: before --apply, "
                    f"add them with {table.migration_hint()}"
                )
            local = table_requests(
                table,
                pricer,
                cost_unit=chosen.cost_unit,
                timezone=chosen.timestamp_timezone,
                skipped=skipped,
            )
            report = classify(
                billed, _counted(local, progress), pct=r.threshold_pct, floor=r.cost_floor
            )
            if apply:
                written = table.write(report.updates(), batch_size=batch_size, progress=progress)
        finally:
            table.close()
    else:
        logs = chosen or settings.logs
        options = NdjsonOptions(
            paths=tuple(logs.paths),
            timezone=logs.timezone,
            fields=dict(logs.fields),
            project_ids=tuple(settings.openai.project_ids),
            cost_unit=logs.cost_unit,
            workers=1,
        )
        local = log_requests(options, pricer, skipped)
        report = classify(
            billed, _counted(local, progress), pct=r.threshold_pct, floor=r.cost_floor
        )
    report = replace(
        report,
        source=name,
        billing_file=str(billing_path),
        writable=isinstance(chosen, SqlSourceSettings),
        applied=apply,
        written=written,
        skipped=dict(sorted(skipped.items())),
        notes=tuple(notes),
    )
    log.info(EV_FINISHED, source=name, applied=apply, written=written, **report.counts)
    return report


def _open_table(name: str, source: SqlSourceSettings) -> RequestTable:
    if "request_id" not in source.columns:
        raise ConfigError(
            f"sources: {name!r} maps no request_id column; add request_id = "
            '"openai_request_id" (your column) to its columns'
        )
    assert source.url is not None  # settings validation guarantees it
    return RequestTable(
        source.url.get_secret_value(),
        source.table,
        source.columns,
        filter=source.filter,
        name=name,
    )


def _counted(
    records: Iterable[LocalRequest], progress: Callable[[int, int], None] | None
) -> Iterator[LocalRequest]:
    count = 0
    for count, record in enumerate(records, start=1):
        if progress is not None and count % _PROGRESS_EVERY == 0:
            progress(count, 0)
        yield record
    if progress is not None:
        progress(count, 0)


# -- output -----------------------------------------------------------------------------------


def money(value: Decimal) -> str:
    """A decimal string with at least six decimals, never rounded (``1.5`` -> ``1.500000``)."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -6:
        value = value.quantize(Decimal("0.000001"), context=MONEY)
    return f"{value:f}"


def _row(row: RequestRow) -> dict[str, Any]:
    def opt(value: Decimal | None) -> str | None:
        return None if value is None else money(value)

    return {
        "request_id": row.request_id,
        "status": row.status.value,
        "model": row.model,
        "estimated": opt(row.estimated),
        "actual": opt(row.actual),
        "difference": opt(row.difference),
        "reason": row.reason or None,
    }


def _top_discrepancies(report: RequestReconReport, limit: int) -> list[RequestRow]:
    rows = [r for r in report.rows if r.status is RequestStatus.DISCREPANCY]
    rows.sort(key=lambda r: abs(r.difference or ZERO), reverse=True)
    return rows[:limit]


def report_dict(report: RequestReconReport) -> dict[str, Any]:
    """The report as JSON-ready data: decimal strings, top 50 discrepancies, first 50 ids."""
    errors = [r for r in report.rows if r.status is RequestStatus.ERROR]
    reasons: dict[str, int] = {}
    for row in errors:
        reasons[row.reason] = reasons.get(row.reason, 0) + 1
    return {
        "billing_file": report.billing_file,
        "source": report.source,
        "applied": report.applied,
        "written": report.written,
        "counts": dict(report.counts),
        "totals": {
            "estimated": money(report.estimated_total),
            "actual": money(report.actual_total),
            "difference": money(report.difference),
            "billed": money(report.billed_total),
            "not_found": money(report.not_found_total),
            "pending_estimated": money(report.pending_total),
        },
        "tolerance": {"pct": str(report.pct), "floor_usd": str(report.floor)},
        "span": None
        if report.span is None
        else {"first_day": report.span[0].isoformat(), "last_day": report.span[1].isoformat()},
        "outside_span": report.outside_span,
        "skipped": dict(report.skipped),
        "discrepancies": [_row(r) for r in _top_discrepancies(report, 50)],
        "not_found": [r.request_id for r in report.rows if r.status is RequestStatus.NOT_FOUND][
            :50
        ],
        "errors": {
            "count": len(errors),
            "by_reason": dict(sorted(reasons.items())),
            "duplicate_request_ids": list(report.duplicate_ids),
            "requests": [_row(r) for r in errors[:50]],
        },
        "notes": list(report.notes),
    }


def render_text(report: RequestReconReport) -> str:
    """A readable summary for a terminal."""
    c = report.counts
    pct = f" ({report.difference * 100 / report.actual_total:+.2f}%)" if report.actual_total else ""
    lines = [
        f"Per-request reconciliation of {report.billing_file} against source {report.source!r}",
        f"  matched        {c['matched']:>9,}",
        f"  discrepancies  {c['discrepancy']:>9,}",
        f"  not found      {c['not_found']:>9,}",
        f"  pending        {c['pending']:>9,}",
        f"  errors         {c['error']:>9,}",
        f"Estimated ${money(report.estimated_total)} vs actual ${money(report.actual_total)} "
        f"over {c['matched'] + c['discrepancy']:,} compared requests: "
        f"difference ${money(report.difference)}{pct}",
        f"Billed in total ${money(report.billed_total)}; ${money(report.not_found_total)} of it "
        "was not found locally.",
    ]
    if report.span is not None:
        lines.append(
            f"Billing span {report.span[0]}..{report.span[1]} (UTC); "
            f"{report.outside_span:,} unbilled local records outside it were left out."
        )
    if report.duplicates:
        more = ", …" if report.duplicates > len(report.duplicate_ids) else ""
        lines.append(
            f"Request ids logged more than once locally ({report.duplicates:,}): "
            f"{', '.join(report.duplicate_ids)}{more}"
        )
    unpriced = sum(1 for r in report.rows if r.reason == "unpriced")
    if unpriced:
        lines.append(f"{unpriced:,} billed requests have no price for their local record.")
    top = _top_discrepancies(report, 10)
    if top:
        lines.append("Largest discrepancies:")
        lines.extend(
            f"  {r.request_id}  {r.model or '?'}  estimated ${money(r.estimated or ZERO)}  "
            f"actual ${money(r.actual or ZERO)}  difference ${money(r.difference or ZERO)}"
            for r in top
        )
    lines.extend(f"Note: {note}" for note in report.notes)
    if report.applied:
        lines.append(f"Applied: {report.written:,} rows updated.")
    elif report.writable:
        lines.append("dry run: nothing written — use --apply")
    else:
        lines.append("dry run: nothing written (NDJSON logs are read-only)")
    return "\n".join(lines) + "\n"
