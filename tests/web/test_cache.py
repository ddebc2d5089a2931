"""The dashboard's cache: one computation per key however many ask at once, bounded size."""

from __future__ import annotations

import threading
import time

import pytest

from recon_job.web.cache import ComputeCache


def test_simultaneous_first_requests_compute_once() -> None:
    cache = ComputeCache()
    calls: list[int] = []

    def compute() -> str:
        calls.append(1)
        time.sleep(0.05)
        return "overview"

    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get("k", compute))) for _ in range(20)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["overview"] * 20
    assert len(calls) == 1


def test_the_least_recently_used_entry_goes_first_and_errors_are_not_kept() -> None:
    cache = ComputeCache(size=2)
    cache.get("a", lambda: 1)
    cache.get("b", lambda: 2)
    assert cache.get("a", lambda: 0) == 1  # "a" is now the most recently used
    cache.get("c", lambda: 3)
    assert len(cache) == 2
    assert cache.get("b", lambda: 20) == 20  # "b" was dropped and is computed again
    with pytest.raises(ZeroDivisionError):
        cache.get("d", lambda: 1 / 0)
    assert cache.get("d", lambda: 4) == 4
