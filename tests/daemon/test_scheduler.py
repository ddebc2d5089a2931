"""The daemon: catch-up at start, ticks, listeners, pings, SIGTERM — in-process and for real.

The first half drives :class:`recon_job.daemon.scheduler.Daemon` in a thread with a fake ``run_due`` and a
seconds-level test schedule (``RECON_TEST_TICK_SECONDS``). The second half starts the real
``python -m recon_job daemon`` process against the fake OpenAI server over real HTTP on
127.0.0.1 and checks /healthz, /metrics, the exit code after SIGTERM, the history rows and that
the period locks are released (reliability.md R36, R38, §9 F).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
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
from recon_job.config import Settings, load_settings
from recon_job.daemon.scheduler import TICK_ENV, Daemon
from recon_job.errors import StoreError
from recon_job.runtime.due import DueReport
from recon_job.runtime.ping import Pinger
from recon_job.store import HistoryStore
from tests.e2e import cli
from tests.fakeopenai import FakeOpenAI, fake_openai_fixture  # noqa: F401

CHECK = "5b0c9a3e-1111-2222-3333-444455556666"


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or predicate}")


# -- in-process, with a fake run_due ---------------------------------------------------------


def settings_for(tmp_path: Path, **env: str) -> Settings:
    return load_settings(
        environ={
            "RECON_DATABASE_URL": f"sqlite:///{tmp_path / 'history.db'}",
            "RECON_DAEMON__LISTEN": "127.0.0.1:0",
            "RECON_DAEMON__SHUTDOWN_BUDGET_SECONDS": "10",
            **env,
        }
    )


class FakeDue:
    """Records each call's kinds; ``behave(call number, stop)`` may raise or block."""

    def __init__(self, behave: Callable[[int, threading.Event], DueReport] | None = None) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.triggers: list[str] = []
        self._behave = behave

    def __call__(
        self, settings: Settings, *, stop: threading.Event, kinds: Any, trigger: str, **_: Any
    ) -> DueReport:
        self.calls.append(tuple(kinds))
        self.triggers.append(trigger)
        if self._behave is not None:
            return self._behave(len(self.calls), stop)
        return DueReport()


@pytest.fixture(name="fast_ticks")
def fast_ticks_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TICK_ENV, "0.2")


def start(daemon: Daemon) -> Callable[[], int]:
    """Run the daemon in a thread; the returned function joins it and gives the exit code."""
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(daemon.run()), daemon=True)
    thread.start()

    def join() -> int:
        thread.join(timeout=15)
        assert not thread.is_alive(), "the daemon did not stop"
        return codes[0]

    return join


def metric(daemon: Daemon, name: str, **labels: str) -> float | None:
    return daemon.metrics.registry.get_sample_value(name, labels)


@pytest.mark.usefixtures("fast_ticks")
def test_it_catches_up_on_both_kinds_before_the_scheduler_then_ticks_per_kind(
    tmp_path: Path,
) -> None:
    fake = FakeDue()
    daemon = Daemon(settings_for(tmp_path), run_due=fake, channels={}, pinger=Pinger(None))
    join = start(daemon)
    wait_for(lambda: len(fake.calls) >= 4, what="ticks")
    daemon.request_stop(signal.SIGTERM)
    assert join() == 143
    assert fake.calls[0] == ("daily", "monthly")
    assert set(fake.calls[1:]) <= {("daily",), ("monthly",)}
    assert set(fake.triggers) == {"daemon"}
    status, _ = daemon.health.snapshot()
    assert status == 503  # stopped


