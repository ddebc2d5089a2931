"""The ``price_findings`` table: one row per model x piece x tier x price, new ones told apart.

On a real SQLite file always, on PostgreSQL when RECON_TEST_POSTGRES_URL is set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from recon_job.findings import PriceFinding
from recon_job.store import HistoryStore

NOW = datetime(2026, 8, 12, 6, 0, tzinfo=UTC)
CACHED = PriceFinding(
    model="gpt-5",
    piece="cached input",
    tier="standard",
    billed=Decimal("0.125"),
    table=Decimal("0.25"),
    unit="1M tokens",
    since=date(2026, 8, 7),
    last_day=date(2026, 8, 10),
)


def test_a_finding_is_new_the_first_time_only(store: HistoryStore) -> None:
    assert store.record_price_findings([CACHED], NOW) == [CACHED]
    assert store.record_price_findings([CACHED], NOW + timedelta(days=1)) == []
    assert store.price_finding_history() == [CACHED]


def test_the_row_keeps_the_earliest_since_and_the_latest_day(store: HistoryStore) -> None:
    store.record_price_findings([CACHED], NOW)
    later = replace(
        CACHED, since=date(2026, 8, 9), last_day=date(2026, 8, 11), table=Decimal("0.3")
    )
    earlier = replace(CACHED, since=date(2026, 8, 5), last_day=date(2026, 8, 6))

    assert store.record_price_findings([later, earlier], NOW) == []

    (row,) = store.price_finding_history()
    assert (row.since, row.last_day, row.table) == (
        date(2026, 8, 5),
        date(2026, 8, 11),
        Decimal("0.3"),  # the table's figure as of the latest day seen
    )


def test_a_price_within_rounding_of_a_stored_one_is_that_one(store: HistoryStore) -> None:
    store.record_price_findings([CACHED], NOW)

    assert store.record_price_findings([replace(CACHED, billed=Decimal("0.1251"))], NOW) == []
    assert len(store.price_finding_history()) == 1


def test_another_price_tier_or_piece_is_new(store: HistoryStore) -> None:
    store.record_price_findings([CACHED], NOW)
    others = [
        replace(CACHED, billed=Decimal("0.1")),
        replace(CACHED, tier="priority"),
        replace(CACHED, piece="input", billed=Decimal("2")),
    ]

    assert store.record_price_findings(others, NOW) == others
    assert len(store.price_finding_history()) == 4


def test_findings_survive_reopening_the_database(
    open_store: Callable[..., HistoryStore],
) -> None:
    with open_store() as first:
        first.record_price_findings([CACHED], NOW)
    with open_store() as second:
        assert second.record_price_findings([CACHED], NOW) == []
        assert second.price_finding_history() == [CACHED]


def test_a_naive_time_is_refused(store: HistoryStore) -> None:
    with pytest.raises(ValueError, match="aware"):
        store.record_price_findings([CACHED], NOW.replace(tzinfo=None))
