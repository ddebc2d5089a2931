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
(:mod:`recon_job.per_request.writeback`): ``matched``/``discrepancy`` for billed rows, ``pending``
(and no cost) for logged unbilled ones. Error rows are left alone: a duplicated id does not say
which row is meant. The default is a dry run that never opens a write transaction.

This module runs the steps (:func:`reconcile_requests`) and re-exports the public names of the
modules that do them: :mod:`~recon_job.per_request.billing` (the billing file),
:mod:`~recon_job.per_request.local` (the local records), :mod:`~recon_job.per_request.classify`,
:mod:`~recon_job.per_request.writeback` and :mod:`~recon_job.report.requests` (the output).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path

import structlog

from recon_job.errors import ConfigError
from recon_job.per_request.billing import index_billing
from recon_job.per_request.classify import RequestReconReport, classify
from recon_job.per_request.local import LocalRequest, log_requests, table_requests
from recon_job.per_request.writeback import STATUS_COLUMN, WRITEBACK_COLUMNS, RequestTable
from recon_job.pricing import PriceTable
from recon_job.sources.ndjson import NdjsonOptions

__all__ = ["RequestSource", "TableSpec", "reconcile_requests"]

log = structlog.get_logger(__name__)

EV_FINISHED = "recon.requests.finished"

_PROGRESS_EVERY = 10_000


@dataclass(frozen=True)
class TableSpec:
    """A database table of logged requests (a ``kind = "sql"`` source): readable and writable."""

    #: SQLAlchemy URL; a secret, kept out of ``repr``.
    url: str = field(repr=False)
    table: str
    #: Canonical name -> column; includes ``request_id``.
    columns: Mapping[str, str]
    filter: str | None = None
    cost_unit: str = "usd"
    #: Zone of a timestamp column stored without one.
    timezone: str = "UTC"


@dataclass(frozen=True)
class RequestSource:
    """Where the logged requests are and how they are judged; built by ``recon_job.wiring``."""

    #: The source's name in the report (``logs`` for ``[logs]``).
    name: str
    #: Prices records that carry no cost.
    pricer: PriceTable
    #: Percent: an estimate within this of the actual cost is matched.
    pct: Decimal
    #: USD: an estimate within this of the actual cost is matched.
    floor: Decimal
    #: The table, for a database source (the only kind that can be written back).
    table: TableSpec | None = None
    #: The logs, for an NDJSON source.
    logs: NdjsonOptions | None = None


def reconcile_requests(
    source: RequestSource,
    billing_path: str | Path,
    *,
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
    name, pricer = source.name, source.pricer
    if apply and source.table is None:
        raise ConfigError(
            f"write-back needs a database source; {name!r} is NDJSON logs, which are never "
            'modified — leave out --apply, or choose a kind = "sql" source with --source'
        )
    billed = index_billing(billing_path)
    skipped: dict[str, int] = {}
    notes: list[str] = []
    written = 0
    if source.table is not None:
        spec = source.table
        table = RequestTable(spec.url, spec.table, spec.columns, filter=spec.filter, name=name)
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
                cost_unit=spec.cost_unit,
                timezone=spec.timezone,
                skipped=skipped,
            )
            report = classify(billed, _counted(local, progress), pct=source.pct, floor=source.floor)
            if apply:
                written = table.write(
                    report.iter_updates(),
                    batch_size=batch_size,
                    progress=progress,
                    total=report.update_count,
                )
        finally:
            table.close()
    else:
        assert source.logs is not None  # wiring sets one of table and logs
        local = log_requests(source.logs, pricer, skipped)
        report = classify(billed, _counted(local, progress), pct=source.pct, floor=source.floor)
    report = replace(
        report,
        source=name,
        billing_file=str(billing_path),
        writable=source.table is not None,
        applied=apply,
        written=written,
        skipped=dict(sorted(skipped.items())),
        notes=tuple(notes),
    )
    log.info(EV_FINISHED, source=name, applied=apply, written=written, **report.counts)
    return report


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
