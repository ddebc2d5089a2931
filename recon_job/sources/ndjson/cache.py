"""The incremental aggregation cache: a log file already read is never read again.

Per log file and reading settings, the cache keeps what a scan of the file found, for **every**
UTC day in it (not only a window's), so any later window, daily or monthly, is answered from it:
per day, the aggregates (day × group × tier as :mod:`~recon_job.sources.ndjson.source` sums
them, before pricing: prices and model names apply when the totals are made, so a new price
table needs no new read), the skipped lines per reason with their first locations, the records
counted and the notes on them, and the request-id fingerprints dedupe checks; and for the file,
the lines without a usable date. A window's ``outside_window`` count is the other days' lines.

**Fingerprints by day.** The fingerprints (8 bytes a record) are most of what a file's scan
finds, and a window needs only its own days': they are kept beside the entry, one entry per day
and per read (a chunk; a grown file's new lines add a chunk, the chunks already stored stay), and
a run fetches only its window's. A daily run over a month of logs reads a day of fingerprints,
not the month's. A chunk that went missing makes its file's entry a miss: the file is read again.

**Retention.** Every run stamps the entries and pointers of the files it finds, so ``recon-job
history prune`` (``[history] keep_days``) drops those of files gone for that long; chunks keep
the time they were written, so the fingerprints of days older than that go too (a window asking
for such a day again reads its files again).

**Identity.** An entry is keyed by the reading settings (:func:`settings_key`: field mapping,
timezone, grouping, project filter, cost unit, dedupe, the parser's version) and the file's
*content* up to its last newline: its length and a hash of its first and last 64 KiB (of the
compressed bytes for ``.gz``). So a file renamed by rotation, or a compressed rotation renamed
again, is found by content wherever it is. A pointer per path and per (device, inode) names
the content last read there: when the current file still holds that content's first and last
64 KiB at the same offsets (it only grew), only the bytes after it are read and added. A file
whose prefix changed, or that shrank, is read again from the start. One with the same device,
inode and size as its entry but another mtime was edited in place: read again too. A ``.gz``
never grows (its bytes change entirely). The partial last line of a file being written is read
every time and never cached.

An entry that cannot be decoded is a miss (the file is read again and the entry replaced);
the cache being unavailable (a store error) makes the run read everything, with a warning.
"""

from __future__ import annotations

import functools
import hashlib
import os
import struct
import sys
import zlib
from array import array
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, BinaryIO, Protocol

import orjson
import structlog

from recon_job.errors import LogSourceError, StoreError
from recon_job.families import COMPLETIONS
from recon_job.modelnames import ModelNamer
from recon_job.models import EMPTY, UNDATED_REASONS, Window
from recon_job.sources.base import Pricer
from recon_job.sources.groups import GroupLimit
from recon_job.sources.ndjson.files import (
    Task,
    parallel_workers,
    run_tasks,
    split_task,
)
from recon_job.sources.ndjson.records import LogRecord, NdjsonOptions
from recon_job.sources.ndjson.skips import LOCATIONS_PER_REASON, first_index
from recon_job.sources.ndjson.source import NdjsonLogSource, _Scan, uses_fast_path
from recon_job.version import __version__

__all__ = [
    "NAMESPACE",
    "PARSER_VERSION",
    "CachedNdjsonLogSource",
    "LogCache",
    "cached_scan",
    "settings_key",
]

logger = structlog.get_logger(__name__)

EVENT_CACHE_UNAVAILABLE = "recon.source.ndjson.cache_unavailable"

