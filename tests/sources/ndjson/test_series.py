"""The NDJSON source's hourly and minute series (the gap locator's local side, issue 12)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from recon_job.sources.base import SeriesSource
from recon_job.sources.ndjson.source import NdjsonLogSource, NdjsonOptions
from tests.helpers import FakePricer
from tests.sources.ndjson.helpers import D, rec, write

HOUR, MINUTE = timedelta(hours=1), timedelta(minutes=1)
START = datetime(2026, 3, 10, 14, tzinfo=UTC)
END = datetime(2026, 3, 10, 16, tzinfo=UTC)
MINI = ("completions", "gpt-4o-mini", None)
# 1000 input + 100 output tokens of gpt-4o-mini at FakePricer's rates.
ONE = D("0.0012")


def at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 3, 10, hour, minute, second, tzinfo=UTC)


def line(ts: object, rid: object = None, **kw: Any) -> str:
    fields: dict[str, Any] = {"prompt_tokens": 1000, "completion_tokens": 100, **kw}
    if rid is not None:
        fields["request_id"] = rid
    return rec(ts, **fields)


def source(path: Path, **options: Any) -> SeriesSource:
    return NdjsonLogSource(NdjsonOptions(paths=(str(path),), **options), FakePricer())


def requests(series: dict[datetime, Any]) -> dict[datetime, int]:
    return {bucket: usage.requests for bucket, usage in series.items()}


def test_series_buckets_records_by_hour_and_by_minute_exactly(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.ndjson",
        line("2026-03-10T13:59:59Z"),  # before start
        line("2026-03-10T14:00:00Z"),
        line("2026-03-10T14:00:59.999Z"),
        line("2026-03-10T14:01:00Z"),
        line("2026-03-10T14:59:59Z"),
        line("2026-03-10T15:00:00+00:00"),
        line(int(at(15, 30).timestamp())),  # epoch seconds
        line(int(at(15, 30).timestamp() * 1000) + 1),  # epoch milliseconds
        line("2026-03-10T16:00:00Z"),  # end is exclusive
        line("2026-03-10T17:30:00+02:00"),  # 15:30 UTC
    )
    hourly = source(path).series(START, END, HOUR)
    assert list(hourly) == [MINI]
    assert requests(hourly[MINI]) == {at(14): 4, at(15): 4}
    assert hourly[MINI][at(14)].cost == 4 * ONE
    assert hourly[MINI][at(14)].input_tokens == 4000
    minutes = source(path).series(START, END, MINUTE)
    assert requests(minutes[MINI]) == {
        at(14, 0): 2,
        at(14, 1): 1,
        at(14, 59): 1,
        at(15, 0): 1,
        at(15, 30): 3,
    }
    assert all(bucket.tzinfo is UTC for bucket in minutes[MINI])


def test_series_reads_naive_timestamps_in_the_logs_timezone(tmp_path: Path) -> None:
    # 15:30 in Berlin (UTC+1 in March before the switch) is 14:30 UTC.
    path = write(tmp_path / "a.ndjson", line("2026-03-10T15:30:00"), line("2026-03-10 16:10:00"))
    berlin = source(path, timezone="Europe/Berlin").series(START, END, HOUR)
    assert requests(berlin[MINI]) == {at(14): 1, at(15): 1}
    utc = source(path).series(START, END, HOUR)
    assert requests(utc[MINI]) == {at(15): 1}


def test_series_keys_by_family_model_as_logged_and_project(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.ndjson",
        line("2026-03-10T14:10:00Z", model="gpt-4o-2024-08-06", project_id="proj_a"),
        line("2026-03-10T14:20:00Z", model="gpt-4o-2024-08-06", project_id="proj_b"),
        rec("2026-03-10T14:30:00Z", "text-embedding-3-small", prompt_tokens=5, completion_tokens=0),
    )
    options = {"group_by": ("model", "project_id")}
    series = source(path, **options).series(START, END, HOUR)
    assert set(series) == {
        ("completions", "gpt-4o-2024-08-06", "proj_a"),
        ("completions", "gpt-4o-2024-08-06", "proj_b"),
        ("embeddings", "text-embedding-3-small", None),
    }
    # A model the pricer does not know has no cost (unpriced), not a wrong one.
    assert series[("completions", "gpt-4o-2024-08-06", "proj_a")][at(14)].cost == 0


def test_series_dedupes_as_fetch_does_even_when_the_first_record_is_before_start(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path / "a.ndjson",
        line("2026-03-10T13:59:00Z", "r1"),
        line("2026-03-10T14:05:00Z", "r1"),  # a retry of r1: fetch counts the 13:59 one
        line("2026-03-10T14:06:00Z", "r2"),
        line("2026-03-10T15:06:00Z", "r2"),
        line("2026-03-11T14:06:00Z", "r2"),  # another day: outside the series anyway
    )
    assert requests(source(path).series(START, END, HOUR)[MINI]) == {at(14): 1}
    undeduped = source(path, dedupe=False).series(START, END, HOUR)
    assert requests(undeduped[MINI]) == {at(14): 2, at(15): 1}


def test_series_spans_midnight_and_skips_bad_lines_without_raising(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.ndjson",
        "not json",
        "",
        "[1, 2]",
        '{"timestamp": "2026-03-10T23:30:00Z", "model": "gpt-4o-mini"}',
        line("2026-03-10T23:59:59Z"),
        line("2026-03-11T00:00:00Z", "x", prompt_tokens=-1),
        line("9999-12-31T23:59:59Z"),
        '{"timestamp": 1e300, "model": "gpt-4o-mini", "prompt_tokens": 1, "completion_tokens": 1}',
        line(2**62),
        line("2026-03-11T00:15:00Z", ["not", "an", "id"]),
    )
    series = source(path).series(at(23), at(23) + timedelta(hours=2), HOUR)
    assert requests(series[MINI]) == {at(23): 1, at(23) + HOUR: 1}


def test_series_refuses_naive_bounds_and_widths_that_do_not_divide_a_day(tmp_path: Path) -> None:
    path = write(tmp_path / "a.ndjson", line("2026-03-10T14:00:00Z"))
    with pytest.raises(ValueError, match="aware"):
        source(path).series(START.replace(tzinfo=None), END, HOUR)
    with pytest.raises(ValueError, match="divide"):
        source(path).series(START, END, timedelta(minutes=7))
    with pytest.raises(ValueError, match="after"):
        source(path).series(END, START, HOUR)
