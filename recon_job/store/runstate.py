"""Run states beyond a finished run: interrupted and abandoned runs, and completed periods.

Exactly one run per period (reliability.md §0 rules 1–3) needs three things from the history:
which periods already have a completed run (:meth:`RunStateStore.completed_periods`, for the
catch-up), a way to end a run that is stopped on purpose (:meth:`RunStateStore.abort_run`,
``interrupted`` on SIGTERM, so a row never stays ``running``), and a way to recognise the rows of
runs whose process died (:meth:`RunStateStore.reap_stale_runs`, ``abandoned``; R34, R38).

A row's ``owner`` is ``hostname:pid``. A run is *provably* gone when its owner is on this host
and that pid no longer exists; a pid on another host proves nothing. The other proof is the
period lock: every runner holds it for its whole run, so whoever holds the lock knows that any
``running`` row of that period belongs to a dead runner.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Collection
from contextlib import AbstractContextManager
from datetime import date, datetime
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import Connection, select, update

from recon_job.store.records import COMPLETE, RunRecord, RunStatus, run_record
from recon_job.store.schema import runs

log = structlog.get_logger(__name__)

EVENT_RUN_ABORTED = "store.run.aborted"
EVENT_RUN_ABANDONED = "store.run.abandoned"

#: The final states ``abort_run`` may set.
_ABORT_STATUSES = frozenset({RunStatus.FAILED, RunStatus.INTERRUPTED, RunStatus.ABANDONED})


def current_owner() -> str:
    """``hostname:pid`` of this process, as stored in ``runs.owner``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_is_gone(owner: str | None, *, host: str | None = None) -> bool:
    """True only when ``owner`` is a process on this host that no longer exists.

    Unknown owners (NULL, another host, an unparsable value) are never provably gone. A reused
    pid makes a dead owner look alive; the period lock (see module docstring) covers that case.
    """
    if not owner:
        return False
    owner_host, sep, pid_text = owner.rpartition(":")
    if (
        not sep
        or owner_host != (host or socket.gethostname())
        or not (pid_text.isascii() and pid_text.isdigit())
    ):
        return False
    pid = int(pid_text)
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it exists, under another user
    return False


class RunStateStore:
    """The run-state half of :class:`~recon_job.store.HistoryStore`."""

    if TYPE_CHECKING:

        def _write(self) -> AbstractContextManager[Connection]: ...
        def _read(self) -> AbstractContextManager[Connection]: ...
        def _errors(self, action: str) -> AbstractContextManager[None]: ...

    def abort_run(
        self,
        run_id: int,
        *,
        status: RunStatus,
        reason: str,
        message: str,
        finished_at: datetime,
    ) -> bool:
        """End a ``running`` run as ``failed``, ``interrupted`` or ``abandoned``; True if it did.

        Unlike ``fail_run`` it tolerates a row that is no longer running (another process may
        have reaped it, or the run finished before the stop arrived) and returns False then, so
        that it is safe in cleanup paths. ``message`` must already be redacted.
        """
        if status not in _ABORT_STATUSES:
            raise ValueError(f"abort_run cannot set {status!r}")
        statement = (
            update(runs)
            .where(runs.c.id == run_id, runs.c.status == RunStatus.RUNNING.value)
            .values(
                status=status.value,
                finished_at=finished_at,
                error_reason=reason,
                error_message=message,
            )
        )
        with self._errors(f"end run {run_id} as {status}"), self._write() as conn:
            changed = conn.execute(statement).rowcount == 1
        if changed:
            log.info(EVENT_RUN_ABORTED, run_id=run_id, status=str(status), reason=reason)
        return changed

    def reap_stale_runs(
        self,
        *,
        now: datetime,
        window_key: str | None = None,
        lock_held: bool = False,
        host: str | None = None,
    ) -> list[int]:
        """Mark ``running`` rows whose runner is provably gone ``abandoned``; return their ids.

        Without ``lock_held`` a row is stale only when its owner is a dead pid on this host
        (``host``, default this machine's name). With ``lock_held=True`` the caller holds the
        period lock of ``window_key``, so every ``running`` row of that period is stale: a live
        runner would hold the lock (reliability.md §7, R34). Ids oldest first.
        """
        if lock_held and window_key is None:
            raise ValueError("lock_held needs the window_key whose lock is held")
        query = select(runs.c.id, runs.c.owner).where(runs.c.status == RunStatus.RUNNING.value)
        if window_key is not None:
            query = query.where(runs.c.window_key == window_key)
        with self._errors("find stale runs"), self._read() as conn:
            candidates = conn.execute(query.order_by(runs.c.id)).all()
        reaped: list[int] = []
        for run_id, owner in candidates:
            if lock_held:
                message = "its runner is gone: the period lock was free while it was running"
            elif owner_is_gone(owner, host=host):
                message = f"its runner {owner} no longer exists"
            else:
                continue
            if self.abort_run(
                run_id,
                status=RunStatus.ABANDONED,
                reason="abandoned",
                message=message,
                finished_at=now,
            ):
                log.warning(EVENT_RUN_ABANDONED, run_id=run_id, window=window_key, owner=owner)
                reaped.append(run_id)
        return reaped

    def last_completed_run(self, window_key: str) -> RunRecord | None:
        """The newest run of ``window_key`` that completed its period, or None."""
        query = (
            select(runs)
            .where(
                runs.c.window_key == window_key,
                runs.c.status.in_(sorted(s.value for s in COMPLETE)),
            )
            .order_by(runs.c.id.desc())
            .limit(1)
        )
        with self._errors(f"read the last completed run of {window_key}"), self._read() as conn:
            row = conn.execute(query).first()
            return run_record(row) if row is not None else None

    def completed_periods(self, kinds: Collection[str], since: date) -> set[str]:
        """Window keys of ``kinds`` starting on or after ``since`` with a completed run.

        Complete means ``reconciled`` or ``mismatch``: a ``pending`` run judged days that had
        not settled, so the catch-up must run it again; failed, interrupted and abandoned runs
        produced no result at all.
        """
        query = (
            select(runs.c.window_key)
            .where(
                runs.c.window_kind.in_(list(kinds)),
                runs.c.window_start >= since,
                runs.c.status.in_(sorted(s.value for s in COMPLETE)),
            )
            .distinct()
        )
        with self._errors("read completed periods"), self._read() as conn:
            return set(conn.scalars(query))
