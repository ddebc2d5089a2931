"""How figures are written: percentages that cannot overflow, whatever the official figure."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from recon_job.compare import reconcile
from recon_job.models import Tolerance, Usage, UsageKey, UsageTotals, Window
from recon_job.report.formats import money, pct, pct_text, pct_value
from recon_job.report.history import run_record_dict
from recon_job.report.run import result_dict
from recon_job.store import HistoryStore

D = Decimal


@pytest.mark.parametrize(
    ("value", "json_text", "people"),
    [
        (D(-10), "-10.000000", "-10.00%"),
        (D("5.0001"), "5.000100", "+5.00%"),
        (D(1) / D(3) * 100, "33.333333", "+33.33%"),
        (D("0.036") * 100 / D("1e-36"), "3.600E+36", "+3.60e+36%"),
        (D("-1e999998"), "-1E+999998", "-1.00e+999998%"),
        (None, None, "n/a"),
    ],
)
def test_a_percentage_is_rounded_sanely_and_never_overflows(
    value: Decimal | None, json_text: str | None, people: str
) -> None:
    assert pct(value) == json_text
    assert pct_text(value) == people
    if value is not None:
        assert pct_value(value) == D(str(json_text))


def test_a_result_against_a_tiny_official_cost_is_stored_and_printed(tmp_path: object) -> None:
    """Issue 9 #8: OpenAI $1e-36 against a local $0.036 made every later JSON output fail."""
    day = date(2026, 3, 14)
    window = Window("daily", day, date(2026, 3, 15))
    key = UsageKey(day, "gpt-4o")
    result = reconcile(
        UsageTotals({key: Usage(1000, 0, 10, 1, D("0.036"))}),
        UsageTotals({key: Usage(1000, 0, 10, 1, D("1e-36"))}),
        window=window,
        tolerance=Tolerance(),
    )
    doc = result_dict(result)
    assert D(doc["difference"]["cost_pct"]) == D("3.6E+36")
    json.dumps(doc)
    with HistoryStore("sqlite://") as store:
        started = datetime(2026, 3, 16, tzinfo=UTC)
        run_id = store.start_run(window, started_at=started, trigger="test")
        store.finish_run(run_id, result, finished_at=started, outbox=())
        (record,) = store.list_runs()
        stored = json.loads(json.dumps(run_record_dict(record)))["difference"]["cost_pct"]
        assert D(stored) == D("3.6E+36")


@pytest.mark.parametrize(
    ("value", "written"),
    [
        # 39 significant digits: normalize() in Python's default context kept 28 of them.
        (D("488.744675045614827233863132615263941255"), "488.744675045614827233863132615263941255"),
        (D("0.003400000000000000000000000000000000"), "0.003400"),
        (D("0.001234567890123456789012345678901234"), "0.001234567890123456789012345678901234"),
        (D("1.5"), "1.500000"),
    ],
)
def test_json_money_keeps_every_digit_it_is_given(value: Decimal, written: str) -> None:
    assert money(value) == written
