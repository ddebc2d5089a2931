"""A history reaching far back, for the retention tests: runs, notifications, restatements and
cached series on both sides of the first kept day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import sqlalchemy as sa

from recon_job.alerts import NotificationState
from recon_job.compare import reconcile
from recon_job.findings import GroupRef, Restatement
from recon_job.models import Message, Tolerance, UsageKey, UsageTotals, Window
from recon_job.store import PRUNED_TABLES, Attempt, HistoryStore, OutboxItem
from recon_job.windows import daily, monthly
from tests.web.history import usage

#: The days kept in these histories, and the first of them (``retention_start(TODAY, KEEP)``).
KEEP = 130


@dataclass(frozen=True)
class Built:
    """The ids of what was recorded, by what should become of it."""

    kept_from: date
    #: Runs whose window ended before ``kept_from``, and nothing holds them.
    old_runs: frozenset[int]
    #: Every other run.
    kept_runs: frozenset[int]
    #: The old run a notification still to be sent refers to.
    held_run: int
    #: The old run still running.
    running_run: int


def at(day: date, hours: int = 0) -> datetime:
    """Midnight UTC of ``day``, plus ``hours``."""
    return datetime.combine(day, time(), tzinfo=UTC) + timedelta(hours=hours)


def record_run(store: HistoryStore, window: Window, drift: bool = False) -> int:
    """A finished run of ``window`` (one group per day, a mismatch with ``drift``); its id."""
    days = [window.start + timedelta(days=n) for n in range((window.end - window.start).days)]
    local = usage(100_000, 100, "2.50")
    openai = usage(150_000, 150, "3.75") if drift else local
    result = reconcile(
        UsageTotals(groups={UsageKey(d, "gpt-4o"): local for d in days}),
        UsageTotals(groups={UsageKey(d, "gpt-4o"): openai for d in days}),
        window=window,
        tolerance=Tolerance(),
    )
    started = at(window.end, 6)
    run_id = store.start_run(window, started_at=started, trigger="test")
    store.finish_run(run_id, result, finished_at=started + timedelta(seconds=2))
    return run_id


def record_failure(store: HistoryStore, window: Window) -> int:
    """A failed run of ``window``."""
    started = at(window.end, 7)
    run_id = store.start_run(window, started_at=started, trigger="test")
    store.fail_run(run_id, reason="quota_exhausted", message="429", finished_at=started)
    return run_id


def notification(
    key: str, run_id: int | None, group_key: str, *, firing: frozenset[str] = frozenset()
) -> OutboxItem:
    """An email about ``group_key`` whose delivery stores ``firing`` in the notification log."""
    message = Message(
        dedupe_key=key,
        event="resolved" if not firing else "opened",
        group_key=group_key,
        subject=f"recon-job: {group_key}",
        text="text",
        html="<p>html</p>",
        slack_text="slack",
        payload={"version": 1},
    )
    return OutboxItem("email", message, run_id, state=NotificationState(firing=firing))


def deliver(store: HistoryStore, item: OutboxItem, when: datetime, outcome: str = "sent") -> int:
    """Enqueue ``item`` at ``when`` and record one attempt with ``outcome`` then; its id."""
    (outbox_id,) = store.enqueue([item], now=when)
    state = item.state
    assert state is not None
    sent = NotificationState(state.firing, state.resolved, last_sent_at=when, last_event="opened")
    attempt = Attempt("sent", new_state=sent) if outcome == "sent" else Attempt("permanent")
    store.record_delivery(outbox_id, attempt, now=when)
    return outbox_id


def build(store: HistoryStore, today: date) -> Built:
    """Runs, notifications, restatements and series before and after the first kept day."""
    kept_from = today - timedelta(days=KEEP - 1)
    long_ago = kept_from - timedelta(days=200)
    old = {
        record_run(store, daily(long_ago)),
        record_failure(store, daily(long_ago)),
        record_run(store, daily(long_ago), drift=True),
        record_run(store, monthly(long_ago.year, long_ago.month)),
        # Its window ends (exclusive) on the first kept day: it holds no kept day.
        record_run(store, daily(kept_from - timedelta(days=1)), drift=True),
    }
    held = record_run(store, daily(long_ago + timedelta(days=1)), drift=True)
    running = store.start_run(
        daily(long_ago + timedelta(days=2)), started_at=at(today), trigger="test"
    )
    kept = {
        record_run(store, daily(kept_from)),
        record_failure(store, daily(kept_from + timedelta(days=1))),
        record_run(store, monthly(kept_from.year, kept_from.month), drift=True),
        *(record_run(store, daily(today - timedelta(days=n)), drift=n == 3) for n in (2, 3, 4)),
        record_failure(store, daily(today - timedelta(days=5))),
    }
    # Notifications: old and delivered or given up (they go), old and still to send (it and
    # its run stay), recent and delivered (it stays).
    deliver(store, notification("old-sent", min(old), daily(long_ago).key), at(long_ago, 30))
    deliver(
        store,
        notification("old-dead", None, "channel:email", firing=frozenset({"x"})),
        at(long_ago, 31),
        "permanent",
    )
    store.enqueue([notification("old-pending", held, daily(long_ago).key)], now=at(long_ago, 32))
    deliver(
        store,
        notification("old-firing", None, "monthly:old", firing=frozenset({"a"})),
        at(long_ago, 33),
    )
    deliver(store, notification("new-sent", max(kept), daily(today).key), at(today, -2))
    # Restatements and cached series on either side.
    for day in (long_ago, kept_from - timedelta(days=1), kept_from, today - timedelta(days=3)):
        store.record_restatements(
            None,
            [
                Restatement(
                    GroupRef(day, "completions", "gpt-4o"),
                    "cost",
                    Decimal(1),
                    Decimal(2),
                    at(today),
                )
            ],
        )
        store.save_series("completions", "1h", at(day), at(day, 24), [], at(today))
    return Built(kept_from, frozenset(old), frozenset(kept | {held, running}), held, running)


def row_counts(url: str) -> dict[str, int]:
    """Rows in each table a prune deletes from."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                t: int(conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one())
                for t in PRUNED_TABLES
            }
    finally:
        engine.dispose()
