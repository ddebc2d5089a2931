"""The local side: usage aggregated from the application's own NDJSON request logs.

Files, directories and globs (rotated and ``.gz`` files included) are streamed in fixed-size
binary chunks and parsed line by line with orjson, so memory grows with the number of distinct
groups, never with file size. Every line is accounted for exactly once: counted, outside the
window (``info["outside_window"]``), or skipped with a reason (``UsageTotals.skipped``).

Three record shapes are understood without configuration (flat Chat Completions style, flat
Responses style, and a ``usage`` object as the APIs return it); ``NdjsonOptions.fields`` maps any
other shape. Records that carry their own cost keep it; the others are priced once per
(group, tier) aggregate at the end, which equals per-record pricing because pricing is linear
and exact in Decimal.
"""

from __future__ import annotations

import glob
import gzip
import io
import os
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
import structlog

from recon_job.errors import ConfigError, LogSourceError
from recon_job.modelnames import ModelNamer
from recon_job.models import ZERO, Tier, Usage, UsageKey, UsageTotals, Window
from recon_job.sources.base import Pricer

logger = structlog.get_logger(__name__)

EVENT_FILE_READ = "recon.source.ndjson.file_read"
EVENT_GZIP_TRUNCATED = "recon.source.ndjson.gzip_truncated"
EVENT_FETCHED = "recon.source.ndjson.fetched"

#: Canonical field names a ``NdjsonOptions.fields`` mapping may map to a dotted record path.
CANONICAL_FIELDS = frozenset(
    {
        "timestamp",
        "model",
        "input_tokens",
        "output_tokens",
        "cached_tokens",
        "total_tokens",
        "cost",
        "request_id",
        "project_id",
        "api_key_id",
        "batch",
        "service_tier",
    }
)
GROUP_FIELDS = frozenset({"model", "project_id", "api_key_id"})

#: Log file names picked up inside a directory: ``x.ndjson``, ``x.jsonl.gz``, ``x.log.1``,
#: ``x.ndjson.2.gz`` (logrotate's numbered and compressed rotations).
LOG_FILE_NAME = re.compile(r"\.(?:ndjson|jsonl|log)(?:\.\d+)?(?:\.gz)?$")

CHUNK_BYTES = 1 << 20
#: A "line" longer than this is skipped (``line_too_long``) instead of being buffered whole.
MAX_LINE_BYTES = 16 << 20

_GLOB_MAGIC = re.compile(r"[*?\[]")
_NUMERIC = re.compile(r"-?\d+(?:\.\d+)?")
_EPOCH = date(1970, 1, 1)
_TIERS: dict[str, Tier] = {"flex": "flex", "priority": "priority"}
_TIMESTAMP_KEYS = ("timestamp", "ts", "time", "created_at", "created")
_BOM = b"\xef\xbb\xbf"
_TOO_BIG = "line_too_long"


@dataclass(frozen=True)
class NdjsonOptions:
    """How to find and read the local usage logs."""

    #: Files, directories (their log files, not recursive) or glob patterns (``**`` recurses).
    paths: tuple[str, ...]
    #: IANA zone for naive ISO timestamps (offset-less); aware ones and epochs are unambiguous.
    timezone: str = "UTC"
    #: Canonical field name -> dotted path in the record (``{"input_tokens": "usage.in"}``).
    #: Unmapped fields are auto-detected from the built-in shapes.
    fields: Mapping[str, str] = field(default_factory=dict)
    #: Group dimensions besides the day: ``model`` plus optionally ``project_id``, ``api_key_id``.
    group_by: tuple[str, ...] = ("model",)
    #: When set, records of other projects are skipped (``other_project``); records without a
    #: project id are kept, since an app logging for one project often omits it.
    project_ids: tuple[str, ...] = ()
    #: Unit of ``cost`` (and of a mapped cost field). ``cost_usd`` is always USD.
    cost_unit: Literal["usd", "cents"] = "usd"

    def __post_init__(self) -> None:
        problems = []
        if not self.paths:
            problems.append("no NDJSON log paths configured — set RECON_LOG_PATHS")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(
                f"unknown log timezone {self.timezone!r} — use an IANA name like 'Europe/Helsinki'"
            )
        for name, path in self.fields.items():
            if name not in CANONICAL_FIELDS:
                problems.append(
                    f"unknown log field {name!r} — expected one of {sorted(CANONICAL_FIELDS)}"
                )
            if not path or any(not part for part in path.split(".")):
                problems.append(f"log field {name!r} maps to an empty path {path!r}")
        for name in self.group_by:
            if name not in GROUP_FIELDS:
                problems.append(f"cannot group logs by {name!r} — use {sorted(GROUP_FIELDS)}")
        if self.cost_unit not in ("usd", "cents"):
            problems.append(f"log cost unit must be 'usd' or 'cents', not {self.cost_unit!r}")
        if problems:
            raise ConfigError(problems)


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
        files = resolve_log_files(self.options.paths)
        scan = _Scan(self.options, window)
        for path in files:
            scan.read_file(path)
        totals = scan.totals(self.pricer, self.namer)
        logger.info(
            EVENT_FETCHED,
            files=len(files),
            window=window.key,
            groups=len(totals.groups),
            skipped=dict(totals.skipped),
            unpriced=sorted(totals.unpriced),
            **totals.info,
        )
        return totals


