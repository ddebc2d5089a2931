"""The daemon in-process: catch-up at start, ticks, listeners, pings, stopping.

These drive :class:`recon_job.daemon.Daemon` in a thread, its ticks running the real run loop
around a fake period runner, on a seconds-level test schedule (``RECON_TEST_TICK_SECONDS``).
The real process is in ``test_scheduler_e2e.py``.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from recon_job import job
from recon_job.config import Settings, load_settings
from recon_job.daemon import TICK_ENV, Daemon, utcnow
from recon_job.errors import StoreError
from recon_job.models import Message
from recon_job.notify.base import Transport
from recon_job.runtime import DueReport, Monitor, Pinger, Plan, Runtime
from recon_job.store import HistoryStore, OutboxItem

CHECK = "5b0c9a3e-1111-2222-3333-444455556666"


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or predicate}")


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
    """A period runner recording each call's kinds; ``behave(call number, stop)`` may raise or
    block."""

    def __init__(self, behave: Callable[[int, threading.Event], DueReport] | None = None) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.triggers: list[str] = []
        self._behave = behave

    def __call__(self, settings: Settings, deps: job.Deps, plan: Plan, now: datetime) -> DueReport:
        self.calls.append(tuple(plan.kinds))
        self.triggers.append(deps.trigger)
        if self._behave is not None:
            assert deps.stop is not None
            return self._behave(len(self.calls), deps.stop)
        return DueReport()


#: The fake runner never reads a source; these only let the run's dependencies be built.
NO_SOURCES = job.Sources(local=(), official=())


def daemon_for(
    settings: Settings,
    fake: FakeDue,
    *,
    channels: dict[str, Transport] | None = None,
    pinger: Pinger | None = None,
) -> Daemon:
    """A daemon whose ticks run ``fake`` instead of the real periods."""
    runtime = Runtime(
        settings,
        clock=utcnow,
        channels=channels,
        sources=NO_SOURCES,
        monitor=Monitor(pinger=pinger or Pinger(None)),
        periods=fake,
    )
    return Daemon(runtime)


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
    daemon = daemon_for(settings_for(tmp_path), fake, channels={})
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
    daemon = daemon_for(settings_for(tmp_path), fake, channels={}, pinger=pinger)
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
    daemon = daemon_for(settings_for(tmp_path), fake, channels={}, pinger=pinger)
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

    daemon = daemon_for(settings_for(tmp_path), FakeDue(behave), channels={})
    join = start(daemon)
    wait_for(
        lambda: metric(daemon, "recon_scheduler_events_total", event="job_max_instances"),
        what="EVENT_JOB_MAX_INSTANCES",
    )
    daemon.request_stop(signal.SIGTERM)
    assert join() == 143
    assert not overlap[0]


def test_pending_notifications_are_retried_between_ticks(tmp_path: Path) -> None:
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
    daemon = daemon_for(settings, FakeDue(), channels={"webhook": Receiver()})
    join = start(daemon)
    wait_for(lambda: sent, timeout=10, what="the relay pass between ticks")
    daemon.request_stop(signal.SIGTERM)
    assert join() == 143
    assert [m.dedupe_key for m in sent] == ["k-between-ticks"]


def test_the_relay_job_exists_when_channels_are_built_later_from_the_settings(
    tmp_path: Path,
) -> None:
    daemon = daemon_for(settings_for(tmp_path), FakeDue())  # channels=None: built in run()
    assert daemon.scheduler.get_job("relay") is not None
    off = daemon_for(settings_for(tmp_path, RECON_DAEMON__RELAY_INTERVAL_SECONDS="0"), FakeDue())
    assert off.scheduler.get_job("relay") is None
