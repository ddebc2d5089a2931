"""The admin API against a real server: the seed's request and answer shapes, write-back on
every database, and the refusals (409, 413, 422, CSRF)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

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
    "totalBilledCents",
    "notFoundCents",
}


LISTING_KEYS = {"summary", "discrepancies", "pendingCount", "nextCursor", "source", "success"}
ROW_KEYS = {
    "id",
    "action_type",
    "model_used",
    "calculated_cost_cents",
    "actual_cost_cents",
    "openai_request_id",
    "created_at",
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
        # Billed and never seen locally is said in dollars too, not only as a count: 200,000
        # rows of it read "totalActualCents": "0".
        assert Decimal(doc["summary"]["totalBilledCents"]) == Decimal(1251)
        assert Decimal(doc["summary"]["notFoundCents"]) == Decimal(50)  # req-5
        assert sqlite_db.state() == before
        # GET reads the table's write-back: a dry run wrote none, so nothing is listed.
        listed = requests.get(app.url(URL), headers=BEARER, timeout=10).json()
        assert set(listed) == LISTING_KEYS
        assert (listed["source"], listed["discrepancies"]) == ("table", [])
        assert listed["summary"]["total"] == 0


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


def add_written_back_rows(db: Db) -> None:
    """Rows an earlier write-back marked: two more differences, a tie with req-4 (|100|), and a
    discrepancy outside the source's filter."""
    table = sa.Table("token_usage", sa.MetaData(), autoload_with=db.engine)
    rows = [
        (100, "req-a", "10", "510", "production"),  # |500|
        (101, "req-b", "300", "200", "production"),  # |100|, after req-4 (id 3)
        (102, "req-c", "1", "2.5", "production"),  # |1.5|
        (103, "req-s", "1", "9000", "staging"),  # outside the filter: never listed
    ]
    with db.engine.begin() as conn:
        conn.execute(
            table.insert(),
            [
                {
                    "id": i,
                    "created_at": datetime(2026, 3, 4, 12),
                    "model_used": "gpt-4o",
                    "prompt_tokens": 1,
                    "completion_tokens": 0,
                    "calculated_cost_cents": Decimal(cost),
                    "openai_request_id": rid,
                    "environment": env,
                    "actual_cost_cents": Decimal(actual),
                    "reconciliation_status": "discrepancy",
                }
                for i, rid, cost, actual, env in rows
            ],
        )


@pytest.mark.parametrize("db", ALL, indirect=["db"])
def test_get_lists_the_written_back_discrepancies_from_the_table_page_by_page(
    history_url: str, db: Db, tmp_path: Path
) -> None:
    db.create()
    add_written_back_rows(db)
    with serving(history_url, settings=sql_settings(tmp_path, db.url)) as app:
        assert post(app, {"csvContent": CSV, "dryRun": False}).status_code == 200
        first = requests.get(app.url(URL), params={"limit": 2}, headers=BEARER, timeout=10)
        assert first.status_code == 200, first.text
        page1 = first.json()
        assert set(page1) == LISTING_KEYS
        assert page1["source"] == "table"
        assert page1["success"] is True
        assert page1["pendingCount"] == 2  # req-6 (pending) and req-7 (never billed)
        assert page1["summary"]["discrepancies"] == 4
        assert page1["summary"]["matched"] == 3
        assert page1["summary"]["pending"] == 1
        assert [r["openai_request_id"] for r in page1["discrepancies"]] == ["req-a", "req-4"]
        req_4 = page1["discrepancies"][1]
        assert set(req_4) == ROW_KEYS
        assert req_4 == {
            "id": 3,
            "action_type": None,
            "model_used": "gpt-4o",
            "calculated_cost_cents": "200",
            "actual_cost_cents": "100",
            "openai_request_id": "req-4",
            "created_at": "2026-03-03T08:00:00Z",
        }
        assert page1["nextCursor"]
        second = requests.get(
            app.url(URL),
            params={"limit": 2, "cursor": page1["nextCursor"]},
            headers=BEARER,
            timeout=10,
        ).json()
        assert [(r["id"], r["openai_request_id"]) for r in second["discrepancies"]] == [
            (101, "req-b"),
            (102, "req-c"),
        ]
        assert second["discrepancies"][1]["actual_cost_cents"] == "2.5"
        assert second["nextCursor"] is None
        everything = requests.get(app.url(URL), headers=BEARER, timeout=10).json()
        assert [r["id"] for r in everything["discrepancies"]] == [100, 3, 101, 102]
        for params in ({"cursor": "not-a-cursor"}, {"cursor": "WzEsMl0"}, {"limit": 0}):
            bad = requests.get(app.url(URL), params=params, headers=BEARER, timeout=10)
            assert bad.status_code == 400, params
            assert set(bad.json()) == {"error"}
        too_many = requests.get(app.url(URL), params={"limit": 501}, headers=BEARER, timeout=10)
        assert too_many.status_code == 400
        assert "between 1 and 500" in too_many.json()["error"]
        not_a_number = requests.get(
            app.url(URL), params={"limit": "abc"}, headers=BEARER, timeout=10
        )
        assert not_a_number.status_code == 400
        assert not_a_number.json()["error"].startswith("limit:")
        assert "abc" not in not_a_number.text  # the value is not echoed


