"""The outbox relay with small fake transports: isolation, rate limits, dead channels, crashes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from recon_job.alerts import NotificationState
from recon_job.delivery.relay import (
    RelayPolicy,
    RelayReport,
    channel_failing_message,
    exponential_backoff,
    relay,
)
from recon_job.errors import Interrupted, NotifyError
from recon_job.faults import FAULT_EXIT_STATUS, FAULT_POINT_ENV
from recon_job.logconfig import REDACTOR
from recon_job.models import AlertEvent, Message
from recon_job.store import HistoryStore, OutboxItem

T0 = datetime(2026, 3, 15, 6, 0, tzinfo=UTC)
GROUP = "daily:2026-03-14"
A = '["2026-03-14","gpt-4o",null,null]'
SECRET = "https://hooks.slack.com/services/T000/B000/s3cr3t-canary"


class Clock:
    """An injected clock that tests move by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Fake:
    """A transport that records every call and fails as scripted (None: success)."""

    def __init__(self, channel: str, *script: BaseException | None) -> None:
        self.channel = channel
        self.script = list(script)
        self.calls: list[Message] = []

    def notify(self, message: Message) -> None:
        self.calls.append(message)
        outcome = self.script.pop(0) if self.script else None
        if outcome is not None:
            raise outcome


class PartialDelivery(NotifyError):
    """What the email channel raises when some recipients refused the message."""

    delivered = True


def _message(key: str, event: AlertEvent = "opened") -> Message:
    return Message(key, event, GROUP, f"drift {key}", "text", "<p>html</p>", "slack", {"v": 1})


def _enqueue(store: HistoryStore, *channels: str, key: str = "k1") -> list[int]:
    state = NotificationState(frozenset({A}), last_event="opened")
    items = [OutboxItem(c, _message(f"{key}-{c}"), state=state) for c in channels]
    return store.enqueue(items, now=T0)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    with HistoryStore(f"sqlite:///{tmp_path / 'recon.db'}") as opened:
        yield opened


def _status(store: HistoryStore, outbox_id: int) -> str:
    row = store.get_notification(outbox_id)
    assert row is not None
    return row.status


def test_a_failing_channel_does_not_stop_the_others(store: HistoryStore) -> None:
    email_id, slack_id = _enqueue(store, "email", "slack")
    email = Fake("email", NotifyError("SMTP timed out", permanent=False, reason="smtp_timeout"))
    slack = Fake("slack")
    clock = Clock(T0 + timedelta(seconds=1))

    report = relay(store, {"email": email, "slack": slack}, now=T0, clock=clock)

    assert (report.sent, report.deferred, report.dead) == (1, 1, 0)
    assert _status(store, slack_id) == "sent"
    row = store.get_notification(email_id)
    assert row is not None
    assert (row.status, row.last_reason) == ("pending", "smtp_timeout")
    assert row.next_attempt_at == clock.now + timedelta(seconds=30)
    # Only the delivered channel's notification log moved.
    assert store.notification_state(GROUP, "slack") is not None
    assert store.notification_state(GROUP, "email") is None
    assert report.alerts() == [
        {
            "outbox_id": email_id,
            "channel": "email",
            "event": "opened",
            "status": "pending",
            "reason": "smtp_timeout",
        },
        {
            "outbox_id": slack_id,
            "channel": "slack",
            "event": "opened",
            "status": "sent",
            "reason": None,
        },
    ]

    # The retry waits for its backoff, then goes through.
    assert relay(store, {"email": email, "slack": slack}, now=clock.now, clock=clock).outcomes == ()
    clock.now += timedelta(seconds=30)
    assert relay(store, {"email": email, "slack": slack}, now=clock.now, clock=clock).sent == 1
    assert len(email.calls) == 2
    assert len(slack.calls) == 1


def test_an_unexpected_exception_is_recorded_as_transient_without_its_text(
    store: HistoryStore,
) -> None:
    webhook_id, slack_id = _enqueue(store, "webhook", "slack")
    webhook = Fake("webhook", RuntimeError(f"boom posting to {SECRET}"))

    with capture_logs() as logs:
        report = relay(store, {"webhook": webhook, "slack": Fake("slack")}, now=T0, clock=Clock())

    assert report.sent == 1
    row = store.get_notification(webhook_id)
    assert row is not None
    assert (row.status, row.last_reason) == ("pending", "unexpected_error")
    assert row.last_error == "unexpected RuntimeError in transport"
    assert [e for e in logs if e["event"] == "notify.relay.unexpected_error"]
    assert SECRET not in repr(logs)
    assert SECRET not in repr(store.list_notifications())
    assert _status(store, slack_id) == "sent"


