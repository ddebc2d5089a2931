"""The SQL source on DuckDB (issue 13 item 6): a Parquet or NDJSON lake, or a DuckDB file.

The lake files are written by DuckDB itself in a temp dir (``COPY ... TO``); the same rows go
into a SQLite table, and the DuckDB source must aggregate them exactly as the SQLite path does:
totals with cached tokens, exact Decimal costs, naive timestamps in their zone, repeated request
ids counted once, and the per-hour series.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from recon_job import wiring
from recon_job.config import SqlSourceSettings, load_settings
from recon_job.config.sources import BACKENDS
from recon_job.errors import ConfigError, LogSourceError
from recon_job.findings import Duplicates
from recon_job.models import UnpricedKey, Usage, UsageKey, UsageTotals
from recon_job.sources.sql import SqlTableOptions, SqlTableSource
from recon_job.sources.sql.dialects import DIALECTS
from tests.e2e import cli, workdir_fixture  # noqa: F401
from tests.fakeopenai import FakeOpenAI, fake_openai_fixture  # noqa: F401
from tests.helpers import TOKEN_USAGE_COLUMNS as COLUMNS
from tests.helpers import FakePricer
from tests.sources.sql.test_source import MARCH, Db

duckdb = pytest.importorskip("duckdb")

D = Decimal
HOUR = timedelta(hours=1)
MINI = ("completions", "gpt-4o-mini", None)
SCHEMA = """
    CREATE TABLE token_usage (
        id BIGINT, model_used VARCHAR, prompt_tokens BIGINT, completion_tokens BIGINT,
        cached_tokens BIGINT, calculated_cost_cents DECIMAL(12, 4), openai_request_id VARCHAR,
        created_at {timestamp}, environment VARCHAR, project_id VARCHAR
    )
"""
DEFAULTS: dict[str, Any] = {
    "model_used": "gpt-4o-mini",
    "prompt_tokens": 100,
    "completion_tokens": 10,
    "cached_tokens": None,
    "cost": None,
    "openai_request_id": None,
    "environment": "production",
    "project_id": None,
}


def at(day: int, hour: int = 12, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


#: Rows of every kind the source tells apart, in ``Db.insert``'s shape (``at`` aware UTC).
ROWS: list[dict[str, Any]] = [
    {"at": at(28, 23, 59, month=2)},  # before the window
    {"at": at(1, 0), "prompt_tokens": 1000, "completion_tokens": 100, "cached_tokens": 400},
    {"at": at(1, 23, 59), "prompt_tokens": 2000, "completion_tokens": 500, "cost": "0.25"},
    {"at": at(1, 23, 59), "cost": "0.5"},  # exact in binary too: SQLite sums FLOAT costs
    {"at": at(2, 0), "openai_request_id": "r1"},
    {"at": at(2, 9), "openai_request_id": "r1"},  # a retry logged twice: counted once
    {"at": at(2, 10, 30), "openai_request_id": "r2", "cost": "1.25"},
    {"at": at(31, 23, 59), "model_used": "o4-mini", "prompt_tokens": 300},  # unpriced
    {"at": at(15, 8), "model_used": None},  # missing_model
    {"at": at(15, 8), "prompt_tokens": -5},  # negative_tokens
    {"at": at(15, 9), "cached_tokens": 500},  # cached_exceeds_input
    {"at": at(1, 0, month=4)},  # after the window
]


def full(rows: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Each row with every column (``created_at`` the aware instant, ``cost`` a Decimal)."""
    for i, row in enumerate(rows):
        values = {**DEFAULTS, **row}
        cost, moment = values.pop("cost"), values.pop("at")
        yield {
            "id": i,
            **values,
            "calculated_cost_cents": None if cost is None else D(cost),
            "created_at": moment,
        }


def write_lake(
    rows: list[dict[str, Any]],
    target: Path,
    fmt: str = "parquet",
    *,
    timestamp: str = "TIMESTAMP",
    zone: str = "UTC",
    parts: int = 2,
) -> None:
    """The rows as ``parts`` files ``target/part-N.<fmt>`` written by DuckDB (naive timestamps
    as wall time in ``zone``)."""
    target.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(SCHEMA.format(timestamp=timestamp))
        for row in full(rows):
            moment = row["created_at"]
            if timestamp == "TIMESTAMP":
                moment = moment.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
            row["created_at"] = moment
            con.execute(
                f"INSERT INTO token_usage ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                list(row.values()),
            )
        for part in range(parts):
            name = target / f"part-{part}.{fmt}"
            options = "FORMAT parquet" if fmt == "parquet" else "FORMAT json"
            con.execute(
                f"COPY (SELECT * FROM token_usage WHERE id % {parts} = {part}) "
                f"TO '{name}' ({options})"
            )
    finally:
        con.close()


