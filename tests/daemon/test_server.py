"""The probes and /metrics over HTTP: when the daemon reports itself unhealthy, what Prometheus
reads, and what a client hanging up leaves in the log.

The server is real (the web application on uvicorn, 127.0.0.1, a free port); the clock is a
fixed value.
"""

from __future__ import annotations

import json
import math
import socket
import struct
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from recon_job.daemon.health import HealthState, RunInfo
from recon_job.daemon.server import HealthServer
from recon_job.errors import ConfigError
from recon_job.logconfig import library_defaults
from recon_job.runtime import Drift, Metrics

NOW = datetime(2026, 3, 16, 12, 0, tzinfo=UTC)
SETTLE = timedelta(hours=24)
MARGIN = timedelta(hours=36)
LONG_AGO = NOW - timedelta(days=30)


def healthy_state(started: datetime = LONG_AGO) -> HealthState:
    state = HealthState(
        clock=lambda: started,
        settle=SETTLE,
        overdue_after=MARGIN,
        next_runs=lambda: {"daily": NOW + timedelta(hours=18), "monthly": None},
    )
    state._clock = lambda: NOW
    state.set_scheduler("running")
    state.tick(NOW - timedelta(minutes=5))
    state.record("daily", RunInfo("daily:2026-03-14", "mismatch", NOW - timedelta(hours=6)))
    state.record("daily", RunInfo("daily:2026-03-15", "failed", NOW - timedelta(hours=5)))
    state.record("monthly", RunInfo("monthly:2026-02", "reconciled", NOW - timedelta(days=10)))
    return state


@pytest.fixture(name="serve")
def serve_fixture() -> Iterator[Any]:
    servers: list[HealthServer] = []

    def start(state: HealthState, metrics: Metrics | None = None) -> str:
        server = HealthServer("127.0.0.1", 0, state, metrics or Metrics()).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.port}"

    yield start
    for server in servers:
        server.stop()


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our own server
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


def test_healthz_is_200_with_the_last_runs_while_the_scheduler_runs(serve: Any) -> None:
    base = serve(healthy_state())
    code, content_type, text = get(f"{base}/healthz")
    assert code == 200
    assert content_type == "application/json"
    body = json.loads(text)
    assert body["status"] == "ok"
    assert body["scheduler"] == "running"
    assert body["last_tick"] == "2026-03-16T11:55:00+00:00"
    assert body["last_run"]["daily"] == {
        "key": "daily:2026-03-15",
        "status": "failed",
        "finished_at": "2026-03-16T07:00:00+00:00",
    }
    assert body["last_completed"]["daily"]["key"] == "daily:2026-03-14"
    assert body["last_run"]["monthly"]["key"] == "monthly:2026-02"
    assert body["next_run"] == {"daily": "2026-03-17T06:00:00+00:00", "monthly": None}
    assert body["overdue"] == []


@pytest.mark.parametrize("scheduler", ["stopping", "stopped"])
def test_healthz_is_503_when_the_scheduler_is_not_running(serve: Any, scheduler: str) -> None:
    state = healthy_state()
    state.set_scheduler(scheduler)
    code, _, text = get(f"{serve(state)}/healthz")
    assert code == 503
    assert json.loads(text)["problems"] == [f"scheduler is {scheduler}"]


def test_healthz_is_200_while_the_start_up_catch_up_runs(serve: Any) -> None:
    state = healthy_state()
    state.set_scheduler("starting")
    assert get(f"{serve(state)}/healthz")[0] == 200


def test_healthz_is_503_when_a_period_is_overdue(serve: Any) -> None:
    state = healthy_state()
    state._clock = lambda: NOW + timedelta(days=2)
    code, _, text = get(f"{serve(state)}/healthz")
    assert code == 503
    body = json.loads(text)
    assert body["status"] == "unhealthy"
    assert body["overdue"] == ["daily"]