def test_a_rate_limit_defers_the_channel_for_the_rest_of_the_pass(store: HistoryStore) -> None:
    slack_ids = [_enqueue(store, "slack", key=f"k{i}")[0] for i in range(3)]
    (email_id,) = _enqueue(store, "email")
    limited = NotifyError("Slack: 429", permanent=False, reason="rate_limited", retry_after=3)
    slack = Fake("slack", limited)
    email = Fake("email")
    clock = Clock()

    report = relay(store, {"slack": slack, "email": email}, now=T0, clock=clock)

    assert len(slack.calls) == 1, "no second POST after a 429"
    assert report.sent == 1
    assert report.deferred == 3
    assert _status(store, email_id) == "sent"
    for outbox_id in slack_ids:
        row = store.get_notification(outbox_id)
        assert row is not None
        assert (row.status, row.next_attempt_at) == ("pending", T0 + timedelta(seconds=3))
    # Only the row actually tried counts an attempt.
    assert [n.attempt_count for n in store.list_notifications() if n.row.channel == "slack"] == [
        0,
        0,
        1,
    ]

    assert relay(store, {"slack": slack}, now=T0 + timedelta(seconds=2), clock=clock).outcomes == ()
    clock.now = T0 + timedelta(seconds=3)
    assert relay(store, {"slack": slack}, now=clock.now, clock=clock).sent == 3
    assert len(slack.calls) == 4


def test_rate_limited_tries_never_use_up_the_attempts_of_a_drift_alert(
    store: HistoryStore,
) -> None:
    # Seven 429s used up max_attempts = 8, so one 500 after them gave the alert up for good:
    # dead 33 s after it was made, never sent once the receiver recovered.
    (webhook_id,) = _enqueue(store, "webhook")
    limited = NotifyError("429", permanent=False, reason="rate_limited", retry_after=3)
    down = NotifyError("webhook answered 500", permanent=False, reason="http_500")
    webhook = Fake("webhook", *[limited] * 7, down)
    clock = Clock()
    policy = RelayPolicy(max_attempts=3)
    for _ in range(8):
        relay(store, {"webhook": webhook}, now=clock.now, clock=clock, policy=policy)
        clock.now += timedelta(minutes=5)
    row = store.get_notification(webhook_id)
    assert row is not None
    assert (row.status, row.last_reason) == ("pending", "http_500")
    assert row.attempts == 1  # the 500; the seven rate limits are recorded, not counted
    report = relay(store, {"webhook": webhook}, now=clock.now, clock=clock, policy=policy)
    assert report.sent == 1
    assert len(webhook.calls) == 9


def test_a_huge_retry_after_is_capped(store: HistoryStore) -> None:
    (slack_id,) = _enqueue(store, "slack")
    limited = NotifyError("429", permanent=False, reason="rate_limited", retry_after=86_400)
    relay(store, {"slack": Fake("slack", limited)}, now=T0, clock=Clock())
    row = store.get_notification(slack_id)
    assert row is not None
    assert row.next_attempt_at == T0 + timedelta(seconds=300)


def test_a_permanent_failure_is_dead_and_reported_once_a_day_through_the_others(
    store: HistoryStore,
) -> None:
    first, second = (_enqueue(store, "slack", key=k)[0] for k in ("k1", "k2"))
    not_found = NotifyError("Slack answered 404 no_service", permanent=True, reason="slack_404")
    slack = Fake("slack", *[not_found] * 4)
    email, webhook = Fake("email"), Fake("webhook")
    transports = {"slack": slack, "email": email, "webhook": webhook}
    clock = Clock()

    report = relay(store, transports, now=T0, clock=clock)

    assert (report.dead, report.channel_failing) == (2, 2)
    assert _status(store, first) == "dead"
    assert _status(store, second) == "dead"
    assert len(slack.calls) == 2, "no retry after a permanent error"
    failing = [n.row for n in store.list_notifications() if n.row.event == "channel_failing"]
    assert sorted(r.channel for r in failing) == ["email", "webhook"]
    # Delivered in the same pass, not a run later.
    assert {r.status for r in failing} == {"sent"}
    assert len(email.calls) == 1
    assert len(webhook.calls) == 1

    # A new dead slack row the same day adds no second report.
    _enqueue(store, "slack", key="k3")
    report = relay(store, transports, now=T0, clock=clock)
    assert report.channel_failing == 0
    assert len(email.calls) == 1
    assert len(webhook.calls) == 1
    sent = email.calls[0]
    assert sent.subject == "recon-job cannot deliver to slack: slack_404"
    assert "slack_404" in sent.text
    assert sent.event == "channel_failing"

    # Another day, another report.
    clock.now = T0 + timedelta(days=1)
    _enqueue(store, "slack", key="k4")
    assert relay(store, transports, now=clock.now, clock=clock).channel_failing == 2