def sqlite_totals(tmp_path: Path, rows: list[dict[str, Any]], **options: Any) -> UsageTotals:
    """What the SQLite path makes of the same rows."""
    for db in Db.fresh("sqlite", tmp_path):
        table = db.create()
        db.insert(table, *({**r, "is_batch": False} for r in rows))
        return source(db.url, table="token_usage", **options).fetch(MARCH)
    raise AssertionError("no SQLite database")


def source(url: str, **options: Any) -> SqlTableSource:
    options["columns"] = {**COLUMNS, **options.get("columns", {})}
    options.setdefault("cost_unit", "cents")
    options.setdefault("table", None)
    return SqlTableSource(SqlTableOptions(url=url, **options), FakePricer())


def lake(tmp_path: Path, fmt: str = "parquet", **options: Any) -> SqlTableSource:
    relation = options.pop("relation", f"read_{fmt}('{tmp_path / 'lake'}/*.{fmt}')")
    return source("duckdb:///:memory:", relation=relation, **options)


# -- the same totals as the SQLite path ---------------------------------------------------------


def test_a_parquet_lake_is_aggregated_exactly_as_the_same_rows_in_sqlite(tmp_path: Path) -> None:
    write_lake(ROWS, tmp_path / "lake")

    totals = lake(tmp_path).fetch(MARCH)

    cached = Usage(1000, 400, 100, 1, D("0.001"))  # 600 + 400 / 2 + 100 * 2 micro-dollars
    logged = Usage(2100, 0, 510, 2, D("0.0075"))  # 0.25 + 0.5 cents
    assert totals.groups[UsageKey(date(2026, 3, 1), "gpt-4o-mini")] == cached + logged
    # r1 twice (counted once) and r2 with its 1.25 cents logged.
    assert totals.groups[UsageKey(date(2026, 3, 2), "gpt-4o-mini")] == Usage(
        200, 0, 20, 2, D("0.00012") + D("0.0125")
    )
    assert totals.unpriced == {UnpricedKey("o4-mini", "standard"): Usage(300, 0, 10, 1)}
    assert totals.skipped == {
        "missing_model": 1,
        "negative_tokens": 1,
        "cached_exceeds_input": 1,
    }
    assert totals.duplicates == Duplicates(
        count=1,
        request_ids=1,
        cost=D("0.00012"),
        locations=(f"read_parquet('{tmp_path / 'lake'}/*.parquet'):r1",),
    )
    reference = sqlite_totals(tmp_path, ROWS)
    assert totals.groups == reference.groups
    assert totals.unpriced == reference.unpriced
    assert totals.skipped == reference.skipped
    assert totals.info["rows_counted"] == reference.info["rows_counted"] == 6
    assert reference.duplicates is not None
    assert totals.duplicates.count == reference.duplicates.count


def test_a_decimal_cost_column_sums_exactly_and_sqlite_floats_are_rounded_back(
    tmp_path: Path,
) -> None:
    rows: list[dict[str, Any]] = [{"at": at(1), "cost": "0.1"}, {"at": at(1), "cost": "0.2"}]
    write_lake(rows, tmp_path / "lake")

    totals = lake(tmp_path).fetch(MARCH)

    assert totals.groups[UsageKey(date(2026, 3, 1), "gpt-4o-mini")].cost == D("0.003")
    # SQLite sums 0.1 + 0.2 in binary (0.30000000000000004): rounded back to the 15 digits a
    # float holds, as documented.
    floats = sqlite_totals(tmp_path, rows).groups[UsageKey(date(2026, 3, 1), "gpt-4o-mini")]
    assert floats.cost == D("0.003")


