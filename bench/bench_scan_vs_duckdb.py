"""Cold NDJSON scan of recon-job against DuckDB on the same file, same machine, same run (issue 13).

Every measurement runs in a fresh interpreter (a *cold* scan: imports included, no cache), and
the runs alternate recon-job (workers 1 and auto) with DuckDB so the shared machine's load
falls on all of them alike. recon-job is ``NdjsonLogSource.fetch`` over March 2026 (what
``recon-job run --no-cache`` does for the file's month); DuckDB is ``read_json(...,
format='newline_delimited', ignore_errors=true)`` + ``GROUP BY day, model`` with the same token
sums (its counts are close, not exact: it does not classify skip reasons). Peak RSS is the
process's own peak plus every child's (``bench_ndjson.ChildPeaks``).

The recon-job rows use the C fast path (``_fastscan.c``) when it is built, as an install with a
C compiler does; ``--python`` adds the same rows with it off (the Python scan alone, as on a
machine without a compiler).

``--breakdown`` times the stages of the recon-job scan one by one, in one process: importing the
source modules, reading the raw bytes, splitting them into lines (``files.read_lines``), the C
fast path over those lines alone (``_fastscan.scan_block``, with the lines it hands back), the whole
in-process scan with it and without it, and without ``dedupe``; worker start-up and IPC is the
auto row against workers 1.

    python bench/bench_scan_vs_duckdb.py --runs 5 --breakdown --python
    python bench/bench_scan_vs_duckdb.py --records 10000000 --runs 1   # memory at 10M
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ndjson import BenchPricer, ChildPeaks
from gen_ndjson import generate

DUCKDB_QUERY = """
with r as (
  select * from read_json(?, format = 'newline_delimited', ignore_errors = true, columns = {
    timestamp: 'VARCHAR', model: 'VARCHAR', prompt_tokens: 'BIGINT',
    completion_tokens: 'BIGINT', input_tokens: 'BIGINT', output_tokens: 'BIGINT',
    cached_tokens: 'BIGINT', usage: 'JSON'})),
d as (
  select
    case when regexp_full_match(timestamp, '[0-9]+')
      then cast(to_timestamp(cast(timestamp as bigint) / 1000) at time zone 'UTC' as date)
      else cast(try_cast(timestamp as timestamptz) at time zone 'UTC' as date) end as day,
    model,
    coalesce(prompt_tokens, input_tokens, cast(usage->>'prompt_tokens' as bigint),
             cast(usage->>'input_tokens' as bigint)) as inp,
    coalesce(completion_tokens, output_tokens, cast(usage->>'completion_tokens' as bigint),
             cast(usage->>'output_tokens' as bigint)) as outp,
    coalesce(cached_tokens, cast(usage->'prompt_tokens_details'->>'cached_tokens' as bigint),
             cast(usage->'input_tokens_details'->>'cached_tokens' as bigint), 0) as cached
  from r)
