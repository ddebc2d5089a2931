"""Tests of ``iter_records``: the NDJSON logs one valid record at a time."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from recon_job.errors import LogSourceError
from recon_job.models import Usage, UsageKey, UsageTotals, Window
from recon_job.sources.ndjson.source import LogRecord, NdjsonOptions, iter_records
from tests.helpers import FakePricer
from tests.sources.ndjson.helpers import MARCH, NDJSON, fetch, rec, write

D = Decimal


def records(*paths: str | Path, window: Window | None = None, **options: Any) -> list[LogRecord]:
    opts = NdjsonOptions(paths=tuple(str(p) for p in paths), **options)
    return list(iter_records(opts, window))


def summed(found: list[LogRecord], group_by: tuple[str, ...] = ("model",)) -> dict[UsageKey, Usage]:
    """Records summed per group the way fetch groups them, each cost-less one priced alone."""
    pricer = FakePricer()
    groups: dict[UsageKey, Usage] = {}
    for r in found:
        key = UsageKey(
            r.day,
            r.model,
            r.project_id if "project_id" in group_by else None,
            r.api_key_id if "api_key_id" in group_by else None,
            r.family,
        )
        usage = r.usage
        cost = r.cost if r.cost is not None else pricer.cost(r.model, r.day, r.tier, usage)
        usage = replace(usage, cost=cost or D(0))
        groups[key] = groups[key] + usage if key in groups else usage
    return groups


def test_it_yields_every_built_in_shape_as_logged() -> None:
    found = records(NDJSON / "shapes.ndjson")

    assert len(found) == 11
    assert found[0] == LogRecord(
        day=date(2026, 3, 10),
        timestamp="2026-03-10T08:00:00Z",
        model="gpt-4o-mini",
        input_tokens=1000,
        cached_tokens=400,
        output_tokens=200,
        cost=None,
        tier="standard",
        request_id="req_1",
        project_id="proj_a",
        api_key_id=None,
    )
    assert [(r.model, r.cached_tokens, r.cost, r.tier) for r in found[2:9]] == [
        ("gpt-4o-mini-2024-07-18", 100, None, "standard"),
        ("gpt-4.1", 1000, D("0.0042"), "standard"),
        ("gpt-4.1", 0, None, "flex"),
        ("gpt-4.1", 0, D("0.01"), "standard"),
        ("gpt-4o-mini", 0, None, "batch"),
        ("gpt-4o-mini", 0, None, "priority"),
        ("text-embedding-3-small", 0, None, "standard"),
    ]
    assert found[4].timestamp == 1773136800
    assert found[7].day == date(2026, 3, 12)  # epoch milliseconds
    assert found[8].output_tokens == 0


def test_a_window_leaves_out_other_days_without_counting_them_as_skips() -> None:
    skipped: dict[str, int] = {}
    opts = NdjsonOptions(paths=(str(NDJSON / "shapes.ndjson"),))

    found = list(iter_records(opts, MARCH, skipped))

    assert len(found) == 9
    assert all(r.day.month == 3 for r in found)
    assert skipped == {}


@pytest.mark.parametrize(
    ("fixture", "options"),
    [
        ("shapes.ndjson", {}),
        ("shapes.ndjson", {"project_ids": ("proj_a",), "group_by": ("model", "project_id")}),
        ("bad_lines.ndjson", {}),
        ("helsinki_dst.ndjson", {"timezone": "Europe/Helsinki"}),
        ("rotated", {}),
    ],
)
def test_its_records_and_skips_add_up_to_what_fetch_reports(
    fixture: str, options: dict[str, Any]
) -> None:
    skipped: dict[str, int] = {}
    opts = NdjsonOptions(paths=(str(NDJSON / fixture),), **options)

    found = list(iter_records(opts, MARCH, skipped))
    totals: UsageTotals = fetch(NDJSON / fixture, **options)

    assert summed(found, opts.group_by) == totals.groups
    assert skipped == totals.skipped
    assert len(found) == totals.info["records_counted"]


def test_skip_reasons_are_counted_into_the_callers_dict(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.ndjson",
        rec(),
        "",
        "{oops",
        rec(prompt_tokens=-1),
        rec(cost="NaN"),
        rec(model=""),
    )
    skipped = {"blank_line": 10}

    found = list(iter_records(NdjsonOptions(paths=(str(path),)), skipped=skipped))

    assert len(found) == 1
    assert skipped == {
        "blank_line": 11,
        "malformed_json": 1,
        "negative_tokens": 1,
        "bad_cost": 1,
        "missing_model": 1,
    }


def test_ids_of_the_wrong_type_are_dropped_unless_they_are_grouped_by(tmp_path: Path) -> None:
    path = write(tmp_path / "a.ndjson", rec(project_id=7, api_key_id=["k"], request_id=3))

    (record,) = records(path)
    skipped: dict[str, int] = {}
    grouped = NdjsonOptions(paths=(str(path),), group_by=("model", "project_id"))

    assert (record.project_id, record.api_key_id, record.request_id) == (None, None, None)
    assert list(iter_records(grouped, skipped=skipped)) == []
    assert skipped == {"bad_project_id": 1}


def test_cents_are_converted_to_usd(tmp_path: Path) -> None:
    path = write(tmp_path / "a.ndjson", rec(cost=25), rec(cost_usd=0.5))

    assert [r.cost for r in records(path, cost_unit="cents")] == [D("0.25"), D("0.5")]


def test_a_missing_path_raises_at_the_call_not_at_the_first_record(tmp_path: Path) -> None:
    options = NdjsonOptions(paths=(str(tmp_path / "nope.ndjson"),))

    with pytest.raises(LogSourceError, match="does not exist"):
        iter_records(options)