#: The store namespace of the NDJSON source's entries (``recon-job cache clear`` drops it).
NAMESPACE = "ndjson"
#: Bump when what a line means changes (records.py, the fast path): every entry is then stale.
PARSER_VERSION = 1
#: The format of an entry's bytes: the zlib-compressed JSON header's length (4 bytes), then
#: the header. Each day lists its fingerprint chunks (key, count): entries of their own holding
#: the fingerprints raw (random 61-bit numbers: compressing them gains nothing and costs the
#: warm run most of its time).
_FORMAT = 3
#: Bytes hashed at each end of a file's cached content.
EDGE = 64 << 10
#: Reasons found before a line's day is known: kept per file, counted in every window.
_UNDATED = frozenset(
    {"not_an_object", "malformed_json", "blank_line", "line_too_long", *UNDATED_REASONS}
)
#: A window spanning every day a timestamp can name: a file's scan for the cache keeps all.
_ALL_TIME = Window("range", date(1, 1, 1), date(9999, 12, 31))
#: One file's scan for the cache may hold this many times ``max_groups`` groups (all its
#: days); more, and the run reads without the cache, so the window's own bound says why.
_FILE_GROUPS = 64
#: A range end past any file: a range task from an offset to the end of a plain file.
_TO_END = 1 << 62


class LogCache(Protocol):
    """Where entries are kept (:class:`recon_job.store.HistoryStore` is one)."""

    def cache_get(self, namespace: str, keys: Iterable[str]) -> dict[str, bytes]:
        """The entries of ``keys`` that exist, by key."""

    def cache_put(
        self,
        namespace: str,
        entries: dict[str, bytes],
        now: datetime,
        drop: Iterable[str] = (),
        touch: Iterable[str] = (),
    ) -> None:
        """Store ``entries``, replacing those there, delete those of ``drop``, and stamp those
        of ``touch`` with ``now`` (still in use)."""


class CachedNdjsonLogSource(NdjsonLogSource):
    """An :class:`~recon_job.sources.ndjson.NdjsonLogSource` that reads each file's bytes
    once: what ``cache`` holds of a file is taken from it, the rest read and stored."""

    def __init__(
        self,
        options: NdjsonOptions,
        pricer: Pricer,
        namer: ModelNamer | None,
        cache: LogCache,
    ) -> None:
        super().__init__(options, pricer, namer)
        #: Where each file's findings are kept between runs (the history store).
        self.cache = cache

    def _scan(self, files: Sequence[str], window: Window) -> tuple[_Scan, int]:
        scan = cached_scan(self.options, window, files, self.cache)
        return (scan, 1) if scan is not None else super()._scan(files, window)


def settings_key(options: NdjsonOptions) -> str:
    """A digest of every option that changes how a line is read (not ``paths``, ``workers``,
    ``max_groups``: which files, how fast, how many groups a window may hold)."""
    described = {
        "parser": PARSER_VERSION,
        "version": __version__,
        "timezone": options.timezone,
        "fields": sorted(options.fields.items()),
        "group_by": list(options.group_by),
        "project_ids": sorted(options.project_ids),
        "cost_unit": options.cost_unit,
        "dedupe": options.dedupe,
    }
    return hashlib.sha256(orjson.dumps(described)).hexdigest()[:32]


# -- identity ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Identity:
    """A file as found now: its stat, whether gzip, and where its cacheable content ends."""

    path: str
    stat: tuple[int, int, int, int]
    gzip: bool
    #: The end of the cacheable content: after the last newline (plain), the size (gzip).
    end: int
    #: The content key of ``[0, end)``.
    content: str


def _digest(handle: BinaryIO, end: int, kind: bytes) -> str:
    """The content key of the first ``end`` bytes: their length, first and last EDGE bytes."""
    h = hashlib.sha256(kind + end.to_bytes(8, "big"))
    handle.seek(0)
    h.update(handle.read(min(EDGE, end)))
    if end > EDGE:
        handle.seek(max(EDGE, end - EDGE))
        h.update(handle.read(end - max(EDGE, end - EDGE)))
    return h.hexdigest()[:40]


def _last_newline_end(handle: BinaryIO, size: int) -> int:
    """The offset just after the last newline in the first ``size`` bytes (0: none)."""
    pos = size
    while pos > 0:
        start = max(0, pos - EDGE)
        handle.seek(start)
        block = handle.read(pos - start)
        found = block.rfind(b"\n")
        if found >= 0:
            return start + found + 1
        pos = start
    return 0