def test_metrics_are_prometheus_text_with_every_series(serve: Any) -> None:
    metrics = Metrics()
    end = NOW - timedelta(hours=1)
    metrics.observe_run(
        "daily", "mismatch", finished_at=end, drift=Drift(cost_pct="-12.5", tokens_pct=None)
    )
    metrics.observe_run(
        "monthly",
        "reconciled",
        finished_at=end,
        drift=Drift(cost_pct=None, tokens_pct="0.1", local={"cost": 3, "tokens": 10}),
    )
    metrics.observe_run("daily", "failed", finished_at=end)
    metrics.observe_alert("slack", "sent")
    metrics.observe_alert("email", "failed")
    metrics.scheduler_event("job_missed")
    metrics.tick(NOW)
    code, content_type, text = get(f"{serve(healthy_state(), metrics)}/metrics")
    assert code == 200
    assert content_type.startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert value("recon_runs_total", kind="daily", status="mismatch") == 1
    assert value("recon_runs_total", kind="daily", status="failed") == 1
    assert value("recon_runs_total", kind="monthly", status="pending") == 0
    assert value("recon_last_drift_pct", kind="daily", quantity="cost") == -12.5
    assert value("recon_last_drift_pct", kind="daily", quantity="tokens") == 0
    assert math.isinf(value("recon_last_drift_pct", kind="monthly", quantity="cost"))
    assert value("recon_alerts_total", channel="slack", outcome="sent") == 1
    assert value("recon_alerts_total", channel="email", outcome="failed") == 1
    assert value("recon_last_success_timestamp_seconds", kind="daily") == end.timestamp()
    assert value("recon_scheduler_events_total", event="job_missed") == 1
    assert value("recon_scheduler_events_total", event="job_error") == 0
    assert value("recon_last_tick_timestamp_seconds") == NOW.timestamp()


def test_other_paths_are_404(serve: Any) -> None:
    assert get(f"{serve(healthy_state())}/admin")[0] == 404


def test_a_port_in_use_is_a_configuration_error(serve: Any) -> None:
    base = serve(healthy_state())
    port = int(base.rsplit(":", 1)[1])
    with pytest.raises(ConfigError, match=r"web\.listen: cannot listen on 127\.0\.0\.1"):
        HealthServer("127.0.0.1", port, healthy_state(), Metrics())


# --- /livez and /readyz: restart and routing only for what they can fix (issue 9 item 27) ------


def overdue_state() -> HealthState:
    state = healthy_state()
    state._clock = lambda: NOW + timedelta(days=2)  # OpenAI down for two days, say
    return state


def test_an_overdue_period_fails_healthz_but_neither_livez_nor_readyz(serve: Any) -> None:
    base = serve(overdue_state())

    assert get(f"{base}/healthz")[0] == 503
    code, content_type, text = get(f"{base}/livez")
    assert (code, content_type) == (200, "application/json")
    assert json.loads(text)["status"] == "alive"
    code, _, text = get(f"{base}/readyz")
    assert code == 200
    assert json.loads(text) == {"status": "ready", "scheduler": "running", "overdue": ["daily"]}


@pytest.mark.parametrize(
    ("scheduler", "livez", "readyz"),
    [("starting", 200, 200), ("running", 200, 200), ("stopping", 200, 503), ("stopped", 503, 503)],
)
def test_livez_and_readyz_follow_the_scheduler(
    serve: Any, scheduler: str, livez: int, readyz: int
) -> None:
    state = healthy_state()
    state.set_scheduler(scheduler)
    base = serve(state)
    assert get(f"{base}/livez")[0] == livez
    assert get(f"{base}/readyz")[0] == readyz


# --- clients that hang up (issue 9 item 18) --------------------------------------------------


def hang_up_early(port: int, path: str = "/metrics") -> None:
    """Ask, then reset the connection at once (SO_LINGER 0), before the answer is written."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@pytest.fixture
def debug_logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """Every event, debug included, whatever level an earlier test configured."""
    structlog.reset_defaults()
    try:
        with capture_logs() as logs:
            yield logs
    finally:
        structlog.reset_defaults()
        library_defaults()


def test_a_client_hanging_up_early_leaves_no_traceback_and_no_warning(
    capfd: pytest.CaptureFixture[str], debug_logs: list[MutableMapping[str, Any]]
) -> None:
    metrics = Metrics()
    for n in range(20_000):  # an answer that takes a while to render: the reset comes first
        metrics.observe_alert(f"channel-{n:05d}", "sent")
    server = HealthServer("127.0.0.1", 0, healthy_state(), metrics).start()
    logs = debug_logs
    try:
        for _ in range(3):
            hang_up_early(server.port)
        time.sleep(0.5)
        assert get(f"http://127.0.0.1:{server.port}/livez")[0] == 200  # still serving
    finally:
        server.stop()
    assert not [e for e in logs if e["log_level"] in ("error", "warning")]
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert "BrokenPipeError" not in err
    assert "ConnectionResetError" not in err
