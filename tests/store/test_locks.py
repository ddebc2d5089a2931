"""``period_lock``: one holder per period across processes, on SQLite (flock) and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recon_job.store.locks import advisory_key, lock_file_path, period_lock
from tests.helpers import together

KEY = "daily:2026-03-14"

HOLDER = """
import sys, time
from recon_job.store.locks import period_lock
with period_lock(sys.argv[1], sys.argv[2]) as acquired:
    print("held" if acquired else "busy", flush=True)
    time.sleep(60)
"""


def test_a_second_acquirer_gets_false_until_the_first_releases(db_url: str) -> None:
    with period_lock(db_url, KEY) as first:
        assert first is True
        with period_lock(db_url, KEY) as second:
            assert second is False
        with period_lock(db_url, "daily:2026-03-15") as other_period:
            assert other_period is True
    with period_lock(db_url, KEY) as again:
        assert again is True


@pytest.mark.e2e
def test_the_lock_is_released_when_its_holding_process_is_killed(db_url: str) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, db_url, KEY], stdout=subprocess.PIPE, text=True
    ) as holder:
        assert holder.stdout is not None
        lines = iter(holder.stdout.readline, "")
        assert next(line for line in lines if line.strip() in ("held", "busy")).strip() == "held"
        with period_lock(db_url, KEY) as acquired:
            assert acquired is False
        os.kill(holder.pid, signal.SIGKILL)  # no finally, no atexit: only the kernel cleans up
        assert holder.wait(timeout=10) == -signal.SIGKILL
        # flock goes with the process; PostgreSQL ends the session as soon as its socket closes.
        deadline = time.monotonic() + 2.0
        while True:
            with period_lock(db_url, KEY) as acquired:
                if acquired or time.monotonic() > deadline:
                    break
            time.sleep(0.05)
        assert acquired is True


def test_the_sqlite_lock_is_a_separate_file_never_the_database(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    url = f"sqlite:///{db}"
    with period_lock(url, "range:2026-08-01..2026-08-02") as acquired:
        assert acquired
        (lock,) = (tmp_path / "history.db.locks").iterdir()
    assert lock == lock_file_path(db, "range:2026-08-01..2026-08-02")
    assert lock.name == "range_2026-08-01..2026-08-02.lock"
    assert lock != db
    assert not db.exists()  # the lock never opens (let alone creates) the database file


def test_an_in_memory_history_has_a_process_local_lock() -> None:
    with period_lock("sqlite://", KEY) as first, period_lock("sqlite://", KEY) as second:
        assert (first, second) == (True, False)
    with period_lock("sqlite://", KEY) as again:
        assert again is True


def test_advisory_keys_are_stable_signed_64_bit_numbers() -> None:
    key = advisory_key(KEY)
    assert key == advisory_key(KEY)
    assert key != advisory_key("daily:2026-03-15")
    assert -(2**63) <= key < 2**63


def test_two_openers_of_a_new_sqlite_history_both_get_it(tmp_path: Path) -> None:
    """Two first runs (or a CronJob and the dashboard) starting together on a new history file:
    SQLite refuses the switch to WAL at once ("database is locked", no busy handler) to the one
    that loses; the store waits for it instead of failing the run. 3 of 40 failed before."""
    from recon_job.store import HistoryStore

    for attempt in range(40):
        url = f"sqlite:///{tmp_path}/history-{attempt}.db"
        assert together(lambda url=url: HistoryStore(url).close()) == []
