"""A history database with a few days of runs, for the web tests."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from recon_job.compare import reconcile
from recon_job.models import Tolerance, Usage, UsageKey, UsageTotals
from recon_job.store import HistoryStore
from recon_job.windows import daily

#: The clock of the web tests: 2026-03-17 12:00 UTC, so the last settled day is 2026-03-15.
NOW = datetime(2026, 3, 17, 12, 0, tzinfo=UTC)
KEY = "k" * 24


def usage(tokens: int, requests: int, cost: str) -> Usage:
    """Input tokens, no cached, a tenth as output."""
    return Usage(tokens, 0, tokens // 10, requests, Decimal(cost))


def record_day(
    store: HistoryStore, day: date, local: dict[str, Usage], openai: dict[str, Usage]
) -> int:
    """A finished daily run of ``day`` with these models on each side; its id."""
    window = daily(day)
    result = reconcile(
        UsageTotals(groups={UsageKey(day, m): u for m, u in local.items()}),
        UsageTotals(groups={UsageKey(day, m): u for m, u in openai.items()}),
        window=window,
        tolerance=Tolerance(),
    )
    started = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1, hours=6)
    run_id = store.start_run(window, started_at=started, trigger="test")
    store.finish_run(run_id, result, finished_at=started + timedelta(seconds=2))
    return run_id


def record_failure(store: HistoryStore, day: date, reason: str, message: str) -> int:
    """A failed daily run of ``day``."""
    started = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1, hours=6)
    run_id = store.start_run(daily(day), started_at=started, trigger="test")
    store.fail_run(run_id, reason=reason, message=message, finished_at=started)
    return run_id


def seed(url: str) -> dict[str, int]:
    """2026-03-09..15: five reconciled or drifting days, one failed, one never run."""
    ids: dict[str, int] = {}
    same = usage(100_000, 100, "2.50")
    with HistoryStore(url) as store:
        for n in (9, 10, 11, 12):
            ids[f"03-{n}"] = record_day(
                store,
                date(2026, 3, n),
                {"gpt-4o": same, "gpt-4o-mini": usage(50_000, 80, "0.30")},
                {"gpt-4o": same, "gpt-4o-mini": usage(50_000, 80, "0.30")},
            )
        # OpenAI bills far more than the logs show on the 13th: a mismatch (red).
        ids["03-13"] = record_day(
            store,
            date(2026, 3, 13),
            {"gpt-4o": usage(100_000, 100, "2.50"), "gpt-4o-mini": usage(60_000, 90, "0.40")},
            {"gpt-4o": usage(150_000, 150, "3.75"), "gpt-4o-mini": usage(50_000, 80, "0.30")},
        )
        ids["03-14"] = record_failure(
            store, date(2026, 3, 14), "quota_exhausted", "OpenAI answered 429: quota exhausted"
        )
    return ids
