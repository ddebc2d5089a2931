"""WebhookTransport against a real HTTP server on 127.0.0.1: payload, signature, outcomes."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
from collections.abc import Iterator

import pytest
import requests
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from recon_job.errors import NotifyError
from recon_job.http import make_session
from recon_job.models import Message
from recon_job.notify.base import HttpOptions
from recon_job.notify.context import PAYLOAD_SCHEMA
from recon_job.notify.detail import webhook_body
from recon_job.notify.render import sample_message
from recon_job.notify.webhook import WebhookOptions, WebhookTransport, verify_signature
from tests.notify.conftest import HOST

TOKEN_PATH = "/hooks/T0KEN-s3cret-path"
SECRET = "whsec-canary-5ecret"
NOW = 1_773_532_800.0
TIMEOUT = (1.0, 0.5)


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with make_session(retries=0) as s:
        yield s


def transport(url: str, session: requests.Session, secret: str | None = SECRET) -> WebhookTransport:
    # allow_private: the receivers of these tests listen on 127.0.0.1.
    return WebhookTransport(
        url,
        session,
        HttpOptions(timeout=TIMEOUT, allow_private=True),
        WebhookOptions(secret=secret),
        clock=lambda: NOW,
    )


def fail(t: WebhookTransport, message: Message | None = None) -> NotifyError:
    with pytest.raises(NotifyError) as caught:
        t.notify(message or sample_message("k1"))
    error = caught.value
    for text in (str(error), repr(error), str(error.__cause__), str(error.__context__)):
        assert TOKEN_PATH not in text
        assert "T0KEN" not in text
        assert SECRET not in text
    return error


def test_it_posts_the_payload_with_an_idempotency_key_and_a_verifiable_signature(
    httpserver: HTTPServer, session: requests.Session
) -> None:
    httpserver.expect_oneshot_request(TOKEN_PATH, method="POST").respond_with_data("", 204)
    message = sample_message("dedupe-123")

    transport(httpserver.url_for(TOKEN_PATH), session).notify(message)

    [(request, _)] = httpserver.log
    body = request.get_data()
    # The payload as it lists things: its complete lists ("detail") are not sent (item 23).
    assert json.loads(body) == json.loads(json.dumps(webhook_body(message.payload)))
    assert "detail" not in json.loads(body)
    assert json.loads(body)["schema"] == PAYLOAD_SCHEMA
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Idempotency-Key"] == "dedupe-123"
    assert request.headers["User-Agent"].startswith("recon-job/")
    assert request.headers["X-Recon-Event"] == "test"
    # The documented receiver recipe, written out independently of the module's helpers.
    timestamp = request.headers["X-Recon-Timestamp"]
    assert timestamp == str(int(NOW))
    expected = (
        "sha256="
        + hmac.new(SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    )
    assert hmac.compare_digest(expected, request.headers["X-Recon-Signature"])
    signed = {"x-recon-timestamp": timestamp, "X-Recon-Signature": expected}
    assert verify_signature(SECRET, signed, body, now=NOW + 10)
    assert not verify_signature(SECRET, signed, body, now=NOW + 3600)
    assert not verify_signature("other", signed, body, now=NOW)
    assert not verify_signature(SECRET, signed, body + b" ", now=NOW)
    assert not verify_signature(SECRET, {"X-Recon-Signature": expected}, body, now=NOW)


def test_without_a_secret_nothing_is_signed(
    httpserver: HTTPServer, session: requests.Session
) -> None:
    httpserver.expect_oneshot_request("/plain", method="POST").respond_with_data("ok")

    transport(httpserver.url_for("/plain"), session, secret=None).notify(sample_message())

    [(request, _)] = httpserver.log
    assert "X-Recon-Signature" not in request.headers
    assert "X-Recon-Timestamp" not in request.headers
    assert SECRET not in repr(transport(httpserver.url_for("/plain"), session))
    assert TOKEN_PATH not in repr(transport(httpserver.url_for(TOKEN_PATH), session))


def test_429_is_transient_with_retry_after_and_a_single_post(
    httpserver: HTTPServer, session: requests.Session
) -> None:
    httpserver.expect_request(TOKEN_PATH).respond_with_data(
        "slow down", 429, headers={"Retry-After": "7"}
    )

    error = fail(transport(httpserver.url_for(TOKEN_PATH), session))

    assert (error.permanent, error.reason, error.retry_after) == (False, "rate_limited", 7.0)
    assert len(httpserver.log) == 1


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_transient(
    httpserver: HTTPServer, session: requests.Session, status: int
) -> None:
    httpserver.expect_request(TOKEN_PATH).respond_with_data("boom", status)

    error = fail(transport(httpserver.url_for(TOKEN_PATH), session))

    assert not error.permanent
    assert error.reason == f"http_{status}"
    assert len(httpserver.log) == 1


@pytest.mark.parametrize("status", [400, 401, 404, 410])
def test_client_errors_are_permanent_and_the_echoed_path_is_masked(
    httpserver: HTTPServer, session: requests.Session, status: int
) -> None:
    # Express-style error pages echo the request path, i.e. the token.
    httpserver.expect_request(TOKEN_PATH).respond_with_data(f"Cannot POST {TOKEN_PATH}", status)

    error = fail(transport(httpserver.url_for(TOKEN_PATH), session))

    assert error.permanent
    assert error.reason == f"http_{status}"
    assert "Cannot POST ***" in str(error)


def test_redirects_are_not_followed_and_are_permanent(
    httpserver: HTTPServer, session: requests.Session
) -> None:
    httpserver.expect_request(TOKEN_PATH).respond_with_data(
        "", 302, headers={"Location": httpserver.url_for("/internal")}
    )
    httpserver.expect_request("/internal").respond_with_data("reached")

    error = fail(transport(httpserver.url_for(TOKEN_PATH), session))

    assert (error.permanent, error.reason) == (True, "redirect")
    assert [r.path for r, _ in httpserver.log] == [TOKEN_PATH]


def test_a_receiver_that_never_answers_is_transient_within_the_timeout(
    silent_port: int, session: requests.Session
) -> None:
    started = time.monotonic()

    error = fail(transport(f"http://{HOST}:{silent_port}{TOKEN_PATH}", session))

    assert (error.permanent, error.reason) == (False, "timeout")
    assert time.monotonic() - started < 3.0
    assert error.__cause__ is None


def test_a_refused_connection_is_transient(session: requests.Session) -> None:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port = s.getsockname()[1]  # closed again before the POST: nothing listens

    error = fail(transport(f"http://{HOST}:{port}{TOKEN_PATH}", session))

    assert (error.permanent, error.reason) == (False, "connection")


def test_a_payload_that_is_not_json_is_permanent(
    httpserver: HTTPServer, session: requests.Session
) -> None:
    message = Message(
        dedupe_key="k",
        event="test",
        group_key="g",
        subject="s",
        text="t",
        html="h",
        slack_text="s",
        payload={"when": object()},
    )

    error = fail(transport(httpserver.url_for(TOKEN_PATH), session), message)

    assert (error.permanent, error.reason) == (True, "payload")
    assert httpserver.log == []


def test_a_handler_sees_the_exact_signed_bytes(
    httpserver: HTTPServer, session: requests.Session
) -> None:
    seen: list[bool] = []

    def check(request: Request) -> Response:
        seen.append(verify_signature(SECRET, request.headers, request.get_data(), now=NOW))
        return Response("", 200)

    httpserver.expect_request("/signed").respond_with_handler(check)

    transport(httpserver.url_for("/signed"), session).notify(sample_message())

    assert seen == [True]
