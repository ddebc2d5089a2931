"""The connect-time address check of the HTTP channels (issue 9 item 24): DNS rebinding.

The settings check a webhook's host when they load; a name can answer differently later. These
tests resolve a public-looking name themselves (DNS cannot be served on 127.0.0.1 otherwise) by
replacing ``socket.getaddrinfo`` for that one name, and point it at real local servers, which
must receive nothing when the address dialled is not public.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from pytest_httpserver import HTTPServer

from recon_job.errors import NotifyError
from recon_job.http import make_session
from recon_job.notify import guard
from recon_job.notify.base import HttpOptions
from recon_job.notify.render import sample_message
from recon_job.notify.slack import SlackTransport
from recon_job.notify.urls import validate_webhook_url
from recon_job.notify.webhook import WebhookTransport
from tests.e2e import cli, workdir_fixture  # noqa: F401
from tests.fakeopenai import FakeOpenAI, fake_openai_fixture  # noqa: F401
from tests.notify.conftest import HOST, PUBLIC_NAME, Certs

REAL_GETADDRINFO = socket.getaddrinfo
#: A public address (example.com's), the answer a rebinding name gives the config check.
PUBLIC_ADDRESS = "93.184.215.14"


class Resolver:
    """``socket.getaddrinfo`` answering for :data:`PUBLIC_NAME` as told, every other name really.

    Each lookup of the name takes the next answer (comma-separated addresses); the last one
    repeats — a TTL of 0 and a changed answer, which is DNS rebinding.
    """

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.lookups = 0

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if str(host).rstrip(".").lower() != PUBLIC_NAME:
            return REAL_GETADDRINFO(host, port, *args, **kwargs)
        answer = self.answers[min(self.lookups, len(self.answers) - 1)]
        self.lookups += 1
        infos: list[Any] = []
        for address in answer.split(","):
            if ":" in address:
                infos.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)))
            else:
                infos.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port))))
        return infos


@pytest.fixture
def tls_receiver(certs: Certs) -> Iterator[HTTPServer]:
    """A real HTTPS server on 127.0.0.1 whose certificate is valid for :data:`PUBLIC_NAME`."""
    with HTTPServer(host=HOST, port=0, ssl_context=certs.named_context()) as server:
        yield server


@pytest.fixture
def session(certs: Certs, monkeypatch: pytest.MonkeyPatch) -> Iterator[requests.Session]:
    """A fresh session trusting the test CA (a channel's session is its own: see HttpOptions)."""
    # requests lets REQUESTS_CA_BUNDLE override a session's ``verify``; set it, not ``verify``.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certs.ca_file))
    with make_session(retries=0) as s:
        yield s


def resolve(monkeypatch: pytest.MonkeyPatch, *answers: str) -> Resolver:
    resolver = Resolver(*answers)
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    return resolver


def refused(transport: WebhookTransport | SlackTransport) -> NotifyError:
    with pytest.raises(NotifyError) as caught:
        transport.notify(sample_message("k1"))
    error = caught.value
    assert (error.permanent, error.reason) == (True, "forbidden_address")
    assert "rebind" not in str(error)  # the URL's path is a secret: never quoted
    return error


def test_a_name_rebound_to_loopback_after_the_config_check_is_refused_at_connect_time(
    monkeypatch: pytest.MonkeyPatch, tls_receiver: HTTPServer, session: requests.Session
) -> None:
    tls_receiver.expect_request("/hooks/rebind").respond_with_data("", 204)
    resolver = resolve(monkeypatch, PUBLIC_ADDRESS, HOST)
    url = f"https://{PUBLIC_NAME}:{tls_receiver.port}/hooks/rebind"

    assert validate_webhook_url(url) == []  # the config-time check saw a public address
    error = refused(WebhookTransport(url, session))

    assert f"{PUBLIC_NAME} resolved to 127.0.0.1, a loopback address" in str(error)
    assert tls_receiver.log == []
    assert resolver.lookups == 2


def test_a_plain_http_receiver_behind_a_private_answer_receives_nothing(
    monkeypatch: pytest.MonkeyPatch, httpserver: HTTPServer, session: requests.Session
) -> None:
    httpserver.expect_request("/hooks/rebind").respond_with_data("", 204)
    resolve(monkeypatch, f"{PUBLIC_ADDRESS},{HOST}")  # one private answer among public ones

    refused(WebhookTransport(f"http://{PUBLIC_NAME}:{httpserver.port}/hooks/rebind", session))

    assert httpserver.log == []


@pytest.mark.parametrize(
    ("answer", "inner"), [("64:ff9b::7f00:1", "127.0.0.1"), ("2002:a9fe:a9fe::", "169.254.169.254")]
)
def test_an_ipv6_answer_embedding_a_private_ipv4_is_refused_at_connect_time(
    monkeypatch: pytest.MonkeyPatch, session: requests.Session, answer: str, inner: str
) -> None:
    resolve(monkeypatch, answer)

    error = refused(WebhookTransport(f"https://{PUBLIC_NAME}/hooks/rebind", session))

    assert f"embedding {inner}" in str(error)


def test_the_slack_channel_is_checked_too_unless_other_hosts_are_allowed(
    monkeypatch: pytest.MonkeyPatch, tls_receiver: HTTPServer, session: requests.Session
) -> None:
    tls_receiver.expect_request("/services/T0/B0/rebind").respond_with_data("ok")
    resolve(monkeypatch, HOST)
    url = f"https://{PUBLIC_NAME}:{tls_receiver.port}/services/T0/B0/rebind"

    refused(SlackTransport(url, session))
    assert tls_receiver.log == []

    # A Slack-compatible receiver on an intranet (allow_other_hosts) is reached as before.
    with make_session(retries=0) as own:
        intranet = SlackTransport(url, own, HttpOptions(allow_private=True))
        intranet.notify(sample_message("k1"))
    assert len(tls_receiver.log) == 1


def test_a_checked_address_is_the_one_dialled_and_tls_still_verifies_the_name(
    monkeypatch: pytest.MonkeyPatch,
    tls_receiver: HTTPServer,
    session: requests.Session,
    certs: Certs,
) -> None:
    # Pretend 127.0.0.1 is public, to see the guarded path deliver: one lookup per connection,
    # the connection made to the address looked up, the certificate checked for the name.
    monkeypatch.setattr(guard, "forbidden_reason", lambda address: None)
    tls_receiver.expect_request("/hooks/ok").respond_with_data("", 204)
    resolver = resolve(monkeypatch, HOST)

    WebhookTransport(f"https://{PUBLIC_NAME}:{tls_receiver.port}/hooks/ok", session).notify(
        sample_message("k1")
    )

    assert len(tls_receiver.log) == 1
    assert resolver.lookups == 1
    # A server whose certificate (same CA) is for 127.0.0.1, not for the name: refused by TLS.
    with HTTPServer(host=HOST, port=0, ssl_context=certs.server_context()) as other:
        other.expect_request("/hooks/ok").respond_with_data("", 204)
        with pytest.raises(NotifyError) as caught:
            WebhookTransport(f"https://{PUBLIC_NAME}:{other.port}/hooks/ok", session).notify(
                sample_message("k1")
            )
        assert other.log == []
    assert caught.value.reason == "connection"


def test_a_run_never_reaches_a_webhook_host_rebound_after_the_settings_were_checked(
    monkeypatch: pytest.MonkeyPatch,
    tls_receiver: HTTPServer,
    certs: Certs,
    fake_openai: FakeOpenAI,
    workdir: Path,
) -> None:
    tls_receiver.expect_request("/hooks/rebind").respond_with_data("", 204)
    resolver = resolve(monkeypatch, PUBLIC_ADDRESS, HOST)
    env = {
        "RECON_WEBHOOK_URL": f"https://{PUBLIC_NAME}:{tls_receiver.port}/hooks/rebind",
        "REQUESTS_CA_BUNDLE": str(certs.ca_file),
    }

    ran = cli(workdir, fake_openai, "alerts", "test", "--channel", "webhook", **env)

    assert ran.code == 2, ran.stderr
    assert "webhook: FAILED (forbidden_address)" in ran.stdout
    assert tls_receiver.log == []
    assert resolver.lookups >= 2
