"""Tests of per-request reconciliation: the billing file, classification, and the write-back.

The write-back runs on SQLite always, on PostgreSQL with ``RECON_TEST_POSTGRES_URL`` and on
MariaDB with ``RECON_TEST_MYSQL_URL`` (see ``tests/databases.py``); each test gets a database of
its own and drops it afterwards.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

from recon_job import wiring
from recon_job.config import Settings, load_settings
from recon_job.errors import ConfigError, LogSourceError
from recon_job.per_request import (
    BilledRequest,
    LocalRequest,
    RequestReconReport,
    RequestStatus,
    classify,
    read_billing,
)
from recon_job.per_request import reconcile_requests as reconcile
from recon_job.report.requests import render_text, report_dict
from tests.databases import ALL, SERVERS, Database
from tests.helpers import FIXTURES, ROOT, TOKEN_USAGE_COLUMNS

D = Decimal
BILLING = FIXTURES / "billing"
REQUESTS_CSV = BILLING / "requests.csv"
SECRET = "hunter2secret"
MARCH_2 = date(2026, 3, 2)


def billed(request_id: str, actual: str, day: date | None = None) -> BilledRequest:
    when = None if day is None else datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    return BilledRequest(request_id, D(actual), 2, when)


def local(request_id: str, estimated: str | None, day: date | None = MARCH_2) -> LocalRequest:
    return LocalRequest(request_id, None if estimated is None else D(estimated), "gpt-4o", day)


def status_of(report: RequestReconReport) -> dict[str, str]:
    return {row.request_id: row.status.value for row in report.rows}


# -- classification ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("estimated", "actual", "expected"),
    [
        ("1.00", "1.00", "matched"),
        ("10.50", "10.00", "matched"),  # exactly 5% (and above the $0.05 floor)
        ("9.50", "10.00", "matched"),  # exactly 5% below
        ("10.51", "10.00", "discrepancy"),  # 5.1% and $0.51: beyond both
        ("0.15", "0.10", "matched"),  # exactly $0.05 (50%)
        ("0.1500001", "0.10", "discrepancy"),  # just over both
        ("104.00", "100.00", "matched"),  # within 5% but $4 > $0.05
        ("0.04", "0.01", "matched"),  # 300% but only $0.03
        ("0.00", "0.05", "matched"),  # $0.05 exactly, from zero
        ("0.06", "0", "discrepancy"),  # billed nothing, estimated more than the floor
        ("2.00", "1.00", "discrepancy"),
    ],
)
def test_it_classifies_by_five_percent_or_five_cents(
    estimated: str, actual: str, expected: str
) -> None:
    report = classify([billed("r", actual)], [local("r", estimated)])
    assert status_of(report) == {"r": expected}
    assert report.rows[0].difference == D(estimated) - D(actual)


def test_the_thresholds_are_parameters() -> None:
    report = classify([billed("r", "1.00")], [local("r", "1.02")], pct=D(1), floor=D(0))
    assert status_of(report) == {"r": "discrepancy"}


def test_billed_requests_nobody_logged_are_not_found() -> None:
    report = classify([billed("a", "1"), billed("b", "0.25")], [local("a", "1")])
    assert status_of(report) == {"a": "matched", "b": "not_found"}
    assert report.not_found_total == D("0.25")
    assert report.billed_total == D("1.25")
    assert report.needs_attention


def test_pending_counts_only_unbilled_records_inside_the_billing_span() -> None:
    bills = [billed("a", "1", date(2026, 3, 1)), billed("b", "1", date(2026, 3, 3))]
    records = [
        local("a", "1", date(2026, 2, 27)),  # billed: matched even outside the span
        local("b", "1"),
        local("in-span", "0.30", date(2026, 3, 3)),
        local("before", "1", date(2026, 2, 28)),
        local("after", "1", date(2026, 3, 4)),
        local("undated", "1", None),
    ]
    report = classify(bills, records)
    assert status_of(report) == {"a": "matched", "b": "matched", "in-span": "pending"}
    assert report.span == (date(2026, 3, 1), date(2026, 3, 3))
    assert report.outside_span == 3
    assert report.pending_total == D("0.30")
    assert not report.needs_attention


def test_without_timestamps_every_unbilled_record_is_pending() -> None:
    records = [local("a", "1"), local("old", "1", date(2020, 1, 1)), local("undated", None, None)]
    report = classify([billed("a", "1")], records)
    assert status_of(report) == {"a": "matched", "old": "pending", "undated": "pending"}
    assert report.span is None
    assert report.outside_span == 0


def test_local_duplicates_are_errors_listed_not_a_crash() -> None:
    records = [local("a", "1"), local("a", "1"), local("p", "1"), local("p", "2")]
    records += [local(f"d{i:02}", "1") for i in range(25) for _ in range(2)]
    report = classify([billed("a", "1"), billed("b", "1")], records)
    statuses = status_of(report)
    assert statuses["a"] == statuses["p"] == statuses["d07"] == "error"
    assert statuses["b"] == "not_found"
    assert report.counts["error"] == 27
    assert report.duplicates == 27
    assert len(report.duplicate_ids) == 20
    assert report.duplicate_ids[:2] == ("a", "d00")
    assert {r.reason for r in report.rows if r.status is RequestStatus.ERROR} == {
        "duplicate_local_request_id"
    }
    # A duplicated id is never written back: which of its rows would be meant?
    assert report.updates() == []


def test_an_unpriced_estimate_is_an_error_with_its_reason() -> None:
    report = classify([billed("a", "1")], [local("a", None)])
    assert [(r.status.value, r.reason, r.actual) for r in report.rows] == [
        ("error", "unpriced", D(1))
    ]


def test_totals_compare_only_requests_both_sides_know() -> None:
    bills = [billed("a", "1.000000001"), billed("b", "3"), billed("gone", "7")]
    report = classify(bills, [local("a", "1.04"), local("b", "2"), local("p", "0.5")])
    assert report.counts == {
        "matched": 1,
        "discrepancy": 1,
        "not_found": 1,
        "pending": 1,
        "error": 0,
    }
    assert report.estimated_total == D("3.04")
    assert report.actual_total == D("4.000000001")
    assert report.difference == D("-0.960000001")
    assert report.billed_total == D("11.000000001")


# -- the billing file -------------------------------------------------------------------------


def test_it_reads_a_billing_file_with_timestamps_models_and_exact_amounts() -> None:
    rows = read_billing(REQUESTS_CSV)
    assert [r.request_id for r in rows] == ["req-1", "req-2", "req-3", "req-4", "req-5"]
    assert rows[0].actual == D("0.010000")
    assert rows[0].model == "gpt-4o-mini"
    assert rows[0].timestamp == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert rows[2].timestamp == datetime(2026, 3, 2, 9, 30, tzinfo=UTC)  # naive ISO: UTC
    assert rows[3].timestamp == datetime(2026, 3, 3, 8, tzinfo=UTC)  # epoch seconds
    assert [r.line for r in rows] == [2, 3, 4, 5, 6]


def test_it_reads_cents_under_any_header_case_after_a_bom() -> None:
    rows = read_billing(BILLING / "cents_bom.csv")
    assert [(r.request_id, r.actual, r.timestamp) for r in rows] == [
        ("req-a", D("0.125"), None),
        ("req-b", D("1E-38"), None),  # 36 decimals of cents, kept exactly
        ("req-c", D(10), None),
    ]


def test_a_header_only_file_has_no_requests() -> None:
    assert read_billing(BILLING / "header_only.csv") == []


@pytest.mark.parametrize(
    ("fixture", "fragments"),
    [
        ("empty.csv", ["empty.csv", "empty", "no header"]),
        (
            "missing_columns.csv",
            ["missing_columns.csv: line 1", "request id column", "'request', 'price'"],
        ),
        ("no_cost_column.csv", ["line 1", "cost column", "cost_usd", "'request_id', 'model'"]),
        ("non_numeric.csv", ["non_numeric.csv: line 3", "'cost_usd'", "'ten cents'", "number"]),
        ("negative.csv", ["negative.csv: line 3", "'amount'", "'-0.01' is negative"]),
        (
            "duplicate_id.csv",
            ["duplicate_id.csv: line 4", "'request_id'", "'req-1'", "also on line 2"],
        ),
        ("wrong_currency.csv", ["line 2", "'currency'", "'eur' is not usd"]),
        ("no_such_file.csv", ["no_such_file.csv", "cannot read"]),
    ],
)
def test_bad_billing_files_give_one_message_naming_file_line_and_column(
    fixture: str, fragments: list[str]
) -> None:
    with pytest.raises(LogSourceError) as info:
        read_billing(BILLING / fixture)
    assert info.value.permanent
    for fragment in fragments:
        assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        # 1e999999 overflowed the comparison with the logged cost (a traceback, a 500).
        ("id,cost\na,1e999999\n", "line 2: column 'cost': '1e999999' is out of range"),
        ("id,cost_cents\na,1e17\n", "'1e17' is out of range (no request costs 1,000,000,000"),
        # 12 bytes that came back as a megabyte of zeros.
        ("id,cost\na,9e-1000000\n", "'9e-1000000' has more than 40 decimal places"),
        ("id,cost\na,1_000\n", "'1_000' is not a number"),
        # An unclosed quote read the rest of the file as one request id.
        ('id,cost\n"a,0.0009\nb,1\n', "not a readable CSV file (unexpected end of data"),
        ("id,cost\na,0.0009,extra,more\n", "line 2: the row has 4 fields, the header 2"),
    ],
)
def test_amounts_out_of_range_and_rows_out_of_shape_are_refused_naming_them(
    tmp_path: Path, text: str, fragment: str
) -> None:
    path = tmp_path / "bill.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LogSourceError) as info:
        read_billing(path)
    assert fragment in str(info.value)
    assert info.value.permanent


def test_line_numbers_count_quoted_newlines(tmp_path: Path) -> None:
    path = tmp_path / "multi.csv"
    path.write_text('id,cost,note\na,1,"two\nlines"\nb,x,z\n', encoding="utf-8")
    with pytest.raises(LogSourceError, match="line 4"):
        read_billing(path)


# -- rendering ---------------------------------------------------------------------------------


def test_the_json_report_has_counts_totals_and_bounded_lists() -> None:
    bills = [billed(f"d{i}", "1") for i in range(60)] + [billed(f"n{i}", "1") for i in range(60)]
    records = [local(f"d{i}", str(2 + i)) for i in range(60)] + [local("x", "1"), local("x", "1")]
    data = report_dict(classify(bills, records))
    json.dumps(data)  # JSON-ready
    assert data["counts"]["discrepancy"] == 60
    assert data["totals"]["actual"] == "60.000000"
    assert data["totals"]["difference"] == "1830.000000"
    assert len(data["discrepancies"]) == 50
    assert data["discrepancies"][0]["request_id"] == "d59"  # largest first
    assert data["not_found"][:2] == ["n0", "n1"]
    assert len(data["not_found"]) == 50
    assert data["errors"]["by_reason"] == {"duplicate_local_request_id": 1}
    assert data["errors"]["duplicate_request_ids"] == ["x"]
    assert data["applied"] is False
    assert data["written"] == 0


def test_the_text_report_summarises_and_says_it_was_a_dry_run() -> None:
    report = classify([billed("a", "1"), billed("b", "1")], [local("a", "3")])
    text = render_text(report)
    for fragment in (
        "discrepancies          1",
        "not found              1",
        "Estimated $3.000000 vs actual $1.000000",
        "difference $2.000000 (+200.00%)",
        "dry run: nothing written",
    ):
        assert fragment in text


# -- databases ---------------------------------------------------------------------------------

#: A copy: one test takes request_id out for a moment.
COLUMNS = dict(TOKEN_USAGE_COLUMNS)
#: request id -> (UTC time, model, prompt tokens, logged cost in cents, environment).
ROWS: dict[str, tuple[datetime, str, int, str | None, str]] = {
    "req-1": (datetime(2026, 3, 1, 10), "gpt-4o-mini", 10, "1", "production"),  # $0.01 matched
    "req-2": (datetime(2026, 3, 1, 11), "gpt-4o-mini", 10, "104", "production"),  # +$0.04
    "req-3": (datetime(2026, 3, 2, 9), "gpt-4o", 10, "1040", "production"),  # +4%
    "req-4": (datetime(2026, 3, 3, 8), "gpt-4o", 10, "200", "production"),  # discrepancy
    "req-6": (datetime(2026, 3, 2, 23), "gpt-4o-mini", 1_000_000, None, "production"),  # $0.15
    "req-7": (datetime(2026, 2, 1), "gpt-4o", 10, "5", "production"),  # outside the span
}
STAGING = ("req-4", datetime(2026, 3, 3, 8), "gpt-4o", 10, "100", "staging")


class Db(Database):
    """A throw-away database with the app's ``token_usage`` table."""

    def create(self, *, writeback: bool = True, rows: dict[str, Any] | None = None) -> None:
        extra: list[sa.SchemaItem] = []
        if writeback:
            extra = [
                sa.Column("actual_cost_cents", sa.Numeric(20, 6)),
                sa.Column("reconciliation_status", sa.String(16)),
                # Makes a write of more than $1000 fail: how the tests break one batch.
                sa.CheckConstraint("actual_cost_cents < 100000", name="ck_actual_small"),
            ]
        table = sa.Table(
            "token_usage",
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("created_at", sa.DateTime, nullable=False),
            sa.Column("model_used", sa.String(64), nullable=False),
            sa.Column("prompt_tokens", sa.Integer, nullable=False),
            sa.Column("completion_tokens", sa.Integer, nullable=False),
            sa.Column("cached_tokens", sa.Integer),
            sa.Column("calculated_cost_cents", sa.Numeric(20, 6)),
            sa.Column("openai_request_id", sa.String(128)),
            sa.Column("environment", sa.String(16)),
            *extra,
        )
        table.create(self.engine)
        data = [(rid, *values) for rid, values in (rows if rows is not None else ROWS).items()]
        data.append(STAGING)
        data.append((None, datetime(2026, 3, 2), "gpt-4o", 1, "1", "production"))
        with self.engine.begin() as conn:
            conn.execute(
                table.insert(),
                [
                    {
                        "id": i,
                        "openai_request_id": rid,
                        "created_at": at,
                        "model_used": model,
                        "prompt_tokens": tokens,
                        "completion_tokens": 0,
                        "cached_tokens": None,
                        "calculated_cost_cents": None if cost is None else D(cost),
                        "environment": env,
                    }
                    for i, (rid, at, model, tokens, cost, env) in enumerate(data)
                ],
            )

    def state(self) -> dict[tuple[str | None, str], tuple[Decimal | None, str | None]]:
        """(request id, environment) -> (actual cents, status), for every row."""
        query = "SELECT openai_request_id, environment, actual_cost_cents, reconciliation_status "
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql(query + "FROM token_usage").all()
        return {
            (rid, env): (None if cents is None else D(str(cents)).normalize(), status)
            for rid, env, cents, status in rows
        }


