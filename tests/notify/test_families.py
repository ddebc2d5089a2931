"""Notifications over several usage families (issue 10 item 7): every channel names each
drifting group's family and its own count, lists the families billed that are not logged with
their dollars, and the webhook payload carries ``family`` — delivered to a real SMTP server and
real HTTP receivers on 127.0.0.1."""

from __future__ import annotations

import csv
import email
import email.policy
import io
import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from email.message import EmailMessage

import pytest
import requests
from pytest_httpserver import HTTPServer

from recon_job.compare import reconcile
from recon_job.http import make_session
from recon_job.models import Message, Tolerance, Usage, UsageKey, UsageTotals, Window
from recon_job.notify.base import HttpOptions
from recon_job.notify.context import Notice
from recon_job.notify.detail import CSV_COLUMNS, groups_csv
from recon_job.notify.email import EmailOptions, EmailTransport
from recon_job.notify.render import render_message
from recon_job.notify.slack import SlackTransport
from recon_job.notify.webhook import WebhookOptions, WebhookTransport
from tests.notify.conftest import HOST, SmtpFactory

DAY = date(2026, 8, 1)
WINDOW = Window("daily", DAY, date(2026, 8, 2))
D = Decimal
CHAT = UsageKey(DAY, "gpt-4o")
IMAGES = UsageKey(DAY, "gpt-image-1", family="images")
SPEECH = UsageKey(DAY, "tts-1", family="audio_speeches")
TRANSCRIBE = UsageKey(DAY, "whisper-1", family="audio_transcriptions")


def family_message(max_groups: int = 10) -> Message:
    local = UsageTotals(
        groups={
            CHAT: Usage(900_000, 0, 100_000, 90, D("5.00")),
            IMAGES: Usage(images=10, requests=10, cost=D("0.40")),
            TRANSCRIBE: Usage(seconds=600, requests=3, cost=D("0.06")),
        }
    )
    official = UsageTotals(
        groups={
            CHAT: Usage(1_000_000, 0, 120_000, 100, D("6.00")),
            IMAGES: Usage(images=25, requests=25, cost=D("1.00")),
            TRANSCRIBE: Usage(seconds=1800, requests=9, cost=D("0.18")),
            SPEECH: Usage(characters=826_667, requests=40, cost=D("12.40")),
        },
        unavailable_families=("web_search_calls",),
    )
    result = reconcile(local, official, window=WINDOW, tolerance=Tolerance())
    notice = Notice("opened", WINDOW.key, "fam1", WINDOW, result, run_id=9)
    return render_message(notice, max_groups=max_groups)


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with make_session(retries=0) as s:
        yield s


def test_the_email_groups_drift_by_family_and_names_untracked_dollars(
    smtp_server: SmtpFactory,
) -> None:
    server = smtp_server(mode="plain")
    options = EmailOptions(
        host=HOST,
        port=server.port,
        sender="recon-job <alerts@example.com>",
        recipients=("ops@example.com",),
        security="none",
        timeout=3.0,
        local_hostname="client.test",
    )
    EmailTransport(options).notify(family_message())

    [(_, _, raw)] = server.recorder.messages
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(mail, EmailMessage)
    text_part, html_part = mail.get_body(("plain",)), mail.get_body(("html",))
    assert text_part is not None
    assert html_part is not None
    text, html = text_part.get_content(), html_part.get_content()
    # Completions first, then each family under its own header, counted in its own unit.
    headers = [line for line in text.splitlines() if line.startswith("== ")]
    assert headers == ["== completions ==", "== images ==", "== audio_transcriptions =="]
    assert "2026-08-01 · images · gpt-image-1" in text
    assert any(line.split()[:3] == ["Images", "10", "25"] for line in text.splitlines())
    assert any(
        line.split()[:5] == ["Seconds", "of", "audio", "600", "1,800"] for line in text.splitlines()
    )
    assert "- OpenAI billed $12.40 of audio_speeches you do not log" in text
    assert "compared by cost only): web_search_calls" in text
    assert "OpenAI billed $12.40 of audio_speeches you do not log" in html
    assert ">images</div>" in html


def test_slack_lines_name_the_family_and_its_count(
    httpserver: HTTPServer, session: requests.Session
) -> None:
    path = "/services/T000/B000/families"
    httpserver.expect_oneshot_request(path, method="POST").respond_with_data("ok")
    transport = SlackTransport(
        httpserver.url_for(path), session, HttpOptions(timeout=(1.0, 0.5), allow_private=True)
    )
    transport.notify(family_message())

    [(request, _)] = httpserver.log
    body = json.loads(request.get_data())
    assert "OpenAI billed $12.40 of audio_speeches you do not log." in body["text"]
    # The untracked family is no cause of the tracked drift: not "only at OpenAI", not missing.
    assert "tts-1" not in body["text"]
    assert "31 requests OpenAI counted are not in your logs" in body["text"]
    lines = json.dumps(body["blocks"])
    assert "2026-08-01 images `gpt-image-1`" in lines
    assert "images 10 vs 25" in lines
    assert "seconds of audio 600 vs 1,800" in lines


def test_the_webhook_payload_carries_families(
    httpserver: HTTPServer, session: requests.Session
) -> None:
    path = "/hooks/families"
    httpserver.expect_oneshot_request(path, method="POST").respond_with_data("", status=204)
    transport = WebhookTransport(
        httpserver.url_for(path),
        session,
        HttpOptions(timeout=(1.0, 0.5), allow_private=True),
        WebhookOptions(secret=None),
    )
    transport.notify(family_message())

    [(request, _)] = httpserver.log
    payload = json.loads(request.get_data())
    assert payload["schema"] == "recon-job.alert/v1"
    by_family = {g["family"]: g for g in payload["groups"]}
    assert set(by_family) == {"completions", "images", "audio_transcriptions"}
    assert by_family["images"]["openai"]["images"] == 25
    assert by_family["audio_transcriptions"]["difference"]["seconds"] == -1200
    assert payload["untracked"] == [
        {
            "family": "audio_speeches",
            "input_tokens": 0,
            "cached_tokens": 0,
            "output_tokens": 0,
            "tokens": 0,
            "requests": 40,
            "cost": "12.400000",
            "characters": 826_667,
        }
    ]
    assert payload["unavailable_families"] == ["web_search_calls"]
    assert payload["totals"]["openai"]["cost"] == "7.180000"  # speech is untracked: left out


def test_the_attached_csv_keeps_its_columns_and_adds_the_family_last() -> None:
    attached = groups_csv(family_message(max_groups=1).payload)
    assert attached is not None
    rows = list(csv.reader(io.StringIO(attached[1])))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert rows[0][:2] == ["date", "model"]
    assert rows[0][-1] == "family"
    assert sorted(row[-1] for row in rows[1:]) == [
        "audio_transcriptions",
        "completions",
        "images",
    ]
