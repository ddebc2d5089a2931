"""Issue 12 through the outbox to real receivers: a drift alert that says why, and finding
notices told once per subject and channel — a real SMTP server (aiosmtpd), a real HTTP server
for Slack and the webhook, a real history database (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.message import EmailMessage

import pytest
import requests
from pytest_httpserver import HTTPServer

from recon_job.delivery import Alerting, RunFacts, deliver, plan_findings, plan_run
from recon_job.findings import PriceFinding
from recon_job.http import make_session
from recon_job.notify.base import HttpOptions, Transport
from recon_job.notify.email import EmailOptions, EmailTransport
from recon_job.notify.findings import FindingNotice, price_notices
from recon_job.notify.slack import SlackTransport
from recon_job.notify.webhook import WebhookOptions, WebhookTransport, verify_signature
from recon_job.store import HistoryStore
from tests.notify.conftest import HOST, PASSWORD, USERNAME, Certs, SmtpFactory
from tests.notify.diagnosed import SENTENCES, diagnosed_result

T0 = datetime(2026, 12, 4, 6, 0, tzinfo=UTC)
SLACK_PATH = "/services/T000/B000/slack-canary-path"
HOOK_PATH = "/hooks/hook-canary-path"
HOOK_SECRET = "whsec_canary_0123456789"
#: Everything that must never appear in a message, a payload or a request body.
SECRETS = ("slack-canary-path", "hook-canary-path", HOOK_SECRET, PASSWORD)
STALE = PriceFinding(
    "gpt-5",
    "cached input",
    "standard",
    Decimal("0.125"),
    Decimal("0.25"),
    "1M tokens",
    date(2026, 8, 7),
)


@dataclass
class Channels:
    """The three channels, each to a real server, and what the servers received."""

    alerting: Alerting
    smtp: SmtpFactory
    receiver: HTTPServer
    smtp_messages: list[tuple[str, list[str], bytes]]

    def mails(self) -> list[EmailMessage]:
        out = []
        for _, _, raw in self.smtp_messages:
            mail = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(mail, EmailMessage)
            out.append(mail)
        return out

    def posts(self, path: str) -> list[bytes]:
        return [request.get_data() for request, _ in self.receiver.log if request.path == path]


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with make_session(retries=0) as s:
        yield s


@pytest.fixture
def channels(
    smtp_server: SmtpFactory, certs: Certs, httpserver: HTTPServer, session: requests.Session
) -> Channels:
    smtp = smtp_server(mode="starttls", auth=True)
    httpserver.expect_request(SLACK_PATH, method="POST").respond_with_data("ok")
    httpserver.expect_request(HOOK_PATH, method="POST").respond_with_data("", status=204)
    local = HttpOptions(timeout=(2.0, 2.0), allow_private=True)
    transports: dict[str, Transport] = {
        "email": EmailTransport(
            EmailOptions(
                host=HOST,
                port=smtp.port,
                sender="recon-job <alerts@example.com>",
                recipients=("finance@example.com",),
                security="starttls",
                username=USERNAME,
                password=PASSWORD,
                timeout=3.0,
                cafile=str(certs.ca_file),
                local_hostname="client.test",
            )
        ),
        "slack": SlackTransport(httpserver.url_for(SLACK_PATH), session, local),
        "webhook": WebhookTransport(
            httpserver.url_for(HOOK_PATH), session, local, WebhookOptions(secret=HOOK_SECRET)
        ),
    }
    return Channels(Alerting(transports), smtp_server, httpserver, smtp.recorder.messages)


def _send(channels: Channels, store: HistoryStore, now: datetime) -> None:
    report = deliver(channels.alerting, store, now=now, clock=lambda: now)
    assert report.dead == 0, report.alerts()
    assert report.deferred == 0, report.alerts()


def _no_secret(*texts: str | bytes) -> None:
    for text in texts:
        shown = text.decode("utf-8") if isinstance(text, bytes) else text
        for secret in SECRETS:
            assert secret not in shown


def test_a_drift_alert_with_a_diagnosis_says_why_on_every_channel(
    channels: Channels, store: HistoryStore
) -> None:
    result = diagnosed_result()
    run_id = store.start_run(result.window, started_at=T0, trigger="test")
    planned = plan_run(channels.alerting, store, RunFacts(result.window, run_id, result), now=T0)
    assert sorted(s["channel"] for s in planned.shown) == ["email", "slack", "webhook"]
    store.enqueue(planned.items, now=T0)

    _send(channels, store, T0)

    [mail] = channels.mails()
    text_part, html_part = mail.get_body(("plain",)), mail.get_body(("html",))
    assert text_part is not None
    assert html_part is not None
    text, html = text_part.get_content(), html_part.get_content()
    assert f"- {SENTENCES[0]}" in text
    assert "  Requests missing or extra locally  -$3.36" in text
    assert "  Prices                             -$0.75" in text
    assert "  Token mix                          +$0.03" in text
    assert SENTENCES[0] in html
    assert "<strong>Requests missing or extra locally</strong>" in html
    assert "-$3.36" in html
    [slack_raw] = channels.posts(SLACK_PATH)
    slack = json.loads(slack_raw)
    assert f"› {SENTENCES[1]}" in slack["text"]
    assert (
        "Requests missing or extra locally -$3.36; Prices -$0.75; Token mix +$0.03"
        in (slack["blocks"][1]["text"]["text"])
    )
    [(hook_request, _)] = [(r, x) for r, x in channels.receiver.log if r.path == HOOK_PATH]
    hook_body = hook_request.get_data()
    assert verify_signature(HOOK_SECRET, dict(hook_request.headers), hook_body)
    hook = json.loads(hook_body)
    assert hook["event"] == "opened"
    assert hook["diagnosis"]["summary"] == list(SENTENCES[:5])
    assert [(p["name"], p["amount"]) for p in hook["diagnosis"]["bridge"]["parts"]] == [
        ("coverage", "-3.360000"),
        ("price", "-0.750000"),
        ("token_mix", "0.030000"),
    ]
    _no_secret(*(raw for _, _, raw in channels.smtp_messages), slack_raw, hook_body)


def test_a_price_change_is_told_once_per_channel_and_a_second_plan_plans_nothing(
    channels: Channels, store: HistoryStore
) -> None:
    notices = price_notices([STALE])

    first = plan_findings(channels.alerting, store, notices, run_id=None, now=T0)
    assert sorted((s["channel"], s["event"]) for s in first.shown) == [
        ("email", "price_changed"),
        ("slack", "price_changed"),
        ("webhook", "price_changed"),
    ]
    assert {i.message.group_key for i in first.items} == {"price:gpt-5:cached input:standard:0.125"}
    assert len(store.enqueue(first.items, now=T0)) == 3
    _send(channels, store, T0)

    later = T0 + timedelta(days=1)
    again = plan_findings(channels.alerting, store, notices, run_id=None, now=later)
    assert again.items == ()
    assert again.shown == ()
    # Even the first plan enqueued a second time adds no row: one per (channel, dedupe key).
    assert store.enqueue(first.items, now=later) == []
    _send(channels, store, later)

    [mail] = channels.mails()
    assert mail["Subject"].startswith("[recon-job] OpenAI bills another price · gpt-5")
    assert mail["X-Recon-Event"] == "price_changed"
    text_part = mail.get_body(("plain",))
    assert text_part is not None
    sentence = "OpenAI bills gpt-5 cached input at $0.125/1M since 2026-08-07; your table: $0.25"
    assert sentence in text_part.get_content()
    [slack_raw] = channels.posts(SLACK_PATH)
    assert sentence in json.loads(slack_raw)["text"]
    [hook_raw] = channels.posts(HOOK_PATH)
    hook = json.loads(hook_raw)
    assert hook["schema"] == "recon-job.finding/v1"
    assert hook["event"] == "price_changed"
    assert hook["finding"]["billed"] == "0.125"
    assert hook["finding"]["table"] == "0.25"
    _no_secret(*(raw for _, _, raw in channels.smtp_messages), slack_raw, hook_raw)


def test_a_finding_still_in_the_outbox_is_never_enqueued_twice(
    channels: Channels, store: HistoryStore
) -> None:
    notices = price_notices([STALE])
    first = plan_findings(channels.alerting, store, notices, run_id=None, now=T0)
    assert len(store.enqueue(first.items, now=T0)) == 3

    # A rerun before the relay sent anything: the rows are planned, and skipped on insert.
    rerun = plan_findings(channels.alerting, store, notices, run_id=None, now=T0)
    assert store.enqueue(rerun.items, now=T0) == []
    _send(channels, store, T0)

    assert len(channels.mails()) == 1
    assert len(channels.posts(SLACK_PATH)) == 1
    assert len(channels.posts(HOOK_PATH)) == 1


def test_a_new_price_for_the_same_piece_and_a_new_channel_are_told(
    channels: Channels, store: HistoryStore
) -> None:
    only_email = Alerting({"email": channels.alerting.channels["email"]})
    told = plan_findings(only_email, store, price_notices([STALE]), run_id=None, now=T0)
    store.enqueue(told.items, now=T0)
    _send(channels, store, T0)

    cheaper = PriceFinding(
        "gpt-5",
        "cached input",
        "standard",
        Decimal("0.1"),
        Decimal("0.25"),
        "1M tokens",
        date(2026, 11, 1),
    )
    notices = price_notices([STALE, cheaper])
    planned = plan_findings(channels.alerting, store, notices, run_id=None, now=T0)

    assert sorted((i.channel, i.message.group_key) for i in planned.items) == [
        ("email", "price:gpt-5:cached input:standard:0.1"),
        ("slack", "price:gpt-5:cached input:standard:0.1"),
        ("slack", "price:gpt-5:cached input:standard:0.125"),
        ("webhook", "price:gpt-5:cached input:standard:0.1"),
        ("webhook", "price:gpt-5:cached input:standard:0.125"),
    ]


def test_the_same_subject_twice_in_one_run_is_told_once(
    channels: Channels, store: HistoryStore
) -> None:
    notice = FindingNotice("trend", "trend:completions:gpt-4o:2026-11-14", "t", ("line",))
    run_id = store.start_run(diagnosed_result().window, started_at=T0, trigger="test")
    planned = plan_findings(channels.alerting, store, [notice, notice], run_id=run_id, now=T0)

    assert len(planned.items) == 3
    assert all(i.run_id == run_id for i in planned.items)
    assert all(i.message.payload["run_id"] == run_id for i in planned.items)
    assert len(store.enqueue(planned.items, now=T0)) == 3


def test_no_channel_plans_nothing(store: HistoryStore) -> None:
    planned = plan_findings(Alerting(), store, price_notices([STALE]), run_id=None, now=T0)

    assert planned.items == ()
    assert planned.shown == ()
