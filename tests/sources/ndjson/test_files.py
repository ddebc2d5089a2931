"""Tests of reading NDJSON logs in newline-aligned ranges and in worker processes."""

from __future__ import annotations

import gzip
import io
import itertools
import os
import pickle
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recon_job.errors import LogSourceError
from recon_job.sources.ndjson import files as ndjson_files
from recon_job.sources.ndjson import source as ndjson_logs
from recon_job.sources.ndjson.files import (
    EVENT_GZIP_TRUNCATED,
    Task,
    plan_tasks,
    read_blocks,
    read_lines,
    resolve_log_files,
)
from recon_job.sources.ndjson.skips import Skips
from recon_job.sources.ndjson.source import NdjsonOptions
from tests.helpers import FakePricer
from tests.sources.ndjson.helpers import MARCH, fetch, rec, write


def lines_of(tasks: list[Task]) -> tuple[list[bytes], dict[str, int], dict[str, int]]:
    info = {"lines_read": 0}
    skipped: dict[str, int] = {}
    skips = Skips(skipped)
    lines = [line for task in tasks for batch in read_lines(task, info, skips) for line in batch]
    return lines, info, skipped


def located(tasks: list[Task]) -> dict[str, tuple[str, ...]]:
    """Where the overlong lines of ``tasks`` are, ranges merged as ``read_parallel`` does."""
    merged = Skips()
    before = 0
    for task in tasks:
        info = {"lines_read": 0}
        skips = Skips()
        for _ in read_lines(task, info, skips):
            pass
        merged.merge(skips.counts, skips.locations, before)
        before += info["lines_read"]
    return merged.shown()


def cut(size: int, offsets: list[int]) -> list[Task]:
    bounds = sorted({0, size, *(o for o in offsets if 0 < o < size)})
    return [Task("", a, b) for a, b in itertools.pairwise(bounds)]


def usage_log(path: Path, records: int, seed: int = 7) -> bytes:
    """A log with every record shape, bad lines, CRLF ends, a BOM and no final newline."""
    rng = random.Random(seed)
    lines = []
    for i in range(records):
        kind = rng.random()
        if kind < 0.02:
            line = rng.choice([b"", b"{not json", b"[1]", b'{"model": "m"}', b"   "])
        else:
            fields: dict[str, Any] = {"project_id": rng.choice(["p1", "p2", None])}
            if kind < 0.5:
                fields.update(prompt_tokens=i % 997 + 5, completion_tokens=i % 13)
            elif kind < 0.7:
                fields = {"input_tokens": i % 501 + 3, "output_tokens": 2, "cached_tokens": 1}
            else:
                usage = {"prompt_tokens": i % 89 + 1, "completion_tokens": 1}
                fields = {"prompt_tokens": None, "usage": usage}
            if rng.random() < 0.2:
                fields["cost_usd"] = round(rng.random() / 100, 6)
            if rng.random() < 0.1:
                fields["service_tier"] = "flex"
            ts: object = f"2026-03-{rng.randint(1, 31):02d}T{rng.randint(0, 23):02d}:00:00Z"
            if rng.random() < 0.1:
                ts = 1773136800000 + i * 1000
            line = rec(ts, rng.choice(["gpt-4o-mini", "gpt-4.1", "o4-mini"]), **fields).encode()
        if rng.random() < 0.05:
            line += b"\r"
        lines.append(line)
    data = b"\xef\xbb\xbf" + b"\n".join(lines)  # no newline after the last line
    path.write_bytes(data)
    return data


# -- ranges --------------------------------------------------------------------------------------