def test_the_channel_failing_message_is_plain_and_escaped() -> None:
    message = channel_failing_message(
        "email",
        "smtp\r\nBcc: x",
        error="535 <b>bad</b> login & more",
        target="slack",
        day=T0.date(),
    )
    assert "\n" not in message.subject
    assert "<b>bad" not in message.html
    assert "&lt;b&gt;bad&lt;/b&gt;" in message.html
    assert "<b>" not in message.slack_text
    assert message.payload["channel"] == "email"
    again = channel_failing_message("email", "x", error="y", target="slack", day=T0.date())
    assert again.dedupe_key == message.dedupe_key
    other = channel_failing_message("email", "x", error="y", target="webhook", day=T0.date())
    assert other.dedupe_key != message.dedupe_key


def test_the_channel_failing_message_keeps_its_words_in_every_part() -> None:
    message = channel_failing_message(
        "slack", "channel_not_found", error="Slack rejected it (404)", target="email", day=T0.date()
    )

    assert message.subject == "recon-job cannot deliver to slack: channel_not_found"
    assert message.text == (
        "recon-job could not deliver a notification to its slack channel and has stopped "
        "retrying it.\n\nReason: channel_not_found\nError: Slack rejected it (404)\n\n"
        "Alerts for slack are marked dead in the outbox (see `recon-job alerts list`). "
        "Fix the slack settings, then check them with "
        "`recon-job alerts test --channel slack`.\n"
    )
    assert message.slack_text == message.text.strip()
    assert " ".join(message.html.split()) == (
        "<p>recon-job could not deliver a notification to its <b>slack</b> channel and has "
        "stopped retrying it.</p> <p>Reason: <code>channel_not_found</code><br>Error: Slack "
        "rejected it (404)</p> <p>Alerts for slack are marked dead in the outbox (see "
        "<code>recon-job alerts list</code>). Fix the slack settings, then check them with "
        "<code>recon-job alerts test --channel slack</code>.</p>"
    )
    assert (message.event, message.group_key) == ("channel_failing", "channel:slack")
    assert message.payload == {
        "version": 1,
        "event": "channel_failing",
        "channel": "slack",
        "reason": "channel_not_found",
        "error": "Slack rejected it (404)",
        "dedupe_key": message.dedupe_key,
    }


def test_a_partial_delivery_counts_as_delivered_and_is_never_resent(store: HistoryStore) -> None:
    (email_id,) = _enqueue(store, "email")
    refused = PartialDelivery("1 of 2 recipients refused: 550", permanent=True, reason="smtp_550")
    email = Fake("email", refused)
    clock = Clock()

    report = relay(store, {"email": email, "slack": Fake("slack")}, now=T0, clock=clock)

    assert (report.partial, report.dead, report.channel_failing) == (1, 0, 0)
    row = store.get_notification(email_id)
    assert row is not None
    assert (row.status, row.last_reason) == ("partial", "smtp_550")
    assert store.notification_state(GROUP, "email") is not None
    clock.now += timedelta(days=2)
    assert relay(store, {"email": email}, now=clock.now, clock=clock).outcomes == ()
    assert len(email.calls) == 1


