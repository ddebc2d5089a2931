"""End to end: the real ``recon-job`` process against a fake OpenAI over real HTTP on 127.0.0.1.

Each test runs ``python -m recon_job`` as a subprocess with the environment a user would set,
then checks the exit code, the one JSON document on stdout, the history rows, and that the
admin key appears nowhere in anything the process printed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from recon_job.store import HistoryStore
from tests.databases import postgres_server_or_skip, temporary_postgres_database
from tests.e2e import Ran, cli, drifting_world, rec, workdir_fixture, write_logs  # noqa: F401
from tests.fakeopenai import DEFAULT_ADMIN_KEY, FakeOpenAI, fake_openai_fixture  # noqa: F401
from tests.helpers import FIXTURES

D1 = date(2026, 8, 1)
D2 = date(2026, 8, 2)


def test_a_range_run_reports_the_drift_in_json_and_records_it(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    drifting_world(fake_openai, workdir)
    ran = cli(
        workdir,
        fake_openai,
        "run",
        "--start",
        "2026-08-01",
        "--end",
        "2026-08-02",
        "--format",
        "json",
    )
    assert ran.code == 0, ran.stderr
    doc = ran.doc()
    assert doc["status"] == "mismatch"
    assert doc["reconciled"] is False
    assert doc["window"] == {
        "kind": "range",
        "key": "range:2026-08-01..2026-08-02",
        "start": "2026-08-01",
        "end": "2026-08-03",
        "last_day": "2026-08-02",
    }
    assert doc["threshold_pct"] == "5"
    assert doc["openai"]["tokens"] == 59200 + 10646 + 150000
    # The $0.02 of web search tool calls is an untracked family: listed, out of the totals.
    assert doc["openai"]["cost"] == "0.283260"
    assert doc["local"]["requests"] == 10 + 36 + 1
    rows = {(r["date"], r["model"]): r for r in doc["breakdown"]}
    gpt4o = rows[("2026-08-01", "gpt-4o")]
    assert gpt4o["status"] == "reconciled"
    assert gpt4o["local"] == gpt4o["openai"] | {"cost": gpt4o["local"]["cost"]}
    # (59,200 - 5,760) × $2.50 + 5,760 × $1.25 + 10,646 × $10.00, per million tokens.
    assert Decimal(gpt4o["local"]["cost"]) == Decimal("0.24726")
    assert Decimal(gpt4o["openai"]["cost"]) == Decimal("0.24726")
    mini = rows[("2026-08-01", "gpt-4o-mini")]
    assert mini["status"] == "mismatch"
    assert mini["difference"]["tokens"] == -15000
    assert mini["difference"]["tokens_pct"] == "-10.000000"
    assert mini["difference"]["requests"] == -4
    assert set(mini["difference"]["exceeds"]) == {"tokens", "requests"}
    web_search = rows[("2026-08-01", "web-search")]
    assert (web_search["status"], web_search["openai"]["cost"]) == ("untracked", "0.020000")
    private = rows[("2026-08-02", "my-private-model")]
    assert private["status"] == "mismatch"
    assert private["difference"]["requests_pct"] is None
    assert doc["unpriced_models"] == [
        {
            "model": "my-private-model",
            "service_tier": "standard",
            "requests": 1,
            "input_tokens": 100,
            "cached_tokens": 0,
            "output_tokens": 10,
        }
    ]
    assert doc["skipped"] == {"blank_line": 1, "malformed_json": 1, "negative_tokens": 1}

    # One request per endpoint for the whole window, on UTC midnights, end exclusive; the
    # diagnosis's own requests (hourly series, per-key usage) are counted apart, within budget.
    def reconciling(r: Any) -> bool:
        return r.param("bucket_width") == "1d" and "api_key_id" not in r.query.get("group_by[]", [])

    usage_calls = [
        r for r in fake_openai.requests if r.path.endswith("/usage/completions") and reconciling(r)
    ]
    cost_calls = [r for r in fake_openai.requests if r.path.endswith("/costs") and reconciling(r)]
    assert len(usage_calls) == len(cost_calls) == 1
    used = doc["diagnosis"]["requests_used"]
    assert 0 < used <= 20
    assert len(fake_openai.requests) == len(list(filter(reconciling, fake_openai.requests))) + used
    assert usage_calls[0].param("start_time") == "1785542400"
    assert usage_calls[0].param("end_time") == "1785715200"

    finished = [line for line in ran.logs() if line["event"] == "recon.run.finished"]
    assert len(finished) == 1
    assert finished[0]["status"] == "mismatch"

    store = HistoryStore(f"sqlite:///{workdir / 'history.db'}")
    try:
        (run,) = store.list_runs()
        assert run.id == doc["run_id"]
        assert str(run.status) == "mismatch"
        assert run.openai is not None
        assert run.openai.cost == Decimal("0.28326")  # web search calls: untracked
        groups = store.run_groups(run.id)
        assert len(groups) == len(doc["breakdown"])
    finally:
        store.close()

    history = cli(workdir, fake_openai, "history", "--format", "json")
    assert history.code == 0, history.stderr
    (listed,) = json.loads(history.stdout)
    assert listed["run_id"] == doc["run_id"]
    assert listed["status"] == "mismatch"


def test_fail_on_mismatch_exits_1_and_text_output_names_the_drifting_group(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    drifting_world(fake_openai, workdir)
    ran = cli(
        workdir,
        fake_openai,
        "run",
        "--window",
        "daily",
        "--date",
        "2026-08-01",
        "--fail-on-mismatch",
    )
    assert ran.code == 1, ran.stderr
    assert "status: mismatch" in ran.stdout
    assert "2026-08-01 gpt-4o-mini" in ran.stdout


def test_a_reconciled_day_exits_0_a_rerun_is_a_no_op_and_a_forced_one_keeps_both_runs(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    fake_openai.add_usage(
        D1, "gpt-4.1-nano-2025-04-14", input_tokens=1000, output_tokens=100, requests=1
    )
    fake_openai.add_cost(D1, "gpt-4.1-nano-2025-04-14, input", Decimal("0.0001"))
    fake_openai.add_cost(D1, "gpt-4.1-nano-2025-04-14, output", Decimal("0.00004"))
    write_logs(workdir, [rec(D1, "gpt-4.1-nano", 3, input_tokens=1000, output_tokens=100)])
    args = ("run", "--date", "2026-08-01", "--format", "json", "--fail-on-mismatch")
    for force in ((), ("--force",)):
        ran = cli(workdir, fake_openai, *args, *force)
        assert ran.code == 0, ran.stderr
        assert ran.doc()["status"] == "reconciled"
        assert ran.doc()["difference"]["cost"] == "0.000000"

        asked = len(fake_openai.requests)
        # Complete: shown from the history (issue 9 item 2), nothing asked of OpenAI.
        again = cli(workdir, fake_openai, *args)
        assert again.code == 0, again.stderr
        assert again.doc() == {**ran.doc(), "from_history": True, "alerts": []}
        assert len(fake_openai.requests) == asked
    text = cli(workdir, fake_openai, "run", "--date", "2026-08-01")
    assert text.code == 0, text.stderr
    assert "status: reconciled" in text.stdout
    assert "from the history" in text.stdout
    assert "use --force to run it again" in text.stdout
    history = cli(workdir, fake_openai, "history", "--format", "json")
    assert [r["status"] for r in json.loads(history.stdout)] == ["reconciled", "reconciled"]


def test_a_bad_admin_key_fails_permanently_and_records_a_failed_run(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    write_logs(workdir, [rec(D1, "gpt-4o", 3, input_tokens=1, output_tokens=1)])
    fake_openai.fail_next(
        1,
        401,
        body={
            "error": {
                "type": "invalid_request_error",
                "code": "invalid_api_key",
                "message": "Incorrect API key provided",
            }
        },
    )
    ran = cli(workdir, fake_openai, "run", "--date", "2026-08-01", "--format", "json")
    assert ran.code == 2
    doc = ran.doc()
    assert doc["status"] == "failed"
    assert doc["error"]["reason"] == "unauthorized"
    assert doc["error"]["permanent"] is True
    assert "local" not in doc  # a failed fetch has no figures, not zeros
    assert len(fake_openai.requests) == 1
    store = HistoryStore(f"sqlite:///{workdir / 'history.db'}")
    try:
        (run,) = store.list_runs()
        assert str(run.status) == "failed"
        assert run.error_reason == "unauthorized"
        assert run.local is None
        assert run.openai is None
        assert store.run_groups(run.id) == []
    finally:
        store.close()


def test_openai_down_is_transient_exit_3(fake_openai: FakeOpenAI, workdir: Path) -> None:
    write_logs(workdir, [rec(D1, "gpt-4o", 3, input_tokens=1, output_tokens=1)])
    fake_openai.fail_next(10, 503)
    ran = cli(
        workdir,
        fake_openai,
        "run",
        "--date",
        "2026-08-01",
        "--format",
        "json",
        RECON_OPENAI__MAX_RETRIES="1",
    )
    assert ran.code == 3, ran.stderr
    assert ran.doc()["error"]["permanent"] is False
    assert len(fake_openai.requests) == 2  # one try and one retry, then give up


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (("run", "--date", "2026-02-30"), {}, "2026-02-30"),
        (("run", "--month", "2026-13"), {}, "2026-13"),
        (("run", "--start", "2026-08-02", "--end", "2026-08-01"), {}, "before"),
        (("run", "--date", "2026-08-01"), {"OPENAI_ADMIN_KEY": ""}, "OPENAI_ADMIN_KEY"),
        (("run", "--date", "2026-08-01"), {"RECON_LOG_PATHS": "/nowhere/x.ndjson"}, "/nowhere"),
        (("run",), {"RECON_THRESHOLD_PCT": "five"}, "reconcile.threshold_pct"),
        (("run",), {"RECON_LOG_TIMEZONE": "Atlantis/Capital"}, "Atlantis/Capital"),
    ],
)
def test_bad_input_is_one_readable_message_and_exit_2(
    fake_openai: FakeOpenAI,
    workdir: Path,
    args: tuple[str, ...],
    env: dict[str, str],
    expected: str,
) -> None:
    write_logs(workdir, [rec(D1, "gpt-4o", 3, input_tokens=1, output_tokens=1)])
    ran = cli(workdir, fake_openai, *args, **env)
    assert ran.code == 2, (ran.stdout, ran.stderr)
    assert expected in ran.stderr
    assert "Traceback" not in ran.stderr


def test_check_config_lists_every_problem_at_once(fake_openai: FakeOpenAI, workdir: Path) -> None:
    config = workdir / "recon.toml"
    config.write_text('[models.aliases]\n"my-bot" = "gpt-4o-mni"\n', "utf-8")
    ran = cli(
        workdir,
        fake_openai,
        "check-config",
        "--config",
        str(config),
        OPENAI_ADMIN_KEY="",
        RECON_LOG_PATHS="/nowhere/*.ndjson",
    )
    assert ran.code == 2
    assert "3 problems" in ran.stderr
    assert "did you mean 'gpt-4o-mini'" in ran.stderr
    assert "OPENAI_ADMIN_KEY" in ran.stderr
    assert "/nowhere/*.ndjson" in ran.stderr
    write_logs(workdir, [rec(D1, "gpt-4o", 3, input_tokens=1, output_tokens=1)])
    ok = cli(workdir, fake_openai, "check-config")
    assert ok.code == 0, ok.stderr
    assert "configuration OK" in ok.stdout


@pytest.fixture
def postgres_history() -> Iterator[str]:
    yield from temporary_postgres_database(postgres_server_or_skip())


def test_history_can_live_in_postgresql(
    fake_openai: FakeOpenAI, workdir: Path, postgres_history: str
) -> None:
    drifting_world(fake_openai, workdir)
    ran = cli(
        workdir,
        fake_openai,
        "run",
        "--date",
        "2026-08-01",
        "--format",
        "json",
        RECON_DATABASE_URL=postgres_history,
    )
    assert ran.code == 0, ran.stderr
    store = HistoryStore(postgres_history)
    try:
        (run,) = store.list_runs()
        assert run.id == ran.doc()["run_id"]
        assert run.openai is not None
        assert run.openai.cost == Decimal("0.28326")  # web search calls: untracked
    finally:
        store.close()


SAMPLES = FIXTURES / "csv"


def test_a_month_reconciles_offline_from_the_two_real_dashboard_exports(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    cost = SAMPLES / "cost_2026-08-01_2026-08-31.csv"
    activity = SAMPLES / "completions_usage_2026-08-01_2026-08-31.csv"
    before = (cost.read_bytes(), activity.read_bytes())
    day = date(2026, 8, 31)
    write_logs(
        workdir,
        [rec(day, "gpt-4o-mini", 9 + i, input_tokens=7855, output_tokens=7) for i in range(3)]
        + [rec(day, "gpt-4o-mini", 15, input_tokens=7857, output_tokens=8)],
    )
    ran = cli(
        workdir,
        fake_openai,
        "run",
        "--month",
        "2026-08",
        "--format",
        "json",
        "--openai-from-csv",
        str(cost),
        "--openai-from-csv",
        str(activity),
        OPENAI_ADMIN_KEY="",
    )
    assert ran.code == 0, ran.stderr
    doc = ran.doc()
    assert doc["status"] == "reconciled"
    assert doc["window"]["key"] == "monthly:2026-08"
    assert doc["openai"]["input_tokens"] == doc["local"]["input_tokens"] == 31422
    assert doc["openai"]["output_tokens"] == doc["local"]["output_tokens"] == 29
    assert doc["openai"]["requests"] == doc["local"]["requests"] == 4
    assert doc["openai"]["cost"] == "0.003400"
    assert fake_openai.requests == []  # nothing asked of the API
    assert (cost.read_bytes(), activity.read_bytes()) == before  # exports are never modified


def test_offline_mode_says_which_export_is_missing(fake_openai: FakeOpenAI, workdir: Path) -> None:
    write_logs(workdir, [rec(D1, "gpt-4o", 3, input_tokens=1, output_tokens=1)])
    cost = SAMPLES / "cost_2026-08-01_2026-08-31.csv"
    ran = cli(
        workdir,
        fake_openai,
        "run",
        "--date",
        "2026-08-01",
        "--openai-from-csv",
        str(cost),
        OPENAI_ADMIN_KEY="",
    )
    assert ran.code == 2
    assert "needs the Activity export too" in ran.stderr


def app_database(workdir: Path) -> str:
    """An app's SQLite database with a token_usage table, migrated for write-back."""
    import sqlalchemy as sa

    url = f"sqlite:///{workdir / 'app.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE token_usage (id INTEGER PRIMARY KEY, created_at TEXT, model_used TEXT,"
            " prompt_tokens INTEGER, completion_tokens INTEGER, calculated_cost_cents NUMERIC,"
            " openai_request_id TEXT, actual_cost_cents NUMERIC, reconciliation_status TEXT)"
        )
        rows = [
            ("2026-08-01 10:00:00", "gpt-4o", 1000, 100, "0.35", "req-1"),  # billed 0.0035
            ("2026-08-01 11:00:00", "gpt-4o", 1000, 100, "0.35", "req-2"),  # billed 0.1000
            ("2026-08-01 12:00:00", "gpt-4o", 1000, 100, "0.35", "req-3"),  # not billed yet
        ]
        conn.exec_driver_sql(
            "INSERT INTO token_usage (created_at, model_used, prompt_tokens, completion_tokens,"
            " calculated_cost_cents, openai_request_id) VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
    engine.dispose()
    (workdir / "recon.toml").write_text(
        f"""
[[sources]]
kind = "sql"
name = "app"
url = "{url}"
table = "token_usage"
cost_unit = "cents"
[sources.columns]
timestamp = "created_at"
model = "model_used"
input_tokens = "prompt_tokens"
output_tokens = "completion_tokens"
cost = "calculated_cost_cents"
request_id = "openai_request_id"
""",
        "utf-8",
    )
    (workdir / "billing.csv").write_text(
        "request_id,cost,created_at\nreq-1,0.0035,2026-08-01T10:00:00Z\n"
        "req-2,0.1000,2026-08-01T11:00:00Z\nreq-9,0.0200,2026-08-01T12:30:00Z\n",
        "utf-8",
    )
    return url


def statuses(url: str) -> list[tuple[str, Any, Any]]:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT openai_request_id, actual_cost_cents, reconciliation_status FROM token_usage"
            " ORDER BY id"
        ).all()
    engine.dispose()
    return [tuple(r) for r in rows]


def test_reconcile_requests_previews_then_writes_actual_costs_back(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    url = app_database(workdir)
    args = ("reconcile-requests", str(workdir / "billing.csv"), "--config", "recon.toml")
    preview = cli(workdir, fake_openai, *args, "--format", "json")
    assert preview.code == 0, preview.stderr
    doc = preview.doc()
    assert doc["applied"] is False
    assert doc["counts"]["matched"] == 1
    assert doc["counts"]["discrepancy"] == 1
    assert doc["counts"]["not_found"] == 1
    assert doc["counts"]["pending"] == 1
    assert all(row[1:] == (None, None) for row in statuses(url))  # a dry run writes nothing

    applied = cli(workdir, fake_openai, *args, "--apply")
    assert applied.code == 0, applied.stderr
    assert "not found" in applied.stdout
    after = statuses(url)
    assert after[0][2] == "matched"
    assert Decimal(str(after[0][1])) == Decimal("0.35")
    assert after[1][2] == "discrepancy"
    assert Decimal(str(after[1][1])) == Decimal("10")
    assert after[2][1:] == (None, "pending")

    again = cli(workdir, fake_openai, *args, "--apply", "--fail-on-discrepancy")
    assert again.code == 1
    assert statuses(url) == after  # idempotent
