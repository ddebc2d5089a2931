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

from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import structlog

from recon_job import job
from recon_job.config.settings import NdjsonSourceSettings, Settings, SqlSourceSettings
from recon_job.errors import ConfigError
from recon_job.per_request.billing import CENT_HEADERS as CENT_HEADERS
from recon_job.per_request.billing import EV_BILLING_READ as EV_BILLING_READ
from recon_job.per_request.billing import ID_HEADERS as ID_HEADERS
from recon_job.per_request.billing import TIME_HEADERS as TIME_HEADERS
from recon_job.per_request.billing import USD_HEADERS as USD_HEADERS
from recon_job.per_request.billing import BilledRequest, read_billing
from recon_job.per_request.classify import MAX_DUPLICATES_LISTED as MAX_DUPLICATES_LISTED
from recon_job.per_request.classify import RequestReconReport, RequestRow, RequestStatus, classify
from recon_job.per_request.classify import within as within
from recon_job.per_request.local import LocalRequest, log_requests, table_requests
from recon_job.per_request.writeback import STATUS_COLUMN, WRITEBACK_COLUMNS, RequestTable
from recon_job.report.requests import money as money
from recon_job.report.requests import render_text, report_dict
from recon_job.sources.ndjson.source import NdjsonOptions

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

EV_FINISHED = "recon.requests.finished"

_PROGRESS_EVERY = 10_000


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
