"""The local side: usage aggregated from the application's own NDJSON request logs.

Files, directories and globs (rotated and ``.gz`` files included) are streamed in fixed-size
binary chunks (:mod:`~recon_job.sources.ndjson.files`) and parsed line by line with orjson, so
memory grows with the number of distinct groups, never with file size. Large logs are split
into newline-aligned ranges scanned by worker processes, whose sums are merged here. Every line
is accounted for exactly once: counted, outside the window (``info["outside_window"]``), or
skipped with a reason (``UsageTotals.skipped``), the first few of each reason located by
``file:line`` (``UsageTotals.skipped_locations``, :mod:`~recon_job.sources.ndjson.skips`).

What a record is, is specified in :mod:`~recon_job.sources.ndjson.records`; :func:`iter_records`
yields those records one by one for the Python API. Records that carry their own cost keep it;
the others are priced once per (group, tier) aggregate at the end, which equals per-record
pricing because pricing is linear and exact in Decimal.

**Duplicates** (``NdjsonOptions.dedupe``, on by default). A record whose ``request_id`` was
already counted on the same UTC day (a retry logged twice, two files or a copied rotation
overlapping) is counted once; the extra records are reported in ``UsageTotals.duplicates``
(count, distinct ids, the dollars they would have added, the first few ``file:line``). Records
without a request id are never deduped. Log files are not sorted by time (a rotated file may
hold any day), so every day of the window stays open for the whole scan; to keep that small,
the scan keeps no ids, only an 8-byte fingerprint per counted record (:func:`fingerprint`, the
same in every process), per file and UTC day, and past 64Ki of them in memory it writes them
to a temporary file (removed when the scan ends or fails). After the scan, each day's
fingerprints are checked for repeats one day at a time (memory: one day's set, a large day's
in parts: ``_Dedupe.repeated``), so memory does not grow with the logs. Only when some repeat
are the files holding them read again, in order, comparing the real ids of those records alone:
the first of each id stays counted, the later ones are moved from the counted sums to the
duplicates'. So the result is exact (a fingerprint collision costs a second read, never a
wrong count), worker processes need to send back only where they wrote their fingerprints, and
a log without duplicates is read once. Dedupe is within one source: two sources logging the
same request are both counted.
"""

from __future__ import annotations

import functools
import os
import tempfile
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Context, Decimal
from itertools import chain, compress, groupby
from typing import Any

import orjson
import structlog

from recon_job.errors import LogSourceError
from recon_job.families import COMPLETIONS
from recon_job.findings import Duplicates
from recon_job.modelnames import ModelNamer
from recon_job.models import (
    EMPTY,
    PRICED_SERVICE_TIERS,
    ZERO,
    Tier,
    Usage,
    UsageTotals,
    Window,
    tier_of,
)
from recon_job.sources.aggregate import AggregateKey, price_aggregates
from recon_job.sources.base import Pricer, SeriesKey, bucket_of, series_bounds
from recon_job.sources.groups import DIMENSIONS, GroupLimit
from recon_job.sources.ndjson.files import (
    EVENT_GZIP_TRUNCATED,
    Task,
    parallel_workers,
    plan_tasks,
    read_blocks,
    read_lines,
    resolve_log_files,
    run_tasks,
)
from recon_job.sources.ndjson.quantities import INPUT_DETAILS, OUTPUT_DETAILS
from recon_job.sources.ndjson.records import (
    _NUMERIC,
    CACHED_DETAILS,
    OUTSIDE_WINDOW,
    TOKEN_KEYS,
    LogRecord,
    NdjsonOptions,
    RecordParser,
    record_cost,
)
from recon_job.sources.ndjson.skips import (
    LOCATIONS_PER_REASON,
    Lines,
    Locations,
    Skips,
    first_index,
)

#: The C fast path (``_fastscan.c``): built at install when a C compiler is there, else None
#: and every line is read in Python (the same results, slower). ``RECON_NDJSON_FASTSCAN=0``
#: turns it off (worker processes inherit it), to rule it out when a result looks wrong.
_fast_block: Callable[[bytes, int, tuple[Any, ...]], tuple[Any, ...]] | None
_fast_repeats: Callable[[list[array[int]]], list[int]] | None
try:
    from recon_job.sources.ndjson._fastscan import repeats as _fast_repeats
    from recon_job.sources.ndjson._fastscan import scan_block as _fast_block
except ImportError:
    _fast_block = _fast_repeats = None
if os.environ.get("RECON_NDJSON_FASTSCAN") == "0":
    _fast_block = _fast_repeats = None
#: A day of at most this many fingerprints is checked for repeats in C, by sorting one copy
#: of them (16 MiB); a larger one in passes of ``check_at`` in Python sets.
FAST_CHECK_PRINTS = 1 << 21

__all__ = [
    "LogRecord",
    "NdjsonLogSource",
    "NdjsonOptions",
    "iter_records",
    "resolve_log_files",
]

logger = structlog.get_logger(__name__)

EVENT_FILE_READ = "recon.source.ndjson.file_read"
EVENT_FETCHED = "recon.source.ndjson.fetched"

#: The largest count the fast path accepts, far above any real request's and below
#: MAX_TOKENS; larger ones go to the general path, which checks them against MAX_TOKENS.
#: 2**30 - 1 is the largest int CPython 3.11 compares on its fast path ("compact": one digit);
#: comparing with MAX_TOKENS itself cost the whole scan 1.6% more instructions.
FAST_MAX_TOKENS = 2**30 - 1

#: The fingerprints of the request ids of one file's (or range's) counted records, per UTC day.
_Prints = dict[date, "array[int]"]
#: A file or range read holding this many fingerprints in memory (512 KiB) writes them out to
#: a spill file (see ``_Dedupe.spill``): memory stays flat whatever the size of the logs.
SPILL_PRINTS = 1 << 16
#: At most this many fingerprints go into one set when a day is checked for repeats (a set of
#: ints costs 60-110 bytes a fingerprint: ~5 MiB here); a larger day is checked in passes
#: (10M records over 31 days: 5 passes a day, 3.7 s in all against 2.0 s in one set, 36 MiB
#: less; 3 passes of 128Ki: 3.0 s, 5 MiB more).
CHECK_PRINTS = 1 << 16
#: Where a spilled run of one day's fingerprints is: (spill file, byte offset, count).
_Chunk = tuple[str, int, int]
#: One scan's plain accumulators, as a worker process sends them back: (acc, skipped, info,
#: skip locations with line numbers counted from the start of its range, its request-id
#: fingerprints).
_Partial = tuple[
    dict[tuple[Any, ...], list[Any]], dict[str, int], dict[str, int], Locations, "_Dedupe"
]
#: Where ``usage_bytes`` is in a long aggregate's sums (the fields of ``Usage``, in order): a
#: level, so aggregates keep the largest, never the sum.
BYTES = 17
_FIELDS = tuple(f.name for f in fields(Usage))
assert _FIELDS[BYTES] == "usage_bytes"
assert _FIELDS[4] == "cost"


