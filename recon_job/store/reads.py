"""What the dashboard reads from the history: runs by date range and filters, groups by day.

A mixin of :class:`~recon_job.store.HistoryStore`, read-only. Groups are built by
:func:`~recon_job.store.records.group_record_of` from the columns
:data:`~recon_job.store.records.GROUP_COLUMNS` names, the one place a ``run_groups`` row
becomes a record, so a column added there (the usage family) reaches every page at once. They
are read as plain rows of columns, unpacked by position: an overview reads thousands.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from contextlib import AbstractContextManager
from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select

from recon_job.store.records import (
    GROUP_COLUMNS,
    GroupRecord,
    RunRecord,
    RunStatus,
    group_record_of,
    run_record,
)
from recon_job.store.schema import run_groups, runs


class ReadStore:
    """Read-only queries of the dashboard; needs ``_read`` and ``_errors`` of HistoryStore."""

    if TYPE_CHECKING:

        def _read(self) -> AbstractContextManager[Connection]: ...
        def _errors(self, action: str) -> AbstractContextManager[None]: ...

    def runs_overlapping(self, start: date, end: date) -> list[RunRecord]:
        """Every run whose window overlaps ``[start, end)`` and is no longer running, newest
        first."""
        query = (
            select(runs)
            .where(runs.c.window_start < end, runs.c.window_end > start)
            .where(runs.c.status != RunStatus.RUNNING.value)
            .order_by(runs.c.started_at.desc(), runs.c.id.desc())
        )
        with self._errors("read the runs of a date range"), self._read() as conn:
            return [run_record(row) for row in conn.execute(query)]

    def groups_between(self, run_ids: Collection[int], start: date, end: date) -> list[GroupRecord]:
        """The groups of the runs ``run_ids`` whose day is in ``[start, end)``, by run and in
        stored order: one query for every run of an overview."""
        if not run_ids:
            return []
        columns = run_groups.c
        query = (
            select(*(columns[name] for name in GROUP_COLUMNS))
            .where(columns.run_id.in_(sorted(run_ids)))
            .where(columns.day >= start, columns.day < end)
            .order_by(columns.run_id, columns.id)
        )
        # Rows unpacked by position: attribute access by name costs more than building the
        # records.
        with self._errors("read the groups of a date range"), self._read() as conn:
            return [group_record_of(row) for row in conn.execute(query)]

    def diagnoses_of(self, run_ids: Collection[int]) -> dict[int, dict[str, Any]]:
        """The stored diagnosis (``runs.diagnosis``, the JSON object of ``run --format json``)
        of each of ``run_ids`` that has one; a run without (NULL, or text that is not a JSON
        object) is left out: there is nothing to show for it."""
        if not run_ids:
            return {}
        query = (
            select(runs.c.id, runs.c.diagnosis)
            .where(runs.c.id.in_(sorted(run_ids)))
            .where(runs.c.diagnosis.is_not(None))
        )
        with self._errors("read the diagnoses of runs"), self._read() as conn:
            rows = conn.execute(query).all()
        found: dict[int, dict[str, Any]] = {}
        for run_id, text in rows:
            if text is None:
                continue
            try:
                value = json.loads(text)
            except ValueError:
                continue
            if isinstance(value, dict):
                found[int(run_id)] = value
        return found

    def history_state(self) -> tuple[int, int]:
        """The newest run id and the number of finished runs: a new run, or a run finishing,
        changes it (a key for caches of what is read from the history)."""
        query = select(
            func.coalesce(func.max(runs.c.id), 0),
            func.count(runs.c.id).filter(runs.c.status != RunStatus.RUNNING.value),
        )
        with self._errors("read the state of the history"), self._read() as conn:
            newest, finished = conn.execute(query).one()
            return int(newest), int(finished)

    def find_runs(
        self,
        *,
        status: str | None = None,
        kind: str | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        """Runs newest first (by id), filtered by status and window kind, a page at a time:
        ``before_id`` is the last id of the previous page."""
        query = select(runs).order_by(runs.c.id.desc()).limit(limit)
        if status:
            query = query.where(runs.c.status == status)
        if kind:
            query = query.where(runs.c.window_kind == kind)
        if before_id is not None:
            query = query.where(runs.c.id < before_id)
        with self._errors("list runs"), self._read() as conn:
            return [run_record(row) for row in conn.execute(query)]
