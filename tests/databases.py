"""Throw-away databases on the real servers CI runs (PostgreSQL, MariaDB), one per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import pytest
import sqlalchemy as sa

#: Server URL of a PostgreSQL the tests may create databases on; unset: those tests skip.
POSTGRES_ENV = "RECON_TEST_POSTGRES_URL"
#: Server URL of a MySQL/MariaDB the tests may create databases on; unset: those tests skip.
MYSQL_ENV = "RECON_TEST_MYSQL_URL"

#: Backends for ``throwaway_database``, as test parameters: every one, and the servers only.
POSTGRES = pytest.param("postgresql", marks=pytest.mark.postgres)
ALL = ["sqlite", POSTGRES, "mysql"]
SERVERS = [POSTGRES, "mysql"]


def _temporary_database(server_url: str, create: str, drop: str) -> Iterator[str]:
    """Create a randomly named database with ``create``, yield its URL, ``drop`` it afterwards."""
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    name = f"recon_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(create.format(name=name))
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(drop.format(name=name))
        admin.dispose()


def temporary_postgres_database(server_url: str) -> Iterator[str]:
    """Create a randomly named database on the server, yield its URL, drop it afterwards."""
    return _temporary_database(
        server_url,
        'CREATE DATABASE "{name}"',
        'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
    )


def postgres_server_or_skip() -> str:
    """The PostgreSQL server URL from the environment, or skip the test with the reason."""
    return _server_or_skip(POSTGRES_ENV, "postgresql+psycopg://postgres@127.0.0.1/postgres")


def temporary_mysql_database(server_url: str) -> Iterator[str]:
    """Create a randomly named MySQL/MariaDB database, yield its URL, drop it afterwards."""
    return _temporary_database(
        server_url,
        "CREATE DATABASE `{name}` CHARACTER SET utf8mb4",
        "DROP DATABASE IF EXISTS `{name}`",
    )


def mysql_server_or_skip() -> str:
    """The MySQL/MariaDB server URL from the environment, or skip the test with the reason."""
    return _server_or_skip(MYSQL_ENV, "mysql+pymysql://root@127.0.0.1:3306/mysql")


def _server_or_skip(variable: str, example: str) -> str:
    server = os.environ.get(variable)
    if not server:
        pytest.skip(f"{variable} is not set (e.g. {example})")
    return server


@contextmanager
def throwaway_database(backend: str, tmp_path: Path) -> Iterator[tuple[str, sa.Engine]]:
    """A fresh empty database and an engine on it; dropped (or left in ``tmp_path``) after.

    ``backend`` is ``sqlite`` (a file in ``tmp_path``), ``postgresql`` or ``mysql`` (on the
    server from the environment; the test skips when it is not set).
    """
    if backend == "sqlite":
        urls: Iterator[str] = iter([f"sqlite:///{tmp_path / 'app.db'}"])
    elif backend == "postgresql":
        urls = temporary_postgres_database(postgres_server_or_skip())
    else:
        urls = temporary_mysql_database(mysql_server_or_skip())
    url = next(urls)
    engine = sa.create_engine(url)
    try:
        yield url, engine
    finally:
        engine.dispose()
        next(urls, None)


@dataclass
class Database:
    """One throw-away database and an engine on it; test modules subclass it to fill it."""

    backend: str
    url: str
    engine: sa.Engine

    @classmethod
    def fresh(cls, backend: str, tmp_path: Path) -> Iterator[Self]:
        """A fresh empty database on ``backend`` (see ``throwaway_database``), dropped after."""
        with throwaway_database(backend, tmp_path) as (url, engine):
            yield cls(backend, url, engine)
