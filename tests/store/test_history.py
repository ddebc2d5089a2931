"""History store tests: on SQLite always, on PostgreSQL when RECON_TEST_POSTGRES_URL is set.

With the variable set (``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``), each
PostgreSQL test creates its own database with a random name on that server and drops it after.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from structlog.testing import capture_logs

from recon_job.errors import StoreError
from recon_job.models import (
    MONEY,
    Comparison,
    GroupResult,
    Metric,
    ReconResult,
    Status,
    Tolerance,
    UnpricedKey,
    Usage,
    UsageKey,
    Window,
    sum_usage,
)
from recon_job.store import HistoryStore, RunStatus
from recon_job.store.migrate import head_revision
from recon_job.store.schema import metadata
from tests.databases import postgres_server_or_skip, temporary_postgres_database

POSTGRES_ENV = "RECON_TEST_POSTGRES_URL"

DAY = Window("daily", date(2026, 3, 14), date(2026, 3, 15))
MONTH = Window("monthly", date(2026, 2, 1), date(2026, 3, 1))
T0 = datetime(2026, 3, 15, 6, 0, tzinfo=UTC)

#: 36 decimals; TINY_PLUS has a non-zero last digit that Numeric(38, 18) would round away.
TINY = Decimal("0.003400000000000000000000000000000000")
TINY_PLUS = Decimal("0.003400000000000000000000000000000001")
HUGE = Decimal("98765432109876543210987654321.123456789012345678901234567890")


# --- building results straight from recon_job.models -----------------------------------------


def _metric(local: int | Decimal, openai: int | Decimal) -> Metric:
    loc, off = Decimal(local), Decimal(openai)
    diff = loc - off
    return Metric(loc, off, diff, None if off == 0 else diff / off * 100, exceeds=False)


def _comparison(local: Usage, openai: Usage) -> Comparison:
    return Comparison(
        input_tokens=_metric(local.input_tokens, openai.input_tokens),
        cached_tokens=_metric(local.cached_tokens, openai.cached_tokens),
        output_tokens=_metric(local.output_tokens, openai.output_tokens),
        tokens=_metric(local.total_tokens, openai.total_tokens),
        requests=_metric(local.requests, openai.requests),
        cost=_metric(local.cost, openai.cost),
    )


def _group(
    day: date,
    model: str,
    local: Usage,
    openai: Usage,
    status: Status = Status.RECONCILED,
    project_id: str | None = None,
) -> GroupResult:
    key = UsageKey(day, model, project_id)
    return GroupResult(key, local, openai, _comparison(local, openai), status)


def _result(window: Window, groups: list[GroupResult], **extra: Any) -> ReconResult:
    local = sum_usage([g.local for g in groups])
    openai = sum_usage([g.openai for g in groups])
    statuses = {g.status for g in groups}
    status = Status.MISMATCH if Status.MISMATCH in statuses else Status.RECONCILED
    return ReconResult(
        window=window,
        status=extra.pop("status", status),
        tolerance=Tolerance(),
        local=local,
        openai=openai,
        comparison=_comparison(local, openai),
        groups=tuple(groups),
        **extra,
    )


def _sample_result() -> ReconResult:
    day = DAY.start
    return _result(
        DAY,
        [
            _group(
                day,
                "gpt-4o-mini",
                Usage(1200, 200, 300, 4, TINY),
                Usage(1200, 200, 300, 4, TINY_PLUS),
                project_id="proj_abc",
            ),
            _group(
                day,
                "gpt-5",
                Usage(3_000_000_000, 0, 10, 3, HUGE),
                Usage(0, 0, 0, 0, Decimal(0)),
                status=Status.MISMATCH,
            ),
            _group(
                day,
                "o3",
                Usage(100, 0, 50, 1, Decimal("0.1")),
                Usage(120, 0, 40, 1, Decimal("0.3")),
            ),
        ],
        unpriced={UnpricedKey("mystery-model", "flex"): Usage(10, 0, 5, 1)},
        skipped={"malformed_json": 2, "blank_line": 7},
        info={"files_read": 3},
        pending_days=(DAY.start,),
    )


# --- backends ----------------------------------------------------------------------------------


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    """Path of a SQLite history file for the SQLite-only tests."""
    return tmp_path / "recon.db"


def _scalar(url: str, sql: str, **params: Any) -> Any:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()
    finally:
        engine.dispose()


# --- schema ------------------------------------------------------------------------------------


def test_it_creates_the_schema_on_first_open_and_reopening_is_a_no_op(
    db_url: str, open_store: Callable[..., HistoryStore]
) -> None:
    with capture_logs() as first_logs:
        first = open_store()
    assert [e["event"] for e in first_logs if e["event"] == "store.schema.upgraded"]
    assert _scalar(db_url, "SELECT version_num FROM alembic_version") == head_revision()
    run_id = first.start_run(DAY, started_at=T0, trigger="cli")

    with capture_logs() as second_logs:
        second = open_store()
    assert not [e for e in second_logs if e["event"] == "store.schema.upgraded"]
    assert _scalar(db_url, "SELECT count(*) FROM alembic_version") == 1
    assert [r.id for r in second.list_runs()] == [run_id]
    inspector_engine = sa.create_engine(db_url)
    try:
        tables = set(sa.inspect(inspector_engine).get_table_names())
    finally:
        inspector_engine.dispose()
    assert {"runs", "run_groups", "alembic_version"} <= tables


def test_the_migrations_create_exactly_the_schema_classes(db_url: str, store: HistoryStore) -> None:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_a_schema_revision_from_a_newer_version_is_a_permanent_error(
    db_url: str, store: HistoryStore
) -> None:
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        engine.dispose()

    with pytest.raises(StoreError, match="newer recon-job") as info:
        HistoryStore(db_url)
    assert info.value.permanent


def test_two_stores_opening_a_fresh_database_at_once_both_succeed(db_url: str) -> None:
    barrier = threading.Barrier(4)
    outcomes: list[object] = []

    def _open() -> None:
        barrier.wait()
        try:
            with HistoryStore(db_url) as opened:
                outcomes.append(opened.start_run(DAY, started_at=T0, trigger="thread"))
        except Exception as e:  # collected and asserted below
            outcomes.append(e)

    threads = [threading.Thread(target=_open) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(o for o in outcomes if isinstance(o, int)) == [1, 2, 3, 4], outcomes
    assert _scalar(db_url, "SELECT version_num FROM alembic_version") == head_revision()


# --- runs --------------------------------------------------------------------------------------


def test_a_result_with_groups_round_trips_exactly(store: HistoryStore) -> None:
    result = _sample_result()
    # An aware time in another zone comes back as the same instant, in UTC.
    started = datetime(2026, 3, 15, 8, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    run_id = store.start_run(DAY, started_at=started, trigger="recon-job run --window daily")
    store.finish_run(run_id, result, finished_at=T0 + timedelta(minutes=1))

    run = store.get_run(run_id)
    assert run is not None
    assert run.status is RunStatus.MISMATCH
    assert run.window == DAY
    assert run.window_key == "daily:2026-03-14"
    assert run.trigger == "recon-job run --window daily"
    assert run.started_at == started
    assert run.started_at.tzinfo is UTC
    assert run.started_at.hour == 6
    assert run.finished_at == T0 + timedelta(minutes=1)
    assert run.finished_at is not None
    assert run.finished_at.tzinfo is UTC
    assert run.tolerance == Tolerance()
    assert run.threshold_pct == Decimal(5)
    assert run.local == result.local
    assert run.openai == result.openai
    assert run.local is not None
    assert run.local.cost == MONEY.add(MONEY.add(TINY, HUGE), Decimal("0.1"))  # exact, 60+ digits
    assert run.difference is not None
    assert run.difference.cost == result.comparison.cost.difference
    assert run.difference.tokens_pct == result.comparison.tokens.pct
    assert run.group_count == 3
    assert run.mismatch_count == 1
    assert run.pending_days == (DAY.start,)
    assert run.skipped == {"malformed_json": 2, "blank_line": 7}
    assert run.unpriced == {UnpricedKey("mystery-model", "flex"): Usage(10, 0, 5, 1)}
    assert run.info == {"files_read": 3}
    assert run.error_reason is None
    assert run.tool_version

    groups = store.run_groups(run_id)
    assert [g.key for g in groups] == [g.key for g in result.groups]
    for stored, original in zip(groups, result.groups, strict=True):
        assert stored.run_id == run_id
        assert stored.local == original.local
        assert stored.openai == original.openai
        assert stored.status is original.status
        assert stored.difference.cost == original.comparison.cost.difference
        assert (
            stored.difference.tokens == original.local.total_tokens - original.openai.total_tokens
        )
        assert stored.difference.cost_pct == original.comparison.cost.pct
    tiny, huge, _ = groups
    assert tiny.local.cost == TINY
    assert tiny.openai.cost == TINY_PLUS
    assert tiny.openai.cost != TINY
    assert huge.local.cost == HUGE
    assert huge.local.input_tokens == 3_000_000_000
    assert huge.difference.cost_pct is None
    assert huge.difference.tokens_pct is None
    # 28 significant digits from Decimal division survive too.
    assert groups[2].difference.cost_pct == Decimal("-0.2") / Decimal("0.3") * 100


def test_a_failed_run_has_no_groups_and_no_totals(db_url: str, store: HistoryStore) -> None:
    run_id = store.start_run(MONTH, started_at=T0, trigger="cli")
    store.fail_run(
        run_id, reason="quota_exhausted", message="429 without Retry-After", finished_at=T0
    )

    run = store.get_run(run_id)
    assert run is not None
    assert run.status is RunStatus.FAILED
    assert (run.error_reason, run.error_message) == ("quota_exhausted", "429 without Retry-After")
    assert run.local is None
    assert run.openai is None
    assert run.difference is None
    assert store.run_groups(run_id) == []
    assert _scalar(db_url, "SELECT local_cost FROM runs WHERE id = :id", id=run_id) is None
    assert _scalar(db_url, "SELECT openai_input_tokens FROM runs WHERE id = :id", id=run_id) is None


@pytest.mark.e2e
def test_a_crash_between_start_and_finish_leaves_a_running_row(
    db_url: str, open_store: Callable[..., HistoryStore]
) -> None:
    crash = textwrap.dedent(
        """
        import os, sys
        from datetime import UTC, date, datetime
        from recon_job.models import Window
        from recon_job.store import HistoryStore

        store = HistoryStore(sys.argv[1])
        window = Window("daily", date(2026, 3, 14), date(2026, 3, 15))
        started = datetime(2026, 3, 15, 6, tzinfo=UTC)
        run_id = store.start_run(window, started_at=started, trigger="cli")
        print(f"run_id={run_id}")
        sys.stdout.flush()
        os._exit(9)  # killed mid-run: no finish_run, no close
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", crash, db_url], capture_output=True, text=True, check=False
    )
    assert done.returncode == 9, done.stderr

    run_id = int(done.stdout.rsplit("run_id=", 1)[1])
    run = open_store().get_run(run_id)
    assert run is not None
    assert run.status is RunStatus.RUNNING
    assert run.finished_at is None
    assert run.local is None


