"""The cost bridge: a cost difference in named parts that add up to it exactly."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from recon_job.compare import compare_usage, reconcile
from recon_job.diagnosis.bridge import PARTS, bridge_sentences, group_bridge, window_bridge
from recon_job.findings import Bridge, Duplicates
from recon_job.models import (
    MONEY,
    GroupResult,
    Status,
    Tolerance,
    Usage,
    UsageKey,
    UsageTotals,
    Window,
)
from recon_job.pricing import PriceEntry, PriceTable, Rates

D = Decimal
DAY = date(2026, 2, 3)
KEY = UsageKey(DAY, "gpt-4o")
TABLE = PriceTable(
    entries={
        "gpt-4o": (
            PriceEntry(
                date(2024, 5, 13),
                Rates(input=D("2.50"), cached_input=D("1.25"), output=D("10")),
            ),
        ),
        "whisper-1": (PriceEntry(date(2023, 3, 1), Rates(per_minute=D("0.006"))),),
    }
)
WINDOW = Window("daily", DAY, date(2026, 2, 4))


def usage(requests: int, input_tokens: int, output: int, cost: str, cached: int = 0) -> Usage:
    return Usage(
        input_tokens=input_tokens,
        cached_tokens=cached,
        output_tokens=output,
        requests=requests,
        cost=D(cost),
    )


def group(local: Usage, official: Usage, key: UsageKey = KEY) -> GroupResult:
    comparison = compare_usage(local, official, Tolerance(), family=key.family)
    return GroupResult(key, local, official, comparison, Status.MISMATCH)


def parts(bridge: Bridge) -> dict[str, Decimal]:
    return {p.name: p.amount for p in bridge.parts}


#: 1,000 requests of 1,000 input and 100 output tokens: $3.50 at the table's prices.
OPENAI = usage(1000, 1_000_000, 100_000, "3.50")


def test_requests_missing_locally_are_coverage_at_openais_average_request() -> None:
    local = usage(688, 688_000, 68_800, "2.408")
    bridge = group_bridge(group(local, OPENAI), TABLE, pending=False)
    assert bridge.difference == D("-1.092")
    assert parts(bridge) == {"coverage": D("-1.092")}
    assert bridge.parts[0].detail == "312 requests missing locally at $0.0035 each"


def test_the_same_requests_with_other_token_classes_are_token_mix() -> None:
    official = usage(1000, 1_000_000, 100_000, "3.00", cached=400_000)
    local = usage(1000, 1_000_000, 100_000, "3.50")
    bridge = group_bridge(group(local, official), TABLE, pending=False)
    assert parts(bridge) == {"token_mix": D("0.50")}
    detail = bridge.parts[0].detail
    assert "uncached input +400,000" in detail
    assert "cached input -400,000" in detail


def test_the_same_quantities_billed_at_other_dollars_are_price() -> None:
    official = usage(1000, 1_000_000, 100_000, "1.75")
    local = usage(1000, 1_000_000, 100_000, "3.50")
    bridge = group_bridge(group(local, official), TABLE, pending=False)
    assert parts(bridge) == {"price": D("1.75")}
    assert bridge.parts[0].detail == (
        "the table prices OpenAI's quantities at $3.50, OpenAI billed $1.75"
    )


def test_a_logged_cost_other_than_the_tables_is_local_estimate() -> None:
    local = usage(1000, 1_000_000, 100_000, "4.00")
    bridge = group_bridge(group(local, OPENAI), TABLE, pending=False)
    assert parts(bridge) == {"local_estimate": D("0.50")}
    assert "$4.00" in bridge.parts[0].detail
    assert "$3.50" in bridge.parts[0].detail


def test_a_group_openai_billed_at_the_batch_tier_is_tier_not_price() -> None:
    official = usage(1000, 1_000_000, 100_000, "1.75")
    local = usage(1000, 1_000_000, 100_000, "3.50")
    bridge = group_bridge(group(local, official), TABLE, pending=False, billed_tier="batch")
    assert parts(bridge) == {"tier": D("1.75")}
    assert "batch tier" in bridge.parts[0].detail


def test_without_a_billed_tier_there_is_no_tier_part() -> None:
    official = usage(1000, 1_000_000, 100_000, "1.75")
    local = usage(1000, 1_000_000, 100_000, "3.50")
    same = group_bridge(group(local, official), TABLE, pending=False, billed_tier="standard")
    assert "tier" not in parts(same)
    assert parts(same) == {"price": D("1.75")}


def test_a_model_without_a_price_is_unpriced_as_a_whole() -> None:
    key = UsageKey(DAY, "mystery-model")
    local = usage(900, 900_000, 90_000, "0")
    official = usage(1000, 1_000_000, 100_000, "3.50")
    bridge = group_bridge(group(local, official, key), TABLE, pending=False)
    assert parts(bridge) == {"unpriced": D("-3.50")}
    assert "mystery-model" in bridge.parts[0].detail


def test_a_group_of_a_pending_day_is_pending_as_a_whole() -> None:
    local = usage(688, 688_000, 68_800, "2.50")
    bridge = group_bridge(group(local, OPENAI), TABLE, pending=True)
    assert parts(bridge) == {"pending": D("-1.00")}
    assert "not settled" in bridge.parts[0].detail


def test_duplicate_records_counted_locally_are_duplicates_not_coverage() -> None:
    local = usage(1010, 1_010_000, 101_000, "3.535")
    bridge = group_bridge(
        group(local, OPENAI),
        TABLE,
        pending=False,
        duplicates_cost=D("0.035"),
        duplicate_requests=10,
    )
    assert parts(bridge) == {"duplicates": D("0.035")}
    assert bridge.parts[0].detail.startswith("10 duplicate records counted locally")


def test_a_family_openai_reports_no_quantities_of_is_split_into_estimate_and_price() -> None:
    local = usage(1000, 1_000_000, 100_000, "3.60")
    official = Usage(cost=D("3.20"))
    bridge = group_bridge(group(local, official), TABLE, pending=False, counted=False)
    assert parts(bridge) == {"local_estimate": D("0.10"), "price": D("0.30")}
    assert bridge.parts[0].detail == (
        "OpenAI reports no quantities of completions: it billed $3.20, "
        "the table prices your usage at $3.50"
    )


def test_usage_openai_does_not_count_at_all_is_coverage() -> None:
    local = usage(10, 10_000, 0, "0.025")
    bridge = group_bridge(group(local, Usage()), TABLE, pending=False)
    assert parts(bridge) == {"coverage": D("0.025")}
    assert "OpenAI counts no requests" in bridge.parts[0].detail


def test_a_difference_of_several_causes_splits_into_each_and_adds_up() -> None:
    # 312 requests missing, some cached tokens OpenAI saw, a logged estimate 10 cents high,
    # and OpenAI billing 5 cents under the table.
    official = usage(1000, 1_000_000, 100_000, "2.95", cached=400_000)  # table: $3.00
    local = usage(688, 688_000, 68_800, "2.508")  # table: $2.408
    bridge = group_bridge(group(local, official), TABLE, pending=False)
    assert parts(bridge) == {
        "local_estimate": D("0.100"),
        "token_mix": D("0.344"),  # 2.408 - 3.00 x 0.688
        "coverage": D("-0.936"),  # 3.00 x 0.688 - 3.00
        "price": D("0.05"),
    }
    assert bridge.total == bridge.difference == D("-0.442")
    assert [p.name for p in bridge.parts] == ["coverage", "token_mix", "price", "local_estimate"]


def test_the_window_bridge_explains_local_against_every_dollar_openai_billed() -> None:
    local = UsageTotals(
        groups={
            KEY: usage(688, 688_000, 68_800, "2.408"),
            UsageKey(DAY, "mystery-model"): usage(5, 5_000, 0, "0.10"),
        }
    )
    embeddings = UsageKey(DAY, "text-embedding-3-small", family="embeddings")
    official = UsageTotals(
        groups={
            KEY: OPENAI,
            UsageKey(DAY, "mystery-model"): usage(5, 5_000, 0, "0.12"),
            embeddings: Usage(input_tokens=20_000_000, requests=40, cost=D("0.40")),
        }
    )
    result = reconcile(local, official, window=WINDOW, tolerance=Tolerance())
    assert result.untracked
    bridge = window_bridge(result, TABLE)
    untracked = sum((u.cost for u in result.untracked.values()), D(0))
    assert bridge.difference == result.local.cost - result.openai.cost - untracked
    assert bridge.total == bridge.difference
    assert parts(bridge) == {
        "coverage": D("-1.092"),
        "unpriced": D("-0.02"),
        "untracked": D("-0.40"),
    }
    assert [p.name for p in bridge.parts] == ["coverage", "unpriced", "untracked"]
    assert bridge.parts[-1].detail == "OpenAI billed $0.40 of embeddings you do not log"


def test_the_window_bridge_counts_duplicates_and_pending_days_by_group() -> None:
    local = UsageTotals(groups={KEY: usage(1010, 1_010_000, 101_000, "3.535")})
    official = UsageTotals(groups={KEY: OPENAI})
    settled = reconcile(local, official, window=WINDOW, tolerance=Tolerance())
    dupes = {KEY: Duplicates(count=10, request_ids=10, cost=D("0.035"))}
    assert parts(window_bridge(settled, TABLE, duplicates=dupes)) == {"duplicates": D("0.035")}
    pending = reconcile(local, official, window=WINDOW, tolerance=Tolerance(), pending_days=[DAY])
    assert parts(window_bridge(pending, TABLE)) == {"pending": D("0.035")}


def test_the_largest_part_reads_as_one_sentence() -> None:
    local = usage(688, 688_000, 68_800, "2.508")
    bridge = group_bridge(group(local, OPENAI), TABLE, pending=False)
    assert bridge_sentences(bridge) == [
        "coverage: -$1.09 of the -$0.99 cost difference "
        "(312 requests missing locally at $0.0035 each)"
    ]


# --- every bridge adds up -----------------------------------------------------------------

counts = st.integers(min_value=0, max_value=10**9)
money = st.decimals(
    min_value=D(0), max_value=D(10**6), allow_nan=False, allow_infinity=False, places=9
)
rates = st.decimals(min_value=D(0), max_value=D(200), allow_nan=False, places=4)


@st.composite
def usages(draw: st.DrawFn) -> Usage:
    cached = draw(counts)
    uncached = draw(counts)
    return Usage(
        input_tokens=cached + uncached,
        cached_tokens=cached,
        output_tokens=draw(counts),
        requests=draw(st.integers(min_value=0, max_value=10**7)),
        seconds=draw(st.integers(min_value=0, max_value=10**6)),
        cost=draw(money),
    )


@st.composite
def tables(draw: st.DrawFn) -> PriceTable:
    standard = Rates(
        input=draw(rates),
        cached_input=draw(rates),
        output=draw(rates),
        # A per-minute rate not divisible by 60: costs with ~60 significant digits.
        per_minute=draw(rates),
    )
    return PriceTable(entries={"gpt-4o": (PriceEntry(date(2024, 1, 1), standard),)})


@settings(max_examples=300, deadline=None)
@given(
    local=usages(),
    official=usages(),
    table=tables(),
    pending=st.booleans(),
    counted=st.booleans(),
    billed_tier=st.sampled_from([None, "standard", "batch", "flex"]),
    dup_requests=st.integers(min_value=0, max_value=100),
    dup_cost=money,
)
def test_every_group_bridge_sums_exactly_to_its_difference(
    local: Usage,
    official: Usage,
    table: PriceTable,
    pending: bool,
    counted: bool,
    billed_tier: str | None,
    dup_requests: int,
    dup_cost: Decimal,
) -> None:
    bridge = group_bridge(
        group(local, official),
        table,
        pending=pending,
        duplicates_cost=dup_cost,
        duplicate_requests=dup_requests,
        billed_tier=billed_tier,  # type: ignore[arg-type]
        counted=counted,
    )
    assert bridge.difference == MONEY.subtract(local.cost, official.cost)
    assert bridge.total == bridge.difference
    assert all(p.name in PARTS and p.amount and p.detail for p in bridge.parts)


@settings(max_examples=100, deadline=None)
@given(
    sides=st.lists(
        st.tuples(
            st.sampled_from(["gpt-4o", "unknown-model"]),
            st.integers(min_value=0, max_value=2),
            usages(),
            usages(),
        ),
        max_size=6,
    ),
    untracked=st.lists(money, max_size=2),
    table=tables(),
    pending=st.booleans(),
)
def test_every_window_bridge_sums_exactly_to_local_against_every_openai_dollar(
    sides: list[tuple[str, int, Usage, Usage]],
    untracked: list[Decimal],
    table: PriceTable,
    pending: bool,
) -> None:
    mine: dict[UsageKey, Usage] = {}
    theirs: dict[UsageKey, Usage] = {}
    for model, offset, local, official in sides:
        key = UsageKey(date(2026, 2, 3 + offset), model)
        mine[key], theirs[key] = local, official
    for n, cost in enumerate(untracked):
        theirs[UsageKey(DAY, f"emb-{n}", family="embeddings")] = Usage(requests=1, cost=cost)
    window = Window("range", DAY, date(2026, 2, 6))
    result = reconcile(
        UsageTotals(groups=mine),
        UsageTotals(groups=theirs),
        window=window,
        tolerance=Tolerance(),
        pending_days=[DAY] if pending else [],
    )
    bridge = window_bridge(result, table)
    # Untracked when the local side has any group; compared when it has none (a logging gap).
    every_openai_dollar = D(0)
    for usage in theirs.values():
        every_openai_dollar = MONEY.add(every_openai_dollar, usage.cost)
    assert bridge.difference == MONEY.subtract(result.local.cost, every_openai_dollar)
    assert bridge.total == bridge.difference
