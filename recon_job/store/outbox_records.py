"""What the outbox hands back and takes: frozen records, and the stored form of a ``Message``.

A ``Message`` is stored as JSON holding every part of it (no secrets: it is rendered that way),
so the relay can rebuild and send it long after the run that rendered it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, cast, get_args

from sqlalchemy import Row

from recon_job.alerts import NotificationState
from recon_job.models import AlertEvent, Message

OutboxStatus = Literal["pending", "sending", "sent", "partial", "failed", "dead", "suppressed"]
OUTBOX_STATUSES: tuple[OutboxStatus, ...] = get_args(OutboxStatus)
#: What one delivery attempt came to.
Outcome = Literal["sent", "partial", "transient", "permanent"]
#: Rows a relay still has to send.
OPEN_STATUSES = ("pending", "sending")
#: Statuses of a delivered row (a partial delivery counts: it is never resent).
DELIVERED = ("sent", "partial")


@dataclass(frozen=True)
class OutboxItem:
    """A notification to enqueue with a run (or on its own, see ``enqueue``)."""

    #: ``email``, ``slack`` or ``webhook``.
    channel: str
    #: The rendered message; its ``dedupe_key`` is the row's dedupe key.
    message: Message
    #: The run it belongs to, if any.
    run_id: int | None = None
    #: The notification-log state to store once delivered (None: the log is not touched).
    state: NotificationState | None = None
    #: True: record it as ``suppressed`` and store ``state`` at once, sending nothing.
    suppressed: bool = False


@dataclass(frozen=True)
class Attempt:
    """The outcome of one delivery attempt, as the relay records it."""

    #: ``sent``, ``partial`` (some recipients got it), ``transient`` or ``permanent``.
    outcome: Outcome
    #: A short machine-readable reason (``smtp_550``, ``rate_limited`` ...).
    reason: str | None = None
    #: A short, redacted error text: stored as given.
    error: str | None = None
    #: When to retry a transient failure; None: out of attempts (the row is ``dead``).
    retry_at: datetime | None = None
    #: The notification-log state to write with a delivery, in the same transaction.
    new_state: NotificationState | None = None
    #: False for a rate limit (a 429's Retry-After): recorded, but not one of the row's
    #: ``max_attempts``, so a receiver slowing us down never uses up a drift alert's tries.
    counted: bool = True


@dataclass(frozen=True)
class OutboxRow:
    """One stored outbox row, detached from the database."""

    id: int
    run_id: int | None
    group_key: str
    channel: str
    event: AlertEvent
    dedupe_key: str
    subject: str
    message: Message
    status: OutboxStatus
    #: How many times a relay claimed it.
    attempts: int
    next_attempt_at: datetime
    claimed_until: datetime | None
    created_at: datetime
    sent_at: datetime | None
    last_reason: str | None
    last_error: str | None
    #: The notification-log state to store on delivery (None for channel_failing/test rows).
    firing: frozenset[str] | None
    resolved: frozenset[str] | None

    def delivered_state(self, now: datetime) -> NotificationState | None:
        """The notification-log state to store when this row is delivered at ``now``."""
        if self.firing is None:
            return None
        return NotificationState(
            firing=self.firing,
            resolved=self.resolved or frozenset(),
            last_sent_at=now,
            last_event=self.event,
        )


@dataclass(frozen=True)
class NotificationRecord:
    """An outbox row as ``recon-job alerts list`` shows it."""

    row: OutboxRow
    #: Delivery attempts recorded for it.
    attempt_count: int


def message_to_json(message: Message) -> str:
    """Every part of a message as JSON text (the webhook payload's Decimals become strings)."""
    return json.dumps(
        {
            "dedupe_key": message.dedupe_key,
            "event": message.event,
            "group_key": message.group_key,
            "subject": message.subject,
            "text": message.text,
            "html": message.html,
            "slack_text": message.slack_text,
            "payload": message.payload,
        },
        sort_keys=True,
        separators=(",", ":"),
        default=_json_default,
    )


def message_from_json(text: str) -> Message:
    """Rebuild the ``Message`` stored by :func:`message_to_json`."""
    data = json.loads(text)
    return Message(
        dedupe_key=data["dedupe_key"],
        event=data["event"],
        group_key=data["group_key"],
        subject=data["subject"],
        text=data["text"],
        html=data["html"],
        slack_text=data["slack_text"],
        payload=data.get("payload") or {},
    )


def _json_default(value: object) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store a {type(value).__name__} in a message payload")


def alerts_json(alerts: frozenset[str] | None) -> str | None:
    """A set of alert fingerprints as a sorted JSON list (None stays None)."""
    return None if alerts is None else json.dumps(sorted(alerts), separators=(",", ":"))


def _alerts(text: str | None) -> frozenset[str] | None:
    return None if text is None else frozenset(json.loads(text))


def outbox_row(row: Row[Any]) -> OutboxRow:
    """Build an ``OutboxRow`` from an ``outbox`` row."""
    return OutboxRow(
        id=row.id,
        run_id=row.run_id,
        group_key=row.group_key,
        channel=row.channel,
        event=cast(AlertEvent, row.event),
        dedupe_key=row.dedupe_key,
        subject=row.subject,
        message=message_from_json(row.message),
        status=cast(OutboxStatus, row.status),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        claimed_until=row.claimed_until,
        created_at=row.created_at,
        sent_at=row.sent_at,
        last_reason=row.last_reason,
        last_error=row.last_error,
        firing=_alerts(row.firing),
        resolved=_alerts(row.resolved),
    )
