"""Which URLs an HTTP channel may post to, checked when the settings are loaded.

:func:`validate_webhook_url` keeps the generic webhook off internal addresses (the SSRF rules of
reliability.md §8); :func:`validate_slack_webhook_url` accepts only Slack's own webhook host.
Both return every problem as a sentence and never quote the URL: its path or query is the
channel's token.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from typing import Any, Final
from urllib.parse import urlsplit

#: The only host a Slack incoming webhook may name.
SLACK_HOST: Final = "hooks.slack.com"

#: ``socket.getaddrinfo``'s shape, so tests can resolve names without DNS.
Resolver = Callable[..., Iterable[tuple[Any, ...]]]


#: NAT64's well-known prefix (RFC 6052): the last 32 bits are an IPv4 address.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
#: Local-use NAT64 prefixes (RFC 8215): operator-defined, the IPv4 part anywhere in them.
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
#: IPv4-compatible addresses (RFC 4291 §2.5.5.1, deprecated): ``::a.b.c.d``.
_COMPATIBLE = ipaddress.ip_network("::/96")
#: IPv4-translated addresses (RFC 2765 SIIT): ``::ffff:0:a.b.c.d``.
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries, when it is one that reaches an IPv4 host.

    IPv4-mapped (``::ffff:a.b.c.d``), IPv4-compatible (``::a.b.c.d``), IPv4-translated,
    NAT64 (``64:ff9b::a.b.c.d``), 6to4 (``2002:AABB:CCDD::``) and Teredo (its client) all
    reach the IPv4 address inside — a private one included, through a gateway on the path.
    """
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    low = ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    if ip in _NAT64 or ip in _TRANSLATED:
        return low
    if ip in _COMPATIBLE and int(ip) > 1:  # not :: (unspecified) or ::1 (loopback)
        return low
    return None


def _why(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if ip.is_private:
        return "a private address"
    if not ip.is_global or ip.is_multicast:
        return "not a public address"
    return None


def forbidden_reason(address: str) -> str | None:
    """Why ``address`` (an IP literal) may not be a webhook target; None: a public address.

    An IPv6 address that carries an IPv4 one (:func:`embedded_ipv4`) is judged by that IPv4
    address: ``64:ff9b::10.0.0.1`` reaches 10.0.0.1 through a NAT64 gateway.
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL:
            return "a local-use NAT64 address (it may reach any internal IPv4 host)"
        inner = embedded_ipv4(ip)
        if inner is not None:
            why = _why(inner)
            return f"an IPv6 address embedding {inner}, {why}" if why else None
    return _why(ip)


def _basic_problems(url: str, what: str, *, allow_http: bool) -> tuple[list[str], str, int]:
    """The scheme, user-info and host problems of ``url``, its host and its port."""
    problems: list[str] = []
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return [f"the {what} URL is not a valid URL"], "", 0
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        problems.append(
            f"the {what} URL must use https"
            + (" (or http)" if allow_http else "")
            + f", not {parts.scheme or 'no scheme'}"
        )
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        problems.append(f"the {what} URL must not contain a user name or password")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        problems.append(f"the {what} URL has no host")
    return problems, host, port or (443 if parts.scheme == "https" else 80)


def _address_problems(host: str, port: int, resolve: Resolver) -> list[str]:
    """Problems with where ``host`` is: a non-public literal address or a name resolving to one."""
    try:
        literal: str | None = str(ipaddress.ip_address(host.split("%", 1)[0]))
    except ValueError:
        literal = None
    if literal is not None:
        why = forbidden_reason(literal)
        return [f"the webhook host {host} is {why}"] if why else []
    try:
        infos = list(resolve(host, port, proto=socket.IPPROTO_TCP))
    except (OSError, UnicodeError):
        return [f"cannot resolve the webhook host {host}"]
    for info in infos:
        address = str(info[4][0])
        why = forbidden_reason(address)
        if why:
            return [f"the webhook host {host} resolves to {address}, {why}"]
    if not infos:
        return [f"cannot resolve the webhook host {host}"]
    return []


def validate_webhook_url(
    url: str, *, allow_private: bool = False, resolve: Resolver | None = None
) -> list[str]:
    """Problems with a generic webhook URL (empty list: fine). Never quotes the URL itself.

    Only ``https`` (``http`` too when ``allow_private``, for tests and intranets); no user
    info; and unless ``allow_private``, no host that is, or resolves to, a loopback, private
    (RFC 1918, unique-local), link-local (``169.254.169.254``) or otherwise non-public address
    (OWASP SSRF cheat sheet; reliability.md §8). A name that does not resolve is a problem
    too. ``resolve`` defaults to ``socket.getaddrinfo``.

    This is the config-time check. DNS may answer differently later (DNS rebinding), so the
    same rules are applied again to the address actually dialled, on every connection
    (:mod:`recon_job.notify.guard`); redirects are never followed, which closes the other path.
    """
    problems, host, port = _basic_problems(url, "webhook", allow_http=allow_private)
    if problems or allow_private:
        return problems
    return _address_problems(host, port, resolve or socket.getaddrinfo)


def validate_slack_webhook_url(url: str) -> list[str]:
    """Problems with a Slack incoming-webhook URL: https, host exactly ``hooks.slack.com``.

    An exact host match, not a prefix or suffix test: ``hooks.slack.com.evil.tld`` and
    ``evilhooks.slack.com`` are refused. The URL itself (a secret) is never quoted.
    """
    problems, host, port = _basic_problems(url, "Slack webhook", allow_http=False)
    if host and host.lower() != SLACK_HOST:
        problems.append(f"the Slack webhook host must be {SLACK_HOST}, not {host}")
    if host and port != 443:
        problems.append("the Slack webhook URL must not name a port other than 443")
    return problems


__all__ = [
    "SLACK_HOST",
    "Resolver",
    "embedded_ipv4",
    "forbidden_reason",
    "validate_slack_webhook_url",
    "validate_webhook_url",
]
