"""Fixtures shared by the store tests: a fresh database on SQLite always, on PostgreSQL when
RECON_TEST_POSTGRES_URL is set (each test gets its own randomly named database, dropped after).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from recon_job.store import HistoryStore
from tests.databases import postgres_server_or_skip, temporary_postgres_database


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty history database URL on each backend."""
    if request.param == "sqlite":
        # A directory that does not exist yet: the store must create it.
        yield f"sqlite:///{tmp_path / 'history' / 'recon.db'}"
        return
    yield from temporary_postgres_database(postgres_server_or_skip())


@pytest.fixture
def open_store(db_url: str) -> Iterator[Callable[..., HistoryStore]]:
    """Open stores on ``db_url``; every one is closed before the database is dropped."""
    opened: list[HistoryStore] = []

    def _open(**options: Any) -> HistoryStore:
        store = HistoryStore(db_url, **options)
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Callable[..., HistoryStore]) -> HistoryStore:
    """A store on a fresh database."""
    return open_store()
