"""Fixtures of the web tests: a seeded history and the application serving it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.web.history import seed
from tests.web.server import Running, serving


@pytest.fixture
def history_url(tmp_path: Path) -> str:
    """A seeded SQLite history."""
    url = f"sqlite:///{tmp_path / 'history.db'}"
    seed(url)
    return url


@pytest.fixture
def app(history_url: str) -> Iterator[Running]:
    """The application with a dashboard key over the seeded history."""
    with serving(history_url) as running:
        yield running
