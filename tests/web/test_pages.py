"""The alerts and trends pages: what they show from the history."""

from __future__ import annotations

import requests

from recon_job.models import Message
from recon_job.store import HistoryStore, OutboxItem
from tests.web.history import KEY, NOW
from tests.web.server import Running, serving


def test_the_alerts_page_lists_notifications_with_their_state(history_url: str) -> None:
    with HistoryStore(history_url) as store:
        message = Message(
            dedupe_key="drift-13",
            event="opened",
            group_key="daily:2026-03-13",
            subject="Mismatch on 2026-03-13",
            text="t",
            html="<p>t</p>",
            slack_text="t",
        )
        store.enqueue([OutboxItem("slack", message, run_id=5)], now=NOW)
    with serving(history_url) as app:
        page = app.signed_in().get(app.url("/alerts"), timeout=10).text
    assert "daily:2026-03-13" in page
    assert "slack" in page
    assert "pending" in page
    assert 'href="/runs/5"' in page


def test_the_trends_page_puts_the_model_drifting_most_first(app: Running) -> None:
    page = app.signed_in().get(app.url("/trends"), timeout=10).text
    assert "2026-12-" not in page
    first, second = page.index("<td>gpt-4o</td>"), page.index("<td>gpt-4o-mini</td>")
    assert first < second  # -$1.25 drifts more than +$0.10
    assert "-$1.25" in page


def test_alerts_and_trends_need_the_key(app: Running) -> None:
    for path in ("/alerts", "/trends"):
        assert requests.get(app.url(path), timeout=10).status_code == 401
        bearer = {"Authorization": f"Bearer {KEY}"}
        assert requests.get(app.url(path), headers=bearer, timeout=10).status_code == 200


def test_no_such_path_and_a_wrong_method_answer_in_the_error_shape(app: Running) -> None:
    # They answered FastAPI's {"detail": "Not Found"}, even to a browser.
    bearer = {"Authorization": f"Bearer {KEY}"}
    missing = requests.get(app.url("/api/v1/nope"), headers=bearer, timeout=10)
    assert (missing.status_code, missing.json()) == (404, {"error": "not found"})
    wrong = requests.put(app.url("/api/v1/runs"), headers=bearer, timeout=10)
    assert (wrong.status_code, wrong.json()) == (405, {"error": "PUT is not allowed here"})
    assert "GET" in wrong.headers["Allow"]
    page = app.signed_in().get(app.url("/nope"), headers={"Accept": "text/html"}, timeout=10)
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "not found" in page.text
