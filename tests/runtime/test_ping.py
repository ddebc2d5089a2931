"""Dead-man's-switch pings and the Pushgateway push, against a real HTTP server on 127.0.0.1.

What must hold (reliability.md §6, §9 F): one ``rid`` per run on start and on its outcome, in
order; a monitor that is down, slow or wrong never raises into the job; the ping URL (it holds
the check's UUID) appears in no log line.
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge
from pytest_httpserver import HTTPServer
from structlog.testing import capture_logs
from werkzeug import Request, Response

from recon_job.errors import Interrupted, StoreError
from recon_job.logconfig import configure_logging
from recon_job.runtime.ping import Pinger, push_metrics, secret_values, with_pings

CHECK = "0f1e2d3c-aaaa-bbbb-cccc-9d8e7f6a5b4c"
ANY_PATH = re.compile(".*")


@pytest.fixture(autouse=True)
def _quiet_test_server() -> Iterator[None]:
    # The test server's own access log names the path; only recon-job's lines are under test.
    logger = logging.getLogger("werkzeug")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


def pinger(server: HTTPServer, **options: Any) -> Pinger:
    options.setdefault("backoff", 0.0)
    return Pinger(server.url_for(f"/{CHECK}"), **options)


def received(server: HTTPServer) -> list[tuple[str, str, str]]:
    """(path, rid, body) of every request the server saw, in order."""
    return [
        (request.path, request.args.get("rid", ""), request.get_data(as_text=True))
        for request, _ in server.log
    ]


def events(out: io.StringIO) -> list[dict[str, Any]]:
    """recon-job's own JSON log lines (the test server's access log goes there too)."""
    lines = [json.loads(x) for x in out.getvalue().splitlines() if x.startswith("{")]
    return [line for line in lines if str(line.get("event", "")).startswith("monitor.")]


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert CHECK not in text


def test_start_success_and_fail_carry_the_same_rid_in_order(httpserver: HTTPServer) -> None:
    httpserver.expect_request(ANY_PATH).respond_with_data("OK")
    p = pinger(httpserver)
    with capture_logs() as logs:
        p.start("rid-1")
        p.success("rid-1")
        p.start("rid-2")
        p.fail("rid-2", reason="quota_exhausted: OpenAI says the quota is used up")
        p.fail("rid-3", exit_code=3, reason="deadline")
    assert received(httpserver) == [
        (f"/{CHECK}/start", "rid-1", ""),
        (f"/{CHECK}", "rid-1", ""),
        (f"/{CHECK}/start", "rid-2", ""),
        (f"/{CHECK}/fail", "rid-2", "quota_exhausted: OpenAI says the quota is used up"),
        (f"/{CHECK}/3", "rid-3", "deadline"),
    ]
    assert all(request.method == "POST" for request, _ in httpserver.log)
    assert_no_secret(repr(logs))


def test_a_failing_monitor_is_retried_twice_and_never_raises(httpserver: HTTPServer) -> None:
    httpserver.expect_request(ANY_PATH).respond_with_data("down", status=500)
    out = io.StringIO()
    configure_logging(fmt="json", stream=out)
    pinger(httpserver).success("rid-1")
    assert len(httpserver.log) == 3  # one attempt and two retries
    [line] = events(out)
    assert line["event"] == "monitor.ping.failed"
    assert line["status"] == 500
    assert_no_secret(out.getvalue())


def test_a_monitor_that_does_not_answer_times_out_without_raising(httpserver: HTTPServer) -> None:
    release = threading.Event()

    def slow(request: Request) -> Response:
        release.wait(5)
        return Response("OK")

    httpserver.expect_request(ANY_PATH).respond_with_handler(slow)
    out = io.StringIO()
    configure_logging(fmt="json", stream=out)
    began = time.monotonic()
    pinger(httpserver, timeout=0.4, retries=1).start("rid-1")
    assert time.monotonic() - began < 2.5
    release.set()
    [line] = events(out)
    assert line["event"] == "monitor.ping.failed"
    assert line["error"] == "timeout"
    assert_no_secret(out.getvalue())
    # Let both abandoned requests finish here, not in the next test's server log.
    for _ in range(100):
        if len(httpserver.log) == 2:
            break
        time.sleep(0.02)


def test_an_unreachable_monitor_is_logged_without_its_url() -> None:
    out = io.StringIO()
    configure_logging(fmt="json", stream=out)
    # Port 9 (discard) on loopback: connection refused, and requests' message names the URL.
    Pinger(f"http://127.0.0.1:9/{CHECK}", retries=1, backoff=0.0).fail("rid-1", 2, "x")
    assert "monitor.ping.failed" in out.getvalue()
    assert_no_secret(out.getvalue())


def test_an_unknown_check_is_logged_once_as_a_configuration_problem(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request(ANY_PATH).respond_with_data("not found", status=404)
    p = pinger(httpserver)
    with capture_logs() as logs:
        p.start("rid-1")
        p.success("rid-1")
    assert len(httpserver.log) == 2  # a 404 is not retried
    assert [e["event"] for e in logs] == ["monitor.ping.not_found"]
    assert logs[0]["log_level"] == "error"
    assert_no_secret(repr(logs))


def test_without_a_url_nothing_is_sent() -> None:
    p = Pinger(None)
    assert not p.enabled
    p.start("r")
    p.fail("r", 2, "x")


def test_the_failure_reason_is_redacted_and_cut_short(httpserver: HTTPServer) -> None:
    httpserver.expect_request(ANY_PATH).respond_with_data("OK")
    p = pinger(httpserver, redact=lambda text: text.replace("hunter2", "***"))
    p.fail("rid-1", reason="password hunter2 " + "x" * 2000)
    [(_, _, body)] = received(httpserver)
    assert "hunter2" not in body
    assert body.startswith("password *** ")
    assert len(body) == 500


def test_secret_values_cover_the_url_and_the_check_uuid() -> None:
    assert secret_values(f"https://hc-ping.com/{CHECK}") == (f"https://hc-ping.com/{CHECK}", CHECK)
    assert secret_values(None) == ()


def test_with_pings_brackets_a_successful_run(httpserver: HTTPServer) -> None:
    httpserver.expect_request(ANY_PATH).respond_with_data("OK")
    result = with_pings(Pinger(httpserver.url_for(f"/{CHECK}")), lambda: "report")
    assert result == "report"
    [(start, rid, _), (end, rid2, _)] = received(httpserver)
    assert (start, end) == (f"/{CHECK}/start", f"/{CHECK}")
    assert rid == rid2
    assert len(rid) == 36


def test_with_pings_sends_the_exit_code_of_a_failed_run(httpserver: HTTPServer) -> None:
    httpserver.expect_request(ANY_PATH).respond_with_data("OK")
    p = Pinger(httpserver.url_for(f"/{CHECK}"))
    with_pings(p, lambda: "failed", verdict=lambda r: (3, "deadline"))

    def broken() -> str:
        raise StoreError("database is locked", permanent=False, reason="locked")

    with pytest.raises(StoreError):
        with_pings(p, broken, error_code=lambda e: 3)
    paths = [(path, body) for path, _, body in received(httpserver)]
    assert paths == [
        (f"/{CHECK}/start", ""),
        (f"/{CHECK}/3", "deadline"),
        (f"/{CHECK}/start", ""),
        (f"/{CHECK}/3", "locked: database is locked"),
    ]


def test_with_pings_never_changes_the_result_when_the_monitor_is_down() -> None:
    assert with_pings(Pinger(f"http://127.0.0.1:9/{CHECK}", retries=0), lambda: 42) == 42


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("recon_runs", "runs", ["kind", "status"], registry=registry).labels(
        kind="daily", status="reconciled"
    ).inc()
    Gauge("recon_last_success_timestamp_seconds", "t", ["kind"], registry=registry)  # unset
    return registry


def test_push_metrics_posts_only_the_metrics_that_have_samples(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/metrics/job/recon-job", method="POST").respond_with_data("")
    assert push_metrics(httpserver.url_for("/"), _registry())
    [(request, _)] = httpserver.log
    body = request.get_data(as_text=True)
    assert 'recon_runs_total{kind="daily",status="reconciled"} 1.0' in body
    # A failed run pushes no last-success sample, so the gateway keeps the previous one.
    assert "recon_last_success_timestamp_seconds" not in body


def test_a_failing_pushgateway_never_raises(httpserver: HTTPServer) -> None:
    httpserver.expect_request(ANY_PATH).respond_with_data("no", status=500)
    with capture_logs() as logs:
        assert not push_metrics(httpserver.url_for("/"), _registry())
        assert not push_metrics("http://127.0.0.1:9", _registry())
        assert not push_metrics(None, _registry())
    assert [e["event"] for e in logs] == ["monitor.push.failed", "monitor.push.failed"]


def test_the_stop_signal_is_never_swallowed_as_a_monitoring_failure(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 9 item 20: the shutdown budget cutting a hung ping short must end the process.
    pinger = Pinger(httpserver.url_for(f"/{CHECK}"), retries=0)

    def hung(*args: Any) -> None:
        raise Interrupted("interrupted: the shutdown budget ran out mid-step")

    monkeypatch.setattr(pinger, "_send", hung)
    with pytest.raises(Interrupted):
        pinger.start("rid")
