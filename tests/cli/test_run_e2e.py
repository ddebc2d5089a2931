"""``recon-job run`` as a real process: a crash before the send, SIGTERM during the send.

Issue 9 items 19 and 20. The receivers are real: a webhook on pytest-httpserver, and a socket
that accepts connections (the kernel's backlog) but never answers — a receiver hanging.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from recon_job.store import HistoryStore
from tests.e2e import cli, cli_process, drifting_world, environment, workdir_fixture  # noqa: F401
from tests.fakeopenai import FakeOpenAI, fake_openai_fixture  # noqa: F401

pytestmark = pytest.mark.e2e

HOOK = "/hooks/recon"


@pytest.fixture
def receiver() -> Iterator[HTTPServer]:
    with HTTPServer(host="127.0.0.1", port=0) as server:
        server.expect_request(HOOK, method="POST").respond_with_data("", status=204)
        yield server


@pytest.fixture
def hanging_port() -> Iterator[int]:
    """A port that accepts TCP connections but never answers a request."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield int(listener.getsockname()[1])


def outbox(workdir: Path) -> list[str]:
    with HistoryStore(f"sqlite:///{workdir / 'history.db'}") as store:
        return [str(r.row.status) for r in store.list_notifications()]


def test_run_due_with_nothing_due_sends_what_a_crash_left_pending(
    fake_openai: FakeOpenAI, workdir: Path, receiver: HTTPServer
) -> None:
    env = {
        "RECON_WEBHOOK_URL": receiver.url_for(HOOK),
        "RECON_WEBHOOK__ALLOW_PRIVATE": "true",
        "RECON_SCHEDULE__LOOKBACK_DAYS": "1",
        "RECON_SCHEDULE__LOOKBACK_MONTHS": "1",
    }
    drifting_world(fake_openai, workdir)  # drift on 2026-08-01, long before the due periods
    assert cli(workdir, fake_openai, "run", "--due", **env).code == 0  # nothing due after this
    crashed = cli_process(
        workdir,
        fake_openai,
        "run",
        "--date",
        "2026-08-01",
        **env,
        RECON_FAULT_POINT="after_outbox_commit",
    )
    assert crashed.code == 137
    assert outbox(workdir) == ["pending"]
    assert receiver.log == []

    due = cli(workdir, fake_openai, "run", "--due", "--format", "json", **env)

    assert due.code == 0, due.stderr
    doc = due.doc()
    assert doc["due"] == []
    assert doc["relayed"] == {"sent": 1, "failed": 0, "pending": 0}
    [(request, _)] = receiver.log
    assert json.loads(request.get_data())["event"] == "opened"
    assert outbox(workdir) == ["sent"]
    text = cli(workdir, fake_openai, "run", "--due", **env)
    assert text.stdout == "nothing due\n"  # nothing pending either: no relay line


def test_sigterm_while_the_receivers_hang_exits_143_within_the_budget(
    fake_openai: FakeOpenAI, workdir: Path, hanging_port: int
) -> None:
    drifting_world(fake_openai, workdir)
    hanging = f"http://127.0.0.1:{hanging_port}"
    env = environment(
        workdir,
        fake_openai,
        {
            "RECON_WEBHOOK_URL": f"{hanging}/hooks/recon",
            "RECON_WEBHOOK__ALLOW_PRIVATE": "true",
            "RECON_WEBHOOK__TIMEOUT_SECONDS": "28",
            "RECON_SLACK_WEBHOOK_URL": f"{hanging}/services/T0/B0/x",
            "RECON_SLACK__ALLOW_OTHER_HOSTS": "true",
            "RECON_SLACK__TIMEOUT_SECONDS": "28",
            "RECON_DAEMON__SHUTDOWN_BUDGET_SECONDS": "3",
        },
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "recon_job", "run", "--date", "2026-08-01", "--format", "json"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not (workdir / "history.db").exists() or "sending" not in outbox(workdir):
            assert time.monotonic() < deadline, "the send never started"
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        began = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    took = time.monotonic() - began

    assert proc.returncode == 143, err
    assert took < 3 + 1.5  # the budget, plus the interpreter's exit
    events = [json.loads(line)["event"] for line in err.splitlines() if line.startswith("{")]
    assert "shutdown.interrupting" in events  # the hung send was cut at the budget
    assert "notify.relay.unexpected_error" not in events  # not a delivery error
    assert "shutdown.budget_exceeded" not in events  # a clean exit, not the last resort
    # The run was committed before the send: complete, and printed as such.
    doc = json.loads(out)
    assert doc["status"] == "mismatch"
    assert {a["status"] for a in doc["alerts"]} == {"pending"}
    # Nothing was given up or left claimed: the next run or relay sends both.
    assert sorted(outbox(workdir)) == ["pending", "pending"]
