"""What one NDJSON usage log line means: the options, :class:`LogRecord`, and the parser.

:meth:`RecordParser.check` is the specification of a valid record: it turns one parsed JSON
value into a :class:`LogRecord` or names why the line is skipped. The counting fast path in
:mod:`recon_job.sources.ndjson.source` only ever accepts records this parser accepts, the same way.

Three record shapes are understood without configuration (flat Chat Completions style, flat
Responses style, and a ``usage`` object as the APIs return it); ``NdjsonOptions.fields`` maps any
other shape. Every record belongs to a usage family (``family`` or ``endpoint`` field, else its
model name, else completions); what each family's record counts beyond its tokens is read by
:mod:`~recon_job.sources.ndjson.quantities`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from zoneinfo import ZoneInfo

from recon_job.families import COMPLETIONS, PRODUCT_MODELS, SPECS, detect_family
from recon_job.models import EMPTY, EPOCH, Tier, Usage, Window, tier_of
from recon_job.sources.base import MAX_COST_USD
from recon_job.sources.ndjson.quantities import (
    CLASS_FIELDS,
    INPUT_DETAILS,
    OUTPUT_DETAILS,
    Skip,
    family_quantities,
    token_classes,
    whole,
)

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
    #: Count a ``request_id`` logged more than once on a UTC day once (see
    #: :mod:`~recon_job.sources.ndjson.source`); False counts every line.
    dedupe: bool = True
    #: The most distinct groups (day × family × model × project × key) one window may hold
    #: (``reconcile.max_groups``); one more stops the scan with a LogSourceError.
    max_groups: int = 10_000
    #: Where these options are set, as error messages name it: ``logs`` or ``sources.NAME``.
    setting: str = "logs"


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
    #: Usage family (:data:`recon_job.families.FAMILIES`).
    family: str = COMPLETIONS
    #: What the record counts besides ``input``/``cached``/``output_tokens``: token classes,
    #: images, characters, seconds, sessions, calls, stored bytes (requests and cost left 0).
    extra: Usage = EMPTY
    #: Requests the record stands for: 1, or 0 for the families OpenAI counts none of
    #: (vector stores, code-interpreter sessions, file searches).
    requests: int = 1
    #: Image ``size`` and ``quality`` as logged (``1024x1024/hd``; the size alone without a
    #: quality), the image price's variant; None for other records.
    variant: str | None = None

    @property
    def usage(self) -> Usage:
        """Everything the record counts, as one :class:`~recon_job.models.Usage` (cost 0)."""
        return replace(
            self.extra,
            input_tokens=self.input_tokens,
            cached_tokens=self.cached_tokens,
            output_tokens=self.output_tokens,
            requests=self.requests,
        )


#: The (input, output) token-count keys of the record shapes the APIs log, in the order they are
#: tried: Chat Completions, then Responses. The fast path in ``source`` reads them here too.
TOKEN_KEYS: tuple[tuple[str, str], ...] = (
    ("prompt_tokens", "completion_tokens"),
    ("input_tokens", "output_tokens"),
)
#: The objects of a usage that may hold its ``cached_tokens``, when it has none of its own, in
#: the order they are tried (the first two of :data:`INPUT_DETAILS`: the fast path reads these;
#: the Realtime API's ``input_token_details`` goes to the general path).
CACHED_DETAILS: tuple[str, ...] = INPUT_DETAILS[:2]
_INPUT_KEYS = tuple(input_key for input_key, _ in TOKEN_KEYS)


_Skip = Skip
#: Every details object a usage may hold token classes in.
DETAILS = INPUT_DETAILS + OUTPUT_DETAILS
_DETAILS_KEYS = frozenset(DETAILS)
#: Families whose records count nothing but tokens (and requests).
_TOKEN_ONLY = frozenset({"completions", "embeddings", "moderations"})


@dataclass(frozen=True, slots=True)
class _Tokens:
    """A record's token counts, as :meth:`RecordParser.check` reads them."""

    input: int
    cached: int
    #: None when the record has no output count (embeddings).
    output: int | None
    #: ``total_tokens`` as logged (any JSON value), only compared, never counted.
    total: Any
    #: False when the record has no token counts at all (a family that needs none).
    present: bool = True

    def note(self, notes: MutableMapping[str, int], family: str) -> None:
        """Count the oddities that do not invalidate a record into ``notes``."""
        if self.total is not None and self.total != self.input + (self.output or 0):
            _bump(notes, "total_tokens_inconsistent")
        if self.output is None and family == COMPLETIONS:
            # A completion without an output count: not an error, but worth reporting.
            _bump(notes, "output_tokens_missing")


#: The token counts of a record that has none (a family that needs none).
_NO_TOKENS = _Tokens(0, 0, 0, None, present=False)


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


