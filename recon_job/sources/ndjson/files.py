"""Finding and reading NDJSON log files: discovery, chunked line reading, gzip, parallel plans.

This module knows bytes and lines, never records. :func:`read_lines` streams a file (or a
newline-aligned byte range of a plain file) in fixed-size chunks and yields lists of raw lines,
so memory stays bounded by the chunk size whatever the file size. :func:`plan_tasks` and
:func:`run_tasks` split a large amount of log data into such ranges and run a picklable scan
function over them in worker processes.
"""

from __future__ import annotations

import errno
import glob
import gzip
import io
import itertools
import multiprocessing
import os
import re
import stat
import zlib
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from recon_job.errors import LogSourceError
from recon_job.sources.ndjson.skips import Skips

logger = structlog.get_logger(__name__)

EVENT_GZIP_TRUNCATED = "recon.source.ndjson.gzip_truncated"
EVENT_LEFT_OUT = "recon.source.ndjson.left_out"

#: Log file names picked up inside a directory: ``x.ndjson``, ``x.jsonl.gz``, ``x.log.1``,
#: ``x.ndjson.2.gz`` (logrotate's numbered and compressed rotations).
LOG_FILE_NAME = re.compile(r"\.(?:ndjson|jsonl|log)(?:\.\d+)?(?:\.gz)?$")

CHUNK_BYTES = 1 << 20
#: A line longer than this is skipped (``line_too_long``) instead of being buffered whole. Must
#: be at least ``CHUNK_BYTES``: only then can just the first line of a chunk be that long, which
#: makes the rule exact (and the same for a whole file and for its ranges) at one test a chunk.
MAX_LINE_BYTES = 16 << 20
TOO_LONG = "line_too_long"

#: Below this much log data (plain bytes, gzip counted at ``GZIP_RATIO`` times its size), worker
#: start-up (an interpreter and its imports, ~0.2 s each) costs more than parallel scanning saves.
PARALLEL_MIN_BYTES = 32 << 20
#: With the C fast path a scan is about four times as fast (``bench/bench_scan_vs_duckdb.py
#: --breakdown``: 1.2 s for a million records in one process, against 5.0 s without it, on a
#: loaded machine), so a worker process (~0.35 s to start and import) pays only for this many
#: times more data: 256 MiB, more than the benchmark's million records, which one process reads
#: faster than two.
FAST_PATH_SPEEDUP = 8
#: A plain file is split into ranges only if each range gets at least this much.
MIN_RANGE_BYTES = 8 << 20
#: A cautious guess of how much NDJSON usage logs shrink under gzip (they shrink 8-15x).
GZIP_RATIO = 6

_GLOB_MAGIC = re.compile(r"[*?\[]")
_BOM = b"\xef\xbb\xbf"
_GZIP_MAGIC = b"\x1f\x8b"

_R = TypeVar("_R")


def resolve_log_files(paths: Iterable[str], *, warn: bool = False) -> list[str]:
    """Every log file named by ``paths``, in order and without duplicates.

    Raises LogSourceError for a missing file, a glob matching nothing, or a directory without
    log files: an empty result would otherwise read as zero usage. Also for a path named
    directly that is not a regular file (a FIFO or ``/dev/zero`` would be read forever), and for
    a symbolic link loop met anywhere (named, in a directory, or matched by a glob). A glob's
    other matches (a dangling link, a FIFO) are left out; with ``warn`` (a run reading the
    files), each is logged as a warning naming it, never dropped without a word.
    """
    found: dict[str, str] = {}
    for spec in paths:
        pattern = os.path.expanduser(spec)
        if _GLOB_MAGIC.search(pattern):
            files = _matched_files(spec, pattern, warn=warn)
        else:
            files = _named_files(spec, pattern, warn=warn)
        for path in files:
            found.setdefault(os.path.realpath(path), path)
    return list(found.values())


def _matched_files(spec: str, pattern: str, *, warn: bool) -> list[str]:
    """The regular files a glob matches, and the log files of the directories it matches.

    Other matches (a dangling link, a FIFO) are left out, and logged when ``warn``: a rotated
    log whose file is gone, or a pipe, holds nothing a run could count.
    """
    files: list[str] = []
    for match in sorted(glob.glob(pattern, recursive=True)):
        mode = _mode(match, match, missing_ok=True)
        if mode is not None and stat.S_ISDIR(mode):
            files.extend(_log_files_in(match, spec if warn else None))
        elif mode is not None and stat.S_ISREG(mode):
            files.append(match)
        elif warn:
            _left_out(match, mode, spec)
    if not files:
        _check_listable(pattern)
        raise LogSourceError(
            f"no log files match {spec!r} — check RECON_LOG_PATHS "
            "(comma-separated files, directories or globs)",
            reason="no_log_files",
        )
    return files