def test_a_row_is_dead_after_max_attempts(store: HistoryStore) -> None:
    (email_id,) = _enqueue(store, "email")
    down = NotifyError("connection refused", permanent=False, reason="smtp_connect")
    email = Fake("email", *[down] * 10)
    transports = {"email": email, "slack": Fake("slack")}
    clock = Clock()

    for _ in range(3):
        relay(store, transports, now=clock.now, clock=clock, policy=RelayPolicy(max_attempts=3))
        clock.now += timedelta(hours=1)

    assert len(email.calls) == 3
    assert _status(store, email_id) == "dead"
    (warning,) = [n.row for n in store.list_notifications() if n.row.event == "channel_failing"]
    assert warning.channel == "slack"
    assert "gave up after 3 attempts" in warning.subject


def test_a_row_for_a_channel_no_longer_configured_is_dead(store: HistoryStore) -> None:
    (webhook_id,) = _enqueue(store, "webhook")
    report = relay(store, {"email": Fake("email")}, now=T0, clock=Clock())
    row = store.get_notification(webhook_id)
    assert row is not None
    assert (row.status, row.last_reason) == ("dead", "channel_not_configured")
    assert report.channel_failing == 0


def test_a_row_whose_lease_ran_out_mid_pass_is_left_for_reclaiming(store: HistoryStore) -> None:
    (email_id,) = _enqueue(store, "email")
    email = Fake("email")
    clock = Clock(T0 + timedelta(minutes=5))  # the pass got stuck past the lease
    policy = RelayPolicy(lease=timedelta(seconds=60))
    report = relay(store, {"email": email}, now=T0, clock=clock, policy=policy)
    assert email.calls == []
    assert report.alerts()[0]["status"] == "sending"
    assert relay(store, {"email": email}, now=clock.now, clock=clock).sent == 1
    assert _status(store, email_id) == "sent"


def test_the_backoff_doubles_from_thirty_seconds_up_to_an_hour() -> None:
    assert [exponential_backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert exponential_backoff(50) == timedelta(hours=1)


# --- crashes (reliability.md R22, R23) -----------------------------------------------------------

CRASHING_RELAY = textwrap.dedent(
    """
    import sys
    from datetime import datetime
    from pathlib import Path

    from recon_job.delivery.relay import relay
    from recon_job.store import HistoryStore

    url, deliveries, now = sys.argv[1], Path(sys.argv[2]), datetime.fromisoformat(sys.argv[3])

    class Appending:
        channel = "slack"

        def notify(self, message):
            with deliveries.open("a") as f:
                f.write(message.dedupe_key + "\\n")

    with HistoryStore(url) as store:
        relay(store, {"slack": Appending()}, now=now, clock=lambda: now)
    """
)


class Appending:
    """A transport appending each delivered dedupe key to a file, like the one in the child."""

    def __init__(self, path: Path) -> None:
        self.channel = "slack"
        self.path = path

    def notify(self, message: Message) -> None:
        with self.path.open("a") as f:
            f.write(message.dedupe_key + "\n")


@pytest.mark.e2e
def test_a_crash_after_sending_causes_at_most_one_recognisable_duplicate(
    tmp_path: Path, store: HistoryStore
) -> None:
    (slack_id,) = _enqueue(store, "slack")
    deliveries = tmp_path / "deliveries.txt"
    env = {**os.environ, FAULT_POINT_ENV: "after_send"}

    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_RELAY, store.url, str(deliveries), T0.isoformat()],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )

    assert crashed.returncode == FAULT_EXIT_STATUS, crashed.stderr
    assert deliveries.read_text().splitlines() == ["k1-slack"]
    assert _status(store, slack_id) == "sending"
    assert store.notification_state(GROUP, "slack") is None

    # Nobody takes the row while the dead relay's lease runs; afterwards it is sent once more.
    transports = {"slack": Appending(deliveries)}
    early = T0 + timedelta(seconds=30)
    assert relay(store, transports, now=early, clock=Clock(early)).outcomes == ()
    later = T0 + timedelta(seconds=61)
    assert relay(store, transports, now=later, clock=Clock(later)).sent == 1

    assert deliveries.read_text().splitlines() == ["k1-slack", "k1-slack"]
    assert _status(store, slack_id) == "sent"
    assert store.notification_state(GROUP, "slack") is not None
    assert relay(store, transports, now=later + timedelta(days=1), clock=Clock()).outcomes == ()


