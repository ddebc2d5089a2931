"""When to notify: Prometheus Alertmanager's dedup rules, applied to reconciliation results.

Pure: no I/O, and the clock is passed in. Per alert group (``Window.key``: the job kind and its
period) and per channel, the notification log keeps a :class:`NotificationState` — the firing and
resolved alerts last *delivered* and when. :func:`decide` compares the alerts of a new run with
that state using exactly Alertmanager's ``needsUpdate`` (``notify/dedup_stage.go``,
reliability.md §1.1):

1. no entry: notify if anything fires (``opened``); only resolved alerts: stay quiet;
2. the firing set is not a subset of the last notified one: notify (``updated``, or ``opened``
   when the last notification had no drift firing);
3. nothing fires now: notify only if the last notification had alerts firing (``resolved``).
   Whether the channel *sends* it depends on its ``send_resolved``, but the state is cleared
   either way, so a later drift is a fresh ``opened``;
4. ``send_resolved`` and some alert resolved since the last notification: notify (``updated``:
   some drift remains, since rule 3 already took the all-clear case);
5. else notify only once ``repeat_interval`` has passed since the last send (``repeat``).

One inhibition rule, as in reliability.md §1.3: a run that could not fetch OpenAI's figures fires
the single alert ``fetch_failed`` and mutes the drift alerts of its group (a failed fetch is not
zero usage). Drift alerts the receiver already knows about are carried through the failure
unchanged — a failed fetch says nothing about them — so the recovery neither re-opens nor
resolves them; it only resolves ``fetch_failed``. Groups on unsettled days (PENDING) are treated
the same way: an alert firing for them keeps firing until the day settles (reliability R13).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

from recon_job.families import COMPLETIONS
from recon_job.models import AlertEvent, ReconResult, Status, UsageKey, WindowKind

#: The alert a run that could not fetch OpenAI's figures fires instead of any drift alert.
FETCH_FAILED = "fetch_failed"
#: The alert for drift visible only in the window's totals (many small drifts adding up).
TOTAL_DRIFT = "total"

#: Alertmanager's per-integration defaults (configuration.md ``<email_config>``,
#: ``<slack_config>``, ``<webhook_config>``): only the webhook sends resolved notices.
DEFAULT_SEND_RESOLVED: Mapping[str, bool] = {"email": False, "slack": False, "webhook": True}


def default_repeat_interval(window_kind: WindowKind) -> timedelta:
    """Re-notify a persisting drift once per period: 24 h for daily windows, 30 days otherwise."""
    if window_kind == "daily":
        return timedelta(hours=24)
    return timedelta(days=30)


@dataclass(frozen=True)
class AlertPolicy:
    """How often and about what each channel is notified."""

    #: How long a persisting, unchanged alert stays quiet before it is sent again.
    repeat_interval: timedelta = timedelta(hours=24)
    #: Channel -> whether it is sent ``resolved`` notices; channels not listed fall back to
    #: :data:`DEFAULT_SEND_RESOLVED`, then to False. Config overrides per channel.
    send_resolved: Mapping[str, bool] = field(default_factory=lambda: dict(DEFAULT_SEND_RESOLVED))
    #: Send a ``summary`` once per group when a window is reconciled (opt-in all-clear report).
    summaries: bool = False

    def sends_resolved(self, channel: str) -> bool:
        """Whether ``channel`` is sent ``resolved`` notices."""
        return self.send_resolved.get(channel, DEFAULT_SEND_RESOLVED.get(channel, False))


@dataclass(frozen=True)
class NotificationState:
    """What the notification log keeps per (group_key, channel): the last delivered notification.

    Written only after a successful send (Alertmanager's ``SetNotifiesStage`` runs after its
    ``RetryStage``), or when a ``resolved`` notice is suppressed by ``send_resolved: false``.
    """

    #: Alert fingerprints firing when the last notification was sent.
    firing: frozenset[str] = frozenset()
    #: Alert fingerprints resolved when the last notification was sent.
    resolved: frozenset[str] = frozenset()
    #: Aware UTC time of the last delivery; None if it was never delivered (a suppressed resolve).
    last_sent_at: datetime | None = None
    #: The event of the last notification.
    last_event: AlertEvent | None = None


@dataclass(frozen=True)
class AlertSets:
    """The alerts of one run as seen by one channel."""

    #: Alert fingerprints firing now (ignored when ``failed``: the drift is inhibited).
    firing: frozenset[str]
    #: Alert fingerprints the channel last heard firing that no longer fire.
    resolved: frozenset[str]
    #: The run could not get OpenAI's figures.
    failed: bool = False
    #: Every day of the window is settled (a ``summary`` waits for that).
    settled: bool = True


@dataclass(frozen=True)
class Notification:
    """One decision for one channel: what to enqueue and the state to store once delivered."""

    group_key: str
    channel: str
    event: AlertEvent
    #: Stable key of this notification (see :func:`dedupe_key`).
    dedupe_key: str
    #: False for a ``resolved`` notice the channel does not send: store it as ``suppressed`` and
    #: write ``state`` at once (Alertmanager still clears its notification log then).
    deliver: bool
    #: The state to store after delivery (its ``last_sent_at`` is replaced by the send time).
    state: NotificationState


def fingerprint(key: UsageKey) -> str:
    """A drifting group's stable alert identity: JSON of (day, model, project, API key), and
    the family when it is not completions (so a completions group keeps the identity it had
    before families, and the same model drifting in two families is two alerts)."""
    parts: list[str | None] = [key.day.isoformat(), key.model, key.project_id, key.api_key_id]
    if key.family != COMPLETIONS:
        parts.append(key.family)
    return json.dumps(parts, separators=(",", ":"))


def fingerprint_day(alert: str) -> date | None:
    """The UTC day of a group fingerprint; None for ``fetch_failed``, ``total`` and the like."""
    if not alert.startswith("["):
        return None
    return date.fromisoformat(json.loads(alert)[0])


def firing(result: ReconResult) -> frozenset[str]:
    """The alerts a result fires: its MISMATCH groups, or ``total`` if only the totals drift."""
    alerts = {fingerprint(g.key) for g in result.mismatches}
    if result.status is Status.MISMATCH and not alerts:
        alerts.add(TOTAL_DRIFT)
    return frozenset(alerts)


def alert_sets(result: ReconResult, state: NotificationState | None) -> AlertSets:
    """Firing and resolved alerts of a successful run, relative to a channel's last state.

    An alert last notified as firing whose group is now PENDING (an unsettled day) keeps firing:
    unsettled data neither resolves nor re-opens it (R13). Every other alert last notified as
    firing and not firing now is resolved — including ``fetch_failed`` once a run succeeds.
    """
    now_firing = set(firing(result))
    previous = state.firing if state is not None else frozenset()
    pending_days = set(result.pending_days)
    pending_days.update(g.key.day for g in result.groups if g.status is Status.PENDING)
    for alert in previous - now_firing:
        day = fingerprint_day(alert)
        unsettled = day in pending_days if day is not None else False
        if alert == TOTAL_DRIFT and result.status is Status.PENDING:
            unsettled = True
        if unsettled:
            now_firing.add(alert)
    current = frozenset(now_firing)
    return AlertSets(
        firing=current,
        resolved=frozenset(previous - current),
        settled=result.status is Status.RECONCILED,
    )


def _drift(alerts: frozenset[str]) -> frozenset[str]:
    return alerts - {FETCH_FAILED}


def _effective(
    state: NotificationState | None, run: AlertSets
) -> tuple[frozenset[str], frozenset[str]]:
    """Apply the inhibition rule: a failed run fires ``fetch_failed`` and mutes drift."""
    if not run.failed:
        return run.firing, run.resolved
    known = _drift(state.firing) if state is not None else frozenset()
    return known | {FETCH_FAILED}, frozenset()


def decide(
    channel: str,
    state: NotificationState | None,
    run: AlertSets,
    policy: AlertPolicy,
    now: datetime,
) -> AlertEvent | None:
    """The notification ``channel`` needs now, or None to stay quiet.

    Alertmanager's five-way ``needsUpdate`` (module docstring), then inhibition and summaries.
    ``run`` comes from :func:`alert_sets` (its firing/resolved sets are ignored when it
    ``failed``: the drift is inhibited). A ``resolved`` returned for a channel without
    ``send_resolved`` is not to be sent, only recorded: see :func:`plan`. A ``summary``
    (``policy.summaries``) waits for a settled, reconciled window.
    """
    firing, resolved = _effective(state, run)
    if state is None:
        # Rule 1.
        if firing:
            return "failed" if run.failed else "opened"
        if policy.summaries and run.settled and not run.failed:
            return "summary"
        return None
    if not firing <= state.firing:
        # Rule 2. "opened" when the receiver knew of no drift (first drift, or after a failure).
        if run.failed:
            return "failed"
        return "updated" if _drift(state.firing) else "opened"
    if not firing:
        # Rule 3: irrespective of send_resolved, so the state gets cleared.
        return "resolved" if state.firing else None
    if policy.sends_resolved(channel) and not resolved <= state.resolved:
        # Rule 4: firing is not empty here, so some drift remains: an update, not an all-clear.
        return "updated"
    # Rule 5. None (never delivered) counts as long ago, like Alertmanager's zero timestamp.
    if state.last_sent_at is None or state.last_sent_at <= now - policy.repeat_interval:
        return "failed" if run.failed else "repeat"
    return None


def next_state(
    state: NotificationState | None, event: AlertEvent, run: AlertSets, now: datetime
) -> NotificationState:
    """The state to store once ``event`` is delivered (or suppressed, for rule 3) at ``now``."""
    firing, resolved = _effective(state, run)
    return NotificationState(firing=firing, resolved=resolved, last_sent_at=now, last_event=event)


def dedupe_key(
    group_key: str,
    channel: str,
    event: AlertEvent,
    firing: frozenset[str],
    *,
    previous_sent_at: datetime | None = None,
) -> str:
    """A short, stable key for one notification: 32 hex digits of a SHA-256.

    The same decision taken again (a re-run of the window before or after delivery) gives the
    same key, so the outbox never holds it twice. ``previous_sent_at`` (the state's
    ``last_sent_at``) tells apart notifications that are otherwise equal but follow different
    deliveries: the second day's ``repeat``, or a drift that re-opens after it was resolved.
    """
    parts = [
        group_key,
        channel,
        event,
        sorted(firing),
        previous_sent_at.isoformat() if previous_sent_at is not None else None,
    ]
    text = json.dumps(parts, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def plan(
    *,
    group_key: str,
    states: Mapping[str, NotificationState | None],
    result: ReconResult | None,
    policy: AlertPolicy,
    now: datetime,
) -> list[Notification]:
    """Every notification a run needs, one per channel at most: the job's one call.

    ``states`` maps each configured channel to its stored state for ``group_key``; ``result``
    is None for a run that failed to fetch. The returned notifications carry their event,
    dedupe key, whether to deliver, and the state to store after delivery.
    """
    planned: list[Notification] = []
    for channel, state in states.items():
        if result is None:
            sets = AlertSets(frozenset(), frozenset(), failed=True, settled=False)
        else:
            sets = alert_sets(result, state)
        event = decide(channel, state, sets, policy, now)
        if event is None:
            continue
        new = next_state(state, event, sets, now)
        deliver = event != "resolved" or policy.sends_resolved(channel)
        if not deliver:
            new = replace(new, last_sent_at=state.last_sent_at if state is not None else None)
        key = dedupe_key(
            group_key,
            channel,
            event,
            new.firing,
            previous_sent_at=state.last_sent_at if state is not None else None,
        )
        planned.append(Notification(group_key, channel, event, key, deliver, new))
    return planned