@pytest.fixture(params=ALL)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    """A fresh empty database on each backend."""
    yield from Db.fresh(request.param, tmp_path)


@pytest.fixture(params=SERVERS)
def server_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    """A fresh empty database on PostgreSQL and on MariaDB."""
    yield from Db.fresh(request.param, tmp_path)


def sql_settings(tmp_path: Path, url: str, *, extra_source: bool = False) -> Settings:
    columns = ", ".join(f'{k} = "{v}"' for k, v in COLUMNS.items())
    text = (
        '[[sources]]\nkind = "sql"\nname = "app"\nurl_env = "APP_DB"\ntable = "token_usage"\n'
        f'cost_unit = "cents"\nfilter = "environment = \'production\'"\ncolumns = {{ {columns} }}\n'
    )
    if extra_source:
        text += f'[[sources]]\nkind = "ndjson"\nname = "staging"\npaths = ["{tmp_path}/x"]\n'
    path = tmp_path / "recon.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path, environ={"APP_DB": url})


def reconcile_requests(
    settings: Settings, billing: Path, *, source: str | None = None, **options: Any
) -> RequestReconReport:
    """Reconcile as ``recon-job reconcile-requests`` does: sources built from the settings."""
    return reconcile(wiring.request_source(settings, source), billing, **options)


