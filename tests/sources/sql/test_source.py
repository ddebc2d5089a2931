"""Tests of the SQL table source on real databases: SQLite always, PostgreSQL and MariaDB when set.

PostgreSQL runs with ``RECON_TEST_POSTGRES_URL`` and MySQL/MariaDB with ``RECON_TEST_MYSQL_URL``
(see ``tests/databases.py``); each test gets a database of its own and drops it afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from recon_job.errors import LogSourceError
from recon_job.models import UnpricedKey, Usage, UsageKey, UsageTotals, Window
from recon_job.sources.sql import SqlTableOptions, SqlTableSource
from tests.databases import ALL, POSTGRES, SERVERS, Database
from tests.helpers import TOKEN_USAGE_COLUMNS as COLUMNS
from tests.helpers import FakePricer

MARCH = Window("monthly", date(2026, 3, 1), date(2026, 4, 1))
D = Decimal
SECRET = "secretpw"


class Db(Database):
    """One throw-away database and the engine the test fills it with."""

    def create(
        self,
        timestamp: sa.types.TypeEngine[Any] | None = None,
        *,
        tokens: sa.types.TypeEngine[Any] | None = None,
        cost: sa.types.TypeEngine[Any] | None = None,
    ) -> sa.Table:
        """A ``token_usage`` table shaped like the issue's; timestamptz on PostgreSQL.

        ``tokens`` and ``cost`` replace the type of the token columns (INTEGER) and of the
        cost column (NUMERIC(12, 4); FLOAT on SQLite).
        """
        if timestamp is None:
            timestamp = sa.DateTime(timezone=self.backend == "postgresql")
        tokens = tokens if tokens is not None else sa.Integer()
        # Exact on the servers; SQLite has no decimal type, so it sums floats there.
        cost = cost if cost is not None else sa.Numeric(12, 4).with_variant(sa.Float, "sqlite")
        table = sa.Table(
            "token_usage",
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("model_used", sa.String(64)),
            sa.Column("prompt_tokens", tokens),
            sa.Column("completion_tokens", tokens),
            sa.Column("cached_tokens", tokens),
            sa.Column("calculated_cost_cents", cost),
            sa.Column("openai_request_id", sa.String(64)),
            sa.Column("created_at", timestamp),
            sa.Column("environment", sa.String(16)),
            sa.Column("project_id", sa.String(32)),
            sa.Column("is_batch", sa.Boolean),
            sa.Column("service_tier", sa.String(16)),
        )
        table.create(self.engine)
        return table

    def insert(self, table: sa.Table, *rows: dict[str, Any]) -> None:
        """Insert ``rows`` (``at`` an aware UTC datetime) with defaults for the other columns."""
        column_type = table.c.created_at.type
        full = []
        for i, row in enumerate(rows):
            at = row.pop("at")
            if isinstance(column_type, sa.Integer) or isinstance(at, int):
                stamp: Any = at if isinstance(at, int) else int(at.timestamp())
            elif isinstance(at, str) or getattr(column_type, "timezone", False):
                stamp = at
            else:
                stamp = at.astimezone(row.pop("zone", UTC)).replace(tzinfo=None)
            row.pop("zone", None)
            cost = row.pop("cost", None)
            if cost is not None and self.backend == "sqlite":
                cost = float(cost)
            full.append(
                {
                    "model_used": "gpt-4o-mini",
                    "prompt_tokens": 100,
                    "completion_tokens": 10,
                    "cached_tokens": None,
                    "calculated_cost_cents": cost,
                    "openai_request_id": f"req_{i}",
                    "created_at": stamp,
                    "environment": "production",
                    "project_id": None,
                    "is_batch": False,
                    "service_tier": "default",
                    **row,
                }
            )
        with self.engine.begin() as conn:
            conn.execute(table.insert(), full)


@pytest.fixture(params=ALL)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    """A fresh empty database on each backend."""
    yield from Db.fresh(request.param, tmp_path)


@pytest.fixture(params=SERVERS)
def server_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    """A fresh empty database on PostgreSQL and on MariaDB."""
    yield from Db.fresh(request.param, tmp_path)


@pytest.fixture
def reader(db: Db) -> Iterator[str]:
    """A URL whose user may only SELECT from ``token_usage`` (after the test created it)."""
    if db.backend == "sqlite":
        yield db.url
        return
    name = f"recon_ro_{uuid.uuid4().hex[:8]}"
    database = make_url(db.url).database
    admin = sa.create_engine(db.url, isolation_level="AUTOCOMMIT")
    pg = db.backend == "postgresql"
    try:
        with admin.connect() as conn:
            if pg:
                conn.exec_driver_sql(f"CREATE ROLE {name} LOGIN PASSWORD '{SECRET}'")
                conn.exec_driver_sql(f'GRANT CONNECT ON DATABASE "{database}" TO {name}')
                conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA public TO {name}")
                conn.exec_driver_sql(
                    f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {name}"
                )
            else:
                conn.exec_driver_sql(f"CREATE USER '{name}'@'%%' IDENTIFIED BY '{SECRET}'")
                conn.exec_driver_sql(f"GRANT SELECT ON `{database}`.* TO '{name}'@'%%'")
        yield make_url(db.url).set(username=name, password=SECRET).render_as_string(False)
    finally:
        with admin.connect() as conn:
            if pg:
                conn.exec_driver_sql(f"DROP OWNED BY {name}")
                conn.exec_driver_sql(f'REVOKE ALL ON DATABASE "{database}" FROM {name}')
                conn.exec_driver_sql(f"DROP ROLE {name}")
            else:
                conn.exec_driver_sql(f"DROP USER '{name}'@'%%'")
        admin.dispose()


def at(day: int, hour: int = 12, minute: int = 0, second: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=UTC)


def key(day: int, model: str = "gpt-4o-mini", project: str | None = None) -> UsageKey:
    return UsageKey(date(2026, 3, day), model, project)


def fetch(url: str, *, pricer: FakePricer | None = None, **options: Any) -> UsageTotals:
    options.setdefault("table", "token_usage")
    options["columns"] = {**COLUMNS, **options.get("columns", {})}
    options.setdefault("cost_unit", "cents")
    source = SqlTableSource(SqlTableOptions(url=url, **options), pricer or FakePricer())
    return source.fetch(MARCH)


# -- what it counts -----------------------------------------------------------------------------


@pytest.mark.parametrize("db", ALL, indirect=True)
def test_it_sums_each_utc_day_and_model_with_logged_estimated_and_unknown_costs(db: Db) -> None:
    table = db.create()
    db.insert(
        table,
        {"at": at(28, 23, 59, 59, month=2)},
        {"at": at(1, 0), "prompt_tokens": 1000, "completion_tokens": 100, "cached_tokens": 400},
        {"at": at(1, 23, 59, 59), "prompt_tokens": 2000, "completion_tokens": 500, "cost": "1.5"},
        {"at": at(2, 0)},
        {"at": at(31, 23, 59, 59), "model_used": "o4-mini", "prompt_tokens": 300},
        {"at": at(31, 23, 59, 59), "model_used": "o4-mini", "prompt_tokens": 50, "cost": "2.25"},
        {"at": at(1, 0, month=4)},
    )
    pricer = FakePricer()

    totals = fetch(db.url, pricer=pricer)

    assert totals.groups == {
        # 600 uncached + 400 cached at half + 100 output at 2 = $0.001, plus 1.5 cents logged.
        key(1): Usage(3000, 400, 600, 2, D("0.016")),
        key(2): Usage(100, 0, 10, 1, D("0.00012")),
        # The logged cost of the priced row stays; the other's cost is unknown, not zero.
        key(31, "o4-mini"): Usage(350, 0, 20, 2, D("0.0225")),
    }
    assert totals.unpriced == {UnpricedKey("o4-mini", "standard"): Usage(300, 0, 10, 1)}
    assert totals.skipped == {}
    assert totals.info["rows_counted"] == 5
    # One pricing call per cost-less aggregate, never per row.
    assert sorted((m, d.day) for m, d, _, _ in pricer.calls) == [
        ("gpt-4o-mini", 1),
        ("gpt-4o-mini", 2),
        ("o4-mini", 31),
    ]


@pytest.mark.parametrize("db", ALL, indirect=True)
def test_it_prices_batch_flex_and_priority_rows_at_their_tier(db: Db) -> None:
    table = db.create()
    million = {"at": at(5), "prompt_tokens": 1_000_000, "completion_tokens": 0}
    db.insert(
        table,
        {**million},
        {**million, "service_tier": "auto"},
        {**million, "is_batch": True},
        {**million, "service_tier": "flex"},
        {**million, "service_tier": "priority"},
        {**million, "service_tier": None, "cost": "7"},
    )
    pricer = FakePricer()

    totals = fetch(
        db.url, pricer=pricer, columns={"batch": "is_batch", "service_tier": "service_tier"}
    )

    # standard 1 + 1, batch 0.5, flex 0.5, priority 2, and 7 cents logged.
    assert totals.groups == {key(5): Usage(6_000_000, 0, 0, 6, D("5.07"))}
    assert sorted(tier for _, _, tier, _ in pricer.calls) == [
        "batch",
        "flex",
        "priority",
        "standard",
    ]


@pytest.mark.parametrize("db", ALL, indirect=True)
def test_it_applies_the_filter_and_groups_and_selects_by_project(db: Db) -> None:
    table = db.create()
    db.insert(
        table,
        {"at": at(3), "project_id": "proj_a"},
        {"at": at(3), "project_id": "proj_b"},
        {"at": at(3), "project_id": None},
        {"at": at(3), "project_id": "proj_a", "environment": "staging"},
    )
    # A LIKE pattern: its % must survive drivers that use %s placeholders.
    options: dict[str, Any] = {
        "filter": "environment LIKE 'prod%'",
        "group_by": ("model", "project_id"),
        "columns": {"project_id": "project_id"},
    }

    everything = fetch(db.url, **options)
    selected = fetch(db.url, project_ids=("proj_a",), **options)

    one = Usage(100, 0, 10, 1, D("0.00012"))
    assert everything.groups == {
        key(3, project=None): one,
        key(3, project="proj_a"): one,
        key(3, project="proj_b"): one,
    }
    # Rows without a project are kept, as the NDJSON source keeps records without one.
    assert selected.groups == {key(3, project=None): one, key(3, project="proj_a"): one}


@pytest.mark.parametrize("db", ALL, indirect=True)
def test_it_counts_rows_it_cannot_use_as_skipped_and_leaves_them_out(db: Db) -> None:
    table = db.create()
    db.insert(
        table,
        {"at": at(4)},
        {"at": at(4), "model_used": None},
        {"at": at(4), "model_used": ""},
        {"at": at(4), "prompt_tokens": None},
        {"at": at(4), "completion_tokens": None},
        {"at": at(4), "prompt_tokens": -5},
        {"at": at(4), "cached_tokens": -1},
        {"at": at(4), "cached_tokens": 101},
        {"at": at(4), "cost": "-1"},
        {"at": at(4, month=4), "model_used": None},
    )

    totals = fetch(db.url)

    assert totals.groups == {key(4): Usage(100, 0, 10, 1, D("0.00012"))}
    assert totals.skipped == {
        "bad_cost": 1,
        "cached_exceeds_input": 1,
        "missing_model": 2,
        "missing_tokens": 2,
        "negative_tokens": 2,
    }
    assert totals.info["rows_counted"] == 1


@pytest.mark.parametrize("db", ALL, indirect=True)
def test_fractional_and_out_of_range_token_counts_are_bad_tokens_not_truncated(db: Db) -> None:
    # NUMERIC token columns hold fractions; 2**63 fits NUMERIC(30, 4) on every server.
    table = db.create(tokens=sa.Numeric(30, 4))
    db.insert(
        table,
        {"at": at(5), "prompt_tokens": D("3000.0"), "completion_tokens": D("7.0")},
        {"at": at(5), "prompt_tokens": D("2999.9")},
        {"at": at(5), "completion_tokens": D("0.9")},
        {"at": at(5), "cached_tokens": D("0.5")},
        {"at": at(5), "prompt_tokens": 2**53},
        {"at": at(5), "prompt_tokens": 2**63, "completion_tokens": 2**63},
    )

    totals = fetch(db.url)

    assert totals.skipped == {"bad_tokens": 5}
    assert totals.groups == {key(5): Usage(3000, 0, 7, 1, D("0.003014"))}
    assert totals.info["rows_counted"] == 1


@pytest.mark.parametrize("db", ALL, indirect=True)
def test_counts_beyond_2_53_in_bigint_columns_are_skipped_and_never_overflow_a_sum(db: Db) -> None:
    table = db.create(tokens=sa.BigInteger())
    largest = 2**53 - 1
    db.insert(
        table,
        {"at": at(6), "prompt_tokens": largest, "completion_tokens": 0},
        # Two of them in one group: SQLite's 64-bit SUM would fail the whole query.
        {"at": at(6), "prompt_tokens": 2**63 - 1},
        {"at": at(6), "prompt_tokens": 2**63 - 1},
        {"at": at(6), "completion_tokens": 2**53},
    )

    totals = fetch(db.url, columns={"cost": "calculated_cost_cents"})

    assert totals.skipped == {"bad_tokens": 3}
    assert totals.groups[key(6)].input_tokens == largest


@pytest.mark.parametrize("db", ALL, indirect=True)
def test_a_cost_beyond_any_real_one_is_bad_cost(db: Db) -> None:
    table = db.create(cost=sa.Double())
    db.insert(
        table,
        {"at": at(7), "calculated_cost_cents": 12.0},
        {"at": at(7), "calculated_cost_cents": 1e300},
        {"at": at(7), "calculated_cost_cents": 1e17},
        {"at": at(7), "calculated_cost_cents": 1e17 - 2**10},
    )

    totals = fetch(db.url)

    assert totals.skipped == {"bad_cost": 2}
    assert totals.groups[key(7)].requests == 2


def test_sqlite_refuses_infinite_and_text_costs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    db = Db("sqlite", url, sa.create_engine(url))
    db.create(cost=sa.Float())
    with db.engine.begin() as conn:
        # SQLite keeps whatever it is given; values SQLAlchemy's Float would refuse to send.
        for cost, tokens in (
            (12.0, 100),
            (float("inf"), 100),
            ("1e999999", 100),
            ("twelve", 100),
            (None, "a lot"),
        ):
            conn.exec_driver_sql(
                "INSERT INTO token_usage (model_used, prompt_tokens, completion_tokens, "
                "calculated_cost_cents, created_at) VALUES ('gpt-4o-mini', ?, 10, ?, ?)",
                (tokens, cost, "2026-03-07 12:00:00"),
            )
    db.engine.dispose()

    totals = fetch(url)

    assert totals.skipped == {"bad_cost": 3, "bad_tokens": 1}
    assert totals.groups == {key(7): Usage(100, 0, 10, 1, D("0.12"))}


@pytest.mark.parametrize("db", [POSTGRES], indirect=True)
def test_postgresql_refuses_infinite_and_nan_costs_and_counts(db: Db) -> None:
    table = db.create(tokens=sa.Double(), cost=sa.Double())
    db.insert(
        table,
        {"at": at(7), "calculated_cost_cents": 12.0},
        {"at": at(7), "calculated_cost_cents": float("inf")},
        {"at": at(7), "calculated_cost_cents": float("nan")},
        {"at": at(7), "prompt_tokens": float("nan")},
        {"at": at(7), "completion_tokens": float("inf")},
    )

    totals = fetch(db.url)

    assert totals.skipped == {"bad_cost": 2, "bad_tokens": 2}
    assert totals.groups == {key(7): Usage(100, 0, 10, 1, D("0.12"))}


@pytest.mark.parametrize("db", ["sqlite", "mysql"], indirect=True)
def test_a_nul_in_a_model_name_is_bad_model(db: Db) -> None:
    # PostgreSQL cannot store a NUL in text at all; the others can, and hand it over.
    table = db.create()
    db.insert(table, {"at": at(9)}, {"at": at(9), "model_used": "gpt-4o-mini\x00evil"})

    totals = fetch(db.url)

    assert totals.skipped == {"bad_model": 1}
    assert set(totals.groups) == {key(9)}


@pytest.mark.parametrize("db", ALL, indirect=True)
def test_it_reads_integer_epoch_seconds(db: Db) -> None:
    table = db.create(timestamp=sa.BigInteger())
    db.insert(
        table,
        {"at": at(28, 23, 59, 59, month=2)},
        {"at": at(1, 0)},
        {"at": at(31, 23, 59, 59)},
        {"at": at(1, 0, month=4)},
    )

    totals = fetch(db.url)

    assert set(totals.groups) == {key(1), key(31)}
    assert totals.info["rows_counted"] == 2


@pytest.mark.parametrize("server_db", SERVERS, indirect=True)
def test_it_reads_a_naive_timestamp_column_kept_in_helsinki_time(server_db: Db) -> None:
    db = server_db
    table = db.create(timestamp=sa.DateTime(timezone=False))
    helsinki = ZoneInfo("Europe/Helsinki")
    db.insert(
        table,
        # UTC+2 until 29 March, UTC+3 after: every edge is a UTC midnight.
        {"at": at(28, 23, 59, 59, month=2), "zone": helsinki},
        {"at": at(1, 0), "zone": helsinki, "prompt_tokens": 1},
        {"at": at(1, 23, 30), "zone": helsinki, "prompt_tokens": 2},
        {"at": at(30, 23, 59, 59), "zone": helsinki, "prompt_tokens": 4},
        {"at": at(31, 0), "zone": helsinki, "prompt_tokens": 8},
        {"at": at(31, 23, 59, 59), "zone": helsinki, "prompt_tokens": 16},
        {"at": at(1, 0, month=4), "zone": helsinki},
    )

    totals = fetch(db.url, timestamp_timezone="Europe/Helsinki")

    assert {k.day.day: u.input_tokens for k, u in totals.groups.items()} == {1: 3, 30: 4, 31: 24}


def test_a_mysql_timestamp_column_is_read_in_utc_whatever_the_writer_zone(tmp_path: Path) -> None:
    for db in Db.fresh("mysql", tmp_path):
        table = db.create(timestamp=sa.TIMESTAMP())
        with db.engine.begin() as conn:
            conn.exec_driver_sql("SET time_zone = '+05:00'")
            for wall in ("2026-03-01 04:59:59", "2026-03-01 05:00:00"):
                row = {"model_used": "gpt-4o-mini", "prompt_tokens": 1, "completion_tokens": 0}
                conn.execute(table.insert(), {**row, "created_at": wall})

        totals = fetch(db.url, timestamp_timezone="Asia/Tokyo")  # ignored: TIMESTAMP is absolute

        assert totals.groups == {key(1): Usage(1, 0, 0, 1, D("0.000001"))}


def test_sqlite_reads_iso_text_in_either_form_and_counts_unreadable_text(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    engine = sa.create_engine(url)
    db = Db("sqlite", url, engine)
    table = db.create(timestamp=sa.Text())
    db.insert(
        table,
        {"at": "2026-02-28T23:59:59Z"},
        {"at": "2026-03-01T00:00:00Z"},
        {"at": "2026-03-01 23:59:59.999999"},
        {"at": "2026-03-31T23:59:59"},
        {"at": "2026-03-3x"},
        {"at": "2026-04-01"},
        {"at": "2026-04-01T00:00:00Z"},
    )
    engine.dispose()

    totals = fetch(url)

    assert {k.day.day: u.requests for k, u in totals.groups.items()} == {1: 2, 31: 1}
    assert totals.skipped == {"bad_timestamp": 1}


@pytest.mark.parametrize("db", ALL, indirect=True)
def test_costs_of_a_tenth_of_a_cent_add_up_exactly_on_every_database(db: Db) -> None:
    # SQLite sums its NUMERIC/REAL costs as binary floats: 3 x 0.1 cent was
    # 0.30000000000000004 cents in the run's JSON.
    table = db.create()
    db.insert(
        table, *({"at": datetime(2026, 3, 2, 12, tzinfo=UTC), "cost": "0.1"} for _ in range(3))
    )

    totals = fetch(db.url)

    [usage] = totals.groups.values()
    assert usage.cost == D("0.003")


# -- what it refuses ----------------------------------------------------------------------------


def test_the_options_never_show_the_url() -> None:
    # What the options may hold is checked on the settings: tests/config/test_sources.py.
    options = SqlTableOptions(
        url=f"postgresql+psycopg://app:{SECRET}@db/app", table="token_usage", columns=COLUMNS
    )
    assert SECRET not in repr(options)
    assert SECRET not in repr(SqlTableSource(options, FakePricer()))
    assert options.display_url == "postgresql+psycopg://app:***@db/app"


@pytest.mark.parametrize("db", ALL, indirect=True)
def test_a_missing_table_is_permanent_and_named(db: Db, reader: str) -> None:
    db.create()

    with pytest.raises(LogSourceError) as info:
        fetch(reader, table="token_usgae")

    assert info.value.permanent
    assert info.value.reason == "table_missing"
    assert "table 'token_usgae' does not exist" in str(info.value)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("db", [POSTGRES], indirect=True)
def test_a_password_given_as_a_query_parameter_is_never_shown(db: Db, reader: str) -> None:
    # psycopg reads ?password=: it was printed in the error, and stored in the history's runs.
    db.create()
    url = make_url(reader)
    assert url.password
    in_query = url.set(password=None).update_query_dict({"password": str(url.password)})
    moved = in_query.render_as_string(hide_password=False)

    with pytest.raises(LogSourceError) as info:
        fetch(moved, table="token_usgae")

    assert info.value.reason == "table_missing"
    assert str(url.password) not in str(info.value)
    assert "password=***" in str(info.value)


@pytest.mark.parametrize("db", ALL, indirect=True)
def test_a_missing_column_is_permanent_and_names_what_the_config_expects(
    db: Db, reader: str
) -> None:
    db.create()

    with pytest.raises(LogSourceError) as info:
        fetch(reader, columns={"cost": "cost_cents"})

    message = str(info.value)
    assert info.value.permanent
    assert info.value.reason == "column_missing"
    assert "table 'token_usage' has no column 'cost_cents' (mapped as cost)" in message
    assert "calculated_cost_cents" in message  # the columns it does have
    assert SECRET not in message


@pytest.mark.parametrize("db", ALL, indirect=True)
def test_a_bad_filter_is_permanent_with_the_database_message(db: Db, reader: str) -> None:
    db.create()

    with pytest.raises(LogSourceError) as info:
        fetch(reader, filter="enviroment = 'production'")

    message = str(info.value)
    assert info.value.permanent
    assert info.value.reason == "query_failed"
    assert "enviroment" in message
    assert "filter" in message
    assert SECRET not in message


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg://u:{SECRET}@127.0.0.1:1/x",
        f"mysql+pymysql://u:{SECRET}@127.0.0.1:1/x",
    ],
    ids=["postgresql", "mysql"],
)
def test_an_unreachable_server_is_transient_and_hides_the_password(url: str) -> None:
    with pytest.raises(LogSourceError) as info:
        fetch(url)

    assert not info.value.permanent
    assert info.value.reason == "database_unreachable"
    assert SECRET not in str(info.value)
    assert "u:***@127.0.0.1:1/x" in str(info.value)


@pytest.mark.parametrize("server_db", SERVERS, indirect=True)
def test_an_unknown_database_is_permanent(server_db: Db) -> None:
    url = make_url(server_db.url).set(database="recon_no_such_database")

    with pytest.raises(LogSourceError) as info:
        fetch(url.render_as_string(hide_password=False))

    assert info.value.permanent
    assert info.value.reason == "database_refused"
    assert "recon_no_such_database" in str(info.value)


def test_a_missing_sqlite_file_is_permanent_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "nope.db"

    with pytest.raises(LogSourceError) as info:
        fetch(f"sqlite:///{path}")

    assert info.value.permanent
    assert not path.exists()


# -- read-only ----------------------------------------------------------------------------------


@pytest.mark.parametrize("db", ALL, indirect=True)
def test_it_works_with_a_select_only_user_and_its_session_cannot_write(db: Db, reader: str) -> None:
    table = db.create()
    db.insert(table, {"at": at(6)})
    source = SqlTableSource(
        SqlTableOptions(url=db.url, table="token_usage", columns=COLUMNS), FakePricer()
    )

    assert fetch(reader).groups == {key(6): Usage(100, 0, 10, 1, D("0.00012"))}
    # Even with an owner's login, the source's session refuses writes.
    with source.connect() as conn, pytest.raises(sa.exc.DBAPIError):
        conn.execute(table.delete())
    with db.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 1


# -- the index ----------------------------------------------------------------------------------


@pytest.mark.postgres
def test_the_query_uses_an_index_on_the_timestamp_column(tmp_path: Path) -> None:
    for db in Db.fresh("postgresql", tmp_path):
        table = db.create()
        db.insert(table, *({"at": at(1 + i % 28, i % 24)} for i in range(200)))
        with db.engine.begin() as conn:
            conn.exec_driver_sql(
                "CREATE INDEX token_usage_created_at_idx ON token_usage (created_at)"
            )
            conn.exec_driver_sql("ANALYZE token_usage")
        source = SqlTableSource(
            SqlTableOptions(
                url=db.url,
                table="token_usage",
                columns=COLUMNS,
                filter="environment = 'production'",
            ),
            FakePricer(),
        )

        with source.connect() as conn:
            # With a sequential scan priced out, only a sargable WHERE can use the index.
            conn.exec_driver_sql("SET enable_seqscan = off")
            compiled = source.statement(conn, MARCH).compile(conn)
            plan = "\n".join(
                row[0] for row in conn.exec_driver_sql("EXPLAIN " + str(compiled), compiled.params)
            )

        assert "token_usage_created_at_idx" in plan
        assert "Index Scan" in plan or "Bitmap Index Scan" in plan
        assert "Index Cond: ((created_at >= " in plan
