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
from zoneinfo import ZoneInfo

from recon_job.models import EPOCH, Tier, Window, tier_of
from recon_job.sources.base import MAX_COST_USD, MAX_TOKENS

#: What :meth:`RecordParser.check` returns for a valid record dated outside the window: not a
#: skip reason, since nothing is wrong with it.
OUTSIDE_WINDOW = "outside_window"

_NUMERIC = re.compile(r"-?\d+(?:\.\d+)?")
_MAX_COST_CENTS = MAX_COST_USD * 100
_TIMESTAMP_KEYS = ("timestamp", "ts", "time", "created_at", "created")


@dataclass(frozen=True)
class NdjsonOptions:
    """How to find and read the local usage logs.

    Validated data: the rules (a known zone, canonical field names with dotted paths, the
    grouping) are checked on the settings they are built from
    (:class:`recon_job.config.LogsSettings`).
    """

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


#: The (input, output) token-count keys of the record shapes the APIs log, in the order they are
#: tried: Chat Completions, then Responses. The fast path in ``source`` reads them here too.
TOKEN_KEYS: tuple[tuple[str, str], ...] = (
    ("prompt_tokens", "completion_tokens"),
    ("input_tokens", "output_tokens"),
)
#: The objects of a usage that may hold its ``cached_tokens``, when it has none of its own, in
#: the order they are tried.
CACHED_DETAILS: tuple[str, ...] = ("prompt_tokens_details", "input_tokens_details")
_INPUT_KEYS = tuple(input_key for input_key, _ in TOKEN_KEYS)


@dataclass(frozen=True, slots=True)
class _Skip:
    """What a step of :meth:`RecordParser.check` returns instead of its value: the line's verdict.

    A skip reason, or ``OUTSIDE_WINDOW``. A class of its own because some steps' values are
    strings too (a model name, an id).
    """

    reason: str


@dataclass(frozen=True, slots=True)
class _Tokens:
    """A record's token counts, as :meth:`RecordParser.check` reads them."""

    input: int
    cached: int
    #: None when the record has no output count (embeddings).
    output: int | None
    #: ``total_tokens`` as logged (any JSON value), only compared, never counted.
    total: Any

    def note(self, notes: MutableMapping[str, int]) -> None:
        """Count the oddities that do not invalidate a record into ``notes``."""
        if self.total is not None and self.total != self.input + (self.output or 0):
            _bump(notes, "total_tokens_inconsistent")
        if self.output is None:
            # Embeddings usage has no output side: not an error, but worth reporting.
            _bump(notes, "output_tokens_missing")


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
    """USD as Decimal, or None when ``value`` is not a usable amount.

    Usable: finite, non-negative and below :data:`~recon_job.sources.base.MAX_COST_USD`;
    ``"1e999999"`` is not, and would overflow the sums it went into.
    """
    if type(value) is bool or not isinstance(value, int | float | str):
        return None
    try:
        # str() of a float is its shortest repr, so 0.1 becomes Decimal("0.1"), not the binary.
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    # Bounded before it is scaled (scaling 1e99999999999 overflows), and inline rather than
    # with cost_in_range: a fifth of the records of a typical log carry a cost.
    limit = _MAX_COST_CENTS if cents else MAX_COST_USD
    if not amount.is_finite() or amount < 0 or amount >= limit:
        return None
    return amount.scaleb(-2) if cents else amount


def record_cost(obj: dict[str, Any], cents: bool) -> Decimal | None:
    """The record's own USD cost from ``cost`` (in ``cents`` if so configured) or ``cost_usd``.

    None when there is none, or when the one there is unusable (the caller tells which).
    """
    raw, in_cents = _logged_cost(obj, cents)
    return None if raw is None else parse_cost(raw, in_cents)


def _logged_cost(obj: dict[str, Any], cents: bool) -> tuple[Any, bool]:
    """The record's own cost as logged, and whether it is in cents.

    ``cost`` is in the configured unit (``cents``); ``cost_usd``, read only when there is no
    ``cost``, is always USD.
    """
    raw = obj.get("cost")
    if raw is not None:
        return raw, cents
    return obj.get("cost_usd"), False


def _tokens(value: Any) -> int | _Skip:
    """A token count, or why it is unusable: not a whole number, or above ``MAX_TOKENS``."""
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is not int:
        return _Skip("bad_tokens")
    if value < 0:
        return _Skip("negative_tokens")
    return value if value <= MAX_TOKENS else _Skip("bad_tokens")


def _bump(notes: MutableMapping[str, int], name: str) -> None:
    notes[name] = notes.get(name, 0) + 1