UNTOUCHED = (None, None)
APPLIED = {
    ("req-1", "production"): (D(1), "matched"),
    ("req-2", "production"): (D(100), "matched"),
    ("req-3", "production"): (D(1000), "matched"),
    ("req-4", "production"): (D(100), "discrepancy"),
    ("req-6", "production"): (None, "pending"),
    ("req-7", "production"): UNTOUCHED,  # outside the billing span: not in scope
    ("req-4", "staging"): UNTOUCHED,  # outside the source's filter
    (None, "production"): UNTOUCHED,
}


@pytest.mark.parametrize("db", ALL, indirect=True)
def test_a_dry_run_classifies_the_table_and_writes_nothing(db: Db, tmp_path: Path) -> None:
    db.create()
    before = db.state()
    report = reconcile_requests(sql_settings(tmp_path, db.url), REQUESTS_CSV)
    assert status_of(report) == {
        "req-1": "matched",
        "req-2": "matched",
        "req-3": "matched",
        "req-4": "discrepancy",
        "req-5": "not_found",
        "req-6": "pending",
    }
    assert report.rows[5].estimated == D("0.15")  # priced from the table: 1M gpt-4o-mini input
    assert report.outside_span == 1
    assert report.skipped == {}
    assert (report.applied, report.written, report.writable) == (False, 0, True)
    assert db.state() == before
    assert "dry run: nothing written — use --apply" in render_text(report)


