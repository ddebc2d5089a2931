"""The connect-time half of the SSRF rules: check the address actually dialled, every time.

:func:`recon_job.notify.urls.validate_webhook_url` checks a webhook's host when the settings are
loaded. A name can resolve differently a minute later — a short TTL and a changed answer (DNS
rebinding) turn a public-looking host into ``127.0.0.1`` or ``169.254.169.254`` after the check
passed. So a channel that may only reach public addresses mounts :class:`PublicOnlyAdapter` on
its session (:func:`public_only`): every new connection resolves the host once, refuses if any
address it got is not public (:func:`~recon_job.notify.urls.forbidden_reason`, embedded IPv4
included), and connects to exactly the addresses it checked — never resolving again between the
check and the connect. TLS still verifies the certificate against the host name.

A refused connection raises :class:`ForbiddenAddressError` inside urllib3; requests reports it
as a ``ConnectionError`` whose cause chain holds it (:func:`blocked_by`).

Through a proxy (``HTTPS_PROXY``) the proxy dials, not us; it is then the egress fence
(reliability.md §8: "resolve-and-check … or egress via proxy").
"""

from __future__ import annotations

import socket
from typing import Any

import requests
import urllib3.connection
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
)
from urllib3.util.connection import allowed_gai_family, create_connection

from recon_job.notify.urls import forbidden_reason


class ForbiddenAddressError(NewConnectionError):
    """The host resolved, when connecting, to an address a public-only channel may not reach."""

    def __init__(
        self, conn: urllib3.connection.HTTPConnection, host: str, address: str, why: str
    ) -> None:
        super().__init__(conn, f"{host} resolved to {address}, {why}; not connecting")
        #: The host name of the URL (not a secret: the path and query are).
        self.host = host
        #: The address it resolved to.
        self.address = address
        #: Why that address is refused ("a loopback address").
        self.why = why


def _dial(conn: urllib3.connection.HTTPConnection) -> socket.socket:
    """Resolve ``conn``'s host once, refuse any non-public answer, connect to what was checked."""
    host, port = conn.host, conn.port
    try:
        infos = socket.getaddrinfo(host, port, allowed_gai_family(), socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise NameResolutionError(host, conn, e) from e
    for info in infos:
        address = str(info[4][0])
        why = forbidden_reason(address)
        if why is not None:
            raise ForbiddenAddressError(conn, host, address, why)
    error: OSError | None = None
    for info in infos:
        try:
            # An IP literal: create_connection resolves nothing more, so the address dialled
            # is the address checked.
            return create_connection(
                (str(info[4][0]), port),
                conn.timeout,
                source_address=conn.source_address,
                socket_options=conn.socket_options,
            )
        except TimeoutError as e:
            raise ConnectTimeoutError(
                conn, f"Connection to {host} timed out. (connect timeout={conn.timeout})"
            ) from e
        except OSError as e:
            error = e
    raise NewConnectionError(conn, f"Failed to establish a new connection: {error}") from error


class _PublicHTTPConnection(urllib3.connection.HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _dial(self)


class _PublicHTTPSConnection(urllib3.connection.HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _dial(self)


class _PublicHTTPPool(HTTPConnectionPool):
    ConnectionCls = _PublicHTTPConnection


class _PublicHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _PublicHTTPSConnection


class PublicOnlyAdapter(HTTPAdapter):
    """A requests adapter whose every new connection goes to public addresses only."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """Make the pool manager build guarded pools for ``http`` and ``https``."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _PublicHTTPPool,
            "https": _PublicHTTPSPool,
        }


def public_only(session: requests.Session) -> None:
    """Mount :class:`PublicOnlyAdapter` on ``session`` for ``http://`` and ``https://``.

    The adapters it replaces keep nothing but their retry rules, which the new ones take over.
    """
    for prefix in ("https://", "http://"):
        current = session.get_adapter(prefix)
        retries = current.max_retries if isinstance(current, HTTPAdapter) else 0
        session.mount(prefix, PublicOnlyAdapter(max_retries=retries))


def blocked_by(exc: BaseException) -> ForbiddenAddressError | None:
    """The :class:`ForbiddenAddressError` behind a requests/urllib3 exception, if one is."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ForbiddenAddressError):
            return current
        if isinstance(current, MaxRetryError) and current.reason is not None:
            todo.append(current.reason)
        todo.extend(arg for arg in current.args if isinstance(arg, BaseException))
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return None


__all__ = ["ForbiddenAddressError", "PublicOnlyAdapter", "blocked_by", "public_only"]