def resolve_log_files(paths: Iterable[str]) -> list[str]:
    """Every log file named by ``paths``, in order and without duplicates.

    Raises LogSourceError for a missing file, a glob matching nothing, or a directory without
    log files: an empty result would otherwise read as zero usage.
    """
    found: dict[str, str] = {}
    for spec in paths:
        pattern = os.path.expanduser(spec)
        if _GLOB_MAGIC.search(pattern):
            matches = sorted(glob.glob(pattern, recursive=True))
            files = [m for m in matches if os.path.isfile(m)]
            for directory in (m for m in matches if os.path.isdir(m)):
                files.extend(_log_files_in(directory))
            if not files:
                raise LogSourceError(
                    f"no log files match {spec!r} — check RECON_LOG_PATHS "
                    "(comma-separated files, directories or globs)",
                    reason="no_log_files",
                )
        elif os.path.isdir(pattern):
            files = _log_files_in(pattern)
            if not files:
                raise LogSourceError(
                    f"directory {spec!r} holds no log files (*.ndjson, *.jsonl, *.log, rotated "
                    "or .gz) — check RECON_LOG_PATHS",
                    reason="no_log_files",
                )
        elif os.path.exists(pattern):
            files = [pattern]
        else:
            raise LogSourceError(
                f"log file {spec!r} does not exist — check RECON_LOG_PATHS "
                "(comma-separated files, directories or globs)",
                reason="log_file_missing",
            )
        for path in files:
            found.setdefault(os.path.realpath(path), path)
    return list(found.values())


def _log_files_in(directory: str) -> list[str]:
    with os.scandir(directory) as entries:
        return sorted(e.path for e in entries if e.is_file() and LOG_FILE_NAME.search(e.name))


def _dig(obj: Any, parts: tuple[str, ...]) -> Any:
    for part in parts:
        if type(obj) is not dict:
            return None
        obj = obj.get(part)
    return obj


def _first(obj: dict[str, Any], keys: Iterable[str]) -> Any:
    for key in keys:
        value = obj.get(key)
        if value is not None:
            return value
    return None


def _parse_cost(value: Any, cents: bool) -> Decimal | None:
    """USD as Decimal, or None when ``value`` is not a finite, non-negative amount."""
    if type(value) is bool or not isinstance(value, int | float | str):
        return None
    try:
        # str() of a float is its shortest repr, so 0.1 becomes Decimal("0.1"), not the binary.
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount < 0:
        return None
    return amount.scaleb(-2) if cents else amount


def _record_cost(obj: dict[str, Any], cents: bool) -> Decimal | None:
    """The record's own USD cost from ``cost`` (in ``cents`` if so configured) or ``cost_usd``.

    None when there is none, or when the one there is unusable (the caller tells which).
    """
    raw = obj.get("cost")
    if raw is not None:
        return _parse_cost(raw, cents)
    raw = obj.get("cost_usd")
    return None if raw is None else _parse_cost(raw, False)


def _tier(batch: Any, service_tier: Any) -> Tier:
    """The billing tier of a record from its ``batch`` flag and ``service_tier``."""
    if batch is True:
        return "batch"
    if type(service_tier) is str:
        return _TIERS.get(service_tier, "standard")
    return "standard"


def _group_order(key: UsageKey) -> tuple[date, str, str, str]:
    # UsageKey's own ordering fails on None vs str project ids; sort unlabelled groups first.
    return (key.day, key.model, key.project_id or "", key.api_key_id or "")


