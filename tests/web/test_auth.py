"""Who may see the dashboard and call the admin API: every way in, and every way refused.

A real uvicorn server on 127.0.0.1 and a real HTTP client; the key never shows up anywhere.
"""

from __future__ import annotations

import pytest
import requests

from recon_job.web.auth import COOKIE, MAX_FAILURES
from tests.web.history import KEY
from tests.web.server import Running, serving

TIMEOUT = 10


def test_without_a_key_the_dashboard_and_api_do_not_exist_but_probes_do(history_url: str) -> None:
    with serving(history_url, key=None) as app:
        for path in ("/usage-api", "/runs", "/api/v1/runs", "/login", f"/usage-api?key={KEY}"):
            assert requests.get(app.url(path), timeout=TIMEOUT).status_code == 404, path
        answer = requests.post(
            app.url("/api/admin/reconcile-openai-costs"),
            json={"csvContent": "", "dryRun": True},
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=TIMEOUT,
        )
        assert answer.status_code == 404
        assert requests.get(app.url("/livez"), timeout=TIMEOUT).status_code == 200
        assert requests.get(app.url("/metrics"), timeout=TIMEOUT).status_code == 200


def test_no_credentials_get_a_login_form_in_a_browser_and_json_from_the_api(app: Running) -> None:
    page = app.browser().get(app.url("/usage-api"), timeout=TIMEOUT)
    assert page.status_code == 401
    assert page.headers["content-type"].startswith("text/html")
    assert 'action="/login"' in page.text
    assert 'name="key"' in page.text
    api = requests.get(app.url("/api/v1/runs"), timeout=TIMEOUT)
    assert api.status_code == 401
    assert api.json() == {"error": "sign in with the dashboard key"}


def test_a_wrong_key_is_refused_every_way(app: Running) -> None:
    wrong = "w" * 24
    assert requests.get(
        app.url("/api/v1/runs"), headers={"Authorization": f"Bearer {wrong}"}, timeout=TIMEOUT
    ).json() == {"error": "wrong dashboard key"}
    answer = app.browser().get(app.url(f"/usage-api?key={wrong}"), allow_redirects=False)
    assert answer.status_code == 401
    assert COOKIE not in answer.cookies
    form = app.browser().post(app.url("/login"), data={"key": wrong, "next": "/runs"})
    assert form.status_code == 401
    assert "wrong dashboard key" in form.text
    assert wrong not in form.text


def test_a_bearer_header_opens_the_api(app: Running) -> None:
    answer = requests.get(
        app.url("/api/v1/runs"), headers={"Authorization": f"Bearer {KEY}"}, timeout=TIMEOUT
    )
    assert answer.status_code == 200
    assert [r["status"] for r in answer.json()["runs"]][:2] == ["failed", "mismatch"]


def test_a_query_key_becomes_a_session_cookie_and_leaves_the_address(app: Running) -> None:
    browser = app.browser()
    first = browser.get(
        app.url(f"/usage-api?start_date=2026-03-09&key={KEY}"), allow_redirects=False
    )
    assert first.status_code == 303
    assert first.headers["location"] == "/usage-api?start_date=2026-03-09"
    cookie = first.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert "Secure" not in cookie  # plain http on loopback
    assert KEY not in cookie
    page = browser.get(app.url(first.headers["location"]), timeout=TIMEOUT)
    assert page.status_code == 200
    assert KEY not in page.text
    assert "Mismatch Detected" in page.text


def test_cookies_are_secure_when_configured(history_url: str) -> None:
    with serving(history_url, secure_cookies=True) as app:
        first = app.browser().get(app.url(f"/usage-api?key={KEY}"), allow_redirects=False)
        assert "Secure" in first.headers["set-cookie"]


def test_the_login_form_signs_in_and_redirects_only_within_the_site(app: Running) -> None:
    browser = app.browser()
    answer = browser.post(
        app.url("/login"), data={"key": KEY, "next": "//evil.example/x"}, allow_redirects=False
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/usage-api"
    assert browser.get(app.url("/runs"), timeout=TIMEOUT).status_code == 200


def test_state_changes_need_the_csrf_token_or_the_bearer_header(app: Running) -> None:
    browser = app.signed_in()
    page = browser.get(app.url("/runs"), timeout=TIMEOUT).text
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    refused = browser.post(app.url("/logout"), data={}, allow_redirects=False)
    assert refused.status_code == 403
    assert "CSRF" in refused.text
    wrong = browser.post(app.url("/logout"), data={"csrf_token": "x" * 64}, allow_redirects=False)
    assert wrong.status_code == 403
    done = browser.post(app.url("/logout"), data={"csrf_token": token}, allow_redirects=False)
    assert done.status_code == 303
    assert browser.get(app.url("/runs"), timeout=TIMEOUT).status_code == 401


def test_failed_attempts_are_rate_limited_per_client(app: Running) -> None:
    wrong = {"Authorization": "Bearer " + "w" * 24}
    for _ in range(MAX_FAILURES):
        assert (
            requests.get(app.url("/api/v1/runs"), headers=wrong, timeout=TIMEOUT).status_code == 401
        )
    limited = requests.get(app.url("/api/v1/runs"), headers=wrong, timeout=TIMEOUT)
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) > 0
    # Even the right key waits: a guesser cannot tell when it found it.
    right = {"Authorization": f"Bearer {KEY}"}
    assert requests.get(app.url("/api/v1/runs"), headers=right, timeout=TIMEOUT).status_code == 429


@pytest.mark.parametrize("path", ["/usage-api", "/livez", "/login", "/static/style.css"])
def test_every_answer_carries_the_security_headers(app: Running, path: str) -> None:
    answer = app.signed_in().get(app.url(path), timeout=TIMEOUT)
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["referrer-policy"] == "no-referrer"


def test_no_page_or_answer_holds_the_key(app: Running) -> None:
    browser = app.signed_in()
    for path in (
        "/usage-api",
        "/usage-api?format=json",
        "/usage-api?format=csv",
        "/runs",
        "/runs/1",
        "/api/openapi.json",
    ):
        answer = browser.get(app.url(path), timeout=TIMEOUT)
        assert answer.status_code == 200, path
        assert KEY not in answer.text, path