@st.composite
def cut_log(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    """A log's bytes (short and overlong lines, CRs, a byte order mark or not, a last newline or
    not) and offsets to cut it into ranges at."""
    parts = draw(
        st.lists(
            st.sampled_from([b"", b"a", b"bc\r", b"{}", b"x" * 30, b"0123456789" * 3 + b"!"]),
            max_size=25,
        )
    )
    data = (b"\xef\xbb\xbf" if draw(st.booleans()) else b"") + b"\n".join(parts)
    if draw(st.booleans()) and data:
        data += b"\n"
    return data, draw(st.lists(st.integers(0, len(data)), max_size=8))


@settings(max_examples=300, deadline=None)
@given(cut_log())
def test_consecutive_ranges_see_every_line_exactly_once(log: tuple[bytes, list[int]]) -> None:
    data, offsets = log
    with pytest.MonkeyPatch.context() as patch:
        # Tiny chunks and a 30-byte line limit put every boundary case inside a few lines.
        patch.setattr(ndjson_files, "CHUNK_BYTES", 4)
        patch.setattr(ndjson_files, "MAX_LINE_BYTES", 30)
        patch.setattr(ndjson_files, "open_regular", lambda _p: _bytes_file(data))
        whole = lines_of([Task("")])
        ranged = lines_of(cut(len(data), offsets))
        whole_at = located([Task("")])
        ranged_at = located(cut(len(data), offsets))

    assert ranged == whole
    # Overlong lines are located by their number in the whole file, however it was cut.
    assert ranged_at == whole_at
    assert whole[1]["lines_read"] == len(whole[0]) + whole[2].get("line_too_long", 0)


@settings(max_examples=300, deadline=None)
@given(cut_log())
def test_blocks_hold_the_lines_lists_hold_with_the_same_counts_and_skips(
    log: tuple[bytes, list[int]],
) -> None:
    """``read_blocks`` (the C fast path's reader) is ``read_lines`` unsplit, whatever the chunk
    boundaries, overlong lines, byte order mark or last newline."""
    data, offsets = log
    for chosen in ([Task("")], cut(len(data), offsets)):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(ndjson_files, "CHUNK_BYTES", 4)
            patch.setattr(ndjson_files, "MAX_LINE_BYTES", 30)
            patch.setattr(ndjson_files, "open_regular", lambda _p: _bytes_file(data))
            for task in chosen:
                by_lines = ({"lines_read": 0}, Skips())
                by_blocks = ({"lines_read": 0}, Skips())
                lists = list(read_lines(task, *by_lines))
                blocks = list(read_blocks(task, *by_blocks))
                assert [b"\n".join(found) for found in lists] == [block for block, _ in blocks]
                assert [len(found) for found in lists] == [count for _, count in blocks]
                assert by_blocks[0] == by_lines[0]
                assert by_blocks[1].locations == by_lines[1].locations


def _bytes_file(data: bytes) -> io.BufferedReader:
    return io.BufferedReader(io.BytesIO(data))


def test_a_large_plain_file_is_planned_as_newline_independent_ranges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ndjson_files, "MIN_RANGE_BYTES", 100)
    plain = tmp_path / "a.ndjson"
    plain.write_bytes(b"x" * 1000)
    small = tmp_path / "b.ndjson"
    small.write_bytes(b"x" * 150)
    packed = tmp_path / "c.ndjson.gz"
    packed.write_bytes(gzip.compress(b"x" * 5000))

    tasks = plan_tasks([str(plain), str(small), str(packed)], 4)

    assert [(t.start, t.end) for t in tasks] == [
        (0, 250),
        (250, 500),
        (500, 750),
        (750, 1000),
        (0, None),
        (0, None),
    ]


# -- worker processes ----------------------------------------------------------------------------


def test_a_split_scan_in_workers_counts_exactly_what_one_process_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(ndjson_files, "MIN_RANGE_BYTES", 1)
    path = tmp_path / "usage.ndjson"
    data = usage_log(path, 6000)
    live = tmp_path / "live.ndjson.gz"
    whole = gzip.compress(data[3:], mtime=0)
    live.write_bytes(whole[: len(whole) * 2 // 3])
    files = [str(path), str(live)]
    tasks = plan_tasks(files, 5)
    assert len(tasks) == 6
    assert all(data[t.start - 1] != ord("\n") for t in tasks[1:5])  # every boundary mid-line
    capfd.readouterr()

    alone = fetch(path, live, workers=1, group_by=("model", "project_id"))
    alone_log = "".join(capfd.readouterr())
    options = NdjsonOptions(paths=tuple(files), group_by=("model", "project_id"))
    scan = ndjson_logs._Scan(options, MARCH)
    scan.read_parallel(files, workers=2, pieces=5)
    split = scan.totals(FakePricer(), None)
    split_log = "".join(capfd.readouterr())

    assert split == alone
    assert alone.info["lines_read"] > 6000 + 3000
    assert alone.info["gzip_truncated"] == 1
    assert alone.skipped["blank_line"] > 0
    # The parent logs what the workers saw; the workers themselves print nothing.
    assert split_log.count(EVENT_GZIP_TRUNCATED) == alone_log.count(EVENT_GZIP_TRUNCATED)


def test_fetch_reads_large_logs_in_worker_processes_unless_told_not_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "usage.ndjson"
    usage_log(path, 3000)
    monkeypatch.setattr(ndjson_files, "PARALLEL_MIN_BYTES", 1000)
    monkeypatch.setattr(ndjson_files, "MIN_RANGE_BYTES", 1000)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    pools: list[int] = []
    real_run_tasks = ndjson_files.run_tasks

    def spy(scan: Any, tasks: list[Task], workers: int) -> Any:
        pools.append(len(tasks))
        return real_run_tasks(scan, tasks, workers)

    monkeypatch.setattr(ndjson_logs, "run_tasks", spy)

    in_process = fetch(path, workers=1)
    assert pools == []
    parallel = fetch(path)

    assert pools == [2]
    assert parallel == in_process


@pytest.mark.parametrize("broken", ["missing", "corrupt_gzip"])
def test_an_error_in_a_worker_surfaces_as_the_same_log_source_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broken: str
) -> None:
    monkeypatch.setattr(ndjson_files, "MIN_RANGE_BYTES", 1)
    good = tmp_path / "usage.ndjson"
    usage_log(good, 200)
    bad = tmp_path / "bad.ndjson.gz"
    if broken == "corrupt_gzip":
        bad.write_bytes(b"\x1f\x8b\x08\x00" + b"garbage" * 20)
    options = NdjsonOptions(paths=(str(good),))

    with pytest.raises(LogSourceError) as in_process:
        ndjson_logs._Scan(options, MARCH).read_file(str(bad))
    with pytest.raises(LogSourceError) as in_worker:
        ndjson_logs._Scan(options, MARCH).read_parallel([str(good), str(bad)], workers=2)

    assert str(in_worker.value) == str(in_process.value)
    assert "bad.ndjson.gz" in str(in_worker.value)
    assert in_worker.value.reason == in_process.value.reason == "log_file_unreadable"


def test_small_logs_are_read_in_process(tmp_path: Path) -> None:
    path = tmp_path / "usage.ndjson"
    usage_log(path, 50)

    assert ndjson_files.parallel_workers([str(path)], 0) == 1
    assert ndjson_files.parallel_workers([str(path)], 1) == 1


def test_a_worker_result_survives_pickling(tmp_path: Path) -> None:
    path = tmp_path / "usage.ndjson"
    usage_log(path, 100)
    options = NdjsonOptions(paths=(str(path),), group_by=("model", "project_id"))

    partial = ndjson_logs._scan_task(options, MARCH, Task(str(path), 0, path.stat().st_size))

    assert partial[2]["records_counted"] > 0
    assert pickle.loads(pickle.dumps(partial)) == partial  # noqa: S301 - our own bytes


# -- what a log path may be (issue 9 items 10 and 11) ------------------------------------------


@pytest.mark.timeout(10)
def test_a_fifo_named_as_a_log_path_is_refused_without_waiting_for_a_writer(
    tmp_path: Path,
) -> None:
    fifo = tmp_path / "usage.ndjson"
    os.mkfifo(fifo)

    with pytest.raises(LogSourceError) as info:
        resolve_log_files([str(fifo)])

    assert str(fifo) in str(info.value)
    assert "named pipe (FIFO)" in str(info.value)
    assert info.value.reason == "log_file_not_regular"


@pytest.mark.timeout(10)
def test_a_character_device_named_as_a_log_path_is_refused() -> None:
    with pytest.raises(LogSourceError, match=r"'/dev/zero' is a character device"):
        resolve_log_files(["/dev/zero"])


@pytest.mark.timeout(10)
def test_a_fifo_in_a_log_directory_or_glob_is_left_alone(tmp_path: Path) -> None:
    write(tmp_path / "a.ndjson", rec())
    os.mkfifo(tmp_path / "b.ndjson")

    assert resolve_log_files([str(tmp_path)]) == [str(tmp_path / "a.ndjson")]
    assert resolve_log_files([str(tmp_path / "*.ndjson")]) == [str(tmp_path / "a.ndjson")]
    assert fetch(tmp_path).info["records_counted"] == 1


@pytest.mark.timeout(10)
def test_a_file_replaced_by_a_fifo_after_resolving_is_refused_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "usage.ndjson"
    os.mkfifo(path)

    with pytest.raises(LogSourceError, match="named pipe"):
        list(read_lines(Task(str(path)), {"lines_read": 0}, Skips()))


def _link_loop(directory: Path) -> None:
    """``ln -s a d/b.ndjson; ln -s b.ndjson d/a``: each link points on to the other."""
    directory.mkdir(exist_ok=True)
    (directory / "b.ndjson").symlink_to("a")
    (directory / "a").symlink_to("b.ndjson")


@pytest.mark.parametrize("named", ["directory", "glob", "link"])
def test_a_symbolic_link_loop_is_an_error_naming_it(tmp_path: Path, named: str) -> None:
    logs = tmp_path / "d"
    _link_loop(logs)
    write(logs / "good.ndjson", rec())
    spec = {
        "directory": str(logs),
        "glob": str(logs / "*.ndjson"),
        "link": str(logs / "b.ndjson"),
    }[named]

    with pytest.raises(LogSourceError) as info:
        resolve_log_files([spec])

    assert str(logs / "b.ndjson") in str(info.value)
    assert "loop of symbolic links" in str(info.value)
    assert info.value.reason == "log_file_unusable"


def test_a_loop_under_a_name_that_is_no_log_file_is_not_looked_at(tmp_path: Path) -> None:
    logs = tmp_path / "d"
    logs.mkdir()
    (logs / "x").symlink_to("y")
    (logs / "y").symlink_to("x")
    write(logs / "good.ndjson", rec())

    assert resolve_log_files([str(logs)]) == [str(logs / "good.ndjson")]


def test_an_unlistable_log_directory_is_an_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(path: str) -> None:
        raise PermissionError(13, "Permission denied", path)

    # chmod 0 does not stop root, who runs these tests in CI containers.
    monkeypatch.setattr(ndjson_files.os, "scandir", denied)

    with pytest.raises(LogSourceError, match=r"'.*' cannot be looked at: Permission denied"):
        resolve_log_files([str(tmp_path)])


# -- where the skipped lines are (issue 9 item 30) ---------------------------------------------


def test_worker_processes_send_back_where_the_skipped_lines_are_in_the_whole_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (Overlong lines in ranges: test_consecutive_ranges_see_every_line_exactly_once; the
    # workers would not see a monkeypatched MAX_LINE_BYTES.)
    monkeypatch.setattr(ndjson_files, "MIN_RANGE_BYTES", 1)
    bad_at = {7, 1999, 2000, 2001, 3500, 3501, 3502}
    lines = ["{broken" if n in bad_at else rec() for n in range(1, 4001)]
    lines[100 - 1] = "{}"  # missing_timestamp: named once in the file
    lines[3000 - 1] = "{}"
    path = write(tmp_path / "usage.ndjson", *lines)
    options = NdjsonOptions(paths=(str(path),))

    split = ndjson_logs._Scan(options, MARCH)
    split.read_parallel([str(path)], workers=2, pieces=5)
    alone = ndjson_logs._Scan(options, MARCH)
    alone.read_file(str(path))

    expected = {
        "malformed_json": tuple(f"{path}:{n}" for n in (7, 1999, 2000, 2001, 3500)),
        "missing_timestamp": (f"{path}:100",),
    }
    assert split.totals(FakePricer(), None).skipped_locations == expected
    assert alone.totals(FakePricer(), None).skipped_locations == expected
    assert split.skipped == alone.skipped == {"malformed_json": 7, "missing_timestamp": 2}
    assert len(plan_tasks([str(path)], 5)) == 5


def test_an_overlong_line_is_located_where_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ndjson_files, "CHUNK_BYTES", 64)
    monkeypatch.setattr(ndjson_files, "MAX_LINE_BYTES", 100)
    path = write(tmp_path / "a.ndjson", rec(), "x" * 1000, rec(), "{", "y" * 500, rec(), "z" * 101)

    totals = fetch(path)

    assert totals.skipped_locations == {
        "line_too_long": (f"{path}:2", f"{path}:5", f"{path}:7"),
        "malformed_json": (f"{path}:4",),
    }
    assert totals.info["lines_read"] == 7


def test_skips_keep_the_first_few_per_reason_and_one_per_file_for_undated_lines() -> None:
    skips = Skips()
    for line in range(1, 9):
        skips.add("malformed_json", "a", line)
        skips.add("missing_timestamp", "a", line)
    skips.merge({"missing_timestamp": 2}, {"missing_timestamp": [("b", 3), ("b", 4)]}, offset=10)

    assert skips.counts == {"malformed_json": 8, "missing_timestamp": 10}
    assert skips.shown() == {
        "malformed_json": ("a:1", "a:2", "a:3", "a:4", "a:5"),
        "missing_timestamp": ("a:1", "b:13"),
    }


@pytest.mark.parametrize("ranged", [False, True])
def test_a_file_that_shrinks_while_it_is_read_is_a_transient_error(
    tmp_path: Path, ranged: bool
) -> None:
    # logrotate's copytruncate cut the file under a run: it counted neither the file before
    # nor after, and said nothing.
    path = tmp_path / "usage.ndjson"
    line = (rec() + "\n").encode()
    path.write_bytes(line * (3 * ndjson_files.CHUNK_BYTES // len(line)))
    size = path.stat().st_size
    task = Task(str(path), 0, size) if ranged else Task(str(path))
    reading = read_lines(task, {"lines_read": 0}, Skips())
    assert next(reading)  # the first chunk's lines
    os.truncate(path, 100)

    with pytest.raises(LogSourceError) as info:
        list(reading)
    assert not info.value.permanent  # run again: the next read sees the file as it is
    assert info.value.reason == "log_file_changed"
    assert f"shrank while it was read ({size:,} bytes, then it ended at " in str(info.value)


def test_a_file_that_grows_while_it_is_read_is_read_on(tmp_path: Path) -> None:
    path = tmp_path / "usage.ndjson"
    line = (rec() + "\n").encode()
    path.write_bytes(line * (2 * ndjson_files.CHUNK_BYTES // len(line)))
    info = {"lines_read": 0}
    reading = read_lines(Task(str(path)), info, Skips())
    first = next(reading)
    with path.open("ab") as fh:
        fh.write(line * 10)

    rest = [ln for chunk in reading for ln in chunk]
    assert len(first) + len(rest) == info["lines_read"] == path.stat().st_size // len(line)


def test_a_glob_under_a_directory_it_may_not_list_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # glob skips what it may not read: the run said "no log files match", hiding the reason.
    # (Tests run as root, whom chmod 000 does not stop: the refusal is the OS's, simulated.)
    locked = tmp_path / "locked"
    locked.mkdir()
    listing = os.scandir

    def scandir(path: Any = ".") -> Any:
        if str(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(path))
        return listing(path)

    monkeypatch.setattr(ndjson_files.os, "scandir", scandir)
    monkeypatch.setattr(ndjson_files.glob, "glob", lambda *_a, **_k: [])
    with pytest.raises(LogSourceError, match=r"'.*locked' cannot be looked at: Permission denied"):
        resolve_log_files([str(locked / "*.ndjson")])
    # A directory that is not there is still "no log files match".
    with pytest.raises(LogSourceError, match="no log files match"):
        resolve_log_files([str(tmp_path / "absent" / "*.ndjson")])