@pytest.mark.parametrize("db", ALL, indirect=True)
def test_apply_writes_cents_and_statuses_and_a_second_run_changes_nothing(
    db: Db, tmp_path: Path
) -> None:
    db.create()
    settings = sql_settings(tmp_path, db.url)
    seen: list[tuple[int, int]] = []
    first = reconcile_requests(
        settings,
        REQUESTS_CSV,
        apply=True,
        batch_size=2,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert db.state() == APPLIED
    assert (first.applied, first.written) == (True, 5)
    assert seen[-3:] == [(2, 5), (4, 5), (5, 5)]
    assert "Applied: 5 rows updated." in render_text(first)

    second = reconcile_requests(settings, REQUESTS_CSV, apply=True, batch_size=2)
    assert db.state() == APPLIED
    assert report_dict(second) == report_dict(first)


@pytest.mark.parametrize("db", ALL, indirect=True)
def test_a_failing_batch_is_rolled_back_whole_and_earlier_batches_stay(
    db: Db, tmp_path: Path
) -> None:
    rows = dict(ROWS)
    rows["req-3"] = (datetime(2026, 3, 2, 9), "gpt-4o", 10, "500000", "production")  # $5000
    db.create(rows=rows)
    bill = tmp_path / "bill.csv"
    bill.write_text(REQUESTS_CSV.read_text().replace("10.00", "5000.00"), encoding="utf-8")
    with pytest.raises(LogSourceError) as info:
        reconcile_requests(sql_settings(tmp_path, db.url), bill, apply=True, batch_size=2)
    message = str(info.value)
    assert info.value.permanent
    assert "batch 2 of 3" in message
    assert "rolled back entirely" in message
    assert "the 2 updates of batches 1–1 stay committed" in message
    assert "run again" in message
    state = db.state()
    assert state[("req-1", "production")] == APPLIED[("req-1", "production")]
    assert state[("req-2", "production")] == APPLIED[("req-2", "production")]
    # req-4 shares the failed batch: rolled back with it, though its own update was fine.
    assert state[("req-3", "production")] == UNTOUCHED
    assert state[("req-4", "production")] == UNTOUCHED
    assert state[("req-6", "production")] == UNTOUCHED


@pytest.mark.parametrize("db", ALL, indirect=True)
def test_missing_writeback_columns_point_at_the_migration(db: Db, tmp_path: Path) -> None:
    db.create(writeback=False)
    settings = sql_settings(tmp_path, db.url)
    preview = reconcile_requests(settings, REQUESTS_CSV)
    assert preview.counts["matched"] == 3
    assert "before --apply" in preview.notes[0]
    with pytest.raises(LogSourceError) as info:
        reconcile_requests(settings, REQUESTS_CSV, apply=True)
    assert info.value.permanent
    assert "actual_cost_cents, reconciliation_status" in str(info.value)
    expected = {
        "sqlite": "deploy/alembic/add_token_usage_reconciliation.py",
        "postgresql": "deploy/sql/token_usage_reconciliation.postgresql.sql",
        "mysql": "deploy/sql/token_usage_reconciliation.mysql.sql",
    }[db.backend]
    assert expected in str(info.value)
    assert (ROOT / expected).is_file()


@pytest.mark.parametrize("db", ALL, indirect=True)
def test_a_mapped_column_the_table_lacks_is_named(db: Db, tmp_path: Path) -> None:
    db.create()
    with db.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE token_usage DROP COLUMN cached_tokens")
    with pytest.raises(LogSourceError, match="cached_tokens -> 'cached_tokens'") as info:
        reconcile_requests(sql_settings(tmp_path, db.url), REQUESTS_CSV)
    assert "it has " in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg://app:{SECRET}@127.0.0.1:1/app",
        f"mysql+pymysql://app:{SECRET}@127.0.0.1:1/app",
    ],
)
def test_an_unreachable_database_is_transient_and_hides_the_password(
    tmp_path: Path, url: str
) -> None:
    with pytest.raises(LogSourceError) as info:
        reconcile_requests(sql_settings(tmp_path, url), REQUESTS_CSV, apply=True)
    assert not info.value.permanent
    assert info.value.reason == "database_unreachable"
    assert "unreachable" in str(info.value)
    assert "127.0.0.1:1" in str(info.value)
    assert SECRET not in str(info.value)