def _identify(path: str) -> _Identity:
    try:
        with open(path, "rb") as handle:
            st = os.fstat(handle.fileno())
            gzip = handle.read(2) == b"\x1f\x8b"
            end = st.st_size if gzip else _last_newline_end(handle, st.st_size)
            content = _digest(handle, end, b"gz" if gzip else b"nd")
    except OSError as e:
        raise LogSourceError(
            f"cannot read log file {path!r}: {e}", reason="log_file_unreadable"
        ) from e
    stat = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    return _Identity(path, stat, gzip, end, content)


def _prefix_content(path: str, end: int) -> str | None:
    """The content key of the first ``end`` bytes of a plain file now (None: unreadable)."""
    try:
        with open(path, "rb") as handle:
            return _digest(handle, end, b"nd")
    except OSError:
        return None


# -- one file's findings ------------------------------------------------------------------------


@dataclass
class _Day:
    """What one file holds of one UTC day."""

    #: (group, tier[, family, variant]) -> sums, as ``_Scan.acc`` without the day.
    acc: dict[tuple[Any, ...], list[Any]] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    #: Reason -> line numbers of the first few.
    locations: dict[str, list[int]] = field(default_factory=dict)
    #: ``records_counted`` and the notes on the counted records.
    info: dict[str, int] = field(default_factory=dict)
    #: Fingerprints read in this process and not stored in a chunk (yet, or ever: a partial
    #: last line's).
    prints: array[int] = field(default_factory=lambda: array("q"))
    #: The stored chunks of this day's fingerprints: (entry key, how many).
    chunks: list[tuple[str, int]] = field(default_factory=list)
    #: The chunks this process wrote or fetched, by key.
    loaded: dict[str, array[int]] = field(default_factory=dict)
    #: ``acc`` as stored, not decoded yet: a run decodes only its window's days.
    stored: list[Any] | None = None

    def sums(self) -> dict[tuple[Any, ...], list[Any]]:
        """``acc``, decoded from ``stored`` on first use."""
        if self.stored is not None:
            self.acc = {
                _key(key): [*sums[:4], Decimal(sums[4]), *sums[5:]] for key, sums in self.stored
            }
            self.stored = None
        return self.acc

    def lines(self) -> int:
        """Lines dated on this day: counted records and dated skips."""
        return self.info.get("records_counted", 0) + sum(self.skipped.values())


