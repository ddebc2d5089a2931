"""Restatements in the history, on SQLite and PostgreSQL: OpenAI's figures of a completed day as
last stored, a revision seen two days later recorded with both figures, and not seen again."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from recon_job.compare import reconcile
from recon_job.diagnosis.restatements import official_figures, restatement_sentence, restatements
from recon_job.findings import GroupRef, Restatement
from recon_job.models import Tolerance, Usage, UsageKey, UsageTotals, Window
from recon_job.store import HistoryStore
from recon_job.windows import daily, monthly

D = Decimal
DAY = date(2026, 11, 28)
TOLERANCE = Tolerance()
CHAT = UsageKey(DAY, "gpt-4o", "proj_a")
CHAT_B = UsageKey(DAY, "gpt-4o", "proj_b")
FIRST = Usage(1_000_000, 0, 200_000, 500, D("30.00"))
SECOND = Usage(400_000, 0, 100_000, 200, D("11.20"))


def at(days_later: int) -> datetime:
    """06:00 UTC ``days_later`` days after DAY."""
    return datetime(DAY.year, DAY.month, DAY.day, 6, tzinfo=UTC) + timedelta(days=days_later)


def record_run(
    store: HistoryStore,
    window: Window,
    official: Mapping[UsageKey, Usage],
    *,
    started_at: datetime,
    pending: tuple[date, ...] = (),
) -> int:
    """A finished run of ``window`` whose logs agree with ``official``."""
    result = reconcile(
        UsageTotals(groups=dict(official)),
        UsageTotals(groups=dict(official)),
        window=window,
        tolerance=TOLERANCE,
        pending_days=pending,
    )
    run_id = store.start_run(window, started_at=started_at, trigger="test")
    store.finish_run(run_id, result, finished_at=started_at + timedelta(minutes=1))
    return run_id


def test_a_day_revised_two_days_later_is_recorded_with_before_and_after(
    store: HistoryStore,
) -> None:
    first = record_run(store, daily(DAY), {CHAT: FIRST, CHAT_B: SECOND}, started_at=at(1))
    # Two days later OpenAI bills proj_b's day $1.85 more: the 11-30 run's page covers 11-28.
    later = record_run(store, daily(DAY + timedelta(days=2)), {}, started_at=at(3))
    revised = {CHAT: FIRST, CHAT_B: Usage(400_000, 0, 100_000, 200, D("13.05"))}

    previous, runs = store.previous_official([DAY, DAY + timedelta(days=1)])
    found = restatements(
        previous,
        official_figures(revised),
        TOLERANCE,
        seen_at=at(3),
        days={DAY, DAY + timedelta(days=1)},
        previous_runs=runs,
    )
    assert store.record_restatements(later, found) == 1

    assert runs == {DAY: first}
    assert previous == {GroupRef(DAY, "completions", "gpt-4o"): FIRST + SECOND}
    stored = store.restatements_since(at(3))
    assert stored == [
        Restatement(
            GroupRef(DAY, "completions", "gpt-4o"),
            "cost",
            D("41.20"),
            D("43.05"),
            at(3),
            previous_run_id=first,
        )
    ]
    assert restatement_sentence(stored[0]) == (
        "OpenAI restated 2026-11-28 gpt-4o: cost $41.20 → $43.05 (+$1.85), seen 2026-12-01"
    )
    assert store.restatements_since(run_id=later) == stored
    assert store.restatements_since(at(4)) == []
    assert store.restatements_since(first_day=DAY + timedelta(days=1)) == []

    # The next day's run sees the revised figures as the official ones: nothing new.
    again, _ = store.previous_official([DAY])
    assert again[GroupRef(DAY, "completions", "gpt-4o")].cost == D("43.05")
    assert restatements(again, official_figures(revised), TOLERANCE, seen_at=at(4)) == ()


def test_unchanged_or_below_the_floor_is_no_restatement(store: HistoryStore) -> None:
    record_run(store, daily(DAY), {CHAT: FIRST}, started_at=at(1))
    previous, _ = store.previous_official([DAY])
    cents = Usage(1_000_500, 0, 200_000, 500, D("30.04"))

    assert restatements(previous, official_figures({CHAT: FIRST}), TOLERANCE, seen_at=at(3)) == ()
    assert restatements(previous, official_figures({CHAT: cents}), TOLERANCE, seen_at=at(3)) == ()
    assert store.record_restatements(None, ()) == 0
    assert store.restatements_since() == []


def test_the_latest_completed_run_covering_a_day_gives_its_figures(store: HistoryStore) -> None:
    record_run(store, daily(DAY), {CHAT: FIRST}, started_at=at(1))
    # A later monthly run fetched the day again: its figures are the newest official ones.
    month = record_run(store, monthly(2026, 11), {CHAT: SECOND}, started_at=at(4))
    # A still later run that left the day pending, and one that failed, do not count.
    record_run(
        store,
        Window("range", DAY, DAY + timedelta(days=7)),
        {CHAT: FIRST},
        started_at=at(5),
        pending=(DAY,),
    )
    failed = store.start_run(daily(DAY), started_at=at(6), trigger="test")
    store.fail_run(failed, reason="x", message="x", finished_at=at(6))

    previous, runs = store.previous_official([DAY])

    assert runs == {DAY: month}
    assert previous == {GroupRef(DAY, "completions", "gpt-4o"): SECOND}
    per_project, _ = store.previous_official([DAY], by_project=True)
    assert per_project == {GroupRef(DAY, "completions", "gpt-4o", "proj_a"): SECOND}
    assert store.previous_official([]) == ({}, {})
    # A day the month covers with no usage has official figures: none at all.
    assert store.previous_official([DAY - timedelta(days=9)]) == (
        {},
        {DAY - timedelta(days=9): month},
    )
    assert store.previous_official([DAY - timedelta(days=30)]) == ({}, {})


def test_a_revision_older_than_the_latest_run_is_not_applied_again(store: HistoryStore) -> None:
    record_run(store, daily(DAY), {CHAT: FIRST}, started_at=at(1))
    group = GroupRef(DAY, "completions", "gpt-4o")
    store.record_restatements(None, [Restatement(group, "requests", D(500), D(520), at(2))])
    revised, _ = store.previous_official([DAY])
    assert revised[group].requests == 520
    # A forced rerun after the revision fetched the day whole: its figures win.
    rerun = record_run(store, daily(DAY), {CHAT: SECOND}, started_at=at(3))

    assert store.previous_official([DAY]) == ({group: SECOND}, {DAY: rerun})


def test_a_period_restated_after_its_last_completed_run_is_named_until_it_is_run_again(
    store: HistoryStore,
) -> None:
    record_run(store, daily(DAY), {CHAT: FIRST}, started_at=at(1))
    record_run(store, daily(DAY + timedelta(days=1)), {CHAT: FIRST}, started_at=at(2))
    record_run(store, monthly(2026, 11), {CHAT: FIRST}, started_at=at(1))
    assert store.restated_periods(("daily", "monthly"), since=DAY) == set()

    # The 11-30 run sees DAY revised: DAY's period and its month are due again, not 11-29's.
    later = record_run(store, daily(DAY + timedelta(days=2)), {}, started_at=at(3))
    change = Restatement(
        GroupRef(DAY, "completions", "gpt-4o"), "cost", D("30.00"), D("31.00"), at(3)
    )
    store.record_restatements(later, [change])
    assert store.restated_periods(("daily", "monthly"), since=DAY - timedelta(days=30)) == {
        "daily:2026-11-28",
        "monthly:2026-11",
    }
    assert store.restated_periods(("daily",), since=DAY + timedelta(days=1)) == set()

    # Run again after the revision was seen: no longer restated (its runs finish after).
    rerun = record_run(store, daily(DAY), {CHAT: FIRST}, started_at=at(3) + timedelta(minutes=5))
    assert store.restated_periods(("daily", "monthly"), since=DAY) == set()
    # What a run finds is seen when it starts, before it finishes: never its own period again.
    store.record_restatements(rerun, [replace(change, seen_at=at(3) + timedelta(minutes=5))])
    assert store.restated_periods(("daily",), since=DAY) == set()
    assert store.restated_periods(("monthly",), since=date(2026, 11, 1)) == {"monthly:2026-11"}
