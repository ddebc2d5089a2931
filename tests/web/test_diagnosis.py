"""A run's stored diagnosis on the dashboard (issue 12): the cost bridge as a waterfall, the
finding sentences, the located gaps and clock shifts, and the change points on /trends.

The diagnosis is written into ``runs.diagnosis`` as the run would store it (the JSON object of
``run --format json``), then read by the real server over HTTP and in a real browser.
Screenshots go to ``$RECON_SCREENSHOTS`` when set.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, update

from recon_job.store.schema import runs
from recon_job.web.diagnosis import change_points, view, waterfall
from tests.web.history import KEY, seed
from tests.web.server import Running, serving

TIMEOUT = 10
BEARER = {"Authorization": f"Bearer {KEY}", "Accept": "text/html"}

#: What the 2026-03-13 run (OpenAI bills $1.35 more: gpt-4o 50 requests short) stores.
DIAGNOSIS: dict[str, Any] = {
    "summary": [
        "OpenAI billed $1.25 more for gpt-4o on 2026-03-13: 50 requests between 14:00 and "
        "16:00 UTC are missing from the local logs.",
        "gpt-4o-mini is logged 3 hours late: the local clock runs ahead of UTC.",
    ],
    "groups": [
        {
            "group": {
                "day": "2026-03-13",
                "family": "completions",
                "model": "gpt-4o",
                "project_id": None,
            },
            "gaps": [
                {
                    "start": "2026-03-13T14:00:00Z",
                    "end": "2026-03-13T16:00:00Z",
                    "quantity": "requests",
                    "difference": "-50",
                    "share_pct": "100.000000",
                    "resolution": "1h",
                }
            ],
            "shift_hours": None,
            "bridge": None,
            "price_findings": [],
            "skipped": None,
        },
        {
            "group": {
                "day": "2026-03-13",
                "family": "completions",
                "model": "gpt-4o-mini",
                "project_id": "proj_a",
            },
            "gaps": [],
            "shift_hours": 3,
            "bridge": None,
            "price_findings": [],
            "skipped": None,
        },
    ],
    "bridge": {
        "difference": "-1.150000",
        "parts": [
            {"name": "coverage", "amount": "-1.250000", "detail": "50 requests not logged"},
            {"name": "token_mix", "amount": "0.100000", "detail": "more cached tokens locally"},
        ],
    },
    "shadow": [],
    "duplicates": None,
    "restatements": [],
    "price_findings": [],
    "change_points": [
        {
            "family": "completions",
            "model": "gpt-4o",
            "day": "2026-03-13",
            "before_pct": "0.000000",
            "after_pct": "-33.333333",
        }
    ],
    "requests_used": 4,
}


def store_diagnosis(url: str, run_id: int, text: str | None) -> None:
    """Write ``runs.diagnosis`` of ``run_id`` as the run would."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(update(runs).where(runs.c.id == run_id).values(diagnosis=text))
    engine.dispose()


@pytest.fixture
def ids(tmp_path: Path) -> tuple[str, dict[str, int]]:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    run_ids = seed(url)
    store_diagnosis(url, run_ids["03-13"], json.dumps(DIAGNOSIS))
    return url, run_ids


@pytest.fixture
def app(ids: tuple[str, dict[str, int]]) -> Iterator[Running]:
    with serving(ids[0]) as running:
        yield running


