"""Fixtures for the channel tests: a throwaway CA, and real SMTP servers (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session, syntax
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pytest_httpserver import HTTPServer

HOST = "127.0.0.1"
#: A public-looking name the tests resolve themselves (``Certs.named_context`` is valid for it).
PUBLIC_NAME = "hooks.example.com"
USERNAME = "alerts"
PASSWORD = "hunter2-canary-Pw9"


@dataclass(frozen=True)
class Certs:
    """A CA, a server certificate it signed (for 127.0.0.1), and an untrusted self-signed one."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    untrusted_cert_file: Path
    untrusted_key_file: Path
    #: A certificate the CA signed for :data:`PUBLIC_NAME` (a DNS-rebinding test's server).
    named_cert_file: Path
    named_key_file: Path

    def named_context(self) -> ssl.SSLContext:
        """A server context presenting the certificate for :data:`PUBLIC_NAME`."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.named_cert_file, self.named_key_file)
        return ctx

    def server_context(self, *, trusted: bool = True) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if trusted:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        else:
            ctx.load_cert_chain(self.untrusted_cert_file, self.untrusted_key_file)
        return ctx


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    names: tuple[str, ...] = ("localhost",),
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    *(x509.DNSName(name) for name in names),
                    x509.IPAddress(ipaddress.ip_address(HOST)),
                ]
            ),
            critical=False,
        ).add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """Generated once per session with ``cryptography`` (no network, no openssl CLI)."""
    root = tmp_path_factory.mktemp("certs")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("recon-job test CA", ca_key, "recon-job test CA", ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert(HOST, key, "recon-job test CA", ca_key, ca=False)
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = _cert(HOST, other_key, HOST, other_key, ca=False)
    named_key = ec.generate_private_key(ec.SECP256R1())
    named = _cert(
        PUBLIC_NAME, named_key, "recon-job test CA", ca_key, ca=False, names=(PUBLIC_NAME,)
    )
    pem = serialization.Encoding.PEM
    return Certs(
        ca_file=_write(root / "ca.pem", ca.public_bytes(pem)),
        cert_file=_write(root / "server.pem", cert.public_bytes(pem)),
        key_file=_write(root / "server.key", _key_pem(key)),
        untrusted_cert_file=_write(root / "self.pem", other.public_bytes(pem)),
        untrusted_key_file=_write(root / "self.key", _key_pem(other_key)),
        named_cert_file=_write(root / "named.pem", named.public_bytes(pem)),
        named_key_file=_write(root / "named.key", _key_pem(named_key)),
    )


@dataclass
class Recorder:
    """An aiosmtpd handler that records what it received and refuses what it is told to."""

    #: address -> SMTP reply for RCPT TO (e.g. "550 5.1.1 no such user").
    refuse: dict[str, str] = field(default_factory=dict)
    #: Close the connection after the DATA terminator, before any reply.
    drop_after_data: bool = False
    #: Accepted messages: (MAIL FROM, RCPT TOs, raw content).
    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    #: Commands seen that matter to the tests (``AUTH``, ``STARTTLS``).
    commands: list[str] = field(default_factory=list)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.drop_after_data:
            transport = server.transport
            assert isinstance(transport, asyncio.Transport)
            transport.abort()
            return "250 never sent"
        content = envelope.original_content or b""
        self.messages.append((str(envelope.mail_from), list(envelope.rcpt_tos), content))
        return "250 Message accepted"


class RecordingSMTP(SMTP):
    """aiosmtpd's SMTP, noting every AUTH and STARTTLS command before handling it."""

    @syntax("AUTH <mechanism>")
    async def smtp_AUTH(self, arg: str) -> None:
        self.event_handler.commands.append("AUTH")
        await super().smtp_AUTH(arg)

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str) -> None:
        self.event_handler.commands.append("STARTTLS")
        await super().smtp_STARTTLS(arg)


class RecordingController(Controller):
    def factory(self) -> SMTP:
        return RecordingSMTP(self.handler, **self.SMTP_kwargs)


def _authenticate(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = auth_data.login == USERNAME.encode() and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


@dataclass
class Server:
    """A running SMTP server: where it listens and what it recorded."""

    port: int
    recorder: Recorder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


SmtpFactory = Callable[..., Server]


@pytest.fixture
def smtp_server(certs: Certs) -> Iterator[SmtpFactory]:
    """Start real SMTP servers: ``smtp_server(mode="plain"|"ssl"|"starttls", trusted=True,
    auth=False, refuse={}, drop_after_data=False)``; all are stopped at teardown."""
    started: list[Controller] = []

    def start(
        *,
        mode: str = "plain",
        trusted: bool = True,
        auth: bool = False,
        refuse: dict[str, str] | None = None,
        drop_after_data: bool = False,
    ) -> Server:
        recorder = Recorder(refuse=dict(refuse or {}), drop_after_data=drop_after_data)
        kwargs: dict[str, Any] = {}
        if auth:
            kwargs["authenticator"] = _authenticate
        ssl_context = None
        if mode == "ssl":
            ssl_context = certs.server_context(trusted=trusted)
            # aiosmtpd only counts STARTTLS as TLS; implicit TLS is TLS all the same.
            kwargs["auth_require_tls"] = False
        elif mode == "starttls":
            kwargs["tls_context"] = certs.server_context(trusted=trusted)
        port = _free_port()
        controller = RecordingController(
            recorder,
            hostname=HOST,
            port=port,
            ssl_context=ssl_context,
            server_hostname="smtp.test",
            **kwargs,
        )
        controller.start()
        started.append(controller)
        return Server(port=port, recorder=recorder)

    yield start
    for controller in started:
        controller.stop()


@pytest.fixture(scope="module")
def _receiver() -> Iterator[HTTPServer]:
    server = HTTPServer(host=HOST, port=0)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


@pytest.fixture
def httpserver(_receiver: HTTPServer) -> HTTPServer:
    """pytest-httpserver's real HTTP server, bound to 127.0.0.1 (not "localhost"), cleared."""
    _receiver.clear()
    return _receiver


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections (the kernel backlog) but never answers."""
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        listener.listen(8)
        port: int = listener.getsockname()[1]
        yield port