def _tokens(value: Any) -> int | str:
    """A token count, or the skip reason for an unusable one."""
    if type(value) is int:
        return value if value >= 0 else "negative_tokens"
    if type(value) is float and value.is_integer():
        return int(value) if value >= 0 else "negative_tokens"
    return "bad_tokens"


class _Scan:
    """Accumulators for one fetch: plain dicts and lists, no per-record objects."""

    def __init__(self, options: NdjsonOptions, window: Window) -> None:
        self.start = window.start
        self.end = window.end
        zone = ZoneInfo(options.timezone)
        self.zone: ZoneInfo | None = None if options.timezone == "UTC" else zone
        self.paths = {name: tuple(path.split(".")) for name, path in options.fields.items()}
        self.fast = not self.paths
        self.cents = options.cost_unit == "cents"
        self.group_project = "project_id" in options.group_by
        self.group_api_key = "api_key_id" in options.group_by
        self.project_filter = frozenset(options.project_ids)
        self.need_project = self.group_project or bool(self.project_filter)
        #: (day, model or (model, project, api key) when so grouped, tier or None for records
        #: with a logged cost) -> [input, cached, output, requests, logged cost]
        self.acc: dict[tuple[Any, ...], list[Any]] = {}
        self.skipped: dict[str, int] = {}
        self.info: dict[str, int] = dict.fromkeys(
            ("files_read", "lines_read", "records_counted", "outside_window"), 0
        )
        self.epoch_days: dict[int, date | None] = {}
        self.local_minutes: dict[str, date] = {}

    # -- reading -----------------------------------------------------------------------------

    def read_file(self, path: str) -> None:
        """Stream one file (plain or gzip, detected by its magic bytes) through the parser."""
        try:
            raw = open(path, "rb")  # noqa: SIM115 - closed by the with below
        except OSError as e:
            raise LogSourceError(
                f"cannot read log file {path!r}: {e.strerror or e} — check that it exists and "
                "that the job's user may read it",
                reason="log_file_unreadable",
            ) from e
        lines_before = self.info["lines_read"]
        with raw:
            try:
                compressed = raw.peek(2)[:2] == b"\x1f\x8b"
                stream: io.BufferedIOBase = gzip.GzipFile(fileobj=raw) if compressed else raw
                self._read_stream(stream, path)
            except (OSError, zlib.error) as e:
                raise LogSourceError(
                    f"cannot read log file {path!r}: {e} — if it is a damaged .gz archive, "
                    "restore or remove it",
                    reason="log_file_unreadable",
                ) from e
        self.info["files_read"] += 1
        logger.debug(EVENT_FILE_READ, path=path, lines=self.info["lines_read"] - lines_before)

    def _read_stream(self, stream: io.BufferedIOBase, path: str) -> None:
        pending = b""
        first = True
        discarding = False
        while True:
            try:
                # read1: one decompression step at a time, so a truncated .gz loses nothing
                # before the point where it ends.
                chunk = stream.read1(CHUNK_BYTES)
            except EOFError:
                # A .gz still being written ends mid-stream: keep what decompressed, and let
                # its cut-off last line count as malformed below.
                self._bump_info("gzip_truncated")
                logger.warning(EVENT_GZIP_TRUNCATED, path=path)
                break
            if not chunk:
                break
            if first:
                first = False
                if chunk.startswith(_BOM):
                    chunk = chunk[len(_BOM) :]
            buf = pending + chunk if pending else chunk
            if discarding:
                newline = buf.find(b"\n")
                if newline < 0:
                    pending = b""
                    continue
                buf = buf[newline + 1 :]
                discarding = False
            lines = buf.split(b"\n")
            pending = lines.pop()
            self.info["lines_read"] += len(lines)
            self.scan(lines)
            if len(pending) > MAX_LINE_BYTES:
                self.info["lines_read"] += 1
                self._skip(_TOO_BIG)
                pending = b""
                discarding = True
        if pending and not discarding:
            self.info["lines_read"] += 1
            self.scan([pending])

    def _skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def _bump_info(self, name: str) -> None:
        self.info[name] = self.info.get(name, 0) + 1

    # -- the hot path --------------------------------------------------------------------------

    def scan(self, lines: list[bytes]) -> None:
        """Count every line of ``lines``.

        Records of the built-in shapes with an ISO or integer epoch ``timestamp`` and clean
        integer counts take the inline fast path. Anything unusual goes to ``_general``, which is
        the specification: the fast path only ever accepts records ``_general`` would count the
        same way, and hands everything else over untouched. Required keys are read by
        subscription inside one ``try`` (free in 3.11 unless it raises); rarely present keys are
        probed with ``in``, which costs half a ``get``.
        """
        loads = orjson.loads
        decode_error = orjson.JSONDecodeError
        fromiso = datetime.fromisoformat
        general = self._general
        skip = self._skip
        iso_day = self._iso_day
        epoch_day = self._epoch_day
        acc = self.acc
        acc_get = acc.get
        start, end = self.start, self.end
        fast = self.fast
        cents = self.cents
        need_project, project_filter = self.need_project, self.project_filter
        group_project, group_api_key = self.group_project, self.group_api_key
        grouped = group_project or group_api_key
        utc = UTC
        counted = outside = inconsistent = 0
        for line in lines:
            try:
                obj = loads(line)
            except decode_error:
                skip("malformed_json" if line.strip() else "blank_line")
                continue
            if not fast or type(obj) is not dict:
                general(obj)
                continue
            try:
                ts = obj["timestamp"]
                if type(ts) is str and ts[4:5] == "-":
                    dt = fromiso(ts)
                    day = dt.date() if dt.tzinfo is utc else iso_day(dt, ts)
                elif type(ts) is int:
                    day = epoch_day(ts)
                else:
                    day = None
                if day is None:
                    general(obj)
                    continue
                if day < start or day >= end:
                    outside += 1
                    continue
                project = None
                if need_project and "project_id" in obj:
                    project = obj["project_id"]
                    if project is not None:
                        if type(project) is not str:
                            general(obj)
                            continue
                        if project_filter and project not in project_filter:
                            skip("other_project")
                            continue
                model = obj["model"]
                if "prompt_tokens" in obj:
                    usage = obj
                    inp = obj["prompt_tokens"]
                    out = obj["completion_tokens"]
                elif "input_tokens" in obj:
                    usage = obj
                    inp = obj["input_tokens"]
                    out = obj["output_tokens"]
                else:
                    usage = obj["usage"]
                    if "prompt_tokens" in usage:
                        inp = usage["prompt_tokens"]
                        out = usage["completion_tokens"]
                    else:
                        inp = usage["input_tokens"]
                        out = usage["output_tokens"]
                if "cached_tokens" in usage:
                    cached = usage["cached_tokens"]
                elif "prompt_tokens_details" in usage:
                    cached = usage["prompt_tokens_details"]["cached_tokens"]
                elif "input_tokens_details" in usage:
                    cached = usage["input_tokens_details"]["cached_tokens"]
                else:
                    cached = 0
                total = usage.get("total_tokens")
            except (KeyError, ValueError, TypeError):
                general(obj)
                continue
            if (
                type(model) is not str
                or not model
                or type(inp) is not int
                or type(out) is not int
                or type(cached) is not int
                # inp < 0 needs no test of its own: it fails cached < 0 or cached > inp.
                or out < 0
                or cached < 0
                or cached > inp
                or type(usage) is not dict
            ):
                general(obj)
                continue
            if total is not None and total != inp + out:
                inconsistent += 1
            cost: Decimal | None = None
            tier: Tier | None = "standard"
            if "cost" in obj or "cost_usd" in obj:
                cost = _record_cost(obj, cents)
                if cost is not None:
                    tier = None
                elif obj.get("cost") is not None or obj.get("cost_usd") is not None:
                    general(obj)  # a cost that is there but unusable: bad_cost
                    continue
            if tier is not None and ("batch" in obj or "service_tier" in obj):
                tier = _tier(obj.get("batch"), obj.get("service_tier"))
            group: Any = model
            if grouped:
                api_key = None
                if group_api_key and "api_key_id" in obj:
                    api_key = obj["api_key_id"]
                    if api_key is not None and type(api_key) is not str:
                        general(obj)
                        continue
                group = (model, project if group_project else None, api_key)
            key = (day, group, tier)
            sums = acc_get(key)
            if sums is None:
                acc[key] = [inp, cached, out, 1, ZERO if cost is None else cost]
            else:
                sums[0] += inp
                sums[1] += cached
                sums[2] += out
                sums[3] += 1
                if cost is not None:
                    sums[4] += cost
            counted += 1
        info = self.info
        info["records_counted"] += counted
        info["outside_window"] += outside
        if inconsistent:
            info["total_tokens_inconsistent"] = info.get("total_tokens_inconsistent", 0) + (
                inconsistent
            )

    # -- the general path (the specification) --------------------------------------------------

    def _get(self, obj: dict[str, Any], name: str, *auto: str) -> Any:
        path = self.paths.get(name)
        if path is not None:
            return _dig(obj, path)
        return _first(obj, auto)

    def _general(self, obj: Any) -> None:
        """Validate and count one parsed line, or count why it is skipped."""
        if type(obj) is not dict:
            self._skip("not_an_object")
            return
        response = obj.get("response")
        response = response if type(response) is dict else {}

        ts = self._get(obj, "timestamp", *_TIMESTAMP_KEYS)
        if ts is None and "timestamp" not in self.paths:
            ts = _first(response, ("created_at", "created"))
        if ts is None:
            self._skip("missing_timestamp")
            return
        day = self._day_of(ts)
        if day is None:
            self._skip("bad_timestamp")
            return
        if day < self.start or day >= self.end:
            self.info["outside_window"] += 1
            return

        project = self._get(obj, "project_id", "project_id") if self.need_project else None
        if project is not None:
            if type(project) is not str:
                self._skip("bad_project_id")
                return
            if self.project_filter and project not in self.project_filter:
                self._skip("other_project")
                return

        model = self._get(obj, "model", "model")
        if model is None and "model" not in self.paths:
            model = response.get("model")
        if model is None or model == "":
            self._skip("missing_model")
            return
        if type(model) is not str:
            self._skip("bad_model")
            return

        usage: dict[str, Any] = {}
        wrapped = False
        if obj.get("prompt_tokens") is not None or obj.get("input_tokens") is not None:
            usage = obj
        elif type(obj.get("usage")) is dict:
            usage = obj["usage"]
        elif type(response.get("usage")) is dict:
            usage = response["usage"]
            wrapped = True
        counts = self._token_counts(obj, usage)
        if isinstance(counts, str):
            self._skip(counts)
            return
        inp, cached, out, total = counts
        if total is not None and total != inp + out:
            self._bump_info("total_tokens_inconsistent")

        cost: Decimal | None = None
        raw_cost = self._get(obj, "cost", "cost")
        cents = self.cents
        if raw_cost is None and "cost" not in self.paths:
            raw_cost = obj.get("cost_usd")
            cents = False
        if raw_cost is not None:
            cost = _parse_cost(raw_cost, cents)
            if cost is None:
                self._skip("bad_cost")
                return

        tier: Tier | None = None
        if cost is None:
            service_tier = self._get(obj, "service_tier", "service_tier")
            if service_tier is None and "service_tier" not in self.paths and wrapped:
                service_tier = response.get("service_tier")
            tier = _tier(self._get(obj, "batch", "batch"), service_tier)

        api_key = self._get(obj, "api_key_id", "api_key_id") if self.group_api_key else None
        if api_key is not None and type(api_key) is not str:
            self._skip("bad_api_key_id")
            return

        group: Any = model
        if self.group_project or self.group_api_key:
            group = (model, project if self.group_project else None, api_key)
        sums = self.acc.setdefault((day, group, tier), [0, 0, 0, 0, ZERO])
        sums[0] += inp
        sums[1] += cached
        sums[2] += out
        sums[3] += 1
        if cost is not None:
            sums[4] += cost
        self.info["records_counted"] += 1

    def _token_counts(
        self, obj: dict[str, Any], usage: dict[str, Any]
    ) -> tuple[int, int, int, Any] | str:
        """(input, cached, output, raw total) from ``usage`` or the mapped paths, or a skip reason.

        The output count is read from the pair the input came from: ``completion_tokens`` with
        ``prompt_tokens`` (Chat Completions), ``output_tokens`` with ``input_tokens`` (Responses).
        """
        paths = self.paths

        def pick(name: str, *auto: str) -> Any:
            path = paths.get(name)
            return _dig(obj, path) if path is not None else _first(usage, auto)

        chat = usage.get("prompt_tokens") is not None
        raw_in = pick("input_tokens", "prompt_tokens" if chat else "input_tokens")
        if raw_in is None:
            return "missing_tokens"
        raw_out = pick("output_tokens", "completion_tokens" if chat else "output_tokens")
        raw_cached = pick("cached_tokens", "cached_tokens")
        if raw_cached is None and "cached_tokens" not in paths:
            details = _first(usage, ("prompt_tokens_details", "input_tokens_details"))
            if type(details) is dict:
                raw_cached = details.get("cached_tokens")
        inp = _tokens(raw_in)
        if isinstance(inp, str):
            return inp
        out = 0 if raw_out is None else _tokens(raw_out)
        if isinstance(out, str):
            return out
        cached = 0 if raw_cached is None else _tokens(raw_cached)
        if isinstance(cached, str):
            return cached
        if cached > inp:
            return "cached_exceeds_input"
        if raw_out is None:
            # Embeddings usage has no output side: not an error, but worth reporting.
            self._bump_info("output_tokens_missing")
        return inp, cached, out, pick("total_tokens", "total_tokens")

    # -- timestamps ------------------------------------------------------------------------------

    def _day_of(self, ts: Any) -> date | None:
        """The UTC day of an ISO string or epoch seconds/milliseconds, or None if unparseable."""
        if type(ts) is str:
            if ts[4:5] != "-" and _NUMERIC.fullmatch(ts):
                return self._epoch_day(float(ts) if "." in ts else int(ts))
            try:
                dt = datetime.fromisoformat(ts)
            except ValueError:
                return None
            return dt.date() if dt.tzinfo is UTC else self._iso_day(dt, ts)
        if type(ts) is int or type(ts) is float:
            return self._epoch_day(ts)
        return None

    def _epoch_day(self, value: float) -> date | None:
        try:
            # Seconds reach 1e11 only in the year 5138; milliseconds passed it in 1973.
            seconds = value / 1000 if abs(value) > 1e11 else value
            index = int(seconds // 86400)
        except (OverflowError, ValueError):
            return None
        if index in self.epoch_days:
            return self.epoch_days[index]
        try:
            day: date | None = _EPOCH + timedelta(days=index)
        except OverflowError:
            day = None
        if len(self.epoch_days) > 100_000:
            self.epoch_days.clear()
        self.epoch_days[index] = day
        return day

    def _iso_day(self, dt: datetime, ts: str) -> date | None:
        """UTC day of a parsed ISO timestamp that is not plain UTC."""
        try:
            if dt.tzinfo is not None:
                return (dt - dt.utcoffset()).date()  # type: ignore[operator]
            if self.zone is None:
                return dt.date()
            # The UTC day only changes on whole local minutes (zone offsets are whole minutes
            # for any date this job will meet), so cache per local minute: cheap and bounded.
            minute = ts[:16]
            day = self.local_minutes.get(minute)
            if day is None:
                day = dt.replace(tzinfo=self.zone).astimezone(UTC).date()
                if len(self.local_minutes) > 100_000:
                    self.local_minutes.clear()
                if len(ts) >= 16 and ts[10] in "T ":
                    self.local_minutes[minute] = day
            return day
        except OverflowError:
            return None

    # -- result ---------------------------------------------------------------------------------

    def totals(self, pricer: Pricer, namer: ModelNamer | None) -> UsageTotals:
        """Price the cost-less aggregates once each and build the result."""
        groups: dict[UsageKey, list[Any]] = {}
        unpriced: dict[str, list[int]] = {}
        for (day, group, tier), (inp, cached, out, n, cost) in self.acc.items():
            model, project, api_key = (group, None, None) if type(group) is str else group
            sums = groups.setdefault(UsageKey(day, model, project, api_key), [0, 0, 0, 0, ZERO])
            sums[0] += inp
            sums[1] += cached
            sums[2] += out
            sums[3] += n
            if tier is None:
                sums[4] += cost
                continue
            usage = Usage(input_tokens=inp, cached_tokens=cached, output_tokens=out, requests=n)
            price = pricer.cost(model, day, tier, usage)
            name = namer.normalize(model) if namer is not None else model
            if price is None and name != model:
                # The table may list only the alias of a logged snapshot name.
                price = pricer.cost(name, day, tier, usage)
            if price is None:
                missing = unpriced.setdefault(name, [0, 0, 0, 0])
                for i, value in enumerate((inp, cached, out, n)):
                    missing[i] += value
            else:
                sums[4] += price
        return UsageTotals(
            groups={key: Usage(*groups[key]) for key in sorted(groups, key=_group_order)},
            skipped=dict(sorted(self.skipped.items())),
            unpriced={name: Usage(i, c, o, n) for name, (i, c, o, n) in sorted(unpriced.items())},
            info=dict(self.info),
        )