def _check_listable(pattern: str) -> None:
    """Raise the real reason a glob found nothing when it is a directory that cannot be listed:
    glob skips what it may not read, and "no log files match" would hide "Permission denied"."""
    fixed = []
    for part in pattern.split(os.sep):
        if _GLOB_MAGIC.search(part):
            break
        fixed.append(part)
    directory = os.sep.join(fixed) or "."
    try:
        with os.scandir(directory):
            pass
    except (FileNotFoundError, NotADirectoryError):
        return  # nothing there to list: "no log files match" says it
    except OSError as e:
        raise _unusable(directory, e) from e


def _named_files(spec: str, path: str, *, warn: bool) -> list[str]:
    """A log file named directly, or the log files of a directory named directly."""
    mode = _mode(path, spec)
    if mode is not None and stat.S_ISDIR(mode):
        files = _log_files_in(path, spec if warn else None)
        if not files:
            raise LogSourceError(
                f"directory {spec!r} holds no log files (*.ndjson, *.jsonl, *.log, rotated "
                "or .gz) — check RECON_LOG_PATHS",
                reason="no_log_files",
            )
        return files
    if mode is None or not stat.S_ISREG(mode):
        raise _not_regular(spec, mode)
    return [path]


def _log_files_in(directory: str, spec: str | None) -> list[str]:
    """The regular files of ``directory`` with a log file name (not recursive); the others
    with such a name are logged as left out when ``spec`` (the path that named it) is given."""
    try:
        with os.scandir(directory) as entries:
            # The name first: only entries that would be read are looked at (stat'ed).
            named = [e.path for e in entries if LOG_FILE_NAME.search(e.name)]
    except OSError as e:
        raise _unusable(directory, e) from e
    files = []
    for path in named:
        mode = _mode(path, path, missing_ok=True)
        if mode is not None and stat.S_ISREG(mode):
            files.append(path)
        elif spec is not None:
            _left_out(path, mode, spec)
    return sorted(files)


def _left_out(path: str, mode: int | None, spec: str) -> None:
    """Say that ``path``, found through ``spec``, is not read: it holds nothing to count."""
    why = "a link to a file that is gone" if mode is None else "not a regular file"
    logger.warning(EVENT_LEFT_OUT, path=path, named_by=spec, why=why)


def _mode(path: str, shown: str, *, missing_ok: bool = False) -> int | None:
    """``path``'s file type and mode (links followed); None when ``missing_ok`` and it is missing.

    A dangling link counts as missing. Every other failure (a link loop, no permission) is a
    LogSourceError naming the path as ``shown`` (as the user wrote it, ``~`` unexpanded).
    """
    try:
        return os.stat(path).st_mode
    except OSError as e:
        if missing_ok and e.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise _unusable(shown, e) from e


def _unusable(path: str, error: OSError) -> LogSourceError:
    """The error for a log path that cannot be looked at."""
    if error.errno in (errno.ENOENT, errno.ENOTDIR):
        return LogSourceError(
            f"log file {path!r} does not exist — check RECON_LOG_PATHS "
            "(comma-separated files, directories or globs)",
            reason="log_file_missing",
        )
    if error.errno == errno.ELOOP:
        problem = "is a loop of symbolic links (each points on to the next, back to itself)"
        hint = "fix or remove the link"
    else:
        problem = f"cannot be looked at: {error.strerror or error}"
        hint = "check that it exists and that the job's user may read it"
    return LogSourceError(
        f"log path {path!r} {problem} — {hint}, or change RECON_LOG_PATHS",
        reason="log_file_unusable",
    )


def _not_regular(spec: str, mode: int | None) -> LogSourceError:
    """The error for a log path named directly that is neither a regular file nor a directory."""
    kind = "not a regular file"
    if mode is not None:
        for test, name in (
            (stat.S_ISFIFO, "a named pipe (FIFO)"),
            (stat.S_ISCHR, "a character device"),
            (stat.S_ISBLK, "a block device"),
            (stat.S_ISSOCK, "a socket"),
        ):
            if test(mode):
                kind = name
    return LogSourceError(
        f"log path {spec!r} is {kind}, not a log file: reading it could block or never end — "
        "RECON_LOG_PATHS names log files, directories of them, or globs",
        reason="log_file_not_regular",
    )