def test_finishing_is_all_or_nothing(store: HistoryStore) -> None:
    run_id = store.start_run(DAY, started_at=T0, trigger="cli")
    good = _group(DAY.start, "gpt-4o", Usage(1, 0, 1, 1, Decimal(1)), Usage(1, 0, 1, 1, Decimal(1)))
    bad = _group(DAY.start, "gpt-4o-mini", Usage(cost=Decimal("NaN")), Usage())

    with pytest.raises(StoreError, match=f"finish run {run_id}") as info:
        store.finish_run(run_id, _result(DAY, [good, bad]), finished_at=T0)
    assert info.value.permanent

    run = store.get_run(run_id)
    assert run is not None
    assert run.status is RunStatus.RUNNING
    assert run.local is None
    assert store.run_groups(run_id) == []


def test_a_finished_run_cannot_be_finished_or_failed_again(store: HistoryStore) -> None:
    run_id = store.start_run(DAY, started_at=T0, trigger="cli")
    store.finish_run(run_id, _sample_result(), finished_at=T0)

    with pytest.raises(StoreError, match="already mismatch"):
        store.finish_run(run_id, _sample_result(), finished_at=T0)
    with pytest.raises(StoreError, match="already mismatch"):
        store.fail_run(run_id, reason="x", message="y", finished_at=T0)
    with pytest.raises(StoreError, match="no run 999"):
        store.fail_run(999, reason="x", message="y", finished_at=T0)
    assert len(store.run_groups(run_id)) == 3


