"""Duplicate request ids in NDJSON logs (issue 12, item 6): counted once, reported apart."""

from __future__ import annotations

import random
from array import array
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recon_job.errors import LogSourceError
from recon_job.findings import Duplicates
from recon_job.sources.ndjson import files as ndjson_files
from recon_job.sources.ndjson import source as ndjson_source
from recon_job.sources.ndjson.files import Task, plan_tasks
from recon_job.sources.ndjson.source import NdjsonOptions, _Dedupe, _Scan, fingerprint
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


# -- fingerprints spilled to temporary files (issue 13: memory flat in file size) ----------------


def spilling_scan(options: NdjsonOptions, spill_at: int = 3, check_at: int = 4) -> _Scan:
    """A scan that writes a file's fingerprints out past ``spill_at`` and checks a day in
    passes of ``check_at`` (both 65,536 by default, tiny here)."""
    scan = _Scan(options, MARCH)
    scan.dedupe.spill_at, scan.dedupe.check_at = spill_at, check_at
    return scan


def many(tmp_path: Path) -> tuple[Path, Path]:
    """Repeats inside a file, across files, across days, and of each day's last record (the
    one a spill keeps in memory) against a spilled one."""
    first = [line(f"a{i}", hour=i % 24) for i in range(40)] + [
        line(f"c{i}", day=11) for i in range(9)
    ]
    first += [line("a5"), line("a39"), line("c3", day=11), line("a7", day=12), line("a7", day=12)]
    second = [line(f"b{i}", day=11) for i in range(30)] + [line("a10"), line("c8", day=11)]
    return write(tmp_path / "a.ndjson", *first), write(tmp_path / "b.ndjson", *second)


@pytest.mark.parametrize("workers", [1, 2])
def test_spilled_fingerprints_find_the_same_duplicates_and_their_files_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    a, b = many(tmp_path)
    files = [str(a), str(b)]
    options = NdjsonOptions(paths=tuple(files))
    kept = _Scan(options, MARCH)
    for path in files:
        kept.read_file(path)
    spilled = spilling_scan(options)
    if workers == 1:
        for path in files:
            spilled.read_file(path)
    else:
        monkeypatch.setattr(ndjson_files, "MIN_RANGE_BYTES", 1000)
        assert len(plan_tasks(files, 2)) == 4
        assert spilled.read_parallel(files, workers=2, pieces=2) == 2
    directory = Path(spilled.dedupe.spill_dir)
    assert spilled.dedupe.spilled
    assert not kept.dedupe.spilled
    # One spill file for the in-process scan, one per task (range) read by a worker.
    assert len(list(directory.iterdir())) == (1 if workers == 1 else 4)
    pricer = FakePricer()
    one, other = kept.totals(pricer, None), spilled.totals(pricer, None)
    assert one == other
    assert one.duplicates == Duplicates(
        count=6,
        request_ids=6,
        cost=6 * ONE,
        locations=(f"{a}:50", f"{a}:51", f"{a}:52", f"{a}:54", f"{b}:31"),  # the first 5
    )
    assert not directory.exists()


def test_a_spilled_log_without_repeats_still_reports_zero_duplicates(tmp_path: Path) -> None:
    path = write(tmp_path / "a.ndjson", *[line(f"r{i}", day=1 + i % 3) for i in range(20)])
    scan = spilling_scan(NdjsonOptions(paths=(str(path),)), spill_at=1)
    scan.read_file(str(path))
    # Each day keeps its last fingerprint in memory, the rest is on disk.
    assert [len(found) for found in scan.dedupe.prints[0][1].values() if found] == [1, 1, 1]
    totals = scan.totals(FakePricer(), None)
    assert totals.duplicates == Duplicates(count=0, request_ids=0, cost=D(0))
    assert not Path(scan.dedupe.spill_dir).exists()


def test_small_in_process_scans_write_nothing(tmp_path: Path) -> None:
    a, b = many(tmp_path)
    scan = spilling_scan(NdjsonOptions(paths=(str(a), str(b))), spill_at=100)
    scan.read_file(str(a))
    scan.read_file(str(b))
    assert not scan.dedupe.spilled
    assert scan.dedupe.spill_dir == ""
    # Past spill_at in memory over all files read, the file just finished is spilled.
    scan = spilling_scan(NdjsonOptions(paths=(str(a), str(b))), spill_at=60)
    scan.read_file(str(a))
    assert not scan.dedupe.spilled
    scan.read_file(str(b))
    assert {path for path, _, _ in scan.dedupe.spilled} == {str(b)}
    scan.dedupe.close()


