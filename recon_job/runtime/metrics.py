"""The Prometheus metrics of the run loop, in their own registry (never the global one).

The daemon serves :class:`Metrics` on ``/metrics``. One registry per instance, so that two
instances (a test, an embedding) never collide and nothing else the process registered leaks out.

Run-once mode (``recon-job run --due``) pushes something else to a Pushgateway, since no scraper
can reach a short-lived process: following the Pushgateway's guidance for batch jobs, the
*gauges of the last run* of each period kind (:func:`last_run_registry`; pushed by
:func:`recon_job.runtime.ping.push_last_runs`). Counters are never pushed — each process starts
them at 0 and its push would replace the last one's, so two failures in a row would both read
``failed=1`` — and neither is anything only the daemon has (``recon_last_tick_timestamp_seconds``
pushed as 0 would fire a stale-tick alert).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Final

from recon_job.models import RunOutcome, Status

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from recon_job.delivery import RelayReport

#: Period kinds with series from the start (``range`` runs are counted as they come).
KINDS: Final = ("daily", "monthly")
#: Run statuses that complete a period (as ``store.records.COMPLETE``).
COMPLETE_STATUSES: Final = frozenset({str(Status.RECONCILED), str(Status.MISMATCH)})
#: What a run can end as (``untracked`` is a group's status, never a run's).
RUN_STATUSES: Final = tuple(s for s in Status if s is not Status.UNTRACKED)
#: Scheduler events counted in ``recon_scheduler_events_total``.
SCHEDULER_EVENTS: Final = ("job_error", "job_missed", "job_max_instances", "job_interrupted")
#: A relayed row's status -> the delivery outcome counted in ``recon_alerts_total``.
_RELAY_OUTCOMES: Final = {"sent": "sent", "partial": "sent", "dead": "failed"}
#: The figures of a run's result pushed as ``recon_last_run_<name>`` gauges.
_RESULT_COUNTS: Final = {
    "groups": "Comparison groups (day x model [x project x API key]) of the last run.",
    "mismatches": "Groups out of tolerance in the last run.",
    "pending_days": "Days of the last run's window not settled yet (not judged).",
    "skipped_records": "Local records the last run skipped (malformed, negative ...).",
    "unpriced_models": "Models whose local usage the last run could not price.",
}


@dataclass(frozen=True)
class Drift:
    """A run's drift, as its result reports it."""

    #: Local minus OpenAI as a percent of OpenAI's cost; None when OpenAI's cost is zero.
    cost_pct: Decimal | str | None = None
    #: The same for tokens.
    tokens_pct: Decimal | str | None = None
    #: The local ``cost`` (USD) and ``tokens``, to tell 0 % from +Inf when OpenAI shows zero.
    local: Mapping[str, object] = field(default_factory=dict)

    def value(self, quantity: str) -> float:
        """The gauge value of ``quantity`` (``cost`` or ``tokens``): +Inf when only we saw any."""
        pct = self.cost_pct if quantity == "cost" else self.tokens_pct
        if pct is None:
            return math.inf if self.local.get(quantity) else 0.0
        return float(pct)