def test_runs_are_listed_newest_first_and_repeats_are_kept(store: HistoryStore) -> None:
    offsets = [3, 0, 4, 1, 2]
    ids = {
        offset: store.start_run(DAY, started_at=T0 + timedelta(hours=offset), trigger="cli")
        for offset in offsets
    }

    assert [r.id for r in store.list_runs()] == [ids[o] for o in (4, 3, 2, 1, 0)]
    assert [r.id for r in store.list_runs(limit=2)] == [ids[4], ids[3]]
    assert store.list_runs(limit=0) == []
    assert {r.window_key for r in store.list_runs()} == {DAY.key}
    assert store.get_run(12345) is None


def test_naive_timestamps_are_refused(store: HistoryStore) -> None:
    with pytest.raises(StoreError, match="naive datetime") as info:
        store.start_run(DAY, started_at=datetime(2026, 3, 15, 6), trigger="cli")
    assert info.value.permanent
    assert store.list_runs() == []


# --- SQLite specifics --------------------------------------------------------------------------


def test_sqlite_history_is_in_wal_mode_with_foreign_keys(sqlite_path: Path) -> None:
    with HistoryStore(f"sqlite:///{sqlite_path}") as store:
        run_id = store.start_run(DAY, started_at=T0, trigger="cli")
        store.finish_run(run_id, _sample_result(), finished_at=T0)
    raw = sqlite3.connect(sqlite_path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        raw.execute("PRAGMA foreign_keys = ON")
        raw.execute("DELETE FROM runs")
        raw.commit()
        assert raw.execute("SELECT count(*) FROM run_groups").fetchone() == (0,)
    finally:
        raw.close()


def test_an_in_memory_sqlite_store_works() -> None:
    with HistoryStore("sqlite://") as store:
        run_id = store.start_run(DAY, started_at=T0, trigger="test")
        store.finish_run(run_id, _sample_result(), finished_at=T0)
        assert len(store.run_groups(run_id)) == 3


def _hold_write_lock(path: Path, seconds: float) -> tuple[threading.Thread, threading.Event]:
    """Another connection takes the write lock with BEGIN IMMEDIATE and holds it for a while."""
    locked = threading.Event()

    def _hold() -> None:
        raw = sqlite3.connect(path, isolation_level=None)
        try:
            raw.execute("BEGIN IMMEDIATE")
            locked.set()
            time.sleep(seconds)
            raw.execute("COMMIT")
        finally:
            raw.close()

    thread = threading.Thread(target=_hold)
    thread.start()
    assert locked.wait(5)
    return thread, locked


def test_a_writer_waits_for_a_short_write_lock_instead_of_failing(sqlite_path: Path) -> None:
    with HistoryStore(f"sqlite:///{sqlite_path}") as store:
        holder, _ = _hold_write_lock(sqlite_path, 0.5)
        began = time.monotonic()
        run_id = store.start_run(DAY, started_at=T0, trigger="cli")
        waited = time.monotonic() - began
        holder.join()
        assert waited >= 0.3
        assert store.get_run(run_id) is not None


def test_a_write_lock_held_past_the_busy_timeout_is_a_transient_error(sqlite_path: Path) -> None:
    with HistoryStore(f"sqlite:///{sqlite_path}", busy_timeout=0.1) as store:
        holder, _ = _hold_write_lock(sqlite_path, 0.8)
        try:
            with pytest.raises(StoreError, match="database is locked") as info:
                store.start_run(DAY, started_at=T0, trigger="cli")
        finally:
            holder.join()
        assert not info.value.permanent
        assert str(sqlite_path) in str(info.value)
        assert store.list_runs() == []


# --- errors ------------------------------------------------------------------------------------


def test_an_unreachable_server_is_transient_and_the_password_stays_hidden() -> None:
    password = "s3cr3t-Pa55w0rd"
    with capture_logs() as logs, pytest.raises(StoreError) as info:
        HistoryStore(f"postgresql+psycopg://recon:{password}@127.0.0.1:1/recon")

    error = info.value
    assert not error.permanent
    assert "127.0.0.1:1/recon" in str(error)
    assert "***" in str(error)
    for text in (str(error), repr(error), error.message, repr(logs)):
        assert password not in text
    assert isinstance(error.__cause__, sa.exc.OperationalError)


@pytest.mark.parametrize(
    "url",
    [
        "not a url at all",
        "mysql+nosuchdriver://user:hunter2@db/recon",
        "nosuchdialect://user:hunter2@db/recon",
        "postgresql+psycopg2://user:hunter2@db/recon",
    ],
)
def test_a_bad_url_is_a_permanent_error_saying_what_is_expected(url: str) -> None:
    with pytest.raises(StoreError) as info:
        HistoryStore(url)
    assert info.value.permanent
    assert "postgresql+psycopg://" in str(info.value)
    assert "recon-job[postgres]" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_a_sqlite_path_under_a_regular_file_is_a_permanent_error_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "notadir"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(StoreError, match=r"notadir/history\.db.*directory .*notadir") as caught:
        HistoryStore(f"sqlite:///{blocker / 'history.db'}")
    assert caught.value.permanent
    assert caught.value.reason == "store_path"


def test_a_read_only_open_never_creates_a_sqlite_file_or_its_directories(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "history.db"
    with pytest.raises(StoreError, match=r"no history database at .*typo/history\.db") as caught:
        HistoryStore(f"sqlite:///{missing}", create=False)
    assert caught.value.permanent
    assert caught.value.reason == "store_missing"
    assert not (tmp_path / "typo").exists()


def test_a_read_only_open_reads_an_existing_history(sqlite_path: Path) -> None:
    HistoryStore(f"sqlite:///{sqlite_path}").close()
    with HistoryStore(f"sqlite:///{sqlite_path}", create=False) as store:
        assert store.list_runs() == []


@pytest.mark.postgres
def test_a_read_only_open_of_an_empty_postgresql_database_creates_no_table() -> None:
    server = postgres_server_or_skip()
    for url in temporary_postgres_database(server):
        with pytest.raises(StoreError, match="holds no recon-job history yet") as caught:
            HistoryStore(url, create=False)
        assert caught.value.reason == "store_missing"
        engine = sa.create_engine(url)
        try:
            assert sa.inspect(engine).get_table_names() == []
        finally:
            engine.dispose()


def test_a_model_name_of_any_length_is_stored(db_url: str, store: HistoryStore) -> None:
    """Issue 9 #17: a 201-character model name made PostgreSQL refuse every later result."""
    long_name = "m" * 5000
    key = UsageKey(DAY.start, long_name, "p" * 300, "k" * 300)
    comparison = Comparison(*(_metric(1, 1) for _ in range(6)))
    result = ReconResult(
        window=DAY,
        status=Status.RECONCILED,
        tolerance=Tolerance(),
        local=Usage(1, 0, 0, 1),
        openai=Usage(1, 0, 0, 1),
        comparison=comparison,
        groups=(
            GroupResult(key, Usage(1, 0, 0, 1), Usage(1, 0, 0, 1), comparison, Status.RECONCILED),
        ),
    )
    run_id = store.start_run(DAY, started_at=T0, trigger="test")
    store.finish_run(run_id, result, finished_at=T0, outbox=())
    (group,) = store.run_groups(run_id)
    assert group.key == key
