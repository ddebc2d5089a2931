"""A stored run shown again: its result rebuilt from the history exactly as it was judged.

``recon-job run`` of a completed period prints the stored result of its last completed run
(issue 9 item 2), so the store must give back every figure and every verdict of it. On SQLite
always, on PostgreSQL when RECON_TEST_POSTGRES_URL is set.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa

from recon_job import compare
from recon_job.models import (
    UNATTRIBUTED,
    ReconResult,
    Status,
    Tolerance,
    UnpricedKey,
    Usage,
    UsageKey,
    UsageTotals,
    Window,
)
from recon_job.store import HistoryStore, RunStatus

DAY = date(2026, 3, 14)
WINDOW = Window("daily", DAY, DAY + timedelta(days=1))
T0 = datetime(2026, 3, 16, 6, 0, tzinfo=UTC)


def judged(local: UsageTotals, official: UsageTotals, **extra: object) -> ReconResult:
    return compare.reconcile(local, official, window=WINDOW, tolerance=Tolerance(), **extra)  # type: ignore[arg-type]


def unattributed_result() -> ReconResult:
    """OpenAI's dollars under "(all)": a model's cost is never judged, only the totals' is."""
    mini, big = UsageKey(DAY, "gpt-4o-mini"), UsageKey(DAY, "gpt-4o", "proj_1")
    local = UsageTotals(
        groups={
            mini: Usage(1000, 100, 50, 4, Decimal("9.5")),
            big: Usage(2_000_000, 0, 10, 10, Decimal("0.000001")),
        },
        skipped={"blank_line": 2},
        unpriced={UnpricedKey("my-model", "standard"): Usage(10, 0, 1, 1)},
        info={"files_read": 1},
    )
    official = UsageTotals(
        groups={
            mini: Usage(1000, 100, 50, 4),
            big: Usage(1_000_000, 0, 10, 10),
            UsageKey(DAY, UNATTRIBUTED): Usage(cost=Decimal("0.25")),
        },
        info={"pages": 1},
    )
    return judged(local, official)


def record(store: HistoryStore, result: ReconResult, *, at: datetime = T0) -> int:
    run_id = store.start_run(result.window, started_at=at, trigger="test")
    store.finish_run(run_id, result, finished_at=at + timedelta(seconds=1))
    return run_id


def test_a_stored_result_comes_back_exactly_as_it_was_judged(store: HistoryStore) -> None:
    result = unattributed_result()
    mini = next(g for g in result.groups if g.key.model == "gpt-4o-mini")
    assert mini.status is Status.RECONCILED  # $9.50 vs nothing attributed: cost not judged
    assert not mini.comparison.cost.exceeds
    assert result.status is Status.MISMATCH

    run_id = record(store, result)

    assert store.stored_result(run_id) == result


def test_a_run_stored_before_the_verdicts_were_kept_is_judged_again(
    store: HistoryStore, db_url: str
) -> None:
    result = judged(
        UsageTotals(groups={UsageKey(DAY, "gpt-4o"): Usage(2000, 0, 0, 1)}),
        UsageTotals(groups={UsageKey(DAY, "gpt-4o"): Usage(1000, 0, 0, 1)}),
    )
    run_id = record(store, result)
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE runs SET exceeds = NULL"))
            conn.execute(sa.text("UPDATE run_groups SET exceeds = NULL"))
    finally:
        engine.dispose()

    assert store.stored_result(run_id) == result


def test_runs_without_a_result_have_no_stored_result(store: HistoryStore) -> None:
    running = store.start_run(WINDOW, started_at=T0, trigger="test")
    failed = store.start_run(WINDOW, started_at=T0, trigger="test")
    store.fail_run(failed, reason="unauthorized", message="bad key", finished_at=T0)

    assert store.stored_result(running) is None
    assert store.stored_result(failed) is None
    assert store.stored_result(999) is None


def test_the_last_completed_run_of_a_period_is_its_newest_reconciled_or_mismatch_run(
    store: HistoryStore,
) -> None:
    same = UsageTotals(groups={UsageKey(DAY, "gpt-4o"): Usage(1000, 0, 0, 1)})
    assert store.last_completed_run(WINDOW.key) is None
    first = record(store, judged(same, same))
    pending = record(store, judged(same, same, pending_days=(DAY,)), at=T0 + timedelta(hours=1))
    failed = store.start_run(WINDOW, started_at=T0 + timedelta(hours=2), trigger="test")
    store.fail_run(failed, reason="deadline", message="too slow", finished_at=T0)

    last = store.last_completed_run(WINDOW.key)
    assert last is not None
    assert (last.id, last.status) == (first, RunStatus.RECONCILED)
    assert store.get_run(pending) is not None
    assert store.last_completed_run("daily:2026-03-15") is None

    second = record(store, judged(same, same), at=T0 + timedelta(hours=3))
    last = store.last_completed_run(WINDOW.key)
    assert last is not None
    assert last.id == second