@dataclass
class _Part:
    """What one file (or the part of it read) holds: per day, and its undated lines."""

    lines: int = 0
    stat: tuple[int, int, int, int] = (0, 0, 0, 0)
    days: dict[date, _Day] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    locations: dict[str, list[int]] = field(default_factory=dict)
    info: dict[str, int] = field(default_factory=dict)

    def extend(self, later: _Part) -> None:
        """Add the findings of the lines after these (their line numbers shifted)."""
        for day, theirs in later.days.items():
            mine = self.days.setdefault(day, _Day())
            _add_sums(mine.sums(), theirs.sums())
            _add_counts(mine.skipped, theirs.skipped)
            _add_counts(mine.info, theirs.info)
            _add_locations(mine.locations, theirs.locations, self.lines)
            mine.chunks.extend(theirs.chunks)
            mine.loaded.update(theirs.loaded)
            mine.prints.extend(theirs.prints)
        _add_counts(self.skipped, later.skipped)
        _add_counts(self.info, later.info)
        _add_locations(self.locations, later.locations, self.lines)
        self.lines += later.lines

    def _not_loaded(self, window: Window) -> Iterator[tuple[_Day, str, int]]:
        """The fingerprint chunks of ``window``'s days not in memory: day, key, count."""
        for day, found in self.days.items():
            if window.start <= day < window.end:
                for key, count in found.chunks:
                    if key not in found.loaded:
                        yield found, key, count

    def unloaded(self, window: Window) -> set[str]:
        """The keys of the fingerprint chunks of ``window``'s days not in memory."""
        return {key for _, key, _ in self._not_loaded(window)}

    def load(self, window: Window, fetched: dict[str, bytes]) -> bool:
        """Take ``window``'s chunks from ``fetched``; False when one is missing or damaged."""
        for found, key, count in list(self._not_loaded(window)):
            blob = fetched.get(key)
            if blob is None or len(blob) != 8 * count:
                return False
            found.loaded[key] = _unpack(blob)
        return True

    def apply(self, scan: _Scan, path: str, window: Window) -> None:
        """Add what this file holds of ``window`` to a window's ``scan`` (``outside_window``:
        its lines dated on other days); the window's chunks are loaded (:meth:`load`)."""
        acc: dict[tuple[Any, ...], list[Any]] = {}
        skipped = dict(self.skipped)
        info = {"lines_read": self.lines, "outside_window": 0, **self.info}
        lines = {reason: list(found) for reason, found in self.locations.items()}
        prints = {}
        for day, found in self.days.items():
            if not window.start <= day < window.end:
                info["outside_window"] += found.lines()
                continue
            for key, sums in found.sums().items():
                acc[(day, *key)] = list(sums)
            _add_counts(skipped, found.skipped)
            _add_counts(info, found.info)
            for reason, numbers in found.locations.items():
                lines.setdefault(reason, []).extend(numbers)
            if found.chunks or found.prints:
                joined = array("q")
                for chunk, _ in found.chunks:
                    joined.extend(found.loaded[chunk])
                joined.extend(found.prints)
                prints[day] = joined
        located = {
            reason: [(path, number) for number in sorted(numbers)]
            for reason, numbers in lines.items()
        }
        scan.merge(acc, skipped, info, located)
        if scan.options.dedupe:
            scan.dedupe.prints.append((path, prints))


def _add_sums(
    into: dict[tuple[Any, ...], list[Any]], more: dict[tuple[Any, ...], list[Any]]
) -> None:
    from recon_job.sources.ndjson.source import _add_sums as add

    add(into, more)


def _add_counts(into: dict[str, int], more: dict[str, int]) -> None:
    for name, count in more.items():
        into[name] = into.get(name, 0) + count


def _add_locations(into: dict[str, list[int]], more: dict[str, list[int]], offset: int) -> None:
    for reason, numbers in more.items():
        kept = into.setdefault(reason, [])
        room = (1 if reason in UNDATED_REASONS else LOCATIONS_PER_REASON) - len(kept)
        kept.extend(number + offset for number in numbers[: max(room, 0)])


