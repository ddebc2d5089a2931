"""The real ``python -m recon_job daemon`` process against the fake OpenAI over real HTTP.

Checks the probes, /metrics, clients that hang up early, the exit code after SIGTERM, the
history rows and that the period locks are released (reliability.md R36, R38, §9 F).
"""

from __future__ import annotations

import json
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pytest_httpserver import HTTPServer

from recon_job import job, windows, wiring
from recon_job.config import load_settings
from recon_job.job import RunControl
from recon_job.store import HistoryStore
from tests.e2e import cli, environment
from tests.fakeopenai import FakeOpenAI, fake_openai_fixture  # noqa: F401

pytestmark = pytest.mark.e2e

CHECK = "5b0c9a3e-1111-2222-3333-444455556666"


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or predicate}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(workdir: Path, fake: FakeOpenAI, **extra: str) -> dict[str, str]:
    """The e2e environment, with a longer read timeout: the daemon's runs share the machine."""
    return environment(workdir, fake, {"RECON_OPENAI__READ_TIMEOUT_SECONDS": "10", **extra})


class RunningDaemon:
    """A ``python -m recon_job daemon`` subprocess with its stderr in a file."""

    def __init__(self, workdir: Path, fake: FakeOpenAI, **extra: str) -> None:
        self.port = free_port()
        self.fake = fake
        self.stderr_path = workdir / f"daemon-{self.port}.log"
        env = base_env(workdir, fake, RECON_DAEMON__LISTEN=f"127.0.0.1:{self.port}", **extra)
        with self.stderr_path.open("w") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "recon_job", "daemon"],
                cwd=workdir,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )

    def get(self, path: str) -> tuple[int, str]:
        try:
            url = f"http://127.0.0.1:{self.port}{path}"
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError:
            return 0, ""

    def health(self) -> dict[str, Any] | None:
        code, text = self.get("/healthz")
        return json.loads(text) if code else None

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)

    def logs(self) -> list[dict[str, Any]]:
        text = self.stderr_path.read_text()
        assert self.fake.admin_key not in text
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(name="spawn")
def spawn_fixture() -> Iterator[Callable[..., RunningDaemon]]:
    started: list[RunningDaemon] = []

    def spawn(workdir: Path, fake: FakeOpenAI, **extra: str) -> RunningDaemon:
        daemon = RunningDaemon(workdir, fake, **extra)
        started.append(daemon)
        return daemon

    yield spawn
    for daemon in started:
        daemon.kill()


@pytest.fixture(name="workdir")
def workdir_fixture(tmp_path: Path) -> Path:
    (tmp_path / "logs").mkdir()
    yesterday = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
    (tmp_path / "logs" / "usage.ndjson").write_text(
        json.dumps({"timestamp": f"{yesterday}T10:00:00Z", "model": "gpt-4o-mini"}) + "\n"
    )
    return tmp_path


def history(workdir: Path) -> list[Any]:
    with HistoryStore(f"sqlite:///{workdir / 'history.db'}") as store:
        return store.list_runs(1000)


def caught_up(daemon: RunningDaemon) -> dict[str, Any] | None:
    body = daemon.health()
    if body and body["scheduler"] == "running" and all(body["last_completed"].values()):
        return body
    return None


