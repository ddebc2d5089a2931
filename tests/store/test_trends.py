"""Drift series from the history, on SQLite and PostgreSQL: one figure per day from the latest
completed daily run, summed over projects; a step in it is one change point at its day."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from recon_job.compare import reconcile
from recon_job.diagnosis.trends import TrendRule, all_change_points
from recon_job.models import Tolerance, Usage, UsageKey, UsageTotals
from recon_job.store import HistoryStore
from recon_job.windows import daily, monthly

D = Decimal
START = date(2026, 9, 1)
DAYS = 40
STEP = 25
TOLERANCE = Tolerance()


def record_day(
    store: HistoryStore,
    day: date,
    local: dict[UsageKey, Usage],
    official: dict[UsageKey, Usage],
    *,
    hours_later: int = 6,
) -> int:
    """A finished daily run of ``day`` with these two sides."""
    result = reconcile(
        UsageTotals(groups=local),
        UsageTotals(groups=official),
        window=daily(day),
        tolerance=TOLERANCE,
    )
    started_at = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
        days=1, hours=hours_later
    )
    run_id = store.start_run(daily(day), started_at=started_at, trigger="test")
    store.finish_run(run_id, result, finished_at=started_at)
    return run_id


def cost(amount: str, tokens: int = 1000) -> Usage:
    return Usage(input_tokens=tokens, requests=1, cost=D(amount))


def test_a_step_in_the_stored_drift_is_one_change_point_at_its_day(store: HistoryStore) -> None:
    for i in range(DAYS):
        day = START + timedelta(days=i)
        a, b = UsageKey(day, "gpt-4o", "proj_a"), UsageKey(day, "gpt-4o", "proj_b")
        embed = UsageKey(day, "e3", family="embeddings")
        # proj_a drifts +2% and proj_b -1.6% on $50 each: +0.2% over both; from the step on,
        # proj_b drifts -9.6%: -3.8% over both.
        b_local = "49.20" if i < STEP else "45.20"
        local = {a: cost("51.00"), b: cost(b_local)}
        # A family the logs have no record of is untracked: never part of a drift series.
        official = {a: cost("50.00"), b: cost("50.00"), embed: cost("9.00", 10**6)}
        record_day(store, day, local, official)
    # A forced rerun of one day replaces its figure; a monthly run is no daily figure.
    rerun_day = START + timedelta(days=3)
    a, b = UsageKey(rerun_day, "gpt-4o", "proj_a"), UsageKey(rerun_day, "gpt-4o", "proj_b")
    record_day(
        store,
        rerun_day,
        {a: cost("50.50"), b: cost("49.50")},
        {a: cost("50.00"), b: cost("50.00")},
        hours_later=30,
    )
    run = store.start_run(
        monthly(2026, 9), started_at=datetime(2026, 10, 2, tzinfo=UTC), trigger="t"
    )
    store.finish_run(
        run,
        reconcile(UsageTotals(), UsageTotals(), window=monthly(2026, 9), tolerance=TOLERANCE),
        finished_at=datetime(2026, 10, 2, tzinfo=UTC),
    )

    end = START + timedelta(days=DAYS - 1)
    series = store.drift_series(end, 90)

    assert list(series) == [("completions", "gpt-4o")]
    drift = series[("completions", "gpt-4o")]
    assert len(drift) == DAYS
    assert drift[START] == D("0.2000")
    assert drift[rerun_day] == D("0.0000")
    assert drift[end] == D("-3.8000")
    assert store.drift_series(end, 10) == {
        ("completions", "gpt-4o"): {d: v for d, v in drift.items() if d > end - timedelta(days=10)}
    }

    points = all_change_points(series, TrendRule())
    assert [(p.day, p.after_pct) for p in points] == [(START + timedelta(days=STEP), D("-3.80"))]


def test_noise_in_the_stored_drift_gives_no_change_point(store: HistoryStore) -> None:
    noise = ["0.1", "-0.1", "0.05", "0", "-0.2", "0.15"]
    for i in range(30):
        day = START + timedelta(days=i)
        key = UsageKey(day, "gpt-image-1", family="images")
        local = Usage(images=10, requests=10, cost=D(100) + D(noise[i % len(noise)]))
        record_day(store, day, {key: local}, {key: Usage(images=10, requests=10, cost=D(100))})

    series = store.drift_series(START + timedelta(days=29), 30)

    assert set(series) == {("images", "gpt-image-1")}
    assert len(series[("images", "gpt-image-1")]) == 30
    assert all_change_points(series, TrendRule()) == ()


def test_tokens_give_the_drift_of_a_model_never_billed(store: HistoryStore) -> None:
    key = UsageKey(START, "free-model")
    record_day(store, START, {key: Usage(input_tokens=1100)}, {key: Usage(input_tokens=1000)})

    assert store.drift_series(START, 1) == {("completions", "free-model"): {START: D("10.0000")}}
    assert store.drift_series(START - timedelta(days=1), 5) == {}
