"""The alerting half of a run: what to notify, rendered into outbox rows, then delivered.

:func:`plan_run` turns a run's outcome into outbox rows with :func:`recon_job.alerts.plan` (the
pure Alertmanager rules) and the Jinja renderer; :func:`plan_findings` does the same for the
diagnosis's finding notices, each told once per subject and channel; :func:`deliver` hands
everything due in the outbox to the relay. What the channels are and how they behave
(:class:`Alerting`) is built from the settings by :mod:`recon_job.wiring`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recon_job import alerts
from recon_job.delivery.relay import RelayPolicy, RelayReport, relay
from recon_job.errors import ReconError
from recon_job.models import ReconResult, Window, WindowKind
from recon_job.notify.base import Transport
from recon_job.store import HistoryStore, OutboxItem

if TYPE_CHECKING:
    from recon_job.notify.findings import FindingNotice

#: What the CLI shows for a row's delivery state: sent, pending (will be retried) or failed.
_SHOWN_STATUS = {"sent": "sent", "partial": "sent", "dead": "failed", "failed": "failed"}


@dataclass(frozen=True)
class Alerting:
    """The notification channels of a run and the rules they follow."""

    #: Channel name -> transport; empty sends nothing (``--no-alerts``, alerts disabled).
    channels: Mapping[str, Transport] = field(default_factory=dict)
    #: The lifecycle rules per window kind (repeat interval differs for daily and monthly).
    policies: Mapping[WindowKind, alerts.AlertPolicy] = field(default_factory=dict)
    #: A directory of templates overriding the bundled ones, file by file.
    templates_dir: Path | None = None
    #: Delivery attempts per notification before it is given up (``dead``).
    max_attempts: int = 8

    def policy(self, window: Window) -> alerts.AlertPolicy:
        """The lifecycle rules for ``window``'s kind."""
        return self.policies.get(window.kind) or alerts.AlertPolicy(
            repeat_interval=alerts.default_repeat_interval(window.kind)
        )

    def without_channels(self) -> Alerting:
        """The same rules with no channel: nothing is planned or sent."""
        return Alerting({}, self.policies, self.templates_dir, self.max_attempts)


@dataclass(frozen=True)
class Planned:
    """The outbox rows of one run, and a line each for the run's output."""

    items: tuple[OutboxItem, ...]
    #: ``{"channel", "event", "status": "pending"|"suppressed"}`` per notification.
    shown: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class RunFacts:
    """What the notifications of one run are about."""

    window: Window
    run_id: int
    #: None when the run failed; then ``error`` says why.
    result: ReconResult | None
    error: ReconError | None = None


def plan_run(alerting: Alerting, store: HistoryStore, run: RunFacts, *, now: datetime) -> Planned:
    """Decide and render the notifications of one run (``run.result`` None: the run failed)."""
    window, result, error = run.window, run.result, run.error
    states = {
        channel: store.notification_state(window.key, channel) for channel in alerting.channels
    }
    planned = alerts.plan(
        group_key=window.key,
        states=states,
        result=result,
        policy=alerting.policy(window),
        now=now,
    )
    if not planned:
        return Planned((), ())
    # Imported here: a run with no channel (or nothing to tell) renders nothing.
    from recon_job.notify.context import Notice
    from recon_job.notify.render import render_message

    items: list[OutboxItem] = []
    shown: list[dict[str, Any]] = []
    for n in planned:
        state = states.get(n.channel)
        resolved = sorted(state.firing - n.state.firing) if state is not None else []
        notice = Notice(
            event=n.event,
            group_key=window.key,
            dedupe_key=n.dedupe_key,
            window=window,
            result=result,
            error=None if error is None else (error.reason, str(error)),
            firing=result.mismatches if result is not None else (),
            resolved=tuple(resolved),
            run_id=run.run_id,
        )
        message = render_message(notice, templates_dir=alerting.templates_dir)
        items.append(
            OutboxItem(n.channel, message, run.run_id, state=n.state, suppressed=not n.deliver)
        )
        shown.append(
            {
                "channel": n.channel,
                "event": n.event,
                "status": "pending" if n.deliver else "suppressed",
            }
        )
    return Planned(tuple(items), tuple(shown))


def plan_findings(
    alerting: Alerting,
    store: HistoryStore,
    notices: Sequence[FindingNotice],
    *,
    run_id: int | None,
    now: datetime,
) -> Planned:
    """Outbox rows telling each channel every finding it was never told.

    One row per notice and channel, with ``group_key`` the notice's subject (cut to fit) and a
    dedupe key that is the same for every run finding that subject again. A subject already in
    the notification log of a channel (delivered there once) is skipped; one still waiting in
    the outbox is planned again but never enqueued twice, since the outbox keeps one row per
    (channel, dedupe key). Delivering a row writes the notification log, so the next run plans
    nothing for it. Notices with the same subject are told once (the first).

    Which kinds of finding are told (``diagnosis.price_alert`` ...) is the caller's choice: it
    passes only those notices.
    """
    # Imported here: only a run with channels and findings to tell renders a finding.
    from recon_job.notify.render import render_finding

    items: list[OutboxItem] = []
    shown: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for notice in notices:
        if (notice.event, notice.subject_key) in seen:
            continue
        seen.add((notice.event, notice.subject_key))
        channels = [
            channel
            for channel in alerting.channels
            if store.notification_state(notice.group_key, channel) is None
        ]
        if not channels:
            continue
        message = render_finding(notice, run_id=run_id, templates_dir=alerting.templates_dir)
        # The log entry a delivery writes: the subject "fired" once, and was told.
        state = alerts.NotificationState(
            firing=frozenset({notice.subject_key}), last_sent_at=now, last_event=notice.event
        )
        for channel in channels:
            items.append(OutboxItem(channel, message, run_id, state=state))
            shown.append({"channel": channel, "event": notice.event, "status": "pending"})
    return Planned(tuple(items), tuple(shown))


def deliver(
    alerting: Alerting,
    store: HistoryStore,
    *,
    now: datetime,
    clock: Callable[[], datetime],
    stop: threading.Event | None = None,
) -> RelayReport:
    """Send everything due in the outbox, this run's rows and any a crash left behind.

    Once ``stop`` is set the rows not tried yet stay in the outbox for the next pass.
    """
    policy = RelayPolicy(max_attempts=alerting.max_attempts, stop=stop)
    return relay(store, alerting.channels, now=now, clock=clock, policy=policy)


def shown_alerts(planned: Planned, report: RelayReport | None) -> list[dict[str, Any]]:
    """One ``{"channel", "event", "status"}`` per notification of this run, after delivery.

    ``status`` is ``sent``, ``pending`` (will be retried at the next run or daemon tick) or
    ``failed`` (given up; reported through the other channels). Rows from earlier runs that
    this run's relay pass delivered are listed too, marked ``"earlier": true``.
    """
    delivered = {} if report is None else {(o["channel"], o["event"]): o for o in report.alerts()}
    out: list[dict[str, Any]] = []
    for entry in planned.shown:
        if entry["status"] == "suppressed":
            continue
        outcome = delivered.pop((entry["channel"], entry["event"]), None)
        status = _SHOWN_STATUS.get(outcome["status"], "pending") if outcome else "pending"
        out.append({**entry, "status": status})
    for outcome in delivered.values():
        out.append(
            {
                "channel": outcome["channel"],
                "event": outcome["event"],
                "status": _SHOWN_STATUS.get(outcome["status"], "pending"),
                "earlier": True,
            }
        )
    return out
