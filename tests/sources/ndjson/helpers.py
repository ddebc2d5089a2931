"""What the NDJSON source tests share: a month window, record lines, a fetch."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from recon_job.models import UsageKey, UsageTotals, Window
from recon_job.sources.ndjson.source import NdjsonLogSource, NdjsonOptions
from tests.helpers import FIXTURES, FakePricer

NDJSON = FIXTURES / "ndjson"
MARCH = Window("monthly", date(2026, 3, 1), date(2026, 4, 1))
D = Decimal


def fetch(*paths: str | Path, window: Window = MARCH, **options: Any) -> UsageTotals:
    pricer = options.pop("pricer", FakePricer())
    namer = options.pop("namer", None)
    opts = NdjsonOptions(paths=tuple(str(p) for p in paths), **options)
    return NdjsonLogSource(opts, pricer, namer).fetch(window)


def write(path: Path, *lines: str | bytes) -> Path:
    data = b"".join((line.encode() if isinstance(line, str) else line) + b"\n" for line in lines)
    path.write_bytes(data)
    return path


def rec(ts: object = "2026-03-10T08:00:00Z", model: str = "gpt-4o-mini", **fields: Any) -> str:
    fields.setdefault("prompt_tokens", 10)
    fields.setdefault("completion_tokens", 1)
    return orjson.dumps({"timestamp": ts, "model": model, **fields}).decode()


def key(day: int, model: str, project: str | None = None, api_key: str | None = None) -> UsageKey:
    return UsageKey(date(2026, 3, day), model, project, api_key)


def accounted(totals: UsageTotals) -> int:
    info = totals.info
    return info["records_counted"] + info["outside_window"] + sum(totals.skipped.values())


# -- shapes, pricing, cost ---------------------------------------------------------------------