select day, model, count(*), sum(inp), sum(outp), sum(cached) from d
where day >= date '2026-03-01' and day < date '2026-04-01' and model is not null and inp >= 0
group by all
"""


def _peak_kib(peaks: ChildPeaks) -> tuple[int, int]:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, sum(peaks.peaks_kib.values())


def child_recon(path: str, workers: int, python: bool = False) -> dict[str, float]:
    """One cold recon-job scan (imports included in ``wall``); ``python``: without the C path."""
    if python:
        os.environ["RECON_NDJSON_FASTSCAN"] = "0"  # worker processes inherit it
    with ChildPeaks() as peaks:
        started = time.perf_counter()
        from recon_job.cli.common import structlog_without_rich

        structlog_without_rich()  # as every recon-job command starts
        from recon_job.models import Window
        from recon_job.sources.ndjson.source import NdjsonLogSource, NdjsonOptions

        imported = time.perf_counter()
        source = NdjsonLogSource(NdjsonOptions(paths=(path,), workers=workers), BenchPricer())
        totals = source.fetch(Window("monthly", date(2026, 3, 1), date(2026, 4, 1)))
        wall = time.perf_counter() - started
    own, kids = _peak_kib(peaks)
    return {
        "wall": wall,
        "import": imported - started,
        "counted": totals.info["records_counted"],
        "skipped": sum(totals.skipped.values()),
        "groups": len(totals.groups),
        "kib": own + kids,
    }


def child_duckdb(path: str) -> dict[str, float]:
    """One cold DuckDB scan (import included in ``wall``)."""
    with ChildPeaks() as peaks:
        started = time.perf_counter()
        import duckdb

        imported = time.perf_counter()
        rows = duckdb.execute(DUCKDB_QUERY, [path]).fetchall()
        wall = time.perf_counter() - started
    own, kids = _peak_kib(peaks)
    return {
        "wall": wall,
        "import": imported - started,
        "counted": sum(r[2] for r in rows),
        "skipped": -1,
        "groups": len(rows),
        "kib": own + kids,
    }


def child_breakdown(path: str) -> dict[str, float]:
    """Stage timings of the in-process scan, each over the whole file."""
    out: dict[str, float] = {}
    t = time.perf_counter()
    import orjson

    from recon_job.models import Window
    from recon_job.sources.ndjson import source as ndjson_source
    from recon_job.sources.ndjson.files import Task, read_lines
    from recon_job.sources.ndjson.skips import Skips
    from recon_job.sources.ndjson.source import NdjsonLogSource, NdjsonOptions

    out["import"] = time.perf_counter() - t
    t = time.perf_counter()
    with open(path, "rb") as f:
        while f.read(1 << 20):
            pass
    out["raw_read"] = time.perf_counter() - t
    t = time.perf_counter()
    info: dict[str, int] = {"lines_read": 0}
    all_lines = []
    for lines in read_lines(Task(path), info, Skips()):
        all_lines.append(lines)
    out["split_lines"] = time.perf_counter() - t
    march = Window("monthly", date(2026, 3, 1), date(2026, 4, 1))
    fast_block = ndjson_source._fast_block
    if fast_block is not None:
        scan = ndjson_source._Scan(NdjsonOptions(paths=(path,), workers=1), march)
        for model in ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "o4-mini-2025-04-16", "gpt-5-mini"):
            scan.family_of(None, None, model)
        t = time.perf_counter()
        handed_back = sum(
            len(fast_block(b"\n".join(lines), len(lines), scan.c_config)[1]) for lines in all_lines
        )
        out["c_fast_path"] = time.perf_counter() - t
        out["lines_handed_back"] = handed_back
    loads, bad = orjson.loads, orjson.JSONDecodeError
    t = time.perf_counter()
    for lines in all_lines:
        for line in lines:
            # try/except as in the scan loop: contextlib.suppress would cost a call per line.
            try:  # noqa: SIM105
                loads(line)
            except bad:
                pass
    out["orjson_loads"] = time.perf_counter() - t
    del all_lines
    source = NdjsonLogSource(NdjsonOptions(paths=(path,), workers=1), BenchPricer())
    t = time.perf_counter()
    source.fetch(march)
    out["scan_workers_1"] = time.perf_counter() - t
    fast, ndjson_source._fast_block = ndjson_source._fast_block, None
    source = NdjsonLogSource(NdjsonOptions(paths=(path,), workers=1), BenchPricer())
    t = time.perf_counter()
    source.fetch(march)
    out["scan_workers_1_python"] = time.perf_counter() - t
    ndjson_source._fast_block = fast
    # The request-id fingerprints (8 bytes a record) grow with the file: their share of the
    # time too.
    source = NdjsonLogSource(NdjsonOptions(paths=(path,), workers=1, dedupe=False), BenchPricer())
    t = time.perf_counter()
    source.fetch(march)
    out["scan_workers_1_no_dedupe"] = time.perf_counter() - t
    return out


def measure(kind: str, path: str, workers: int = 1) -> dict[str, float]:
    """Run one child in a fresh interpreter; its figures come back as JSON on the last line."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, path, "--workers", str(workers)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--breakdown", action="store_true")
    parser.add_argument("--python", action="store_true", help="also without the C fast path")
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "recon-bench"))
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, path = args.child
        if kind in ("recon", "python"):
            print(json.dumps(child_recon(path, args.workers, python=kind == "python")))
        elif kind == "duckdb":
            print(json.dumps(child_duckdb(path)))
        else:
            print(json.dumps(child_breakdown(path)))
        return

    os.makedirs(args.dir, exist_ok=True)
    path = os.path.join(args.dir, f"usage-{args.records}.ndjson")
    if not os.path.exists(path):
        generate(args.records, path)
    size = os.path.getsize(path) / 2**20
    print(f"{args.records} records, {size:.0f} MiB; cpus {os.cpu_count()}; load {_load()} at start")
    kinds = {"recon workers 1": ("recon", 1), "recon workers auto": ("recon", 0)}
    if args.python:
        kinds.update({"python workers 1": ("python", 1), "python workers auto": ("python", 0)})
    kinds["duckdb"] = ("duckdb", 1)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in kinds}
    for _ in range(args.runs):
        for name, (kind, workers) in kinds.items():
            results[name].append(measure(kind, path, workers))
    duck = statistics.median(r["wall"] for r in results["duckdb"])
    duck_best = min(r["wall"] for r in results["duckdb"])
    print(f"{'':>18} {'best s':>7} {'median s':>8} {'import s':>8} {'peak MiB':>8} {'ratio':>11}")
    for name, runs in results.items():
        best = min(r["wall"] for r in runs)
        median = statistics.median(r["wall"] for r in runs)
        imp = statistics.median(r["import"] for r in runs)
        peak = max(r["kib"] for r in runs) / 1024
        last = runs[-1]
        print(
            f"{name:>18} {best:>7.2f} {median:>8.2f} {imp:>8.3f} {peak:>8.0f} "
            f"{best / duck_best:>5.1f}/{median / duck:<5.1f} counted {last['counted']:.0f}, "
            f"skipped {last['skipped']:.0f}, groups {last['groups']:.0f}"
        )
    print("ratio: best/best and median/median against DuckDB")
    if args.breakdown:
        stages = measure("breakdown", path)
        print(
            "breakdown (one process, workers 1): "
            + ", ".join(
                f"{k} {v:.2f}s" if isinstance(v, float) else f"{k} {v}" for k, v in stages.items()
            )
        )
    print(f"load {_load()} at end")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