def test_a_row_left_sending_by_a_killed_relay_is_sent_once_after_its_lease(
    tmp_path: Path, store: HistoryStore
) -> None:
    (slack_id,) = _enqueue(store, "slack")
    # A relay claimed it and was killed before it sent anything.
    (claimed,) = store.claim_due(T0, lease=timedelta(seconds=60))
    assert claimed.id == slack_id
    deliveries = tmp_path / "deliveries.txt"
    transports = {"slack": Appending(deliveries)}

    assert relay(store, transports, now=T0 + timedelta(seconds=59), clock=Clock()).outcomes == ()
    later = T0 + timedelta(seconds=60)
    report = relay(store, transports, now=later, clock=Clock(later))

    assert report.sent == 1
    assert deliveries.read_text().splitlines() == ["k1-slack"]
    assert _status(store, slack_id) == "sent"


# --- a stop is not a delivery error (issue 9 item 20) -------------------------------------------


def test_the_stop_signal_cutting_a_send_short_is_raised_and_gives_every_row_back(
    store: HistoryStore,
) -> None:
    ids = _enqueue(store, "email", "slack", "webhook")
    email, slack = Fake("email"), Fake("slack", Interrupted("the shutdown budget ran out"))
    webhook = Fake("webhook")

    with capture_logs() as logs, pytest.raises(Interrupted):
        relay(store, {"email": email, "slack": slack, "webhook": webhook}, now=T0, clock=Clock())

    assert [_status(store, i) for i in ids] == ["sent", "pending", "pending"]
    assert webhook.calls == []  # not tried after the stop
    assert "notify.relay.unexpected_error" not in [e["event"] for e in logs]
    row = store.get_notification(ids[1])
    assert row is not None
    assert (row.attempts, row.last_reason) == (0, "shutdown")  # not counted as a failure
    # The next pass sends what was given back.
    clock = Clock(T0 + timedelta(seconds=1))
    assert (
        relay(store, {"slack": Fake("slack"), "webhook": webhook}, now=clock(), clock=clock).sent
        == 2
    )


def test_a_stop_request_leaves_the_rows_not_tried_yet_in_the_outbox(store: HistoryStore) -> None:
    ids = _enqueue(store, "email", "slack")
    stop = threading.Event()

    class Stopping(Fake):
        def notify(self, message: Message) -> None:
            super().notify(message)
            stop.set()  # SIGTERM arrives during the first send

    email, slack = Stopping("email"), Fake("slack")
    report = relay(
        store,
        {"email": email, "slack": slack},
        now=T0,
        clock=Clock(),
        policy=RelayPolicy(stop=stop),
    )

    assert report.sent == 1
    assert [(o.status, o.reason) for o in report.outcomes][1:] == [("pending", "shutdown")]
    assert [_status(store, i) for i in ids] == ["sent", "pending"]
    assert slack.calls == []
    assert (
        relay(store, {"slack": slack}, now=T0, clock=Clock(), policy=RelayPolicy(stop=stop))
        == RelayReport()
    )


def test_a_stored_error_never_holds_a_known_secret_whatever_channel_quotes_it(
    store: HistoryStore,
) -> None:
    # Issue 9 item 21: what is stored is shown again (alerts list, the channel_failing
    # notice). The settings' secrets are registered with the redactor by the CLI; a
    # channel quoting one (here the email channel quoting a server's echo of the webhook
    # token) must not carry it into the outbox.
    url = "https://hooks.example.com/in/Zq9Xw2Lk7Pm4Rt8Vb3Nc?key=Qa1Ws2Ed3Rf4"
    REDACTOR.add(url)
    (email_id,) = _enqueue(store, "email")
    quoted = NotifyError(
        "SMTP server said: 550 rejected Zq9Xw2Lk7Pm4Rt8Vb3Nc key Qa1Ws2Ed3Rf4",
        permanent=True,
        reason="smtp_550",
    )
    email, webhook = Fake("email", quoted), Fake("webhook")

    relay(store, {"email": email, "webhook": webhook}, now=T0, clock=Clock())

    row = store.get_notification(email_id)
    assert row is not None
    assert row.last_error == "SMTP server said: 550 rejected *** key ***"
    [notice] = webhook.calls
    for shown in (notice.text, notice.html, notice.slack_text, str(notice.payload)):
        assert "Zq9Xw2Lk7Pm4Rt8Vb3Nc" not in shown
        assert "Qa1Ws2Ed3Rf4" not in shown
