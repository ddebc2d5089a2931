"""Throw-away databases on the real servers CI runs (PostgreSQL, MariaDB), one per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

#: Server URL of a PostgreSQL the tests may create databases on; unset: those tests skip.
POSTGRES_ENV = "RECON_TEST_POSTGRES_URL"


def temporary_postgres_database(server_url: str) -> Iterator[str]:
    """Create a randomly named database on the server, yield its URL, drop it afterwards."""
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    name = f"recon_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def postgres_server_or_skip() -> str:
    """The PostgreSQL server URL from the environment, or skip the test with the reason."""
    server = os.environ.get(POSTGRES_ENV)
    if not server:
        pytest.skip(
            f"{POSTGRES_ENV} is not set (e.g. postgresql+psycopg://postgres@127.0.0.1/postgres)"
        )
    return server


#: Server URL of a MySQL/MariaDB the tests may create databases on; unset: those tests skip.
MYSQL_ENV = "RECON_TEST_MYSQL_URL"


def temporary_mysql_database(server_url: str) -> Iterator[str]:
    """Create a randomly named MySQL/MariaDB database, yield its URL, drop it afterwards."""
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    name = f"recon_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        admin.dispose()


def mysql_server_or_skip() -> str:
    """The MySQL/MariaDB server URL from the environment, or skip the test with the reason."""
    server = os.environ.get(MYSQL_ENV)
    if not server:
        pytest.skip(f"{MYSQL_ENV} is not set (e.g. mysql+pymysql://root@127.0.0.1:3306/mysql)")
    return server