def test_the_tables_summary_has_the_uploads_totals_and_sign(
    history_url: str, sqlite_db: Db, tmp_path: Path
) -> None:
    # It summed the pending rows' estimates too and took OpenAI's minus ours, where the upload
    # (and every report) takes ours minus OpenAI's over the requests both sides priced.
    with serving(history_url, settings=sql_settings(tmp_path, sqlite_db.url)) as app:
        uploaded = post(app, {"csvContent": CSV, "dryRun": False})
        assert uploaded.status_code == 200, uploaded.text
        listed = requests.get(app.url(URL), headers=BEARER, timeout=10).json()
    assert listed["source"] == "table"
    totals = ("totalEstimatedCents", "totalActualCents", "totalDifferenceCents")
    posted = uploaded.json()["summary"]
    assert {k: Decimal(listed["summary"][k]) for k in totals} == {
        k: Decimal(posted[k]) for k in totals
    }
    difference = Decimal(posted["totalEstimatedCents"]) - Decimal(posted["totalActualCents"])
    assert Decimal(posted["totalDifferenceCents"]) == difference != 0


def test_without_a_writable_source_get_answers_from_the_last_upload(
    history_url: str, tmp_path: Path
) -> None:
    from recon_job.config import load_settings

    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "app.ndjson").write_text("", encoding="utf-8")
    config = tmp_path / "logs.toml"
    config.write_text(f'[logs]\npaths = ["{tmp_path}/logs/*.ndjson"]\n', encoding="utf-8")
    with serving(history_url, settings=load_settings(config, environ={})) as app:
        before = requests.get(app.url(URL), headers=BEARER, timeout=10).json()
        assert (before["source"], before["summary"], before["discrepancies"]) == (
            "last_upload",
            None,
            [],
        )
        uploaded = post(app, {"csvContent": CSV, "dryRun": True})
        assert uploaded.status_code == 200, uploaded.text
        after = requests.get(app.url(URL), headers=BEARER, timeout=10).json()
        assert set(after) == LISTING_KEYS
        assert after["source"] == "last_upload"
        assert after["summary"]["total"] == 5  # every billed request: no log holds them
        for cursor in ("x", "²"):  # "²".isdigit() is true, and int("²") raised: a 500
            bad = requests.get(app.url(URL), params={"cursor": cursor}, headers=BEARER, timeout=10)
            assert bad.status_code == 400


def test_a_table_without_write_back_columns_falls_back_to_the_last_upload(
    history_url: str, tmp_path: Path
) -> None:
    [db] = Db.fresh(ALL[0], tmp_path)
    db.create(writeback=False)
    with serving(history_url, settings=sql_settings(tmp_path, db.url)) as app:
        assert post(app, {"csvContent": CSV, "dryRun": True}).status_code == 200
        listed = requests.get(app.url(URL), headers=BEARER, timeout=10).json()
        assert listed["source"] == "last_upload"
        [row] = listed["discrepancies"]
        assert (row["id"], row["openai_request_id"], row["actual_cost_cents"]) == (
            1,
            "req-4",
            "100",
        )


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


@pytest.mark.parametrize(
    ("body", "message"),
    [
        # Each of these was a 500 and a traceback in the server's log.
        (b"[" * 100_000 + b"]" * 100_000, "the body is not JSON"),
        (b'{"csvContent": "request_id,cost\\nreq_\\ud800,1\\n"}', "csvContent is not text"),
        (b'{"csvContent": "request_id,cost\\nreq_1,1e999999\\n"}', "'1e999999' is out of range"),
    ],
)
def test_bodies_that_crashed_the_server_are_422_naming_the_problem(
    history_url: str, sqlite_db: Db, tmp_path: Path, body: bytes, message: str
) -> None:
    with serving(history_url, settings=sql_settings(tmp_path, sqlite_db.url)) as app:
        headers = {**BEARER, "Content-Type": "application/json"}
        answer = requests.post(app.url(URL), data=body, headers=headers, timeout=30)
        assert answer.status_code == 422, answer.text
        assert message in answer.json()["error"]
        # "²".isdigit() is true, and int("²") raised.
        cursor = requests.get(app.url(URL), params={"cursor": "²"}, headers=BEARER, timeout=10)
        assert cursor.status_code == 400
        assert "cursor must be the nextCursor" in cursor.json()["error"]


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
