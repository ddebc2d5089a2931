"""/healthz's rule: when a kind's latest settled period counts as overdue (a 503)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from recon_job.daemon.health import Overdue

NOW = datetime(2026, 3, 16, 12, 0, tzinfo=UTC)
SETTLE = timedelta(hours=24)
MARGIN = timedelta(hours=36)
LONG_AGO = NOW - timedelta(days=30)


@pytest.mark.parametrize(
    ("kind", "last", "since", "expected"),
    [
        # 03-16 12:00 minus 36 h = 03-15 00:00; minus the settle day: 03-13 is the latest day
        # that must be complete by now.
        ("daily", "daily:2026-03-13", LONG_AGO, False),
        ("daily", "daily:2026-03-14", LONG_AGO, False),
        ("daily", "daily:2026-03-12", LONG_AGO, True),
        ("daily", None, LONG_AGO, True),
        # Just started: judged only after a whole margin.
        ("daily", None, NOW - timedelta(hours=1), False),
        ("daily", "daily:2026-03-01", NOW - timedelta(hours=35), False),
        ("monthly", "monthly:2026-02", LONG_AGO, False),
        ("monthly", "monthly:2026-01", LONG_AGO, True),
        ("monthly", "not-a-key", LONG_AGO, True),
    ],
)
def test_a_kind_is_overdue_when_its_latest_settled_period_has_no_completed_run(
    kind: Any, last: str | None, since: datetime, expected: bool
) -> None:
    assert Overdue(SETTLE, MARGIN).late(kind, last, now=NOW, since=since) is expected


def test_february_is_expected_once_it_has_settled_for_the_margin() -> None:
    # February ends 03-01 00:00, settles 03-02 00:00, is expected by 03-03 12:00.
    at = datetime(2026, 3, 3, 11, 59, tzinfo=UTC)
    assert Overdue(SETTLE, MARGIN).expected("monthly", now=at).key == "monthly:2026-01"
    at += timedelta(minutes=1)
    assert Overdue(SETTLE, MARGIN).expected("monthly", now=at).key == "monthly:2026-02"
