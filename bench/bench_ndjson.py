"""Time the local NDJSON aggregation and measure its peak memory, worker processes included.

Each measurement runs ``NdjsonLogSource.fetch`` over March 2026 in a fresh child process, so
nothing is inflated by the generator or by earlier runs. Logs are generated on first use
(deterministic seed) and kept in ``--dir``. Each size is run with every ``--workers`` setting:
0 (one worker process per CPU, what the job uses by default) and 1 (in-process).

What is reported:

* **wall**: ``time.perf_counter()`` around ``fetch`` alone, so it includes starting and
  stopping the worker processes (spawned interpreters) and merging their sums.
* **cpu**: user + system time of the measuring process plus all its finished children
  (``RUSAGE_SELF`` + ``RUSAGE_CHILDREN``), i.e. the total work, on all cores.
* **peak RSS**: the measuring process's own peak (``RUSAGE_SELF.ru_maxrss``, interpreter
  included) **plus the sum of every child's peak**, read as ``VmHWM`` (the kernel's high-water
  mark of each process's RSS) from ``/proc`` by a thread polling every 20 ms while ``fetch``
  runs (Linux only; the latest reading per process is kept). Summing per-process
  peaks over-counts when they do not coincide, so this is an upper bound of the simultaneous
  total. ``RUSAGE_CHILDREN.ru_maxrss`` alone would be wrong here: it is the largest child's
  peak, not their sum.

    python bench/bench_ndjson.py --runs 3             # 1M and 2M records, workers auto and 1
    python bench/bench_ndjson.py --records 1000000 --workers 0 --runs 5 [--gzip]
    python bench/bench_ndjson.py --console-script     # measured as if run by `recon-job`

``--console-script`` measures what the ``recon-job`` console script pays: spawned workers
re-import the parent's main script, and that script imports ``recon_job.__main__`` at its top.
That module imports the CLI only inside ``main()``, so the workers stay small (importing the
whole application there cost each worker about a second and 90 MB).

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
import threading
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_ndjson import generate

from recon_job.models import Tier, Usage

if "--console-script" in sys.argv:
    # What pip's ``recon-job`` script does at import time. Spawned workers re-run the parent's
    # main script (as ``__mp_main__``) and see the same sys.argv, so this runs in them too.
    import recon_job.__main__  # noqa: F401

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

    def cost(
        self, model: str, day: date, tier: Tier, usage: Usage, variant: str | None = None
    ) -> Decimal | None:
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


class ChildPeaks:
    """Polls the peak RSS (``VmHWM``) of this process's children while they live."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peaks_kib: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ChildPeaks:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval):
                return

    def sample(self) -> None:
        """Record the current high-water mark of every live child.

        The latest reading wins, not the largest: VmHWM only grows within one program, but a
        child caught between fork and exec reports the parent's (shared) pages, and exec resets
        the mark.
        """
        for pid, hwm_kib in _child_hwm_kib():
            self.peaks_kib[pid] = hwm_kib


def _child_hwm_kib() -> list[tuple[int, int]]:
    found = []
    # Children are listed under the thread that started them (the pool's manager thread).
    for children in Path("/proc/self/task").glob("*/children"):
        for pid in children.read_text().split():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue  # exited between the listing and the read
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    found.append((int(pid), int(line.split()[1])))
    return found


def child(path: str, workers: int) -> None:
    """Run one aggregation and print its figures as JSON (the child-process side)."""
    from recon_job.models import Window
    from recon_job.sources.ndjson.source import NdjsonLogSource, NdjsonOptions

    source = NdjsonLogSource(NdjsonOptions(paths=(path,), workers=workers), BenchPricer())
    window = Window("monthly", date(2026, 3, 1), date(2026, 4, 1))
    with ChildPeaks() as peaks:
        started = time.perf_counter()
        totals = source.fetch(window)
        wall = time.perf_counter() - started
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        json.dumps(
            {
                "wall": wall,
                "cpu": own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime,
                "lines": totals.info["lines_read"],
                "counted": totals.info["records_counted"],
                "skipped": sum(totals.skipped.values()),
                "groups": len(totals.groups),
                "cost": str(totals.total.cost),
                "self_kib": own.ru_maxrss,
                "children_kib": sum(peaks.peaks_kib.values()),
                "children": len(peaks.peaks_kib),
                "largest_child_kib": kids.ru_maxrss,
            }
        )
    )


def measure(path: str, workers: int, console_script: bool) -> dict[str, float]:
    """One run in a fresh interpreter; its figures come back as JSON on the last line."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    extra = ["--console-script"] if console_script else []
    done = subprocess.run(
        [sys.executable, __file__, "--child", path, "--workers", str(workers), *extra],
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
    parser.add_argument("--workers", type=int, nargs="*", default=[0, 1])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "recon-bench"))
    parser.add_argument(
        "--console-script", action="store_true", help="import what the recon-job script imports"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.workers[0])
        return

    os.makedirs(args.dir, exist_ok=True)
    main = "as the recon-job script" if args.console_script else "bench script"
    print(f"cpus {os.cpu_count()}, main module: {main}, load average {_load()} at start")
    print(
        f"{'records':>9} {'workers':>7} {'best s':>7} {'median s':>8} {'cpu s':>6} "
        f"{'rec/s':>10} {'peak RSS':>9}  (parent + children)"
    )
    for records in args.records:
        suffix = ".ndjson.gz" if args.gzip else ".ndjson"
        path = os.path.join(args.dir, f"usage-{records}{suffix}")
        if not os.path.exists(path):
            generate(records, path, compress=args.gzip)
        for workers in args.workers:
            runs = sorted(
                (measure(path, workers, args.console_script) for _ in range(args.runs)),
                key=lambda r: r["wall"],
            )
            best, median = runs[0], runs[len(runs) // 2]
            peak = max(runs, key=lambda r: r["self_kib"] + r["children_kib"])
            total_mib = (peak["self_kib"] + peak["children_kib"]) / 1024
            print(
                f"{records:>9} {workers or 'auto':>7} {best['wall']:>7.2f} {median['wall']:>8.2f} "
                f"{best['cpu']:>6.2f} {best['lines'] / best['wall']:>10,.0f} "
                f"{total_mib:>7.1f}MB  ({peak['self_kib'] / 1024:.0f} + "
                f"{peak['children_kib'] / 1024:.0f} in {peak['children']:.0f})"
                f"   counted {best['counted']}, skipped {best['skipped']}, "
                f"groups {best['groups']}"
            )
    print(f"load average {_load()} at end")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
