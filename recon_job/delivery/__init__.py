"""Delivering notifications: plan a run's alerts into the outbox, then relay the outbox.

A run's notifications are committed with its result (the transactional outbox, reliability.md
§4.1) and sent afterwards by the relay, which records every attempt; a crash in between loses
nothing and sends at most one duplicate, recognisable by its dedupe key.
"""

from recon_job.delivery.plan import (
    Alerting,
    Planned,
    RunFacts,
    deliver,
    plan_findings,
    plan_run,
    shown_alerts,
)
from recon_job.delivery.relay import (
    RelayOutcome,
    RelayPolicy,
    RelayReport,
    channel_failing_message,
    exponential_backoff,
    relay,
)

__all__ = [
    "Alerting",
    "Planned",
    "RelayOutcome",
    "RelayPolicy",
    "RelayReport",
    "RunFacts",
    "channel_failing_message",
    "deliver",
    "exponential_backoff",
    "plan_findings",
    "plan_run",
    "relay",
    "shown_alerts",
]
