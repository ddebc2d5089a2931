"""The URL checks of the HTTP channels: no internal targets for webhooks, only Slack for Slack."""

from __future__ import annotations

import socket

import pytest

from recon_job.notify.urls import validate_slack_webhook_url, validate_webhook_url


def public(host: str, port: int, **_: object) -> list[tuple[object, ...]]:
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]


def internal(host: str, port: int, **_: object) -> list[tuple[object, ...]]:
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", port))]


def unresolvable(host: str, port: int, **_: object) -> list[tuple[object, ...]]:
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def test_a_public_https_url_is_fine() -> None:
    assert validate_webhook_url("https://hooks.example.com/x?token=abc", resolve=public) == []


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://hooks.example.com/x", "https"),
        ("ftp://hooks.example.com/x", "https"),
        ("https://127.0.0.1/x", "loopback"),
        ("https://[::1]/x", "loopback"),
        ("https://[::ffff:127.0.0.1]/x", "loopback"),
        ("https://10.0.0.1/x", "private"),
        ("https://192.168.1.5/x", "private"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("http://169.254.169.254/latest/meta-data", "https"),
        ("https://100.64.0.1/x", "not a public address"),
        ("https://user:pa55word@hooks.example.com/x", "user name or password"),
        ("https:///x", "no host"),
        ("https://hooks.example.com:99999/x", "not a valid URL"),
    ],
)
def test_unsafe_webhook_urls_are_refused(url: str, fragment: str) -> None:
    problems = validate_webhook_url(url, resolve=public)

    assert any(fragment in p for p in problems), problems
    assert not any("pa55word" in p or "meta-data" in p for p in problems)


def test_a_name_that_resolves_to_a_private_address_is_refused() -> None:
    [problem] = validate_webhook_url("https://rebind.example.com/x", resolve=internal)

    assert "resolves to 10.1.2.3" in problem


def test_localhost_is_refused_through_real_resolution() -> None:
    [problem] = validate_webhook_url("https://localhost/x")

    assert "loopback" in problem


def test_a_name_that_does_not_resolve_is_a_problem() -> None:
    assert validate_webhook_url("https://nowhere.example/x", resolve=unresolvable) == [
        "cannot resolve the webhook host nowhere.example"
    ]


def test_private_targets_are_allowed_when_asked() -> None:
    assert validate_webhook_url("http://127.0.0.1:8080/x", allow_private=True) == []
    assert validate_webhook_url("https://10.0.0.1/x", allow_private=True) == []
    assert validate_webhook_url("ftp://10.0.0.1/x", allow_private=True) != []


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://hooks.slack.com/services/T000/B000/XXXX", True),
        ("https://HOOKS.slack.com/services/T000/B000/XXXX", True),
        ("https://hooks.slack.com:443/services/T000/B000/XXXX", True),
        ("https://hooks.slack.com.evil.tld/services/T000/B000/XXXX", False),
        ("https://evilhooks.slack.com/services/T000/B000/XXXX", False),
        ("http://hooks.slack.com/services/T000/B000/XXXX", False),
        ("https://hooks.slack.com:8443/services/T000/B000/XXXX", False),
        ("https://x@hooks.slack.com/services/T000/B000/XXXX", False),
        ("https://127.0.0.1/services/T000/B000/XXXX", False),
    ],
)
def test_slack_urls_must_be_https_on_hooks_slack_com_exactly(url: str, ok: bool) -> None:
    problems = validate_slack_webhook_url(url)

    assert (problems == []) is ok, problems
    assert not any("XXXX" in p for p in problems)


# --- issue 9 item 24: IPv6 addresses that carry a private IPv4 one ---------------------------


@pytest.mark.parametrize(
    ("address", "inner"),
    [
        ("64:ff9b::a00:1", "10.0.0.1"),  # NAT64 well-known prefix
        ("64:ff9b::7f00:1", "127.0.0.1"),
        ("64:ff9b::a9fe:a9fe", "169.254.169.254"),
        ("2002:a00:1::1", "10.0.0.1"),  # 6to4
        ("2002:c0a8:105::", "192.168.1.5"),
        ("::10.0.0.1", "10.0.0.1"),  # IPv4-compatible
        ("::127.0.0.1", "127.0.0.1"),
        ("::ffff:0:10.0.0.1", "10.0.0.1"),  # IPv4-translated
    ],
)
def test_an_ipv6_address_embedding_a_private_ipv4_is_refused(address: str, inner: str) -> None:
    def resolves_to(host: str, port: int, **_: object) -> list[tuple[object, ...]]:
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))]

    [literal] = validate_webhook_url(f"https://[{address}]/x", resolve=public)
    [named] = validate_webhook_url("https://hooks.example.com/x", resolve=resolves_to)

    assert f"embedding {inner}" in literal
    assert f"resolves to {address}" in named
    assert f"embedding {inner}" in named


def test_a_local_use_nat64_address_is_refused_whatever_it_embeds() -> None:
    [problem] = validate_webhook_url("https://[64:ff9b:1::808:808]/x", resolve=public)

    assert "local-use NAT64" in problem


@pytest.mark.parametrize("address", ["64:ff9b::808:808", "2002:808:808::1", "2606:4700::1111"])
def test_an_ipv6_address_reaching_a_public_host_is_fine(address: str) -> None:
    assert validate_webhook_url(f"https://[{address}]/x", resolve=public) == []