_tokens = whole


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
        #: Family per model name, and per (family, endpoint) field values (see family_of).
        self.model_families: dict[Any, str | None] = {}
        #: True when a token class is mapped to a path of its own.
        self.class_paths = any(name in self.paths for name in CLASS_FIELDS)
        self.marked_families: dict[Any, str | None] = {}

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
        found = self._family_and_model(obj, response)
        if isinstance(found, _Skip):
            return found.reason
        family, model = found
        spec = SPECS[family]
        usage, wrapped = _usage(obj, response)
        tokens = self._token_counts(obj, usage, required=spec.counts_tokens)
        if isinstance(tokens, _Skip):
            return tokens.reason
        extra = self._extra(obj, usage, family, tokens)
        if isinstance(extra, _Skip):
            return extra.reason
        cost = self._cost(obj)
        if isinstance(cost, _Skip):
            return cost.reason
        api_key = self._id(obj, "api_key_id", strict=self.group_api_key)
        if isinstance(api_key, _Skip):
            return api_key.reason
        if notes is not None:
            tokens.note(notes, family)
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
            project_id=project if "project_id" in spec.group_by else None,
            api_key_id=api_key if "api_key_id" in spec.group_by else None,
            family=family,
            extra=extra[0],
            requests=1 if "requests" in spec.deciding else 0,
            variant=extra[1],
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

    def family_of(self, family: Any, endpoint: Any, model: str | None) -> str | None:
        """:func:`~recon_job.families.detect_family`, once per distinct value (cached).

        A ``family`` or ``endpoint`` that is not a string names nothing known (None). Without
        either, ``model`` decides; with one, the model is not needed (None is fine).
        """
        if family is None and endpoint is None:
            key: Any = model
            cache = self.model_families
        else:
            key, cache = (family, endpoint), self.marked_families
        try:
            return cache[key]
        except KeyError:
            pass
        except TypeError:
            return None  # unhashable: a list or an object
        if (family is not None and type(family) is not str) or (
            endpoint is not None and type(endpoint) is not str
        ):
            found = None
        else:
            found = detect_family(family=family, endpoint=endpoint, model=model or "")
        if len(cache) > 10_000:
            cache.clear()
        cache[key] = found
        return found

    def _family_and_model(
        self, obj: dict[str, Any], response: dict[str, Any]
    ) -> tuple[str, str] | _Skip:
        """The record's family and model; families reported per project take their product's
        name as model (:data:`~recon_job.families.PRODUCT_MODELS`), logged or not."""
        if self.paths:
            family = self._get(obj, "family", "family")
            endpoint = self._get(obj, "endpoint", "endpoint")
        else:
            family, endpoint = obj.get("family"), obj.get("endpoint")
        if family is not None or endpoint is not None:
            found = self.family_of(family, endpoint, None)
            if found is None:
                return _Skip("bad_family")
            product = PRODUCT_MODELS.get(found)
            if product is not None:
                return found, product
            model = self._model(obj, response)
            return model if isinstance(model, _Skip) else (found, model)
        model = self._model(obj, response)
        if isinstance(model, _Skip):
            return model
        found = self.family_of(None, None, model)
        assert found is not None  # a model name always names a family
        return found, PRODUCT_MODELS.get(found, model)

    def _extra(
        self, obj: dict[str, Any], usage: dict[str, Any], family: str, tokens: _Tokens
    ) -> tuple[Usage, str | None] | _Skip:
        """Token classes and the family's own quantity (see :mod:`.quantities`)."""
        paths = self.paths

        def pick(name: str, auto: Any) -> Any:
            path = paths.get(name)
            return _dig(obj, path) if path is not None else auto

        classes = EMPTY
        nested = usage is not obj
        if self.class_paths or not _DETAILS_KEYS.isdisjoint(usage):
            out = 0 if tokens.output is None else tokens.output
            found = token_classes(pick, usage, family, (tokens.input, tokens.cached, out), nested)
            if isinstance(found, _Skip):
                return found
            classes = found
        if family in _TOKEN_ONLY:
            return classes, None
        own = family_quantities(pick, obj, usage, family, tokens.present)
        if isinstance(own, _Skip):
            return own
        quantities, variant = own
        return (quantities if classes is EMPTY else classes + quantities), variant

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

    def _token_counts(
        self, obj: dict[str, Any], usage: dict[str, Any], *, required: bool = True
    ) -> _Tokens | _Skip:
        """The token counts from ``usage`` or the mapped paths.

        ``required``: the family counts tokens, so a record without an input count is skipped
        (``missing_tokens``); other families' records may carry none (all zero).

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
            if required or pick("output_tokens", output_key) is None:
                return _Skip("missing_tokens") if required else _NO_TOKENS
            raw_in = 0
        raw_out = pick("output_tokens", output_key)
        raw_cached = pick("cached_tokens", "cached_tokens")
        if raw_cached is None and "cached_tokens" not in paths:
            details = _first(usage, INPUT_DETAILS if usage is not obj else CACHED_DETAILS)
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
        return _Tokens(inp, cached, out, pick("total_tokens", "total_tokens"), present=True)

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