class _FileScan(_Scan):
    """A scan of one file (or the part after ``start``) over every day, kept per day."""

    def __init__(self, options: NdjsonOptions) -> None:
        super().__init__(options, _ALL_TIME)
        self.limit = GroupLimit(options.max_groups * _FILE_GROUPS)
        self.days: defaultdict[date, _Day] = defaultdict(_Day)
        #: Records counted into the long (not plain completions) aggregates, per day: plain
        #: ones are the requests of the short aggregates.
        self.long_records: dict[date, int] = {}

    def read(self, task: Task) -> None:
        """Count every line of ``task``, numbering them from its start."""
        self.path, self.task = task.path, task
        self.prints = defaultdict(lambda: array("q"))
        info = self.info
        for block, count in self.blocks(task):
            self.scan_block(block, count, info["lines_read"] - count + 1)

    def _inconsistent(self, day: date) -> None:
        info = self.days[day].info
        info["total_tokens_inconsistent"] = info.get("total_tokens_inconsistent", 0) + 1

    def _skip(self, reason: str, line: bytes) -> None:
        if reason in _UNDATED:
            super()._skip(reason, line)
            return
        # A dated reason (check found the day first): found again from the line, on the skip
        # path only.
        obj = orjson.loads(line)
        response = obj.get("response")
        when = self._when(obj, response if type(response) is dict else {})
        day = when[1]  # type: ignore[index]  # dated: _when returned (ts, day)
        found = self.days[day]
        found.skipped[reason] = found.skipped.get(reason, 0) + 1
        kept = found.locations.setdefault(reason, [])
        if self.first_line and len(kept) < LOCATIONS_PER_REASON:
            index = first_index(self.chunk, line, self.search_from)
            self.search_from = index + 1
            kept.append(self.first_line + index)

    def _general(self, obj: Any, line: bytes) -> None:
        notes: dict[str, int] = {}
        record = self.check(obj, notes)
        if isinstance(record, str):
            self._skip(record, line)
            return
        day = record.day
        _add_counts(self.days[day].info, notes)
        if self._long(record):
            self.long_records[day] = self.long_records.get(day, 0) + 1
        if self.options.dedupe:
            self._print(day, record.request_id)
        new = self._count(self.acc, record)
        if new is not None:
            self._new_group(new, line)

    def _long(self, record: LogRecord) -> bool:
        """Whether ``_count`` sums ``record`` into a long aggregate (its ``requests`` may be
        0, so those records are counted here)."""
        return (
            record.family != COMPLETIONS
            or self.family_of(None, None, record.model) != COMPLETIONS
            or record.variant is not None
            or record.extra is not EMPTY
        )

    def part(self, stat: tuple[int, int, int, int]) -> _Part:
        """The findings, per day."""
        days = self.days
        for (day, *key), sums in self.acc.items():
            days[day].acc[tuple(key)] = sums
            if len(key) == 2:  # a short aggregate: one request per record
                info = days[day].info
                info["records_counted"] = info.get("records_counted", 0) + sums[3]
        for day, count in self.long_records.items():
            info = days[day].info
            info["records_counted"] = info.get("records_counted", 0) + count
        for day, prints in self.prints.items():
            if prints:
                days[day].prints = prints
        info = {name: count for name, count in self.info.items() if name == "gzip_truncated"}
        return _Part(
            lines=self.info["lines_read"],
            stat=stat,
            days=dict(days),
            skipped=dict(self.skipped),
            locations={r: [n for _, n in found] for r, found in self.skips.locations.items()},
            info=info,
        )


# -- entries ----------------------------------------------------------------------------------


def _pack(prints: array[int]) -> bytes:
    values = array("q", prints)
    if sys.byteorder == "big":
        values.byteswap()
    return values.tobytes()


def _unpack(blob: bytes) -> array[int]:
    prints = array("q")
    prints.frombytes(blob)
    if sys.byteorder == "big":
        prints.byteswap()
    return prints


def _encode(part: _Part) -> bytes:
    """The entry of ``part``, whose fingerprints are all in chunks (:meth:`_Plan.store`)."""
    days = []
    for day, found in sorted(part.days.items()):
        days.append(
            [
                day.isoformat(),
                [
                    [list(key), [str(v) if isinstance(v, Decimal) else v for v in sums]]
                    for key, sums in found.sums().items()
                ],
                found.skipped,
                found.locations,
                found.info,
                [list(chunk) for chunk in found.chunks],
            ]
        )
    header = orjson.dumps(
        {
            "format": _FORMAT,
            "lines": part.lines,
            "stat": list(part.stat),
            "skipped": part.skipped,
            "locations": part.locations,
            "info": part.info,
            "days": days,
        }
    )
    packed = zlib.compress(header, 1)
    return struct.pack(">I", len(packed)) + packed


