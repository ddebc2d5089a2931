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
