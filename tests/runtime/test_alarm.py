"""A tick stopped before it recorded a run still tells the channels: once per reason per UTC day.

The receivers are real: a webhook on pytest-httpserver and an SMTP server (aiosmtpd), both on
127.0.0.1. The history is SQLite in memory when it works, and a PostgreSQL port where nothing
listens when it is the problem.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from recon_job.config import Settings, load_settings
from recon_job.errors import ConfigError, StoreError
from recon_job.runtime import Monitor, Plan, Runtime, run_tick
from recon_job.store import HistoryStore
from tests.notify.conftest import Server, SmtpFactory
from tests.runtime.stubs import NOW, clock

HOOK = "/hooks/recon"
#: Nothing listens on port 9 (discard): the history database cannot be reached.
UNREACHABLE = "postgresql+psycopg://recon@127.0.0.1:9/recon"


@pytest.fixture
def receiver() -> Iterator[HTTPServer]:
    with HTTPServer(host="127.0.0.1", port=0) as server:
        server.expect_request(HOOK, method="POST").respond_with_data("", status=204)
        yield server


@pytest.fixture
def store() -> Iterator[HistoryStore]:
    history = HistoryStore("sqlite://")
    yield history
    history.close()


def settings_for(receiver: HTTPServer, smtp: Server, **env: str) -> Settings:
    return load_settings(
        environ={
            "OPENAI_ADMIN_KEY": "sk-admin-test-key-0123456789",
            "RECON_WEBHOOK_URL": receiver.url_for(HOOK),
            "RECON_WEBHOOK__ALLOW_PRIVATE": "true",
            "RECON_SMTP_HOST": "127.0.0.1",
            "RECON_SMTP_PORT": str(smtp.port),
            "RECON_SMTP_SECURITY": "none",
            "RECON_EMAIL_FROM": "recon-job@example.com",
            "RECON_EMAIL_TO": "finance@example.com",
            **env,
        }
    )


def webhooks(receiver: HTTPServer) -> list[dict[str, Any]]:
    return [json.loads(request.get_data()) for request, _ in receiver.log]


def tick(rt: Runtime, at: Any = NOW) -> Exception:
    with pytest.raises((ConfigError, StoreError)) as info:
        run_tick(rt, Plan(relay=True), at)
    return info.value


def test_a_refused_configuration_is_told_once_a_day_through_the_outbox(
    receiver: HTTPServer, smtp_server: SmtpFactory, store: HistoryStore, tmp_path: Path
) -> None:
    smtp = smtp_server()
    missing = tmp_path / "nowhere" / "usage.ndjson"
    settings = settings_for(receiver, smtp, RECON_LOG_PATHS=str(missing))
    rt = Runtime(settings, clock=clock, store=store, monitor=Monitor())

    errors = [tick(rt) for _ in range(5)]  # a daemon ticking every minute

    assert all(isinstance(e, ConfigError) for e in errors)
    [alert] = webhooks(receiver)
    assert alert["event"] == "failed"
    assert alert["error"]["reason"] == "config"
    assert str(missing) in alert["error"]["message"]
    assert alert["window"]["key"] == "daily:2026-03-14"  # the latest settled day
    [(_, recipients, raw)] = smtp.recorder.messages
    assert recipients == ["finance@example.com"]
    assert "Reconciliation failed" in str(message_from_bytes(raw)["Subject"])
    # Through the outbox: recorded as sent, once per channel.
    sent = {(r.row.channel, str(r.row.status)) for r in store.list_notifications()}
    assert sent == {("webhook", "sent"), ("email", "sent")}

    # Another process the same day (a fresh alarm, the same history) enqueues nothing new.
    again = Runtime(settings, clock=clock, store=store, monitor=Monitor())
    tick(again)
    assert len(receiver.log) == 1

    # The next UTC day it is told again.
    tick(rt, NOW + timedelta(days=1))
    assert [a["event"] for a in webhooks(receiver)] == ["failed", "failed"]
    assert len(smtp.recorder.messages) == 2


def test_an_unreachable_history_is_told_directly_once_a_day(
    receiver: HTTPServer, smtp_server: SmtpFactory
) -> None:
    smtp = smtp_server()
    settings = settings_for(receiver, smtp, RECON_DATABASE_URL=UNREACHABLE)
    rt = Runtime(settings, clock=clock, monitor=Monitor())

    errors = [tick(rt) for _ in range(3)]

    assert all(isinstance(e, StoreError) for e in errors)
    [alert] = webhooks(receiver)
    assert alert["event"] == "failed"
    assert alert["error"]["reason"] == errors[0].reason  # type: ignore[attr-defined]
    assert "127.0.0.1" in alert["error"]["message"]
    assert len(smtp.recorder.messages) == 1

    tick(rt, NOW + timedelta(days=1))
    assert len(receiver.log) == 2


def test_one_channel_down_does_not_stop_the_alarm_reaching_the_other(
    receiver: HTTPServer, smtp_server: SmtpFactory
) -> None:
    smtp = smtp_server()
    receiver.clear()
    receiver.expect_request(re.compile(".*")).respond_with_data("down", status=503)
    settings = settings_for(receiver, smtp, RECON_DATABASE_URL=UNREACHABLE)
    tick(Runtime(settings, clock=clock, monitor=Monitor()))
    assert len(receiver.log) == 1
    assert len(smtp.recorder.messages) == 1


def test_no_channel_means_no_alarm_and_the_error_still_raises(
    store: HistoryStore, tmp_path: Path
) -> None:
    settings = load_settings(
        environ={"OPENAI_ADMIN_KEY": "sk-admin-x", "RECON_LOG_PATHS": str(tmp_path / "none")}
    )
    rt = Runtime(settings, clock=clock, store=store, monitor=Monitor())
    assert isinstance(tick(rt), ConfigError)
    assert store.list_notifications() == []
