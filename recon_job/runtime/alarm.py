"""The ``failed`` notification of a tick that stopped before it could record a run.

A run that fails is recorded, and its ``failed`` notification is committed to the outbox with
it. A tick that stops earlier has no run to carry one: a setting the checks refuse (a log path
that names no file), a history database that cannot be opened or written. Without this module
such a daemon or CronJob would fail silently every time, its failure only in its own log.

:class:`TickAlarm` tells every configured channel, once per failing reason per UTC day:

* when the history database answers (a configuration error), the notification goes through the
  outbox like any other: its dedupe key (reason and UTC day) is unique there, so another process
  or a later tick of the same day enqueues nothing, and a channel that is down gets it later
  from the relay;
* when the history database is the problem, it is sent directly through each channel, at most
  once per channel, a failure logged and dropped (there is nowhere to keep it);
* either way the alarm remembers what it sent in memory, so a daemon ticking every minute does
  not even try again that day. A run-once process that cannot reach its history database sends
  one per invocation: the dedupe key (the email ``Message-ID``, the webhook ``Idempotency-Key``)
  is the same all day, so a receiver can fold them.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

import structlog

from recon_job.delivery import Alerting, deliver
from recon_job.errors import ConfigError, Interrupted, NotifyError, ReconError, StoreError
from recon_job.logconfig import REDACTOR
from recon_job.models import Message, Window
from recon_job.notify.base import Transport
from recon_job.store import HistoryStore, OutboxItem

log = structlog.get_logger(__name__)

EV_ALARM_QUEUED: Final = "recon.alarm.queued"
EV_ALARM_SENT: Final = "recon.alarm.sent"
EV_ALARM_SEND_FAILED: Final = "recon.alarm.send_failed"
EV_ALARM_REPEATED: Final = "recon.alarm.repeated"
EV_ALARM_NO_CHANNEL: Final = "recon.alarm.no_channel"

#: The errors that stop a tick before it records a run: nothing else would say so.
ALARMING: Final = (ConfigError, StoreError)

#: Opens the history database for the outbox path (a context manager, closed after).
OpenStore = Callable[[], AbstractContextManager[HistoryStore]]


@dataclass(frozen=True)
class TickFailure:
    """Why a tick stopped, for which period, and when."""

    error: ReconError
    #: The period the tick was surely for: the latest settled day.
    window: Window
    #: Aware UTC; its UTC day is part of the dedupe key.
    at: datetime

    @property
    def dedupe_key(self) -> str:
        """32 hex digits, the same for one failing reason all UTC day."""
        text = json.dumps(["tick_failed", self.error.reason, self.at.date().isoformat()])
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def failure_message(failure: TickFailure, templates_dir: Path | None = None) -> Message:
    """The ``failed`` notification of ``failure``, from the user's templates or the bundled
    ones (a broken user template must not silence the alarm)."""
    # Imported here: only a failed tick renders a message.
    from recon_job.notify.context import Notice
    from recon_job.notify.render import render_message

    error = failure.error
    notice = Notice(
        event="failed",
        group_key=failure.window.key,
        dedupe_key=failure.dedupe_key,
        window=failure.window,
        result=None,
        error=(error.reason, REDACTOR.scrub(str(error))),
    )
    if templates_dir is not None:
        try:
            return render_message(notice, templates_dir=templates_dir)
        except ConfigError:
            pass
    return render_message(notice)


class TickAlarm:
    """Tells the channels of a failed tick once per reason per UTC day. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: set[str] = set()

    def sound(
        self,
        failure: TickFailure,
        alerting: Alerting,
        open_store: OpenStore | None,
        clock: Callable[[], datetime],
    ) -> None:
        """Notify ``alerting``'s channels of ``failure`` (see the module docstring).

        ``open_store`` None: the history database is the problem; send directly. Never raises
        but ``Interrupted``: the alarm must not hide the error that sounded it.
        """
        key = failure.dedupe_key
        if not alerting.channels:
            log.warning(EV_ALARM_NO_CHANNEL, reason=failure.error.reason)
            return
        with self._lock:
            if key in self._sent:
                log.info(EV_ALARM_REPEATED, reason=failure.error.reason, dedupe_key=key)
                return
            self._sent.add(key)
        message = failure_message(failure, alerting.templates_dir)
        if open_store is not None:
            try:
                _through_outbox(message, alerting, open_store, clock)
                return
            except StoreError as e:
                log.warning(EV_ALARM_SEND_FAILED, channel="outbox", reason=e.reason)
        _directly(message, alerting.channels)


def _through_outbox(
    message: Message, alerting: Alerting, open_store: OpenStore, clock: Callable[[], datetime]
) -> None:
    now = clock()
    with open_store() as store:
        items = [OutboxItem(channel, message) for channel in alerting.channels]
        enqueued = store.enqueue(items, now=now)
        log.info(EV_ALARM_QUEUED, dedupe_key=message.dedupe_key, new=len(enqueued))
        if enqueued:
            deliver(alerting, store, now=now, clock=clock)


def _directly(message: Message, channels: Mapping[str, Transport]) -> None:
    for name, transport in channels.items():
        try:
            transport.notify(message)
        except Interrupted:
            raise
        except NotifyError as e:
            log.error(EV_ALARM_SEND_FAILED, channel=name, reason=e.reason, error=e.message)
        except Exception as e:
            # As in the relay: only the type, an arbitrary message may quote a secret URL.
            log.error(EV_ALARM_SEND_FAILED, channel=name, error=type(e).__name__)
        else:
            log.info(EV_ALARM_SENT, channel=name, dedupe_key=message.dedupe_key)
