"""History retention (issue 13 item 5): what ``prune_history`` deletes and what always stays,
on SQLite and (when set up) PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from recon_job.models import Tolerance
from recon_job.store import PRUNED_TABLES, HistoryStore, retention_start
from recon_job.web.overview import build as overview
from recon_job.windows import daily
from tests.store.retention import KEEP, Built, at, build, record_run, row_counts

TODAY = date(2027, 6, 30)


def test_the_kept_days_end_today_and_zero_keeps_everything() -> None:
    assert retention_start(TODAY, 1) == TODAY
    assert retention_start(TODAY, 400) == date(2026, 5, 27)
    assert retention_start(TODAY, 0) is None
    with pytest.raises(ValueError, match="negative"):
        retention_start(TODAY, -1)


def test_old_runs_go_with_their_groups_and_recent_ones_stay(store: HistoryStore) -> None:
    built = build(store, TODAY)
    groups_before = {r: len(store.run_groups(r)) for r in built.old_runs | built.kept_runs}

    report = store.prune_history(built.kept_from)

    assert report.kept_from == built.kept_from == retention_start(TODAY, KEEP)
    assert report.dry_run is False
    assert list(report.deleted) == list(PRUNED_TABLES)
    assert report.deleted["runs"] == len(built.old_runs)
    assert report.deleted["run_groups"] == sum(groups_before[r] for r in built.old_runs)
    assert all(store.get_run(r) is None for r in built.old_runs)
    assert all(store.run_groups(r) == [] for r in built.old_runs)
    for run_id in built.kept_runs:
        assert store.get_run(run_id) is not None, run_id
        assert len(store.run_groups(run_id)) == groups_before[run_id]


def test_a_run_a_notification_still_waits_for_and_a_running_run_stay(store: HistoryStore) -> None:
    built = build(store, TODAY)

    store.prune_history(built.kept_from)

    held = store.get_run(built.held_run)
    assert held is not None
    assert held.window.end < built.kept_from
    assert store.run_groups(built.held_run) != []
    assert store.pending_count() == 1
    (pending,) = [n for n in store.list_notifications() if n.row.status == "pending"]
    assert pending.row.run_id == built.held_run
    running = store.get_run(built.running_run)
    assert running is not None
    assert running.status == "running"


def test_delivered_notifications_and_their_attempts_go_once_old(store: HistoryStore) -> None:
    built = build(store, TODAY)

    report = store.prune_history(built.kept_from)

    # Old and sent, old and given up: gone with their one attempt each; the old one still to
    # be sent and the recent one stay, and so does an old one of a group still firing.
    assert report.deleted["outbox"] == 3
    assert report.deleted["delivery_attempts"] == 3
    left = {n.row.dedupe_key: n for n in store.list_notifications()}
    assert set(left) == {"old-pending", "new-sent"}
    assert left["new-sent"].attempt_count == 1
    # The notification log forgets an old quiet group; a group still firing is remembered.
    assert report.deleted["notification_log"] == 1
    old_quiet = store.notification_state(f"daily:{built.kept_from - timedelta(days=200)}", "email")
    assert old_quiet is None
    firing = store.notification_state("monthly:old", "email")
    assert firing is not None
    assert firing.firing == frozenset({"a"})
    assert store.notification_state(f"daily:{TODAY}", "email") is not None


def test_old_restatements_and_cached_series_go(store: HistoryStore) -> None:
    built = build(store, TODAY)

    report = store.prune_history(built.kept_from)

    assert report.deleted["restatements"] == 2
    assert report.deleted["openai_series"] == 2
    days = sorted(r.group.day for r in store.restatements_since())
    assert days == [built.kept_from, TODAY - timedelta(days=3)]
    before = built.kept_from - timedelta(days=1)
    assert store.cached_series("completions", "1h", at(before), at(before, 24)) is None
    kept = store.cached_series("completions", "1h", at(built.kept_from), at(built.kept_from, 24))
    assert kept == []  # a span OpenAI had no usage in, still cached


def test_the_dashboard_shows_every_range_inside_the_kept_days_as_before(
    store: HistoryStore,
) -> None:
    built = build(store, TODAY)
    ranges = [
        (built.kept_from, TODAY),
        (built.kept_from, built.kept_from + timedelta(days=1)),
        (TODAY - timedelta(days=89), TODAY),
        (TODAY - timedelta(days=6), TODAY),
    ]
    before = [overview(store, start, end, Tolerance()) for start, end in ranges]
    trends = store.drift_series(TODAY, KEEP)
    assert before[0].reconciled_days > 0
    assert any(d.state == "failed" for d in before[0].days)

    assert store.prune_history(built.kept_from).deleted["runs"] > 0

    assert [overview(store, start, end, Tolerance()) for start, end in ranges] == before
    assert store.drift_series(TODAY, KEEP) == trends


def test_a_dry_run_deletes_nothing_and_counts_what_a_prune_deletes(
    store: HistoryStore, db_url: str
) -> None:
    built = build(store, TODAY)
    rows = row_counts(db_url)

    dry = store.prune_history(built.kept_from, dry_run=True)

    assert dry.dry_run is True
    assert row_counts(db_url) == rows
    real = store.prune_history(built.kept_from)
    assert dict(real.deleted) == dict(dry.deleted)
    assert real.total == dry.total > 0
    assert row_counts(db_url) == {t: rows[t] - real.deleted[t] for t in PRUNED_TABLES}


def test_a_second_prune_finds_nothing_left_to_delete(store: HistoryStore) -> None:
    built = build(store, TODAY)
    store.prune_history(built.kept_from)

    again = store.prune_history(built.kept_from)

    assert again.total == 0
    assert set(again.deleted) == set(PRUNED_TABLES)


def test_new_runs_after_a_prune_get_new_ids(store: HistoryStore) -> None:
    built: Built = build(store, TODAY)
    newest = max(built.old_runs | built.kept_runs)
    store.prune_history(TODAY + timedelta(days=400))  # everything that may go, goes

    assert record_run(store, daily(TODAY)) > newest
