"""Time the SQL table source on PostgreSQL and show it never pulls the rows into Python.

For each row count a throw-away database is created on the server, filled server-side
(``INSERT ... SELECT generate_series``: a year of ``token_usage`` rows, 2025-04-01 to
2026-04-01), indexed on ``created_at`` and analysed. Then, in a fresh child process each,
``SqlTableSource.fetch`` runs for March 2026 (about 8.5 % of the rows) and for the whole year
(every row). The child reports the wall time of each fetch and its peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) just before and just after the fetches; the
growth is what the aggregation costs in Python, and it should not depend on the row count.
For contrast, ``--baseline`` also measures what merely fetching the month's raw rows into
Python costs. The database is dropped at the end, also on failure.

    RECON_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres \\
        python bench/bench_sql_table.py                     # 100k and 1M rows, 3 runs each
    python bench/bench_sql_table.py --url postgresql+psycopg://postgres@127.0.0.1/postgres \\
        --rows 1000000 --runs 5 --baseline
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from datetime import date
from typing import Any

import sqlalchemy as sa

#: The source's mapping for the issue's table shape.
COLUMNS = {
    "timestamp": "created_at",
    "model": "model_used",
    "input_tokens": "prompt_tokens",
    "output_tokens": "completion_tokens",
    "cached_tokens": "cached_tokens",
    "cost": "calculated_cost_cents",
    "request_id": "openai_request_id",
    "project_id": "project_id",
    "batch": "is_batch",
    "service_tier": "service_tier",
}

DDL = """
CREATE TABLE token_usage (
    id bigserial PRIMARY KEY,
    model_used text,
    prompt_tokens integer,
    completion_tokens integer,
    cached_tokens integer,
    calculated_cost_cents numeric(12, 4),
    openai_request_id text,
    created_at timestamptz NOT NULL,
    environment text,
    project_id text,
    is_batch boolean,
    service_tier text
)
"""

# A year of rows, evenly spread; a quarter carry a logged cost, a few are unusable (skipped).
LOAD = """
INSERT INTO token_usage (model_used, prompt_tokens, completion_tokens, cached_tokens,
    calculated_cost_cents, openai_request_id, created_at, environment, project_id, is_batch,
    service_tier)
SELECT
    (ARRAY['gpt-4o-mini', 'gpt-4o', 'gpt-4.1-mini', 'gpt-5-mini', 'o4-mini'])[1 + i % 5],
    CASE WHEN i % 1000 = 7 THEN NULL ELSE 200 + (i * 7919) % 4000 END,
    20 + (i * 104729) % 800,
    (i % 3) * 50,
    CASE WHEN i % 4 = 0 THEN ((i * 31) % 5000) / 100.0 END,
    'req_' || i,
    timestamptz '2025-04-01 00:00:00+00' + make_interval(secs => i * (365 * 86400.0 / {rows})),
    CASE WHEN i % 10 = 0 THEN 'staging' ELSE 'production' END,
    'proj_' || (i % 3),
    i % 20 = 0,
    CASE i % 7 WHEN 0 THEN 'flex' WHEN 1 THEN 'priority' ELSE 'default' END
