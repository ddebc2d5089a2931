"""``recon-job run --due`` as real processes: racing runners, kill -9, and SIGTERM (R32–R38).

The fake OpenAI delays its first answers so that the runs overlap; the history is a real SQLite
file or a real PostgreSQL database. Periods come from the real clock: with a look-back of one
day and one month, ``--due`` has exactly two periods to run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from recon_job.store import HistoryStore, RunRecord, RunStatus
from tests.databases import postgres_server_or_skip, temporary_postgres_database
from tests.e2e import cli
from tests.fakeopenai import FakeOpenAI, fake_openai_fixture  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def history_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'history.db'}"
        return
    yield from temporary_postgres_database(postgres_server_or_skip())


@pytest.fixture(name="workdir")
def workdir_fixture(tmp_path: Path) -> Path:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "usage_tracking.ndjson").write_text("", "utf-8")
    return tmp_path


def env(history_url: str) -> dict[str, str]:
    return {
        "RECON_DATABASE_URL": history_url,
        "RECON_SCHEDULE__LOOKBACK_DAYS": "1",
        "RECON_SCHEDULE__LOOKBACK_MONTHS": "1",
    }


def start(
    workdir: Path,
    fake: FakeOpenAI,
    history_url: str,
    *args: str,
    extra: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """``recon-job run ARGS`` in the background, with ``cli()``'s environment (and ``extra``)."""
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RECON_", "OPENAI_")) or k.startswith("RECON_TEST_")
    }
    environ.update(
        {
            "OPENAI_ADMIN_KEY": fake.admin_key,
            "OPENAI_BASE_URL": fake.base_url,
            "RECON_LOG_PATHS": str(workdir / "logs" / "*.ndjson*"),
            "RECON_LOG_FORMAT": "json",
            "RECON_OPENAI__MAX_RETRIES": "0",
            **env(history_url),
            **(extra or {}),
        }
    )
    return subprocess.Popen(
        [sys.executable, "-m", "recon_job", "run", *args],
        cwd=workdir,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def runs(history_url: str) -> list[RunRecord]:
    store = HistoryStore(history_url)
    try:
        return sorted(store.list_runs(100), key=lambda r: r.id)
    finally:
        store.close()


def wait_for_running(history_url: str, timeout: float = 15.0) -> RunRecord:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [r for r in runs(history_url) if r.status is RunStatus.RUNNING]
        if running:
            return running[0]
        time.sleep(0.05)
    raise AssertionError("no run row became running")


def test_two_racing_due_runs_run_each_period_exactly_once(
    fake_openai: FakeOpenAI, workdir: Path, history_url: str
) -> None:
    fake_openai.delay_next(4, 1.0)  # both runners hold their first period for a second
    procs = [start(workdir, fake_openai, history_url, "--due", "--format", "json") for _ in "ab"]
    docs: list[dict[str, Any]] = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        docs.append(json.loads(out))
    rows = runs(history_url)
    keys = [r.window_key for r in rows]
    assert len(keys) == 2 == len(set(keys))  # one row per period: one daily, one monthly
    assert {r.status for r in rows} == {RunStatus.RECONCILED}
    ran = [d["window"]["key"] for doc in docs for d in doc["due"]]
    assert sorted(ran) == sorted(keys)
    skipped = [s for doc in docs for s in doc["skipped"]]
    assert {"period": keys[0], "reason": "locked"} in skipped or {
        "period": keys[1],
        "reason": "locked",
    } in skipped
    assert all(s["reason"] in ("locked", "complete") for s in skipped)
    assert len(skipped) == 2  # each runner skipped what the other ran


def test_a_runner_killed_mid_run_is_abandoned_and_its_period_completed_once(
    fake_openai: FakeOpenAI, workdir: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    fake_openai.delay_next(1, 30.0)
    victim = start(workdir, fake_openai, url, "--due")
    try:
        running = wait_for_running(url)
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=10)
    assert victim.returncode == -signal.SIGKILL
    fake_openai.clear_faults()
    ran = cli(workdir, fake_openai, "run", "--due", "--format", "json", **env(url))
    assert ran.code == 0, ran.stderr
    doc = ran.doc()
    assert doc["abandoned"] == [running.id]
    rows = runs(url)
    assert rows[0].status is RunStatus.ABANDONED
    done = [r.window_key for r in rows if r.status is RunStatus.RECONCILED]
    assert sorted(done) == sorted({r.window_key for r in rows})  # every period completed once
    assert done.count(running.window_key) == 1


def test_sigterm_interrupts_the_run_exits_143_and_releases_the_lock(
    fake_openai: FakeOpenAI, workdir: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    fake_openai.delay_next(1, 2.0)
    proc = start(workdir, fake_openai, url, "--date", "2026-08-01")
    wait_for_running(url)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    (row,) = runs(url)
    assert row.status is RunStatus.INTERRUPTED
    assert row.error_reason == "interrupted"
    again = cli(workdir, fake_openai, "run", "--date", "2026-08-01", **env(url))
    assert again.code == 0, again.stderr  # the lock was released: not "skipped: locked"
    assert "skipped" not in again.stdout
    assert [r.status for r in runs(url)] == [RunStatus.INTERRUPTED, RunStatus.RECONCILED]


def test_sigterm_with_format_json_still_prints_one_json_document(
    fake_openai: FakeOpenAI, workdir: Path, tmp_path: Path
) -> None:
    # --help promises exactly one JSON document on stdout; an interrupted run printed none.
    url = f"sqlite:///{tmp_path / 'history.db'}"
    fake_openai.delay_next(1, 2.0)
    proc = start(workdir, fake_openai, url, "--date", "2026-08-01", "--format", "json")
    wait_for_running(url)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    doc = json.loads(out)
    assert (doc["status"], doc["error"]["reason"], doc["error"]["permanent"]) == (
        "failed",
        "interrupted",
        False,
    )


def test_run_due_pings_the_dead_mans_switch_with_one_rid_per_run(
    fake_openai: FakeOpenAI, workdir: Path, tmp_path: Path
) -> None:
    from pytest_httpserver import HTTPServer

    check = "0f1e2d3c-aaaa-bbbb-cccc-ddddeeeeffff"
    with HTTPServer(host="127.0.0.1", port=0) as monitor:
        monitor.expect_request(re.compile(f"/{check}.*")).respond_with_data("OK")
        history = f"sqlite:///{tmp_path / 'h.db'}"
        ping = {**env(history), "RECON_PING_URL": monitor.url_for(f"/{check}")}
        ok = cli(workdir, fake_openai, "run", "--due", **ping)
        assert ok.code == 0, ok.stderr
        fake_openai.fail_next(10, 401)
        history = f"sqlite:///{tmp_path / 'h2.db'}"
        bad = cli(workdir, fake_openai, "run", "--due", **{**ping, "RECON_DATABASE_URL": history})
        assert bad.code == 2
        for ran in (ok, bad):
            assert check not in ran.stdout + ran.stderr  # the check's UUID is a secret
        pings = [(r.path.removeprefix(f"/{check}"), r.args["rid"]) for r, _ in monitor.log]
    assert [p for p, _ in pings] == ["/start", "", "/start", "/2"]
    assert pings[0][1] == pings[1][1] != pings[2][1] == pings[3][1]


def test_a_fetch_hung_past_the_shutdown_budget_is_cut_short_and_recorded_interrupted(
    fake_openai: FakeOpenAI, workdir: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    fake_openai.delay_next(1, 25.0)  # no checkpoint until the answer comes: a hung fetch
    budget = {"RECON_DAEMON__SHUTDOWN_BUDGET_SECONDS": "2"}
    proc = start(workdir, fake_openai, url, "--date", "2026-08-01", extra=budget)
    wait_for_running(url)
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    # Cut short at the budget (2 s, plus the interpreter's exit), not when the answer comes.
    assert time.monotonic() - began < 10
    (row,) = runs(url)
    assert row.status is RunStatus.INTERRUPTED
    assert row.error_reason == "interrupted"
