"""Message size stays bounded whatever the drift (issue 9 item 23), measured at real receivers.

5,001 drifting groups, each a model only your logs know (5,002 likely causes), sent through a
real SMTP server (aiosmtpd) and a real HTTP server standing in for Slack and a webhook
receiver. Before the caps the Slack fallback text was 1.5 MB, the webhook body 1.5 MB and the
email 3.2 MB.
"""

from __future__ import annotations

import csv
import email
import email.policy
import io
import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal

import pytest
import requests
from pytest_httpserver import HTTPServer

from recon_job.compare import reconcile
from recon_job.http import make_session
from recon_job.models import Message, Tolerance, Usage, UsageKey, UsageTotals, Window
from recon_job.notify.base import HttpOptions
from recon_job.notify.context import Notice
from recon_job.notify.detail import CSV_COLUMNS
from recon_job.notify.email import EmailOptions, EmailTransport
from recon_job.notify.render import render_message
from recon_job.notify.slack import MAX_BLOCKS, MAX_SECTION, MAX_TEXT, SlackTransport
from recon_job.notify.webhook import WebhookOptions, WebhookTransport
from tests.notify.conftest import HOST, SmtpFactory

DAY = date(2026, 3, 14)
WINDOW = Window("daily", DAY, date(2026, 3, 15))
GROUPS = 5_001
LOCAL = HttpOptions(timeout=(2.0, 10.0), allow_private=True)


@pytest.fixture(scope="module")
def huge() -> Message:
    local = UsageTotals(
        groups={
            UsageKey(DAY, f"model-{i:05d}", "proj_app"): Usage(
                100_000, 0, 25_000, 100, Decimal("5.25") + Decimal(i) / 1000
            )
            for i in range(GROUPS)
        }
    )
    result = reconcile(local, UsageTotals(), window=WINDOW, tolerance=Tolerance())
    assert len(result.mismatches) == GROUPS
    resolved = tuple(f"2026-03-14 old-{i}" for i in range(GROUPS))
    return render_message(Notice("opened", WINDOW.key, "huge", WINDOW, result, resolved=resolved))


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with make_session(retries=0) as s:
        yield s


def test_the_slack_post_stays_within_slacks_documented_limits(
    huge: Message, httpserver: HTTPServer, session: requests.Session
) -> None:
    httpserver.expect_request("/services/T0/B0/huge", method="POST").respond_with_data("ok")

    SlackTransport(httpserver.url_for("/services/T0/B0/huge"), session, LOCAL).notify(huge)

    [(request, _)] = httpserver.log
    received = request.get_data()
    body = json.loads(received)
    assert len(received) < 32_000  # it was 1.5 MB
    assert len(body["text"]) <= MAX_TEXT
    assert "…and 4,992 more likely causes" in body["text"]
    assert len(body["blocks"]) <= MAX_BLOCKS
    sections = [b["text"]["text"] for b in body["blocks"] if "text" in b and b["type"] == "section"]
    assert all(len(s) <= MAX_SECTION for s in sections)
    groups = next(s for s in sections if s.startswith("*5,001 groups out of tolerance*"))
    assert groups.splitlines()[-1].startswith("…and ")
    resolved = next(s for s in sections if s.startswith("*Back within tolerance*"))
    assert resolved.endswith("…and 4,981 more")


def test_the_webhook_sends_the_top_groups_and_counts_the_rest(
    huge: Message, httpserver: HTTPServer, session: requests.Session
) -> None:
    httpserver.expect_request("/hooks/huge", method="POST").respond_with_data("", 204)

    WebhookTransport(httpserver.url_for("/hooks/huge"), session, LOCAL).notify(huge)

    [(request, _)] = httpserver.log
    received = request.get_data()
    body = json.loads(received)
    assert len(received) < 32_000  # it was 1.5 MB with 5,002 likely_causes
    assert body["groups_total"] == GROUPS
    assert len(body["groups"]) == 10
    assert len(body["likely_causes"]) == 10
    assert len(body["resolved"]) == 20
    assert body["omitted"] == {
        "groups": GROUPS - 10,
        "likely_causes": GROUPS + 1 - 10,
        "resolved": GROUPS - 20,
        "unpriced_models": 0,
    }
    assert body["full_detail"] is False
    assert "detail" not in body
    # The exact decimal strings of run --format json, largest cost difference first.
    assert body["groups"][0]["model"] == "model-05000"
    assert body["groups"][0]["local"]["cost"] == "10.250000"


def test_the_full_detail_flag_sends_every_entry(
    huge: Message, httpserver: HTTPServer, session: requests.Session
) -> None:
    httpserver.expect_request("/hooks/huge", method="POST").respond_with_data("", 204)
    full = WebhookOptions(full_detail=True)

    WebhookTransport(httpserver.url_for("/hooks/huge"), session, LOCAL, full).notify(huge)

    [(request, _)] = httpserver.log
    body = json.loads(request.get_data())
    assert body["full_detail"] is True
    assert (len(body["groups"]), len(body["likely_causes"]), len(body["resolved"])) == (
        GROUPS,
        GROUPS + 1,
        GROUPS,
    )
    assert set(body["omitted"].values()) == {0}


def test_the_email_lists_the_top_groups_and_attaches_them_all_as_csv(
    huge: Message, smtp_server: SmtpFactory
) -> None:
    smtp = smtp_server()
    options = EmailOptions(HOST, smtp.port, "r@example.com", ("f@example.com",), "none")

    EmailTransport(options).notify(huge)

    [(_, _, raw)] = smtp.recorder.messages
    assert len(raw) < 1_000_000  # it was 3.2 MB, for far fewer figures
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    text = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert text is not None
    assert html is not None
    assert len(text.get_content()) < 16_000
    assert len(html.get_content()) < 64_000
    assert "…and 4,991 more; all 5,001 are in the attached CSV file." in text.get_content()
    assert "…and 4,992 more" in text.get_content()  # likely causes
    [attachment] = list(parsed.iter_attachments())
    assert attachment.get_content_type() == "text/csv"
    assert attachment.get_filename() == "recon-daily-2026-03-14-groups.csv"
    rows = list(csv.reader(io.StringIO(attachment.get_content())))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 1 + GROUPS
    assert rows[1][:2] == ["2026-03-14", "model-05000"]
    assert rows[1][CSV_COLUMNS.index("cost_local")] == "10.250000"
