"""Issue 10 item 4: a usage table with family, endpoint, quantity and token-class columns.

Runs on SQLite, and on PostgreSQL and MariaDB when their URLs are set (``tests/databases.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from recon_job.models import Usage, UsageKey, Window
from recon_job.sources.sql import SqlTableOptions, SqlTableSource
from tests.databases import ALL, Database
from tests.helpers import FakePricer

MARCH = Window("monthly", date(2026, 3, 1), date(2026, 4, 1))
COLUMNS = {
    "timestamp": "created_at",
    "model": "model",
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cached_tokens": "cached_tokens",
    "project_id": "project_id",
    "api_key_id": "api_key_id",
    "family": "family",
    "endpoint": "endpoint",
    "images": "images",
    "size": "size",
    "quality": "quality",
    "characters": "characters",
    "seconds": "seconds",
    "calls": "calls",
    "usage_bytes": "usage_bytes",
    "input_audio_tokens": "audio_in",
    "output_audio_tokens": "audio_out",
}


@pytest.fixture(params=ALL)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    yield from Database.fresh(request.param, tmp_path)


def make(db: Database, *rows: dict[str, Any]) -> None:
    number = sa.Integer()
    table = sa.Table(
        "app_usage",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=db.backend == "postgresql")),
        sa.Column("model", sa.String(64)),
        sa.Column("family", sa.String(32)),
        sa.Column("endpoint", sa.String(128)),
        sa.Column("project_id", sa.String(32)),
        sa.Column("api_key_id", sa.String(32)),
        *(
            sa.Column(name, number)
            for name in (
                "input_tokens",
                "output_tokens",
                "cached_tokens",
                "images",
                "characters",
                "calls",
                "usage_bytes",
                "audio_in",
                "audio_out",
            )
        ),
        sa.Column("seconds", sa.Numeric(10, 2)),
        sa.Column("size", sa.String(16)),
        sa.Column("quality", sa.String(16)),
    )
    table.create(db.engine)
    when = datetime(2026, 3, 10, 12, tzinfo=UTC)
    stamp = when if db.backend == "postgresql" else when.replace(tzinfo=None)
    names = [c.name for c in table.columns if c.name not in ("id", "created_at")]
    with db.engine.begin() as conn:
        conn.execute(
            table.insert(),
            [{**dict.fromkeys(names), "created_at": stamp, **row} for row in rows],
        )


def fetch(db: Database, pricer: FakePricer | None = None) -> Any:
    options = SqlTableOptions(
        url=db.url,
        table="app_usage",
        columns=COLUMNS,
        group_by=("model", "project_id", "api_key_id"),
    )
    return SqlTableSource(options, pricer or FakePricer()).fetch(MARCH)


def k(model: str, family: str, project: str | None = None, api_key: str | None = None) -> UsageKey:
    return UsageKey(date(2026, 3, 10), model, project, api_key, family)


@pytest.mark.parametrize("db", ALL, indirect=True)
def test_each_familys_rows_are_grouped_in_the_database_and_keyed_by_family(
    db: Database,
) -> None:
    make(
        db,
        {"model": "gpt-4o-mini", "input_tokens": 100, "output_tokens": 10},
        {
            "model": "gpt-4o-mini",
            "endpoint": "/v1/chat/completions",
            "input_tokens": 100,
            "output_tokens": 10,
        },
        {
            "model": "gpt-4o-audio-preview",
            "input_tokens": 50,
            "output_tokens": 20,
            "audio_in": 30,
            "audio_out": 15,
        },
        {"model": "text-embedding-3-small", "input_tokens": 8, "output_tokens": 0},
        {
            "model": "my-embedder",
            "endpoint": "https://api.openai.com/v1/embeddings",
            "input_tokens": 9,
            "output_tokens": 0,
        },
        {"model": "dall-e-3", "images": 2, "size": "1024x1024", "quality": "HD"},
        {"model": "dall-e-3", "images": 1, "size": "1024x1024", "quality": "hd"},
        {"model": "tts-1", "family": "speech", "characters": 1200},
        {"model": "whisper-1", "seconds": 12.5},
        {"model": "whisper-1", "seconds": 3.25},
        {
            "model": "n/a",
            "family": "vector_stores",
            "usage_bytes": 10,
            "project_id": "p1",
            "api_key_id": "key1",
        },
        {
            "model": "n/a",
            "family": "vector_stores",
            "usage_bytes": 30,
            "project_id": "p1",
            "api_key_id": "key2",
        },
        {
            "model": "n/a",
            "family": "file_search",
            "calls": 3,
            "project_id": "p1",
            "api_key_id": "key1",
        },
    )

    totals = fetch(db)

    assert totals.skipped == {}
    groups = {key: replace_cost(usage) for key, usage in totals.groups.items()}
    assert groups == {
        k("gpt-4o-mini", "completions"): Usage(200, 0, 20, 2),
        k("gpt-4o-audio-preview", "completions"): Usage(
            50, 0, 20, 1, input_audio_tokens=30, output_audio_tokens=15
        ),
        k("text-embedding-3-small", "embeddings"): Usage(8, 0, 0, 1),
        k("my-embedder", "embeddings"): Usage(9, 0, 0, 1),
        k("dall-e-3", "images"): Usage(requests=2, images=3),
        k("tts-1", "audio_speeches"): Usage(requests=1, characters=1200),
        # The sum of a fractional seconds column, rounded half up (15.75 -> 16).
        k("whisper-1", "audio_transcriptions"): Usage(requests=2, seconds=16),
        # Per-project families: the product's name, no requests; vector stores drop the API key
        # (their endpoint groups by project only) and keep the day's largest level.
        k("vector-storage", "vector_stores", "p1"): Usage(usage_bytes=30),
        k("file-search", "file_search_calls", "p1", "key1"): Usage(calls=3),
    }


def replace_cost(usage: Usage) -> Usage:
    return replace(usage, cost=Decimal(0))


@pytest.mark.parametrize("db", ALL, indirect=True)
def test_an_unknown_family_or_endpoint_is_skipped_as_bad_family(db: Database) -> None:
    make(
        db,
        {"model": "gpt-4o", "family": "telepathy", "input_tokens": 1, "output_tokens": 1},
        {"model": "gpt-4o", "endpoint": "/v1/files", "input_tokens": 1, "output_tokens": 1},
        {"model": "gpt-4o", "endpoint": "/v1/files", "input_tokens": 2, "output_tokens": 1},
        {"model": "gpt-4o", "input_tokens": 1, "output_tokens": 1},
    )

    totals = fetch(db)

    assert totals.skipped == {"bad_family": 3}
    assert list(totals.groups) == [k("gpt-4o", "completions")]


@pytest.mark.parametrize("db", ALL, indirect=True)
def test_image_rows_reach_the_pricer_with_their_variant_and_unknown_prices_stay_unpriced(
    db: Database,
) -> None:
    seen: list[str | None] = []

    class VariantPricer(FakePricer):
        def cost(
            self, model: str, day: Any, tier: Any, usage: Usage, variant: str | None = None
        ) -> Any:
            seen.append(variant)
            return None

    make(db, {"model": "dall-e-3", "images": 1, "size": "1792x1024", "quality": "standard"})

    totals = fetch(db, VariantPricer())

    assert seen == ["1792x1024/standard"]
    assert [key.model for key in totals.unpriced] == ["dall-e-3"]
    assert totals.groups[k("dall-e-3", "images")].cost == 0
