"""What one NDJSON usage log line means: the options, :class:`LogRecord`, and the parser.

:meth:`RecordParser.check` is the specification of a valid record: it turns one parsed JSON
value into a :class:`LogRecord` or names why the line is skipped. The counting fast path in
:mod:`recon_job.sources.ndjson.source` only ever accepts records this parser accepts, the same way.

Three record shapes are understood without configuration (flat Chat Completions style, flat
Responses style, and a ``usage`` object as the APIs return it); ``NdjsonOptions.fields`` maps any
other shape.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from recon_job.errors import ConfigError
from recon_job.models import EPOCH, RECORD_FIELDS, Tier, Window, tier_of

#: Canonical field names a ``NdjsonOptions.fields`` mapping may map to a dotted record path.
CANONICAL_FIELDS = RECORD_FIELDS
GROUP_FIELDS = frozenset({"model", "project_id", "api_key_id"})

#: What :meth:`RecordParser.check` returns for a valid record dated outside the window: not a
#: skip reason, since nothing is wrong with it.
OUTSIDE_WINDOW = "outside_window"

_NUMERIC = re.compile(r"-?\d+(?:\.\d+)?")
_TIMESTAMP_KEYS = ("timestamp", "ts", "time", "created_at", "created")


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
    #: Worker processes for large logs: 0 = one per CPU, 1 = always read in-process.
    workers: int = 0

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
        if type(self.workers) is not int or self.workers < 0:
            problems.append(
                f"log reading workers must be 0 (one per CPU) or more, not {self.workers!r}"
            )
        if problems:
            raise ConfigError(problems)


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One valid usage record of the logs, as the reconciliation counts it."""

    #: UTC day the request was made.
    day: date
    #: The timestamp as logged (ISO string, or epoch seconds or milliseconds).
    timestamp: str | int | float
    #: Model name as logged (not normalised).
    model: str
    #: Input tokens, cached ones included.
    input_tokens: int
    #: Input tokens served from the prompt cache.
    cached_tokens: int
    #: Output tokens; 0 when the record has none (embeddings).
    output_tokens: int
    #: The record's own cost in USD (``cents`` converted); None when it logged none.
    cost: Decimal | None
    #: Billing tier: ``standard``, ``batch``, ``flex`` or ``priority``.
    tier: Tier
    #: Request id, when logged as a string.
    request_id: str | None
    #: Project id, when logged as a string.
    project_id: str | None
    #: API key id, when logged as a string.
    api_key_id: str | None


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


def parse_cost(value: Any, cents: bool) -> Decimal | None:
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


def record_cost(obj: dict[str, Any], cents: bool) -> Decimal | None:
    """The record's own USD cost from ``cost`` (in ``cents`` if so configured) or ``cost_usd``.

    None when there is none, or when the one there is unusable (the caller tells which).
    """
    raw = obj.get("cost")
    if raw is not None:
        return parse_cost(raw, cents)
    raw = obj.get("cost_usd")
    return None if raw is None else parse_cost(raw, False)


def _tokens(value: Any) -> int | str:
    """A token count, or the skip reason for an unusable one."""
    if type(value) is int:
        return value if value >= 0 else "negative_tokens"
    if type(value) is float and value.is_integer():
        return int(value) if value >= 0 else "negative_tokens"
    return "bad_tokens"


def _bump(notes: MutableMapping[str, int], name: str) -> None:
    notes[name] = notes.get(name, 0) + 1