class Metrics:
    """The run loop's Prometheus metrics, in their own registry.

    ``kept=False`` keeps none: every observation is dropped, there is no registry, and
    prometheus-client is not even imported — for ``recon-job run``, a process that neither
    serves these metrics nor pushes them (run-once mode pushes :func:`last_run_registry`).
    """

    def __init__(self, registry: CollectorRegistry | None = None, *, kept: bool = True) -> None:
        #: False: nothing is counted (see the class docstring); the attributes below are unset.
        self.kept = kept
        if not kept:
            return
        # Imported here: the run path of ``recon-job run`` keeps no metrics (``kept=False``).
        from prometheus_client import CollectorRegistry, Counter, Gauge

        #: The registry /metrics renders and ``ping.push_metrics`` pushes.
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.runs = Counter(
            "recon_runs",
            "Reconciliation runs by period kind and status.",
            ["kind", "status"],
            registry=r,
        )
        self.drift = Gauge(
            "recon_last_drift_pct",
            "Local minus OpenAI as a percent of OpenAI's figure, last run per kind "
            "(+Inf: OpenAI shows zero).",
            ["kind", "quantity"],
            registry=r,
        )
        self.alerts = Counter(
            "recon_alerts",
            "Notification deliveries by channel and outcome (sent, failed, deferred).",
            ["channel", "outcome"],
            registry=r,
        )
        self.last_success = Gauge(
            "recon_last_success_timestamp_seconds",
            "End of the last run that completed its period (reconciled or mismatch), per kind.",
            ["kind"],
            registry=r,
        )
        self.scheduler_events = Counter(
            "recon_scheduler_events",
            "Scheduler events: job errors, missed fire times, overlapping runs, interruptions.",
            ["event"],
            registry=r,
        )
        self.last_tick = Gauge(
            "recon_last_tick_timestamp_seconds", "Start of the last scheduler tick.", registry=r
        )
        # Zero series from the start, so rate() and absent() work before the first event.
        for kind in KINDS:
            for status in RUN_STATUSES:
                self.runs.labels(kind=kind, status=str(status))
        for event in SCHEDULER_EVENTS:
            self.scheduler_events.labels(event=event)

    def observe_run(
        self, kind: str, status: str, *, finished_at: datetime, drift: Drift | None = None
    ) -> None:
        """Count a run; one that did not fail also sets its drift and, when complete, the last
        success (``drift`` None: no difference)."""
        if not self.kept:
            return
        self.runs.labels(kind=kind, status=status).inc()
        if status == str(Status.FAILED):
            return
        drift = drift or Drift()
        for quantity in ("cost", "tokens"):
            self.drift.labels(kind=kind, quantity=quantity).set(drift.value(quantity))
        if status in COMPLETE_STATUSES:
            self.last_success.labels(kind=kind).set(finished_at.timestamp())

    def observe_outcome(self, outcome: RunOutcome) -> None:
        """Count a run from ``job.run_once`` and its deliveries.

        Deliveries still pending are not counted: the relay pass that settles them counts them
        (:meth:`observe_relay`).
        """
        kind = outcome.window.kind
        self.observe_run(
            kind, str(outcome.status), finished_at=outcome.finished_at, drift=drift_of(outcome)
        )
        for alert in outcome.alerts:
            if alert.get("status") in ("sent", "failed"):
                self.observe_alert(str(alert["channel"]), str(alert["status"]))

    def observe_relay(self, report: RelayReport) -> None:
        """Count the rows a relay pass settled (sent, failed) or left for later (deferred)."""
        for row in report.outcomes:
            self.observe_alert(row.channel, _RELAY_OUTCOMES.get(str(row.status), "deferred"))

    def observe_alert(self, channel: str, outcome: str) -> None:
        """Count one delivery outcome: ``sent``, ``failed`` or ``deferred``."""
        if self.kept:
            self.alerts.labels(channel=channel, outcome=outcome).inc()

    def scheduler_event(self, event: str) -> None:
        """Count a scheduler event (see :data:`SCHEDULER_EVENTS`)."""
        if self.kept:
            self.scheduler_events.labels(event=event).inc()

    def tick(self, at: datetime) -> None:
        """A tick began at ``at``."""
        if self.kept:
            self.last_tick.set(at.timestamp())

    def render(self) -> bytes:
        """The Prometheus text exposition of the registry (empty when none is kept)."""
        if not self.kept:
            return b""
        from prometheus_client.exposition import generate_latest

        return generate_latest(self.registry)


def drift_of(outcome: RunOutcome) -> Drift | None:
    """The drift of ``outcome``'s result; None when it has none (a failed run)."""
    if outcome.result is None:
        return None
    c = outcome.result.comparison
    local = {"cost": c.cost.local, "tokens": c.tokens.local}
    return Drift(cost_pct=c.cost.pct, tokens_pct=c.tokens.pct, local=local)


def last_run_registry(outcome: RunOutcome) -> CollectorRegistry:
    """The gauges of one run, for a Pushgateway group of its period kind (no counters).

    Always: ``recon_last_run_status`` (1 for its status, 0 for the others),
    ``recon_last_run_timestamp_seconds`` (its end) and ``recon_last_run_duration_seconds``.
    With a result: ``recon_last_drift_pct`` and the ``recon_last_run_*`` counts of this run.
    When it completed its period: ``recon_last_success_timestamp_seconds``. Names and meanings
    are those the daemon serves, without the ``kind`` label (the push's grouping key has it).
    A run without a result leaves its drift and counts unset, so a push keeps the last known.
    """
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    status = Gauge(
        "recon_last_run_status",
        "1 for the status of the last run, 0 for the others.",
        ["status"],
        registry=registry,
    )
    for each in RUN_STATUSES:
        status.labels(status=str(each)).set(1 if each is outcome.status else 0)
    Gauge("recon_last_run_timestamp_seconds", "End of the last run.", registry=registry).set(
        outcome.finished_at.timestamp()
    )
    Gauge("recon_last_run_duration_seconds", "How long the last run took.", registry=registry).set(
        (outcome.finished_at - outcome.started_at).total_seconds()
    )
    if str(outcome.status) in COMPLETE_STATUSES:
        Gauge(
            "recon_last_success_timestamp_seconds",
            "End of the last run that completed its period (reconciled or mismatch).",
            registry=registry,
        ).set(outcome.finished_at.timestamp())
    drift, result = drift_of(outcome), outcome.result
    if drift is None or result is None:
        return registry
    gauge = Gauge(
        "recon_last_drift_pct",
        "Local minus OpenAI as a percent of OpenAI's figure, last run (+Inf: OpenAI shows zero).",
        ["quantity"],
        registry=registry,
    )
    for quantity in ("cost", "tokens"):
        gauge.labels(quantity=quantity).set(drift.value(quantity))
    counts = {
        "groups": len(result.groups),
        "mismatches": len(result.mismatches),
        "pending_days": len(result.pending_days),
        "skipped_records": sum(result.skipped.values()),
        "unpriced_models": len(result.unpriced),
    }
    for count, text in _RESULT_COUNTS.items():
        Gauge(f"recon_last_run_{count}", text, registry=registry).set(counts[count])
    return registry
