"""The one interface every notification channel implements, and the message they all send.

A :class:`Message` is rendered once, from Jinja templates, when the run's result is committed;
it is stored in the outbox as it is and sent later by the relay, so it holds no secret. Every
channel gets the same message and picks the parts it needs.
"""

from __future__ import annotations

from typing import Protocol

from recon_job.models import Message


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
