"""``recon-job alerts send``: the notifications still pending, sent on demand (issue 9 item 19).

The history is a real SQLite file holding a pending outbox row; the webhook receiver is a real
HTTP server on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from recon_job.notify.render import sample_message
from recon_job.store import HistoryStore, OutboxItem
from tests.e2e import Ran, cli, workdir_fixture  # noqa: F401
from tests.fakeopenai import FakeOpenAI, fake_openai_fixture  # noqa: F401

HOOK = "/hooks/recon"
T0 = datetime(2026, 8, 2, 6, 0, tzinfo=UTC)


@pytest.fixture
def receiver() -> Iterator[HTTPServer]:
    with HTTPServer(host="127.0.0.1", port=0) as server:
        yield server


def pending_row(workdir: Path, key: str = "left-behind") -> None:
    with HistoryStore(f"sqlite:///{workdir / 'history.db'}") as store:
        store.enqueue([OutboxItem("webhook", sample_message(key))], now=T0)


def statuses(workdir: Path) -> list[str]:
    with HistoryStore(f"sqlite:///{workdir / 'history.db'}") as store:
        return [str(r.row.status) for r in store.list_notifications()]


def send(workdir: Path, fake: FakeOpenAI, receiver: HTTPServer, *args: str) -> Ran:
    return cli(
        workdir,
        fake,
        "alerts",
        "send",
        *args,
        RECON_WEBHOOK_URL=receiver.url_for(HOOK),
        RECON_WEBHOOK__ALLOW_PRIVATE="true",
    )


def test_alerts_send_delivers_what_is_pending_and_exits_0(
    fake_openai: FakeOpenAI, workdir: Path, receiver: HTTPServer
) -> None:
    receiver.expect_request(HOOK, method="POST").respond_with_data("", status=204)
    pending_row(workdir)

    ran = send(workdir, fake_openai, receiver)

    assert ran.code == 0, ran.stderr
    assert ran.stdout.endswith("sent 1, given up 0, still pending 0\n")
    [(request, _)] = receiver.log
    assert request.headers["Idempotency-Key"] == "left-behind"
    assert statuses(workdir) == ["sent"]
    again = send(workdir, fake_openai, receiver, "--format", "json")
    assert again.code == 0, again.stderr
    assert again.doc() == {"sent": 0, "failed": 0, "pending": 0, "alerts": []}
    assert len(receiver.log) == 1


def test_alerts_send_exits_3_while_a_notification_still_waits(
    fake_openai: FakeOpenAI, workdir: Path, receiver: HTTPServer
) -> None:
    receiver.expect_request(HOOK, method="POST").respond_with_data("down", status=503)
    pending_row(workdir)

    ran = send(workdir, fake_openai, receiver, "--format", "json")

    assert ran.code == 3, ran.stderr
    doc = ran.doc()
    assert (doc["sent"], doc["failed"], doc["pending"]) == (0, 0, 1)
    assert statuses(workdir) == ["pending"]


def test_alerts_send_exits_2_when_a_notification_is_given_up(
    fake_openai: FakeOpenAI, workdir: Path, receiver: HTTPServer
) -> None:
    receiver.expect_request(HOOK, method="POST").respond_with_data("gone", status=404)
    pending_row(workdir)

    ran = send(workdir, fake_openai, receiver)

    assert ran.code == 2, ran.stderr
    assert "given up 1" in ran.stdout
    assert statuses(workdir) == ["dead"]


def test_alerts_send_without_a_channel_or_a_history_exits_2(
    fake_openai: FakeOpenAI, workdir: Path, receiver: HTTPServer
) -> None:
    no_channel = cli(workdir, fake_openai, "alerts", "send")
    assert no_channel.code == 2
    assert "no notification channel is configured" in no_channel.stderr

    no_history = send(workdir, fake_openai, receiver)
    assert no_history.code == 2
    assert "no history database" in no_history.stderr
    assert not (workdir / "history.db").exists()  # a command that sends never creates one