def _decode(blob: bytes) -> _Part:
    """The part in an entry; ValueError (or another) if it is not one: a miss."""
    raw = memoryview(blob)
    (size,) = struct.unpack(">I", raw[:4])
    header = orjson.loads(zlib.decompress(raw[4 : 4 + size]))
    if header["format"] != _FORMAT:
        raise ValueError("another format")
    if 4 + size != len(raw):
        raise ValueError("trailing bytes")
    days: dict[date, _Day] = {}
    for iso, acc, skipped, locations, info, chunks in header["days"]:
        days[date.fromisoformat(iso)] = _Day(
            stored=acc,
            skipped=skipped,
            locations=locations,
            info=info,
            chunks=[(str(key), int(count)) for key, count in chunks],
        )
    return _Part(
        lines=header["lines"],
        stat=tuple(header["stat"]),
        days=days,
        skipped=header["skipped"],
        locations=header["locations"],
        info=header["info"],
    )


def _key(stored: list[Any]) -> tuple[Any, ...]:
    """A stored aggregate key without its day: the group back to a str or a tuple."""
    group, *rest = stored
    return (group if type(group) is str else tuple(group), *rest)


def _entry_key(settings: str, kind: str, name: str) -> str:
    return hashlib.sha256(
        f"{settings}\0{kind}\0{name}".encode("utf-8", "surrogatepass")
    ).hexdigest()


# -- a window's scan ----------------------------------------------------------------------------


@dataclass
class _Counts:
    files_hit: int = 0
    files_grown: int = 0
    files_read: int = 0
    bytes_read: int = 0
    bytes_skipped: int = 0

    def add(self, other: _Counts, sign: int = 1) -> None:
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + sign * value)


def cached_scan(
    options: NdjsonOptions, window: Window, files: Sequence[str], cache: LogCache
) -> _Scan | None:
    """A window's scan of ``files`` built from the cache, reading only what it lacks (and
    storing it); None when there are too many groups (in the window, or in a file's days): the
    caller reads without the cache, which stops where the window's bound is passed. ``info``
    gains ``cache_files_hit``, ``cache_files_grown``, ``cache_files_read``, ``cache_bytes_read``,
    ``cache_bytes_skipped``.

    The files (or grown parts) to read are read in worker processes when they are large enough
    (``options.workers``, as without the cache), one task per file.
    """
    settings = settings_key(options)
    found = [_identify(path) for path in files]
    keys: dict[str, str] = {}
    for ident in found:
        keys[ident.path] = _entry_key(settings, "content", ident.content)
        keys[f"path:{ident.path}"] = _entry_key(settings, "path", ident.path)
        keys[f"inode:{ident.path}"] = _entry_key(
            settings, "inode", f"{ident.stat[0]}:{ident.stat[1]}"
        )
    stored = _get(cache, keys.values())
    plans = [_plan(ident, settings, keys, stored, cache) for ident in found]
    scan = _Scan(options, window)
    counts = _Counts()
    put: dict[str, bytes] = {}
    #: Entries superseded by the grown files' new ones: a file being written would otherwise
    #: leave one entry per run behind.
    drop: list[str] = []
    try:
        read = iter(_read_all(options, [plan.task for plan in plans if plan.task is not None]))
        parts = [
            plan.finish(next(read) if plan.task is not None else None, counts, put, drop)
            for plan in plans
        ]
        # Only the window's days' fingerprints, for every file at once.
        wanted = set().union(*(part.unloaded(window) for part in parts))
        fetched = _get(cache, wanted) if wanted else {}
        for plan, had in zip(plans, parts, strict=True):
            part = had if had.load(window, fetched) else plan.reread(options, counts, put)
            ident = plan.ident
            if not ident.gzip and ident.end < ident.stat[2]:
                # The partial last line of a file being written: read now, never cached.
                tail = _read(options, Task(ident.path, ident.end, _TO_END))
                counts.bytes_read += ident.stat[2] - ident.end
                part.extend(tail)
            part.apply(scan, ident.path, window)
    except LogSourceError as e:
        if e.reason == "too_many_groups":
            # Read again without the cache: its error names the file and line where the
            # window's bound was passed (or a file's days, each under it, are read fine).
            return None
        raise
    # The entries and pointers of the files there are stamped as used (small rows); the
    # fingerprint chunks keep the time they were written, about their days' age: a prune
    # drops the files gone and the days no longer kept.
    touch = stored.keys()
    if put or touch:
        try:
            cache.cache_put(NAMESPACE, put, datetime.now(UTC), drop, touch)
        except StoreError as e:
            logger.warning(EVENT_CACHE_UNAVAILABLE, action="write", error=str(e))
    info = scan.info
    info["files_read"] = len(files)
    info.update(
        cache_files_hit=counts.files_hit,
        cache_files_grown=counts.files_grown,
        cache_files_read=counts.files_read,
        cache_bytes_read=counts.bytes_read,
        cache_bytes_skipped=counts.bytes_skipped,
    )
    return scan


