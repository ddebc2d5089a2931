"""What one group (UTC day × family × model × project × key) costs in memory (issue 13 item 4).

Writes an NDJSON log with one distinct group per record (``--groups`` of them spread over March
2026), reads it in-process with tracemalloc on, and prints the bytes per group: while reading
(the aggregates and the ``reconcile.max_groups`` count), in the result (``UsageTotals.groups``)
and the peak while the aggregates are priced into the result. ``--by-project-and-key`` groups by
project and API key too (longer keys).

    python bench/bench_groups.py --groups 100000
    python bench/bench_groups.py --groups 100000 --by-project-and-key
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import tracemalloc
from datetime import date
from decimal import Decimal
from pathlib import Path

from recon_job.models import Tier, Usage, Window
from recon_job.sources.ndjson import NdjsonOptions
from recon_job.sources.ndjson.source import _Scan


class Pricer:
    """A price for every model: every aggregate is priced, as in a real run."""

    def cost(
        self, model: str, day: date, tier: Tier, usage: Usage, variant: str | None = None
    ) -> Decimal | None:
        """USD 0.0001 per input token."""
        return Decimal("0.0001") * usage.input_tokens


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=100_000)
    parser.add_argument("--by-project-and-key", action="store_true")
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "recon-bench"))
    args = parser.parse_args()
    grouped = args.by_project_and_key
    path = Path(args.dir) / f"groups-{args.groups}{'-pk' if grouped else ''}.ndjson"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for i in range(args.groups):
            record = {
                "timestamp": f"2026-03-{1 + i % 31:02d}T10:00:00Z",
                "model": f"gpt-4o-mini-{i // 31:05d}",
                "prompt_tokens": 5,
                "completion_tokens": 1,
            }
            if grouped:
                record.update(project_id=f"proj_{i % 7}", api_key_id=f"key_{i % 5}")
            f.write(json.dumps(record) + "\n")
    group_by = ("model", "project_id", "api_key_id") if grouped else ("model",)
    options = NdjsonOptions(
        paths=(str(path),), workers=1, dedupe=False, group_by=group_by, max_groups=10**8
    )
    window = Window("monthly", date(2026, 3, 1), date(2026, 4, 1))
    gc.collect()
    tracemalloc.start()
    scan = _Scan(options, window)
    scan.read_file(str(path))
    reading = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    totals = scan.totals(Pricer(), None)
    del scan
    gc.collect()
    result, peak = tracemalloc.get_traced_memory()
    n = len(totals.groups)
    print(
        f"{n:,} groups{' (by model, project and key)' if grouped else ''}: "
        f"{reading / n:.0f} B/group while reading, {result / n:.0f} B/group in the result, "
        f"peak {peak / n:.0f} B/group while pricing"
    )


if __name__ == "__main__":
    main()
