"""Page views never call OpenAI; "Reconcile this range" does, once, through the run path."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import requests

from recon_job.config import load_settings
from tests.e2e import D1, drifting_world, environment
from tests.fakeopenai import FakeOpenAI, fake_openai_fixture  # noqa: F401
from tests.web.history import KEY
from tests.web.server import serving

AFTER = datetime(2026, 8, 5, 12, tzinfo=UTC)


def test_pages_never_call_openai_and_reconcile_this_range_does_once(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    (tmp_path / "logs").mkdir()
    drifting_world(fake_openai, tmp_path)
    settings = load_settings(None, environ=environment(tmp_path, fake_openai, {}))
    url = settings.history.database_url.get_secret_value()
    from recon_job.store import HistoryStore

    HistoryStore(url).close()  # an empty history, as after installing
    with serving(url, settings=settings, clock=lambda: AFTER) as app:
        browser = app.signed_in()
        query = f"start_date={D1}&end_date={D1}"
        page = browser.get(app.url(f"/usage-api?{query}"), timeout=10).text
        for path in (
            "/usage-api",
            "/runs",
            "/trends",
            "/alerts",
            f"/usage-api?{query}&format=json",
        ):
            assert browser.get(app.url(path), timeout=10).status_code == 200
        assert fake_openai.requests == []  # no page view asked OpenAI anything
        assert "Not reconciled yet" in page
        token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        # Year 1 ran the diagnosis's look-back off the calendar after asking OpenAI: a 500 and
        # a failed run. It is refused before anything is asked or recorded.
        year_one = {"csrf_token": token, "start_date": "0001-01-01", "end_date": "0001-01-01"}
        refused = browser.post(app.url("/usage-api/reconcile"), data=year_one, timeout=60)
        assert refused.status_code == 400
        assert "is before 1970-01-01" in refused.text
        assert fake_openai.requests == []
        form = {"csrf_token": token, "start_date": str(D1), "end_date": str(D1)}
        done = browser.post(app.url("/usage-api/reconcile"), data=form, timeout=60)
        assert done.status_code == 200
        assert "⚠ Mismatch Detected" in done.text
        assert fake_openai.requests
        again = browser.post(app.url("/usage-api/reconcile"), data=form, timeout=60)
        assert again.status_code == 429  # one per 30 s: the Usage API is not to be spammed
        no_token = requests.post(
            app.url("/usage-api/reconcile"),
            data={"start_date": str(D1), "end_date": str(D1)},
            cookies=browser.cookies,
            timeout=10,
        )
        assert no_token.status_code == 403
        bearer = {"Authorization": f"Bearer {KEY}"}
        runs = requests.get(app.url("/api/v1/runs"), headers=bearer, timeout=10).json()["runs"]
        assert runs[0]["trigger"] == "dashboard"


def test_a_reconcile_refused_by_the_settings_does_not_use_up_the_slot(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    # A channel URL the run refuses (http) failed before asking OpenAI anything, and still made
    # the next try wait 30 s.
    (tmp_path / "logs").mkdir()
    drifting_world(fake_openai, tmp_path)
    environ = environment(tmp_path, fake_openai, {"RECON_WEBHOOK_URL": "http://hooks.example/x"})
    settings = load_settings(None, environ=environ)
    url = settings.history.database_url.get_secret_value()
    from recon_job.store import HistoryStore

    HistoryStore(url).close()
    with serving(url, settings=settings, clock=lambda: AFTER) as app:
        browser = app.signed_in()
        page = browser.get(app.url(f"/usage-api?start_date={D1}&end_date={D1}"), timeout=10)
        token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        form = {"csrf_token": token, "start_date": str(D1), "end_date": str(D1)}
        for _ in range(2):
            refused = browser.post(app.url("/usage-api/reconcile"), data=form, timeout=60)
            assert refused.status_code == 503, refused.text
            assert "RECON_WEBHOOK_URL" in refused.text
        assert fake_openai.requests == []
