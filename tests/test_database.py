"""``recon_job.database``: one URL rule, password-free messages, one transient/permanent rule.

The classifier is checked against real failures of real servers (PostgreSQL, MariaDB) and of
SQLite, never against hand-made exception objects: what matters is what the drivers really raise.
"""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import exc

from recon_job.database import display_url, first_line, is_transient, parse_url, redact
from tests.databases import mysql_server_or_skip, postgres_server_or_skip

PASSWORD = "s3cr3t-Passw0rd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _error(url: str, sql: str = "SELECT 1") -> exc.SQLAlchemyError:
    engine = sa.create_engine(
        url, connect_args={"connect_timeout": 3} if "sqlite" not in url else {}
    )
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(sql)
    except exc.SQLAlchemyError as e:
        return e
    finally:
        engine.dispose()
    raise AssertionError(f"{sql} on {display_url(url)} did not fail")


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg"),
        ("postgres://u@h/db", "postgresql+psycopg"),
        ("mysql://u@h/db", "mysql+pymysql"),
        ("mariadb://u@h/db", "mariadb+pymysql"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg"),
        ("sqlite:///x.db", "sqlite"),
    ],
)
def test_urls_default_to_the_drivers_recon_job_ships(url: str, driver: str) -> None:
    assert parse_url(url).drivername == driver


@pytest.mark.parametrize(
    "url", [f"postgresql+psycopg://u:{PASSWORD}@[bad", "not a url", f"://u:{PASSWORD}@h"]
)
def test_an_unparseable_url_is_refused_without_repeating_it(url: str) -> None:
    with pytest.raises(ValueError, match="not a database URL") as caught:
        parse_url(url)
    assert PASSWORD not in str(caught.value)


def test_shown_urls_and_driver_messages_never_carry_the_password() -> None:
    url = f"postgresql+psycopg://app:{PASSWORD}@db.internal:5432/app"
    assert PASSWORD not in display_url(url)
    assert PASSWORD not in display_url(f"postgresql+psycopg://app:{PASSWORD}@[bad")
    assert redact(f"login for app:{PASSWORD} failed", url) == "login for app:*** failed"


@pytest.mark.parametrize(
    "url",
    [
        # psycopg and Snowflake take the password as a query parameter too: it was shown in
        # errors and stored in the history's runs.
        f"postgresql+psycopg://app@db.internal:5432/app?password={PASSWORD}&sslmode=require",
        f"snowflake://app@acct/db?password={PASSWORD}",
        f"postgresql+psycopg://app@db/app?sslpassword={PASSWORD}",
        f"duckdb:///md:lake?motherduck_token={PASSWORD}",
        f"bigquery://proj/ds?credentials_base64={PASSWORD}",
        f"postgresql+psycopg://app@[bad/app?password={PASSWORD}",  # too broken to parse
    ],
)
def test_a_credential_in_the_query_string_is_masked_like_the_password(url: str) -> None:
    shown = display_url(url)
    assert PASSWORD not in shown
    assert "=***" in shown
    assert (
        redact(f"could not connect: {PASSWORD} rejected", url) == "could not connect: *** rejected"
    )
    # What is not a credential stays readable.
    assert display_url("duckdb:///:memory:?memory_limit=256MB") == (
        "duckdb:///:memory:?memory_limit=256MB"
    )


def test_sqlite_busy_is_transient_and_a_missing_table_permanent(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        busy = _error(f"sqlite:///{path}?timeout=0", "INSERT INTO t VALUES (1)")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert is_transient(busy), first_line(busy)
    missing = _error(f"sqlite:///{path}", "SELECT * FROM nope")
    assert not is_transient(missing)
    assert first_line(missing) == "no such table: nope"


def test_an_unopenable_sqlite_file_is_permanent(tmp_path: Path) -> None:
    error = _error(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    assert not is_transient(error), first_line(error)


@pytest.mark.postgres
def test_postgresql_refused_port_is_transient_and_a_missing_database_permanent() -> None:
    server = parse_url(postgres_server_or_skip())
    refused = _error(server.set(port=_free_port()).render_as_string(hide_password=False))
    assert is_transient(refused), first_line(refused)
    missing = _error(server.set(database="recon_no_such_db").render_as_string(hide_password=False))
    assert not is_transient(missing), first_line(missing)
    bad_sql = _error(server.render_as_string(hide_password=False), "SELECT * FROM nope")
    assert not is_transient(bad_sql)


@pytest.mark.mysql
def test_mariadb_refused_port_is_transient_and_a_missing_database_permanent() -> None:
    server = parse_url(mysql_server_or_skip())
    refused = _error(server.set(port=_free_port()).render_as_string(hide_password=False))
    assert is_transient(refused), first_line(refused)
    missing = _error(server.set(database="recon_no_such_db").render_as_string(hide_password=False))
    assert not is_transient(missing), first_line(missing)
    assert first_line(missing).startswith("Unknown database")