def get(app: Running, path: str) -> str:
    answer = requests.get(app.url(path), headers=BEARER, timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    return answer.text


def test_the_run_page_shows_the_bridge_the_findings_and_where_the_gap_is(
    app: Running, ids: tuple[str, dict[str, int]]
) -> None:
    page = get(app, f"/runs/{ids[1]['03-13']}")
    chart = page[
        page.index('<svg class="chart waterfall"') : page.index("</svg>", page.index("waterfall"))
    ]
    # Two parts, then the difference: one bar each, coloured by the side each part pushes.
    assert re.findall(r'<g class="step (\w+)">', chart) == ["down", "up", "total"]
    assert "coverage: -$1.25 — 50 requests not logged" in chart
    assert "difference" in chart
    assert "50 requests between 14:00 and 16:00 UTC are missing" in page
    assert "gpt-4o-mini is logged 3 hours late" in page
    assert "2026-03-13 14:00–16:00 UTC: -50 requests (100% of the gap)" in page
    assert "2026-03-13 completions gpt-4o-mini [proj_a]" in page
    assert "+3 h" in page


def test_a_run_without_a_diagnosis_or_with_one_that_found_nothing_shows_none(
    app: Running, ids: tuple[str, dict[str, int]]
) -> None:
    assert 'id="diagnosis"' not in get(app, f"/runs/{ids[1]['03-12']}")
    found_nothing: dict[str, Any] = {
        "summary": [],
        "groups": [],
        "bridge": None,
        "change_points": [],
    }
    store_diagnosis(ids[0], ids[1]["03-12"], json.dumps(found_nothing))
    page = get(app, f"/runs/{ids[1]['03-12']}")
    assert 'id="diagnosis"' not in page
    assert "Run #" in page


def test_the_overview_of_one_run_shows_its_diagnosis_and_a_range_of_several_runs_does_not(
    app: Running,
) -> None:
    one = get(app, "/usage-api?start_date=2026-03-13&end_date=2026-03-13")
    assert 'id="bridge-chart"' in one
    assert "50 requests between 14:00 and 16:00 UTC are missing" in one
    several = get(app, "/usage-api?start_date=2026-03-12&end_date=2026-03-13")
    assert 'id="diagnosis"' not in several


def test_trends_lists_the_change_points_the_runs_found(
    app: Running, ids: tuple[str, dict[str, int]]
) -> None:
    page = get(app, "/trends")
    table = page[page.index('id="change-points"') :]
    assert re.search(r"<td>gpt-4o</td><td>2026-03-13</td><td>\+0\.00%</td><td>-33\.33%</td>", table)
    store_diagnosis(ids[0], ids[1]["03-13"], None)
    with serving(ids[0]) as fresh:
        assert 'id="change-points"' not in get(fresh, "/trends")


def test_the_waterfall_steps_from_zero_through_each_part_to_the_difference() -> None:
    chart = waterfall(DIAGNOSIS["bridge"])
    assert chart is not None
    coverage, mix, total = chart["bars"]
    # coverage goes down from 0 to -1.25; the mix back up by 0.10 from there; the difference
    # is a bar from 0 to -1.15, ending where the steps ended.
    assert coverage["y"] == chart["zero"]
    assert mix["y"] + mix["h"] == pytest.approx(coverage["y"] + coverage["h"], abs=0.11)
    assert total["y"] == chart["zero"]
    assert total["y"] + total["h"] == pytest.approx(mix["y"], abs=0.11)
    assert chart["sums"] is True
    assert chart["difference"] == "-$1.15"
    assert waterfall({"difference": "1", "parts": []}) is None
    assert waterfall({"difference": "x", "parts": [{"name": "a", "amount": "nan"}]}) is None
    assert view(None) is None


def test_change_points_are_listed_once_the_newest_run_first() -> None:
    newer = {"change_points": [{**DIAGNOSIS["change_points"][0], "after_pct": "-40"}]}
    points = change_points([newer, DIAGNOSIS, {"change_points": "nonsense"}])
    assert [(p["label"], p["day"], p["after"]) for p in points] == [
        ("gpt-4o", "2026-03-13", "-40.00%")
    ]
    assert Decimal(points[0]["before"].rstrip("%")) == 0


@pytest.mark.slow
def test_a_person_sees_the_bridge_and_the_findings_in_a_browser(
    app: Running, ids: tuple[str, dict[str, int]], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    from tests.web.test_browser import _driver, _no_console_errors

    shots = Path(os.environ.get("RECON_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    browser = _driver()
    try:
        browser.get(app.url(f"/runs/{ids[1]['03-13']}?key={KEY}"))
        chart = browser.find_element(By.ID, "bridge-chart")
        assert chart.size["height"] > 150
        bars = browser.find_elements(By.CSS_SELECTOR, "#bridge-chart g.step rect")
        assert len(bars) == 3
        assert all(b.size["height"] > 1 for b in bars)
        findings = browser.find_elements(By.CSS_SELECTOR, "#findings li")
        assert len(findings) == 2
        assert "missing from the local logs" in findings[0].text
        located = browser.find_element(By.ID, "located").text
        assert "+3 h" in located
        browser.execute_script("document.getElementById('diagnosis').scrollIntoView()")
        browser.save_screenshot(str(shots / "run-diagnosis.png"))
        _no_console_errors(browser)

        browser.get(app.url("/trends"))
        points = browser.find_element(By.ID, "change-points").text
        assert "gpt-4o 2026-03-13 +0.00% -33.33%" in points
        browser.execute_script("document.getElementById('change-points').scrollIntoView()")
        browser.save_screenshot(str(shots / "trends-change-points.png"))
        _no_console_errors(browser)
    finally:
        browser.quit()