def test_spill_files_are_removed_when_a_later_file_fails(tmp_path: Path) -> None:
    a, _ = many(tmp_path)
    bad = tmp_path / "bad.ndjson.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00" + b"garbage" * 20)
    scan = spilling_scan(NdjsonOptions(paths=(str(a), str(bad))))
    scan.read_file(str(a))
    directory = Path(scan.dedupe.spill_dir)
    assert directory.is_dir()
    with pytest.raises(LogSourceError):
        scan.read_file(str(bad))
    assert not directory.exists()


@pytest.mark.parametrize("failure", ["error", "death"])
def test_spill_files_are_removed_when_a_worker_fails_or_dies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    a, b = many(tmp_path)
    files = [str(a), str(b)]
    made: list[Path] = []
    real_run_tasks = ndjson_files.run_tasks

    def run_then_fail(scan: Any, tasks: list[Task], workers: int) -> Any:
        results = real_run_tasks(scan, tasks, workers)  # the workers have written their files
        made.extend(Path(scan.keywords["spill_dir"]).iterdir())
        if failure == "death":
            raise LogSourceError("a log reading worker process died", reason="log_worker_died")
        return [*results[:-1], ValueError("boom")]  # unpacking it fails in the parent

    monkeypatch.setattr(ndjson_source, "run_tasks", run_then_fail)
    scan = spilling_scan(NdjsonOptions(paths=tuple(files)))
    with pytest.raises(LogSourceError if failure == "death" else TypeError):
        scan.read_parallel(files, workers=2)
    assert len(made) == 2
    assert not any(path.exists() for path in made)
    assert not Path(scan.dedupe.spill_dir).exists()


@pytest.mark.parametrize("in_c", [True, False], ids=["sorted in C", "Python passes"])
def test_a_day_checked_in_passes_finds_every_repeat_of_spilled_and_kept_prints(
    monkeypatch: pytest.MonkeyPatch, in_c: bool
) -> None:
    if not in_c:
        monkeypatch.setattr(ndjson_source, "_fast_repeats", None)
    elif ndjson_source._fast_repeats is None:
        pytest.skip("the C fast path is off or not built")
    rng = random.Random(13)
    values = [rng.randrange(1 << 61) for _ in range(500)]
    values += rng.sample(values, 40) + values[:3] * 3  # repeats, some three or four times
    rng.shuffle(values)
    day, other = date(2026, 3, 10), date(2026, 3, 11)
    dedupe = _Dedupe(spill_at=50, check_at=64)
    try:
        for start in range(0, len(values), 100):
            prints = {day: array("q", values[start : start + 100]), other: array("q", [start])}
            dedupe.prints.append((f"f{start}", prints))
            if start % 200 == 0:
                dedupe.spill(f"f{start}", prints)
        assert dedupe.spilled
        counts = Counter(values)
        assert dedupe.repeated() == {day: {v for v, n in counts.items() if n > 1}}
        assert dedupe.paths_with({day: {values[0]}}) == [
            f"f{start}"
            for start in range(0, len(values), 100)
            if values[0] in values[start : start + 100]
        ]
    finally:
        dedupe.close()
    assert not Path(dedupe.spill_dir).exists()


def test_the_passes_over_a_large_day_take_even_parts_whatever_the_ids_look_like() -> None:
    # A counter in the middle of the id: its fingerprints' low bytes are all alike.
    prints = array("q", [fingerprint(f"req-{i:08d}-abc") for i in range(20_000)])
    assert len({value & 0xFF for value in prints}) <= 2
    parts = [sum(taken for _, taken in _Dedupe._part([prints], [], part, 4)) for part in range(4)]
    assert sum(parts) == 20_000
    assert max(parts) < 20_000 / 4 * 1.1
    taken = [list(found) for part in range(4) for found, _ in _Dedupe._part([prints], [], part, 4)]
    assert sorted(value for found in taken for value in found) == sorted(prints)


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.integers(-(2**63), 2**63 - 1), max_size=300), parts=st.integers(1, 4))
def test_the_c_repeat_check_finds_what_a_set_finds(values: list[int], parts: int) -> None:
    if ndjson_source._fast_repeats is None:
        pytest.skip("the C fast path is off or not built")
    doubled = values + values[: len(values) // 3]
    size = -(-len(doubled) // parts) or 1
    buffers = [array("q", doubled[i : i + size]) for i in range(0, len(doubled), size)]
    counts = Counter(doubled)
    assert ndjson_source._fast_repeats(buffers) == sorted(v for v, n in counts.items() if n > 1)