def test_a_missing_table_is_a_permanent_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    with pytest.raises(LogSourceError, match="table token_usage does not exist") as info:
        reconcile_requests(sql_settings(tmp_path, url), REQUESTS_CSV)
    assert info.value.permanent


def test_a_bad_billing_file_stops_before_the_database_is_touched(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://app:{SECRET}@127.0.0.1:1/app"
    with pytest.raises(LogSourceError, match="negative"):
        reconcile_requests(sql_settings(tmp_path, url), BILLING / "negative.csv", apply=True)


@pytest.mark.parametrize("server_db", SERVERS, indirect=True)
def test_the_plain_sql_migration_is_idempotent(server_db: Db) -> None:
    dialect = server_db.backend
    with server_db.engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE token_usage (id INTEGER PRIMARY KEY, model_used VARCHAR(64), "
            "calculated_cost_cents NUMERIC(20, 6))"
        )
        conn.exec_driver_sql("INSERT INTO token_usage VALUES (1, 'gpt-4o', 12.5)")
    script = (ROOT / f"deploy/sql/token_usage_reconciliation.{dialect}.sql").read_text()
    # Comments first (they may hold semicolons), then one statement per semicolon.
    code = "\n".join(x for x in script.splitlines() if not x.lstrip().startswith("--"))
    statements = [chunk.strip() for chunk in code.split(";")]
    for _ in range(2):
        with server_db.engine.begin() as conn:
            for statement in filter(None, statements):
                conn.exec_driver_sql(statement)
    inspector = sa.inspect(server_db.engine)
    columns = {c["name"]: c["type"] for c in inspector.get_columns("token_usage")}
    assert str(columns["openai_request_id"]).startswith("VARCHAR(128)")
    assert str(columns["actual_cost_cents"]) in ("NUMERIC(20, 6)", "DECIMAL(20, 6)")
    assert str(columns["reconciliation_status"]).startswith("VARCHAR(16)")
    indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes("token_usage")}
    assert indexes["ix_token_usage_openai_request_id"] == ["openai_request_id"]
    with server_db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM token_usage").scalar() == 1


