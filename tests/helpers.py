"""Test doubles and fixtures' data shared by several test modules."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import ClassVar

from recon_job.models import Tier, Usage

D = Decimal
#: The repository root.
ROOT = Path(__file__).resolve().parent.parent
#: ``tests/fixtures``: API pages, NDJSON, CSV and billing samples.
FIXTURES = ROOT / "tests" / "fixtures"

#: A ``[[sources]] kind = "sql"`` column mapping for the app's ``token_usage`` table, as the
#: issue shows it: canonical name -> column name.
TOKEN_USAGE_COLUMNS = {
    "timestamp": "created_at",
    "model": "model_used",
    "input_tokens": "prompt_tokens",
    "output_tokens": "completion_tokens",
    "cached_tokens": "cached_tokens",
    "cost": "calculated_cost_cents",
    "request_id": "openai_request_id",
}


class FakePricer:
    """USD 1 per 1M uncached input, 0.5 per 1M cached, 2 per 1M output; tier multipliers.

    Knows only ``gpt-4o-mini`` and ``gpt-4.1`` (aliases, not snapshots), so anything else is
    unpriced. Records every call so tests can check aggregates are priced once.
    """

    MULTIPLIER: ClassVar[dict[str, Decimal]] = {
        "standard": D(1),
        "batch": D("0.5"),
        "flex": D("0.5"),
        "priority": D(2),
    }

    def __init__(self) -> None:
        self.calls: list[tuple[str, date, str, Usage]] = []

    def cost(
        self, model: str, day: date, tier: Tier, usage: Usage, variant: str | None = None
    ) -> Decimal | None:
        self.calls.append((model, day, tier, usage))
        if model not in ("gpt-4o-mini", "gpt-4.1"):
            return None
        tokens = (
            usage.uncached_input_tokens * D("0.000001")
            + usage.cached_tokens * D("0.0000005")
            + usage.output_tokens * D("0.000002")
        )
        return tokens * self.MULTIPLIER[tier]


def together(target: Callable[[], None], count: int = 2) -> list[BaseException]:
    """Run ``target`` in ``count`` threads released at the same moment; the errors they raised
    (a thread's own error would be lost). The barrier has a timeout: a thread that fails before
    it breaks it for the others instead of hanging them."""
    barrier = threading.Barrier(count, timeout=60)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            target()
        except BaseException as e:  # collected for the caller to assert on
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors
