"""The incremental aggregation cache: whatever happened to the log files since the last run,
a run answered from the cache gives exactly the totals of a cold scan (issue 13, item 1)."""

from __future__ import annotations

import gzip
import os
import random
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from recon_job.models import UsageTotals, Window
from recon_job.sources.ndjson.cache import NAMESPACE, CachedNdjsonLogSource, settings_key
from recon_job.sources.ndjson.source import NdjsonLogSource, NdjsonOptions
from recon_job.store import HistoryStore
from recon_job.store.schema import cache_entries
from tests.databases import postgres_server_or_skip, temporary_postgres_database
from tests.e2e import D1, cli, drifting_world, workdir_fixture  # noqa: F401
from tests.fakeopenai import FakeOpenAI, fake_openai_fixture  # noqa: F401
from tests.helpers import FakePricer, together
from tests.sources.ndjson.helpers import MARCH, rec

MID_MARCH = Window("daily", date(2026, 3, 11), date(2026, 3, 12))
CACHE_INFO = ("cache_files_hit", "cache_files_grown", "cache_files_read")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def history(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh history database URL (SQLite or PostgreSQL, as the history): the cache lives
    there."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'history.db'}"
        return
    yield from temporary_postgres_database(postgres_server_or_skip())


@pytest.fixture
def store(history: str) -> Iterator[HistoryStore]:
    with HistoryStore(history) as opened:
        yield opened


def lines_for(seed: int, count: int) -> list[str]:
    """A mix of what logs hold: several days (some outside March), duplicates, other families,
    disagreeing totals, dated and undated bad lines."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        day = rng.choice([9, 10, 11, 11, 12, 31])
        month = 4 if day == 31 else 3
        day = 1 if day == 31 else day
        ts = f"2026-{month:02d}-{day:02d}T{rng.randrange(24):02d}:00:00Z"
        kind = rng.randrange(12)
        if kind == 0:
            out.append("{not json")
        elif kind == 1:
            out.append(rec(ts, prompt_tokens=-1))  # dated skip
        elif kind == 2:
            out.append(rec("yesterday"))  # undated skip
        elif kind == 3:
            out.append(rec(ts, "text-embedding-3-small", prompt_tokens=8, completion_tokens=0))
        elif kind == 4:
            out.append(rec(ts, request_id=f"dup-{rng.randrange(3)}", total_tokens=1))
        else:
            out.append(rec(ts, rng.choice(["gpt-4o-mini", "gpt-4o"]), request_id=f"r{seed}-{i}"))
    return out


def append(path: Path, lines: list[str], *, newline: bool = True) -> None:
    with path.open("ab") as handle:
        handle.write(("\n".join(lines) + ("\n" if newline else "")).encode())


def days_with_records(tmp_path: Path, lines: list[str]) -> int:
    """How many UTC days ``lines`` count records on (a cold scan of them alone)."""
    alone = tmp_path / f"alone-{len(list(tmp_path.iterdir()))}"
    alone.mkdir()
    append(alone / "lines.ndjson", lines)
    every_day = Window("range", date(2026, 1, 1), date(2027, 1, 1))
    return len({key.day for key in fetch(alone, None, every_day).groups})


def comparable(totals: UsageTotals) -> UsageTotals:
    info = {k: v for k, v in totals.info.items() if not k.startswith("cache_")}
    return replace(totals, info=info)


def fetch(directory: Path, cache: Any, window: Window = MARCH, **options: Any) -> UsageTotals:
    opts = NdjsonOptions(paths=(str(directory),), workers=1, **options)
    if cache is None:
        return NdjsonLogSource(opts, FakePricer()).fetch(window)
    return CachedNdjsonLogSource(opts, FakePricer(), None, cache).fetch(window)


def same_as_cold(directory: Path, store: HistoryStore, **options: Any) -> list[UsageTotals]:
    """Fetch two windows through the cache and check each against a cold scan."""
    results = []
    for window in (MARCH, MID_MARCH):
        cached = fetch(directory, store, window, **options)
        cold = fetch(directory, None, window, **options)
        assert comparable(cached) == cold
        results.append(cached)
    return results


def test_a_second_run_reads_nothing_and_gives_the_cold_totals(
    tmp_path: Path, store: HistoryStore
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    append(logs / "a.ndjson", lines_for(1, 300))
    append(logs / "b.ndjson", lines_for(2, 200))
    first = fetch(logs, store)
    assert first.info["cache_files_read"] == 2
    second, daily = same_as_cold(logs, store)
    assert second.info["cache_files_hit"] == 2
    assert second.info["cache_bytes_read"] == 0
    assert second.info["cache_bytes_skipped"] == sum(p.stat().st_size for p in logs.iterdir())
    assert second.duplicates is not None
    assert second.duplicates.count > 0
    assert daily.info["outside_window"] > 0


def test_a_grown_file_is_read_from_where_the_cache_stopped(
    tmp_path: Path, store: HistoryStore
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    active = logs / "app.ndjson"
    append(active, lines_for(3, 200))
    fetch(logs, store)
    old = active.stat().st_size
    append(active, lines_for(4, 50))
    grown, _ = same_as_cold(logs, store)
    assert grown.info["cache_files_grown"] == 1
    assert grown.info["cache_bytes_skipped"] == old
    assert grown.info["cache_bytes_read"] == active.stat().st_size - old
    # The entry of the shorter file went: one entry and its two pointers, not one per run; the
    # fingerprints stay, a chunk per day of each read (the new lines' days got one more).
    chunks = days_with_records(tmp_path, lines_for(3, 200)) + days_with_records(
        tmp_path, lines_for(4, 50)
    )
    assert store.cache_clear(NAMESPACE) == 3 + chunks


def test_a_partial_last_line_is_read_every_time_and_completed_later(
    tmp_path: Path, store: HistoryStore
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    active = logs / "app.ndjson"
    append(active, lines_for(5, 100))
    line = rec("2026-03-11T01:00:00Z", request_id="half")
    append(active, [line[:20]], newline=False)
    same_as_cold(logs, store)
    append(active, [line[20:]])
    grown, _ = same_as_cold(logs, store)
    assert grown.info["cache_files_grown"] == 1


def test_rotation_rename_and_compression_are_recognised(
    tmp_path: Path, store: HistoryStore
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    active = logs / "app.ndjson"
    append(active, lines_for(6, 200))
    fetch(logs, store)
    active.rename(logs / "app.ndjson.1")  # rotate: rename, and a new active file
    append(active, lines_for(7, 30))
    rotated, _ = same_as_cold(logs, store)
    assert rotated.info["cache_files_hit"] == 1
    # Compressed after rotation: read once, then recognised after a rename.
    with (
        (logs / "app.ndjson.1").open("rb") as plain,
        gzip.open(logs / "app.ndjson.1.gz", "wb") as z,
    ):
        z.write(plain.read())
    (logs / "app.ndjson.1").unlink()
    compressed, _ = same_as_cold(logs, store)
    assert compressed.info["cache_files_read"] == 1  # new bytes: the .gz is read once
    (logs / "app.ndjson.1.gz").rename(logs / "app.ndjson.2.gz")
    renamed, _ = same_as_cold(logs, store)
    assert renamed.info["cache_files_hit"] == 2
    assert renamed.info["cache_bytes_read"] == 0


def test_a_truncated_or_edited_file_is_read_again(tmp_path: Path, store: HistoryStore) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    active = logs / "app.ndjson"
    append(active, lines_for(8, 200))
    fetch(logs, store)
    active.write_bytes(b"")  # truncated (copytruncate), then written again
    append(active, lines_for(9, 20))
    truncated, _ = same_as_cold(logs, store)
    assert truncated.info["cache_files_read"] == 1
    data = active.read_bytes()
    active.write_bytes(data.replace(b'"prompt_tokens":10', b'"prompt_tokens":99', 1))
    os.utime(active, ns=(1, 1))
    edited, _ = same_as_cold(logs, store)
    assert edited.info["cache_files_read"] == 1


def test_a_file_edited_in_place_keeping_its_ends_and_size_is_read_again(
    tmp_path: Path, store: HistoryStore
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    big = logs / "big.ndjson"
    append(big, lines_for(10, 3000))  # well over twice 64 KiB: the middle is not hashed
    fetch(logs, store)
    data = bytearray(big.read_bytes())
    middle = data.index(b'"prompt_tokens":10', len(data) // 2)
    data[middle : middle + 18] = b'"prompt_tokens":77'
    big.write_bytes(bytes(data))
    os.utime(big, ns=(10**18, 10**18))
    edited, _ = same_as_cold(logs, store)
    assert edited.info["cache_files_read"] == 1


def test_a_changed_parsing_setting_is_a_new_entry(tmp_path: Path, store: HistoryStore) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    append(logs / "app.ndjson", lines_for(11, 200))
    fetch(logs, store)
    assert settings_key(NdjsonOptions(paths=())) != settings_key(
        NdjsonOptions(paths=(), timezone="Europe/Helsinki")
    )
    other, _ = same_as_cold(logs, store, dedupe=False)
    assert other.info["cache_files_read"] == 1
    zoned, _ = same_as_cold(logs, store, timezone="Europe/Helsinki")
    assert zoned.info["cache_files_read"] == 1


def test_a_damaged_entry_is_rebuilt_silently(tmp_path: Path, store: HistoryStore) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    append(logs / "app.ndjson", lines_for(12, 100))
    fetch(logs, store)
    with store._write() as conn:
        conn.execute(update(cache_entries).values(value=b"garbage"))
    rebuilt, _ = same_as_cold(logs, store)
    assert rebuilt.info["cache_files_read"] == 1
    again, _ = same_as_cold(logs, store)
    assert again.info["cache_files_hit"] == 1


OPERATIONS = st.sampled_from(
    ["grow", "rotate", "rename", "truncate", "compress", "edit", "setting", "late"]
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(st.tuples(OPERATIONS, st.integers(0, 10**6)), min_size=1, max_size=6))
def test_any_sequence_of_operations_gives_the_cold_totals(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, int]]
) -> None:
    root = tmp_path_factory.mktemp("prop")
    logs = root / "logs"
    logs.mkdir()
    active = logs / "app.ndjson"
    append(active, lines_for(0, 40))
    options: dict[str, Any] = {}
    generation = 0
    with HistoryStore(f"sqlite:///{root / 'h.db'}") as store:
        same_as_cold(logs, store)
        for operation, seed in steps:
            generation += 1
            if operation == "grow":
                append(active, lines_for(seed, 1 + seed % 40))
            elif operation == "rotate" and active.exists():
                active.rename(logs / f"app.ndjson.{generation}")
                append(active, lines_for(seed, 5))
            elif operation == "rename":
                olds = sorted(p for p in logs.iterdir() if p != active)
                if olds:
                    olds[0].rename(
                        logs / f"app.ndjson.{generation}{''.join(olds[0].suffixes[-1:])}"
                    )
            elif operation == "truncate":
                active.write_bytes(b"")
                append(active, lines_for(seed, 3))
            elif operation == "compress":
                olds = sorted(p for p in logs.iterdir() if p.suffix != ".gz" and p != active)
                if olds:
                    with gzip.open(logs / f"app.ndjson.{generation}.gz", "wb") as z:
                        z.write(olds[0].read_bytes())
                    olds[0].unlink()
            elif operation == "late":
                # The writer still held the rotated file open: it grew after its rename.
                olds = sorted(p for p in logs.iterdir() if p.suffix != ".gz" and p != active)
                if olds:
                    append(olds[-1], lines_for(seed, 4))
            elif operation == "edit":
                data = active.read_bytes()
                active.write_bytes(data.replace(b"gpt-4o-mini", b"gpt-4o-mind", 1))
            elif operation == "setting":
                options = (
                    {}
                    if options
                    else {"timezone": "Europe/Helsinki", "group_by": ("model", "project_id")}
                )
            same_as_cold(logs, store, **options)


def test_two_concurrent_runs_sharing_a_cache_are_both_right(tmp_path: Path, history: str) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    for n in range(6):
        append(logs / f"app.ndjson.{n}", lines_for(20 + n, 300))
    cold = fetch(logs, None)
    results: list[UsageTotals] = []

    def run() -> None:
        with HistoryStore(history) as store:
            for _ in range(2):
                results.append(comparable(fetch(logs, store)))

    assert together(run) == []
    assert results == [cold] * 4
    with HistoryStore(history) as store:
        assert fetch(logs, store).info["cache_files_hit"] == 6


def test_no_cache_and_cache_clear(tmp_path: Path, history: str) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    append(logs / "app.ndjson", lines_for(30, 50))
    with HistoryStore(history) as store:
        fetch(logs, store)
        assert store.cache_get(NAMESPACE, ["nothing"]) == {}
        # The entry, its path and inode pointers, and a fingerprint chunk per day.
        entries = 3 + days_with_records(tmp_path, lines_for(30, 50))
        assert store.cache_clear(NAMESPACE) == entries
        assert fetch(logs, store).info["cache_files_read"] == 1
    from recon_job.cli.main import main

    config = tmp_path / "recon.toml"
    config.write_text(f'[history]\ndatabase_url = "{history}"\n')
    result = CliRunner().invoke(main, ["cache", "clear", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert f"{entries} cache entries dropped" in result.output
    with HistoryStore(history) as store:
        assert fetch(logs, store).info["cache_files_read"] == 1


def fetched(ran: Any) -> dict[str, Any]:
    """The NDJSON source's ``fetched`` log event of a CLI run."""
    (event,) = [e for e in ran.logs() if e.get("event") == "recon.source.ndjson.fetched"]
    return dict(event)


def test_recon_job_run_reads_through_the_cache_unless_no_cache(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    drifting_world(fake_openai, workdir)
    args = ("run", "--date", D1.isoformat(), "--format", "json")
    first = cli(workdir, fake_openai, *args)
    again = cli(workdir, fake_openai, *args, "--force")
    bypassed = cli(workdir, fake_openai, *args, "--force", "--no-cache")
    assert (first.code, again.code, bypassed.code) == (0, 0, 0), first.stderr[-2000:]
    assert fetched(first)["cache_files_read"] == 1
    assert fetched(again)["cache_files_hit"] == 1
    assert fetched(again)["cache_bytes_read"] == 0
    assert not any(name.startswith("cache_") for name in fetched(bypassed))
    summary = [
        {k: v for k, v in r.doc().items() if k not in ("run_id",)} for r in (again, bypassed)
    ]
    assert summary[0]["local"] == summary[1]["local"]
    assert first.doc()["local"] == again.doc()["local"]
    # The run's JSON says what was read and what came from the cache.
    assert again.doc()["info"]["cache_files_hit"] == 1
    assert again.doc()["info"]["cache_bytes_skipped"] > 0
    assert "cache_files_hit" not in bypassed.doc()["info"]


def test_too_many_groups_stop_the_cached_run_where_the_cold_scan_stops(
    tmp_path: Path, store: HistoryStore
) -> None:
    from recon_job.errors import LogSourceError

    logs = tmp_path / "logs"
    logs.mkdir()
    append(logs / "app.ndjson", [rec("2026-03-11T01:00:00Z", f"model-{n}") for n in range(30)])
    messages = []
    for cache in (None, store):
        with pytest.raises(LogSourceError) as raised:
            fetch(logs, cache, max_groups=10)
        assert raised.value.reason == "too_many_groups"
        messages.append(str(raised.value))
    assert messages[0] == messages[1]
    assert "app.ndjson:11" in messages[1]


def test_a_file_that_grew_after_its_rename_is_read_from_where_the_cache_stopped(
    tmp_path: Path, store: HistoryStore
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    active = logs / "app.ndjson"
    append(active, lines_for(40, 200))
    fetch(logs, store)
    old = active.stat().st_size
    active.rename(logs / "app.ndjson.1")
    append(logs / "app.ndjson.1", lines_for(41, 10))  # the writer's last lines, after the rename
    late, _ = same_as_cold(logs, store)
    assert late.info["cache_files_grown"] == 1
    assert late.info["cache_bytes_skipped"] == old


@pytest.fixture
def pools(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[Any], int]]:
    """Two CPUs, small files counted as large, and the tasks and workers of every pool the
    cache starts."""
    from recon_job.sources.ndjson import cache as cache_module
    from recon_job.sources.ndjson import files

    monkeypatch.setattr(files, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    started: list[tuple[list[Any], int]] = []
    real = cache_module.run_tasks

    def counted(scan: Any, tasks: Any, workers: int) -> Any:
        started.append((list(tasks), workers))
        return real(scan, tasks, workers)

    monkeypatch.setattr(cache_module, "run_tasks", counted)
    return started


def test_files_missing_from_the_cache_are_read_in_worker_processes_with_the_same_totals(
    tmp_path: Path, store: HistoryStore, pools: list[tuple[list[Any], int]]
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    for n in range(3):
        append(logs / f"app.ndjson.{n}", lines_for(50 + n, 200))
    opts = NdjsonOptions(paths=(str(logs),), workers=2)
    cached = CachedNdjsonLogSource(opts, FakePricer(), None, store).fetch(MARCH)
    assert cached.info["cache_files_read"] == 3
    assert [workers for _, workers in pools] == [2]
    assert comparable(cached) == fetch(logs, None)
    assert fetch(logs, store).info["cache_files_hit"] == 3


def test_one_large_file_is_read_in_ranges_side_by_side_and_joined_in_order(
    tmp_path: Path,
    store: HistoryStore,
    monkeypatch: pytest.MonkeyPatch,
    pools: list[tuple[list[Any], int]],
) -> None:
    """The first run with the cache over one big file costs a cold scan's time, not twice it:
    its ranges are read by the workers and joined as a grown file's parts are, so the line
    numbers of skipped lines and duplicates, and every sum, are those of one read."""
    from recon_job.sources.ndjson import files

    monkeypatch.setattr(files, "MIN_RANGE_BYTES", 4096)  # this small file counts as large
    logs = tmp_path / "logs"
    logs.mkdir()
    append(logs / "app.ndjson", lines_for(60, 600))
    opts = NdjsonOptions(paths=(str(logs),), workers=2)

    first = CachedNdjsonLogSource(opts, FakePricer(), None, store).fetch(MARCH)

    size = (logs / "app.ndjson").stat().st_size
    assert [[(t.start, t.end) for t in tasks] for tasks, _ in pools] == [
        [(0, size // 2), (size // 2, size)]
    ]
    cold = fetch(logs, None)
    assert comparable(first) == cold
    assert first.skipped_locations == cold.skipped_locations
    assert first.duplicates is not None
    assert first.duplicates == cold.duplicates
    again = same_as_cold(logs, store)[0]
    assert again.info["cache_files_hit"] == 1
    assert again.skipped_locations == cold.skipped_locations
