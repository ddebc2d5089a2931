"""Named fault points for crash tests (reliability.md §9): test-only, never set in production.

``fault_point("after_send")`` kills the process with exit status 137 (as a SIGKILL would) when the
environment variable ``RECON_FAULT_POINT`` names that point, and does nothing otherwise. It marks
the crash windows the outbox must survive: ``after_outbox_commit`` (the run's result and its
notifications are committed, nothing sent) and ``after_send`` (a channel accepted a message, its
delivery not yet recorded). ``os._exit`` skips every cleanup handler, like a real crash.
"""

from __future__ import annotations

import os

#: The environment variable naming the fault point to crash at.
FAULT_POINT_ENV = "RECON_FAULT_POINT"
#: Exit status of a process killed at a fault point (128 + SIGKILL).
FAULT_EXIT_STATUS = 137


def fault_point(name: str) -> None:
    """Exit at once with status 137 if ``RECON_FAULT_POINT`` equals ``name``."""
    if os.environ.get(FAULT_POINT_ENV) == name:
        os._exit(FAULT_EXIT_STATUS)
