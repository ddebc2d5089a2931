"""Past runs as ``recon-job history`` shows them (recon_job.report.history): unpriced usage.

Issue 9 item 6: unpriced entries carry their tier; runs stored before the tier was recorded
(the ``unpriced`` column held an object keyed by model) still read, with a null tier.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from recon_job.compare import reconcile
from recon_job.models import (
    RunOutcome,
    Tolerance,
    UnpricedKey,
    Usage,
    UsageKey,
    UsageTotals,
    Window,
)
from recon_job.report.history import run_record_dict, run_summary
from recon_job.report.run import render_text
from recon_job.store import HistoryStore

DAY = date(2026, 3, 14)
WINDOW = Window("daily", DAY, DAY + timedelta(days=1))
T0 = datetime(2026, 3, 16, 6, 0, tzinfo=UTC)
OLD_SHAPE = (
    '{"old-model":{"cached_tokens":0,"cost":"0","input_tokens":10,"output_tokens":1,"requests":1}}'
)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'history.db'}"


@pytest.fixture
def store(url: str) -> Iterator[HistoryStore]:
    opened = HistoryStore(url)
    yield opened
    opened.close()


def finished(store: HistoryStore, unpriced: dict[UnpricedKey, Usage]) -> int:
    same = Usage(1000, 0, 100, 1, Decimal(1))
    result = reconcile(
        UsageTotals(groups={UsageKey(DAY, "gpt-4o"): same}, unpriced=unpriced),
        UsageTotals(groups={UsageKey(DAY, "gpt-4o"): same}),
        window=WINDOW,
        tolerance=Tolerance(),
    )
    run_id = store.start_run(WINDOW, started_at=T0, trigger="test")
    store.finish_run(run_id, result, finished_at=T0 + timedelta(seconds=1))
    return run_id


def test_a_past_run_lists_its_unpriced_usage_with_the_tier(store: HistoryStore) -> None:
    run_id = finished(
        store,
        {
            UnpricedKey("gpt-4o", "flex"): Usage(40, 0, 4, 2),
            UnpricedKey("gpt-4o", "standard"): Usage(10, 0, 1, 1),
        },
    )

    run = store.get_run(run_id)
    assert run is not None

    assert run_record_dict(run)["unpriced_models"] == [
        {
            "model": "gpt-4o",
            "service_tier": "standard",
            "requests": 1,
            "input_tokens": 10,
            "cached_tokens": 0,
            "output_tokens": 1,
        },
        {
            "model": "gpt-4o",
            "service_tier": "flex",
            "requests": 2,
            "input_tokens": 40,
            "cached_tokens": 0,
            "output_tokens": 4,
        },
    ]
    assert run_summary(run).endswith(", unpriced: gpt-4o, gpt-4o (flex)")


def test_a_run_stored_before_tiers_were_recorded_reads_with_a_null_tier(
    store: HistoryStore, url: str
) -> None:
    run_id = finished(store, {UnpricedKey("old-model", "standard"): Usage(10, 0, 1, 1)})
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE runs SET unpriced = :old"), {"old": OLD_SHAPE})
    finally:
        engine.dispose()

    run = store.get_run(run_id)
    assert run is not None
    stored = store.stored_result(run_id)
    assert stored is not None

    assert run.unpriced == {UnpricedKey("old-model", None): Usage(10, 0, 1, 1)}
    assert run_record_dict(run)["unpriced_models"][0]["service_tier"] is None
    assert run_summary(run).endswith(", unpriced: old-model")
    outcome = RunOutcome(run_id, WINDOW, T0, T0, result=stored)
    assert (
        "unpriced: old-model (1 requests, 11 tokens) has no price and no logged cost; its cost "
        "is NOT included. To price it, add a price to your pricing file."
    ) in render_text(outcome, from_history=True)
