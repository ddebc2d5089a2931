"""The cache keeps each file's fingerprints by day: a run fetches only its window's days, and
a missing day makes its file read again, never a silent gap in dedupe (issue 13, item 1). A
history prune drops the entries of files gone and the fingerprints of days no longer kept
(item 5)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path

from freezegun import freeze_time

from recon_job.models import Window
from recon_job.store import HistoryStore, retention_start
from tests.sources.ndjson import test_cache
from tests.sources.ndjson.helpers import rec
from tests.sources.ndjson.test_cache import append, comparable, fetch

#: The history databases the cache lives in (SQLite, PostgreSQL), as in test_cache.
history = test_cache.history
store = test_cache.store

PER_DAY = 2_000
DAYS = 5
DAY_3 = Window("daily", date(2026, 3, 3), date(2026, 3, 4))


class Recording:
    """A cache that counts the bytes each run takes from ``store``, and can lose every entry
    fetched after a run's first request (its fingerprint chunks)."""

    def __init__(self, store: HistoryStore, *, lose_later_fetches: bool = False) -> None:
        self.store = store
        self.lose = lose_later_fetches
        self.calls = 0
        self.bytes = 0

    def cache_get(self, namespace: str, keys: Iterable[str]) -> dict[str, bytes]:
        self.calls += 1
        if self.lose and self.calls > 1:
            return {}
        found = self.store.cache_get(namespace, keys)
        self.bytes += sum(len(value) for value in found.values())
        return found

    def cache_put(
        self,
        namespace: str,
        entries: dict[str, bytes],
        now: datetime,
        drop: Iterable[str] = (),
        touch: Iterable[str] = (),
    ) -> None:
        self.store.cache_put(namespace, entries, now, drop, touch)


def daily_files(logs: Path) -> None:
    """One file per day, March 1-5, PER_DAY requests each; day 3's file repeats one request of
    day 3 also logged in day 4's file (a retry logged twice)."""
    logs.mkdir()
    for day in range(1, DAYS + 1):
        lines = [
            rec(f"2026-03-0{day}T{i % 24:02d}:00:00Z", request_id=f"req-{day}-{i}")
            for i in range(PER_DAY)
        ]
        append(logs / f"app-2026-03-0{day}.ndjson", lines)
    append(logs / "app-2026-03-04.ndjson", [rec("2026-03-03T23:59:00Z", request_id="req-3-7")])


def test_a_daily_run_fetches_only_its_days_fingerprints(
    tmp_path: Path, store: HistoryStore
) -> None:
    logs = tmp_path / "logs"
    daily_files(logs)
    fetch(logs, store)  # the first run reads and stores every file
    month = Recording(store)
    monthly = fetch(logs, month)
    day = Recording(store)
    daily = fetch(logs, day, DAY_3)

    assert comparable(daily) == fetch(logs, None, DAY_3)
    assert daily.info["cache_files_hit"] == DAYS
    assert daily.duplicates is not None
    assert daily.duplicates.count == 1  # across two files, from the cache
    # 8 bytes a fingerprint: the month's run takes every day's, the day's run about one day's.
    assert month.bytes >= 8 * PER_DAY * DAYS
    assert day.bytes < 8 * PER_DAY * 1.5
    assert monthly.duplicates is not None
    assert monthly.duplicates.count == 1


def test_a_lost_day_of_fingerprints_makes_its_file_read_again(
    tmp_path: Path, store: HistoryStore
) -> None:
    logs = tmp_path / "logs"
    daily_files(logs)
    fetch(logs, store)

    lossy = fetch(logs, Recording(store, lose_later_fetches=True), DAY_3)

    # The files holding day 3 were read again (not a silent gap in dedupe); the others were not
    # asked for any fingerprint.
    assert comparable(lossy) == fetch(logs, None, DAY_3)
    assert lossy.duplicates is not None
    assert lossy.duplicates.count == 1
    assert (lossy.info["cache_files_read"], lossy.info["cache_files_hit"]) == (2, DAYS - 2)
    # What they stored again is whole: the next run takes everything from the cache.
    again = fetch(logs, store, DAY_3)
    assert again.info["cache_files_hit"] == DAYS
    assert again.info["cache_bytes_read"] == 0
    assert comparable(again) == comparable(lossy)


def test_a_prune_drops_the_entries_of_files_gone_and_keeps_those_of_files_there(
    tmp_path: Path, store: HistoryStore
) -> None:
    logs = tmp_path / "logs"
    daily_files(logs)
    gone = logs / "app-2026-03-05.ndjson"
    with freeze_time("2026-04-01"):
        fetch(logs, store, dedupe=False)  # entries and pointers only: no fingerprints
    saved = gone.read_bytes()
    gone.unlink()
    with freeze_time("2026-12-01"):
        fetch(logs, store, dedupe=False)  # the files still there are stamped as used

    report = store.prune_history(retention_start(date(2027, 5, 10), 400))  # from 2026-04-06

    # The file gone: its entry and its path's and inode's pointers.
    assert report.deleted["cache_entries"] == 3
    gone.write_bytes(saved)
    back = fetch(logs, store, dedupe=False)
    assert (back.info["cache_files_hit"], back.info["cache_files_read"]) == (DAYS - 1, 1)
    assert comparable(back) == fetch(logs, None, dedupe=False)


def test_a_prune_drops_old_fingerprints_and_a_window_needing_them_reads_again(
    tmp_path: Path, store: HistoryStore
) -> None:
    logs = tmp_path / "logs"
    daily_files(logs)
    with freeze_time("2026-04-01"):
        fetch(logs, store)
    with freeze_time("2026-12-01"):
        fetch(logs, store, DAY_3)

    report = store.prune_history(retention_start(date(2027, 5, 10), 400))

    # One chunk per file and day (day 4's file holds a line of day 3 too), written in April;
    # the entries and pointers were used since.
    assert report.deleted["cache_entries"] == DAYS + 1
    again = fetch(logs, store, DAY_3)
    assert (again.info["cache_files_hit"], again.info["cache_files_read"]) == (DAYS - 2, 2)
    assert comparable(again) == fetch(logs, None, DAY_3)
    assert again.duplicates is not None
    assert again.duplicates.count == 1
