"""Run states: interrupted and abandoned runs, owners, and which periods are complete."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime

from recon_job import windows
from recon_job.compare import reconcile
from recon_job.models import ReconResult, Tolerance, UsageTotals, Window
from recon_job.store import HistoryStore, RunStatus
from recon_job.store.runstate import current_owner, owner_is_gone

T0 = datetime(2026, 3, 16, 6, 0, tzinfo=UTC)
T1 = datetime(2026, 3, 16, 6, 1, tzinfo=UTC)
DAY = windows.daily(date(2026, 3, 14))


def _result(window: Window = DAY, pending: tuple[date, ...] = ()) -> ReconResult:
    return reconcile(
        UsageTotals(), UsageTotals(), window=window, tolerance=Tolerance(), pending_days=pending
    )


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_run_records_its_owner_and_can_be_ended_as_interrupted(store: HistoryStore) -> None:
    run_id = store.start_run(DAY, started_at=T0, trigger="cli")
    assert store.get_run(run_id).owner == current_owner()  # type: ignore[union-attr]
    assert store.abort_run(
        run_id, status=RunStatus.INTERRUPTED, reason="interrupted", message="stop", finished_at=T1
    )
    run = store.get_run(run_id)
    assert run is not None
    assert run.status is RunStatus.INTERRUPTED
    assert run.finished_at == T1
    # A finished row is never overwritten by a late abort.
    assert not store.abort_run(
        run_id, status=RunStatus.FAILED, reason="x", message="x", finished_at=T1
    )


def test_only_provably_dead_owners_are_reaped_without_the_lock(store: HistoryStore) -> None:
    host = current_owner().rpartition(":")[0]
    dead = store.start_run(DAY, started_at=T0, trigger="due", owner=f"{host}:{_dead_pid()}")
    alive = store.start_run(DAY, started_at=T0, trigger="due")
    elsewhere = store.start_run(DAY, started_at=T0, trigger="due", owner="other-host:1")
    assert store.reap_stale_runs(now=T1) == [dead]
    assert store.get_run(dead).status is RunStatus.ABANDONED  # type: ignore[union-attr]
    assert store.get_run(alive).status is RunStatus.RUNNING  # type: ignore[union-attr]
    # Holding the period lock proves every running row of the period stale, wherever it ran.
    assert store.reap_stale_runs(now=T1, window_key=DAY.key, lock_held=True) == [
        alive,
        elsewhere,
    ]
    assert owner_is_gone(None) is False
    assert owner_is_gone("garbage") is False


def test_reconciled_and_mismatch_complete_a_period_pending_and_failures_do_not(
    store: HistoryStore,
) -> None:
    days = [windows.daily(date(2026, 3, d)) for d in (10, 11, 12, 13)]
    pending = store.start_run(days[0], started_at=T0, trigger="due")
    store.finish_run(pending, _result(days[0], pending=(date(2026, 3, 10),)), finished_at=T1)
    failed = store.start_run(days[1], started_at=T0, trigger="due")
    store.fail_run(failed, reason="server_error", message="down", finished_at=T1)
    store.start_run(days[2], started_at=T0, trigger="due")  # still running
    done = store.start_run(days[3], started_at=T0, trigger="due")
    store.finish_run(done, _result(days[3]), finished_at=T1)
    monthly = windows.monthly(2026, 2)
    month = store.start_run(monthly, started_at=T0, trigger="due")
    store.finish_run(month, _result(monthly), finished_at=T1)
    assert store.completed_periods(("daily",), since=date(2026, 3, 1)) == {days[3].key}
    assert store.completed_periods(("daily",), since=date(2026, 3, 14)) == set()
    assert store.completed_periods(("daily", "monthly"), since=date(2026, 2, 1)) == {
        days[3].key,
        monthly.key,
    }
