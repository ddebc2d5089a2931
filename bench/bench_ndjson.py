"""Time the local NDJSON aggregation and measure its peak memory.

Each measurement runs ``NdjsonLogSource.fetch`` over March 2026 in a fresh child process, so the
peak RSS reported (``ru_maxrss`` of that child alone) is the aggregation's own, interpreter
included, and is not inflated by the generator or by earlier runs. Logs are generated on first
use (deterministic seed) and kept in ``--dir``.

    python bench/bench_ndjson.py                      # 1M and 2M records, 3 runs each
    python bench/bench_ndjson.py --records 1000000 --runs 5 [--gzip]

Target (issue 2): 1M records in under 3 s with peak RSS under 150 MB, and a peak that does not
grow with file size (compare the 1M and 2M rows).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_ndjson import generate

from recon_job.models import Tier, Usage

#: USD per 1M tokens (input, cached input, output), roughly OpenAI's public prices.
PRICES = {
    "gpt-4o-mini": (Decimal("0.15"), Decimal("0.075"), Decimal("0.60")),
    "gpt-4o": (Decimal("2.50"), Decimal("1.25"), Decimal("10.00")),
    "gpt-4.1-mini": (Decimal("0.40"), Decimal("0.10"), Decimal("1.60")),
    "gpt-5-mini": (Decimal("0.25"), Decimal("0.025"), Decimal("2.00")),
}
DISCOUNT = {"standard": Decimal(1), "batch": Decimal("0.5"), "flex": Decimal("0.5")}


class BenchPricer:
    """A minimal table pricer; o4-mini is left out on purpose to exercise *unpriced*."""

    def cost(self, model: str, day: date, tier: Tier, usage: Usage) -> Decimal | None:
        """USD for ``usage``, or None for a model or tier without a price."""
        rates = PRICES.get(model)
        if rates is None or tier not in DISCOUNT:
            return None
        inp, cached, out = rates
        tokens = (
            usage.uncached_input_tokens * inp
            + usage.cached_tokens * cached
            + usage.output_tokens * out
        )
        return tokens * DISCOUNT[tier] / 1_000_000


def child(path: str) -> None:
    """Run one aggregation and print its figures as JSON (the child-process side)."""
    from recon_job.models import Window
    from recon_job.sources.ndjson_logs import NdjsonLogSource, NdjsonOptions

    source = NdjsonLogSource(NdjsonOptions(paths=(path,)), BenchPricer())
    window = Window("monthly", date(2026, 3, 1), date(2026, 4, 1))
    started = time.perf_counter()
    cpu_started = time.process_time()
    totals = source.fetch(window)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    print(
        json.dumps(
            {
                "wall": wall,
                "cpu": cpu,
                "lines": totals.info["lines_read"],
                "counted": totals.info["records_counted"],
                "skipped": sum(totals.skipped.values()),
                "groups": len(totals.groups),
                "cost": str(totals.total.cost),
                "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            }
        )
    )


def measure(path: str) -> dict[str, float]:
    """One run in a fresh interpreter; its own peak RSS comes back in the JSON."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(
        [sys.executable, __file__, "--child", path],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="*", default=[1_000_000, 2_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "recon-bench"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return

    os.makedirs(args.dir, exist_ok=True)
    print(
        f"{'records':>9} {'best s':>7} {'median s':>8} {'cpu s':>6} {'rec/s':>10} {'peak RSS':>9}"
    )
    for records in args.records:
        suffix = ".ndjson.gz" if args.gzip else ".ndjson"
        path = os.path.join(args.dir, f"usage-{records}{suffix}")
        if not os.path.exists(path):
            generate(records, path, compress=args.gzip)
        runs = sorted((measure(path) for _ in range(args.runs)), key=lambda r: r["wall"])
        best, median = runs[0], runs[len(runs) // 2]
        peak_mib = max(r["maxrss_kib"] for r in runs) / 1024
        print(
            f"{records:>9} {best['wall']:>7.2f} {median['wall']:>8.2f} {best['cpu']:>6.2f} "
            f"{best['lines'] / best['wall']:>10,.0f} {peak_mib:>7.1f}MB"
            f"   (counted {best['counted']}, skipped {best['skipped']}, groups {best['groups']})"
        )


if __name__ == "__main__":
    main()