def test_the_alembic_template_is_idempotent_and_downgrades(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "add_token_usage_reconciliation", ROOT / "deploy/alembic/add_token_usage_reconciliation.py"
    )
    assert spec is not None
    assert spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    assert "FILL_IN" in migration.revision
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE token_usage (id INTEGER PRIMARY KEY)")
        with Operations.context(MigrationContext.configure(conn)):
            migration.upgrade()
            migration.upgrade()
    inspector = sa.inspect(engine)
    names = [c["name"] for c in inspector.get_columns("token_usage")]
    assert names == ["id", "openai_request_id", "actual_cost_cents", "reconciliation_status"]
    assert [i["name"] for i in inspector.get_indexes("token_usage")] == [
        "ix_token_usage_openai_request_id"
    ]
    with engine.begin() as conn, Operations.context(MigrationContext.configure(conn)):
        migration.downgrade()
        migration.downgrade()
    inspector = sa.inspect(engine)
    assert [c["name"] for c in inspector.get_columns("token_usage")] == ["id", "openai_request_id"]
    engine.dispose()


# -- NDJSON logs and choosing a source ---------------------------------------------------------


def write_logs(tmp_path: Path) -> Path:
    path = tmp_path / "usage.ndjson"
    lines = [
        {"timestamp": "2026-03-01T10:00:00Z", "model": "gpt-4o-mini", "request_id": "req-1",
         "prompt_tokens": 10, "completion_tokens": 1, "cost_usd": "0.0101"},
        {"timestamp": "2026-03-02T10:00:00Z", "model": "gpt-4o", "request_id": "req-4",
         "prompt_tokens": 10, "completion_tokens": 1, "cost_usd": "3"},
        {"timestamp": "2026-03-02T12:00:00Z", "model": "gpt-4o-mini", "request_id": "req-9",
         "input_tokens": 1000000, "output_tokens": 0},
        {"timestamp": "2026-03-02T12:00:00Z", "model": "gpt-4o-mini",
         "prompt_tokens": 1, "completion_tokens": 1},
    ]  # fmt: skip
    text = "\n".join(json.dumps(line) for line in lines) + "\n{not json\n"
    path.write_text(text, encoding="utf-8")
    return path