class RecordParser:
    """Validates parsed log lines against the options; keeps small caches of day lookups."""

    def __init__(self, options: NdjsonOptions, window: Window | None) -> None:
        self.window = window
        zone = ZoneInfo(options.timezone)
        self.zone: ZoneInfo | None = None if options.timezone == "UTC" else zone
        self.paths = {name: tuple(path.split(".")) for name, path in options.fields.items()}
        self.cents = options.cost_unit == "cents"
        self.group_project = "project_id" in options.group_by
        self.group_api_key = "api_key_id" in options.group_by
        self.project_filter = frozenset(options.project_ids)
        self.need_project = self.group_project or bool(self.project_filter)
        self.epoch_days: dict[int, date | None] = {}
        self.local_minutes: dict[str, date] = {}

    def _get(self, obj: dict[str, Any], name: str, *auto: str) -> Any:
        path = self.paths.get(name)
        if path is not None:
            return _dig(obj, path)
        return _first(obj, auto)

    def check(self, obj: Any, notes: MutableMapping[str, int] | None) -> LogRecord | str:
        """The record in one parsed line, ``OUTSIDE_WINDOW``, or the reason to skip the line.

        For a record returned, oddities that do not invalidate it (``total_tokens`` that
        disagree, no output count) are counted in ``notes`` when given.
        """
        if type(obj) is not dict:
            return "not_an_object"
        response = obj.get("response")
        response = response if type(response) is dict else {}

        ts = self._get(obj, "timestamp", *_TIMESTAMP_KEYS)
        if ts is None and "timestamp" not in self.paths:
            ts = _first(response, ("created_at", "created"))
        if ts is None:
            return "missing_timestamp"
        day = self.day_of(ts)
        if day is None:
            return "bad_timestamp"
        window = self.window
        if window is not None and (day < window.start or day >= window.end):
            return OUTSIDE_WINDOW

        project = self._get(obj, "project_id", "project_id")
        if project is not None and type(project) is not str:
            if self.need_project:
                return "bad_project_id"
            project = None
        if self.project_filter and project is not None and project not in self.project_filter:
            return "other_project"

        model = self._get(obj, "model", "model")
        if model is None and "model" not in self.paths:
            model = response.get("model")
        if model is None or model == "":
            return "missing_model"
        if type(model) is not str:
            return "bad_model"

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
            return counts
        inp, cached, out, total = counts

        cost: Decimal | None = None
        raw_cost = self._get(obj, "cost", "cost")
        cents = self.cents
        if raw_cost is None and "cost" not in self.paths:
            raw_cost = obj.get("cost_usd")
            cents = False
        if raw_cost is not None:
            cost = parse_cost(raw_cost, cents)
            if cost is None:
                return "bad_cost"

        service_tier = self._get(obj, "service_tier", "service_tier")
        if service_tier is None and "service_tier" not in self.paths and wrapped:
            service_tier = response.get("service_tier")
        tier = tier_of(self._get(obj, "batch", "batch") is True, service_tier)

        api_key = self._get(obj, "api_key_id", "api_key_id")
        if api_key is not None and type(api_key) is not str:
            if self.group_api_key:
                return "bad_api_key_id"
            api_key = None

        request_id = self._get(obj, "request_id", "request_id")
        output = 0 if out is None else out
        if notes is not None:
            if total is not None and total != inp + output:
                _bump(notes, "total_tokens_inconsistent")
            if out is None:
                # Embeddings usage has no output side: not an error, but worth reporting.
                _bump(notes, "output_tokens_missing")
        return LogRecord(
            day=day,
            timestamp=ts,
            model=model,
            input_tokens=inp,
            cached_tokens=cached,
            output_tokens=output,
            cost=cost,
            tier=tier,
            request_id=request_id if type(request_id) is str else None,
            project_id=project,
            api_key_id=api_key,
        )

    def _token_counts(
        self, obj: dict[str, Any], usage: dict[str, Any]
    ) -> tuple[int, int, int | None, Any] | str:
        """(input, cached, output or None, raw total) from ``usage`` or the mapped paths.

        Or a skip reason. The output count is read from the pair the input came from:
        ``completion_tokens`` with ``prompt_tokens`` (Chat Completions), ``output_tokens`` with
        ``input_tokens`` (Responses).
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
        out = None if raw_out is None else _tokens(raw_out)
        if isinstance(out, str):
            return out
        cached = 0 if raw_cached is None else _tokens(raw_cached)
        if isinstance(cached, str):
            return cached
        if cached > inp:
            return "cached_exceeds_input"
        return inp, cached, out, pick("total_tokens", "total_tokens")

    # -- timestamps ------------------------------------------------------------------------------

    def day_of(self, ts: Any) -> date | None:
        """The UTC day of an ISO string or epoch seconds/milliseconds, or None if unparseable."""
        if type(ts) is str:
            if ts[4:5] != "-" and _NUMERIC.fullmatch(ts):
                return self.epoch_day(float(ts) if "." in ts else int(ts))
            try:
                dt = datetime.fromisoformat(ts)
            except ValueError:
                return None
            return dt.date() if dt.tzinfo is UTC else self.iso_day(dt, ts)
        if type(ts) is int or type(ts) is float:
            return self.epoch_day(ts)
        return None

    def epoch_day(self, value: float) -> date | None:
        """The UTC day of epoch seconds or milliseconds, or None when out of range."""
        try:
            # Seconds reach 1e11 only in the year 5138; milliseconds passed it in 1973.
            seconds = value / 1000 if abs(value) > 1e11 else value
            index = int(seconds // 86400)
        except (OverflowError, ValueError):
            return None
        if index in self.epoch_days:
            return self.epoch_days[index]
        try:
            day: date | None = EPOCH + timedelta(days=index)
        except OverflowError:
            day = None
        if len(self.epoch_days) > 100_000:
            self.epoch_days.clear()
        self.epoch_days[index] = day
        return day

    def iso_day(self, dt: datetime, ts: str) -> date | None:
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