def test_an_ndjson_lake_with_typed_columns_sums_its_cost_exactly(tmp_path: Path) -> None:
    write_lake(ROWS, tmp_path / "lake", "ndjson")
    files = f"{tmp_path / 'lake'}/*.ndjson"
    typed = (
        f"read_json('{files}', format = 'newline_delimited', "
        "columns = {'created_at': 'TIMESTAMP', 'model_used': 'VARCHAR', "
        "'prompt_tokens': 'BIGINT', 'completion_tokens': 'BIGINT', 'cached_tokens': 'BIGINT', "
        "'calculated_cost_cents': 'DECIMAL(12, 4)', 'openai_request_id': 'VARCHAR'})"
    )

    totals = lake(tmp_path, relation=typed).fetch(MARCH)

    reference = sqlite_totals(tmp_path, ROWS)
    assert totals.groups == reference.groups
    assert totals.skipped == reference.skipped
    assert totals.groups[UsageKey(date(2026, 3, 1), "gpt-4o-mini")].cost == D("0.0085")
    # Read untyped, the cost column is a DOUBLE: summed in floating point (as documented).
    loose = lake(tmp_path, relation=f"read_ndjson('{files}')").fetch(MARCH)
    assert loose.groups.keys() == reference.groups.keys()
    assert loose.skipped == reference.skipped


def test_duckdb_settings_in_the_url_bound_its_memory_and_spill_to_the_named_directory(
    tmp_path: Path,
) -> None:
    write_lake(ROWS, tmp_path / "lake")
    spill = tmp_path / "spill"
    url = f"duckdb:///:memory:?memory_limit=64MB&threads=1&temp_directory={spill}"
    bounded = source(url, relation=f"read_parquet('{tmp_path / 'lake'}/*.parquet')")

    totals = bounded.fetch(MARCH)

    assert totals.groups == lake(tmp_path).fetch(MARCH).groups
    with bounded.connect() as conn:
        settings = conn.exec_driver_sql(
            "SELECT current_setting('memory_limit'), current_setting('threads'), "
            "current_setting('temp_directory')"
        ).one()
    assert settings == ("61.0 MiB", 1, str(spill))


def test_a_duckdb_setting_it_does_not_know_is_a_clear_permanent_error(tmp_path: Path) -> None:
    write_lake(ROWS, tmp_path / "lake")
    relation = f"read_parquet('{tmp_path / 'lake'}/*.parquet')"
    with pytest.raises(LogSourceError, match="memory_limit") as failed:
        source("duckdb:///:memory:?memory_limit=lots", relation=relation).fetch(MARCH)
    assert failed.value.permanent
    assert "Traceback" not in str(failed.value)


def test_a_duckdb_database_file_with_a_table_is_read_read_only(tmp_path: Path) -> None:
    write_lake(ROWS, tmp_path / "lake", parts=1)
    path = tmp_path / "app.duckdb"
    con = duckdb.connect(str(path))
    con.execute(f"CREATE TABLE token_usage AS FROM '{tmp_path / 'lake' / 'part-0.parquet'}'")
    con.close()
    before = path.stat().st_mtime_ns

    totals = source(f"duckdb:///{path}", table="token_usage").fetch(MARCH)

    assert totals.groups == sqlite_totals(tmp_path, ROWS).groups
    assert path.stat().st_mtime_ns == before
    with (
        source(f"duckdb:///{path}", table="token_usage").connect() as conn,
        pytest.raises(sa.exc.DBAPIError, match="read-only"),
    ):
        conn.exec_driver_sql("CREATE TABLE written (a INTEGER)")


