"""The SQL source's duplicate request ids and hourly/minute series, on real databases.

SQLite always; PostgreSQL and MariaDB when their URLs are set (see ``tests/databases.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from recon_job.findings import Duplicates
from recon_job.models import UsageKey, UsageTotals
from recon_job.sources.base import SeriesSource
from recon_job.sources.sql import SqlTableOptions, SqlTableSource
from tests.databases import ALL, SERVERS
from tests.helpers import TOKEN_USAGE_COLUMNS as COLUMNS
from tests.helpers import FakePricer
from tests.sources.sql.test_source import MARCH, Db

D = Decimal
# A default row: 100 input + 10 output tokens of gpt-4o-mini at FakePricer's rates.
ONE = D("0.00012")
HOUR, MINUTE = timedelta(hours=1), timedelta(minutes=1)
MINI = ("completions", "gpt-4o-mini", None)


@pytest.fixture(params=ALL)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    """A fresh empty database on each backend."""
    yield from Db.fresh(request.param, tmp_path)


@pytest.fixture(params=SERVERS)
def server_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    """A fresh empty database on PostgreSQL and on MariaDB."""
    yield from Db.fresh(request.param, tmp_path)


def at(day: int, hour: int = 12, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=UTC)


def source(url: str, **options: Any) -> SqlTableSource:
    options.setdefault("table", "token_usage")
    options["columns"] = {**COLUMNS, **options.get("columns", {})}
    options.setdefault("cost_unit", "cents")
    return SqlTableSource(SqlTableOptions(url=url, **options), FakePricer())


def fetch(url: str, **options: Any) -> UsageTotals:
    return source(url, **options).fetch(MARCH)


def rid(value: str | None, when: datetime, **row: Any) -> dict[str, Any]:
    return {"at": when, "openai_request_id": value, **row}


def requests(series: dict[datetime, Any]) -> dict[datetime, int]:
    return {bucket: usage.requests for bucket, usage in series.items()}


@pytest.mark.parametrize("db", ALL, indirect=True)
def test_rows_repeating_a_request_id_on_a_day_count_once_and_are_reported(db: Db) -> None:
    table = db.create()
    db.insert(
        table,
        rid("r1", at(10, 8)),
        rid("r1", at(10, 9)),  # a retry logged twice
        rid("r1", at(10, 10)),  # and a third time
        rid("r2", at(10, 8), cost=50),  # 50 cents logged
        rid("r2", at(10, 8, 1), cost=50),
        rid("r3", at(10, 8)),
        rid("r3", at(11, 8)),  # another UTC day: another request
        rid(None, at(10, 8)),
        rid(None, at(10, 8)),
        rid("r4", at(10, 8), model_used=None),  # skipped (missing_model): never an original
        rid("r4", at(10, 9)),
    )
    totals = fetch(db.url)
    day10 = totals.groups[UsageKey(at(10).date(), "gpt-4o-mini")]
    # r1 r2 r3 r4 and two rows without an id.
    assert day10.requests == 6
    assert day10.input_tokens == 600
    assert day10.cost == 5 * ONE + D("0.5")
    assert totals.groups[UsageKey(at(11).date(), "gpt-4o-mini")].requests == 1
    assert totals.skipped == {"missing_model": 1}
    assert totals.duplicates == Duplicates(
        count=3,
        request_ids=2,
        cost=2 * ONE + D("0.5"),
        locations=("token_usage:r2", "token_usage:r1"),
    )
    assert totals.info["duplicate_records"] == 3
    assert totals.info["rows_counted"] == 7

    undeduped = fetch(db.url, dedupe=False)
    assert undeduped.groups[UsageKey(at(10).date(), "gpt-4o-mini")].requests == 9
    assert undeduped.duplicates is None


@pytest.mark.parametrize("db", ALL, indirect=True)
def test_a_group_made_only_of_repeats_goes_and_no_repeat_reports_zero(db: Db) -> None:
    table = db.create()
    db.insert(table, rid("r1", at(10, 8)), rid("r1", at(10, 9), model_used="gpt-4.1"))
    totals = fetch(db.url)
    assert list(totals.groups) == [UsageKey(at(10).date(), "gpt-4o-mini")]
    assert totals.duplicates is not None
    assert totals.duplicates.count == 1

    other = fetch(db.url, filter="openai_request_id <> 'r1'")
    assert other.duplicates == Duplicates(count=0, request_ids=0, cost=D(0))


@pytest.mark.parametrize("db", ALL, indirect=True)
def test_without_a_request_id_column_nothing_is_deduped(db: Db) -> None:
    table = db.create()
    db.insert(table, rid("r1", at(10, 8)), rid("r1", at(10, 9)))
    columns = {k: v for k, v in COLUMNS.items() if k != "request_id"}
    options = SqlTableOptions(url=db.url, table="token_usage", columns=columns, cost_unit="cents")
    totals = SqlTableSource(options, FakePricer()).fetch(MARCH)
    assert totals.duplicates is None
    assert sum(u.requests for u in totals.groups.values()) == 2


@pytest.mark.parametrize("db", ALL, indirect=True)
def test_series_buckets_rows_by_hour_and_minute_exactly_and_dedupes(db: Db) -> None:
    table = db.create()
    db.insert(
        table,
        rid("a", at(10, 13, 59, 59)),  # before start
        rid("b", at(10, 14, 0, 0)),
        rid("c", at(10, 14, 0, 59)),
        rid("d", at(10, 14, 1, 0)),
        rid("a", at(10, 14, 30)),  # repeats a (counted at 13:59): not counted here either
        rid("e", at(10, 15, 59, 59), cost=10),
        rid("e", at(10, 15, 59, 59), cost=10),
        rid("f", at(10, 16, 0, 0)),  # end is exclusive
        rid("g", at(11, 14, 0, 0)),
    )
    src: SeriesSource = source(db.url)
    start, end = at(10, 14), at(10, 16)
    hourly = src.series(start, end, HOUR)
    assert list(hourly) == [MINI]
    assert requests(hourly[MINI]) == {at(10, 14): 3, at(10, 15): 1}
    assert hourly[MINI][at(10, 14)].cost == 3 * ONE
    assert hourly[MINI][at(10, 15)].cost == D("0.1")
    minutes = src.series(start, end, MINUTE)
    assert requests(minutes[MINI]) == {at(10, 14, 0): 2, at(10, 14, 1): 1, at(10, 15, 59): 1}
    assert all(bucket.tzinfo is UTC for bucket in minutes[MINI])
    undeduped = source(db.url, dedupe=False).series(start, end, HOUR)
    assert requests(undeduped[MINI]) == {at(10, 14): 4, at(10, 15): 2}


@pytest.mark.parametrize("db", ALL, indirect=True)
def test_series_of_an_epoch_seconds_column(db: Db) -> None:
    table = db.create(timestamp=sa.BigInteger())
    db.insert(table, rid("a", at(10, 14, 0, 59)), rid("b", at(10, 14, 1)), rid("c", at(10, 23, 59)))
    series = source(db.url).series(at(10, 14), at(11, 0), MINUTE)
    assert requests(series[MINI]) == {at(10, 14, 0): 1, at(10, 14, 1): 1, at(10, 23, 59): 1}


@pytest.mark.parametrize("server_db", SERVERS, indirect=True)
def test_series_reads_a_naive_column_in_its_timestamp_timezone(server_db: Db) -> None:
    db = server_db
    table = db.create(timestamp=sa.DateTime(timezone=False))
    berlin = ZoneInfo("Europe/Berlin")
    db.insert(
        table,
        rid("a", at(10, 14, 30), zone=berlin),  # stored as 15:30 wall time
        rid("b", at(10, 15, 10), zone=berlin),
        rid("c", at(10, 13, 10), zone=berlin),
    )
    series = source(db.url, timestamp_timezone="Europe/Berlin").series(at(10, 14), at(10, 16), HOUR)
    assert requests(series[MINI]) == {at(10, 14): 1, at(10, 15): 1}


@pytest.mark.parametrize("db", ALL, indirect=True)
def test_series_skips_bad_rows_without_raising(db: Db) -> None:
    table = db.create()
    db.insert(
        table,
        rid("a", at(10, 14), model_used=None),
        rid("b", at(10, 14), prompt_tokens=-5),
        rid("c", at(10, 14), completion_tokens=None),
        rid("d", at(10, 14, 5)),
    )
    if db.backend == "sqlite":
        with db.engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO token_usage (model_used, prompt_tokens, completion_tokens, "
                "openai_request_id, created_at) "
                "VALUES ('gpt-4o-mini', 1, 1, 'x', '2026-03-10 14:x')"
            )
    series = source(db.url).series(at(10, 14), at(10, 15), HOUR)
    assert requests(series[MINI]) == {at(10, 14): 1}
