"""End to end: ``recon-job run`` notifying a real SMTP server and real HTTP receivers.

The issue's promise, checked on the real process: drifting data delivers one email, one Slack
message and one webhook call; re-running the window delivers nothing new; fixing the drift
delivers one resolved notice where enabled; a crash between commit and send loses nothing and
duplicates nothing; a failing channel never stops the others and is reported through them.
"""

from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from recon_job.store import HistoryStore
from tests.e2e import (
    D1,
    Ran,
    cli,
    cli_process,
    drifting_world,
    rec,
    workdir_fixture,  # noqa: F401
    write_logs,
)
from tests.fakeopenai import FakeOpenAI, fake_openai_fixture  # noqa: F401
from tests.notify.conftest import Server, SmtpFactory

SMTP_TO = "finance@example.com"
WEBHOOK_SECRET = "whsec_e2e_0123456789abcdef"


def channels_env(smtp: Server, receiver: HTTPServer) -> dict[str, str]:
    return {
        "RECON_SMTP_HOST": "127.0.0.1",
        "RECON_SMTP_PORT": str(smtp.port),
        "RECON_SMTP_SECURITY": "none",
        "RECON_EMAIL_FROM": "recon-job@example.com",
        "RECON_EMAIL_TO": SMTP_TO,
        "RECON_SLACK_WEBHOOK_URL": receiver.url_for("/services/T000/B000/slacksecretpath"),
        "RECON_SLACK__ALLOW_OTHER_HOSTS": "true",
        "RECON_WEBHOOK_URL": receiver.url_for("/hooks/recon-secret-path"),
        "RECON_WEBHOOK__ALLOW_PRIVATE": "true",
        "RECON_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }


def posts(receiver: HTTPServer, path: str) -> list[Request]:
    return [request for request, _ in receiver.log if request.path == path]


def run(
    workdir: Path, fake: FakeOpenAI, env: dict[str, str], *extra: str, process: bool = False
) -> Ran:
    # --force: these tests re-run one day on purpose; a completed day is otherwise a no-op.
    args = ("run", "--date", "2026-08-01", "--force", "--format", "json")
    ran = (cli_process if process else cli)(workdir, fake, *args, *extra, **env)
    for secret in ("slacksecretpath", "recon-secret-path", WEBHOOK_SECRET):
        assert secret not in ran.stdout
        assert secret not in ran.stderr
    return ran


@pytest.fixture
def receiver(httpserver: HTTPServer) -> HTTPServer:
    httpserver.expect_request(
        "/services/T000/B000/slacksecretpath", method="POST"
    ).respond_with_data("ok")
    httpserver.expect_request("/hooks/recon-secret-path", method="POST").respond_with_data(
        "", status=204
    )
    return httpserver


def fix_the_drift(workdir: Path) -> None:
    """Log the four gpt-4o-mini requests that were missing, so every group reconciles."""
    path = workdir / "logs" / "usage_tracking.ndjson"
    missing = [
        json.dumps(
            {
                "timestamp": "2026-08-01T12:30:00Z",
                "model": "gpt-4o-mini",
                "usage": {"prompt_tokens": 3000, "completion_tokens": 750},
            }
        )
        for _ in range(4)
    ]
    kept = [line for line in path.read_text("utf-8").splitlines() if "my-private-model" not in line]
    path.write_text("\n".join(kept + missing) + "\n", "utf-8")


def test_drift_is_notified_once_per_channel_then_resolved_where_enabled(
    fake_openai: FakeOpenAI, workdir: Path, smtp_server: SmtpFactory, receiver: HTTPServer
) -> None:
    smtp = smtp_server()
    env = channels_env(smtp, receiver)
    drifting_world(fake_openai, workdir)

    first = run(workdir, fake_openai, env)
    assert first.code == 0, first.stderr
    assert first.doc()["status"] == "mismatch"
    assert sorted((a["channel"], a["event"], a["status"]) for a in first.doc()["alerts"]) == [
        ("email", "opened", "sent"),
        ("slack", "opened", "sent"),
        ("webhook", "opened", "sent"),
    ]
    assert len(smtp.recorder.messages) == 1
    (_sender, rcpt, content) = smtp.recorder.messages[0]
    assert rcpt == [SMTP_TO]
    assert b"gpt-4o-mini" in content
    (slack,) = posts(receiver, "/services/T000/B000/slacksecretpath")
    assert "gpt-4o-mini" in slack.get_data(as_text=True)
    (hook,) = posts(receiver, "/hooks/recon-secret-path")
    body = json.loads(hook.get_data(as_text=True))
    assert body["schema"] == "recon-job.alert/v1"
    assert body["event"] == "opened"
    assert hook.headers["Idempotency-Key"] == body["dedupe_key"]
    assert hook.headers["X-Recon-Signature"].startswith("sha256=")

    again = run(workdir, fake_openai, env)
    assert again.code == 0, again.stderr
    assert again.doc()["alerts"] == []
    assert len(smtp.recorder.messages) == 1
    assert len(receiver.log) == 2

    fix_the_drift(workdir)
    fixed = run(workdir, fake_openai, env)
    assert fixed.code == 0, fixed.stderr
    assert fixed.doc()["status"] == "reconciled"
    # Alertmanager's defaults: only the webhook sends resolved notices.
    assert [(a["channel"], a["event"], a["status"]) for a in fixed.doc()["alerts"]] == [
        ("webhook", "resolved", "sent")
    ]
    assert len(smtp.recorder.messages) == 1
    hooks = posts(receiver, "/hooks/recon-secret-path")
    assert [json.loads(h.get_data(as_text=True))["event"] for h in hooks] == ["opened", "resolved"]

    listed = cli(workdir, fake_openai, "alerts", "list", "--format", "json", **env)
    assert listed.code == 0, listed.stderr
    states = sorted((n["channel"], n["event"], n["status"]) for n in json.loads(listed.stdout))
    assert ("webhook", "resolved", "sent") in states
    assert ("email", "resolved", "suppressed") in states


@pytest.mark.e2e
def test_a_crash_between_commit_and_send_delivers_exactly_once_on_the_next_run(
    fake_openai: FakeOpenAI, workdir: Path, smtp_server: SmtpFactory, receiver: HTTPServer
) -> None:
    smtp = smtp_server()
    env = channels_env(smtp, receiver)
    drifting_world(fake_openai, workdir)

    crash = env | {"RECON_FAULT_POINT": "after_outbox_commit"}
    crashed = run(workdir, fake_openai, crash, process=True)
    assert crashed.code == 137
    assert smtp.recorder.messages == []
    assert receiver.log == []

    after = run(workdir, fake_openai, env)
    assert after.code == 0, after.stderr
    # The re-run decides the same notifications (same dedupe keys), finds them already queued,
    # and the relay sends the queued rows: once each.
    assert sorted((a["channel"], a["event"], a["status"]) for a in after.doc()["alerts"]) == [
        ("email", "opened", "sent"),
        ("slack", "opened", "sent"),
        ("webhook", "opened", "sent"),
    ]
    assert len(smtp.recorder.messages) == 1
    assert len(posts(receiver, "/services/T000/B000/slacksecretpath")) == 1
    assert len(posts(receiver, "/hooks/recon-secret-path")) == 1

    third = run(workdir, fake_openai, env)
    assert third.doc()["alerts"] == []
    assert len(receiver.log) == 2


def test_a_failing_channel_is_reported_through_the_others(
    fake_openai: FakeOpenAI, workdir: Path, smtp_server: SmtpFactory, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/services/T000/B000/slacksecretpath").respond_with_response(
        Response("channel_not_found", status=404)
    )
    httpserver.expect_request("/hooks/recon-secret-path").respond_with_data("", status=204)
    smtp = smtp_server()
    env = channels_env(smtp, httpserver)
    drifting_world(fake_openai, workdir)

    ran = run(workdir, fake_openai, env)
    assert ran.code == 0, ran.stderr
    statuses = {a["channel"]: a["status"] for a in ran.doc()["alerts"] if not a.get("earlier")}
    assert statuses == {"email": "sent", "slack": "failed", "webhook": "sent"}
    assert len(posts(httpserver, "/services/T000/B000/slacksecretpath")) == 1  # 404: no retry
    # The drift alert plus one "cannot deliver to slack" notice, through email and the webhook.
    subjects = [content for _, _, content in smtp.recorder.messages]
    assert len(subjects) == 2
    assert any(b"cannot deliver to slack" in s for s in subjects)
    events = [
        json.loads(h.get_data(as_text=True))["event"]
        for h in posts(httpserver, "/hooks/recon-secret-path")
    ]
    assert sorted(events) == ["channel_failing", "opened"]
    listed = cli(workdir, fake_openai, "alerts", "list", "--format", "json", **env)
    slack_rows = [n for n in json.loads(listed.stdout) if n["channel"] == "slack"]
    assert slack_rows[0]["status"] == "dead"
    assert "channel_not_found" in (slack_rows[0]["last_error"] or "")


def test_a_failed_fetch_sends_one_failure_notice_and_no_drift(
    fake_openai: FakeOpenAI, workdir: Path, smtp_server: SmtpFactory, receiver: HTTPServer
) -> None:
    smtp = smtp_server()
    env = channels_env(smtp, receiver)
    write_logs(workdir, [rec(D1, "gpt-4o", 3, input_tokens=5000, output_tokens=10)])
    fake_openai.fail_next(10, 401)
    ran = run(workdir, fake_openai, env)
    assert ran.code == 2
    assert {(a["event"], a["status"]) for a in ran.doc()["alerts"]} == {("failed", "sent")}
    assert len(smtp.recorder.messages) == 1
    assert b"unauthorized" in smtp.recorder.messages[0][2]


def test_no_alerts_sends_nothing(
    fake_openai: FakeOpenAI, workdir: Path, smtp_server: SmtpFactory, receiver: HTTPServer
) -> None:
    smtp = smtp_server()
    drifting_world(fake_openai, workdir)
    ran = run(workdir, fake_openai, channels_env(smtp, receiver), "--no-alerts")
    assert ran.code == 0, ran.stderr
    assert ran.doc()["alerts"] == []
    assert smtp.recorder.messages == []
    assert receiver.log == []


def test_alerts_test_sends_a_sample_through_each_channel(
    fake_openai: FakeOpenAI, workdir: Path, smtp_server: SmtpFactory, receiver: HTTPServer
) -> None:
    smtp = smtp_server()
    env = channels_env(smtp, receiver)
    ran = cli(workdir, fake_openai, "alerts", "test", **env)
    assert ran.code == 0, ran.stderr
    assert ran.stdout.splitlines() == ["email: sent", "slack: sent", "webhook: sent"]
    only = cli(workdir, fake_openai, "alerts", "test", "--channel", "webhook", **env)
    assert only.stdout.strip() == "webhook: sent"
    assert len(smtp.recorder.messages) == 1
    assert len(receiver.log) == 3
    missing = cli(workdir, fake_openai, "alerts", "test", "--channel", "email")
    assert missing.code == 2
    assert "not configured" in missing.stderr


# --- issue 9 item 21 ----------------------------------------------------------------------------

#: A Slack webhook path as Slack issues them: team, bot and token segments.
SLACK_PATH = "/services/T0AB12CD3/B0EF45GH6/xQ7vR2mN9pL4sT8wY1zK3cF6"
SLACK_SEGMENTS = ("T0AB12CD3", "B0EF45GH6", "xQ7vR2mN9pL4sT8wY1zK3cF6")


def _readable_parts(raw: bytes) -> list[str]:
    """Every decoded text part of an email (quoted-printable could split a token in the raw)."""
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    parts = [str(parsed["Subject"])]
    for part in parsed.walk():
        if not part.is_multipart():
            parts.append(part.get_content())
    return parts


def test_a_receivers_error_text_never_leaks_the_webhook_token(
    fake_openai: FakeOpenAI, workdir: Path, smtp_server: SmtpFactory, httpserver: HTTPServer
) -> None:
    # Slack answers a revoked hook with its token in the text; that text was stored in
    # outbox.last_error, listed by `alerts list` and mailed in the channel_failing notice.
    httpserver.expect_request(SLACK_PATH).respond_with_response(
        Response(f"no_such_hook: token {SLACK_SEGMENTS[2]}", status=404)
    )
    httpserver.expect_request("/hooks/recon-secret-path").respond_with_data("", status=204)
    smtp = smtp_server()
    env = channels_env(smtp, httpserver) | {
        "RECON_SLACK_WEBHOOK_URL": httpserver.url_for(SLACK_PATH)
    }
    drifting_world(fake_openai, workdir)

    ran = run(workdir, fake_openai, env)

    assert ran.code == 0, ran.stderr
    assert len(posts(httpserver, SLACK_PATH)) == 1
    with HistoryStore(f"sqlite:///{workdir / 'history.db'}", create=False) as store:
        [slack_row] = [r.row for r in store.list_notifications() if r.row.channel == "slack"]
    assert slack_row.status == "dead"
    assert slack_row.last_error == "Slack rejected the message (404): no_such_hook: token ***"
    listed = cli(workdir, fake_openai, "alerts", "list", **env)
    listed_json = cli(workdir, fake_openai, "alerts", "list", "--format", "json", **env)
    assert "no_such_hook: token ***" in listed.stdout
    notices = [
        part
        for _, _, content in smtp.recorder.messages
        if b"cannot deliver to slack" in content
        for part in _readable_parts(content)
    ]
    assert any("no_such_hook: token ***" in part for part in notices)
    hooks = [h.get_data(as_text=True) for h in posts(httpserver, "/hooks/recon-secret-path")]
    shown = [listed.stdout, listed_json.stdout, *notices, *hooks, ran.stdout, ran.stderr]
    for text in shown:
        for segment in SLACK_SEGMENTS:
            assert segment not in text