def test_a_missing_database_file_or_table_is_a_permanent_error_and_creates_nothing(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "nope.duckdb"
    with pytest.raises(LogSourceError, match="cannot open database") as opened:
        source(f"duckdb:///{missing}", table="token_usage").fetch(MARCH)
    assert opened.value.permanent
    assert not missing.exists()

    path = tmp_path / "app.duckdb"
    duckdb.connect(str(path)).close()
    with pytest.raises(LogSourceError, match="table 'token_usage' does not exist") as table:
        source(f"duckdb:///{path}", table="token_usage").fetch(MARCH)
    assert table.value.reason == "table_missing"


def test_a_relation_whose_files_lack_a_mapped_column_names_it(tmp_path: Path) -> None:
    write_lake(ROWS, tmp_path / "lake")
    with pytest.raises(LogSourceError, match="has no column 'cached' \\(mapped as cached_tokens"):
        lake(tmp_path, columns={"cached_tokens": "cached"}).fetch(MARCH)
    with pytest.raises(LogSourceError, match="relation read_parquet\\('/nowhere/") as nowhere:
        lake(tmp_path, relation="read_parquet('/nowhere/*.parquet')").fetch(MARCH)
    assert "No files found" in str(nowhere.value)
    assert nowhere.value.permanent  # a glob matching nothing is a setting to fix


# -- timestamps ---------------------------------------------------------------------------------


def test_naive_timestamps_are_wall_time_in_the_timestamp_timezone(tmp_path: Path) -> None:
    # 23:30 UTC on March 1 is 01:30 on March 2 in Helsinki: the UTC day is still March 1.
    rows: list[dict[str, Any]] = [{"at": at(1, 23, 30)}, {"at": at(2, 0, 30)}]
    write_lake(rows, tmp_path / "lake", zone="Europe/Helsinki")

    zoned = lake(tmp_path, timestamp_timezone="Europe/Helsinki").fetch(MARCH)
    as_utc = lake(tmp_path).fetch(MARCH)

    assert {k.day: u.requests for k, u in zoned.groups.items()} == {
        date(2026, 3, 1): 1,
        date(2026, 3, 2): 1,
    }
    assert {k.day: u.requests for k, u in as_utc.groups.items()} == {date(2026, 3, 2): 2}


def test_timestamptz_and_epoch_seconds_columns_are_instants(tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = [{"at": at(1, 23, 30)}, {"at": at(2, 0, 30)}]
    write_lake(rows, tmp_path / "lake", timestamp="TIMESTAMPTZ")
    epoch = "(SELECT epoch(created_at)::BIGINT AS t, * FROM read_parquet('{}/*.parquet'))"
    with duckdb.connect() as con:
        con.execute(
            f"COPY {epoch.format(tmp_path / 'lake')} TO '{tmp_path / 'epoch.parquet'}' "
            "(FORMAT parquet)"
        )

    instants = lake(tmp_path, timestamp_timezone="Europe/Helsinki").fetch(MARCH)
    seconds = lake(
        tmp_path,
        relation=f"read_parquet('{tmp_path / 'epoch.parquet'}')",
        columns={"timestamp": "t"},
    ).fetch(MARCH)

    per_day = {date(2026, 3, 1): 1, date(2026, 3, 2): 1}
    assert {k.day: u.requests for k, u in instants.groups.items()} == per_day
    assert {k.day: u.requests for k, u in seconds.groups.items()} == per_day
    series = lake(
        tmp_path,
        relation=f"read_parquet('{tmp_path / 'epoch.parquet'}')",
        columns={"timestamp": "t"},
    ).series(at(1, 23), at(2, 1), HOUR)
    assert {b: u.requests for b, u in series[MINI].items()} == {at(1, 23): 1, at(2, 0): 1}


# -- series -------------------------------------------------------------------------------------


def test_series_buckets_the_lake_by_hour_and_minute_as_sqlite_does(tmp_path: Path) -> None:
    write_lake(ROWS, tmp_path / "lake")
    start, end = at(1, 0), at(3, 0)

    hourly = lake(tmp_path).series(start, end, HOUR)
    minutes = lake(tmp_path).series(start, end, timedelta(minutes=1))

    for db in Db.fresh("sqlite", tmp_path):
        db.insert(db.create(), *({**r, "is_batch": False} for r in ROWS))
        reference = source(db.url, table="token_usage")
        assert hourly == reference.series(start, end, HOUR)
        assert minutes == reference.series(start, end, timedelta(minutes=1))
    assert {b: u.requests for b, u in hourly[MINI].items()} == {
        at(1, 0): 1,
        at(1, 23): 2,
        at(2, 0): 1,  # r1, its repeat at 09:00 taken off
        at(2, 10): 1,
    }


# -- settings -----------------------------------------------------------------------------------


def settings(**values: Any) -> SqlSourceSettings:
    return SqlSourceSettings.model_validate(
        {"kind": "sql", "name": "lake", "columns": dict(COLUMNS), **values}
    )


def test_a_relation_of_an_allowed_reader_with_literal_arguments_is_accepted() -> None:
    relation = (
        "read_json(['a.ndjson', 'b.ndjson'], format = 'newline_delimited', "
        "columns = {'cost': 'DECIMAL(18, 6)'}, ignore_errors = true, sample_size = -1)"
    )
    assert settings(url="duckdb:///:memory:", relation=relation).relation == relation
    assert settings(url="duckdb:///lake.duckdb", table="token_usage").relation is None


@pytest.mark.parametrize(
    ("relation", "reason"),
    [
        ("read_parquet('a.parquet'); DROP TABLE t", "unexpected '; DROP TABLE t'"),
        ("read_parquet((SELECT 'a.parquet'))", "'\\(' is not a literal"),
        ("(SELECT * FROM token_usage)", "unexpected"),
        ("read_text('/etc/passwd')", "'read_text' is not one of read_parquet, read_json"),
        ("read_parquet('a.parquet') -- all", "unexpected '-- all'"),
        ("read_parquet('a.parquet') WHERE true", "nothing may follow the call, found 'WHERE'"),
        ("read_parquet(getenv('HOME'))", "'getenv' is not a literal"),
        ("read_parquet('a', hive_partitioning = x)", "'x' is not a literal"),
        ("read_parquet('a'), read_csv('b')", "nothing may follow the call"),
        ("read_parquet('a'", "expected '\\)', found the end"),
    ],
)
def test_a_relation_that_is_not_one_literal_reader_call_is_refused(
    relation: str, reason: str
) -> None:
    with pytest.raises(ValidationError, match=f"SQL source relation .* is refused: {reason}"):
        settings(url="duckdb:///:memory:", relation=relation)


def test_a_source_needs_exactly_one_of_table_and_relation_and_relations_need_duckdb() -> None:
    both = "needs exactly one of table \\(a table name\\) and relation"
    with pytest.raises(ValidationError, match=both):
        settings(url="duckdb:///:memory:", table="t", relation="read_parquet('a')")
    with pytest.raises(ValidationError, match=both):
        settings(url="duckdb:///:memory:")
    with pytest.raises(ValidationError, match="a relation is read by DuckDB only"):
        settings(url="sqlite:///app.db", relation="read_parquet('a')")


def test_check_config_connect_reads_a_relation_without_fetching_a_row(
    workdir: Path, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    write_lake(ROWS, tmp_path / "lake")
    config = workdir / "recon.toml"
    config.write_text(
        '[[sources]]\nkind = "sql"\nname = "lake"\nurl = "duckdb:///:memory:"\n'
        f"relation = \"read_parquet('{tmp_path / 'lake'}/*.parquet')\"\n"
        "[sources.columns]\n" + "".join(f'{k} = "{v}"\n' for k, v in COLUMNS.items()),
        encoding="utf-8",
    )
    ran = cli(workdir, fake_openai, "check-config", "--connect", "--config", str(config))
    assert ran.code == 0, ran.stderr
    assert f"lake: SQL relation read_parquet('{tmp_path / 'lake'}/*.parquet') in" in ran.stdout
    assert "answers; the table, its mapped columns and the filter are readable" in ran.stdout


def test_reconcile_requests_refuses_a_relation_it_could_not_write_back(tmp_path: Path) -> None:
    config = tmp_path / "recon.toml"
    config.write_text(
        '[[sources]]\nkind = "sql"\nname = "lake"\nurl = "duckdb:///:memory:"\n'
        "relation = \"read_parquet('lake/*.parquet')\"\n[sources.columns]\n"
        + "".join(f'{k} = "{v}"\n' for k, v in COLUMNS.items()),
        encoding="utf-8",
    )
    settings = load_settings(config, environ={})
    with pytest.raises(
        ConfigError, match="'lake' reads a relation \\(files\\); reconcile-requests"
    ):
        wiring.request_source(settings, "lake")


# -- the dialect table --------------------------------------------------------------------------


def test_every_backend_the_settings_accept_has_one_entry_in_the_dialect_table() -> None:
    assert set(BACKENDS) - {"mariadb"} == set(DIALECTS)
    tested = {name for name, entry in DIALECTS.items() if entry.tested}
    assert tested == {"sqlite", "postgresql", "mysql", "duckdb"}


@pytest.mark.parametrize("name", sorted(DIALECTS))
def test_each_dialect_entry_writes_a_day_and_a_minute_for_instants_and_wall_times(
    name: str,
) -> None:
    entry = DIALECTS[name]
    column = sa.column("created_at", sa.DateTime())
    written = []
    for zone in (None, "Europe/Helsinki"):
        utc = entry.to_utc(column, zone)
        if utc is None:  # MySQL: the CASE fallback, tested on MariaDB
            continue
        written += [entry.day(utc), entry.minute(utc)]
    written.append(entry.divide(sa.column("t", sa.BigInteger()), 86400))
    sql = [str(e.compile(compile_kwargs={"literal_binds": True})) for e in written]
    assert all("created_at" in s for s in sql[:-1])
    assert "86400" in sql[-1]
