"""Stub sources and a fixed clock for the run loop's tests."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from recon_job import job
from recon_job.models import Usage, UsageKey, UsageTotals, Window

#: 2026-03-16 06:00 UTC with a 24 h settle delay: 2026-03-14 is the last settled day and
#: February the last settled month.
NOW = datetime(2026, 3, 16, 6, 0, tzinfo=UTC)


class Stub:
    """A source returning the same usage on every day it is asked about; records the windows."""

    def __init__(self, error: Exception | None = None, on_fetch: threading.Event | None = None):
        self.windows: list[Window] = []
        self.error = error
        self.on_fetch = on_fetch

    def fetch(self, window: Window) -> UsageTotals:
        self.windows.append(window)
        if self.on_fetch is not None:
            self.on_fetch.set()
        if self.error is not None:
            raise self.error
        usage = Usage(input_tokens=10, output_tokens=1, requests=1)
        return UsageTotals(groups={UsageKey(day, "gpt-4o"): usage for day in window.days()})


def clock() -> datetime:
    return NOW


def sources(official: Stub | None = None, local: Stub | None = None) -> job.Sources:
    return job.Sources(local=(("logs", local or Stub()),), official=(official or Stub(),))
