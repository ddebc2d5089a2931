"""Email over SMTP: ``smtplib`` + ``email.message.EmailMessage``, TLS verified, login only over TLS.

How SMTP outcomes map to :class:`~recon_job.errors.NotifyError` (reliability.md §4.3):

* 4xx replies (421, 450, 451, 452 …), every recipient refused with a 4xx, a dropped
  connection, a timeout, a refused connection → transient (the relay retries later);
* 5xx replies, a refused login (535, ``auth_failed``), a certificate that does not verify
  (``tls_verify``), a server without STARTTLS when STARTTLS is configured → permanent;
* some recipients refused, others accepted → :class:`PartialDelivery` (permanent, with
  ``delivered=True``): the accepted recipients already have the message, so the relay records
  it as delivered with errors and must **not** send it again.

A drop after the DATA terminator but before the 250 reply is ambiguous: the server may have
queued the mail. It is transient, so a retry may produce one duplicate, recognisable by its
stable ``Message-ID`` (reliability.md §4.1: at-least-once, ≤ 1 duplicate per crash).

The password is never logged, never put in an exception message, and never sent unless TLS is
established: with ``security="none"`` and a username the transport refuses to send at all
(fail closed, like Alertmanager's ``require_tls`` default). ``smtplib.SMTP.starttls()`` without
a context does not verify certificates (reliability.md §4.3, verified on 3.11), so the context
is always ``ssl.create_default_context()``.
"""

from __future__ import annotations

import contextlib
import email.policy
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.headerregistry import Address, AddressHeader, HeaderRegistry
from email.message import EmailMessage
from email.utils import formatdate
from typing import Final, Literal

import structlog

from recon_job.errors import NotifyError
from recon_job.models import Message
from recon_job.notify.detail import groups_csv

log = structlog.get_logger(__name__)

#: Logged (debug) when the server accepted the message for every recipient.
EVENT_SENT: Final = "notify.email.sent"

Security = Literal["ssl", "starttls", "none"]
SECURITY_MODES: Final = ("ssl", "starttls", "none")

# RFC 5322 atext plus "." (dot-atom-text): what a Message-ID's left part may contain.
_NOT_ATEXT = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-]")
_CRLF = re.compile(r"[\r\n]+")
_HEADERS = HeaderRegistry()
# RFC 5322's hard limit (998) rather than its 78-character advice: the default folds a
# ``Message-ID`` of a 64-character key onto a continuation line, and a folded id is one more
# thing for a receiving system to get wrong when it collapses duplicates by Message-ID.
_POLICY = email.policy.SMTP.clone(max_line_length=998)


@dataclass(frozen=True)
class EmailOptions:
    """How to reach the SMTP server and whom to write to.

    Validated data: the rules (addresses, a complete setup, no login without TLS) are checked on
    the settings they are built from (:class:`recon_job.config.EmailSettings`).
    """

    #: SMTP server host name (certificates are checked against it).
    host: str
    #: SMTP port: 465 for ``ssl``, 587 for ``starttls``, 25 for ``none``.
    port: int
    #: ``From`` address, e.g. ``"recon-job <alerts@example.com>"``.
    sender: str
    #: ``To`` addresses; the only recipients ever used (never taken from data).
    recipients: tuple[str, ...]
    #: ``ssl``: implicit TLS (SMTPS); ``starttls``: upgrade a plain connection; ``none``: no TLS.
    security: Security = "starttls"
    #: Login name; None for no login.
    username: str | None = None
    #: Login password. A secret: kept out of ``repr`` and every message.
    password: str | None = field(default=None, repr=False)
    #: Seconds, for connecting and for every reply.
    timeout: float = 10.0
    #: A CA bundle to trust instead of the system store (a private CA; tests).
    cafile: str | None = None
    #: The name sent in EHLO; None: ``socket.getfqdn()`` (may do a DNS lookup).
    local_hostname: str | None = None


def parse_address(text: str) -> Address:
    """A configured address (``a@b.c`` or ``Name <a@b.c>``) as an ``Address``; ValueError if bad.

    Parsed by the ``email`` package's own header parser, which reports any defect; exactly one
    address with a domain is accepted.
    """
    if _CRLF.search(text):
        raise ValueError(f"address {text.strip()!r} contains a line break")
    try:
        header = _HEADERS("To", text)
        if not isinstance(header, AddressHeader):  # pragma: no cover - "To" always is one
            raise TypeError(type(header).__name__)
        addresses = header.addresses
        defects = header.defects
    except (ValueError, IndexError) as e:  # the parser fails outright on input like "a@"
        raise ValueError(f"{text!r} is not an email address") from e
    if len(addresses) != 1 or defects or not addresses[0].domain:
        raise ValueError(f"{text!r} is not an email address")
    return addresses[0]


