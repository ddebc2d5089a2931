"""Time the dashboard's overview and /metrics, the server in its own process.

Target (issue 11): the overview of a 90-day range over a history of 3 years of daily runs with
50 models renders in under 200 ms server time, and ``/metrics`` in under 50 ms, with 20
concurrent clients. A SQLite history is filled with one daily run per day, every model in each
(rows inserted in bulk through the store's schema), then ``python -m recon_job serve`` serves it
on 127.0.0.1 in a separate process, so the clients (threads of this process, plain keep-alive
``http.client`` connections) never share the server's interpreter. Printed, seconds, as seen by
the client (an upper bound of the server's time):

- the first overview the fresh server computes (nothing compiled or cached yet);
- overviews of ranges not computed before, one client at a time (each 90 days, shifted a day);
- one range viewed by 20 clients at once (computed once, then served from the cache);
- ``/metrics`` with 20 clients.

    python bench/bench_dashboard.py                   # 3 years x 50 models, 20 clients
    python bench/bench_dashboard.py --days 365 --models 20 --clients 10 --requests 100
"""

from __future__ import annotations

import argparse
import http.client
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import create_engine, insert

from recon_job.compare import reconcile
from recon_job.models import Tolerance, Usage, UsageKey, UsageTotals
from recon_job.store import HistoryStore
from recon_job.store.schema import run_groups, runs
from recon_job.windows import daily

KEY = "bench-" + "k" * 24
LAST = date(2026, 3, 31)


def fill(url: str, days: int, models: int) -> None:
    """One finished daily run per day with ``models`` groups, inserted in bulk."""
    HistoryStore(url).close()
    engine = create_engine(url)
    names = [f"model-{n:02d}" for n in range(models)]
    with engine.begin() as conn:
        for offset in range(days):
            day = LAST - timedelta(days=days - 1 - offset)
            local = {
                UsageKey(day, m): Usage(1000 + n, 0, 100, 10, Decimal("0.25"))
                for n, m in enumerate(names)
            }
            openai = {UsageKey(day, m): Usage(1000, 0, 100, 10, Decimal("0.24")) for m in names}
            result = reconcile(
                UsageTotals(groups=local),
                UsageTotals(groups=openai),
                window=daily(day),
                tolerance=Tolerance(),
            )
            started = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
                days=1, hours=6
            )
            inserted = conn.execute(
                insert(runs).values(
                    window_kind="daily",
                    window_start=day,
                    window_end=day + timedelta(days=1),
                    window_key=f"daily:{day}",
                    status=str(result.status),
                    trigger="bench",
                    started_at=started,
                    finished_at=started,
                    tool_version="bench",
                    threshold_pct=Decimal(5),
                    local_input_tokens=0,
                    local_cached_tokens=0,
                    local_output_tokens=0,
                    local_requests=0,
                    local_cost=result.local.cost,
                    openai_input_tokens=0,
                    openai_cached_tokens=0,
                    openai_output_tokens=0,
                    openai_requests=0,
                    openai_cost=result.openai.cost,
                    pending_days="[]",
                )
            ).inserted_primary_key
            assert inserted is not None
            run_id = inserted[0]
            conn.execute(
                insert(run_groups),
                [
                    {
                        "run_id": run_id,
                        "day": g.key.day,
                        "model": g.key.model,
                        "local_input_tokens": g.local.input_tokens,
                        "local_cached_tokens": 0,
                        "local_output_tokens": g.local.output_tokens,
                        "local_requests": 10,
                        "local_cost": g.local.cost,
                        "openai_input_tokens": g.openai.input_tokens,
                        "openai_cached_tokens": 0,
                        "openai_output_tokens": g.openai.output_tokens,
                        "openai_requests": 10,
                        "openai_cost": g.openai.cost,
                        "diff_tokens": int(g.comparison.tokens.difference),
                        "diff_requests": 0,
                        "diff_cost": g.comparison.cost.difference,
                        "tokens_pct": g.comparison.tokens.pct,
                        "requests_pct": None,
                        "cost_pct": g.comparison.cost.pct,
                        "status": str(g.status),
                    }
                    for g in result.groups
                ],
            )
    engine.dispose()


class Server:
    """``python -m recon_job serve`` over ``url`` in a child process, on a free port."""

    def __init__(self, url: str, log: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECON_")}
        env.update(
            RECON_DATABASE_URL=url,
            RECON_DASHBOARD_KEY=KEY,
            RECON_LOG_LEVEL="warning",
        )
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "recon_job", "serve", "--listen", f"127.0.0.1:{self.port}"],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _ = get(connect(self.port), "/livez", {})
                if status == 200:
                    return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"the server did not start; see {log}:\n{log.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


def connect(port: int) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", port, timeout=120)


def get(conn: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> tuple[int, float]:
    """One GET on a kept-alive connection: its status and latency (seconds, body read)."""
    t0 = time.perf_counter()
    conn.request("GET", path, headers=headers)
    answer = conn.getresponse()
    answer.read()
    return answer.status, time.perf_counter() - t0


def hammer(port: int, paths: list[str], clients: int, headers: dict[str, str]) -> list[float]:
    """``clients`` threads, each asking for every path of ``paths`` in turn; every latency."""
    times: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(clients)

    def client() -> None:
        conn = connect(port)
        start.wait()
        for path in paths:
            status, elapsed = get(conn, path, headers)
            assert status == 200, status
            with lock:
                times.append(elapsed)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return times


def report(name: str, times: list[float]) -> None:
    ordered = sorted(times)
    p95 = ordered[max(math.ceil(len(ordered) * 0.95) - 1, 0)]
    print(
        f"{name}: n={len(times)} median={statistics.median(times):.3f}s p95={p95:.3f}s "
        f"max={ordered[-1]:.3f}s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=3 * 365)
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=5, help="per client")
    parser.add_argument("--ranges", type=int, default=10, help="uncached ranges, one at a time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'history.db'}"
        t0 = time.perf_counter()
        fill(url, args.days, args.models)
        print(
            f"history: {args.days} runs x {args.models} models in {time.perf_counter() - t0:.1f}s"
        )
        server = Server(url, Path(tmp) / "server.log")
        try:
            headers = {"Authorization": f"Bearer {KEY}", "Accept": "text/html"}

            def overview(end: date) -> str:
                return f"/usage-api?start_date={end - timedelta(days=89)}&end_date={end}"

            first = hammer(server.port, [overview(LAST)], 1, headers)
            report("overview 90 days, first view of a fresh server (uncached)", first)
            ranges = [overview(LAST - timedelta(days=n)) for n in range(1, args.ranges + 1)]
            report(
                "overview 90 days, uncached ranges, 1 client",
                hammer(server.port, ranges, 1, headers),
            )
            report(
                f"overview 90 days, {args.clients} clients (one range, cached)",
                hammer(server.port, [overview(LAST)] * args.requests, args.clients, headers),
            )
            report(
                f"/metrics, {args.clients} clients",
                hammer(server.port, ["/metrics"] * args.requests * 4, args.clients, {}),
            )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
