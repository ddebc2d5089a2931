"""Usage families in the history (revision 0007): each group's family and quantities, each run's
untracked and unavailable families, stored and read back; and an existing 0006 history with
runs in it migrated in place on every database the tests have (SQLite, PostgreSQL, MariaDB)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from recon_job.compare import Rules, reconcile
from recon_job.models import Status, Tolerance, Usage, UsageKey, UsageTotals, Window
from recon_job.store import HistoryStore
from recon_job.store.migrate import alembic_config, head_revision
from recon_job.store.schema import run_groups, runs
from tests.databases import ALL, throwaway_database

DAY = date(2026, 8, 1)
WINDOW = Window("daily", DAY, date(2026, 8, 2))
T0 = datetime(2026, 8, 3, 6, 0, tzinfo=UTC)
D = Decimal

CHAT = UsageKey(DAY, "gpt-4o")
IMAGES = UsageKey(DAY, "gpt-image-1", family="images")
EMBED = UsageKey(DAY, "text-embedding-3-small", family="embeddings")
SEARCH = UsageKey(DAY, "web-search", family="web_search_calls")


def family_result() -> tuple[UsageTotals, UsageTotals]:
    chat = Usage(1000, 300, 500, 5, D("0.007125"), input_audio_tokens=50, output_audio_tokens=60)
    local = UsageTotals(
        groups={
            CHAT: chat,
            IMAGES: Usage(images=3, requests=2, cost=D("0.12")),
            SEARCH: Usage(calls=9, requests=6, cost=D("0.09")),
        }
    )
    official = UsageTotals(
        groups={
            CHAT: chat,
            IMAGES: Usage(images=5, requests=2, cost=D("0.20")),
            EMBED: Usage(input_tokens=1_000_000, requests=1, cost=D("0.02")),
            SEARCH: Usage(cost=D("0.09")),
        },
        unavailable_families=("web_search_calls",),
    )
    return local, official


def test_families_quantities_and_untracked_round_trip(tmp_path: Path) -> None:
    local, official = family_result()
    result = reconcile(local, official, window=WINDOW, tolerance=Tolerance(), rules=Rules())
    with HistoryStore(f"sqlite:///{tmp_path / 'h.db'}") as store:
        run_id = store.start_run(WINDOW, started_at=T0, trigger="test")
        store.finish_run(run_id, result, finished_at=T0)
        groups = store.run_groups(run_id)
        back = store.stored_result(run_id)

    assert [g.key for g in groups] == [g.key for g in result.groups]
    assert [g.key.family for g in groups] == [
        "completions",
        "embeddings",
        "images",
        "web_search_calls",
    ]
    assert back is not None
    assert [(g.key, g.local, g.openai, g.status) for g in back.groups] == [
        (g.key, g.local, g.openai, g.status) for g in result.groups
    ]
    assert back.groups[0].local.input_audio_tokens == 50
    assert back.groups[2].openai.images == 5
    assert back.groups[2].comparison.deciding == ("images", "requests", "cost")
    assert back.groups[2].comparison == result.groups[2].comparison
    # The family OpenAI could not count is judged by its dollars alone, read back too.
    assert back.groups[3].comparison.deciding == ("cost",)
    assert back.untracked == result.untracked
    assert back.untracked["embeddings"].input_tokens == 1_000_000
    assert back.unavailable_families == ("web_search_calls",)
    assert (back.local, back.openai) == (result.local, result.openai)
    assert back.local.images == 3
    assert back.status is result.status is Status.MISMATCH


@pytest.fixture(params=ALL)
def old_history(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A history at revision 0006 holding one finished run with one group, as 0.x wrote it."""
    with throwaway_database(request.param, tmp_path) as (url, engine):
        config = alembic_config()
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0006")
        # Only the columns 0006 has; the tables' own types write the values as 0.x did.
        sides = {
            f"{side}_{name}": value
            for side in ("local", "openai")
            for name, value in (
                ("input_tokens", 100),
                ("cached_tokens", 0),
                ("output_tokens", 50),
                ("requests", 1),
                ("cost", D("0.01")),
            )
        }
        diffs = {"diff_tokens": 0, "diff_requests": 0, "diff_cost": D(0), "exceeds": "[]"}
        with engine.begin() as conn:
            run_id = conn.execute(
                sa.insert(runs).values(
                    window_kind="daily",
                    window_start=DAY,
                    window_end=date(2026, 8, 2),
                    window_key="daily:2026-08-01",
                    status="reconciled",
                    trigger="cli",
                    started_at=T0,
                    finished_at=T0,
                    tool_version="0.9.0",
                    threshold_pct=D(5),
                    cost_floor=D("0.05"),
                    token_floor=1000,
                    request_floor=0,
                    group_count=1,
                    mismatch_count=0,
                    pending_days="[]",
                    skipped="{}",
                    info="{}",
                    sources="{}",
                    unpriced="[]",
                    **sides,
                    **diffs,
                )
            ).inserted_primary_key[0]
            conn.execute(
                sa.insert(run_groups).values(
                    run_id=run_id, day=DAY, model="gpt-4o", status="reconciled", **sides, **diffs
                )
            )
        yield url


def test_a_0006_history_is_migrated_in_place_and_its_runs_read_as_completions(
    old_history: str,
) -> None:
    with HistoryStore(old_history) as store:
        (group,) = store.run_groups(1)
        back = store.stored_result(1)
        # A new run of every family is written to the migrated tables.
        local, official = family_result()
        result = reconcile(local, official, window=WINDOW, tolerance=Tolerance())
        run_id = store.start_run(WINDOW, started_at=T0, trigger="test")
        store.finish_run(run_id, result, finished_at=T0)
        again = store.stored_result(run_id)

    assert group.key == UsageKey(DAY, "gpt-4o", family="completions")
    assert group.local == Usage(100, 0, 50, 1, D("0.01"))
    assert back is not None
    assert back.status is Status.RECONCILED
    assert back.untracked == {}
    assert back.unavailable_families == ()
    assert again is not None
    assert [g.key.family for g in again.groups] == [g.key.family for g in result.groups]
    engine = sa.create_engine(old_history)
    try:
        with engine.connect() as conn:
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
            families = conn.execute(
                sa.text("SELECT family, extras FROM run_groups WHERE run_id = 1")
            ).all()
    finally:
        engine.dispose()
    assert version == head_revision()
    assert [tuple(row) for row in families] == [("completions", None)]
