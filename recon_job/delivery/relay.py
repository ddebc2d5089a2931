"""The outbox relay: send due notifications through their channels and record every attempt.

One pass (:func:`relay`) claims the due outbox rows with a lease and sends each through its
channel's :class:`~recon_job.notify.base.Transport`. The rules, from reliability.md §4:

* **Isolation.** Each row is sent on its own; one failing channel never stops the others
  (Alertmanager's per-integration fan-out; healthchecks' ``Channel.notify``). Even an exception
  that is not a ``NotifyError`` is caught, recorded as transient and logged.
* **Rate limits defer, never loop** (§4.2, Alertmanager PR #2128). After a ``retry_after``
  (Slack 429) nothing more goes to that channel in this pass; its rows wait until
  ``now + retry_after`` (capped), and a later pass sends them. A rate-limited try is recorded
  but is not one of the row's ``max_attempts``.
* **Transient errors back off** per row (30 s × 2^(attempts−1), at most 1 h) until
  ``max_attempts``; then the row is ``dead``, like a permanent error.
* **A dead channel is reported through the others**: one ``channel_failing`` message per failing
  channel, per other channel and per UTC day (its own dedupe key), rendered from the templates in
  ``recon_job/notify/templates/channel_failing/``.
* **At-least-once.** The delivery is recorded after the transport returned; a crash in between
  (fault point ``after_send``) leaves the row ``sending`` and the next pass after its lease sends
  it again, with the same dedupe key so the duplicate is recognisable (R23).
* **A stop is not a delivery error.** The pass checks ``policy.stop`` before each row and gives
  the rest back (``pending``, unattempted); ``Interrupted`` (the shutdown budget cutting a hung
  send short) is never caught as a channel's failure: the row is given back and the exception
  goes on, so the process exits within its budget (issue 9 item 20).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from recon_job.errors import Interrupted, NotifyError, ReconError
from recon_job.faults import fault_point
from recon_job.logconfig import REDACTOR
from recon_job.models import AlertEvent, Message
from recon_job.notify.base import Transport
from recon_job.store import Attempt, OutboxItem, OutboxRow, OutboxStatus, Outcome

if TYPE_CHECKING:
    from recon_job.store import HistoryStore

log = structlog.get_logger(__name__)

EVENT_SENT = "notify.relay.sent"
EVENT_PARTIAL = "notify.relay.partial"
EVENT_RETRY = "notify.relay.retry_scheduled"
EVENT_RATE_LIMITED = "notify.relay.rate_limited"
EVENT_DEAD = "notify.relay.dead"
EVENT_UNEXPECTED = "notify.relay.unexpected_error"
EVENT_LEASE_EXPIRED = "notify.relay.lease_expired"
EVENT_CHANNEL_FAILING = "notify.relay.channel_failing_enqueued"
EVENT_FINISHED = "notify.relay.finished"
EVENT_STOPPED = "notify.relay.stopped"

#: The longest a channel's ``Retry-After`` defers its rows (reliability.md §4.2).
RETRY_AFTER_CAP = timedelta(seconds=300)
#: Stored errors are cut to this many characters.
ERROR_LIMIT = 500
#: Reason recorded for a row whose channel is no longer configured.
NOT_CONFIGURED = "channel_not_configured"
#: Reason recorded for a row given back unsent because the process is stopping.
STOPPING = "shutdown"


def exponential_backoff(attempts: int) -> timedelta:
    """Wait before retrying a row that failed ``attempts`` times: 30 s, doubling, at most 1 h."""
    seconds = 30 * 2 ** min(max(attempts - 1, 0), 20)
    return min(timedelta(seconds=seconds), timedelta(hours=1))


@dataclass(frozen=True)
class RelayPolicy:
    """How a relay pass claims rows and treats failures."""

    #: Delivery attempts per row before it is given up (``dead``).
    max_attempts: int = 8
    #: The wait before retrying a row that failed N times.
    backoff: Callable[[int], timedelta] = exponential_backoff
    #: The longest a channel's ``Retry-After`` defers its rows.
    retry_after_cap: timedelta = RETRY_AFTER_CAP
    #: How long a claimed row is this pass's before another relay may reclaim it.
    lease: timedelta = timedelta(seconds=60)
    #: Rows claimed per round.
    limit: int = 100
    #: Set when the process is stopping (SIGTERM): the rows not tried yet are given back.
    stop: threading.Event | None = None


#: The relay's rules unless a caller says otherwise.
DEFAULT_POLICY = RelayPolicy()


@dataclass(frozen=True)
class RelayOutcome:
    """What one pass did with one outbox row."""

    outbox_id: int
    channel: str
    event: AlertEvent
    #: The row's status afterwards: ``sent``, ``partial``, ``pending`` (retry later), ``sending``
    #: (its lease ran out before it was tried: reclaimed later) or ``dead``.
    status: OutboxStatus
    #: Machine-readable reason of a failure (``rate_limited``, ``channel_not_configured`` ...).
    reason: str | None = None


@dataclass(frozen=True)
class RelayReport:
    """The outcome of one relay pass, row by row."""

    outcomes: tuple[RelayOutcome, ...] = ()
    #: ``channel_failing`` messages enqueued by this pass.
    channel_failing: int = 0

    def _count(self, *statuses: str) -> int:
        return sum(1 for o in self.outcomes if o.status in statuses)

    @property
    def sent(self) -> int:
        """Rows delivered to every recipient."""
        return self._count("sent")

    @property
    def partial(self) -> int:
        """Rows delivered to some recipients only (never resent)."""
        return self._count("partial")

    @property
    def deferred(self) -> int:
        """Rows left for a later pass (transient error, rate limit, lease ran out)."""
        return self._count("pending", "sending")

    @property
    def dead(self) -> int:
        """Rows given up (permanent error, out of attempts, channel not configured)."""
        return self._count("dead")

    def alerts(self) -> list[dict[str, Any]]:
        """The rows as JSON-ready entries (the CLI's ``alerts`` list)."""
        return [
            {
                "outbox_id": o.outbox_id,
                "channel": o.channel,
                "event": o.event,
                "status": o.status,
                "reason": o.reason,
            }
            for o in self.outcomes
        ]


def channel_failing_message(
    channel: str, reason: str, *, error: str, target: str, day: date
) -> Message:
    """The plain message telling ``target`` that ``channel`` cannot deliver (no secrets).

    Rendered from the package's ``channel_failing/`` templates (the HTML part autoescaped, the
    Slack part mrkdwn-escaped). ``error`` comes from the transport's ``NotifyError``, whose
    message never holds a secret.
    Its dedupe key is one per (failing channel, target channel, UTC day), so a channel that keeps
    failing is reported once a day, not once per row.
    """
    reason = " ".join(reason.split()) or "unknown"
    key_text = json.dumps(["channel_failing", channel, target, day.isoformat()])
    key = hashlib.sha256(key_text.encode("utf-8")).hexdigest()[:32]
    # Imported here: only a failing channel is told about (the templates' renderer).
    from recon_job.notify.render import CHANNEL_FAILING_TEMPLATES, render_parts

    parts = render_parts(
        CHANNEL_FAILING_TEMPLATES, {"channel": channel, "reason": reason, "error": error}
    )
    return Message(
        dedupe_key=key,
        event="channel_failing",
        group_key=f"channel:{channel}",
        subject=parts.subject,
        text=parts.text,
        html=parts.html,
        slack_text=parts.slack_text,
        payload={
            "version": 1,
            "event": "channel_failing",
            "channel": channel,
            "reason": reason,
            "error": error,
            "dedupe_key": key,
        },
    )


def relay(
    store: HistoryStore,
    transports: Mapping[str, Transport],
    *,
    now: datetime,
    clock: Callable[[], datetime],
    policy: RelayPolicy = DEFAULT_POLICY,
) -> RelayReport:
    """Send every outbox row due at ``now`` through ``transports`` (channel -> transport).

    ``clock`` gives the time of each attempt (rows are sent one after another); ``policy``
    says how many attempts a row gets, how long it waits between them and how rows are claimed.
    Returns what happened to each claimed row. Database errors propagate as ``StoreError``; a
    row whose delivery could not be recorded stays ``sending`` and is retried after its lease.
    """
    if policy.stop is not None and policy.stop.is_set():
        return RelayReport()
    pass_ = _Pass(store, transports, clock, policy)
    pass_.handle_all(store.claim_due(now, lease=policy.lease, limit=policy.limit))
    if pass_.channel_failing:
        # Tell the other channels now, not at the next run (a day later for a daily job). One
        # extra round only: a notice that fails in turn waits for the next pass.
        pass_.handle_all(store.claim_due(clock(), lease=policy.lease, limit=policy.limit))
    report = RelayReport(tuple(pass_.outcomes), channel_failing=pass_.channel_failing)
    log.info(
        EVENT_FINISHED,
        sent=report.sent,
        partial=report.partial,
        deferred=report.deferred,
        dead=report.dead,
        channel_failing=report.channel_failing,
    )
    return report


class _Pass:
    """The state of one relay pass: outcomes so far and the channels told to wait."""

    def __init__(
        self,
        store: HistoryStore,
        transports: Mapping[str, Transport],
        clock: Callable[[], datetime],
        policy: RelayPolicy,
    ) -> None:
        self.store = store
        self.transports = transports
        self.clock = clock
        self.policy = policy
        self.outcomes: list[RelayOutcome] = []
        self.channel_failing = 0
        #: Channel -> until when it asked us to wait (a 429's Retry-After).
        self.deferred: dict[str, datetime] = {}

    def handle_all(self, rows: list[OutboxRow]) -> None:
        """Handle the claimed ``rows`` in order; on ``Interrupted`` give the rest back."""
        for index, row in enumerate(rows):
            try:
                self.handle(row)
            except Interrupted:
                for rest in rows[index + 1 :]:
                    self._give_back(rest)
                raise

    def handle(self, row: OutboxRow) -> None:
        stop = self.policy.stop
        if stop is not None and stop.is_set():
            self._give_back(row)
            return
        transport = self.transports.get(row.channel)
        if transport is None:
            self._finish(row, "permanent", NOT_CONFIGURED, f"{row.channel} is not configured")
            return
        if row.channel in self.deferred:
            until = self.deferred[row.channel]
            self.store.release(row.id, next_attempt_at=until, reason="rate_limited")
            self._outcome(row, "pending", "rate_limited")
            return
        started = self.clock()
        if row.claimed_until is not None and started >= row.claimed_until:
            # Another relay may own it by now; leave it to be reclaimed rather than race it.
            log.warning(EVENT_LEASE_EXPIRED, outbox_id=row.id, channel=row.channel)
            self._outcome(row, "sending", "lease_expired")
            return
        try:
            transport.notify(row.message)
        except Interrupted:
            # The shutdown budget cut a hung send short: not the channel's failure. The row goes
            # back (it may have arrived: its dedupe key tells a duplicate) and the stop goes on.
            self._give_back(row)
            raise
        except NotifyError as e:
            self._failed(row, e)
            return
        except Exception as e:
            # A bug in a channel must not stop the others. Only the type is recorded: the
            # text of an arbitrary exception may hold a URL with a secret in it.
            log.error(
                EVENT_UNEXPECTED, outbox_id=row.id, channel=row.channel, error=type(e).__name__
            )
            self._transient(row, "unexpected_error", f"unexpected {type(e).__name__} in transport")
            return
        fault_point("after_send")
        self._finish(row, "sent", None, None)

    def _failed(self, row: OutboxRow, error: NotifyError) -> None:
        message = _short(error.message)
        if getattr(error, "delivered", False):
            # Some recipients got it (smtplib's refused-recipients dict): resending would
            # duplicate it for them, so it counts as delivered (R29).
            self._finish(row, "partial", error.reason, message)
            return
        if error.permanent:
            self._finish(row, "permanent", error.reason, message)
            return
        if error.retry_after is not None:
            wait = min(timedelta(seconds=max(error.retry_after, 0.0)), self.policy.retry_after_cap)
            until = self.clock() + wait
            self.deferred[row.channel] = until
            log.warning(
                EVENT_RATE_LIMITED, outbox_id=row.id, channel=row.channel, seconds=wait.seconds
            )
            self._finish(row, "transient", error.reason, message, retry_at=until, counted=False)
            return
        self._transient(row, error.reason, message)

    def _transient(self, row: OutboxRow, reason: str, error: str) -> None:
        retry_at = None
        if row.attempts < self.policy.max_attempts:
            retry_at = self.clock() + self.policy.backoff(row.attempts)
        self._finish(row, "transient", reason, error, retry_at=retry_at)

    def _finish(  # noqa: PLR0913 -- the attempt's fields, keyword-only past the outcome
        self,
        row: OutboxRow,
        outcome: Outcome,
        reason: str | None,
        error: str | None,
        *,
        retry_at: datetime | None = None,
        counted: bool = True,
    ) -> None:
        now = self.clock()
        delivered = outcome in ("sent", "partial")
        attempt = Attempt(
            outcome,
            reason,
            error,
            retry_at=retry_at,
            new_state=row.delivered_state(now) if delivered else None,
            counted=counted,
        )
        status = self.store.record_delivery(row.id, attempt, now=now)
        fields = {"outbox_id": row.id, "channel": row.channel, "alert_event": row.event}
        if status == "sent":
            log.info(EVENT_SENT, **fields)
        elif status == "partial":
            log.warning(EVENT_PARTIAL, reason=reason, **fields)
        elif status == "pending":
            log.warning(EVENT_RETRY, reason=reason, attempts=row.attempts, **fields)
        elif status == "dead":
            log.error(EVENT_DEAD, reason=reason, attempts=row.attempts, **fields)
            if reason != NOT_CONFIGURED:
                gave_up = outcome == "transient"
                self._report_failing(row, reason or "unknown", error or "", gave_up=gave_up)
        self._outcome(row, status, reason)

    def _report_failing(self, row: OutboxRow, reason: str, error: str, *, gave_up: bool) -> None:
        if gave_up:
            reason = f"{reason} (gave up after {row.attempts} attempts)"
        now = self.clock()
        items = [
            OutboxItem(
                channel=target,
                message=channel_failing_message(
                    row.channel, reason, error=error, target=target, day=now.date()
                ),
            )
            for target in self.transports
            if target != row.channel
        ]
        enqueued = self.store.enqueue(items, now=now)
        self.channel_failing += len(enqueued)
        if enqueued:
            log.warning(
                EVENT_CHANNEL_FAILING, channel=row.channel, reason=reason, count=len(enqueued)
            )

    def _give_back(self, row: OutboxRow) -> None:
        """Put a claimed row back to ``pending`` for the next pass: the process is stopping."""
        try:
            self.store.release(row.id, next_attempt_at=self.clock(), reason=STOPPING)
        except ReconError:
            return  # the store is failing too: the row is reclaimed when its lease expires
        log.info(EVENT_STOPPED, outbox_id=row.id, channel=row.channel)
        self._outcome(row, "pending", STOPPING)

    def _outcome(self, row: OutboxRow, status: OutboxStatus, reason: str | None) -> None:
        self.outcomes.append(RelayOutcome(row.id, row.channel, row.event, status, reason))


def _short(text: str) -> str:
    """One line, at most ``ERROR_LIMIT`` characters, every known secret masked.

    What is stored is shown again (``alerts list``, the ``channel_failing`` notice): a
    transport masks its own URL in its errors, and this masks every secret of the settings
    (each URL's path, query and token-like parts: :func:`recon_job.logconfig.secret_parts`)
    once more, whatever channel's error quotes it (issue 9 item 21).
    """
    line = " ".join(REDACTOR.scrub(text).split())
    return line if len(line) <= ERROR_LIMIT else line[: ERROR_LIMIT - 1] + "…"
