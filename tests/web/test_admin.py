"""The admin API against a real server: the seed's request and answer shapes, write-back on
every database, and the refusals (409, 413, 422, CSRF)."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.databases import ALL
from tests.per_request.test_reconcile import APPLIED, REQUESTS_CSV, Db, sql_settings
from tests.web.history import KEY
from tests.web.server import Running, serving

URL = "/api/admin/reconcile-openai-costs"
BEARER = {"Authorization": f"Bearer {KEY}"}
CSV = REQUESTS_CSV.read_text(encoding="utf-8")
SUMMARY_KEYS = {
    "total",
    "pending",
    "matched",
    "discrepancies",
    "totalEstimatedCents",
    "totalActualCents",
    "totalDifferenceCents",
}


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Db:
    [db] = Db.fresh(ALL[0], tmp_path)
    db.create()
    return db


def post(app: Running, body: object, **kwargs: object) -> requests.Response:
    return requests.post(app.url(URL), json=body, headers=BEARER, timeout=30, **kwargs)  # type: ignore[arg-type]


def test_a_dry_run_answers_in_the_seed_shape_and_writes_nothing(
    history_url: str, sqlite_db: Db, tmp_path: Path
) -> None:
    before = sqlite_db.state()
    with serving(history_url, settings=sql_settings(tmp_path, sqlite_db.url)) as app:
        answer = post(app, {"csvContent": CSV, "dryRun": True})
        assert answer.status_code == 200, answer.text
        doc = answer.json()
        assert set(doc) == {"message", "result", "summary", "success"}
        assert doc["message"] == "Reconciliation complete"
        assert doc["success"] is True
        assert doc["result"] == {"matched": 3, "discrepancies": 1, "notFound": 1, "errors": []}
        assert set(doc["summary"]) == SUMMARY_KEYS
        assert doc["summary"]["pending"] == 1
        assert sqlite_db.state() == before
        listed = requests.get(app.url(URL), headers=BEARER, timeout=10).json()
        assert set(listed) == {"summary", "discrepancies", "pendingCount", "nextCursor", "success"}
        [row] = listed["discrepancies"]
        assert set(row) == {
            "id",
            "action_type",
            "model_used",
            "calculated_cost_cents",
            "actual_cost_cents",
            "openai_request_id",
            "created_at",
        }
        assert (row["openai_request_id"], row["actual_cost_cents"]) == ("req-4", "100")
        assert listed["pendingCount"] == 1


@pytest.mark.parametrize("db", ALL, indirect=["db"])
def test_dry_run_false_writes_back_on_every_database(
    history_url: str, db: Db, tmp_path: Path
) -> None:
    db.create()
    with serving(history_url, settings=sql_settings(tmp_path, db.url)) as app:
        answer = post(app, {"csvContent": CSV, "dryRun": False})
        assert answer.status_code == 200, answer.text
    state = db.state()
    for key, expected in APPLIED.items():
        assert state[key] == expected, key


@pytest.fixture(params=ALL)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    yield from Db.fresh(request.param, tmp_path)


def test_a_write_back_to_ndjson_logs_is_refused_with_409(history_url: str, tmp_path: Path) -> None:
    from recon_job.config import load_settings

    (tmp_path / "logs").mkdir()
    config = tmp_path / "logs.toml"
    config.write_text(f'[logs]\npaths = ["{tmp_path}/logs/*.ndjson"]\n', encoding="utf-8")
    with serving(history_url, settings=load_settings(config, environ={})) as app:
        answer = post(app, {"csvContent": CSV, "dryRun": False})
        assert answer.status_code == 409
        assert "NDJSON logs, which are never modified" in answer.json()["error"]


def test_a_body_over_the_limit_is_413(history_url: str, sqlite_db: Db, tmp_path: Path) -> None:
    settings = sql_settings(tmp_path, sqlite_db.url)
    with serving(history_url, settings=settings, max_upload_bytes=1 << 20) as app:
        answer = post(app, {"csvContent": "x" * (2 << 20), "dryRun": True})
        assert answer.status_code == 413
        assert "max_upload_mb" in answer.json()["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"csvContent": "a,b\n1,2\n", "dryRun": True}, "the header has no request id column"),
        ({"csv": CSV}, "csvContent: Field required"),
        ({"csvContent": CSV, "dryRun": "maybe"}, "dryRun"),
        ([1, 2], "body"),
    ],
)
def test_what_is_not_a_billing_export_is_422_naming_the_problem(
    history_url: str, sqlite_db: Db, tmp_path: Path, body: object, message: str
) -> None:
    with serving(history_url, settings=sql_settings(tmp_path, sqlite_db.url)) as app:
        answer = post(app, body)
        assert answer.status_code == 422
        assert message in answer.json()["error"]
        assert str(tmp_path) not in answer.json()["error"]  # no server path leaks


def test_a_browser_session_needs_the_csrf_token_to_post(app: Running) -> None:
    browser = app.signed_in()
    refused = browser.post(app.url(URL), json={"csvContent": CSV, "dryRun": True})
    assert refused.status_code == 403
    page = browser.get(app.url("/runs"), timeout=10).text
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    allowed = browser.post(
        app.url(URL), json={"csvContent": CSV, "dryRun": True}, headers={"X-CSRF-Token": token}
    )
    assert allowed.status_code != 403  # past the guard (409: no source configured here)
    assert allowed.json() == {"error": "no request source is configured ([[sources]] or [logs])"}
