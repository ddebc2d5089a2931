"""The bound on a window's groups (``reconcile.max_groups``, issue 13 item 4): a field mapped to
something unique per request stops every source early, with an error naming that field, on real
files, real databases and the fake OpenAI server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import requests

from recon_job.errors import LogSourceError, UsageApiError
from recon_job.models import Window
from recon_job.sources.groups import GroupLimit
from recon_job.sources.ndjson import NdjsonLogSource, NdjsonOptions
from recon_job.sources.ndjson.source import _Scan
from recon_job.sources.openai.options import OpenAIOptions
from recon_job.sources.openai.usage import OpenAIUsageSource
from recon_job.sources.sql import SqlTableOptions, SqlTableSource
from tests.databases import ALL, Database
from tests.e2e import D1, cli, workdir_fixture  # noqa: F401
from tests.fakeopenai import FakeOpenAI, fake_openai_fixture, fast_session_fixture  # noqa: F401
from tests.helpers import TOKEN_USAGE_COLUMNS, FakePricer

DAY = date(2026, 3, 5)
WINDOW = Window("daily", DAY, date(2026, 3, 6))
LINES = 50_000


def unique_model_log(path: Path, lines: int = LINES, *, day: date = DAY) -> Path:
    """A log whose every record logs its request id where the model name should be."""
    with path.open("w", encoding="utf-8") as f:
        for i in range(lines):
            rid = f"req_{i:08x}"
            record = {
                "timestamp": f"{day.isoformat()}T10:00:00Z",
                "model": "gpt-4o-mini",
                "request_id": rid,
                "prompt_tokens": 10,
                "completion_tokens": 1,
            }
            f.write(json.dumps(record) + "\n")
    return path


def test_a_model_field_mapped_to_the_request_id_stops_the_scan_at_the_first_group_too_many(
    tmp_path: Path,
) -> None:
    log = unique_model_log(tmp_path / "usage.ndjson")
    options = NdjsonOptions(
        paths=(str(log),), fields={"model": "request_id"}, workers=1, max_groups=1000
    )

    with pytest.raises(LogSourceError) as info:
        NdjsonLogSource(options, FakePricer()).fetch(WINDOW)

    error = info.value
    assert (error.reason, error.permanent) == ("too_many_groups", True)
    # Line 1,001 of 50,000: the scan stopped at the first group over the bound.
    assert f"stopped reading at {log}:1001:" in error.message
    assert "more than 1,000 groups (day × family × model × project × key)" in error.message
    assert "logs.fields.model = 'request_id' has 1,001 distinct values on 2026-03-05" in (
        error.message
    )
    assert "(e.g. 'req_000003e8')" in error.message
    assert "map model to the model name" in error.message
    assert "raise reconcile.max_groups (now 1,000)" in error.message


def test_an_unmapped_request_unique_model_names_the_records_model_field(tmp_path: Path) -> None:
    log = tmp_path / "usage.ndjson"
    log.write_text(
        "".join(
            json.dumps(
                {
                    "timestamp": f"2026-03-05T10:{i % 60:02d}:00Z",
                    "model": f"req_{i:06d}",
                    "prompt_tokens": 1,
                    "completion_tokens": 1,
                }
            )
            + "\n"
            for i in range(5000)
        ),
        "utf-8",
    )
    options = NdjsonOptions(paths=(str(log),), workers=1, max_groups=100)

    with pytest.raises(LogSourceError) as info:
        NdjsonLogSource(options, FakePricer()).fetch(WINDOW)

    assert f"{log}:101:" in info.value.message
    assert "logs.fields.model (unset: the records' 'model' field) has 101 distinct" in (
        info.value.message
    )


def test_a_window_at_the_bound_is_counted_as_always(tmp_path: Path) -> None:
    log = tmp_path / "usage.ndjson"
    log.write_text(
        "".join(
            json.dumps(
                {"timestamp": "2026-03-05T10:00:00Z", "model": f"m-{i % 100}", "prompt_tokens": 1}
            )
            + "\n"
            for i in range(1000)
        ),
        "utf-8",
    )
    options = NdjsonOptions(paths=(str(log),), workers=1, max_groups=100)

    totals = NdjsonLogSource(options, FakePricer()).fetch(WINDOW)

    assert len(totals.groups) == 100
    assert totals.info["records_counted"] == 1000


def test_worker_processes_stop_on_their_own_groups_and_on_the_merged_ones(
    tmp_path: Path,
) -> None:
    # Alone too many: the worker's error crosses the process boundary whole.
    alone = unique_model_log(tmp_path / "a.ndjson", 1500)
    other = unique_model_log(tmp_path / "b.ndjson", 10)
    options = NdjsonOptions(
        paths=(str(alone), str(other)), fields={"model": "request_id"}, max_groups=1000
    )
    scan = _Scan(options, WINDOW)
    with pytest.raises(LogSourceError) as info:
        scan.read_parallel([str(alone), str(other)], 2)
    assert info.value.reason == "too_many_groups"
    assert f"{alone}:1001:" in info.value.message

    # Each within the bound, too many together: the merge stops.
    first = unique_model_log(tmp_path / "c.ndjson", 600)
    second = unique_model_log(tmp_path / "d.ndjson", 600, day=DAY)
    second.write_text(second.read_text().replace("req_", "rex_"), "utf-8")
    scan = _Scan(options, WINDOW)
    with pytest.raises(LogSourceError) as info:
        scan.read_parallel([str(first), str(second)], 2)
    assert info.value.reason == "too_many_groups"
    assert "1,001 distinct values" in info.value.message


@pytest.fixture(params=ALL)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    yield from Database.fresh(request.param, tmp_path)


def test_a_request_unique_model_column_stops_reading_the_aggregate_early(db: Database) -> None:
    import sqlalchemy as sa

    table = sa.Table(
        "token_usage",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model_used", sa.String(64)),
        sa.Column("prompt_tokens", sa.Integer),
        sa.Column("completion_tokens", sa.Integer),
        sa.Column("cached_tokens", sa.Integer),
        sa.Column("calculated_cost_cents", sa.Numeric(12, 4)),
        sa.Column("openai_request_id", sa.String(64)),
        sa.Column("created_at", sa.DateTime(timezone=db.backend == "postgresql")),
    )
    table.create(db.engine)
    at = datetime(2026, 3, 5, 10, tzinfo=UTC)
    stamp = at if db.backend == "postgresql" else at.replace(tzinfo=None)
    rows = [
        {
            "model_used": f"req_{i:08x}",
            "prompt_tokens": 10,
            "completion_tokens": 1,
            "openai_request_id": f"req_{i:08x}",
            "created_at": stamp,
        }
        for i in range(3000)
    ]
    with db.engine.begin() as conn:
        conn.execute(table.insert(), rows)
    options = SqlTableOptions(
        url=db.url, table="token_usage", columns=TOKEN_USAGE_COLUMNS, max_groups=100
    )

    with pytest.raises(LogSourceError) as info:
        SqlTableSource(options, FakePricer()).fetch(WINDOW)

    error = info.value
    assert (error.reason, error.permanent) == ("too_many_groups", True)
    # Result row 101 of 3,000: the rest of the result was never fetched.
    assert "stopped reading the aggregate of table 'token_usage' at result row 101:" in (
        error.message
    )
    assert "the SQL source's columns.model = 'model_used' has 101 distinct values" in (
        error.message
    )


def test_a_pathological_openai_answer_is_refused_past_the_bound(
    fake_openai: FakeOpenAI, fast_session: requests.Session
) -> None:
    for i in range(60):
        fake_openai.add_usage(DAY, f"model-{i:03d}", input_tokens=1, requests=1)
    options = OpenAIOptions(
        base_url=fake_openai.base_url, admin_key=fake_openai.admin_key, max_groups=50
    )

    with pytest.raises(UsageApiError) as info:
        OpenAIUsageSource(options, fast_session).fetch(WINDOW)

    assert (info.value.reason, info.value.permanent) == ("too_many_groups", True)
    assert "OpenAI's Usage API: more than 50 groups" in info.value.message
    assert "OpenAI's 'model' field has 51 distinct values on 2026-03-05" in info.value.message


def test_the_culprit_is_the_dimension_with_the_most_values_on_one_day() -> None:
    limit = GroupLimit(3)
    for i in range(3):
        assert not limit.add((DAY, "completions", "gpt-4o", "proj", f"key_{i}"))
    assert limit.add((DAY, "completions", "gpt-4o", "proj", "key_3"))
    assert limit.culprit() == ("api_key_id", DAY, 4, "key_3")


def test_recon_job_run_exits_2_with_the_message_and_no_traceback(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    unique_model_log(workdir / "logs" / "usage.ndjson", 5000, day=D1)

    ran = cli(
        workdir,
        fake_openai,
        "run",
        "--date",
        D1.isoformat(),
        RECON_LOGS__FIELDS='{"model": "request_id"}',
        RECON_RECONCILE__MAX_GROUPS="200",
    )

    assert ran.code == 2, (ran.stdout, ran.stderr)
    # Located to the line when read here; from the aggregation cache, the file has no line.
    output = ran.stdout + ran.stderr
    assert "more than 200 groups (day × family × model × project × key)" in output
    assert "logs.fields.model = 'request_id' has 201 distinct values" in output
    assert "Traceback" not in output


def test_recon_job_run_over_a_sql_source_exits_2_too(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    import sqlalchemy as sa

    url = f"sqlite:///{workdir / 'app.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE token_usage (id INTEGER PRIMARY KEY, created_at TEXT, model_used TEXT,"
            " prompt_tokens INTEGER, completion_tokens INTEGER)"
        )
        conn.exec_driver_sql(
            "INSERT INTO token_usage (created_at, model_used, prompt_tokens, completion_tokens)"
            " VALUES (?, ?, 10, 1)",
            [(f"{D1.isoformat()} 10:00:00", f"req_{i:06d}") for i in range(500)],
        )
    engine.dispose()
    (workdir / "recon.toml").write_text(
        f"""
[reconcile]
max_groups = 50

[[sources]]
kind = "sql"
name = "app"
url = "{url}"
table = "token_usage"
[sources.columns]
timestamp = "created_at"
model = "model_used"
input_tokens = "prompt_tokens"
output_tokens = "completion_tokens"
""",
        "utf-8",
    )

    ran = cli(workdir, fake_openai, "run", "--date", D1.isoformat(), "--config", "recon.toml")

    assert ran.code == 2, (ran.stdout, ran.stderr)
    output = ran.stdout + ran.stderr
    assert "at result row 51: more than 50 groups" in output
    assert "columns.model = 'model_used' has 51 distinct values" in output
    assert "Traceback" not in output