@pytest.mark.usefixtures("fast_ticks")
def test_a_failing_tick_is_pinged_as_failed_and_the_scheduler_goes_on(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    httpserver.expect_request(re.compile(".*")).respond_with_data("OK")

    def behave(n: int, stop: threading.Event) -> DueReport:
        if n == 2:
            raise StoreError("database is locked", permanent=False, reason="locked")
        return DueReport()

    fake = FakeDue(behave)
    pinger = Pinger(httpserver.url_for(f"/{CHECK}"), backoff=0.0)
    daemon = Daemon(settings_for(tmp_path), run_due=fake, channels={}, pinger=pinger)
    join = start(daemon)
    wait_for(lambda: len(fake.calls) >= 4, what="ticks after the failure")
    daemon.request_stop(signal.SIGINT)
    assert join() == 130
    pings = [
        (r.path.removeprefix(f"/{CHECK}"), r.args["rid"], r.get_data(as_text=True))
        for r, _ in httpserver.log
    ]
    starts = [rid for path, rid, _ in pings if path == "/start"]
    ends = {rid: (path, body) for path, rid, body in pings if path != "/start"}
    assert len(set(starts)) == len(starts)
    failed = [rid for rid, (path, _) in ends.items() if path == "/fail"]
    assert len(failed) == 1
    assert ends[failed[0]][1] == "locked: database is locked"
    # The failing tick's own rid, sent by the EVENT_JOB_ERROR listener. (Which start it was is
    # not asserted: the daily and monthly ticks run concurrently, so arrival order varies.)
    assert failed[0] in starts
    assert any(path == "" for path, _ in ends.values())  # later ticks succeeded again
    assert metric(daemon, "recon_scheduler_events_total", event="job_error") == 1


def test_sigterm_during_the_catch_up_stops_it_at_a_checkpoint(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    httpserver.expect_request(re.compile(".*")).respond_with_data("OK")
    entered = threading.Event()

    def behave(n: int, stop: threading.Event) -> DueReport:
        entered.set()
        assert stop.wait(10)  # a checkpoint: run_due sees the stop event
        return DueReport(interrupted=True, interrupted_run=7)

    fake = FakeDue(behave)
    pinger = Pinger(httpserver.url_for(f"/{CHECK}"), backoff=0.0)
    daemon = Daemon(settings_for(tmp_path), run_due=fake, channels={}, pinger=pinger)
    join = start(daemon)
    assert entered.wait(10)
    began = time.monotonic()
    daemon.request_stop(signal.SIGTERM)
    assert join() == 143
    assert time.monotonic() - began < 3
    assert fake.calls == [("daily", "monthly")]  # the scheduler never started
    paths = [(r.path, r.get_data(as_text=True)) for r, _ in httpserver.log]
    assert paths == [
        (f"/{CHECK}/start", ""),
        (f"/{CHECK}/fail", "interrupted: the daemon is shutting down"),
    ]
    assert metric(daemon, "recon_scheduler_events_total", event="job_interrupted") == 1


@pytest.mark.usefixtures("fast_ticks")
def test_a_tick_still_running_at_the_next_fire_time_is_counted_not_doubled(
    tmp_path: Path,
) -> None:
    running = [0]
    overlap = [False]

    def behave(n: int, stop: threading.Event) -> DueReport:
        running[0] += 1
        overlap[0] = overlap[0] or running[0] > 2  # at most one per kind at a time
        time.sleep(0.0 if n == 1 else 0.7)
        running[0] -= 1
        return DueReport()

    daemon = Daemon(
        settings_for(tmp_path), run_due=FakeDue(behave), channels={}, pinger=Pinger(None)
    )
    join = start(daemon)
    wait_for(
        lambda: metric(daemon, "recon_scheduler_events_total", event="job_max_instances"),
        what="EVENT_JOB_MAX_INSTANCES",
    )
    daemon.request_stop(signal.SIGTERM)
    assert join() == 143
    assert not overlap[0]


# -- the real process --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(workdir: Path, fake: FakeOpenAI, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RECON_", "OPENAI_")) or k.startswith("RECON_TEST_POSTGRES")
    }
    env.update(
        {
            "OPENAI_ADMIN_KEY": fake.admin_key,
            "OPENAI_BASE_URL": fake.base_url,
            "RECON_LOG_PATHS": str(workdir / "logs" / "*.ndjson*"),
            "RECON_DATABASE_URL": f"sqlite:///{workdir / 'history.db'}",
            "RECON_LOG_FORMAT": "json",
            "RECON_OPENAI__MAX_RETRIES": "1",
            "RECON_OPENAI__READ_TIMEOUT_SECONDS": "10",
            **extra,
        }
    )
    return env


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

    assert daemon.stop() == 143
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
    assert {path for path, _ in pings} == {"/start", ""}  # all succeeded
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
        deps = wiring.deps(settings, store=store, clock=lambda: datetime.now(UTC), trigger="test")
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


def test_pending_notifications_are_retried_between_ticks(tmp_path: Path) -> None:
    from recon_job.models import Message
    from recon_job.store import OutboxItem

    settings = settings_for(tmp_path, RECON_DAEMON__RELAY_INTERVAL_SECONDS="1")
    sent: list[Message] = []

    class Receiver:
        channel = "webhook"

        def notify(self, message: Message) -> None:
            sent.append(message)

    message = Message(
        dedupe_key="k-between-ticks",
        event="opened",
        group_key="daily:2026-08-01",
        subject="s",
        text="t",
        html="<p>t</p>",
        slack_text="t",
    )
    with HistoryStore(settings.history.database_url.get_secret_value()) as store:
        store.enqueue([OutboxItem("webhook", message)], now=datetime.now(UTC))
    daemon = Daemon(settings, run_due=FakeDue(), channels={"webhook": Receiver()})
    join = start(daemon)
    wait_for(lambda: sent, timeout=10, what="the relay pass between ticks")
    daemon.request_stop(signal.SIGTERM)
    assert join() == 143
    assert [m.dedupe_key for m in sent] == ["k-between-ticks"]


def test_the_relay_job_exists_when_channels_are_built_later_from_the_settings(
    tmp_path: Path,
) -> None:
    daemon = Daemon(settings_for(tmp_path), run_due=FakeDue())  # channels=None: built in run()
    assert daemon.scheduler.get_job("relay") is not None
    off = Daemon(
        settings_for(tmp_path, RECON_DAEMON__RELAY_INTERVAL_SECONDS="0"), run_due=FakeDue()
    )
    assert off.scheduler.get_job("relay") is None