def _usage(obj: dict[str, Any], response: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Where a record keeps its token counts, and whether that is inside its ``response``.

    The record itself when it has a flat input count, else its ``usage`` object, else its
    response's (a wrapped API response); an empty dict when it has none of them.
    """
    if _first(obj, _INPUT_KEYS) is not None:
        return obj, False
    usage = obj.get("usage")
    if type(usage) is dict:
        return usage, False
    usage = response.get("usage")
    if type(usage) is dict:
        return usage, True
    return {}, False


def _shape(usage: dict[str, Any]) -> tuple[str, str]:
    """The (input, output) keys of the first ``TOKEN_KEYS`` shape whose input ``usage`` has."""
    for input_key, output_key in TOKEN_KEYS:
        if usage.get(input_key) is not None:
            return input_key, output_key
    return TOKEN_KEYS[-1]


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
        disagree, no output count) are counted in ``notes`` when given. Each step returns its
        part of the record or a ``_Skip``; they run in the order their reasons take precedence.
        """
        if type(obj) is not dict:
            return "not_an_object"
        response = obj.get("response")
        response = response if type(response) is dict else {}
        when = self._when(obj, response)
        if isinstance(when, _Skip):
            return when.reason
        project = self._project(obj)
        if isinstance(project, _Skip):
            return project.reason
        model = self._model(obj, response)
        if isinstance(model, _Skip):
            return model.reason
        usage, wrapped = _usage(obj, response)
        tokens = self._token_counts(obj, usage)
        if isinstance(tokens, _Skip):
            return tokens.reason
        cost = self._cost(obj)
        if isinstance(cost, _Skip):
            return cost.reason
        api_key = self._id(obj, "api_key_id", strict=self.group_api_key)
        if isinstance(api_key, _Skip):
            return api_key.reason
        if notes is not None:
            tokens.note(notes)
        request_id = self._get(obj, "request_id", "request_id")
        return LogRecord(
            day=when[1],
            timestamp=when[0],
            model=model,
            input_tokens=tokens.input,
            cached_tokens=tokens.cached,
            output_tokens=0 if tokens.output is None else tokens.output,
            cost=cost,
            tier=self._tier(obj, response if wrapped else {}),
            request_id=request_id if type(request_id) is str else None,
            project_id=project,
            api_key_id=api_key,
        )

    # -- the steps of check -------------------------------------------------------------------

    def _when(self, obj: dict[str, Any], response: dict[str, Any]) -> tuple[Any, date] | _Skip:
        """The timestamp as logged and its UTC day, when in the window."""
        ts = self._get(obj, "timestamp", *_TIMESTAMP_KEYS)
        if ts is None and "timestamp" not in self.paths:
            ts = _first(response, ("created_at", "created"))
        if ts is None:
            return _Skip("missing_timestamp")
        day = self.day_of(ts)
        if day is None:
            return _Skip("bad_timestamp")
        window = self.window
        if window is not None and (day < window.start or day >= window.end):
            return _Skip(OUTSIDE_WINDOW)
        return ts, day

    def _project(self, obj: dict[str, Any]) -> str | _Skip | None:
        """The project id, when it passes the project filter."""
        project = self._id(obj, "project_id", strict=self.need_project)
        if type(project) is str and self.project_filter and project not in self.project_filter:
            return _Skip("other_project")
        return project

    def _id(self, obj: dict[str, Any], name: str, *, strict: bool) -> str | _Skip | None:
        """A string id; one of another type skips the line when ``strict``, else reads as None.

        Strict means the id matters: it is grouped by (or filtered on, for the project).
        """
        value = self._get(obj, name, name)
        if value is None or type(value) is str:
            return value
        return _Skip(f"bad_{name}") if strict else None

    def _model(self, obj: dict[str, Any], response: dict[str, Any]) -> str | _Skip:
        """The model name as logged."""
        model = self._get(obj, "model", "model")
        if model is None and "model" not in self.paths:
            model = response.get("model")
        if model is None or model == "":
            return _Skip("missing_model")
        # A NUL is no part of a model name, and PostgreSQL text cannot hold one.
        if type(model) is not str or "\x00" in model:
            return _Skip("bad_model")
        return model

    def _token_counts(self, obj: dict[str, Any], usage: dict[str, Any]) -> _Tokens | _Skip:
        """The token counts from ``usage`` or the mapped paths.

        The output count is read from the pair the input came from (``TOKEN_KEYS``):
        ``completion_tokens`` with ``prompt_tokens`` (Chat Completions), ``output_tokens`` with
        ``input_tokens`` (Responses).
        """
        paths = self.paths

        def pick(name: str, *auto: str) -> Any:
            path = paths.get(name)
            return _dig(obj, path) if path is not None else _first(usage, auto)

        input_key, output_key = _shape(usage)
        raw_in = pick("input_tokens", input_key)
        if raw_in is None:
            return _Skip("missing_tokens")
        raw_out = pick("output_tokens", output_key)
        raw_cached = pick("cached_tokens", "cached_tokens")
        if raw_cached is None and "cached_tokens" not in paths:
            details = _first(usage, CACHED_DETAILS)
            if type(details) is dict:
                raw_cached = details.get("cached_tokens")
        inp = _tokens(raw_in)
        if isinstance(inp, _Skip):
            return inp
        out = None if raw_out is None else _tokens(raw_out)
        if isinstance(out, _Skip):
            return out
        cached = 0 if raw_cached is None else _tokens(raw_cached)
        if isinstance(cached, _Skip):
            return cached
        if cached > inp:
            return _Skip("cached_exceeds_input")
        return _Tokens(inp, cached, out, pick("total_tokens", "total_tokens"))

    def _cost(self, obj: dict[str, Any]) -> Decimal | _Skip | None:
        """The record's own cost in USD; None when it logged none."""
        path = self.paths.get("cost")
        if path is not None:
            raw, cents = _dig(obj, path), self.cents
        else:
            raw, cents = _logged_cost(obj, self.cents)
        if raw is None:
            return None
        cost = parse_cost(raw, cents)
        return _Skip("bad_cost") if cost is None else cost

    def _tier(self, obj: dict[str, Any], response: dict[str, Any]) -> Tier:
        """The billing tier; ``response`` is where a wrapped record's ``service_tier`` is."""
        service_tier = self._get(obj, "service_tier", "service_tier")
        if service_tier is None and "service_tier" not in self.paths:
            service_tier = response.get("service_tier")
        return tier_of(self._get(obj, "batch", "batch") is True, service_tier)

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
