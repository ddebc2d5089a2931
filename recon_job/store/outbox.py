"""The transactional outbox and the notification log (reliability.md §4.1 and §1.3).

A run's notifications are inserted in the same transaction as its result (``finish_run``,
``fail_run``), so a crash can lose neither without the other. A relay then claims due rows with
a lease (``claim_due``), sends them, and records each attempt (``record_delivery``); on delivery
the notification log — Alertmanager's nflog — is updated in that same transaction, and only then.
A crash between a send and its record leaves the row ``sending``; once the lease expires the next
relay claims it again: at-least-once, at most one duplicate per crash, recognisable by its
dedupe key.

Statuses: ``pending`` (due at ``next_attempt_at``), ``sending`` (claimed until
``claimed_until``), ``sent``, ``partial`` (some recipients refused: delivered, never resent),
``dead`` (permanent failure or out of attempts), ``suppressed`` (a ``resolved`` notice the
channel does not send, recorded so the notification log is cleared, as Alertmanager does).
``failed`` is reserved for rows given up by an operator.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import structlog
from sqlalchemy import Connection, Table, and_, func, insert, or_, select, update

from recon_job.alerts import NotificationState
from recon_job.models import AlertEvent
from recon_job.store.outbox_records import (
    DELIVERED,
    OPEN_STATUSES,
    Attempt,
    NotificationRecord,
    OutboxItem,
    OutboxRow,
    OutboxStatus,
    alerts_json,
    message_to_json,
    outbox_row,
)
from recon_job.store.schema import delivery_attempts, notification_log
from recon_job.store.schema import outbox as outbox_table

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql import Insert as PgInsert
    from sqlalchemy.dialects.sqlite import Insert as SqliteInsert

log = structlog.get_logger(__name__)

EVENT_ENQUEUED = "store.outbox.enqueued"
EVENT_DUPLICATE = "store.outbox.duplicate"
EVENT_CLAIMED = "store.outbox.claimed"
EVENT_DELIVERY_RECORDED = "store.outbox.delivery_recorded"


def _insert(conn: Connection, table: Table) -> PgInsert | SqliteInsert:
    """The dialect's INSERT, which knows ON CONFLICT (SQLite and PostgreSQL)."""
    # Imported here, each when used: a SQLite history never loads the PostgreSQL dialect.
    name = conn.dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    if name == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)
    raise NotImplementedError(f"the outbox needs SQLite or PostgreSQL, not {name}")


