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


def _forbidden(address: str) -> str | None:
    """Why ``address`` may not be a webhook target (None: it is a public address)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if ip.is_private:
        return "a private address"
    if not ip.is_global or ip.is_multicast:
        return "not a public address"
    return None


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
        why = _forbidden(literal)
        return [f"the webhook host {host} is {why}"] if why else []
    try:
        infos = list(resolve(host, port, proto=socket.IPPROTO_TCP))
    except (OSError, UnicodeError):
        return [f"cannot resolve the webhook host {host}"]
    for info in infos:
        address = str(info[4][0])
        why = _forbidden(address)
        if why:
            return [f"the webhook host {host} resolves to {address}, {why}"]
    if not infos:
        return [f"cannot resolve the webhook host {host}"]
    return []


def validate_webhook_url(
    url: str, *, allow_private: bool = False, resolve: Resolver = socket.getaddrinfo
) -> list[str]:
    """Problems with a generic webhook URL (empty list: fine). Never quotes the URL itself.

    Only ``https`` (``http`` too when ``allow_private``, for tests and intranets); no user
    info; and unless ``allow_private``, no host that is, or resolves to, a loopback, private
    (RFC 1918, unique-local), link-local (``169.254.169.254``) or otherwise non-public address
    (OWASP SSRF cheat sheet; reliability.md §8). A name that does not resolve is a problem
    too. This is a config-time check; DNS may change later, so egress rules (a proxy, a K8s
    NetworkPolicy) remain the real fence — redirects are never followed, which closes the
    other path.
    """
    problems, host, port = _basic_problems(url, "webhook", allow_http=allow_private)
    if problems or allow_private:
        return problems
    return _address_problems(host, port, resolve)


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


__all__ = ["SLACK_HOST", "Resolver", "validate_slack_webhook_url", "validate_webhook_url"]
