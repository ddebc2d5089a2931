"""What a tick does around the runs: pings, metrics, the relay pass, the Pushgateway push.

The monitor and the Pushgateway are real HTTP servers on 127.0.0.1; the history is SQLite in
memory; the sources are stubs.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pytest_httpserver import HTTPServer

from recon_job import windows
from recon_job.config import Settings, load_settings
from recon_job.errors import ConfigError, ReconError, UsageApiError
from recon_job.models import Message, RunOutcome, UsageTotals, Window
from recon_job.runtime import DueReport, Monitor, Pinger, Plan, Runtime, run_tick
from recon_job.store import HistoryStore, OutboxItem
from tests.runtime.stubs import NOW, Stub, clock, sources

CHECK = "7a6b5c4d-aaaa-bbbb-cccc-0123456789ab"
DAY = windows.daily(date(2026, 3, 14))
ANY_PATH = re.compile(".*")


class Codes:
    """Run-once exit codes: 2 after a failed run or an error, 143 after a stop, else 0."""

    def of_report(self, report: DueReport) -> int:
        return 143 if report.interrupted else (2 if report.failed else 0)

    def of_error(self, error: ReconError) -> int:
        return 2


class Heard:
    """An observer recording the runs it hears of."""

    def __init__(self) -> None:
        self.runs: list[RunOutcome] = []

    def observe_outcome(self, outcome: RunOutcome) -> None:
        self.runs.append(outcome)


class Receiver:
    """A webhook channel that keeps what it is sent."""

    channel = "webhook"

    def __init__(self) -> None:
        self.sent: list[Message] = []

    def notify(self, message: Message) -> None:
        self.sent.append(message)


@pytest.fixture
def store() -> Iterator[HistoryStore]:
    history = HistoryStore("sqlite://")
    yield history
    history.close()


@pytest.fixture
def settings() -> Settings:
    return load_settings(
        environ={"RECON_SCHEDULE__LOOKBACK_DAYS": "1", "RECON_SCHEDULE__LOOKBACK_MONTHS": "1"}
    )


@pytest.fixture
def monitor(httpserver: HTTPServer) -> HTTPServer:
    httpserver.expect_request(ANY_PATH).respond_with_data("OK")
    return httpserver


def pings(server: HTTPServer) -> list[tuple[str, str]]:
    """(path after the check, body) of every ping, in order."""
    return [
        (request.path.removeprefix(f"/{CHECK}"), request.get_data(as_text=True))
        for request, _ in server.log
    ]


def runtime(settings: Settings, store: HistoryStore, **changes: Any) -> Runtime:
    options: dict[str, Any] = {"channels": {}, "sources": sources(), **changes}
    return Runtime(settings, clock=clock, store=store, **options)


def pinged(server: HTTPServer, **monitor: Any) -> Monitor:
    return Monitor(pinger=Pinger(server.url_for(f"/{CHECK}"), backoff=0.0), **monitor)


def test_a_tick_pings_start_then_success_after_its_runs(
    settings: Settings, store: HistoryStore, monitor: HTTPServer
) -> None:
    report = run_tick(runtime(settings, store, monitor=pinged(monitor)), Plan(), NOW)
    assert report.status == "ok"
    assert pings(monitor) == [("/start", ""), ("", "")]


def test_run_once_mode_pings_the_exit_code_with_the_failed_periods(
    settings: Settings, store: HistoryStore, monitor: HTTPServer
) -> None:
    down = UsageApiError("bad key", permanent=True, reason="unauthorized")
    rt = runtime(
        settings,
        store,
        sources=sources(Stub(error=down)),
        monitor=pinged(monitor, exit_codes=Codes()),
    )
    run_tick(rt, Plan(only=DAY), NOW)
    assert pings(monitor) == [
        ("/start", ""),
        ("/2", "1 run(s) failed: daily:2026-03-14: unauthorized"),
    ]


def test_the_daemon_pings_fail_and_an_interrupted_tick_says_why(
    settings: Settings, store: HistoryStore, monitor: HTTPServer
) -> None:
    stop = threading.Event()
    rt = runtime(
        settings, store, sources=sources(Stub(on_fetch=stop)), stop=stop, monitor=pinged(monitor)
    )
    report = run_tick(
        rt, Plan(only=DAY, stop_reason="interrupted: the daemon is shutting down"), NOW
    )
    assert report.interrupted
    assert pings(monitor) == [("/start", ""), ("/fail", "interrupted: the daemon is shutting down")]


def test_a_tick_asked_for_after_a_stop_runs_and_pings_nothing(
    settings: Settings, store: HistoryStore, monitor: HTTPServer
) -> None:
    stop = threading.Event()
    stop.set()
    report = run_tick(runtime(settings, store, stop=stop, monitor=pinged(monitor)), Plan(), NOW)
    assert report.interrupted
    assert store.list_runs() == []
    assert monitor.log == []


def test_a_configuration_error_is_raised_and_pinged_before_anything_is_recorded(
    store: HistoryStore, monitor: HTTPServer
) -> None:
    no_key = load_settings(environ={"OPENAI_ADMIN_KEY": ""})
    rt = runtime(no_key, store, sources=None, monitor=pinged(monitor, exit_codes=Codes()))
    with pytest.raises(ConfigError, match="OPENAI_ADMIN_KEY"):
        run_tick(rt, Plan(only=DAY), NOW)
    assert store.list_runs() == []
    [start, (path, body)] = pings(monitor)
    assert start == ("/start", "")
    assert path == "/2"
    assert body.startswith("config: ")
    assert "no OpenAI admin key" in body


def test_metrics_and_observers_hear_of_every_run(settings: Settings, store: HistoryStore) -> None:
    heard = Heard()
    rt = runtime(settings, store, monitor=Monitor(observers=(heard,)))
    report = run_tick(rt, Plan(), NOW)
    registry = rt.monitor.metrics.registry
    assert heard.runs == list(report.runs)
    for kind in ("daily", "monthly"):
        labels = {"kind": kind, "status": "reconciled"}
        assert registry.get_sample_value("recon_runs_total", labels) == 1
    assert registry.get_sample_value("recon_last_tick_timestamp_seconds") == NOW.timestamp()


def enqueue_one(store: HistoryStore) -> None:
    message = Message(
        dedupe_key="k-left-pending",
        event="opened",
        group_key="daily:2026-03-01",
        subject="s",
        text="t",
        html="<p>t</p>",
        slack_text="t",
    )
    store.enqueue([OutboxItem("webhook", message)], now=NOW)


@pytest.mark.parametrize("relay", [True, False])
def test_a_relay_pass_sends_what_earlier_runs_left_pending_even_when_nothing_is_due(
    settings: Settings, store: HistoryStore, relay: bool
) -> None:
    enqueue_one(store)
    receiver = Receiver()
    rt = runtime(settings, store, channels={"webhook": receiver})
    report = run_tick(rt, Plan(kinds=(), relay=relay), NOW)
    assert report.status == "nothing-due"
    assert [m.dedupe_key for m in receiver.sent] == (["k-left-pending"] if relay else [])
    sent = rt.monitor.metrics.registry.get_sample_value(
        "recon_alerts_total", {"channel": "webhook", "outcome": "sent"}
    )
    assert sent == (1 if relay else None)


def pushed(server: HTTPServer) -> list[tuple[str, str, dict[str, float]]]:
    """(method, path, {sample: value}) of every push the gateway received."""
    out = []
    for request, _ in server.log:
        families = text_string_to_metric_families(request.get_data(as_text=True))
        samples = {
            s.name + "".join(f",{k}={v}" for k, v in sorted(s.labels.items())): s.value
            for family in families
            for s in family.samples
        }
        out.append((request.method, request.path, samples))
    return out


def test_run_once_mode_pushes_the_gauges_of_the_last_run_of_each_kind(
    settings: Settings, store: HistoryStore, httpserver: HTTPServer
) -> None:
    httpserver.expect_request(re.compile("/metrics/job/recon-job/kind/.*")).respond_with_data("")
    rt = runtime(settings, store, monitor=Monitor(pushgateway=httpserver.url_for("/")))
    report = run_tick(rt, Plan(), NOW)  # one daily and one monthly period are due
    [daily, monthly] = report.runs

    pushes = {path: (method, samples) for method, path, samples in pushed(httpserver)}
    assert set(pushes) == {
        "/metrics/job/recon-job/kind/daily",
        "/metrics/job/recon-job/kind/monthly",
    }
    method, samples = pushes["/metrics/job/recon-job/kind/daily"]
    assert method == "POST"  # replaces only the names pushed: a failure keeps the last success
    assert samples == {
        "recon_last_run_status,status=reconciled": 1.0,
        "recon_last_run_status,status=mismatch": 0.0,
        "recon_last_run_status,status=pending": 0.0,
        "recon_last_run_status,status=failed": 0.0,
        "recon_last_run_timestamp_seconds": daily.finished_at.timestamp(),
        "recon_last_run_duration_seconds": 0.0,
        "recon_last_success_timestamp_seconds": daily.finished_at.timestamp(),
        "recon_last_drift_pct,quantity=cost": 0.0,
        "recon_last_drift_pct,quantity=tokens": 0.0,
        "recon_last_run_groups": 1.0,
        "recon_last_run_mismatches": 0.0,
        "recon_last_run_pending_days": 0.0,
        "recon_last_run_skipped_records": 0.0,
        "recon_last_run_unpriced_models": 0.0,
    }
    assert pushes["/metrics/job/recon-job/kind/monthly"][1]["recon_last_run_groups"] == 28.0
    assert monthly.window.kind == "monthly"


def test_two_failed_run_once_ticks_push_a_failed_status_and_no_counter_or_daemon_series(
    settings: Settings, httpserver: HTTPServer
) -> None:
    # Issue 9 item 26: each run-once process starts its counters at 0, so pushing them made two
    # failures in a row both read failed=1; and a pushed last-tick of 0 fired stale-tick alerts.
    httpserver.expect_request(re.compile("/metrics/.*")).respond_with_data("")
    down = UsageApiError("bad key", permanent=True, reason="unauthorized")
    for _ in range(2):
        with HistoryStore("sqlite://") as fresh:  # a new process: a new registry, a new store
            rt = runtime(
                settings,
                fresh,
                sources=sources(Stub(error=down)),
                monitor=Monitor(pushgateway=httpserver.url_for("/")),
            )
            run_tick(rt, Plan(only=DAY), NOW)

    [(_, path, first), (_, _, second)] = pushed(httpserver)
    assert path == "/metrics/job/recon-job/kind/daily"
    for samples in (first, second):
        assert samples["recon_last_run_status,status=failed"] == 1.0
        assert not [name for name in samples if "_total" in name or "tick" in name]
        # No result: the gateway keeps the last drift and the last success it was told of.
        assert "recon_last_success_timestamp_seconds" not in samples
        assert "recon_last_drift_pct,quantity=cost" not in samples


def test_a_tick_that_ran_nothing_pushes_nothing(
    settings: Settings, store: HistoryStore, httpserver: HTTPServer
) -> None:
    httpserver.expect_request(re.compile(".*")).respond_with_data("")
    rt = runtime(settings, store, monitor=Monitor(pushgateway=httpserver.url_for("/")))
    run_tick(rt, Plan(kinds=()), NOW)
    assert httpserver.log == []


def test_a_due_tick_relays_what_is_pending_first_even_when_its_configuration_is_refused(
    store: HistoryStore,
) -> None:
    # Issue 9 item 19: pending notifications go out whatever else the tick does.
    enqueue_one(store)
    receiver = Receiver()
    no_key = load_settings(environ={"OPENAI_ADMIN_KEY": ""})
    rt = runtime(no_key, store, sources=None, channels={"webhook": receiver})
    with pytest.raises(ConfigError, match="OPENAI_ADMIN_KEY"):
        run_tick(rt, Plan(relay=True), NOW)
    # The pending row first, then the alarm of the refused configuration.
    assert receiver.sent[0].dedupe_key == "k-left-pending"
    assert [m.event for m in receiver.sent] == ["opened", "failed"]


def test_the_relay_pass_comes_before_the_runs(settings: Settings, store: HistoryStore) -> None:
    enqueue_one(store)
    order: list[str] = []

    class Noting(Receiver):
        def notify(self, message: Message) -> None:
            order.append("sent")
            super().notify(message)

    class NotingStub(Stub):
        def fetch(self, window: Window) -> UsageTotals:
            order.append("fetched")
            return super().fetch(window)

    rt = runtime(settings, store, channels={"webhook": Noting()}, sources=sources(NotingStub()))
    report = run_tick(rt, Plan(only=DAY, relay=True), NOW)
    assert order[0] == "sent"
    assert report.relayed is not None
    assert report.relayed.sent == 1
