"""The restatement rule: a settled day's OpenAI figure that moved beyond its floor is a
restatement; the recheck window covers the last settled days within the window's one page."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from recon_job.diagnosis.restatements import (
    official_figures,
    recheck_window,
    restated,
    restatement_sentence,
    restatements,
)
from recon_job.findings import GroupRef, Restatement
from recon_job.models import Tolerance, Usage, UsageKey, Window
from recon_job.windows import daily, monthly

D = Decimal
DAY = date(2026, 11, 28)
SEEN = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
TOLERANCE = Tolerance()  # cost floor $0.05, token floor 1000, request floor 0
CHAT = GroupRef(DAY, "completions", "gpt-4o")
FIGURES = Usage(input_tokens=2_000_000, output_tokens=500_000, requests=900, cost=D("41.20"))


def test_a_cost_revised_beyond_the_floor_is_a_restatement_with_both_figures() -> None:
    found = restatements(
        {CHAT: FIGURES},
        {CHAT: Usage(2_000_000, 0, 500_000, 900, D("43.05"))},
        TOLERANCE,
        seen_at=SEEN,
        previous_runs={DAY: 7},
    )

    assert found == (Restatement(CHAT, "cost", D("41.20"), D("43.05"), SEEN, 7),)
    assert restatement_sentence(found[0]) == (
        "OpenAI restated 2026-11-28 gpt-4o: cost $41.20 → $43.05 (+$1.85), seen 2026-11-30"
    )


def test_unchanged_figures_and_changes_at_or_below_the_floors_are_not_restatements() -> None:
    below = Usage(2_000_999, 0, 499_000, 900, D("41.25"))

    assert restatements({CHAT: FIGURES}, {CHAT: FIGURES}, TOLERANCE, seen_at=SEEN) == ()
    assert restatements({CHAT: FIGURES}, {CHAT: below}, TOLERANCE, seen_at=SEEN) == ()


def test_each_quantity_that_moved_is_one_restatement_cost_first() -> None:
    after = Usage(2_100_000, 0, 500_000, 880, D("41.20"))

    found = restatements({CHAT: FIGURES}, {CHAT: after}, TOLERANCE, seen_at=SEEN)

    assert [(r.quantity, r.before, r.after) for r in found] == [
        ("requests", D(900), D(880)),
        ("input_tokens", D(2_000_000), D(2_100_000)),
    ]
    assert restatement_sentence(found[0]) == (
        "OpenAI restated 2026-11-28 gpt-4o: requests 900 → 880 (\N{MINUS SIGN}20), seen 2026-11-30"
    )


def test_a_group_appearing_or_disappearing_counts_only_with_material_figures() -> None:
    images = GroupRef(DAY, "images", "gpt-image-1", "proj_a")
    tiny = GroupRef(DAY, "completions", "gpt-4o-mini")

    found = restatements(
        {CHAT: FIGURES},
        {images: Usage(images=4, requests=0, cost=D("0.16")), tiny: Usage(input_tokens=10)},
        TOLERANCE,
        seen_at=SEEN,
    )

    assert [(r.group.model, r.quantity, r.after) for r in found] == [
        ("gpt-4o", "cost", D(0)),
        ("gpt-4o", "requests", D(0)),
        ("gpt-4o", "input_tokens", D(0)),
        ("gpt-4o", "output_tokens", D(0)),
        ("gpt-image-1", "cost", D("0.16")),
        ("gpt-image-1", "images", D(4)),
    ]
    assert restatement_sentence(found[-1]) == (
        "OpenAI restated 2026-11-28 images gpt-image-1 [proj_a]: images 0 → 4 (+4), seen 2026-11-30"
    )


def test_only_the_days_fetched_are_compared_and_cost_only_families_by_cost() -> None:
    other_day = GroupRef(DAY - timedelta(days=1), "completions", "gpt-4o")
    search = GroupRef(DAY, "web_search_calls", "web-search")

    found = restatements(
        {CHAT: FIGURES, other_day: FIGURES, search: Usage(calls=40, requests=40, cost=D("1.00"))},
        {CHAT: FIGURES, search: Usage(cost=D("1.00"))},
        TOLERANCE,
        seen_at=SEEN,
        days={DAY},
        cost_only={"web_search_calls"},
    )

    assert found == ()


def test_a_naive_seen_at_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        restatements({}, {}, TOLERANCE, seen_at=datetime(2026, 11, 30))


def test_official_figures_sum_api_keys_and_projects_unless_asked_per_project() -> None:
    groups = {
        UsageKey(DAY, "gpt-4o", "proj_a", "key_1"): Usage(requests=1, cost=D("0.10")),
        UsageKey(DAY, "gpt-4o", "proj_a", "key_2"): Usage(requests=2, cost=D("0.20")),
        UsageKey(DAY, "gpt-4o", "proj_b", None): Usage(requests=4, cost=D("0.40")),
        UsageKey(DAY + timedelta(days=1), "gpt-4o"): Usage(requests=8),
    }

    assert official_figures(groups, days={DAY}) == {CHAT: Usage(requests=7, cost=D("0.70"))}
    assert official_figures(groups.items(), days=[DAY], by_project=True) == {
        GroupRef(DAY, "completions", "gpt-4o", "proj_a"): Usage(requests=3, cost=D("0.30")),
        GroupRef(DAY, "completions", "gpt-4o", "proj_b"): Usage(requests=4, cost=D("0.40")),
    }


def test_restated_sets_one_quantity() -> None:
    assert restated(FIGURES, "cost", D("43.05")).cost == D("43.05")
    assert restated(FIGURES, "requests", D(880)) == Usage(2_000_000, 0, 500_000, 880, D("41.20"))


NOW = datetime(2026, 12, 4, 6, 0, tzinfo=UTC)
SETTLE = timedelta(hours=24)


def test_a_daily_run_fetches_the_days_before_it_in_the_same_page() -> None:
    # At 06:00 on 12-04 with a 24 h settle, 12-02 is the last settled day.
    window = daily(date(2026, 12, 2))

    assert recheck_window(window, NOW, SETTLE, 7) == Window(
        "range", date(2026, 11, 25), date(2026, 12, 3)
    )
    assert recheck_window(window, NOW, SETTLE, 0) is window


def test_a_run_of_a_day_not_settled_yet_rechecks_the_last_settled_days() -> None:
    window = daily(date(2026, 12, 4))

    assert recheck_window(window, NOW, SETTLE, 3) == Window(
        "range", date(2026, 11, 30), date(2026, 12, 5)
    )


def test_the_recheck_never_needs_another_page() -> None:
    assert recheck_window(monthly(2026, 10), NOW, SETTLE, 7) == monthly(2026, 10)
    november = recheck_window(monthly(2026, 11), NOW, SETTLE, 7)
    assert november == Window("range", date(2026, 10, 31), date(2026, 12, 1))
    assert november.num_days == 31
    long_range = Window("range", date(2026, 6, 1), date(2026, 7, 20))  # 49 days: 2 pages
    widened = recheck_window(long_range, NOW, SETTLE, 31)
    assert widened.start == date(2026, 5, 19)
    assert widened.num_days == 62


def test_the_recheck_never_reaches_before_the_unix_epoch() -> None:
    # OpenAI's start_time is a Unix timestamp: the days before 1970 cannot be asked about.
    window = daily(date(1970, 1, 3))

    assert recheck_window(window, NOW, SETTLE, 7) == Window(
        "range", date(1970, 1, 1), date(1970, 1, 4)
    )
    assert recheck_window(daily(date(1970, 1, 1)), NOW, SETTLE, 7) == daily(date(1970, 1, 1))