FROM generate_series(0::bigint, {rows} - 1) AS i
"""

WINDOWS = {
    "month": ("monthly", date(2026, 3, 1), date(2026, 4, 1)),
    "year": ("range", date(2025, 4, 1), date(2026, 4, 1)),
}


def child(url: str, runs: int, baseline: bool) -> None:
    """Fetch in this fresh process and print the figures as JSON (the child side)."""
    from recon_job.config import load_price_table
    from recon_job.models import Window
    from recon_job.sources.sql import SqlTableOptions, SqlTableSource

    options = SqlTableOptions(
        url=url,
        table="token_usage",
        columns=COLUMNS,
        cost_unit="cents",
        filter="environment = 'production'",
    )
    source = SqlTableSource(options, load_price_table())
    windows = {name: Window(*spec) for name, spec in WINDOWS.items()}  # type: ignore[arg-type]
    # Warm up imports, the driver and the dialect on a window with no rows, then measure.
    source.fetch(Window("daily", date(2020, 1, 1), date(2020, 1, 2)))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    figures: dict[str, Any] = {"before_kib": before}
    for name, window in windows.items():
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            totals = source.fetch(window)
            times.append(time.perf_counter() - started)
        figures[name] = {
            "best_s": min(times),
            "median_s": statistics.median(times),
            "rows_counted": totals.info["rows_counted"],
            "skipped": sum(totals.skipped.values()),
            "groups": len(totals.groups),
            "cost": str(totals.total.cost),
            "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        }
    if baseline:
        # What pulling the month's rows into Python would cost instead.
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            started = time.perf_counter()
            rows = conn.exec_driver_sql(
                "SELECT * FROM token_usage WHERE created_at >= '2026-03-01 00:00+00' "
                "AND created_at < '2026-04-01 00:00+00'"
            ).all()
            figures["baseline"] = {
                "rows": len(rows),
                "seconds": time.perf_counter() - started,
                "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            }
        engine.dispose()
    print(json.dumps(figures))


def measure(url: str, runs: int, baseline: bool) -> dict[str, Any]:
    """One child process; its figures come back as JSON on the last line."""
    command = [sys.executable, __file__, "--child", "--url", url, "--runs", str(runs)]
    done = subprocess.run(
        [*command, *(["--baseline"] if baseline else [])],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def load(admin: sa.Engine, name: str, rows: int) -> tuple[str, float]:
    """Create and fill database ``name``; (its URL, seconds taken)."""
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    started = time.perf_counter()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(DDL)
        conn.execute(sa.text(LOAD.format(rows=int(rows))))
        conn.exec_driver_sql("CREATE INDEX token_usage_created_at_idx ON token_usage (created_at)")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE token_usage")
    engine.dispose()
    return url, time.perf_counter() - started


def plan(url: str) -> str:
    """The top of PostgreSQL's plan for the month query, to show how the rows are reached."""
    from recon_job.config import load_price_table
    from recon_job.models import Window
    from recon_job.sources.sql import SqlTableOptions, SqlTableSource

    options = SqlTableOptions(
        url=url, table="token_usage", columns=COLUMNS, filter="environment = 'production'"
    )
    source = SqlTableSource(options, load_price_table())
    with source.connect() as conn:
        month = Window(*WINDOWS["month"])  # type: ignore[arg-type]
        compiled = source.statement(conn, month).compile(conn)
        lines = [r[0] for r in conn.exec_driver_sql("EXPLAIN " + str(compiled), compiled.params)]
    return " / ".join(line.strip() for line in lines if "Scan" in line or "Aggregate" in line)


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("RECON_TEST_POSTGRES_URL"))
    parser.add_argument("--rows", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.url:
        parser.error("give --url or set RECON_TEST_POSTGRES_URL (a PostgreSQL server URL)")
    if args.child:
        child(args.url, args.runs, args.baseline)
        return

    admin = sa.create_engine(args.url, isolation_level="AUTOCOMMIT")
    print(f"server {admin.url.render_as_string(hide_password=True)}, {args.runs} runs each")
    for rows in args.rows:
        name = f"recon_bench_{uuid.uuid4().hex[:10]}"
        try:
            url, load_s = load(admin, name, rows)
            print(f"\n{rows:,} rows loaded and indexed in {load_s:.1f} s; plan: {plan(url)}")
            figures = measure(url, args.runs, args.baseline)
            before = figures["before_kib"] / 1024
            for window in WINDOWS:
                f = figures[window]
                print(
                    f"  {window:5}  rows counted {f['rows_counted']:>9,}"
                    f"  skipped {f['skipped']:>5,}  groups {f['groups']:>5}"
                    f"  best {f['best_s']:.3f} s  median {f['median_s']:.3f} s"
                    f"  peak RSS {before:.1f} -> {f['peak_kib'] / 1024:.1f} MiB"
                )
            if "baseline" in figures:
                b = figures["baseline"]
                print(
                    f"  baseline: fetching the month's {b['rows']:,} raw rows into Python took "
                    f"{b['seconds']:.2f} s, peak RSS -> {b['peak_kib'] / 1024:.1f} MiB"
                )
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


if __name__ == "__main__":
    main()
