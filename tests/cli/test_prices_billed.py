"""``recon-job prices check`` asks OpenAI's Costs API what it billed and compares unit prices.

In process (click's CliRunner) against the fake OpenAI, a real HTTP server serving line items
with ``quantity`` / ``quantity_unit``; the clock is frozen at 2026-08-12 06:00 UTC, so with the
default 24 settle hours the last settled day is 2026-08-10 and ``--days 7`` is Aug 4-10.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from recon_job.cli import prices as prices_command
from tests.e2e import cli, workdir_fixture  # noqa: F401
from tests.fakeopenai import FakeOpenAI, fake_openai_fixture  # noqa: F401

NOW = datetime(2026, 8, 12, 6, 0, tzinfo=UTC)
AUG4 = date(2026, 8, 4)
GPT4O = "gpt-4o-2024-08-06"
SENTENCE = "OpenAI bills gpt-4o input at $2.00/1M since 2026-08-07; your table: $2.50"


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prices_command, "utcnow", lambda: NOW)


def billed_week(fake: FakeOpenAI, *, change_on: date | None = date(2026, 8, 7)) -> None:
    """gpt-4o at the table's prices ($2.50 / $10 per 1M), its input at $2.00 from ``change_on``."""
    for offset in range(7):
        day = AUG4 + timedelta(days=offset)
        changed = change_on is not None and day >= change_on
        fake.add_cost(
            day,
            f"{GPT4O}, input",
            "4.00" if changed else "5.00",
            quantity=2_000_000,
            quantity_unit="tokens",
        )
        fake.add_cost(day, f"{GPT4O}, output", "5", quantity=500, quantity_unit="1000_tokens")


def test_a_price_change_in_the_last_week_is_listed_with_its_day_and_exits_1(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    billed_week(fake_openai)

    ran = cli(workdir, fake_openai, "prices", "check")

    assert ran.code == 1, ran.stdout + ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0] == "history: no run recorded yet (the last 20 at most)"
    assert "billed prices 2026-08-04..2026-08-10: 14 line(s) compared, 1 price(s) differ" in lines
    assert f"  {SENTENCE}" in lines
    (request,) = fake_openai.requests
    assert request.path.endswith("/organization/costs")
    assert request.param("start_time") == str(int(datetime(2026, 8, 4, tzinfo=UTC).timestamp()))
    assert request.param("end_time") == str(int(datetime(2026, 8, 11, tzinfo=UTC).timestamp()))


def test_the_json_document_carries_both_figures_and_the_day(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    billed_week(fake_openai)

    ran = cli(workdir, fake_openai, "prices", "check", "--format", "json")

    assert ran.code == 1, ran.stderr
    doc = ran.doc()
    assert doc["ok"] is False
    billed = doc["billed_prices"]
    assert (billed["checked"], billed["start"], billed["last_day"]) == (
        True,
        "2026-08-04",
        "2026-08-10",
    )
    assert billed["findings"] == [
        {
            "model": "gpt-4o",
            "piece": "input",
            "tier": "standard",
            "billed": "2",
            "table": "2.5",
            "unit": "1M tokens",
            "since": "2026-08-07",
            "last_day": "2026-08-10",
            "sentence": SENTENCE,
        }
    ]


def test_prices_that_match_the_table_exit_0(fake_openai: FakeOpenAI, workdir: Path) -> None:
    billed_week(fake_openai, change_on=None)

    ran = cli(workdir, fake_openai, "prices", "check")

    assert ran.code == 0, ran.stdout + ran.stderr
    assert "billed prices 2026-08-04..2026-08-10: 14 line(s) compared, 0 price(s) differ" in (
        ran.stdout.splitlines()
    )


def test_lines_without_a_quantity_are_counted_not_compared(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    billed_week(fake_openai, change_on=None)
    fake_openai.add_cost(AUG4, "web search tool calls", "0.02")

    ran = cli(workdir, fake_openai, "prices", "check", "--days", "3")

    assert ran.code == 0, ran.stdout + ran.stderr
    assert "billed prices 2026-08-08..2026-08-10: 6 line(s) compared, 0 price(s) differ" in (
        ran.stdout
    )
    ran = cli(workdir, fake_openai, "prices", "check")
    assert "  not compared: without_quantity 1" in ran.stdout.splitlines()


def test_without_an_admin_key_openai_is_not_asked(fake_openai: FakeOpenAI, workdir: Path) -> None:
    ran = cli(workdir, fake_openai, "prices", "check", OPENAI_ADMIN_KEY="")

    assert ran.code == 0, ran.stdout + ran.stderr
    assert "billed prices: not checked: no OpenAI admin key (set OPENAI_ADMIN_KEY)" in ran.stdout
    assert fake_openai.requests == []


def test_days_0_does_not_ask_openai(fake_openai: FakeOpenAI, workdir: Path) -> None:
    ran = cli(workdir, fake_openai, "prices", "check", "--days", "0", "--format", "json")

    assert ran.code == 0, ran.stderr
    assert ran.doc()["billed_prices"]["checked"] is False
    assert fake_openai.requests == []


def test_openai_down_is_a_clear_message_and_exit_3_without_a_traceback(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    fake_openai.fail_next(10, 503)

    ran = cli(workdir, fake_openai, "prices", "check")

    assert ran.code == 3, ran.stdout + ran.stderr
    assert "history: no run recorded yet (the last 20 at most)" in ran.stdout
    assert "billed prices: not checked: " in ran.stdout
    assert "recon-job: error: " in ran.stderr
    assert "Traceback" not in ran.stdout + ran.stderr


def test_a_key_openai_refuses_exits_2_in_one_json_document(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    fake_openai.fail_next(1, 401)

    ran = cli(workdir, fake_openai, "prices", "check", "--format", "json")

    assert ran.code == 2, ran.stdout + ran.stderr
    doc = ran.doc()
    assert doc["ok"] is False
    assert doc["billed_prices"]["checked"] is False
    assert doc["billed_prices"]["error"]["permanent"] is True
    assert "Traceback" not in ran.stdout + ran.stderr
