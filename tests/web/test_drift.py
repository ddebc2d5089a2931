"""The overview's cost drift % per day per model: the series its chart draws."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

from recon_job.models import Tolerance
from recon_job.store import HistoryStore
from recon_job.web import overview as ov
from tests.web.history import record_day, usage


def _overview(tmp_path: Path) -> ov.Overview:
    """03-01..03-04: the 2nd never reconciled; m-b absent on the 3rd; m-e billed nothing."""
    url = f"sqlite:///{tmp_path / 'drift.db'}"
    with HistoryStore(url) as store:
        record_day(
            store,
            date(2026, 3, 1),
            {
                "m-a": usage(1000, 1, "1.10"),
                "m-b": usage(1000, 1, "0.90"),
                "m-c": usage(1000, 1, "1.00"),
                "m-d": usage(1000, 1, "1.01"),
            },
            {
                "m-a": usage(1000, 1, "1.00"),
                "m-b": usage(1000, 1, "1.00"),
                "m-c": usage(1000, 1, "1.00"),
                "m-d": usage(1000, 1, "1.00"),
            },
        )
        record_day(
            store,
            date(2026, 3, 3),
            {"m-a": usage(1000, 1, "2.00"), "m-d": usage(1000, 1, "1.00")},
            {"m-a": usage(1000, 1, "2.50"), "m-d": usage(1000, 1, "1.00")},
        )
        record_day(
            store,
            date(2026, 3, 4),
            {
                "m-a": usage(1000, 1, "3.00"),
                "m-b": usage(1000, 1, "1.20"),
                "m-e": usage(1000, 1, "0.05"),
            },
            {"m-a": usage(1000, 1, "3.00"), "m-b": usage(1000, 1, "1.00")},
        )
        return ov.build(store, date(2026, 3, 1), date(2026, 3, 4), Tolerance())


def test_the_models_drifting_most_come_first_and_those_without_drift_are_left_out(
    tmp_path: Path,
) -> None:
    o = _overview(tmp_path)
    # Absolute cost drift over the range: m-a 0.40, m-b 0.10, m-e 0.05, m-d 0.01, m-c 0.
    assert [s.model for s in ov.drift_series(o)] == ["m-a", "m-b", "m-e", "m-d"]
    assert [s.model for s in ov.drift_series(o, top=2)] == ["m-a", "m-b"]
    assert {s.family for s in ov.drift_series(o)} == {"completions"}


def test_each_day_is_a_percent_of_openai_or_a_gap_never_zero(tmp_path: Path) -> None:
    series = {s.model: s.points for s in ov.drift_series(_overview(tmp_path))}
    # The 2nd was never reconciled: a gap for every model.
    assert series["m-a"] == (Decimal("10"), None, Decimal("-20"), Decimal("0"))
    # m-b has no group on the 3rd: a gap, not 0.
    assert series["m-b"] == (Decimal("-10"), None, None, Decimal("20"))
    # m-e: OpenAI billed nothing, so no percent to draw.
    assert series["m-e"] == (None, None, None, None)
    assert series["m-d"] == (Decimal("1"), None, Decimal("0"), None)
