"""The transactional outbox and the notification log, on SQLite and (when set up) PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from recon_job.alerts import NotificationState
from recon_job.errors import StoreError
from recon_job.models import (
    AlertEvent,
    Comparison,
    Message,
    Metric,
    ReconResult,
    Status,
    Tolerance,
    Usage,
    Window,
)
from recon_job.store import Attempt, HistoryStore, OutboxItem, RunStatus

DAY = Window("daily", date(2026, 3, 14), date(2026, 3, 15))
T0 = datetime(2026, 3, 15, 6, 0, tzinfo=UTC)
A = '["2026-03-14","gpt-4o",null,null]'


def message(key: str, event: AlertEvent = "opened", group_key: str = DAY.key) -> Message:
    """A small rendered message, with a payload holding a Decimal and a nested list."""
    return Message(
        dedupe_key=key,
        event=event,
        group_key=group_key,
        subject=f"recon-job: {event} {group_key}",
        text="text body",
        html="<p>html &amp; body</p>",
        slack_text="*slack* body",
        payload={"version": 1, "difference": Decimal("0.10"), "groups": [{"model": "gpt-4o"}]},
    )


def item(
    key: str,
    channel: str = "email",
    *,
    run_id: int | None = None,
    event: AlertEvent = "opened",
    firing: frozenset[str] = frozenset({A}),
    suppressed: bool = False,
) -> OutboxItem:
    state = NotificationState(firing=firing, last_sent_at=T0, last_event=event)
    return OutboxItem(channel, message(key, event), run_id, state=state, suppressed=suppressed)


def _metric() -> Metric:
    return Metric(Decimal(1), Decimal(1), Decimal(0), Decimal(0), exceeds=False)


def _result(cost: Decimal = Decimal(1)) -> ReconResult:
    m = _metric()
    return ReconResult(
        window=DAY,
        status=Status.MISMATCH,
        tolerance=Tolerance(),
        local=Usage(cost=cost),
        openai=Usage(),
        comparison=Comparison(m, m, m, m, m, m),
        groups=(),
    )


def _count(url: str, table: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


# --- enqueueing with the run -------------------------------------------------------------------


def test_the_outbox_rows_are_committed_with_the_run(store: HistoryStore) -> None:
    run_id = store.start_run(DAY, started_at=T0, trigger="cli")
    store.finish_run(
        run_id,
        _result(),
        finished_at=T0,
        outbox=[item("k1", "email", run_id=run_id), item("k1", "slack", run_id=run_id)],
    )

    run = store.get_run(run_id)
    assert run is not None
    assert run.status is RunStatus.MISMATCH
    rows = [n.row for n in store.list_notifications()]
    assert [(r.channel, r.status, r.run_id) for r in rows] == [
        ("slack", "pending", run_id),
        ("email", "pending", run_id),
    ]
    # Every part comes back; the payload as JSON (a Decimal as its exact string).
    sent = message("k1")
    assert rows[0].message == Message(
        **{**sent.__dict__, "payload": {**sent.payload, "difference": "0.10"}}
    )
    assert rows[0].next_attempt_at == T0
    assert store.pending_count() == 2


def test_a_failure_inside_finish_run_leaves_neither_result_nor_outbox(
    db_url: str, store: HistoryStore
) -> None:
    run_id = store.start_run(DAY, started_at=T0, trigger="cli")
    # The second item refers to a run that does not exist: the insert fails after the first.
    with pytest.raises(StoreError, match=f"finish run {run_id}"):
        store.finish_run(
            run_id,
            _result(),
            finished_at=T0,
            outbox=[item("k1", run_id=run_id), item("k2", run_id=run_id + 1000)],
        )
    run = store.get_run(run_id)
    assert run is not None
    assert run.status is RunStatus.RUNNING
    assert run.local is None
    assert _count(db_url, "outbox") == 0

    with pytest.raises(StoreError):
        store.finish_run(
            run_id, _result(Decimal("NaN")), finished_at=T0, outbox=[item("k1", run_id=run_id)]
        )
    assert _count(db_url, "outbox") == 0


def test_a_failed_run_enqueues_its_fetch_failed_alert_in_the_same_transaction(
    store: HistoryStore,
) -> None:
    run_id = store.start_run(DAY, started_at=T0, trigger="cli")
    store.fail_run(
        run_id,
        reason="quota_exhausted",
        message="OpenAI refused",
        finished_at=T0,
        outbox=[item("f1", run_id=run_id, event="failed", firing=frozenset({"fetch_failed"}))],
    )
    (record,) = store.list_notifications()
    assert (record.row.event, record.row.status, record.row.run_id) == ("failed", "pending", run_id)


def test_the_same_alert_is_never_enqueued_twice(db_url: str, store: HistoryStore) -> None:
    first = store.start_run(DAY, started_at=T0, trigger="cli")
    store.finish_run(
        first, _result(), finished_at=T0, outbox=[item("k1", run_id=first), item("k1")]
    )
    second = store.start_run(DAY, started_at=T0, trigger="cli")
    store.finish_run(
        second,
        _result(),
        finished_at=T0,
        outbox=[item("k1", run_id=second), item("k1", "slack", run_id=second)],
    )
    assert store.enqueue([item("k1")], now=T0) == []

    rows = [n.row for n in store.list_notifications()]
    assert sorted((r.channel, r.run_id) for r in rows) == [("email", first), ("slack", second)]
    assert _count(db_url, "outbox") == 2
    run = store.get_run(second)
    assert run is not None
    assert run.status is RunStatus.MISMATCH


def test_a_suppressed_resolve_clears_the_notification_log_at_once(store: HistoryStore) -> None:
    assert store.notification_state(DAY.key, "email") is None
    cleared = NotificationState(frozenset(), frozenset({A}), None, "resolved")
    suppressed = OutboxItem("email", message("r1", "resolved"), state=cleared, suppressed=True)

    (outbox_id,) = store.enqueue([suppressed], now=T0)

    assert store.notification_state(DAY.key, "email") == cleared
    row = store.get_notification(outbox_id)
    assert row is not None
    assert row.status == "suppressed"
    assert store.pending_count() == 0
    assert store.claim_due(T0 + timedelta(days=1)) == []


# --- claiming ----------------------------------------------------------------------------------


def test_claim_takes_due_rows_oldest_first_with_a_lease(store: HistoryStore) -> None:
    ids = store.enqueue([item(f"k{i}") for i in range(3)], now=T0)
    later = store.enqueue([item("later")], now=T0 + timedelta(hours=1))

    claimed = store.claim_due(T0, lease=timedelta(seconds=60), limit=2)

    assert [r.id for r in claimed] == ids[:2]
    assert {r.status for r in claimed} == {"sending"}
    assert {r.claimed_until for r in claimed} == {T0 + timedelta(seconds=60)}
    assert {r.attempts for r in claimed} == {1}
    assert [r.id for r in store.claim_due(T0)] == ids[2:]
    assert store.claim_due(T0 + timedelta(seconds=59)) == []
    # An hour later the new row is due and the first three leases have long expired.
    assert [r.id for r in store.claim_due(T0 + timedelta(hours=1))] == [*ids, *later]


def test_an_expired_lease_is_reclaimed_and_a_live_one_is_not(store: HistoryStore) -> None:
    (outbox_id,) = store.enqueue([item("k1")], now=T0)
    assert [r.id for r in store.claim_due(T0, lease=timedelta(seconds=60))] == [outbox_id]

    # The relay that claimed it was killed: nobody else may take it before the lease ends.
    assert store.claim_due(T0 + timedelta(seconds=59)) == []
    (again,) = store.claim_due(T0 + timedelta(seconds=60), lease=timedelta(seconds=60))
    assert again.id == outbox_id
    assert again.attempts == 2
    assert again.claimed_until == T0 + timedelta(seconds=120)


def test_two_relays_claiming_at_once_get_disjoint_rows(open_store: Callable[..., Any]) -> None:
    first: HistoryStore = open_store()
    ids = first.enqueue([item(f"k{i}") for i in range(40)], now=T0)
    stores = [first, open_store(), open_store(), open_store()]
    barrier = threading.Barrier(len(stores))
    claimed: list[list[int]] = [[] for _ in stores]
    errors: list[BaseException] = []

    def _claim(index: int) -> None:
        barrier.wait()
        try:
            for _ in range(5):
                rows = stores[index].claim_due(T0, limit=3)
                claimed[index].extend(r.id for r in rows)
        except BaseException as e:  # collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=_claim, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    every = [outbox_id for ids_ in claimed for outbox_id in ids_]
    assert len(every) == len(set(every)), "a row was claimed twice"
    assert sorted(every) == ids


def test_release_puts_a_row_back_without_counting_an_attempt(store: HistoryStore) -> None:
    (outbox_id,) = store.enqueue([item("k1")], now=T0)
    store.claim_due(T0)
    store.release(outbox_id, next_attempt_at=T0 + timedelta(seconds=30), reason="rate_limited")

    row = store.get_notification(outbox_id)
    assert row is not None
    assert (row.status, row.attempts, row.claimed_until) == ("pending", 0, None)
    assert row.last_reason == "rate_limited"
    assert store.claim_due(T0 + timedelta(seconds=29)) == []
    assert len(store.claim_due(T0 + timedelta(seconds=30))) == 1


# --- recording deliveries ----------------------------------------------------------------------


def test_a_delivery_marks_the_row_sent_and_writes_the_notification_log(
    store: HistoryStore,
) -> None:
    (outbox_id,) = store.enqueue([item("k1")], now=T0)
    (row,) = store.claim_due(T0)
    sent_at = T0 + timedelta(seconds=2)

    status = store.record_delivery(
        outbox_id, Attempt("sent", new_state=row.delivered_state(sent_at)), now=sent_at
    )

    assert status == "sent"
    stored = store.get_notification(outbox_id)
    assert stored is not None
    assert (stored.status, stored.sent_at, stored.claimed_until) == ("sent", sent_at, None)
    assert store.notification_state(DAY.key, "email") == NotificationState(
        frozenset({A}), frozenset(), sent_at, "opened"
    )
    (record,) = store.list_notifications()
    assert record.attempt_count == 1
    assert store.pending_count() == 0

    # A later delivery overwrites the log (an upsert, not a second row).
    (second,) = store.enqueue([item("k2", event="repeat")], now=T0)
    store.claim_due(T0)
    newer = NotificationState(frozenset({A}), frozenset(), T0 + timedelta(days=1), "repeat")
    store.record_delivery(second, Attempt("sent", new_state=newer), now=T0 + timedelta(days=1))
    assert store.notification_state(DAY.key, "email") == newer


@pytest.mark.parametrize(
    ("outcome", "retry_at", "status"),
    [
        ("transient", T0 + timedelta(seconds=30), "pending"),
        ("transient", None, "dead"),
        ("permanent", None, "dead"),
        ("partial", None, "partial"),
    ],
)
def test_record_delivery_moves_the_row_on(
    store: HistoryStore, outcome: Any, retry_at: datetime | None, status: str
) -> None:
    (outbox_id,) = store.enqueue([item("k1")], now=T0)
    (row,) = store.claim_due(T0)
    state = row.delivered_state(T0)

    assert (
        store.record_delivery(
            outbox_id,
            Attempt(outcome, "smtp_550", "550 mailbox unavailable", retry_at, state),
            now=T0,
        )
        == status
    )

    stored = store.get_notification(outbox_id)
    assert stored is not None
    assert stored.status == status
    assert (stored.last_reason, stored.last_error) == ("smtp_550", "550 mailbox unavailable")
    if status == "pending":
        assert stored.next_attempt_at == retry_at
    # Only a delivery (a partial one included) writes the notification log.
    logged = store.notification_state(DAY.key, "email")
    assert (logged is not None) == (status == "partial")


def test_a_delivered_row_is_never_downgraded(store: HistoryStore) -> None:
    (outbox_id,) = store.enqueue([item("k1")], now=T0)
    store.claim_due(T0)
    store.record_delivery(outbox_id, Attempt("sent"), now=T0)
    assert store.record_delivery(outbox_id, Attempt("transient", retry_at=T0), now=T0) == "sent"
    (record,) = store.list_notifications()
    assert record.attempt_count == 2
    with pytest.raises(LookupError):
        store.record_delivery(12345, Attempt("sent"), now=T0)


def test_an_older_row_delivered_late_does_not_overwrite_a_newer_state(
    store: HistoryStore,
) -> None:
    old, new = store.enqueue([item("opened"), item("resolved", event="resolved")], now=T0)
    store.claim_due(T0)
    newest = NotificationState(frozenset(), frozenset({A}), T0, "resolved")
    store.record_delivery(new, Attempt("sent", new_state=newest), now=T0)
    stale = NotificationState(frozenset({A}), frozenset(), T0 + timedelta(minutes=5), "opened")
    store.record_delivery(old, Attempt("sent", new_state=stale), now=T0 + timedelta(minutes=5))
    assert store.notification_state(DAY.key, "email") == newest


def test_notifications_are_listed_newest_first_with_their_attempts(store: HistoryStore) -> None:
    first, second = store.enqueue([item("k1"), item("k2", "slack")], now=T0)
    store.claim_due(T0)
    store.record_delivery(first, Attempt("transient", error="timed out", retry_at=T0), now=T0)
    store.record_delivery(second, Attempt("sent"), now=T0)
    store.claim_due(T0)
    store.record_delivery(first, Attempt("transient", error="timed out", retry_at=T0), now=T0)

    records = store.list_notifications()
    assert [(r.row.id, r.attempt_count) for r in records] == [(second, 1), (first, 2)]
    assert records[1].row.last_error == "timed out"
    assert [r.row.id for r in store.list_notifications(limit=1)] == [second]
    assert store.pending_count() == 1
