"""Tests of the pure reconciliation (recon_job.compare)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from recon_job.compare import OPENAI_PREFIX, compare_usage, metric, reconcile
from recon_job.models import (
    UNATTRIBUTED,
    ReconResult,
    Status,
    Tolerance,
    UnpricedKey,
    Usage,
    UsageKey,
    UsageTotals,
    Window,
)

DAY = date(2026, 3, 14)
WINDOW = Window("daily", DAY, DAY + timedelta(days=1))
MONTH = Window("monthly", date(2026, 3, 1), date(2026, 4, 1))
TOLERANCE = Tolerance()  # 5 %, $0.05, 1000 tokens, 0 requests
KEY = UsageKey(DAY, "gpt-4o")


def tokens(n: int, *, requests: int = 0, cost: str = "0") -> Usage:
    return Usage(input_tokens=n, requests=requests, cost=Decimal(cost))


def one_group(
    local: Usage,
    openai: Usage,
    *,
    pending: tuple[date, ...] = (),
    tolerance: Tolerance = TOLERANCE,
) -> ReconResult:
    return reconcile(
        UsageTotals(groups={KEY: local}),
        UsageTotals(groups={KEY: openai}),
        window=WINDOW,
        tolerance=tolerance,
        pending_days=pending,
    )


def check_consistent(result: ReconResult) -> None:
    assert result.reconciled is (result.status is Status.RECONCILED)
    assert result.mismatches == tuple(g for g in result.groups if g.status is Status.MISMATCH)


# --- one group, table-driven ------------------------------------------------------------------

OK, BAD = Status.RECONCILED, Status.MISMATCH


def usd(amount: str) -> Usage:
    return Usage(cost=Decimal(amount))


def reqs(n: int) -> Usage:
    return Usage(input_tokens=100_000, requests=n)


GROUP_CASES = [
    # id, local, openai, expected status
    ("tokens 5.00% is within", tokens(1_050_000), tokens(1_000_000), OK),
    ("tokens 5.0001% is over", tokens(1_050_001), tokens(1_000_000), BAD),
    ("tokens -5.00% is within", tokens(950_000), tokens(1_000_000), OK),
    ("tokens -5.0001% is over", tokens(949_999), tokens(1_000_000), BAD),
    ("local zero, openai not", tokens(0), tokens(10_000), BAD),
    ("openai zero, local not", tokens(10_000), tokens(0), BAD),
    ("both zero", tokens(0), tokens(0), OK),
    ("9% but below the token floor", tokens(10_900), tokens(10_000), OK),
    ("difference exactly at the token floor", tokens(11_000), tokens(10_000), OK),
    ("difference one over the token floor", tokens(11_001), tokens(10_000), BAD),
    ("openai zero, local at the floor", tokens(1000), tokens(0), OK),
    ("cost 10% exactly at the $0.05 floor", usd("0.55"), usd("0.50"), OK),
    ("cost 10% just over the floor", usd("0.5501"), usd("0.50"), BAD),
    ("cost 5.00% of a large bill", usd("105.00"), usd("100.00"), OK),
    ("cost 5.0001% of a large bill", usd("105.0001"), usd("100.00"), BAD),
    ("cost missing locally", usd("0"), usd("19.30"), BAD),
    ("openai credit line below zero", usd("0"), usd("-1.00"), BAD),
    ("requests only drift", reqs(110), reqs(100), BAD),
    ("requests 5.00% drift", reqs(105), reqs(100), OK),
    ("one request missing of one", reqs(0), reqs(1), BAD),
]


@pytest.mark.parametrize(
    ("local", "openai", "expected"),
    [case[1:] for case in GROUP_CASES],
    ids=[case[0] for case in GROUP_CASES],
)
def test_a_group_is_judged_against_the_tolerance(
    local: Usage, openai: Usage, expected: Status
) -> None:
    result = one_group(local, openai)

    assert [g.status for g in result.groups] == [expected]
    assert result.status is expected
    check_consistent(result)


@pytest.mark.parametrize(
    ("local", "openai", "difference", "pct"),
    [
        (1_050_001, 1_000_000, Decimal(50_001), Decimal("5.0001")),
        (949_999, 1_000_000, Decimal(-50_001), Decimal("-5.0001")),
        (1_050_000, 1_000_000, Decimal(50_000), Decimal(5)),
        (0, 10_000, Decimal(-10_000), Decimal(-100)),
        (10_000, 0, Decimal(10_000), None),
        (0, 0, Decimal(0), None),
    ],
)
def test_difference_is_local_minus_openai_and_pct_is_relative_to_openai(
    local: int, openai: int, difference: Decimal, pct: Decimal | None
) -> None:
    m = metric(local, openai, Decimal(5), Decimal(1000))

    assert m.difference == difference
    assert m.pct == pct
    assert m.local == Decimal(local)
    assert m.openai == Decimal(openai)


def test_a_pct_is_not_rounded() -> None:
    m = metric(1, 3, Decimal(5), Decimal(0))

    # -200/3 carried to more digits than Decimal's default 28, never quantized to 2 places.
    assert str(m.pct).startswith("-66." + "6" * 40)


def test_a_threshold_with_decimals_is_exact() -> None:
    tight = Tolerance(threshold_pct=Decimal("0.5"), token_floor=0)

    assert one_group(tokens(1_005_000), tokens(1_000_000), tolerance=tight).reconciled
    assert not one_group(tokens(1_005_001), tokens(1_000_000), tolerance=tight).reconciled


def test_only_tokens_requests_and_cost_decide_but_token_classes_are_diagnosed() -> None:
    local = Usage(input_tokens=1_000_000, cached_tokens=900_000, output_tokens=100)
    openai = Usage(input_tokens=1_000_000, cached_tokens=400_000, output_tokens=100)

    result = one_group(local, openai)

    group = result.groups[0]
    assert group.status is Status.RECONCILED
    assert group.comparison.cached_tokens.exceeds
    assert not group.comparison.tokens.exceeds
    assert not group.comparison.exceeds


def test_every_metric_is_compared() -> None:
    local = Usage(input_tokens=100, cached_tokens=10, output_tokens=50, requests=3, cost=Decimal(1))
    openai = Usage(input_tokens=90, cached_tokens=0, output_tokens=60, requests=4, cost=Decimal(2))

    c = compare_usage(local, openai, TOLERANCE)

    assert c.input_tokens.difference == 10
    assert c.cached_tokens.difference == 10
    assert c.cached_tokens.pct is None
    assert c.output_tokens.difference == -10
    assert c.tokens.difference == 0
    assert c.requests.difference == -1
    assert c.requests.pct == -25
    assert c.cost.difference == -1
    assert c.cost.pct == -50


# --- many groups ------------------------------------------------------------------------------


def test_small_drifts_that_add_up_make_the_run_a_mismatch() -> None:
    local: dict[UsageKey, Usage] = {}
    official: dict[UsageKey, Usage] = {}
    for i in range(20):
        key = UsageKey(DAY, f"model-{i:02d}")
        local[key] = tokens(10_900)  # 9 % over, but 900 tokens is under the floor
        official[key] = tokens(10_000)

    result = reconcile(
        UsageTotals(groups=local), UsageTotals(groups=official), window=WINDOW, tolerance=TOLERANCE
    )

    assert all(g.status is Status.RECONCILED for g in result.groups)
    assert result.status is Status.MISMATCH
    assert result.comparison.tokens.difference == 18_000
    assert result.comparison.tokens.exceeds
    check_consistent(result)


def test_a_key_on_one_side_only_is_compared_against_zero() -> None:
    only_local = UsageKey(DAY, "gpt-5", "proj_a")
    only_openai = UsageKey(DAY, "o3", "proj_b")

    result = reconcile(
        UsageTotals(groups={only_local: tokens(5000)}),
        UsageTotals(groups={only_openai: tokens(7000)}),
        window=WINDOW,
        tolerance=TOLERANCE,
    )

    by_key = {g.key: g for g in result.groups}
    assert by_key[only_local].openai == Usage()
    assert by_key[only_local].comparison.tokens.pct is None
    assert by_key[only_local].status is Status.MISMATCH
    assert by_key[only_openai].local == Usage()
    assert by_key[only_openai].comparison.tokens.pct == -100
    assert by_key[only_openai].status is Status.MISMATCH
    assert result.local == tokens(5000)
    assert result.openai == tokens(7000)
    assert result.status is Status.MISMATCH


def test_groups_are_sorted_by_day_model_project_and_key() -> None:
    later = DAY + timedelta(days=1)
    keys = [
        UsageKey(later, "a-model"),
        UsageKey(DAY, "gpt-4o", "proj_b"),
        UsageKey(DAY, "gpt-4o", "proj_a", "key_2"),
        UsageKey(DAY, "gpt-4o", "proj_a", "key_1"),
        UsageKey(DAY, "gpt-4o"),
        UsageKey(DAY, "gpt-4.1", "proj_z"),
    ]
    window = Window("range", DAY, later + timedelta(days=1))

    result = reconcile(
        UsageTotals(groups={k: tokens(1) for k in keys[:3]}),
        UsageTotals(groups={k: tokens(1) for k in keys[3:]}),
        window=window,
        tolerance=TOLERANCE,
    )

    assert [g.key for g in result.groups] == [
        UsageKey(DAY, "gpt-4.1", "proj_z"),
        UsageKey(DAY, "gpt-4o"),
        UsageKey(DAY, "gpt-4o", "proj_a", "key_1"),
        UsageKey(DAY, "gpt-4o", "proj_a", "key_2"),
        UsageKey(DAY, "gpt-4o", "proj_b"),
        UsageKey(later, "a-model"),
    ]


def test_no_usage_at_all_is_reconciled() -> None:
    result = reconcile(UsageTotals(), UsageTotals(), window=MONTH, tolerance=TOLERANCE)

    assert result.status is Status.RECONCILED
    assert result.groups == ()
    assert result.comparison.cost.pct is None
    check_consistent(result)


# --- pending days -----------------------------------------------------------------------------


def test_a_pending_day_is_pending_not_a_mismatch() -> None:
    result = one_group(tokens(0), tokens(1_000_000), pending=(DAY,))

    assert result.groups[0].status is Status.PENDING
    assert result.groups[0].comparison.exceeds
    assert result.status is Status.PENDING
    assert result.pending_days == (DAY,)
    assert not result.reconciled
    check_consistent(result)


def test_a_pending_day_without_usage_still_makes_the_run_pending() -> None:
    settled, unsettled = date(2026, 3, 30), date(2026, 3, 31)
    key = UsageKey(settled, "gpt-4o")

    result = reconcile(
        UsageTotals(groups={key: tokens(1000)}),
        UsageTotals(groups={key: tokens(1000)}),
        window=MONTH,
        tolerance=TOLERANCE,
        pending_days=[unsettled, date(2026, 4, 1)],  # a day outside the window is ignored
    )

    assert result.groups[0].status is Status.RECONCILED
    assert result.status is Status.PENDING
    assert result.pending_days == (unsettled,)


def test_pending_days_keep_the_run_pending_even_with_a_settled_mismatch() -> None:
    # Issue 9 item 1: a window with unsettled days is never judged (nor completed) as a whole.
    settled, unsettled = date(2026, 3, 30), date(2026, 3, 31)
    drift, fine = UsageKey(settled, "gpt-4o"), UsageKey(unsettled, "gpt-4o")

    result = reconcile(
        UsageTotals(groups={drift: tokens(2_000_000), fine: tokens(5)}),
        UsageTotals(groups={drift: tokens(1_000_000), fine: tokens(9_000_000)}),
        window=MONTH,
        tolerance=TOLERANCE,
        pending_days=[unsettled],
    )

    assert [g.status for g in result.groups] == [Status.MISMATCH, Status.PENDING]
    assert result.status is Status.PENDING
    check_consistent(result)


def test_drift_on_pending_days_does_not_count_in_the_settled_totals() -> None:
    settled, unsettled = date(2026, 3, 30), date(2026, 3, 31)
    ok, late = UsageKey(settled, "gpt-4o"), UsageKey(unsettled, "gpt-4o")

    result = reconcile(
        UsageTotals(groups={ok: tokens(1_000_000), late: tokens(1_000_000)}),
        UsageTotals(groups={ok: tokens(1_000_000), late: tokens(100_000)}),
        window=MONTH,
        tolerance=TOLERANCE,
        pending_days=[unsettled],
    )

    # The window totals show the drift (reported), but only settled days decide the status.
    assert result.comparison.tokens.exceeds
    assert result.status is Status.PENDING


# --- carried facts ----------------------------------------------------------------------------


def test_skipped_unpriced_and_info_are_carried_into_the_result() -> None:
    unpriced = {UnpricedKey("gpt-6-astra", "standard"): tokens(37_400_000, requests=365)}
    local = UsageTotals(
        groups={KEY: tokens(10)},
        skipped={"malformed_json": 2, "blank_line": 5},
        unpriced=unpriced,
        info={"files_read": 3},
    )
    official = UsageTotals(groups={KEY: tokens(10)}, skipped={"bad_bucket": 1}, info={"pages": 2})

    result = reconcile(local, official, window=WINDOW, tolerance=TOLERANCE)

    assert result.skipped == {"malformed_json": 2, "blank_line": 5, f"{OPENAI_PREFIX}bad_bucket": 1}
    assert result.info == {"files_read": 3, "openai.pages": 2}
    assert result.unpriced == unpriced
    assert result.tolerance is TOLERANCE
    assert result.window is WINDOW


@pytest.mark.parametrize(
    ("local", "openai", "pending"),
    [
        (tokens(1_050_000), tokens(1_000_000), ()),
        (tokens(1_050_001), tokens(1_000_000), ()),
        (tokens(1_050_001), tokens(1_000_000), (DAY,)),
        (tokens(0), tokens(0), ()),
        (tokens(0), tokens(0), (DAY,)),
    ],
)
def test_reconciled_agrees_with_the_status(
    local: Usage, openai: Usage, pending: tuple[date, ...]
) -> None:
    check_consistent(one_group(local, openai, pending=pending))


def test_unattributed_openai_cost_is_compared_on_the_totals_only() -> None:
    """An ungrouped Costs answer puts the day's dollars under "(all)", not under models."""
    day = date(2026, 8, 31)
    window = Window("daily", day, date(2026, 9, 1))
    local = UsageTotals(
        groups={UsageKey(day, "gpt-4o"): Usage(input_tokens=100_000, requests=10, cost=Decimal(1))}
    )
    matching = UsageTotals(
        groups={
            UsageKey(day, "gpt-4o"): Usage(input_tokens=100_000, requests=10),
            UsageKey(day, UNATTRIBUTED): Usage(cost=Decimal("1.01")),
        }
    )
    result = reconcile(local, matching, window=window, tolerance=Tolerance())
    assert result.status is Status.RECONCILED
    assert {g.status for g in result.groups} == {Status.RECONCILED}

    drifting = UsageTotals(
        groups={
            UsageKey(day, "gpt-4o"): Usage(input_tokens=100_000, requests=10),
            UsageKey(day, UNATTRIBUTED): Usage(cost=Decimal(2)),
        }
    )
    result = reconcile(local, drifting, window=window, tolerance=Tolerance())
    assert result.status is Status.MISMATCH  # -50% on the totals
    assert result.comparison.cost.exceeds
    assert {g.status for g in result.groups} == {Status.RECONCILED}