def open_regular(path: str) -> io.BufferedReader:
    """``path`` opened for reading in binary; LogSourceError unless it is a regular file.

    Opened without blocking, then checked on the open file: a FIFO put in a log file's place
    after the paths were resolved would otherwise block the open until some writer came.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise LogSourceError(
            f"cannot read log file {path!r}: {e.strerror or e} — check that it exists and "
            "that the job's user may read it",
            reason="log_file_unreadable",
        ) from e
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(path, mode)
        os.set_blocking(fd, True)
        return open(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


# -- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Task:
    """One unit of reading: a whole file, or the lines that *start* in ``[start, end)``."""

    path: str
    #: Byte offset of the range; 0 for a whole file.
    start: int = 0
    #: End of the range (exclusive); None reads to the end of the file, gzip included.
    end: int | None = None


def read_lines(task: Task, info: MutableMapping[str, int], skips: Skips) -> Iterator[list[bytes]]:
    """The raw lines of ``task``, a chunk's worth at a time, each counted in ``lines_read``.

    See :func:`_read` for what is read; :func:`read_blocks` gives the same lines unsplit.
    """
    found: Iterator[list[bytes]] = _read(task, info, skips, False)
    return found


def read_blocks(
    task: Task, info: MutableMapping[str, int], skips: Skips
) -> Iterator[tuple[bytes, int]]:
    """The lines :func:`read_lines` gives, a chunk's worth at a time, not split: each block is
    ``b"\\n".join(lines)`` with ``len(lines)`` (so ``(b"", 1)`` is one empty line). For the C
    fast path, which splits as it scans: a million ``bytes`` objects cost as much as its scan."""
    found: Iterator[tuple[bytes, int]] = _read(task, info, skips, True)
    return found


def _read(task: Task, info: MutableMapping[str, int], skips: Skips, joined: bool) -> Iterator[Any]:
    """The lines of ``task`` (see :func:`read_lines`; ``joined``: as :func:`read_blocks`).

    A whole-file task reads plain or gzip (told by its magic bytes, not its name); a range task
    reads a plain file from the first line starting at or after ``start`` up to the end of the
    last line starting before ``end``, so consecutive ranges see every line exactly once.
    Overlong lines are counted in ``lines_read`` and in ``skips`` (with their line numbers) but
    not yielded; a truncated gzip is noted in ``info["gzip_truncated"]``. LogSourceError if the
    file cannot be read, or is not a regular file.

    When a list is yielded, ``lines_read`` counts every line of the task up to its last one and
    no further, so a consumer can tell the line number of each line it gets.
    """
    path = task.path
    raw = open_regular(path)
    with raw:
        size = raw.seek(0, io.SEEK_END)
        raw.seek(0)
        try:
            if task.end is None:
                compressed = raw.peek(2)[:2] == _GZIP_MAGIC
                stream: io.BufferedIOBase = gzip.GzipFile(fileobj=raw) if compressed else raw
                yield from _split(stream, _Lines(task, info, skips, joined), None)
                _check_whole(path, size, raw.tell())
                return
            begin = task.start
            if begin > 0:
                # The line running across ``start`` belongs to the previous range: resume just
                # after the first newline at or after start - 1 (a line starting exactly at
                # ``start`` is ours: byte start - 1 is then its predecessor's newline).
                raw.seek(begin - 1)
                while True:
                    part = raw.readline(CHUNK_BYTES)
                    if not part or part.endswith(b"\n"):
                        break
                begin = raw.tell()
            if begin < task.end:
                yield from _split(raw, _Lines(task, info, skips, joined), task.end - begin)
                # Up to the range's end, or the file's (a range may run "to the end").
                _check_whole(path, min(task.end, size), raw.tell())
        except (OSError, zlib.error) as e:
            raise LogSourceError(
                f"cannot read log file {path!r}: {e} — if it is a damaged .gz archive, "
                "restore or remove it",
                reason="log_file_unreadable",
            ) from e


def _check_whole(path: str, expected: int, reached: int) -> None:
    """A transient LogSourceError when the file ended before ``expected`` bytes: it shrank
    while it was read (truncated, or rotated with logrotate's copytruncate), and what was read
    is neither the file before nor after."""
    if reached < expected:
        raise LogSourceError(
            f"log file {path!r} shrank while it was read ({expected:,} bytes, then it ended at "
            f"{reached:,}): truncated, or rotated with copytruncate — run again",
            permanent=False,
            reason="log_file_changed",
        )


def _split(stream: io.BufferedIOBase, lines: _Lines, left: int | None) -> Iterator[Any]:
    """Lines of ``stream``; with ``left`` set, of its next ``left`` bytes plus the cut last line
    (in blocks when ``lines.joined``, see :func:`read_blocks`)."""
    task, joined = lines.task, lines.joined
    chunks = (
        _chunks(stream, task, lines.info) if left is None else _range_chunks(stream, left, lines)
    )
    feed = lines.feed_block if joined else lines.feed
    for chunk in chunks:
        found = feed(chunk)
        if found:
            yield found
    last = lines.rest()
    if last:
        yield (last[0], 1) if joined else last


def _chunks(
    stream: io.BufferedIOBase, task: Task, info: MutableMapping[str, int]
) -> Iterator[bytes]:
    """Every chunk of a whole file, plain or gzip, up to where a truncated gzip ends."""
    while True:
        try:
            # read1: one decompression step at a time, so a truncated .gz loses nothing before
            # the point where it ends.
            chunk = stream.read1(CHUNK_BYTES)
        except EOFError:
            # A .gz still being written ends mid-stream: keep what decompressed, and let its
            # cut-off last line count as malformed.
            info["gzip_truncated"] = info.get("gzip_truncated", 0) + 1
            logger.warning(EVENT_GZIP_TRUNCATED, path=task.path)
            return
        if not chunk:
            return
        yield chunk


def _range_chunks(stream: io.BufferedIOBase, left: int, lines: _Lines) -> Iterator[bytes]:
    """The next ``left`` bytes of a plain file, then the rest of a last line they cut."""
    while left > 0:
        chunk = stream.read1(min(left, CHUNK_BYTES))
        if not chunk:
            return
        left -= len(chunk)
        yield chunk
    # The range's last line runs past its end: read on to its newline, and no further.
    while lines.pending:
        chunk = stream.read1(CHUNK_BYTES)
        newline = chunk.find(b"\n")
        if newline >= 0:
            yield chunk[: newline + 1]
            return
        if not chunk:
            return
        yield chunk


class _Lines:
    """Splits chunks into whole lines, carrying the part after a chunk's last newline over.

    Skips overlong lines (counted as ``TOO_LONG``, located) without buffering them, and strips
    a byte order mark from the first line of a file. A line is counted in ``lines_read`` in
    order: an overlong one when it ends (or the stream does), not when it is found, so the
    count never runs ahead of the lines handed out.
    """

    def __init__(
        self, task: Task, info: MutableMapping[str, int], skips: Skips, joined: bool = False
    ) -> None:
        self.task, self.joined = task, joined
        self.path = task.path
        self.info = info
        self.skips = skips
        #: Lines of the task counted so far (for the line numbers of overlong ones).
        self.count = 0
        #: The start of a line whose newline has not been read yet.
        self.pending = b""
        #: True until the file's first line is done (only it may start with a byte order mark).
        self.first = task.start == 0
        #: True while skipping the rest of an overlong line.
        self.discarding = False

    def feed(self, chunk: bytes) -> list[bytes]:
        """The lines ``chunk`` completes, each counted in ``lines_read`` (``feed_block``'s,
        split)."""
        found = self.feed_block(chunk)
        return found[0].split(b"\n") if found else []

    def feed_block(self, chunk: bytes) -> tuple[bytes, int] | None:
        """The lines ``chunk`` completes as one block (see :func:`read_blocks`), each counted in
        ``lines_read``; None when it completes none. Only a block's first line can be overlong
        (``MAX_LINE_BYTES`` is at least ``CHUNK_BYTES``), or carry the file's byte order mark,
        stripped from the whole first line, not from the first chunk, which may end inside it."""
        buf = self.pending + chunk if self.pending else chunk
        if self.discarding:
            newline = buf.find(b"\n")
            if newline < 0:
                self.pending = b""
                return None
            buf = buf[newline + 1 :]
            self.discarding = False
            self._too_long()
        cut = buf.rfind(b"\n")
        found: tuple[bytes, int] | None = None
        self.pending = buf[cut + 1 :]
        if cut >= 0:
            block = buf[:cut]
            count = block.count(b"\n") + 1
            first_end = block.find(b"\n")
            if (first_end if first_end >= 0 else len(block)) > MAX_LINE_BYTES:
                self._too_long()
                block = block[first_end + 1 :] if first_end >= 0 else b""
                count -= 1
            elif self.first and block.startswith(_BOM):
                block = block[len(_BOM) :]
            self.first = False
            if count:
                self._counted(count)
                found = block, count
        if len(self.pending) > MAX_LINE_BYTES:
            self.pending = b""
            self.discarding = True
            self.first = False
        return found

    def rest(self) -> list[bytes]:
        """The last line, when the stream does not end with a newline."""
        if self.discarding:
            self._too_long()
            return []
        last = self.pending
        if len(last) > MAX_LINE_BYTES:
            self._too_long()
            return []
        if self.first and last.startswith(_BOM):
            last = last[len(_BOM) :]
        if not last:
            return []
        self._counted(1)
        return [last]

    def _counted(self, lines: int) -> None:
        self.count += lines
        self.info["lines_read"] += lines

    def _too_long(self) -> None:
        self._counted(1)
        self.skips.add(TOO_LONG, self.path, self.count)


# -- parallel ----------------------------------------------------------------------------------


def parallel_workers(files: Sequence[str], requested: int, *, fast: bool = False) -> int:
    """How many worker processes to read ``files`` with; 1 means read them in-process.

    ``requested`` 0 means one per CPU. Small amounts of data stay in-process: see
    ``PARALLEL_MIN_BYTES``; ``fast``: the scan runs the C fast path, which reads
    ``FAST_PATH_SPEEDUP`` times as fast, so a worker's start-up is worth it only for that
    many times more data.
    """
    cpus = os.cpu_count() or 1
    workers = min(cpus, requested or cpus)
    if workers < 2:
        return 1
    work = 0
    for path in files:
        try:
            work += os.path.getsize(path) * (GZIP_RATIO if _is_gzip(path) else 1)
        except OSError:
            continue  # read_lines reports it, with the message it always gives
    return workers if work >= PARALLEL_MIN_BYTES * (FAST_PATH_SPEEDUP if fast else 1) else 1


def plan_tasks(files: Sequence[str], pieces: int) -> list[Task]:
    """Tasks covering ``files``: large plain files in up to ``pieces`` newline-aligned ranges.

    Gzip and small files are whole-file tasks (a gzip stream cannot be entered mid-way).
    """
    tasks: list[Task] = []
    for path in files:
        try:
            size = os.path.getsize(path)
            splittable = not _is_gzip(path)
        except OSError:
            size, splittable = 0, False
        ranges = split_task(Task(path, 0, size), pieces) if splittable else []
        tasks.extend(ranges if len(ranges) > 1 else [Task(path)])
    return tasks


def split_task(task: Task, pieces: int) -> list[Task]:
    """``task`` as up to ``pieces`` consecutive newline-aligned ranges of at least
    ``MIN_RANGE_BYTES`` each (the lines starting in each, as for any range): read one after the
    other, they see the lines ``task`` sees. A whole-file task (gzip) stays whole."""
    if task.end is None:
        return [task]
    count = min(pieces, (task.end - task.start) // MIN_RANGE_BYTES)
    if count < 2:
        return [task]
    size = task.end - task.start
    bounds = [task.start + size * i // count for i in range(count + 1)]
    return [Task(task.path, a, b) for a, b in itertools.pairwise(bounds)]


def _is_gzip(path: str) -> bool:
    with open_regular(path) as f:
        return f.read(2) == _GZIP_MAGIC


def run_tasks(scan: Callable[[Task], _R], tasks: Sequence[Task], workers: int) -> list[_R]:
    """``scan`` of every task, in task order, run in up to ``workers`` spawned processes.

    ``scan`` must be picklable (a module-level function or a ``functools.partial`` of one). An
    error raised by ``scan`` in a worker is re-raised here as it was; a worker that dies is a
    LogSourceError.
    """
    # spawn, never fork: the daemon has scheduler threads, and a forked child inherits their
    # locks in whatever state they were in.
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        max_workers=max(1, min(workers, len(tasks))),
        mp_context=context,
        initializer=_silence_logging,
    )
    futures: list[Future[_R]] = []
    try:
        futures = [pool.submit(scan, task) for task in tasks]
        return [future.result() for future in futures]
    except BrokenProcessPool as e:
        raise LogSourceError(
            f"a log reading worker process died ({e}) — it may have run out of memory; "
            "set the NDJSON source's workers to 1 to read in-process",
            permanent=False,
            reason="log_worker_died",
        ) from e
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _silence_logging() -> None:
    """Worker initializer: drop every log event.

    structlog's default configuration prints to stdout, which is the report channel of
    ``--format json``; the parent logs what matters from the workers' results.
    """
    structlog.configure(processors=[_drop], cache_logger_on_first_use=True)


def _drop(*_: Any) -> Any:
    raise structlog.DropEvent