class OutboxStore:
    """The outbox and notification-log half of :class:`~recon_job.store.HistoryStore`."""

    if TYPE_CHECKING:

        def _write(self) -> AbstractContextManager[Connection]: ...
        def _read(self) -> AbstractContextManager[Connection]: ...
        def _errors(self, action: str) -> AbstractContextManager[None]: ...

    def enqueue(self, items: Sequence[OutboxItem], *, now: datetime) -> list[int]:
        """Enqueue notifications on their own (not with a run); return the new rows' ids.

        An item whose (channel, dedupe key) is already in the outbox is skipped.
        """
        if not items:
            return []  # no write transaction (on SQLite, no write lock) for nothing
        with self._errors("enqueue notifications"), self._write() as conn:
            return _enqueue(conn, items, now=now)

    def notification_state(self, group_key: str, channel: str) -> NotificationState | None:
        """The last notification delivered for ``group_key`` on ``channel``, or None."""
        query = select(notification_log).where(
            notification_log.c.group_key == group_key, notification_log.c.channel == channel
        )
        with self._errors("read the notification log"), self._read() as conn:
            entry = conn.execute(query).one_or_none()
            if entry is None:
                return None
            return NotificationState(
                firing=frozenset(json.loads(entry.firing)),
                resolved=frozenset(json.loads(entry.resolved)),
                last_sent_at=entry.last_sent_at,
                last_event=cast(AlertEvent | None, entry.last_event),
            )

    def claim_due(
        self, now: datetime, *, lease: timedelta = timedelta(seconds=60), limit: int = 100
    ) -> list[OutboxRow]:
        """Claim up to ``limit`` due rows for sending until ``now + lease``, oldest first.

        Due: ``pending`` with ``next_attempt_at <= now``, or ``sending`` whose lease expired (its
        relay crashed). Each claim counts as an attempt. Exclusive: on PostgreSQL the rows are
        locked ``FOR UPDATE SKIP LOCKED``, so concurrent relays get disjoint rows; on SQLite the
        ``BEGIN IMMEDIATE`` write transaction serialises the claims.
        """
        c = outbox_table.c
        due = or_(
            and_(c.status == "pending", c.next_attempt_at <= now),
            and_(c.status == "sending", c.claimed_until <= now),
        )
        query = (
            select(outbox_table)
            .where(due)
            .order_by(c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        claimed_until = now + lease
        with self._errors("claim due notifications"), self._write() as conn:
            rows = conn.execute(query).all()
            if rows:
                conn.execute(
                    update(outbox_table)
                    .where(c.id.in_([row.id for row in rows]))
                    .values(status="sending", claimed_until=claimed_until, attempts=c.attempts + 1)
                )
            claimed = [
                replace(
                    outbox_row(row),
                    status="sending",
                    claimed_until=claimed_until,
                    attempts=row.attempts + 1,
                )
                for row in rows
            ]
        if claimed:
            log.debug(EVENT_CLAIMED, count=len(claimed))
        return claimed

    def release(self, outbox_id: int, *, next_attempt_at: datetime, reason: str) -> None:
        """Put a claimed row back to ``pending`` unattempted (its channel asked us to wait)."""
        c = outbox_table.c
        with self._errors(f"release notification {outbox_id}"), self._write() as conn:
            conn.execute(
                update(outbox_table)
                .where(c.id == outbox_id, c.status == "sending")
                .values(
                    status="pending",
                    next_attempt_at=next_attempt_at,
                    claimed_until=None,
                    # Not an attempt: the claim counted one, so take it back.
                    attempts=c.attempts - 1,
                    last_reason=reason,
                )
            )

    def record_delivery(self, outbox_id: int, attempt: Attempt, *, now: datetime) -> OutboxStatus:
        """Record one attempt at ``now`` and move the row on; return its new status.

        ``sent``/``partial``: delivered (a partial delivery reached some recipients and is never
        resent), and ``attempt.new_state`` is written to the notification log in the same
        transaction. ``transient``: back to ``pending`` at ``attempt.retry_at``, or ``dead`` when
        it is None (out of attempts). ``permanent``: ``dead``. A row already delivered stays
        delivered. ``attempt.error`` must be short and redacted: it is stored as given.
        """
        outcome, reason, error = attempt.outcome, attempt.reason, attempt.error
        retry_at, new_state = attempt.retry_at, attempt.new_state
        this = outbox_table.c.id == outbox_id
        with self._errors(f"record a delivery of notification {outbox_id}"), self._write() as conn:
            row = conn.execute(select(outbox_table).where(this).with_for_update()).one_or_none()
            if row is None:
                raise LookupError(f"there is no notification {outbox_id} in the outbox")
            conn.execute(
                insert(delivery_attempts).values(
                    outbox_id=outbox_id,
                    attempted_at=now,
                    outcome=outcome,
                    reason=reason,
                    error=error,
                )
            )
            status = cast(OutboxStatus, row.status)
            if status not in DELIVERED:
                changes: dict[str, Any] = {
                    "claimed_until": None,
                    "last_reason": reason,
                    "last_error": error,
                }
                if outcome in DELIVERED:
                    status = cast(OutboxStatus, outcome)
                    changes["sent_at"] = now
                elif outcome == "transient" and retry_at is not None:
                    status = "pending"
                    changes["next_attempt_at"] = retry_at
                    if not attempt.counted:
                        # The claim counted it; a rate limit is not one of the row's tries.
                        changes["attempts"] = outbox_table.c.attempts - 1
                else:
                    status = "dead"
                conn.execute(update(outbox_table).where(this).values(status=status, **changes))
                if outcome in DELIVERED and new_state is not None:
                    _write_state(conn, row.group_key, row.channel, new_state, outbox_id)
        log.debug(EVENT_DELIVERY_RECORDED, outbox_id=outbox_id, outcome=outcome, status=status)
        return status

    def list_notifications(self, limit: int = 50) -> list[NotificationRecord]:
        """The ``limit`` newest outbox rows with their attempt counts, newest first."""
        if limit < 0:
            raise ValueError(f"limit must not be negative, got {limit}")
        counts = (
            select(delivery_attempts.c.outbox_id, func.count().label("n"))
            .group_by(delivery_attempts.c.outbox_id)
            .subquery()
        )
        query = (
            select(outbox_table, func.coalesce(counts.c.n, 0).label("attempt_count"))
            .outerjoin(counts, counts.c.outbox_id == outbox_table.c.id)
            .order_by(outbox_table.c.id.desc())
            .limit(limit)
        )
        with self._errors("list notifications"), self._read() as conn:
            return [
                NotificationRecord(outbox_row(row), int(row.attempt_count))
                for row in conn.execute(query)
            ]

    def get_notification(self, outbox_id: int) -> OutboxRow | None:
        """One outbox row, or None."""
        query = select(outbox_table).where(outbox_table.c.id == outbox_id)
        with self._errors(f"read notification {outbox_id}"), self._read() as conn:
            row = conn.execute(query).one_or_none()
            return outbox_row(row) if row is not None else None

    def pending_count(self) -> int:
        """How many notifications still wait to be sent (``pending`` or ``sending``)."""
        query = (
            select(func.count())
            .select_from(outbox_table)
            .where(outbox_table.c.status.in_(OPEN_STATUSES))
        )
        with self._errors("count pending notifications"), self._read() as conn:
            return int(conn.scalar(query) or 0)


def enqueue_in(conn: Connection, items: Sequence[OutboxItem], *, now: datetime) -> list[int]:
    """Insert outbox rows inside the caller's transaction (``finish_run``/``fail_run``)."""
    return _enqueue(conn, items, now=now)


def _enqueue(conn: Connection, items: Sequence[OutboxItem], *, now: datetime) -> list[int]:
    ids: list[int] = []
    for item in items:
        message = item.message
        state = item.state
        values: dict[str, Any] = {
            "run_id": item.run_id,
            "group_key": message.group_key,
            "channel": item.channel,
            "event": message.event,
            "dedupe_key": message.dedupe_key,
            "subject": message.subject,
            "message": message_to_json(message),
            "firing": alerts_json(state.firing if state is not None else None),
            "resolved": alerts_json(state.resolved if state is not None else None),
            "status": "suppressed" if item.suppressed else "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        # ON CONFLICT DO NOTHING: the same alert decided again (a re-run, a second process) is
        # skipped silently instead of failing the run's transaction.
        statement = (
            _insert(conn, outbox_table)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["channel", "dedupe_key"])
            .returning(outbox_table.c.id)
        )
        new_id = conn.execute(statement).scalar()
        if new_id is None:
            log.debug(EVENT_DUPLICATE, channel=item.channel, dedupe_key=message.dedupe_key)
            continue
        ids.append(new_id)
        if item.suppressed and state is not None:
            _write_state(conn, message.group_key, item.channel, state, new_id)
        log.debug(
            EVENT_ENQUEUED,
            outbox_id=new_id,
            channel=item.channel,
            alert_event=message.event,
            suppressed=item.suppressed,
        )
    return ids


def _write_state(
    conn: Connection, group_key: str, channel: str, state: NotificationState, outbox_id: int
) -> None:
    """Upsert the notification log, unless a newer outbox row already wrote it.

    Rows can be delivered out of order (one was retried while a newer one went through); the
    newest decision wins, so an old ``opened`` delivered late cannot undo a later ``resolved``.
    """
    values = {
        "group_key": group_key,
        "channel": channel,
        "firing": alerts_json(state.firing),
        "resolved": alerts_json(state.resolved),
        "last_sent_at": state.last_sent_at,
        "last_event": state.last_event,
        "outbox_id": outbox_id,
    }
    statement = _insert(conn, notification_log).values(**values)
    excluded = statement.excluded
    statement = statement.on_conflict_do_update(
        index_elements=["group_key", "channel"],
        set_={name: excluded[name] for name in values if name not in ("group_key", "channel")},
        where=or_(
            notification_log.c.outbox_id.is_(None),
            notification_log.c.outbox_id <= excluded.outbox_id,
        ),
    )
    conn.execute(statement)
