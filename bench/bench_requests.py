"""Time ``recon-job reconcile-requests`` and measure its peak memory (issue 13 item 4).

A deterministic billing CSV of ``--billed`` rows and an NDJSON log of ``--lines`` records are
generated on first use into ``--dir`` (kept for later runs), then the command a user types,
``python -m recon_job reconcile-requests BILLING --format json``, runs in a fresh process per
measurement. The log covers March 2026; ``--billing-days`` says how many of its days the
billing file covers (31: the whole month, so every unbilled record is pending; 3: the common
case of a few days' bill against a month of logs, most records out of scope).

What the log holds: one record per request (``req_<12 hex>``), half with a logged cost and
half priced from the price table, a few hundred logged twice (duplicates), a few without a
request id, and a few bad lines. The billing file bills 95% of the log's requests inside its
days (costs a little off or far off) plus ids the log does not have.

What is reported:

* **wall**: the child process's whole life (interpreter start, imports, reading, output).
* **peak RSS**: the child's ``ru_maxrss`` from ``os.wait4`` — the command reads the logs
  in-process (no worker processes), so this is the peak of every process it runs.
* the counts of the report, to check that a change kept the results.

    python bench/bench_requests.py                             # 200k billed x 2M lines, 31 days
    python bench/bench_requests.py --billing-days 3 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-5-mini")
MONTH_START = datetime(2026, 3, 1, tzinfo=UTC)
MONTH_SECONDS = 31 * 86400
DUPLICATE_EVERY = 5000
NO_ID_EVERY = 20011
BAD_EVERY = 50021


def generate(directory: Path, lines: int, billed: int, billing_days: int) -> tuple[Path, Path]:
    """Write the log and the billing file (once per size) and return their paths."""
    log = directory / f"requests-{lines}.ndjson"
    billing = directory / f"billing-{billed}-of-{lines}-{billing_days}d.csv"
    rng = random.Random(13)
    span = billing_days * 86400
    if not log.exists():
        with open(str(log) + ".tmp", "wb") as f:
            for i in range(lines):
                at = MONTH_START + timedelta(seconds=(i * MONTH_SECONDS) // lines)
                record: dict[str, object] = {
                    "timestamp": at.isoformat().replace("+00:00", "Z"),
                    "model": MODELS[i % len(MODELS)],
                    "request_id": f"req_{i:012x}",
                    "prompt_tokens": 200 + i % 5000,
                    "completion_tokens": 10 + i % 700,
                }
                if i % 2:
                    record["cost_usd"] = f"0.{i % 9000 + 100:06d}"
                if i % NO_ID_EVERY == 0:
                    del record["request_id"]
                f.write(orjson.dumps(record) + b"\n")
                if i % DUPLICATE_EVERY == 1:
                    f.write(orjson.dumps(record) + b"\n")  # the same request logged twice
                if i % BAD_EVERY == 0:
                    f.write(b"{not json\n")
        os.replace(str(log) + ".tmp", log)
    if not billing.exists():
        # The log's requests inside the billed days, 95% of them billed, then ids it lacks.
        in_span = [i for i in range(lines) if (i * MONTH_SECONDS) // lines < span]
        chosen = sorted(rng.sample(in_span, min(len(in_span), billed * 95 // 100)))
        with open(billing, "w", encoding="utf-8") as f:
            f.write("request_id,cost,created_at,model\n")
            for i in chosen:
                at = MONTH_START + timedelta(seconds=(i * MONTH_SECONDS) // lines)
                cost = f"0.{i % 9000 + 100 + (0 if i % 7 else 500):06d}"
                f.write(f"req_{i:012x},{cost},{at.isoformat()},{MODELS[i % len(MODELS)]}\n")
            for j in range(billed - len(chosen)):
                at = MONTH_START + timedelta(seconds=j % span)
                f.write(f"req_missing{j:08x},0.001000,{at.isoformat()},gpt-4o\n")
    return log, billing


def measure(log: Path, billing: Path, workdir: Path) -> dict[str, object]:
    """One ``reconcile-requests`` in a fresh process: wall seconds, peak RSS, counts."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RECON_", "OPENAI_"))},
        "RECON_LOG_PATHS": str(log),
        "RECON_DATABASE_URL": f"sqlite:///{workdir / 'history.db'}",
        "RECON_LOG_LEVEL": "warning",
        "OPENAI_ADMIN_KEY": "sk-admin-bench-not-used",
    }
    args = [
        sys.executable,
        "-m",
        "recon_job",
        "reconcile-requests",
        str(billing),
        "--format",
        "json",
    ]
    started = time.perf_counter()
    with subprocess.Popen(args, cwd=workdir, env=env, stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"reconcile-requests exited {proc.returncode}")
    doc = json.loads(out)
    return {
        "wall": wall,
        "peak_mib": usage.ru_maxrss / 1024,
        "counts": doc["counts"],
        "totals": doc["totals"],
        "skipped": doc["skipped"],
        "outside_span": doc["outside_span"],
        "duplicates": len(doc["errors"]["duplicate_request_ids"]),
    }


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--billed", type=int, default=200_000)
    parser.add_argument("--billing-days", type=int, default=31, choices=range(1, 32))
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "recon-bench"))
    args = parser.parse_args()
    directory = Path(args.dir)
    directory.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    log, billing = generate(directory, args.lines, args.billed, args.billing_days)
    size = log.stat().st_size >> 20
    print(f"data ready in {time.perf_counter() - started:.1f} s: {log} ({size} MiB)")
    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.2f} at start")
    with tempfile.TemporaryDirectory() as workdir:
        runs = [measure(log, billing, Path(workdir)) for _ in range(args.runs)]
    runs.sort(key=lambda r: float(r["wall"]))  # type: ignore[arg-type]
    best, peak = runs[0], max(float(r["peak_mib"]) for r in runs)  # type: ignore[arg-type]
    print(
        f"{args.billed:,} billed x {args.lines:,} log lines, billing over {args.billing_days} "
        f"day(s): best {best['wall']:.2f} s, peak RSS {peak:.0f} MiB (of {len(runs)} runs)"
    )
    print(f"  counts {best['counts']}")
    print(f"  totals {best['totals']}")
    print(
        f"  outside span {best['outside_span']}, skipped {best['skipped']}, "
        f"duplicate ids listed {best['duplicates']}"
    )
    print(f"load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
