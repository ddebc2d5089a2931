"""EmailTransport against a real SMTP server (aiosmtpd) on 127.0.0.1: TLS, login, faults."""

from __future__ import annotations

import email
import email.policy
from dataclasses import replace
from email.message import EmailMessage

import pytest

from recon_job.errors import NotifyError
from recon_job.models import Message
from recon_job.notify.context import Notice
from recon_job.notify.email import (
    EmailOptions,
    EmailTransport,
    PartialDelivery,
    message_id,
    parse_address,
)
from recon_job.notify.render import render_message, sample_message, sample_result
from tests.notify.conftest import HOST, PASSWORD, USERNAME, Certs, SmtpFactory

GOOD = "ops@example.com"
OTHER = "finance@example.com"


def options(port: int, **changes: object) -> EmailOptions:
    base = EmailOptions(
        host=HOST,
        port=port,
        sender="recon-job <alerts@example.com>",
        recipients=(GOOD,),
        security="none",
        timeout=3.0,
        local_hostname="client.test",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def received(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_it_sends_a_multipart_alternative_mail_over_plain_smtp(smtp_server: SmtpFactory) -> None:
    server = smtp_server(mode="plain")
    message = sample_message("a1b2c3")

    EmailTransport(options(server.port)).notify(message)

    [(sender, rcpts, raw)] = server.recorder.messages
    assert sender == "alerts@example.com"
    assert rcpts == [GOOD]
    mail = received(raw)
    assert mail.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in mail.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None
    assert html is not None
    assert "Likely causes" in text.get_content()
    assert "<table" in html.get_content()
    assert mail["Subject"] == message.subject
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["Date"]


def test_the_message_id_is_the_dedupe_key(smtp_server: SmtpFactory) -> None:
    server = smtp_server(mode="plain")
    key = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

    EmailTransport(options(server.port)).notify(sample_message(key))
    EmailTransport(options(server.port)).notify(sample_message(key))

    ids = [received(raw)["Message-ID"] for _, _, raw in server.recorder.messages]
    assert ids == [f"<{key}@recon-job>"] * 2


def test_the_message_id_only_keeps_characters_a_message_id_may_hold() -> None:
    assert message_id("daily:2026-03-14/email") == "<daily-2026-03-14/email@recon-job>"
    assert message_id("a b<c>") == "<a-b-c-@recon-job>"


def test_it_implicit_tls_logs_in_and_sends(smtp_server: SmtpFactory, certs: Certs) -> None:
    server = smtp_server(mode="ssl", auth=True)
    opts = options(
        server.port,
        security="ssl",
        username=USERNAME,
        password=PASSWORD,
        cafile=str(certs.ca_file),
    )

    EmailTransport(opts).notify(sample_message())

    assert server.recorder.commands == ["AUTH"]
    assert len(server.recorder.messages) == 1


def test_it_upgrades_with_starttls_before_logging_in(
    smtp_server: SmtpFactory, certs: Certs
) -> None:
    server = smtp_server(mode="starttls", auth=True)
    opts = options(
        server.port,
        security="starttls",
        username=USERNAME,
        password=PASSWORD,
        cafile=str(certs.ca_file),
    )

    EmailTransport(opts).notify(sample_message())

    assert server.recorder.commands == ["STARTTLS", "AUTH"]
    assert len(server.recorder.messages) == 1


def test_an_untrusted_certificate_is_permanent_and_no_auth_is_sent(
    smtp_server: SmtpFactory,
) -> None:
    server = smtp_server(mode="starttls", trusted=False, auth=True)
    opts = options(server.port, security="starttls", username=USERNAME, password=PASSWORD)

    with pytest.raises(NotifyError) as caught:
        EmailTransport(opts).notify(sample_message())

    assert caught.value.permanent
    assert caught.value.reason == "tls_verify"
    assert "AUTH" not in server.recorder.commands
    assert server.recorder.messages == []


def test_an_untrusted_certificate_on_implicit_tls_is_permanent(smtp_server: SmtpFactory) -> None:
    server = smtp_server(mode="ssl", trusted=False)

    with pytest.raises(NotifyError) as caught:
        EmailTransport(options(server.port, security="ssl")).notify(sample_message())

    assert (caught.value.permanent, caught.value.reason) == (True, "tls_verify")


def test_a_server_without_starttls_is_refused_permanently(smtp_server: SmtpFactory) -> None:
    server = smtp_server(mode="plain", auth=True)
    opts = options(server.port, security="starttls", username=USERNAME, password=PASSWORD)

    with pytest.raises(NotifyError) as caught:
        EmailTransport(opts).notify(sample_message())

    assert (caught.value.permanent, caught.value.reason) == (True, "starttls_unavailable")
    assert "STARTTLS" in str(caught.value)
    assert server.recorder.commands == []
    assert server.recorder.messages == []


def test_it_refuses_to_send_a_password_without_tls(smtp_server: SmtpFactory) -> None:
    server = smtp_server(mode="plain", auth=True)
    opts = options(server.port, security="none", username=USERNAME, password=PASSWORD)

    with pytest.raises(NotifyError) as caught:
        EmailTransport(opts).notify(sample_message())

    assert caught.value.permanent
    assert "refusing to send the SMTP password over an unencrypted connection" in str(caught.value)
    assert server.recorder.commands == []
    assert PASSWORD not in str(caught.value)


def test_a_refused_login_is_permanent_and_never_shows_the_password(
    smtp_server: SmtpFactory, certs: Certs
) -> None:
    server = smtp_server(mode="starttls", auth=True)
    opts = options(
        server.port,
        security="starttls",
        username=USERNAME,
        password="wrong-" + PASSWORD,
        cafile=str(certs.ca_file),
    )

    with pytest.raises(NotifyError) as caught:
        EmailTransport(opts).notify(sample_message())

    error = caught.value
    assert (error.permanent, error.reason) == (True, "auth_failed")
    assert "535" in str(error)
    assert PASSWORD not in str(error)
    assert error.__cause__ is None
    assert PASSWORD not in repr(opts)
    assert PASSWORD not in repr(EmailTransport(opts))
    assert server.recorder.messages == []


def test_one_refused_recipient_of_two_is_a_partial_delivery(smtp_server: SmtpFactory) -> None:
    server = smtp_server(refuse={"nobody@example.com": "550 5.1.1 no such user"})
    opts = options(server.port, recipients=(GOOD, "nobody@example.com"))

    with pytest.raises(PartialDelivery) as caught:
        EmailTransport(opts).notify(sample_message())

    error = caught.value
    assert error.delivered
    assert error.permanent
    assert error.reason == "partial"
    assert "nobody@example.com" in str(error)
    assert "550" in str(error)
    assert error.refused["nobody@example.com"][0] == 550
    [(_, rcpts, _)] = server.recorder.messages
    assert rcpts == [GOOD]


def test_a_deferred_recipient_is_transient(smtp_server: SmtpFactory) -> None:
    server = smtp_server(refuse={GOOD: "451 4.3.0 try again later"})

    with pytest.raises(NotifyError) as caught:
        EmailTransport(options(server.port)).notify(sample_message())

    assert not caught.value.permanent
    assert not isinstance(caught.value, PartialDelivery)
    assert "451" in str(caught.value)


def test_a_rejected_recipient_is_permanent(smtp_server: SmtpFactory) -> None:
    server = smtp_server(refuse={GOOD: "550 5.1.1 no such user"})

    with pytest.raises(NotifyError) as caught:
        EmailTransport(options(server.port)).notify(sample_message())

    assert caught.value.permanent
    assert caught.value.reason == "recipients_refused"


def test_a_drop_after_data_is_transient(smtp_server: SmtpFactory) -> None:
    server = smtp_server(drop_after_data=True)

    with pytest.raises(NotifyError) as caught:
        EmailTransport(options(server.port)).notify(sample_message())

    assert not caught.value.permanent
    assert caught.value.reason == "disconnected"


def test_a_refused_connection_is_transient(smtp_server: SmtpFactory) -> None:
    server = smtp_server()
    port = server.port
    # A port nothing listens on: take the running server's and add one until it refuses.
    with pytest.raises(NotifyError) as caught:
        EmailTransport(options(port + 1 if port < 65535 else port - 1)).notify(sample_message())

    assert not caught.value.permanent
    assert caught.value.reason == "connection"


def test_a_server_that_never_greets_times_out_transiently() -> None:
    import socket
    import time

    with socket.socket() as listener:
        listener.bind((HOST, 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(NotifyError) as caught:
            EmailTransport(options(port, timeout=0.3)).notify(sample_message())
        elapsed = time.monotonic() - started

    assert (caught.value.permanent, caught.value.reason) == (False, "timeout")
    assert elapsed < 2.0


def test_a_subject_injection_in_a_model_name_adds_no_header_or_recipient(
    smtp_server: SmtpFactory,
) -> None:
    from recon_job.compare import reconcile
    from recon_job.models import Tolerance, UsageTotals

    evil = "x\r\nBcc: evil@example.com"
    base = sample_result()
    local = UsageTotals(
        groups={
            replace(g.key, model=evil if g.key.model == "gpt-4o" else g.key.model): g.local
            for g in base.groups
        }
    )
    official = UsageTotals(
        groups={
            replace(g.key, model=evil if g.key.model == "gpt-4o" else g.key.model): g.openai
            for g in base.groups
        }
    )
    result = reconcile(local, official, window=base.window, tolerance=Tolerance())
    message = render_message(Notice("opened", result.window.key, "inj", result.window, result))
    assert "\r" not in message.subject
    assert "\n" not in message.subject
    server = smtp_server()

    EmailTransport(options(server.port)).notify(message)

    [(_, rcpts, raw)] = server.recorder.messages
    assert rcpts == [GOOD]
    mail = received(raw)
    assert mail["Bcc"] is None
    assert "Bcc: evil@example.com" in mail["Subject"]  # inert text inside the subject


def test_a_subject_with_line_breaks_is_flattened_even_if_a_message_carries_one(
    smtp_server: SmtpFactory,
) -> None:
    server = smtp_server()
    message = Message(
        dedupe_key="k",
        event="test",
        group_key="daily:2026-03-14",
        subject="Drift 6%\r\nBcc: victim@example.com",
        text="t",
        html="<p>h</p>",
        slack_text="s",
    )

    EmailTransport(options(server.port)).notify(message)

    [(_, rcpts, raw)] = server.recorder.messages
    assert rcpts == [GOOD]
    assert received(raw)["Bcc"] is None


def test_configured_addresses_are_parsed_and_bad_ones_reported() -> None:
    assert parse_address("Ops <ops@example.com>").addr_spec == "ops@example.com"
    with pytest.raises(ValueError, match="line break"):
        parse_address("ops@example.com\r\nBcc: x@y.z")
    with pytest.raises(ValueError, match="not an email address"):
        parse_address("not an address")