def test_the_real_daemon_reports_health_and_metrics_and_exits_143_on_sigterm(
    workdir: Path,
    fake_openai: FakeOpenAI,
    spawn: Callable[..., RunningDaemon],
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request(re.compile(".*")).respond_with_data("OK")
    daemon = spawn(
        workdir,
        fake_openai,
        RECON_TEST_TICK_SECONDS="1",
        RECON_PING_URL=httpserver.url_for(f"/{CHECK}"),
    )
    body = wait_for(lambda: caught_up(daemon), what="the catch-up")
    code, _ = daemon.get("/healthz")
    assert code == 200
    assert body["status"] == "ok"
    assert body["last_run"]["daily"]["status"] in ("reconciled", "mismatch")
    wait_for(lambda: (daemon.health() or {}).get("last_tick") != body["last_tick"], what="a tick")

    code, text = daemon.get("/metrics")
    assert code == 200
    runs = {
        (s.labels["kind"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "recon_runs_total"
    }
    rows = history(workdir)
    for kind in ("daily", "monthly"):
        assert sum(v for (k, _), v in runs.items() if k == kind) == sum(
            1 for r in rows if r.window.kind == kind
        )

    # Counted once SIGTERM is sent: a tick may start between a count taken before it and the
    # signal, and is then rightly interrupted (its /start ping is sent before the tick runs).
    daemon.proc.send_signal(signal.SIGTERM)
    before_stop = len(httpserver.log)
    assert daemon.proc.wait(timeout=30) == 143
    rows = history(workdir)
    assert rows
    assert all(r.status != "running" for r in rows)
    keys = [r.window_key for r in rows]
    assert len(keys) == len(set(keys))  # each period ran exactly once, ticks included
    logs = daemon.logs()
    events = [line["event"] for line in logs]
    assert "daemon.started" in events
    assert "daemon.stopped" in events
    assert CHECK not in json.dumps(logs)  # the ping URL is a secret
    # Every tick: /start?rid=R, then exactly one outcome ping with the same rid (§9 F).
    pings = [(r.path.removeprefix(f"/{CHECK}"), r.args["rid"]) for r, _ in httpserver.log]
    starts = [rid for path, rid in pings if path == "/start"]
    outcomes = [rid for path, rid in pings if path != "/start"]
    assert len(starts) >= 2  # the catch-up and at least one tick
    assert sorted(outcomes) == sorted(starts)
    # Every tick that ended before the stop succeeded; a tick still running when SIGTERM came
    # is interrupted and says so with /fail (reliability R38), never with a success ping.
    assert {path for path, _ in pings[:before_stop]} <= {"/start", ""}
    assert {path for path, _ in pings[before_stop:]} <= {"/start", "", "/fail"}
    interrupted = {rid for path, rid in pings[before_stop:] if path == "/fail"}
    assert all(pings.index(("/start", rid)) < before_stop for rid in interrupted)
    for path, rid in pings:
        if path == "":
            assert pings.index(("/start", rid)) < pings.index(("", rid))
    # The locks were released: a run-once pass finds nothing to do, and exits 0.
    again = cli(workdir, fake_openai, "run", "--due", "--format", "json")
    assert again.code == 0, again.stderr
    assert again.doc()["due"] == []


def test_sigterm_mid_run_marks_it_interrupted_and_the_next_run_completes_it(
    workdir: Path, fake_openai: FakeOpenAI, spawn: Callable[..., RunningDaemon]
) -> None:
    fake_openai.delay_next(1, 3.0)
    daemon = spawn(workdir, fake_openai)
    wait_for(lambda: any(r.status == "running" for r in history(workdir)), what="a running run")
    began = time.monotonic()
    assert daemon.stop() == 143
    assert time.monotonic() - began < 10  # well inside the 25 s budget
    [row] = history(workdir)
    assert row.status == "interrupted"
    assert "daemon.stopped" in [line["event"] for line in daemon.logs()]
    # The lock of the interrupted period was released: run --due takes it and completes it.
    again = cli(workdir, fake_openai, "run", "--due", "--format", "json")
    assert again.code == 0, again.stderr
    assert row.window_key in [run["window"]["key"] for run in again.doc()["due"]]


def test_a_daemon_down_across_two_daily_fire_times_runs_both_missed_periods_once(
    workdir: Path, fake_openai: FakeOpenAI, spawn: Callable[..., RunningDaemon]
) -> None:
    env = base_env(workdir, fake_openai)
    settings = load_settings(environ=env)
    now = datetime.now(UTC)
    settle = timedelta(hours=settings.reconcile.settle_hours)
    due = {
        kind: windows.due_periods(kind, now=now, settle=settle, completed=())
        for kind in ("daily", "monthly")
    }
    *done_before, missed_1, missed_2 = due["daily"]
    # The daemon ran until two daily fire times ago, then was down.
    with HistoryStore(settings.history.database_url.get_secret_value()) as store:
        deps = wiring.deps(settings, store, RunControl(lambda: datetime.now(UTC), trigger="test"))
        for window in [*done_before, *due["monthly"]]:
            job.run_once(deps, window, now)

    daemon = spawn(workdir, fake_openai)  # real cron schedule: only the catch-up runs
    body = wait_for(lambda: caught_up(daemon), what="the catch-up")
    assert body["last_completed"]["daily"]["key"] == missed_2.key
    assert daemon.stop() == 143
    by_daemon = [r for r in history(workdir) if r.trigger == "daemon"]
    assert sorted(r.window_key for r in by_daemon) == [missed_1.key, missed_2.key]
    assert all(r.status in ("reconciled", "mismatch") for r in by_daemon)
    assert by_daemon[0].started_at > by_daemon[1].started_at  # newest first: oldest ran first


def hang_up_early(port: int, path: str) -> None:
    """Send a request and reset the connection at once, before the answer (SO_LINGER 0)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_clients_hanging_up_leave_no_traceback_and_no_stray_output(
    workdir: Path, fake_openai: FakeOpenAI, spawn: Callable[..., RunningDaemon]
) -> None:
    # Issue 9 item 18: a raw BrokenPipeError traceback for every client that hung up early.
    daemon = spawn(workdir, fake_openai, RECON_LOG_LEVEL="debug")
    wait_for(lambda: caught_up(daemon), what="the catch-up")
    for n in range(40):
        hang_up_early(daemon.port, ("/metrics", "/healthz", "/livez")[n % 3])
    time.sleep(0.5)
    # Liveness and readiness answer; an unrelated probe is still served (item 27).
    assert daemon.get("/livez")[0] == 200
    assert daemon.get("/readyz")[0] == 200
    assert daemon.stop() == 143
    text = daemon.stderr_path.read_text()
    assert [line for line in text.splitlines() if line and not line.startswith("{")] == []
    assert "Traceback" not in text
    # uvicorn closes a reset connection quietly: nothing above debug.
    assert not [line for line in daemon.logs() if line["level"] == "error"]
