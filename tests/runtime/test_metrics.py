"""The run loop's Prometheus metrics: their own registry, and what a run sets."""

from __future__ import annotations

from prometheus_client import REGISTRY

from recon_job.runtime import Metrics


def test_the_metrics_registry_is_not_the_global_one() -> None:
    assert Metrics().registry is not REGISTRY
    Metrics()  # a second instance does not collide (a global registry would raise)
