"""A drifting day with a diagnosis, shared by the notification and delivery tests (issue 12)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from recon_job.findings import Bridge, BridgePart, Diagnosis
from recon_job.models import ReconResult
from recon_job.notify.render import sample_result

D = Decimal

#: The sentences of the diagnosis, most important first (six: the messages show five).
SENTENCES = (
    "Your logs are missing 500 gpt-4o requests between 14:00 and 15:20 UTC "
    "(94% of the gap): a logging outage",
    "OpenAI bills gpt-4o-mini input at $0.15/1M since 2026-03-10; your table: $0.075",
    "o3-mini in project proj_batch: 220 requests your logs never mention ($0.99)",
    "Tokens agree to the token for gpt-4o-mini: only its price differs",
    "2 request ids were logged twice (counted once)",
    "The sixth sentence, left out of every message but counted",
)

#: The window's cost bridge: local $19.25 - OpenAI $23.36 = -$4.11, in parts that add up.
BRIDGE = Bridge(
    difference=D("-4.11"),
    parts=(
        BridgePart("token_mix", D("0.03"), "fewer cached tokens locally"),
        BridgePart("coverage", D("-3.36"), "590 requests OpenAI counted are not in your logs"),
        BridgePart("pending", D(0), "nothing pending"),
        BridgePart("duplicates", D("-0.03"), "2 duplicate request ids"),
        BridgePart("price", D("-0.75"), "gpt-4o-mini input: $0.075/1M yours, $0.15/1M billed"),
    ),
)


def diagnosed_result() -> ReconResult:
    """The sample drifting day (:func:`recon_job.notify.render.sample_result`) with a diagnosis."""
    result = sample_result()
    assert BRIDGE.total == BRIDGE.difference == result.comparison.cost.difference
    return replace(result, diagnosis=Diagnosis(bridge=BRIDGE, summary=SENTENCES))