def message_id(dedupe_key: str) -> str:
    """``<dedupe_key@recon-job>``: stable, so a resend after a crash is recognisable.

    Characters a Message-ID may not contain are replaced by ``-`` (deterministically).
    """
    return f"<{_NOT_ATEXT.sub('-', dedupe_key) or 'alert'}@recon-job>"


class PartialDelivery(NotifyError):
    """Some recipients refused the message, the others accepted it.

    Permanent — resending would duplicate the mail for those who got it — and ``delivered`` is
    True: the relay records the message as delivered with errors and does not send it again.
    """

    #: True: the message reached at least one recipient.
    delivered: bool = True

    def __init__(self, refused: Mapping[str, tuple[int, str]], accepted: int) -> None:
        #: Refused recipient -> (SMTP code, server text).
        self.refused = dict(refused)
        listed = ", ".join(f"{addr} ({code} {text})" for addr, (code, text) in refused.items())
        super().__init__(
            f"email partially delivered: accepted for {accepted} recipient(s), refused for "
            f"{listed}; not resent to the accepted ones",
            permanent=True,
            reason="partial",
        )


def _text(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return " ".join(text.split())[:200]


def _reply_error(what: str, code: int, raw: bytes | str) -> NotifyError:
    transient = 400 <= code < 500
    return NotifyError(
        f"SMTP server {what}: {code} {_text(raw)}".rstrip(),
        permanent=not transient,
        reason=f"smtp_{code}",
    )


class EmailTransport:
    """Send a :class:`Message` as a multipart/alternative email (text + HTML)."""

    channel = "email"

    def __init__(self, options: EmailOptions, *, clock: Callable[[], float] = time.time) -> None:
        self.options = options
        # The Date header is a timestamp that has to be sent: the one clock read here.
        self._clock = clock

    def __repr__(self) -> str:
        o = self.options
        return f"EmailTransport(host={o.host!r}, port={o.port}, security={o.security!r})"

    def build(self, message: Message) -> EmailMessage:
        """The email for ``message``; ValueError when a configured address does not parse.

        ``multipart/alternative`` (text, HTML); inside ``multipart/mixed`` with a CSV file of
        every drifting group when the body lists only the top ones
        (:func:`recon_job.notify.detail.groups_csv`).
        """
        o = self.options
        msg = EmailMessage(policy=_POLICY)
        msg["Subject"] = " ".join(_CRLF.sub(" ", message.subject).split())
        msg["From"] = parse_address(o.sender)
        msg["To"] = tuple(parse_address(r) for r in o.recipients)
        msg["Date"] = formatdate(self._clock(), usegmt=True)
        msg["Message-ID"] = message_id(message.dedupe_key)
        # RFC 3834: an automatic message; keeps vacation responders from replying.
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-Recon-Event"] = message.event
        msg.set_content(message.text)
        msg.add_alternative(message.html, subtype="html")
        attachment = groups_csv(message.payload)
        if attachment is not None:
            # The body lists the top groups only (its size stays bounded); the file has them all.
            name, text = attachment
            msg.add_attachment(text, subtype="csv", filename=name)
        return msg

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.options.cafile)

    def _connect(self) -> smtplib.SMTP:
        o = self.options
        if o.security == "ssl":
            return smtplib.SMTP_SSL(
                o.host,
                o.port,
                local_hostname=o.local_hostname,
                timeout=o.timeout,
                context=self._context(),
            )
        return smtplib.SMTP(o.host, o.port, local_hostname=o.local_hostname, timeout=o.timeout)

    def _session(self, smtp: smtplib.SMTP, msg: EmailMessage) -> dict[str, tuple[int, bytes]]:
        o = self.options
        code, reply = smtp.ehlo()
        if not 200 <= code < 300:
            raise smtplib.SMTPHeloError(code, reply)
        if o.security == "starttls":
            if not smtp.has_extn("starttls"):
                raise NotifyError(
                    f"the SMTP server {o.host}:{o.port} does not offer STARTTLS; refusing to "
                    "continue unencrypted (use security 'ssl' for port 465, or fix the server)",
                    permanent=True,
                    reason="starttls_unavailable",
                )
            code, reply = smtp.starttls(context=self._context())
            if code != 220:
                raise smtplib.SMTPResponseException(code, reply)
            smtp.ehlo()  # "You should then call ehlo() again" (smtplib docs)
        if o.username:
            # Reached only over TLS: ssl and starttls are established above, none is refused.
            smtp.login(o.username, o.password or "")
        refused: dict[str, tuple[int, bytes]] = smtp.send_message(
            msg, from_addr=parse_address(o.sender).addr_spec, to_addrs=self._to()
        )
        return refused

    def _to(self) -> list[str]:
        return [parse_address(r).addr_spec for r in self.options.recipients]

    def notify(self, message: Message) -> None:
        """Send ``message`` to every configured recipient; raise ``NotifyError`` on failure."""
        o = self.options
        if o.security == "none" and o.username:
            raise NotifyError(
                "refusing to send the SMTP password over an unencrypted connection "
                "(security is 'none'; use 'starttls' or 'ssl')",
                permanent=True,
                reason="insecure_login",
            )
        try:
            msg = self.build(message)
        except ValueError as e:
            raise NotifyError(
                f"cannot build the email: {e}", permanent=True, reason="config"
            ) from e

        where = f"{o.host}:{o.port}"
        try:
            smtp = self._connect()
        except OSError as e:
            raise self._failure(e, where) from e
        try:
            refused = self._session(smtp, msg)
        except NotifyError:
            smtp.close()
            raise
        except OSError as e:  # smtplib.SMTPException is an OSError
            smtp.close()
            error = self._failure(e, where)
            if error.reason == "auth_failed":
                # The server's reply to AUTH may echo what it was sent; keep it out of tracebacks.
                raise error from None
            raise error from e
        with contextlib.suppress(OSError):
            smtp.quit()  # the message is accepted; a failing QUIT changes nothing
        smtp.close()

        if refused:
            raise PartialDelivery(
                {addr: (code, _text(text)) for addr, (code, text) in refused.items()},
                accepted=len(o.recipients) - len(refused),
            )
        log.debug(EVENT_SENT, dedupe_key=message.dedupe_key, recipients=len(o.recipients))

    def _failure(self, exc: OSError, where: str) -> NotifyError:
        """Translate an ``smtplib``/``ssl``/socket exception (never quoting the password)."""
        o = self.options
        if isinstance(exc, ssl.SSLCertVerificationError):
            return NotifyError(
                f"the SMTP server {where} presented a certificate that does not verify "
                f"({exc.verify_message}); not sending (and not logging in)",
                permanent=True,
                reason="tls_verify",
            )
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            return NotifyError(
                f"SMTP login as {o.username!r} refused by {where} ({exc.smtp_code}); check the "
                "SMTP username and password",
                permanent=True,
                reason="auth_failed",
            )
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            codes = {addr: code for addr, (code, _) in exc.recipients.items()}
            listed = ", ".join(f"{a} ({c} {_text(t)})" for a, (c, t) in exc.recipients.items())
            transient = all(400 <= c < 500 for c in codes.values())
            return NotifyError(
                f"SMTP server {where} refused every recipient: {listed}",
                permanent=not transient,
                reason="recipients_deferred" if transient else "recipients_refused",
            )
        if isinstance(exc, smtplib.SMTPResponseException):
            return _reply_error(f"{where} answered", exc.smtp_code, exc.smtp_error)
        if isinstance(exc, smtplib.SMTPServerDisconnected) and not isinstance(
            exc.__context__, TimeoutError
        ):
            # smtplib reports a read timeout as "Connection unexpectedly closed: timed out",
            # with the TimeoutError as context; that one is a timeout, below.
            return NotifyError(
                f"SMTP server {where} closed the connection unexpectedly",
                permanent=False,
                reason="disconnected",
            )
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            return NotifyError(
                f"SMTP server {where} does not support a required command: {exc}",
                permanent=True,
                reason="not_supported",
            )
        if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):
            return NotifyError(
                f"SMTP server {where} did not answer within {o.timeout:g} s",
                permanent=False,
                reason="timeout",
            )
        if isinstance(exc, ssl.SSLError):
            return NotifyError(
                f"TLS with the SMTP server {where} failed ({exc.reason or exc}); is "
                f"security '{o.security}' right for port {o.port}?",
                permanent=False,
                reason="tls",
            )
        if isinstance(exc, socket.gaierror):
            return NotifyError(
                f"cannot resolve the SMTP host {o.host}", permanent=False, reason="dns"
            )
        return NotifyError(
            f"cannot talk to the SMTP server {where}: {exc.strerror or type(exc).__name__}",
            permanent=False,
            reason="connection",
        )


__all__ = [
    "SECURITY_MODES",
    "EmailOptions",
    "EmailTransport",
    "PartialDelivery",
    "Security",
    "message_id",
    "parse_address",
]