def _read(options: NdjsonOptions, task: Task) -> _Part:
    """One task's findings (in a worker process, or here)."""
    scan = _FileScan(options)
    scan.read(task)
    return scan.part((0, 0, 0, 0))


def _read_all(options: NdjsonOptions, tasks: list[Task]) -> list[_Part]:
    """The findings of ``tasks``, in order; in worker processes when there is enough to read.

    With fewer tasks than workers (one large file: the first run with the cache), a large plain
    file's task is split into ranges read side by side, whose parts are joined in order (as a
    grown file's new part is joined to its entry's): the first run costs a cold scan's time.
    """
    paths = sorted({t.path for t in tasks})
    workers = parallel_workers(paths, options.workers, fast=uses_fast_path(options))
    if workers < 2:
        return [_read(options, task) for task in tasks]
    pieces = [split_task(task, workers) if len(tasks) < workers else [task] for task in tasks]
    ranges = [piece for split in pieces for piece in split]
    if len(ranges) < 2:
        return [_read(options, task) for task in tasks]
    read = iter(run_tasks(functools.partial(_read, options), ranges, workers))
    parts = []
    for split in pieces:
        part = next(read)
        for _ in split[1:]:
            part.extend(next(read))
        parts.append(part)
    return parts


def _get(cache: LogCache, keys: Iterable[str]) -> dict[str, bytes]:
    try:
        return cache.cache_get(NAMESPACE, keys)
    except StoreError as e:
        logger.warning(EVENT_CACHE_UNAVAILABLE, action="read", error=str(e))
        return {}


def _usable(blob: bytes | None, ident: _Identity) -> _Part | None:
    """The part in an entry, unless missing, undecodable, or of this very file (device, inode,
    size) with another mtime: edited in place."""
    if blob is None:
        return None
    try:
        part = _decode(blob)
    except Exception:  # any damage is a miss: the file is read again
        return None
    if part.stat[:3] == ident.stat[:3] and part.stat[3] != ident.stat[3]:
        return None
    return part


