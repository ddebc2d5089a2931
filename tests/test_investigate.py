"""The diagnosis stage's own rules: which groups first, when a clock shift is the cause, how a
side's series is cut to one group (the fetching is tested end to end in test_diagnosis_e2e)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from recon_job import windows
from recon_job.investigate import (
    Budget,
    day_span,
    explains_day,
    group_series,
    misplaced,
    quantity_of,
    values,
)
from recon_job.modelnames import ModelNamer
from recon_job.models import Usage, UsageKey, UsageTotals, Window

DAY = date(2026, 8, 1)
START, END = day_span(DAY, timedelta(0))


def at(hour: int, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(hours=hour)


def test_a_shift_that_moves_evening_usage_into_the_next_day_explains_the_days_drift() -> None:
    # OpenAI: 10 an hour 08-21, 30 an hour 22-23 UTC. Local: the same two hours later (Berlin
    # naive read as UTC), so 60 of D's requests land on D+1.
    openai = {at(h): Decimal(10) for h in range(8, 22)} | {at(22): Decimal(30), at(23): Decimal(30)}
    local = {t + timedelta(hours=2): v for t, v in openai.items()}
    assert explains_day(local, openai, 2, START, END)


def test_series_that_line_up_at_a_shift_but_still_miss_usage_are_not_a_clock_problem() -> None:
    # One spike at 00:00 at OpenAI (40), one at 12:00 locally (36): they line up at +12 h, but
    # read shifted the day still misses the same 4 requests.
    openai = {at(0): Decimal(40)}
    local = {at(12): Decimal(36)}
    assert not explains_day(local, openai, 12, START, END)


def test_no_day_difference_is_never_explained_by_a_shift() -> None:
    openai = {at(9): Decimal(5)}
    assert not explains_day(dict(openai), openai, 1, START, END)


def test_a_groups_series_sums_aliases_and_projects_unless_grouped_by_project() -> None:
    usage = Usage(input_tokens=100, output_tokens=10, requests=1)
    series = {
        ("completions", "gpt-4o-2024-08-06", "proj_a"): {at(9): usage},
        ("completions", "gpt-4o", "proj_b"): {at(9): usage, at(10): usage},
        ("embeddings", "gpt-4o", None): {at(9): usage},
    }
    key = UsageKey(day=DAY, model="gpt-4o", family="completions")
    summed = group_series(series, key, ModelNamer(), by_project=False)
    assert values(summed, "requests") == {at(9): Decimal(2), at(10): Decimal(1)}
    assert values(summed, "tokens") == {at(9): Decimal(220), at(10): Decimal(110)}
    per_project = group_series(
        series, UsageKey(DAY, "gpt-4o", project_id="proj_b"), ModelNamer(), by_project=True
    )
    assert values(per_project, "requests") == {at(9): Decimal(1), at(10): Decimal(1)}


def test_the_budget_counts_what_was_spent() -> None:
    budget = Budget(3)
    budget.spend(2)
    assert (budget.left, budget.used) == (1, 2)


def test_the_located_quantity_is_requests_when_they_drift() -> None:
    from recon_job import compare
    from recon_job.models import Tolerance

    key = UsageKey(DAY, "gpt-4o")
    local = Usage(input_tokens=9000, output_tokens=900, requests=90, cost=Decimal("0.9"))
    official = Usage(input_tokens=10000, output_tokens=1000, requests=100, cost=Decimal("1"))
    result = compare.reconcile(
        _totals({key: local}),
        _totals({key: official}),
        window=_window(),
        tolerance=Tolerance(),
    )
    assert quantity_of(result.groups[0]) == "requests"


def _totals(groups: dict[UsageKey, Usage]) -> UsageTotals:
    return UsageTotals(groups=groups)


def _window() -> Window:
    return windows.daily(DAY)


def test_usage_logged_at_other_hours_is_misplaced_not_a_gap() -> None:
    # OpenAI counted 40 at 00:00, the logs have 36 at 12:00: no hour holds "the" 4 missing.
    assert misplaced({at(12): Decimal(36)}, {at(0): Decimal(40)})


def test_an_outage_is_a_gap_not_misplaced_usage() -> None:
    openai = {at(h): Decimal(60) for h in range(8, 20)}
    local = openai | {at(14): Decimal(0), at(15): Decimal(40)}
    assert not misplaced(local, openai)
