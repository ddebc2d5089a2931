"""The Costs source keeps what OpenAI billed with its quantity: the stale-price check's input.

Served by the fake OpenAI (a real HTTP server) with ``quantity`` / ``quantity_unit`` on its
line items (reference §1.5, §5.B), then compared with the bundled price table.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import requests

from recon_job.config import load_price_table
from recon_job.diagnosis.prices import check_prices, price_sentence
from recon_job.findings import BilledLine
from recon_job.modelnames import ModelNamer
from recon_job.models import Usage, UsageKey, Window
from recon_job.sources.openai.base import OpenAIOptions
from recon_job.sources.openai.costs import OpenAICostsSource
from tests.fakeopenai import (  # noqa: F401
    FakeOpenAI,
    fake_openai_fixture,
    fast_session_fixture,
)

AUG1 = date(2026, 8, 1)
GPT4O = "gpt-4o-2024-08-06"
D = Decimal


def fetch(fake: FakeOpenAI, session: requests.Session, days: int = 1, **overrides: Any) -> Any:
    values: dict[str, Any] = {"base_url": fake.base_url, "admin_key": fake.admin_key}
    values.update(overrides)
    window = Window("range", AUG1, AUG1 + timedelta(days=days))
    return OpenAICostsSource(OpenAIOptions(**values), session).fetch(window)


def test_billed_lines_carry_the_quantity_summed_per_day_model_piece_and_tier(
    fake_openai: FakeOpenAI, fast_session: requests.Session
) -> None:
    # Grouped by project too: the two projects' lines of one piece add up into one line.
    fake_openai.add_cost(
        AUG1, f"{GPT4O}, input", "0.1336", project_id="p1", quantity=53440, quantity_unit="tokens"
    )
    fake_openai.add_cost(
        AUG1, f"{GPT4O}, input", "0.25", project_id="p2", quantity=100_000, quantity_unit="tokens"
    )
    fake_openai.add_cost(
        AUG1,
        "priority | gpt-5-2025-08-07, cached input",
        "0.0072000000000000",
        project_id="p1",
        quantity="28800",
        quantity_unit="tokens",
    )
    fake_openai.add_cost(
        AUG1,
        "gpt-audio-mini-2025-12-15 audio, input",
        0.5,
        quantity=50,
        quantity_unit="1000_tokens",
    )

    totals = fetch(fake_openai, fast_session, group_by=("model", "project_id"))

    assert totals.billed_lines == (
        BilledLine(
            AUG1, GPT4O, "input", "standard", D("0.3836"), D(153440), "tokens", "completions"
        ),
        BilledLine(
            AUG1, "gpt-5-2025-08-07", "cached input", "priority", D("0.0072"), D(28800), "tokens",
            "completions",
        ),
        BilledLine(
            AUG1, "gpt-audio-mini-2025-12-15", "audio input", "standard", D("0.5"), D(50),
            "1000_tokens", "completions",
        ),
    )  # fmt: skip
    # The costs themselves are what they always were.
    assert totals.groups[UsageKey(AUG1, GPT4O, "p2")] == Usage(cost=D("0.25"))
    assert "costs_results_without_quantity" not in totals.info


def test_a_line_without_a_quantity_is_left_out_and_counted(
    fake_openai: FakeOpenAI, fast_session: requests.Session
) -> None:
    fake_openai.add_cost(
        AUG1, f"{GPT4O}, output", "0.10646", quantity=10646, quantity_unit="tokens"
    )
    fake_openai.add_cost(AUG1, "web search tool calls", "0.02")  # quantity null (§5.B)
    fake_openai.add_cost(AUG1, f"{GPT4O}, input", "0.5", quantity=200_000)  # no unit

    totals = fetch(fake_openai, fast_session)

    assert [(b.model, b.piece) for b in totals.billed_lines] == [(GPT4O, "output")]
    assert totals.info["costs_results_without_quantity"] == 2
    assert totals.total.cost == D("0.62646")


def test_costs_without_any_quantity_report_no_billed_lines_and_no_count(
    fake_openai: FakeOpenAI, fast_session: requests.Session
) -> None:
    fake_openai.add_cost(AUG1, f"{GPT4O}, input", "1.25")

    totals = fetch(fake_openai, fast_session)

    assert totals.billed_lines == ()
    assert "costs_results_without_quantity" not in totals.info


def test_a_price_change_served_by_the_api_is_found_with_its_day(
    fake_openai: FakeOpenAI, fast_session: requests.Session
) -> None:
    # gpt-4o input is $2.50/1M in the bundled table; OpenAI bills $2.00 from Aug 4 on.
    for offset in range(6):
        day = AUG1 + timedelta(days=offset)
        amount = "2.50" if offset < 3 else "2.00"
        fake_openai.add_cost(
            day, f"{GPT4O}, input", amount, quantity=1_000_000, quantity_unit="tokens"
        )
        fake_openai.add_cost(
            day, f"{GPT4O}, output", "10", quantity=1_000_000, quantity_unit="tokens"
        )
    table = load_price_table()

    totals = fetch(fake_openai, fast_session, days=6)
    checked = check_prices(totals.billed_lines, table, ModelNamer())

    assert checked.compared == 12
    assert [price_sentence(f) for f in checked.findings] == [
        "OpenAI bills gpt-4o input at $2.00/1M since 2026-08-04; your table: $2.50"
    ]
