"""Restatements in the history: OpenAI's official figures of completed days, and what changed.

A mixin of :class:`~recon_job.store.HistoryStore`. Every finished run already stores OpenAI's
figures per group (``run_groups.openai_*`` and ``extras``); :meth:`previous_official` reads, for
each day asked, those of the latest completed run (``reconciled`` or ``mismatch``) that covers it,
with the restatements recorded since that run applied on top, so a revision seen once is not seen
again by every later run. :meth:`record_restatements` writes what a run found
(:func:`recon_job.diagnosis.restatements.restatements`) to the ``restatements`` table (0008);
:meth:`restated_periods` names the completed periods such a revision makes due again.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, insert, select

from recon_job.diagnosis.restatements import official_figures, restated
from recon_job.findings import GroupRef, Restatement
from recon_job.models import Usage, UsageKey
from recon_job.store.records import COMPLETE, group_record
from recon_job.store.schema import restatements as restatement_rows
from recon_job.store.schema import run_groups, runs


class RestatementStore:
    """Official figures of completed days and the ``restatements`` table; needs ``_write``,
    ``_read`` and ``_errors`` of HistoryStore."""

    if TYPE_CHECKING:

        def _write(self) -> AbstractContextManager[Connection]: ...
        def _read(self) -> AbstractContextManager[Connection]: ...
        def _errors(self, action: str) -> AbstractContextManager[None]: ...

    def previous_official(
        self, days: Sequence[date], *, by_project: bool = False
    ) -> tuple[dict[GroupRef, Usage], dict[date, int]]:
        """OpenAI's figures of ``days`` as last stored, and the run each day's figures come from.

        For each day, the latest completed run (by start) whose window covers it and which did
        not leave it pending; its groups' OpenAI side summed per day x family x model (x project
        when ``by_project``; see :func:`~recon_job.diagnosis.restatements.official_figures`), then
        every restatement of that day seen after the run finished applied (the latest per
        quantity; only those found under the same grouping, per project or not). A day no
        completed run covers is absent from both mappings. Three queries whatever the number of
        days.
        """
        if not days:
            return {}, {}
        with self._errors("read the official figures of completed days"), self._read() as conn:
            chosen = _latest_complete_runs(conn, frozenset(days))
            if not chosen:
                return {}, {}
            groups_query = (
                select(run_groups)
                .where(run_groups.c.run_id.in_(sorted({run_id for run_id, _ in chosen.values()})))
                .where(run_groups.c.day.in_(sorted(chosen)))
                .order_by(run_groups.c.id)
            )
            pairs: list[tuple[UsageKey, Usage]] = []
            for row in conn.execute(groups_query):
                if chosen[row.day][0] == row.run_id:
                    record = group_record(row)
                    pairs.append((record.key, record.openai))
            figures = official_figures(pairs, by_project=by_project)
            later = conn.execute(
                select(restatement_rows)
                .where(restatement_rows.c.day.in_(sorted(chosen)))
                .order_by(restatement_rows.c.seen_at, restatement_rows.c.id)
            ).all()
            for change in later:
                finished_at = chosen[change.day][1]
                if finished_at is not None and change.seen_at <= finished_at:
                    continue  # the run's own figures are newer than this revision
                if (change.project_id is not None) != by_project:
                    continue  # found under another grouping: its figures are not these groups'
                ref = GroupRef(change.day, change.family, change.model, change.project_id)
                figures[ref] = restated(figures.get(ref, Usage()), change.quantity, change.after)
        return figures, {day: run_id for day, (run_id, _) in chosen.items()}

    def record_restatements(self, run_id: int | None, restatements: Iterable[Restatement]) -> int:
        """Store ``restatements`` as seen by run ``run_id``; return how many rows were written."""
        rows = [
            {
                "run_id": run_id,
                "previous_run_id": r.previous_run_id,
                "day": r.group.day,
                "family": r.group.family,
                "model": r.group.model,
                "project_id": r.group.project_id,
                "quantity": r.quantity,
                "before": r.before,
                "after": r.after,
                "seen_at": r.seen_at,
            }
            for r in restatements
        ]
        if rows:
            with self._errors("record restatements"), self._write() as conn:
                conn.execute(insert(restatement_rows), rows)
        return len(rows)

    def restatements_since(
        self,
        seen_since: datetime | None = None,
        *,
        first_day: date | None = None,
        last_day: date | None = None,
        run_id: int | None = None,
    ) -> list[Restatement]:
        """Stored restatements, oldest seen first: seen at or after ``seen_since`` (aware UTC),
        about a day in ``[first_day, last_day]`` (both included), recorded by run ``run_id``;
        None: no limit."""
        query = select(restatement_rows).order_by(
            restatement_rows.c.seen_at, restatement_rows.c.day, restatement_rows.c.id
        )
        if seen_since is not None:
            query = query.where(restatement_rows.c.seen_at >= seen_since)
        if first_day is not None:
            query = query.where(restatement_rows.c.day >= first_day)
        if last_day is not None:
            query = query.where(restatement_rows.c.day <= last_day)
        if run_id is not None:
            query = query.where(restatement_rows.c.run_id == run_id)
        with self._errors("read restatements"), self._read() as conn:
            return [_restatement(row) for row in conn.execute(query)]

    def restated_periods(self, kinds: Collection[str], since: date) -> set[str]:
        """Window keys of ``kinds`` starting on or after ``since`` whose last completed run
        finished before a restatement of one of their days was seen: periods to evaluate again.

        A run that re-evaluates such a period finishes after the restatement was seen, so the
        period drops out; a restatement that run itself finds is seen when it starts, before it
        finishes, so it cannot make its own period due again.
        """
        with self._errors("read restated periods"), self._read() as conn:
            seen: dict[date, datetime] = {}
            changes = select(restatement_rows.c.day, restatement_rows.c.seen_at).where(
                restatement_rows.c.day >= since
            )
            for day, seen_at in conn.execute(changes):
                seen[day] = max(seen_at, seen.get(day, seen_at))
            if not seen:
                return set()
            periods = select(
                runs.c.window_key,
                runs.c.window_start,
                runs.c.window_end,
                runs.c.started_at,
                runs.c.finished_at,
            ).where(
                runs.c.window_kind.in_(list(kinds)),
                runs.c.window_start >= since,
                runs.c.window_start <= max(seen),
                runs.c.status.in_(sorted(s.value for s in COMPLETE)),
            )
            last: dict[str, tuple[date, date, datetime]] = {}
            for key, start, end, started_at, finished_at in conn.execute(periods):
                ended = finished_at or started_at
                if key not in last or ended > last[key][2]:
                    last[key] = (start, end, ended)
        return {
            key
            for key, (start, end, ended) in last.items()
            if any(start <= day < end and at > ended for day, at in seen.items())
        }


def _latest_complete_runs(
    conn: Connection, days: frozenset[date]
) -> dict[date, tuple[int, datetime | None]]:
    """Per day, the id and end of the latest completed run covering it and not leaving it
    pending (days no such run covers are absent)."""
    query = (
        select(
            runs.c.id,
            runs.c.window_start,
            runs.c.window_end,
            runs.c.pending_days,
            runs.c.finished_at,
        )
        .where(runs.c.status.in_([status.value for status in COMPLETE]))
        .where(runs.c.window_start <= max(days), runs.c.window_end > min(days))
        .order_by(runs.c.started_at.desc(), runs.c.id.desc())
    )
    chosen: dict[date, tuple[int, datetime | None]] = {}
    for run_id, start, end, pending, finished_at in conn.execute(query):
        left_pending = {date.fromisoformat(d) for d in json.loads(pending or "[]")}
        for day in days - chosen.keys():
            if start <= day < end and day not in left_pending:
                chosen[day] = (run_id, finished_at)
    return chosen


def _restatement(row: Row[Any]) -> Restatement:
    return Restatement(
        group=GroupRef(row.day, row.family, row.model, row.project_id),
        quantity=row.quantity,
        before=row.before,
        after=row.after,
        seen_at=row.seen_at,
        previous_run_id=row.previous_run_id,
    )