class NdjsonLogSource:
    """A :class:`~recon_job.sources.base.UsageSource` over local NDJSON usage logs."""

    def __init__(
        self, options: NdjsonOptions, pricer: Pricer, namer: ModelNamer | None = None
    ) -> None:
        self.options = options
        self.pricer = pricer
        self.namer = namer

    def fetch(self, window: Window) -> UsageTotals:
        """Usage per UTC day and group in ``window``; LogSourceError if a path is unusable."""
        files = resolve_log_files(self.options.paths, warn=True)
        scan, workers = self._scan(files, window)
        totals = scan.totals(self.pricer, self.namer)
        logger.info(
            EVENT_FETCHED,
            files=len(files),
            window=window.key,
            workers=workers,
            groups=len(totals.groups),
            skipped=dict(totals.skipped),
            unpriced=sorted(totals.unpriced),
            **totals.info,
        )
        return totals

    def _scan(self, files: Sequence[str], window: Window) -> tuple[_Scan, int]:
        """Every line of ``files`` counted for ``window``, and the worker processes used
        (the cached source, :mod:`.cache`, reads only what its cache lacks)."""
        scan = _Scan(self.options, window)
        workers = parallel_workers(files, self.options.workers, fast=uses_fast_path(self.options))
        if workers > 1:
            workers = scan.read_parallel(files, workers)
        else:
            for path in files:
                scan.read_file(path)
        return scan, workers

    def series(
        self, start: datetime, end: datetime, width: timedelta
    ) -> dict[SeriesKey, dict[datetime, Usage]]:
        """Usage per (family, model as logged, project id) and bucket of ``width`` in
        ``[start, end)`` (see :class:`~recon_job.sources.base.SeriesSource`).

        Read in this process by the general rules (a day or two of logs: the gap locator's
        question), deduped over the whole UTC days touched as ``fetch`` dedupes them, so a
        bucket holds exactly what ``fetch`` counts of it; naive timestamps are read in
        ``timezone`` as ``fetch`` reads them.
        """
        start, end = series_bounds(start, end, width)
        last = (end - timedelta(microseconds=1)).date()
        scan = _SeriesScan(self.options, Window("range", start.date(), last + timedelta(days=1)))
        scan.bounds = (start, end, width)
        for path in resolve_log_files(self.options.paths):
            scan.read_file(path)
        return scan.series(self.pricer, self.namer)


def iter_records(
    options: NdjsonOptions, window: Window | None = None, skipped: dict[str, int] | None = None
) -> Iterator[LogRecord]:
    """Every valid record of the logs ``options`` names, in file and line order.

    ``window`` None yields every day; otherwise records dated outside it are left out (they are
    not skips). Each skipped line's reason is counted into ``skipped`` when given, as
    ``UsageTotals.skipped`` counts it. The files are resolved now, so a missing path raises
    LogSourceError at the call; an unreadable file raises it when reached.
    """
    files = resolve_log_files(options.paths)
    return _records(files, RecordParser(options, window), {} if skipped is None else skipped)


def _records(
    files: Sequence[str], parser: RecordParser, skipped: dict[str, int]
) -> Iterator[LogRecord]:
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    check = parser.check
    info = {"lines_read": 0}
    skips = Skips(skipped)
    for path in files:
        for lines in read_lines(Task(path), info, skips):
            for line in lines:
                try:
                    checked = check(loads(line), None)
                except decode_error:
                    checked = "malformed_json" if line.strip() else "blank_line"
                if isinstance(checked, LogRecord):
                    yield checked
                elif checked != OUTSIDE_WINDOW:
                    skipped[checked] = skipped.get(checked, 0) + 1


def _scan_task(
    options: NdjsonOptions,
    window: Window,
    task: Task,
    spill_dir: str = "",
    spill_at: int = SPILL_PRINTS,
) -> _Partial:
    """Scan one task in a worker process and return the plain sums for the parent to merge.

    Its fingerprints are written to a file in ``spill_dir``, the parent's (which removes it),
    but each day's last: only their places travel back (see ``_Dedupe.done``).
    """
    scan = _Scan(options, window)
    dedupe = scan.dedupe
    dedupe.spill_dir, dedupe.spill_at, dedupe.worker = spill_dir, spill_at, bool(spill_dir)
    scan.read(task)
    return scan.acc, scan.skipped, scan.info, scan.skips.locations, scan.dedupe


class _Sparse:
    """Some lines of a block with their places in it: what a skipped line's number is searched
    in when the C fast path read the block (``first_index`` asks ``index`` as of a list of all
    its lines)."""

    def __init__(self, lines: list[bytes], places: list[int]) -> None:
        self.lines, self.places = lines, places

    def index(self, line: bytes, start: int, /) -> int:
        return self.places[self.lines.index(line, bisect_left(self.places, start))]


def uses_fast_path(options: NdjsonOptions) -> bool:
    """Whether a scan with ``options`` runs the C fast path: it is built, and no field is
    mapped (a mapped record is read by the general path)."""
    return _fast_block is not None and not options.fields


#: Enough digits for any sum of the C fast path's costs (units of 10**-20 USD) to be exact.
_EXACT = Context(prec=80)


def _exact_cost(units: int, exponent: int) -> Decimal:
    """A sum of costs from the C fast path: ``units`` of 10**-20 USD, with the exponent the
    Decimals the Python path adds would give it (exact: it has no more decimals)."""
    return Decimal(units).scaleb(-20, _EXACT).quantize(Decimal(1).scaleb(exponent), context=_EXACT)


def fingerprint(request_id: str) -> int:
    """A 61-bit fingerprint of a request id, the same in every process.

    ``hash`` of a ``str`` is salted per process (worker processes would disagree); ``hash`` of
    an ``int`` is not: it is the number modulo the prime 2**61 - 1. Two ids share a fingerprint
    only when their UTF-8 bytes, read as numbers, differ by a multiple of that prime.
    """
    return hash(int.from_bytes(request_id.encode("utf-8", "surrogatepass"), "big"))


