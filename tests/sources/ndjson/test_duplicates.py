"""Duplicate request ids in NDJSON logs (issue 12, item 6): counted once, reported apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from recon_job.findings import Duplicates
from recon_job.sources.ndjson import files as ndjson_files
from recon_job.sources.ndjson.files import plan_tasks
from recon_job.sources.ndjson.source import NdjsonOptions, _Scan
from tests.helpers import FakePricer
from tests.sources.ndjson.helpers import MARCH, D, accounted, fetch, key, rec, write

# 1000 input + 100 output tokens of gpt-4o-mini at FakePricer's rates: $0.0012.
ONE = D("0.0012")


def line(
    rid: str | None, day: int = 10, hour: int = 8, model: str = "gpt-4o-mini", **kw: object
) -> str:
    fields: dict[str, object] = {"prompt_tokens": 1000, "completion_tokens": 100, **kw}
    if rid is not None:
        fields["request_id"] = rid
    return rec(f"2026-03-{day:02d}T{hour:02d}:00:00Z", model, **fields)


def two_files(tmp_path: Path) -> tuple[Path, Path]:
    """a.ndjson: r1 r2 r3 (r2 logged twice, a retry); b.ndjson: r3 again and r4."""
    a = write(tmp_path / "a.ndjson", line("r1"), line("r2"), line("r2"), line("r3"), line(None))
    b = write(tmp_path / "b.ndjson", line("r4"), line("r3", hour=9), line(None))
    return a, b


def test_a_request_id_logged_twice_across_two_files_is_counted_once_and_reported(
    tmp_path: Path,
) -> None:
    a, b = two_files(tmp_path)
    totals = fetch(a, b)
    usage = totals.groups[key(10, "gpt-4o-mini")]
    # r1 r2 r3 r4 and the two records without an id: 6 requests, not 8.
    assert usage.requests == 6
    assert usage.input_tokens == 6000
    assert usage.cost == 6 * ONE
    assert totals.duplicates == Duplicates(
        count=2,
        request_ids=2,
        cost=2 * ONE,
        locations=(f"{a}:3", f"{b}:2"),
    )
    assert totals.info["duplicate_records"] == 2
    # Every line is still accounted for: counted, or a duplicate.
    assert accounted(totals) + 2 == 8


def test_dedupe_false_counts_every_line(tmp_path: Path) -> None:
    a, b = two_files(tmp_path)
    totals = fetch(a, b, dedupe=False)
    assert totals.groups[key(10, "gpt-4o-mini")].requests == 8
    assert totals.duplicates is None


def test_records_without_a_request_id_are_never_deduped(tmp_path: Path) -> None:
    path = write(tmp_path / "a.ndjson", *[line(None)] * 3, line(""), line(""))
    totals = fetch(path)
    assert totals.groups[key(10, "gpt-4o-mini")].requests == 5
    # No id at all: the source could not dedupe, so it reports nothing.
    assert totals.duplicates is None


def test_a_log_without_repeats_reports_zero_duplicates(tmp_path: Path) -> None:
    path = write(tmp_path / "a.ndjson", line("r1"), line("r2"))
    totals = fetch(path)
    assert totals.duplicates == Duplicates(count=0, request_ids=0, cost=D(0))
    assert totals.groups[key(10, "gpt-4o-mini")].requests == 2


def test_the_same_id_on_two_utc_days_is_two_requests(tmp_path: Path) -> None:
    path = write(tmp_path / "a.ndjson", line("r1", day=10), line("r1", day=11))
    totals = fetch(path)
    assert totals.groups[key(10, "gpt-4o-mini")].requests == 1
    assert totals.groups[key(11, "gpt-4o-mini")].requests == 1
    assert totals.duplicates is not None
    assert totals.duplicates.count == 0


def test_a_repeat_of_another_model_moves_its_own_group_and_unpriced_dollars_stay_unknown(
    tmp_path: Path,
) -> None:
    # The retry logged under a model the pricer does not know: its group goes away, and it
    # adds no dollars to the duplicates (unknown, not 0 nor a guess).
    path = write(
        tmp_path / "a.ndjson",
        line("r1"),
        line("r1", model="gpt-4o", cost_usd=None),
        line("r2", cost_usd=0.5),
        line("r2", cost_usd=0.5),
    )
    totals = fetch(path)
    assert key(10, "gpt-4o") not in totals.groups
    assert totals.unpriced == {}
    assert totals.groups[key(10, "gpt-4o-mini")].requests == 2
    assert totals.duplicates == Duplicates(
        count=2, request_ids=2, cost=D("0.5"), locations=(f"{path}:2", f"{path}:4")
    )


def test_repeats_in_the_general_path_and_other_families_are_deduped(tmp_path: Path) -> None:
    embedding = rec(
        "2026-03-10T08:00:00+02:00",
        "text-embedding-3-small",
        request_id="e1",
        prompt_tokens=50,
        completion_tokens=0,
    )
    path = write(tmp_path / "a.ndjson", embedding, embedding, embedding)
    totals = fetch(path)
    (usage,) = totals.groups.values()
    assert usage.requests == 1
    assert usage.input_tokens == 50
    assert totals.duplicates is not None
    assert (totals.duplicates.count, totals.duplicates.request_ids) == (2, 1)


def test_the_parallel_scan_finds_the_same_duplicates_as_the_in_process_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two files, each split into ranges read by worker processes: repeats inside a range,
    # across the ranges of one file, and across files.
    first = [line(f"a{i}", hour=i % 24) for i in range(600)]
    first += [line("a5"), line("a400")]  # both repeat ids of another range of this file
    second = [line(f"b{i}", day=11) for i in range(600)]
    second += [line("a10"), line("b7", day=11), line("b7", day=11)]  # a10: day 10, as in a
    a = write(tmp_path / "a.ndjson", *first)
    b = write(tmp_path / "b.ndjson", *second)
    monkeypatch.setattr(ndjson_files, "MIN_RANGE_BYTES", 1000)
    assert len(plan_tasks([str(a), str(b)], 3)) == 6
    options = NdjsonOptions(paths=(str(a), str(b)))
    serial = _Scan(options, MARCH)
    serial.read_file(str(a))
    serial.read_file(str(b))
    parallel = _Scan(options, MARCH)
    assert parallel.read_parallel([str(a), str(b)], workers=2, pieces=3) == 2
    pricer = FakePricer()
    one, other = serial.totals(pricer, None), parallel.totals(pricer, None)
    assert one.groups == other.groups
    assert one.duplicates == other.duplicates
    assert one.duplicates == Duplicates(
        count=5,
        request_ids=4,
        cost=5 * ONE,
        locations=(f"{a}:601", f"{a}:602", f"{b}:601", f"{b}:602", f"{b}:603"),
    )
    assert one.groups[key(10, "gpt-4o-mini")].requests == 600
    assert one.groups[key(11, "gpt-4o-mini")].requests == 600


def test_bad_request_ids_and_lines_never_crash_the_scan(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.ndjson",
        line("r1"),
        rec(request_id=123, prompt_tokens=1, completion_tokens=1),
        rec(request_id=["r1"], prompt_tokens=1, completion_tokens=1),
        rec(request_id={"x": 1}, prompt_tokens=1, completion_tokens=1),
        rec(request_id="é\u2028\U0001f600", prompt_tokens=1, completion_tokens=1),
        rec(request_id="é\u2028\U0001f600", prompt_tokens=1, completion_tokens=1),
        '{"request_id": "r1", "timestamp": "nope"}',
        '{"request_id": "r1"',
        "",
        line("r1"),
    )
    totals = fetch(path)
    assert totals.duplicates is not None
    assert (totals.duplicates.count, totals.duplicates.request_ids) == (2, 2)
    assert totals.groups[key(10, "gpt-4o-mini")].requests == 5