def test_ndjson_logs_are_a_local_source(tmp_path: Path) -> None:
    settings = load_settings(environ={"RECON_LOG_PATHS": str(write_logs(tmp_path))})
    seen: list[tuple[int, int]] = []
    report = reconcile_requests(
        settings, REQUESTS_CSV, progress=lambda done, total: seen.append((done, total))
    )
    assert seen == [(3, 0)]  # records read, total not known while reading
    assert status_of(report) == {
        "req-1": "matched",
        "req-2": "not_found",
        "req-3": "not_found",
        "req-4": "discrepancy",
        "req-5": "not_found",
        "req-9": "pending",
    }
    assert report.rows[-1].estimated == D("0.15")
    assert report.skipped == {"malformed_json": 1, "no_request_id": 1}
    assert report.source == "logs"
    assert not report.writable
    assert "NDJSON logs are read-only" in render_text(report)


def test_ndjson_logs_cannot_be_written_back(tmp_path: Path) -> None:
    settings = load_settings(environ={"RECON_LOG_PATHS": str(write_logs(tmp_path))})
    with pytest.raises(ConfigError, match="write-back needs a database source"):
        reconcile_requests(settings, REQUESTS_CSV, apply=True)


def test_several_sources_need_a_name(tmp_path: Path) -> None:
    settings = sql_settings(tmp_path, "sqlite:///x.db", extra_source=True)
    with pytest.raises(ConfigError, match=r"several sources .*\(app, staging\).*--source"):
        reconcile_requests(settings, REQUESTS_CSV)
    with pytest.raises(ConfigError, match=r"no source named 'prod'; configured .*app, staging"):
        reconcile_requests(settings, REQUESTS_CSV, source="prod")


def test_a_sql_source_needs_a_request_id_column(tmp_path: Path) -> None:
    del COLUMNS["request_id"]
    try:
        settings = sql_settings(tmp_path, "sqlite:///x.db")
    finally:
        COLUMNS["request_id"] = "openai_request_id"
    with pytest.raises(ConfigError, match="maps no request_id column"):
        reconcile_requests(settings, REQUESTS_CSV)
