"""The one interface every notification channel implements, and the message they all send.

A :class:`Message` is rendered once, from Jinja templates, when the run's result is committed;
it is stored in the outbox as it is and sent later by the relay, so it holds no secret. Every
channel gets the same message and picks the parts it needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

#: Why a message is sent. ``opened``: a window starts drifting; ``updated``: more groups drift;
#: ``repeat``: still drifting after ``repeat_interval``; ``resolved``: all back in tolerance;
#: ``failed``: the run could not get OpenAI's figures; ``summary``: an all-clear report (opt-in);
#: ``channel_failing``: another channel keeps failing; ``test``: ``recon-job alerts test``.
AlertEvent = Literal[
    "opened", "updated", "repeat", "resolved", "failed", "summary", "channel_failing", "test"
]

CHANNELS = ("email", "slack", "webhook")


@dataclass(frozen=True)
class Message:
    """A rendered notification: every part of it, for every channel. Holds no secret."""

    #: Stable across retries and re-runs: the email ``Message-ID``, the webhook
    #: ``Idempotency-Key`` and the Slack footer, so a duplicate after a crash is recognisable.
    dedupe_key: str
    event: AlertEvent
    #: The alert group: the window's key (``daily:2026-03-14``, ``monthly:2026-02``).
    group_key: str
    #: One line, no CR/LF (an email header).
    subject: str
    #: Plain-text body (email text part).
    text: str
    #: HTML body (email HTML part), autoescaped.
    html: str
    #: Slack mrkdwn fallback text; the Slack channel builds Block Kit blocks around it.
    slack_text: str
    #: The generic webhook's JSON body (versioned, documented in the README).
    payload: Mapping[str, Any] = field(default_factory=dict)


class Transport(Protocol):
    """A notification channel.

    ``notify`` delivers ``message`` and returns None on success. It raises
    :class:`~recon_job.errors.NotifyError` on failure, with ``permanent=True`` when retrying
    cannot help (a 404 webhook, a refused login, a rejected recipient) and ``retry_after`` when
    the receiver named a wait (Slack 429). Every attempt has a timeout; nothing here retries in a
    loop: retries are the relay's, at its next pass.
    """

    #: ``email``, ``slack`` or ``webhook``.
    channel: str

    def notify(self, message: Message) -> None:
        """Deliver ``message``; raise ``NotifyError`` on failure."""
        ...
