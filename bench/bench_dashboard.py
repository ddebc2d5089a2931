"""Time the dashboard's overview and /metrics under concurrent clients.

Target (issue 11): the overview of a 90-day range over a history of 3 years of daily runs with
50 models renders in under 200 ms server time, and ``/metrics`` in under 50 ms, with 20
concurrent clients. A SQLite history is filled with one daily run per day, every model in each
(rows inserted in bulk through the store's schema), then the web application is served on
127.0.0.1 by uvicorn and 20 client threads ask for the overview (HTML) and /metrics. Printed:
the median and 95th percentile of each, seconds.

    python bench/bench_dashboard.py                   # 3 years x 50 models, 20 clients
    python bench/bench_dashboard.py --days 365 --models 20 --clients 10 --requests 100
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import requests
from sqlalchemy import create_engine, insert

from recon_job.compare import reconcile
from recon_job.models import Tolerance, Usage, UsageKey, UsageTotals
from recon_job.runtime import Metrics
from recon_job.store import HistoryStore
from recon_job.store.schema import Run, RunGroup
from recon_job.web import ServeProbes, WebContext, WebServer, create_app
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
            run_id = conn.execute(
                insert(Run).values(
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
            ).inserted_primary_key[0]
            conn.execute(
                insert(RunGroup),
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


def hammer(url: str, clients: int, per_client: int, headers: dict[str, str]) -> list[float]:
    """``clients`` threads, each asking ``per_client`` times; every latency in seconds."""
    times: list[float] = []
    lock = threading.Lock()

    def client() -> None:
        session = requests.Session()
        for _ in range(per_client):
            t0 = time.perf_counter()
            answer = session.get(url, headers=headers, timeout=60)
            elapsed = time.perf_counter() - t0
            assert answer.status_code == 200, answer.status_code
            with lock:
                times.append(elapsed)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return times


def report(name: str, times: list[float]) -> None:
    ordered = sorted(times)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    print(f"{name}: n={len(times)} median={statistics.median(times):.3f}s p95={p95:.3f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=3 * 365)
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=5, help="per client")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'history.db'}"
        t0 = time.perf_counter()
        fill(url, args.days, args.models)
        print(
            f"history: {args.days} runs x {args.models} models in {time.perf_counter() - t0:.1f}s"
        )
        now = datetime(LAST.year, LAST.month, LAST.day, tzinfo=UTC) + timedelta(days=2)
        ctx = WebContext(
            probes=ServeProbes(lambda: None),
            metrics=Metrics(),
            history_url=url,
            dashboard_key=KEY,
            clock=lambda: now,
        )
        server = WebServer(create_app(ctx), "127.0.0.1", 0).start()
        base = f"http://127.0.0.1:{server.port}"
        try:
            start = LAST - timedelta(days=89)
            overview = f"{base}/usage-api?start_date={start}&end_date={LAST}"
            headers = {"Authorization": f"Bearer {KEY}", "Accept": "text/html"}
            single = hammer(overview, 1, 3, headers)
            report("overview 90 days, 1 client", single)
            report(
                f"overview 90 days, {args.clients} clients",
                hammer(overview, args.clients, args.requests, headers),
            )
            report(
                f"/metrics, {args.clients} clients",
                hammer(f"{base}/metrics", args.clients, args.requests * 4, {}),
            )
        finally:
            server.stop()
            ctx.close()


if __name__ == "__main__":
    main()