@dataclass
class _Plan:
    """How one file's findings are had: from an entry (``part``, no ``task``), from an entry
    of a prefix of it (``part``) plus a read of the bytes after (``task``), or read whole."""

    ident: _Identity
    #: :func:`settings_key` of the run (fingerprint chunks are keyed by it too).
    settings: str
    keys: dict[str, str]
    part: _Part | None = None
    task: Task | None = None
    #: For a grown file: where its entry ended, and that entry's key (superseded).
    base_end: int = 0
    base_key: str = ""
    #: What :meth:`finish` counted (taken back if the file has to be read again).
    counted: _Counts = field(default_factory=_Counts)

    def finish(
        self,
        read: _Part | None,
        counts: _Counts,
        put: dict[str, bytes],
        drop: list[str],
    ) -> _Part:
        """The file's findings, given what its task read; new entries go to ``put``."""
        ident, part = self.ident, self.part
        counts.add(self.counted, -1)
        mine = self.counted = _Counts()
        if read is None and part is not None:
            mine.files_hit, mine.bytes_skipped = 1, ident.end
            counts.add(mine)
            if part.stat != ident.stat:
                # Renamed, or grown by a partial line only: point this path and inode at it.
                part.stat = ident.stat
                self.store(part, put)
            return part
        if part is not None and read is not None:
            mine.files_grown, mine.bytes_skipped = 1, self.base_end
            mine.bytes_read = ident.end - self.base_end
            part.extend(read)
            drop.append(self.base_key)
        else:
            mine.files_read, mine.bytes_read = 1, ident.end
            part = read or _Part()
        counts.add(mine)
        part.stat = ident.stat
        self.store(part, put)
        return part

    def reread(self, options: NdjsonOptions, counts: _Counts, put: dict[str, bytes]) -> _Part:
        """The file read whole again: a fingerprint chunk of its entry is missing or damaged."""
        ident = self.ident
        self.part, self.base_end = None, 0
        if not ident.end:
            return self.finish(None, counts, put, [])
        task = Task(ident.path) if ident.gzip else Task(ident.path, 0, ident.end)
        return self.finish(_read(options, task), counts, put, [])

    def store(self, part: _Part, put: dict[str, bytes]) -> None:
        """Put the file's entry, the fingerprints read since in a chunk per day, and its
        path's and inode's pointers to the entry."""
        ident = self.ident
        for day, found in part.days.items():
            if found.prints:
                # Keyed by where the read began too: a file grown and one read whole again
                # never share a chunk.
                name = f"{ident.content}:{self.base_end}:{day.isoformat()}"
                key = _entry_key(self.settings, "prints", name)
                put[key] = _pack(found.prints)
                found.chunks.append((key, len(found.prints)))
                found.loaded[key] = found.prints
                found.prints = array("q")
        put[self.keys[ident.path]] = _encode(part)
        pointer = orjson.dumps({"content": ident.content, "end": ident.end, "stat": ident.stat})
        put[self.keys[f"path:{ident.path}"]] = pointer
        put[self.keys[f"inode:{ident.path}"]] = pointer


def _plan(
    ident: _Identity,
    settings: str,
    keys: dict[str, str],
    stored: dict[str, bytes],
    cache: LogCache,
) -> _Plan:
    """How to have one file's findings up to ``ident.end``."""
    part = _usable(stored.get(keys[ident.path]), ident)
    if part is not None:
        return _Plan(ident, settings, keys, part)
    grown = None if ident.gzip else _grown(ident, settings, keys, stored, cache)
    if grown is not None:
        base, end, base_key = grown
        return _Plan(ident, settings, keys, base, Task(ident.path, end, ident.end), end, base_key)
    if not ident.end:
        return _Plan(ident, settings, keys)  # nothing but a partial line: an empty part
    task = Task(ident.path) if ident.gzip else Task(ident.path, 0, ident.end)
    return _Plan(ident, settings, keys, None, task)


def _grown(
    ident: _Identity,
    settings: str,
    keys: dict[str, str],
    stored: dict[str, bytes],
    cache: LogCache,
) -> tuple[_Part, int, str] | None:
    """The entry of a prefix of a file that only grew since (found through its path's or
    inode's pointer), where that entry ended and its key; None if there is none."""
    for pointer_key in (keys[f"path:{ident.path}"], keys[f"inode:{ident.path}"]):
        blob = stored.get(pointer_key)
        if blob is None:
            continue
        try:
            pointer = orjson.loads(blob)
            content, end = str(pointer["content"]), int(pointer["end"])
            before = tuple(pointer["stat"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
        if not 0 < end <= ident.end or content == ident.content:
            continue
        if before[:3] == ident.stat[:3] and before[3] != ident.stat[3]:
            continue  # same size, another mtime: edited in place
        if _prefix_content(ident.path, end) != content:
            continue
        base_key = _entry_key(settings, "content", content)
        base = _usable(_get(cache, [base_key]).get(base_key), ident)
        if base is not None:
            return base, end, base_key
    return None