@dataclass
class _Dedupe:
    """The request-id fingerprints of one scan, and the duplicates found in them.

    Mutable, an accumulator; compared by value so a worker's result can be checked.

    A file or range's fingerprints are kept in memory until it holds ``spill_at`` of them,
    then written out to the scan's spill file (``array.tofile``, 8 bytes each) but each day's
    last; a worker process writes them into its parent's directory and sends back only where
    they are. The spill files live in a temporary directory removed once the duplicates are
    found (``close``), or as soon as the scan fails; a worker that dies leaves its files in the
    parent's directory, removed with it. Memory: a file's buffer, and the set of one day's
    fingerprints when checking them (at most ``check_at``; a larger day is checked in passes).
    """

    #: Per file or range read, in reading order: its path and its fingerprints per UTC day kept
    #: in memory (all of them, or those read since it last spilled, and each spilled day's last).
    prints: list[tuple[str, _Prints]] = field(default_factory=list)
    #: The fingerprints written out of memory, in writing order: (path read, UTC day, where).
    spilled: list[tuple[str, date, _Chunk]] = field(default_factory=list)
    #: The extra records' sums, keyed as ``_Scan.acc``.
    acc: dict[tuple[Any, ...], list[Any]] = field(default_factory=dict)
    #: Extra records.
    count: int = 0
    #: The (day, request id) pairs they repeat.
    ids: set[tuple[date, str]] = field(default_factory=set)
    #: (path, line number) of the first few extra records, in reading order.
    locations: list[tuple[str, int]] = field(default_factory=list)
    #: Fingerprints a file or range keeps in memory before it spills them.
    spill_at: int = SPILL_PRINTS
    #: Fingerprints checked in one set (``repeated``).
    check_at: int = CHECK_PRINTS
    #: The directory of the spill files: a worker's parent's, or ``owned``'s once made.
    spill_dir: str = ""
    #: This scan's spill file, once made.
    spill_file: str = ""
    #: In a worker process: every file or range read spills at its end (``done``).
    worker: bool = False
    #: Fingerprints held in memory by the files or ranges read to their end.
    held: int = 0
    #: The temporary directory this scan made for its spill files (never a worker's).
    owned: tempfile.TemporaryDirectory[str] | None = field(default=None, compare=False, repr=False)

    def spill(self, path: str, prints: _Prints) -> None:
        """Write the fingerprints of ``path`` in ``prints`` out of memory, each day's last but.

        That one stays so that ``prints`` still tells which days hold any (``_Scan.totals``).
        """
        days = [(day, found) for day, found in prints.items() if len(found) > 1]
        if not days:
            return
        if not self.spill_file:
            handle, self.spill_file = tempfile.mkstemp(suffix=".prints", dir=self.directory())
            os.close(handle)
        with open(self.spill_file, "ab") as f:
            for day, found in days:
                count = len(found) - 1
                self.spilled.append((path, day, (self.spill_file, f.tell(), count)))
                found[:count].tofile(f)
                del found[:count]

    def directory(self) -> str:
        """The directory of the spill files, made if need be."""
        if not self.spill_dir:
            self.owned = tempfile.TemporaryDirectory(
                prefix="recon-job-prints-", ignore_cleanup_errors=True
            )
            self.spill_dir = self.owned.name
        return self.spill_dir

    def done(self, path: str, prints: _Prints) -> None:
        """``path`` has been read to its end: spill its fingerprints too when the scan holds
        too many in memory, and always in a worker process (its parent may take many results
        at once)."""
        held = sum(map(len, prints.values()))
        if self.worker or self.held + held > self.spill_at:
            self.spill(path, prints)
            held = sum(map(len, prints.values()))
        self.held += held

    def merge(self, later: _Dedupe) -> None:
        """Add the fingerprints of a scan read after this one (a worker's)."""
        self.prints += later.prints
        self.spilled += later.spilled

    def close(self) -> None:
        """Remove the spill files: the duplicates are found, or the scan failed."""
        if self.owned is not None:
            self.owned.cleanup()
            self.owned = None

    def repeated(self) -> dict[date, set[int]]:
        """The fingerprints seen more than once per UTC day.

        Checked one day at a time; a day of more than ``check_at`` fingerprints in as many
        passes (at most 256), each taking a part of them (see ``_part``): memory holds one set
        of at most ``check_at`` fingerprints (for days of up to 256 times that).
        """
        spilled: dict[date, list[_Chunk]] = {}
        for _, day, chunk in self.spilled:
            spilled.setdefault(day, []).append(chunk)
        days = sorted(
            {day for _, prints in self.prints for day, found in prints.items() if found}
            | spilled.keys()
        )
        repeated: dict[date, set[int]] = {}
        for day in days:
            arrays = [prints[day] for _, prints in self.prints if prints.get(day)]
            chunks = spilled.get(day, [])
            count = sum(map(len, arrays)) + sum(count for _, _, count in chunks)
            if _fast_repeats is not None and count <= FAST_CHECK_PRINTS:
                found = _fast_repeats([*arrays, *self._load(chunks)])
                if found:
                    repeated[day] = set(found)
                continue
            passes = min(-(-count // self.check_at), 256)
            for part in range(passes):
                twice = self._twice(functools.partial(self._part, arrays, chunks, part, passes))
                if twice:
                    repeated.setdefault(day, set()).update(twice)
        return repeated

    @staticmethod
    def _part(
        arrays: list[array[int]], chunks: list[_Chunk], part: int, passes: int
    ) -> Iterator[tuple[Iterable[int], int]]:
        """The fingerprints of one day, in memory and spilled, that pass ``part`` of ``passes``
        takes (all when one), with their count: those whose 8 bytes XOR to ``part`` modulo
        ``passes``. That byte spreads evenly whatever the ids look like (a fingerprint's low
        bytes alone do not: a counter in the middle of an id shifts them all alike), and it is
        found in C for a whole chunk at a time, so a pass costs little more than its set."""
        table = bytes(byte % passes == part for byte in range(256))
        for found in chain(arrays, _Dedupe._load(chunks)):
            if passes == 1:
                yield found, len(found)
                continue
            raw = found.tobytes()
            mixed = 0
            for i in range(8):
                mixed ^= int.from_bytes(raw[i::8], "little")
            taken = mixed.to_bytes(len(found), "little").translate(table)
            yield compress(found, taken), taken.count(1)

    @staticmethod
    def _twice(values: Callable[[], Iterable[tuple[Iterable[int], int]]]) -> set[int]:
        """The fingerprints in ``values()`` (with their counts) more than once (none: decided
        in C)."""
        seen: set[int] = set()
        count = 0
        for found, taken in values():
            seen.update(found)
            count += taken
        if len(seen) == count:
            return set()  # the common case
        seen.clear()
        twice: set[int] = set()
        for found, _ in values():
            for value in found:
                if value in seen:
                    twice.add(value)
                else:
                    seen.add(value)
        return twice

    @staticmethod
    def _load(chunks: Iterable[_Chunk]) -> Iterator[array[int]]:
        """The spilled fingerprints of ``chunks``, one chunk at a time."""
        for name, places in groupby(chunks, key=lambda chunk: chunk[0]):
            with open(name, "rb") as f:
                for _, offset, count in places:
                    f.seek(offset)
                    found: array[int] = array("q")
                    found.fromfile(f, count)
                    yield found

    def paths_with(self, repeated: dict[date, set[int]]) -> list[str]:
        """The files holding any of ``repeated``, in reading order, each once."""
        hits: set[str] = set()
        for path, prints in self.prints:
            if path not in hits and any(
                not repeated[day].isdisjoint(found)
                for day, found in prints.items()
                if day in repeated
            ):
                hits.add(path)
        spilled = [
            (path, day, chunk)
            for path, day, chunk in self.spilled
            if day in repeated and path not in hits
        ]
        loaded = self._load(chunk for _, _, chunk in spilled)
        for (path, day, _), found in zip(spilled, loaded, strict=True):
            if not repeated[day].isdisjoint(found):
                hits.add(path)
        return [path for path in dict.fromkeys(path for path, _ in self.prints) if path in hits]


def _add_sums(
    into: dict[tuple[Any, ...], list[Any]], sums_by_key: dict[tuple[Any, ...], list[Any]]
) -> None:
    """Add aggregates' sums to ``into`` (``usage_bytes`` a level: the largest kept)."""
    for key, sums in sums_by_key.items():
        mine = into.get(key)
        if mine is None:
            into[key] = list(sums)
        else:
            for i, value in enumerate(sums):
                mine[i] = max(mine[i], value) if i == BYTES else mine[i] + value


class _Scan(RecordParser):
    """Accumulators for one fetch: plain dicts and lists, no per-record objects."""

    def __init__(self, options: NdjsonOptions, window: Window) -> None:
        super().__init__(options, window)
        self.options = options
        self.scan_window = window
        self.start = window.start
        self.end = window.end
        self.fast = not self.paths
        #: Two kinds of keys. Plain completions (the model's family by name too, only input,
        #: cached and output tokens): (day, model or (model, project, api key) when so grouped,
        #: tier or None for records with a logged cost) -> [input, cached, output, requests,
        #: logged cost]. Anything else: the same key + (family, image variant) -> every field
        #: of ``Usage`` in order (see ``_general``).
        self.acc: dict[tuple[Any, ...], list[Any]] = {}
        self.skipped: dict[str, int] = {}
        #: ``skipped``, and where the first few skipped lines of each reason are.
        self.skips = Skips(self.skipped)
        self.info: dict[str, int] = dict.fromkeys(
            ("files_read", "lines_read", "records_counted", "outside_window"), 0
        )
        #: The file being read, the chunk being scanned, its first line's number in the task
        #: (0: unknown, nothing is located), and where to look for the next skipped line in it.
        self.path = ""
        self.chunk: Lines = []
        self.first_line = 0
        self.search_from = 0
        #: Request-id fingerprints and the duplicates (see "Duplicates" above); ``prints`` is
        #: the file being read's.
        self.dedupe = _Dedupe()
        self.prints: _Prints = {}
        #: The C fast path's settings (see ``scan``); None: every line is read in Python.
        self.c_config = self._c_config() if uses_fast_path(options) else None
        self.ordinal_days: dict[int, date] = {}
        self.deduped = False
        #: The window's distinct groups, bounded by ``max_groups`` (see ``_new_group``).
        self.limit = GroupLimit(options.max_groups)
        self.task = Task("")

    # -- reading -----------------------------------------------------------------------------

    def read(self, task: Task) -> None:
        """Count every line of one file or range."""
        self.path, self.task = task.path, task
        dedupe = self.dedupe
        prints: _Prints = {}
        if self.options.dedupe:
            prints = self.prints = {day: array("q") for day in self.scan_window.days()}
            dedupe.prints.append((task.path, prints))
        spill_at = dedupe.spill_at
        info = self.info
        base = info["lines_read"]
        try:
            for block, count in self.blocks(task):
                # read_lines/read_blocks have counted every line up to the last of these, and
                # no further.
                self.scan_block(block, count, info["lines_read"] - base - count + 1)
                if prints and sum(map(len, prints.values())) >= spill_at:
                    dedupe.spill(task.path, prints)
            if prints:
                dedupe.done(task.path, prints)
        except BaseException:
            dedupe.close()  # the scan is lost: its spill files go now
            raise

    def blocks(self, task: Task) -> Iterator[tuple[bytes | list[bytes], int]]:
        """The lines of ``task`` as ``scan_block`` takes them: unsplit blocks for the C fast
        path (``read_blocks``), else lists (``read_lines``); with their counts."""
        if self.c_config is not None:
            yield from read_blocks(task, self.info, self.skips)
        else:
            for lines in read_lines(task, self.info, self.skips):
                yield lines, len(lines)

    def scan_block(self, block: bytes | list[bytes], count: int, first_line: int = 0) -> None:
        """Count the ``count`` lines of ``block`` (see ``blocks``), the first numbered
        ``first_line``: with the C fast path, a block is split as it is scanned, and only the
        lines it hands back (and those that made a group) become ``bytes`` objects."""
        fast, config = _fast_block, self.c_config
        if isinstance(block, list) or fast is None or config is None:
            # Lists when the C path is off (blocks come only with it: see ``blocks``), and for
            # the scans that read their own way (``_Rescan``, ``_SeriesScan``).
            self.scan(block if isinstance(block, list) else block.split(b"\n"), first_line)
            return
        groups, bailed, lines, outside, counted, prints, notes, firsts = fast(block, count, config)
        # The lines the Python side sees, at their places in the block (for line numbers).
        places = sorted({*bailed, *(group[0] for group in groups)})
        at = dict(zip(bailed, lines, strict=True))
        at.update((group[0], line) for group, line in zip(groups, firsts, strict=True))
        chunk = _Sparse([at[i] for i in places], places)
        self.chunk, self.first_line, self.search_from = chunk, first_line, 0
        self._add_fast(at, groups, prints, notes)
        self._add_counts(counted, outside)
        if lines:
            self.scan_lines(lines, chunk, first_line)

    def read_file(self, path: str) -> None:
        """Count every line of one file, in this process."""
        lines_before = self.info["lines_read"]
        self.read(Task(path))
        self.info["files_read"] += 1
        logger.debug(EVENT_FILE_READ, path=path, lines=self.info["lines_read"] - lines_before)

    def read_parallel(self, files: Sequence[str], workers: int, pieces: int = 0) -> int:
        """Count every line of ``files`` in up to ``workers`` processes and merge their sums.

        Large plain files are split into ``pieces`` ranges (default: ``workers``). Returns the
        number of worker processes used; 1 when there was a single task, read in-process.
        """
        tasks = plan_tasks(files, pieces or workers)
        if len(tasks) == 1:
            self.read_file(files[0])
            return 1
        dedupe = self.dedupe
        # The workers spill their fingerprints into this scan's directory (made now).
        spill_dir = dedupe.directory() if self.options.dedupe else ""
        scan_task = functools.partial(
            _scan_task,
            self.options,
            self.scan_window,
            spill_dir=spill_dir,
            spill_at=dedupe.spill_at,
        )
        # Lines of each file in the ranges merged so far: a worker numbers the lines of its
        # range from 1, the report numbers them in the whole file.
        lines_before: dict[str, int] = {}
        try:
            for task, (acc, skipped, info, locations, theirs) in zip(
                tasks, run_tasks(scan_task, tasks, workers), strict=True
            ):
                offset = lines_before.get(task.path, 0)
                self.merge(acc, skipped, info, locations, offset)
                dedupe.merge(theirs)
                lines_before[task.path] = offset + info["lines_read"]
                if info.get("gzip_truncated"):
                    logger.warning(EVENT_GZIP_TRUNCATED, path=task.path)
                logger.debug(
                    EVENT_FILE_READ,
                    path=task.path,
                    start=task.start,
                    end=task.end,
                    lines=info["lines_read"],
                )
        except BaseException:
            dedupe.close()  # a worker failed or died: its files and the others' go now
            raise
        self.info["files_read"] += len(files)
        return min(workers, len(tasks))

    def find_duplicates(self) -> None:
        """Move the records repeating a counted request id from the sums to the duplicates.

        Reads again, in order and in this process, only the files whose fingerprints repeat
        (see "Duplicates" above); nothing when none do.
        """
        if self.deduped:
            return  # once: a second call would move the same records again
        self.deduped = True
        try:
            repeated = self.dedupe.repeated() if self.options.dedupe else {}
            paths = self.dedupe.paths_with(repeated) if repeated else []
        finally:
            self.dedupe.close()  # the spilled fingerprints are no longer needed
        if not repeated:
            return
        rescan = _Rescan(self.options, self.scan_window, repeated)
        for path in paths:
            rescan.read(Task(path))
        moved = rescan.dedupe
        own = self.acc
        for key, sums in moved.acc.items():
            mine = own[key]
            if all(mine[i] == v for i, v in enumerate(sums) if i != BYTES):
                del own[key]  # the group held nothing but these records
            else:
                for i, value in enumerate(sums):
                    if i != BYTES:
                        mine[i] -= value
        dedupe = self.dedupe
        dedupe.acc, dedupe.count, dedupe.ids = moved.acc, moved.count, moved.ids
        dedupe.locations = moved.locations
        self.info["records_counted"] -= moved.count
        self.info["duplicate_records"] = moved.count

    def merge(
        self,
        acc: dict[tuple[Any, ...], list[Any]],
        skipped: dict[str, int],
        info: dict[str, int],
        locations: Locations,
        offset: int = 0,
    ) -> None:
        """Add another scan's sums (of the same options and window, read after these) to these.

        ``offset`` is added to the line numbers of its skip locations (see ``read_parallel``).
        """
        for key in acc:
            if key not in self.acc:
                self._new_group(key, None)
        _add_sums(self.acc, acc)
        self.skips.merge(skipped, locations, offset)
        for name, count in info.items():
            self.info[name] = self.info.get(name, 0) + count

    def _skip(self, reason: str, line: bytes) -> None:
        """Count one skipped line of the chunk being scanned, and locate it if wanted.

        Only here, on the skip path, is a line's number looked for (see ``first_index``).
        """
        skips, path = self.skips, self.path
        skips.count(reason)
        if self.first_line and skips.wants(reason, path):
            index = first_index(self.chunk, line, self.search_from)
            self.search_from = index + 1
            skips.locate(reason, path, self.first_line + index)

    def _print(self, day: date, request_id: Any) -> None:
        """Keep the fingerprint of a counted record's request id (none: not a string id)."""
        if type(request_id) is str and request_id:
            self.prints[day].append(fingerprint(request_id))

    # -- the hot path --------------------------------------------------------------------------

    def scan(self, lines: list[bytes], first_line: int = 0) -> None:
        """Count every line of ``lines``; ``first_line`` is the line number of the first one.

        With the C fast path (``_fastscan``, built at install when a compiler is there), the
        lines go to it as one block (see ``scan_block``): it counts the plain completion
        records and hands back the other lines, which the Python scan below reads as it reads
        every line without it: the C code accepts only lines whose counts it adds exactly as
        the Python fast path would (see ``_fastscan.c``).
        """
        if self.c_config is not None and lines:
            block = b"\n".join(lines)
            # Lines read from a file hold no newline; others are read in Python.
            if block.count(b"\n") == len(lines) - 1:
                self.scan_block(block, len(lines), first_line)
                return
        self.scan_lines(lines, lines, first_line)

    def _add_fast(
        self,
        lines: Mapping[int, bytes],
        groups: list[tuple[Any, ...]],
        prints: dict[int, bytes],
        notes: dict[int, int],
    ) -> None:
        """Add what the C fast path counted in a chunk: its groups (each new one counted
        against ``max_groups``, located at the line that made it), fingerprints and notes."""
        acc, day_of = self.acc, self.ordinal_day
        grouped = self.group_project or self.group_api_key
        for (
            first,
            ordinal,
            model,
            project,
            api_key,
            tier,
            inp,
            cached,
            out,
            n,
            units,
            exp,
        ) in groups:
            group: Any = (model, project, api_key) if grouped else model
            key = (day_of(ordinal), group, tier)
            cost = ZERO if units is None else _exact_cost(units, exp)
            sums = acc.get(key)
            if sums is None:
                acc[key] = [inp, cached, out, n, cost]
                self._new_group(key, lines[first])
            else:
                sums[0] += inp
                sums[1] += cached
                sums[2] += out
                sums[3] += n
                if units is not None:
                    sums[4] += cost
        for ordinal, found in prints.items():
            self.prints[day_of(ordinal)].frombytes(found)
        for ordinal, count in notes.items():
            for _ in range(count):
                self._inconsistent(day_of(ordinal))

    def ordinal_day(self, ordinal: int) -> date:
        """``date.fromordinal``, cached (the C fast path names days by ordinal)."""
        day = self.ordinal_days.get(ordinal)
        if day is None:
            day = self.ordinal_days[ordinal] = date.fromordinal(ordinal)
        return day

    # One function on purpose, above the complexity limit: it runs once per log line, and
    # every step moved into a function of its own costs a call per record (see below).
    def scan_lines(  # noqa: C901
        self, lines: list[bytes], chunk: Lines, first_line: int = 0
    ) -> None:
        """Count every line of ``lines``, lines of ``chunk`` (the lines read, in which a skipped
        line is located), whose first line's number is ``first_line``.

        Records of the built-in shapes with an ISO or integer epoch ``timestamp`` and clean
        integer counts take the inline fast path. Anything unusual goes to ``_general``, which is
        the specification: the fast path only ever accepts records ``_general`` would count the
        same way, and hands everything else over untouched. Required keys are read by
        subscription inside one ``try`` (free in 3.11 unless it raises); rarely present keys are
        probed with ``in``, which costs half a ``get``. Token keys are looked up in the tables
        the general path reads (``TOKEN_KEYS``, ``CACHED_DETAILS``), not named here.

        This loop runs once per log line, so it stays one function above the complexity limit:
        moving a step into a function of its own costs a call per record. Moving just the token
        lookup out cost 4% more instructions for the whole scan (callgrind over 200,000 records
        of ``bench/gen_ndjson.py``), more than the rest of this function's refactoring did.

        Nothing here counts lines: a skipped line's number is looked for on the skip path only
        (``_skip``), from ``first_line`` (0: unknown, nothing is located). A model name is
        checked for a NUL only when its group is new: the groups are few, the records many.
        """
        self.chunk, self.first_line, self.search_from = chunk, first_line, 0
        dedupe = self.options.dedupe
        prints, keep_print = self.prints, self._print
        from_bytes = int.from_bytes
        loads = orjson.loads
        decode_error = orjson.JSONDecodeError
        fromiso = datetime.fromisoformat
        general = self._general
        skip = self._skip
        iso_day = self.iso_day
        epoch_day = self.epoch_day
        acc = self.acc
        acc_get = acc.get
        start, end = self.start, self.end
        fast = self.fast
        cents = self.cents
        need_project, project_filter = self.need_project, self.project_filter
        group_project, group_api_key = self.group_project, self.group_api_key
        grouped = group_project or group_api_key
        fast_max = FAST_MAX_TOKENS
        # The key tables hold two entries each; the loop indexes them with a bool (0 when the
        # first entry's key is there) rather than branching on key names. Unpacking them here
        # fails loudly should a third shape be added without looking at this loop.
        token_keys, cached_details = TOKEN_KEYS, CACHED_DETAILS
        (chat_input, _), (responses_input, _) = token_keys
        chat_details, _ = cached_details
        _, _, realtime_details = INPUT_DETAILS
        chat_out, responses_out, realtime_out = OUTPUT_DETAILS
        output_names = (chat_out, responses_out)
        marked_get = self.marked_families.get
        model_get = self.model_families.get
        completions = COMPLETIONS
        utc = UTC
        counted = outside = 0
        for line in lines:
            try:
                obj = loads(line)
            except decode_error:
                skip("malformed_json" if line.strip() else "blank_line", line)
                continue
            if not fast or type(obj) is not dict:
                general(obj, line)
                continue
            try:
                ts = obj["timestamp"]
                # ts[4], not ts[4:5]: no slice object per record; a shorter string raises
                # IndexError and is handed over like any other oddity.
                if type(ts) is str and ts[4] == "-":
                    dt = fromiso(ts)
                    day = dt.date() if dt.tzinfo is utc else iso_day(dt, ts)
                elif type(ts) is int:
                    day = epoch_day(ts)
                else:
                    day = None
                if day is None:
                    general(obj, line)
                    continue
                if day < start or day >= end:
                    outside += 1
                    continue
                project = obj.get("project_id") if need_project else None
                if project is not None:
                    if type(project) is not str:
                        general(obj, line)
                        continue
                    if project_filter and project not in project_filter:
                        skip("other_project", line)
                        continue
                model = obj["model"]
                # Flat counts win over a "usage" object, as in the general path. Then the first
                # shape of TOKEN_KEYS whose input key is there, else the last one, whose missing
                # keys raise KeyError and hand the record over; likewise for CACHED_DETAILS.
                usage = obj if chat_input in obj or responses_input in obj else obj["usage"]
                shape = chat_input not in usage
                input_key, output_key = token_keys[shape]
                inp = usage[input_key]
                out = usage[output_key]
                # A family/endpoint field of a pair known to mean completions stays here;
                # the general path detects a new pair (and caches it) and counts other
                # families. Token classes beyond text (audio, image, cache writes) in a
                # details object hand the record over, as Realtime-style details do. The
                # objects the APIs write are told by their size, not a lookup per class:
                # input details of cached_tokens alone or with audio_tokens 0, output
                # details of reasoning_tokens alone. Realtime-style objects count only inside a
                # usage object, so a flat record needs no probe for them.
                if ("family" in obj or "endpoint" in obj) and marked_get(
                    (obj.get("family"), obj.get("endpoint"))
                ) != completions:
                    raise KeyError
                details = cached_details[chat_details not in usage]
                if details in usage:
                    d = usage[details]
                    from_details = d["cached_tokens"]
                    if len(d) != 1 and (
                        len(d) != 2 or type(a := d.get("audio_tokens", 1)) is not int or a
                    ):
                        raise KeyError
                    # A probe and a subscript cost less than a method call: noqa SIM401.
                    cached = usage["cached_tokens"] if "cached_tokens" in usage else from_details  # noqa: SIM401
                elif usage is not obj and realtime_details in usage:
                    raise KeyError
                else:
                    cached = usage["cached_tokens"] if "cached_tokens" in usage else 0  # noqa: SIM401
                # The output details object of the record's own API (Chat or Responses).
                details = output_names[shape]
                if details in usage:
                    d = usage[details]
                    if len(d) != 1 or "reasoning_tokens" not in d:
                        a, i = d.get("audio_tokens", 0), d.get("image_tokens", 0)
                        if type(a) is not int or a or type(i) is not int or i:
                            raise KeyError
                elif usage is not obj and realtime_out in usage:
                    raise KeyError
                total = usage.get("total_tokens")
            except (KeyError, IndexError, ValueError, TypeError, AttributeError):
                general(obj, line)
                continue
            if (
                type(model) is not str
                or not model
                or type(inp) is not int
                or type(out) is not int
                or type(cached) is not int
                # inp < 0 needs no test of its own: it fails cached < 0 or cached > inp. Nor
                # does usage: a JSON value other than an object raised TypeError when subscripted.
                or out < 0
                or cached < 0
                or cached > inp
                # Counts above FAST_MAX_TOKENS (cached is at most inp) are checked against
                # MAX_TOKENS by the general path: these two compares stay cheap.
                or inp > fast_max
                or out > fast_max
            ):
                general(obj, line)
                continue
            cost: Decimal | None = None
            tier: Tier | None = "standard"
            if "cost" in obj or "cost_usd" in obj:
                cost = record_cost(obj, cents)
                if cost is None:
                    general(obj, line)  # null, or there but unusable (bad_cost): check tells
                    continue
                tier = None
            elif "batch" in obj or "service_tier" in obj:
                tier = tier_of(obj.get("batch") is True, obj.get("service_tier"))
            group: Any = model
            if grouped:
                api_key = obj.get("api_key_id") if group_api_key else None
                if api_key is not None and type(api_key) is not str:
                    general(obj, line)
                    continue
                group = (model, project if group_project else None, api_key)
            key = (day, group, tier)
            sums = acc_get(key)
            if sums is None:
                # bad_model, or a model of another family (text-embedding-*, whisper-*): a
                # group is made here only for a completions model (known from a record the
                # general path read), so an existing group's model is one.
                if "\x00" in model or model_get(model) != completions:
                    general(obj, line)
                    continue
                if dedupe and "request_id" in obj:
                    keep_print(day, obj["request_id"])
                acc[key] = [inp, cached, out, 1, ZERO if cost is None else cost]
                self._new_group(key, line)
            else:
                # _print and fingerprint inline: this runs once per record of a known group
                # (orjson never makes a lone surrogate, so plain encode() is fingerprint's).
                if dedupe and "request_id" in obj:
                    rid = obj["request_id"]
                    if type(rid) is str and rid:
                        prints[day].append(hash(from_bytes(rid.encode())))
                sums[0] += inp
                sums[1] += cached
                sums[2] += out
                sums[3] += 1
                if cost is not None:
                    sums[4] += cost
            if total is not None and total != inp + out:
                # Rare: a call here costs the clean records nothing (the cache's per-file scan
                # counts these per day).
                self._inconsistent(day)
            counted += 1
        self._add_counts(counted, outside)

    def _c_config(self) -> tuple[Any, ...]:
        """The settings ``_fastscan.scan_block`` reads, in its order (see ``_fastscan.c``)."""
        return (
            self.start.toordinal(),
            self.end.toordinal(),
            self.zone is None,
            self.need_project,
            self.group_project,
            self.group_api_key,
            self.project_filter,
            self.options.dedupe,
            self.cents,
            self.model_families,
            dict(PRICED_SERVICE_TIERS),
            "standard",
            "batch",
            COMPLETIONS,
        )

    def _add_counts(self, counted: int, outside: int) -> None:
        """Add one chunk's tallies of the fast path to ``info``."""
        info = self.info
        info["records_counted"] += counted
        info["outside_window"] += outside

    def _inconsistent(self, day: date) -> None:
        """Note one counted record of ``day`` whose ``total_tokens`` disagrees."""
        info = self.info
        info["total_tokens_inconsistent"] = info.get("total_tokens_inconsistent", 0) + 1

    # -- the general path ----------------------------------------------------------------------

    def _general(self, obj: Any, line: bytes) -> None:
        """Count one parsed line (``obj``, parsed from ``line``) as ``check`` judges it."""
        record = self.check(obj, self.info)
        if isinstance(record, str):
            if record == OUTSIDE_WINDOW:
                self.info["outside_window"] += 1
            else:
                self._skip(record, line)
            return
        if self.options.dedupe:
            self._print(record.day, record.request_id)
        new = self._count(self.acc, record)
        if new is not None:
            self._new_group(new, line)
        self.info["records_counted"] += 1

    # -- the bound on groups ---------------------------------------------------------------------

    def _new_group(self, key: tuple[Any, ...], line: bytes | None) -> None:
        """Count the group of a new aggregate ``key`` (made from ``line`` of the chunk being
        scanned; None: merged from a worker); LogSourceError past ``max_groups``."""
        day, group, _tier, *rest = key
        family = rest[0] if rest else COMPLETIONS
        model, project, api_key = (group, None, None) if type(group) is str else group
        if self.limit.add((day, family, model, project, api_key)):
            raise self._too_many(line)

    def _too_many(self, line: bytes | None) -> LogSourceError:
        """The error that stops a scan whose window holds too many groups, located at ``line``."""
        task = self.task
        # Merged sums (from worker processes, or a cache) have no line to name.
        where = f"stopped adding up {self.path or 'the logs'}"
        if line is not None and self.first_line:
            number = self.first_line + first_index(self.chunk, line, 0)
            where = (
                f"stopped reading at {task.path}:{number}"
                if task.start == 0
                else f"stopped reading at {task.path}, line {number:,} of the part from byte "
                f"{task.start:,}"
            )
        paths, setting = self.options.fields, self.options.setting
        fields = {
            name: f"{setting}.fields.{name} = {paths[name]!r}"
            if name in paths
            else f"{setting}.fields.{name} (unset: the records' {name!r} field)"
            for name in DIMENSIONS
        }
        return LogSourceError(
            self.limit.message(where, self.scan_window.key, fields),
            permanent=True,
            reason="too_many_groups",
        )

    def _count(
        self, into: dict[tuple[Any, ...], list[Any]], record: LogRecord
    ) -> tuple[Any, ...] | None:
        """Add one record to the aggregates ``into`` (``acc``, or the duplicates' sums); the
        aggregate's key when this made it, else None."""
        group: Any = record.model
        if self.group_project or self.group_api_key:
            project = record.project_id if self.group_project else None
            api_key = record.api_key_id if self.group_api_key else None
            group = (record.model, project, api_key)
        cost = record.cost
        tier = None if cost is not None else record.tier
        key: tuple[Any, ...] = (record.day, group, tier)
        new = None
        if (
            record.family != COMPLETIONS
            or self.family_of(None, None, record.model) != COMPLETIONS
            or record.variant is not None
            or record.extra is not EMPTY
        ):
            # Not a plain completion: a long key, every quantity (see ``acc``).
            key += (record.family, record.variant)
            sums = into.get(key)
            if sums is None:
                sums = into[key] = [0, 0, 0, 0, ZERO, *[0] * (BYTES - 4)]
                new = key
            sums[0] += record.input_tokens
            sums[1] += record.cached_tokens
            sums[2] += record.output_tokens
            sums[3] += record.requests
            extra = record.extra
            if extra is not EMPTY:
                for i in range(5, BYTES):
                    sums[i] += getattr(extra, _FIELDS[i])
                sums[BYTES] = max(sums[BYTES], extra.usage_bytes)
        else:
            sums = into.get(key)
            if sums is None:
                sums = into[key] = [0, 0, 0, 0, ZERO]
                new = key
            sums[0] += record.input_tokens
            sums[1] += record.cached_tokens
            sums[2] += record.output_tokens
            sums[3] += 1
        if cost is not None:
            sums[4] += cost
        return new

    # -- result ---------------------------------------------------------------------------------

    def totals(self, pricer: Pricer, namer: ModelNamer | None) -> UsageTotals:
        """Price the cost-less aggregates once each and build the result."""
        self.find_duplicates()
        self.limit.groups.clear()  # counted while reading; the result holds the groups now
        dedupe = self.dedupe
        totals = price_aggregates(
            self._aggregates(self.acc), pricer, namer, skipped=self.skipped, info=self.info
        )
        duplicates = None
        if self.options.dedupe and any(any(p.values()) for _, p in dedupe.prints):
            extra = price_aggregates(
                self._aggregates(dedupe.acc), pricer, namer, skipped={}, info={}
            )
            duplicates = Duplicates(
                count=dedupe.count,
                request_ids=len(dedupe.ids),
                # Priced extras only: an unpriced model's would-be dollars are unknown, not 0.
                cost=sum((u.cost for u in extra.groups.values()), ZERO),
                locations=tuple(f"{path}:{line}" for path, line in dedupe.locations),
            )
        return replace(totals, skipped_locations=self.skips.shown(), duplicates=duplicates)

    def _aggregates(
        self, acc: dict[tuple[Any, ...], list[Any]]
    ) -> Iterator[tuple[AggregateKey, list[Any]]]:
        for key, sums in acc.items():
            day, group, tier, *rest = key
            family, variant = rest or (COMPLETIONS, None)
            model, project, api_key = (group, None, None) if type(group) is str else group
            yield (day, model, project, api_key, tier, family, variant), sums


class _Rescan(_Scan):
    """The second read of the files whose request-id fingerprints repeat.

    Every line goes through the general rules, but only records whose fingerprint is one of
    ``repeated``'s are looked at: the first of each real id stays counted, a later one is summed
    into ``dedupe.acc`` (to be moved there from the counted sums) and located.
    """

    def __init__(
        self, options: NdjsonOptions, window: Window, repeated: dict[date, set[int]]
    ) -> None:
        super().__init__(options, window)
        self.c_config = None  # reads every record of its files in Python: see ``scan``
        self.repeated = repeated
        self.wanted: set[int] = set().union(*repeated.values())
        #: The real ids of those records seen so far, per day.
        self.ids: dict[date, set[str]] = {}

    def read(self, task: Task) -> None:
        """Read one file again; no fingerprints are kept."""
        self.path = task.path
        info = self.info
        base = info["lines_read"]
        for lines in read_lines(task, info, self.skips):
            self.scan(lines, info["lines_read"] - base - len(lines) + 1)

    def scan(self, lines: list[bytes], first_line: int = 0) -> None:
        """Sum the records of ``lines`` that repeat a request id seen before."""
        loads, decode_error, wanted = orjson.loads, orjson.JSONDecodeError, self.wanted
        dedupe = self.dedupe
        for index, line in enumerate(lines):
            try:
                obj = loads(line)
            except decode_error:
                continue
            if type(obj) is not dict:
                continue
            rid = self._get(obj, "request_id", "request_id")
            if type(rid) is not str or not rid or fingerprint(rid) not in wanted:
                continue
            record = self.check(obj, None)
            if isinstance(record, str) or record.request_id != rid:
                continue
            if fingerprint(rid) not in self.repeated.get(record.day, ()):
                continue
            ids = self.ids.setdefault(record.day, set())
            if rid not in ids:
                ids.add(rid)  # the first: it stays counted
                continue
            self._count(dedupe.acc, record)
            dedupe.count += 1
            dedupe.ids.add((record.day, rid))
            if first_line and len(dedupe.locations) < LOCATIONS_PER_REASON:
                dedupe.locations.append((self.path, first_line + index))


class _SeriesScan(_Scan):
    """Sums records per time bucket instead of per day (``NdjsonLogSource.series``)."""

    def __init__(self, options: NdjsonOptions, window: Window) -> None:
        super().__init__(options, window)
        self.c_config = None  # its own ``scan`` sums per bucket, in Python
        #: [start, end) and the bucket width, aware UTC (set by the caller).
        self.bounds = (window.start_at, window.end_at, timedelta(hours=1))
        #: Bucket start -> aggregates keyed as ``acc``.
        self.buckets: dict[datetime, dict[tuple[Any, ...], list[Any]]] = {}
        #: The request ids counted, per UTC day: exact sets (a series spans a day or two).
        self.seen: dict[date, set[str]] = {}

    def repeated(self, day: date, request_id: str | None) -> bool:
        """Whether a record repeats a request id counted on ``day`` (remembering it if not)."""
        if not self.options.dedupe or not request_id:
            return False
        ids = self.seen.setdefault(day, set())
        if request_id in ids:
            return True
        ids.add(request_id)
        return False

    def scan(self, lines: list[bytes], first_line: int = 0) -> None:
        """Sum every record of ``lines`` dated in the bounds into its bucket."""
        start, end, width = self.bounds
        loads, decode_error = orjson.loads, orjson.JSONDecodeError
        for line in lines:
            try:
                record = self.check(loads(line), None)
            except decode_error:
                continue
            # Deduped before the bounds are applied: the first record of an id may be outside
            # them but on the same day, and fetch counts that one.
            if isinstance(record, str) or self.repeated(record.day, record.request_id):
                continue
            moment = self.moment(record.timestamp)
            if moment is None or not start <= moment < end:
                continue
            self._count(self.buckets.setdefault(bucket_of(moment, width), {}), record)

    def moment(self, ts: str | float) -> datetime | None:
        """The aware UTC instant of a timestamp ``check`` accepted (``day_of``'s rules)."""
        try:
            value: float
            if isinstance(ts, str):
                if ts[4:5] == "-" or not _NUMERIC.fullmatch(ts):
                    dt = datetime.fromisoformat(ts)
                    if dt.tzinfo is None:
                        dt = dt.replace(tzinfo=self.zone or UTC)
                    return dt.astimezone(UTC)
                value = float(ts) if "." in ts else int(ts)
            else:
                value = ts
            # As epoch_day: seconds reach 1e11 only in the year 5138.
            return datetime.fromtimestamp(value / 1000 if abs(value) > 1e11 else value, UTC)
        except (ValueError, OverflowError, OSError, TypeError):
            return None

    def series(
        self, pricer: Pricer, namer: ModelNamer | None
    ) -> dict[SeriesKey, dict[datetime, Usage]]:
        """Price each bucket's aggregates as ``fetch`` prices a day's, per group."""
        out: dict[SeriesKey, dict[datetime, Usage]] = {}
        for bucket in sorted(self.buckets):
            aggregates = self._aggregates(self.buckets[bucket])
            totals = price_aggregates(aggregates, pricer, namer, skipped={}, info={})
            for key, usage in totals.groups.items():
                per_bucket = out.setdefault((key.family, key.model, key.project_id), {})
                per_bucket[bucket] = per_bucket.get(bucket, EMPTY) + usage
        return out
