"""The SQL source's one aggregate query: building it per dialect, and folding its result rows.

:class:`AggregateQuery` writes the ``SELECT`` that groups a usage table by UTC day × model
[× project × API key] × tier inputs × skip reason in the database, with the day expression the
column type and dialect need (see :mod:`~recon_job.sources.sql.source` on timestamps).
:class:`QueryTotals` reads its rows back, in the column order the query sets, into per-group sums
for :func:`~recon_job.sources.aggregate.price_aggregates`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from recon_job.errors import LogSourceError
from recon_job.families import COMPLETIONS, EXTRA_QUANTITIES, detect_family
from recon_job.modelnames import ModelNamer
from recon_job.models import EPOCH, ZERO, Tier, UsageTotals, Window, tier_of
from recon_job.sources.aggregate import AggregateKey, price_aggregates
from recon_job.sources.base import MAX_COST_USD, MAX_TOKENS, Pricer
from recon_job.sources.groups import DIMENSIONS, GroupLimit
from recon_job.sources.ndjson.quantities import split_class
from recon_job.sources.sql.dialects import dialect_of

if TYPE_CHECKING:
    from recon_job.sources.sql.options import SqlTableOptions

TimestampKind = Literal["instant", "wall", "sqlite_text", "epoch"]

_TRUE_TEXT = frozenset({"1", "t", "true", "y", "yes"})
#: MAX_TOKENS written into the query (a constant: it keeps the plan the same for every window).
_MAX_TOKENS: sa.ColumnElement[Any] = sa.literal_column(str(MAX_TOKENS))
#: Optional columns grouped by as they are: family and endpoint (the family is detected in
#: Python, once per distinct value), image size and quality (the price variant).
GROUPED_EXTRA: tuple[str, ...] = ("family", "endpoint", "size", "quality")
#: Optional columns summed: the token classes (audio and image input counted with their cached
#: part, as the APIs report them) and the families' quantities. ``usage_bytes`` is a level:
#: its MAX is taken, never its SUM.
SUMMED_EXTRA: tuple[str, ...] = EXTRA_QUANTITIES
#: The quantity columns: a row with one of them set needs no token counts.
_QUANTITIES = ("images", "characters", "seconds", "sessions", "calls", "usage_bytes")
_BYTES = 17  # usage_bytes in the fields of Usage: a level, the largest kept
# Result labels, also used in GROUP BY: grouping by the output name avoids repeating an
# expression's bind parameters there (PostgreSQL would see two different parameters).
_DAY, _REASON, _PRICED = "recon_day", "recon_skip", "recon_has_cost"
#: A repeated row's number within its day and request id (``AggregateQuery.repeats``).
_NUMBER = "recon_rn"


class AggregateQuery:
    """Builds the aggregate SELECT for one table on one dialect."""

    def __init__(
        self, options: SqlTableOptions, table: sa.Table | sa.Subquery, dialect: str
    ) -> None:
        self.options = options
        self.table = table
        self.dialect = "mysql" if dialect == "mariadb" else dialect
        try:
            #: The dialect's day and minute SQL (:data:`~recon_job.sources.sql.dialects.DIALECTS`).
            self.sql = dialect_of(self.dialect)
        except KeyError:
            raise LogSourceError(
                f"the SQL source cannot compute a UTC day on {dialect!r} databases",
                reason="database_driver",
            ) from None
        by_lower = {c.name.lower(): c for c in table.columns}
        self.col: dict[str, sa.ColumnElement[Any]] = {
            canonical: table.c[name] if name in table.c else by_lower[name.lower()]
            for canonical, name in options.columns.items()
        }
        self.zone = ZoneInfo(options.timestamp_timezone)
        self.kind = self._timestamp_kind()
        #: What a day *number* from the day expression counts from (epoch, or the window start
        #: for the MySQL/MariaDB zone ``CASE``); dates and ISO text need no base.
        self.day_base = EPOCH if self.kind == "epoch" else None

    def _timestamp_kind(self) -> TimestampKind:
        column = self.col["timestamp"]
        kind = column.type
        if isinstance(kind, sa.Integer):
            return "epoch"
        if self.sql.text_timestamps:
            return "sqlite_text"
        if isinstance(kind, sa.DateTime):
            return "instant" if self.sql.instant(kind) else "wall"
        raise LogSourceError(
            f"timestamp column {self.options.columns['timestamp']!r} of "
            f"{self.options.subject} has type {kind}; the SQL source needs a timestamp/datetime "
            "column or an integer of Unix epoch seconds",
            reason="column_type",
        )

    def where(self, window: Window) -> list[sa.ColumnElement[bool]]:
        """The rows of ``window``: the timestamp range, the filter, the projects wanted."""
        col = self.col
        ts = col["timestamp"]
        start, end = self._bounds(window)
        where: list[sa.ColumnElement[bool]] = [ts >= start, ts < end]
        if self.options.filter is not None:
            where.append(sa.literal_column(f"({self.options.filter})", sa.Boolean))
        if self.options.project_ids:
            project = col["project_id"]
            where.append(sa.or_(project.in_(self.options.project_ids), project.is_(None)))
        return where

    def select(self, window: Window, day: sa.ColumnElement[Any] | None = None) -> sa.Select[Any]:
        """The whole query: day, groups, tier inputs, skip reason, sums.

        ``day`` replaces the UTC day expression as the first column (the series' minute).
        """
        col = self.col
        where = self.where(window)

        # Row order: day, cost flag, skip reason, model, [project], [api key], [batch],
        # [service tier], then the sums (see QueryTotals.add_rows). Computed columns are labelled
        # and grouped by their label.
        has_cost: sa.ColumnElement[Any] = sa.literal_column("0")
        if "cost" in col:
            has_cost = sa.case((col["cost"].is_(None), 0), else_=1)
        columns: list[sa.ColumnElement[Any]] = [
            (self._day(window) if day is None else day).label(_DAY),
            has_cost.label(_PRICED),
            self._reason().label(_REASON),
            col["model"],
        ]
        for name in ("project_id", "api_key_id"):
            if name in self.options.group_by:
                columns.append(col[name])
        # Raw columns (not a tier CASE): PostgreSQL has statistics for them, and with opaque
        # expressions it overestimates the groups and sorts instead of hashing, 2-3x slower.
        columns += [col[name] for name in ("batch", "service_tier") if name in col]
        columns += [col[name] for name in GROUPED_EXTRA if name in col]
        grouping = [sa.literal_column(c.name) if isinstance(c, sa.Label) else c for c in columns]
        cached = (
            sa.func.coalesce(self._summed(col["cached_tokens"]), 0)
            if "cached_tokens" in col
            else None
        )
        sums = [
            _untyped(sa.func.sum(self._summed(col["input_tokens"]))),
            _untyped(sa.func.sum(cached)) if cached is not None else sa.literal_column("0"),
            _untyped(sa.func.sum(self._summed(col["output_tokens"]))),
            sa.func.count(),
            _untyped(sa.func.sum(col["cost"])) if "cost" in col else sa.null(),
        ]
        sums += [
            _untyped(sa.func.max(col[name]) if name == "usage_bytes" else sa.func.sum(col[name]))
            for name in SUMMED_EXTRA
            if name in col
        ]
        return sa.select(*columns, *sums).select_from(self.table).where(*where).group_by(*grouping)

    def repeats(self, window: Window) -> sa.Subquery | None:
        """The counted rows of ``window`` with a request id, each numbered within its UTC day
        and id (``recon_rn``, by timestamp: 1 is the row counted, the others repeat it).

        None without a ``request_id`` column. ``ROW_NUMBER()`` is standard SQL on every backend
        the source supports (SQLite 3.25+, PostgreSQL, MySQL 8, MariaDB 10.2+).
        """
        if "request_id" not in self.col:
            return None
        rid = self.col["request_id"]
        number = sa.func.row_number().over(
            partition_by=[self._day(window), rid], order_by=[self.col["timestamp"]]
        )
        table_columns = [c for c in self.table.columns if c.name != _NUMBER]
        return (
            sa.select(*table_columns, number.label(_NUMBER))
            .where(*self.where(window), *self._with_id(rid))
            .subquery("recon_repeats")
        )

    def repeated_ids(self, window: Window) -> sa.Select[Any] | None:
        """How many (UTC day, request id) pairs of ``window``'s counted rows occur more than
        once: one hash aggregate, much cheaper than numbering every row (:meth:`repeats`,
        needed only when some repeat). None without a ``request_id`` column."""
        if "request_id" not in self.col:
            return None
        rid = self.col["request_id"]
        pairs = (
            sa.select(self._day(window).label("recon_day"), rid.label("recon_id"))
            .where(*self.where(window), *self._with_id(rid))
            .subquery("recon_pairs")
        )
        repeated = (
            sa.select(pairs.c.recon_day)
            .group_by(pairs.c.recon_day, pairs.c.recon_id)
            .having(sa.func.count() > 1)
            .subquery("recon_repeated")
        )
        return sa.select(sa.func.count()).select_from(repeated)

    def _with_id(self, rid: sa.ColumnElement[Any]) -> list[sa.ColumnElement[bool]]:
        """Rows that are counted and carry a request id (an empty id is no id, as in the NDJSON
        source)."""
        counted: list[sa.ColumnElement[bool]] = [rid.is_not(None), self._reason() == ""]
        if isinstance(rid.type, sa.String):
            counted.append(rid != "")
        return counted

    def minute(self) -> sa.ColumnElement[Any]:
        """A row's minute: UTC (an epoch minute number, a naive UTC datetime, or ISO text), or
        wall time in ``timestamp_timezone`` where the database cannot convert it (MySQL/MariaDB:
        see :func:`utc_minute`)."""
        ts = self.col["timestamp"]
        if self.kind == "epoch":
            return _untyped(self.sql.divide(ts, 60))
        utc = self._utc()
        return _untyped(self.sql.minute(ts if utc is None else utc))

    def _utc(self) -> sa.ColumnElement[Any] | None:
        """The timestamp as a naive UTC timestamp, or None where the dialect cannot convert."""
        ts = self.col["timestamp"]
        if self.kind == "instant":
            return self.sql.to_utc(ts, None)
        if self.kind == "sqlite_text" or self.options.timestamp_timezone == "UTC":
            return ts
        return self.sql.to_utc(ts, self.options.timestamp_timezone)

    def utc_minute(self, raw: Any) -> datetime | None:
        """The aware UTC minute of a :meth:`minute` value; None when there is none."""
        try:
            if isinstance(raw, datetime):
                moment = raw
            elif isinstance(raw, str):
                moment = datetime.fromisoformat(raw)
            elif raw is None:
                return None
            else:
                return datetime.combine(EPOCH, datetime.min.time(), UTC) + timedelta(
                    minutes=int(raw)
                )
        except (ValueError, OverflowError, TypeError):
            return None
        if moment.tzinfo is not None:
            return moment.astimezone(UTC)
        if self.kind == "wall" and self._utc() is None:
            # Wall time: the UTC instant of its first reading (fold=0) in an ambiguous hour.
            return moment.replace(tzinfo=self.zone).astimezone(UTC)
        return moment.replace(tzinfo=UTC)

    def _bounds(self, window: Window) -> tuple[Any, Any]:
        """Window bounds of the column's own type, so the range compares on the raw column."""
        start, end = window.start_at, window.end_at
        if self.kind == "epoch":
            return int(start.timestamp()), int(end.timestamp())
        if self.kind == "sqlite_text":
            # Date-only text sorts before any time of that day in either ISO form ('T' or ' ').
            return (
                sa.literal(start.date().isoformat(), sa.String),
                sa.literal(end.date().isoformat(), sa.String),
            )
        if self.kind == "instant":
            return (start, end) if self.sql.aware_bounds else (_naive(start), _naive(end))
        return self._wall(start), self._wall(end)

    def _wall(self, moment: datetime) -> datetime:
        """``moment`` as naive wall time in the column's zone."""
        return moment.astimezone(self.zone).replace(tzinfo=None)

    def _day(self, window: Window) -> sa.ColumnElement[Any]:
        """The UTC day of a row: a date, ISO text (SQLite), or a day number (see QueryTotals)."""
        ts = self.col["timestamp"]
        if self.kind == "epoch":
            return _untyped(self.sql.divide(ts, 86400))
        utc = self._utc()
        if utc is not None:
            return _untyped(self.sql.day(utc))
        # MySQL/MariaDB wall time in a zone: the day's index in the window, from the wall time of
        # each UTC midnight (no time-zone tables needed on the server).
        days = list(window.days())
        whens = [
            (ts < self._wall(datetime.combine(day, datetime.min.time(), UTC)), index - 1)
            for index, day in enumerate(days)
            if index > 0
        ]
        self.day_base = window.start
        if not whens:
            return sa.literal_column("0")
        return sa.case(*whens, else_=len(days) - 1)

    def _reason(self) -> sa.ColumnElement[Any]:
        """Why a row cannot be counted ('' when it can), first reason wins."""
        col = self.col
        model, inp, out = col["model"], col["input_tokens"], col["output_tokens"]
        counts = [inp, out] + ([col["cached_tokens"]] if "cached_tokens" in col else [])
        missing: sa.ColumnElement[bool] = sa.or_(inp.is_(None), out.is_(None))
        quantities = [col[name] for name in _QUANTITIES if name in col]
        if quantities:
            # A row of images, speech, storage ... may carry no token counts.
            missing = sa.and_(missing, *(q.is_(None) for q in quantities))
        whens: list[tuple[sa.ColumnElement[bool], str]] = [
            (sa.or_(model.is_(None), model == ""), "missing_model"),
            (missing, "missing_tokens"),
            (sa.or_(*(count < 0 for count in counts)), "negative_tokens"),
            (sa.or_(*(self._bad_count(count) for count in counts)), "bad_tokens"),
        ]
        if "cached_tokens" in col:
            whens.append((col["cached_tokens"] > inp, "cached_exceeds_input"))
        if "cost" in col:
            whens.append((self._bad_cost(col["cost"]), "bad_cost"))
        return sa.case(*whens, else_="")

    def _bad_count(self, count: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        """A token count that is not a whole number up to ``MAX_TOKENS`` (NULL: not bad).

        A whole-number column type needs only the range test. SQLite keeps any value in any
        column, so there the value's own type is tested; ``NUMERIC``/``FLOAT`` columns elsewhere
        are compared with their floor (``2999.9`` must not be counted as 2999).
        """
        too_big = count > _MAX_TOKENS
        if self.dialect == "sqlite":
            kind = sa.func.typeof(count)
            fractional = sa.or_(kind == "text", kind == "blob", count != sa.cast(count, sa.Integer))
            return sa.and_(kind != "null", sa.or_(fractional, too_big))
        if isinstance(count.type, sa.Integer):
            return too_big
        return sa.or_(too_big, count != sa.func.floor(count))

    def _bad_cost(self, cost: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        """A cost that is negative or not below ``MAX_COST_USD`` (in the column's unit).

        PostgreSQL sorts NaN above every number, so the upper bound refuses it with infinity;
        on SQLite a value kept as text or a blob is no cost either (``SUM`` would read it as 0).
        """
        limit = MAX_COST_USD * 100 if self.options.cost_unit == "cents" else MAX_COST_USD
        bad = sa.or_(cost < 0, cost >= sa.literal_column(str(int(limit))))
        if self.dialect == "sqlite":
            kind = sa.func.typeof(cost)
            return sa.or_(kind == "text", kind == "blob", bad)
        return bad

    def _summed(self, count: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """What a token column's SUM adds up: on SQLite, 0 for a count beyond ``MAX_TOKENS``.

        Such a row is skipped (``bad_tokens``), but its group's SUM still runs, and SQLite's
        64-bit SUM fails the whole query ("integer overflow") on two counts near 2**63.
        """
        if self.dialect != "sqlite":
            return count  # their SUM of integers is a DECIMAL/NUMERIC: it cannot overflow
        return sa.case((count.between(-_MAX_TOKENS, _MAX_TOKENS), count), else_=0)


class QueryTotals:
    """Folds the query's result rows into groups, skips and unpriced usage."""

    def __init__(self, window: Window, options: SqlTableOptions, day_base: date | None) -> None:
        self.window = window
        self.day_base = day_base
        self.cents = options.cost_unit == "cents"
        self.group_project = "project_id" in options.group_by
        self.group_api_key = "api_key_id" in options.group_by
        self.has_batch = "batch" in options.columns
        self.has_tier = "service_tier" in options.columns
        self.grouped = [name for name in GROUPED_EXTRA if name in options.columns]
        self.summed = [name for name in SUMMED_EXTRA if name in options.columns]
        #: Family per distinct (family, endpoint, model) value of the table.
        self.families: dict[tuple[Any, Any, Any], str | None] = {}
        #: (day, model, project, api key, tier or None for logged cost) -> sums
        self.acc: dict[AggregateKey, list[Any]] = {}
        self.skipped: dict[str, int] = {}
        self.info: dict[str, int] = {"rows_counted": 0, "result_rows": 0}
        #: The window's distinct groups, bounded by ``max_groups``: the result is streamed, so
        #: a request-unique column stops the read here, before it holds every row.
        self.limit = GroupLimit(options.max_groups)
        self.options = options

    def add_rows(self, rows: Any) -> QueryTotals:
        """Add every result row of the aggregate query."""
        for row in rows:
            it = iter(row)
            raw_day, has_cost, reason, model = next(it), next(it), next(it), next(it)
            project = next(it) if self.group_project else None
            api_key = next(it) if self.group_api_key else None
            batch = next(it) if self.has_batch else None
            service_tier = next(it) if self.has_tier else None
            extra = {name: next(it) for name in self.grouped}
            inp, cached, out, n, cost = (next(it) for _ in range(5))
            summed = dict(zip(self.summed, it, strict=True))
            n = int(n)
            self.info["result_rows"] += 1
            if not reason and "\x00" in str(model):
                # No part of a model name, and PostgreSQL text cannot store one: as the NDJSON
                # source. (Tested here, not in SQL: SQLite's string functions stop at a NUL.)
                reason = "bad_model"
            family = None if reason else self._family(extra, model)
            if not reason and family is None:
                reason = "bad_family"
            if reason:
                self.skipped[reason] = self.skipped.get(reason, 0) + n
                continue
            day = self._day(raw_day)
            if day is None:
                self.skipped["bad_timestamp"] = self.skipped.get("bad_timestamp", 0) + n
                continue
            if day not in self.window:
                # Only SQLite text with an offset suffix can land here: date() honours it.
                self.info["outside_window"] = self.info.get("outside_window", 0) + n
                continue
            assert family is not None
            tier: Tier | None = None if int(has_cost) else row_tier(batch, service_tier)
            key = (day, str(model), _text(project), _text(api_key), tier, family)
            if self.limit.add((day, family, key[1], key[2], key[3])):
                raise self._too_many()
            row = [int(inp or 0), int(cached or 0), int(out or 0), n]
            sums = self._sums(key, _variant(extra.get("size"), extra.get("quality")), row, summed)
            if tier is None:
                sums[4] += _usd(cost, self.cents)
            self.info["rows_counted"] += n
        return self

    def _too_many(self) -> LogSourceError:
        """The error that stops reading a result whose window holds too many groups."""
        columns = self.options.columns
        fields = {
            name: f"the SQL source's columns.{name} = {columns[name]!r}"
            for name in DIMENSIONS
            if name in columns
        }
        where = (
            f"stopped reading the aggregate of {self.options.subject} at result row "
            f"{self.info['result_rows']:,}"
        )
        return LogSourceError(
            self.limit.message(where, self.window.key, fields),
            permanent=True,
            reason="too_many_groups",
        )

    def _sums(
        self, key: tuple[Any, ...], variant: str | None, row: list[int], summed: dict[str, Any]
    ) -> list[Any]:
        """Add one result row's counts to its aggregate's sums and return them (cost apart).

        A plain completions row keeps the five sums of old; any other the fields of ``Usage``.
        """
        family, n = key[-1], row[3]
        if family == COMPLETIONS and not summed and variant is None:
            sums = self.acc.setdefault((*key, None), [0, 0, 0, 0, ZERO])
            for i in range(4):
                sums[i] += row[i]
            return sums
        sums = self.acc.setdefault((*key, variant), [0, 0, 0, 0, ZERO, *[0] * 13])
        rest = family_sums(family, summed, row, n)
        for i, value in enumerate([*row, 0, *rest]):
            if i == _BYTES:
                sums[i] = max(sums[i], value)
            elif i != 4:
                sums[i] += value
        return sums

    def _family(self, extra: dict[str, Any], model: Any) -> str | None:
        """The family of a result row, detected once per distinct value."""
        raw = (extra.get("family"), extra.get("endpoint"), model)
        if raw not in self.families:
            family, endpoint = (None if v is None else str(v) for v in raw[:2])
            self.families[raw] = detect_family(family=family, endpoint=endpoint, model=str(model))
        return self.families[raw]

    def _day(self, raw: Any) -> date | None:
        if isinstance(raw, datetime):
            return raw.date()
        if isinstance(raw, date):
            return raw
        if isinstance(raw, str):
            try:
                return date.fromisoformat(raw)
            except ValueError:
                return None
        if raw is None or self.day_base is None:
            return None
        return self.day_base + timedelta(days=int(raw))

    def build(self, pricer: Pricer, namer: ModelNamer | None) -> UsageTotals:
        """Price the cost-less aggregates once each and build the result."""
        return price_aggregates(
            self.acc.items(), pricer, namer, skipped=self.skipped, info=self.info
        )


def _untyped(element: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    # The driver's own value (Decimal, int, float, date, str): a column type's result processor
    # would round NUMERIC sums to the column's scale or parse SQLite text.
    return sa.type_coerce(element, sa.types.NullType())


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def row_tier(batch: Any, service_tier: Any) -> Tier:
    """The billing tier of a database row from its ``batch`` and ``service_tier`` columns.

    ``batch`` is a boolean, the integer 1, or text such as ``true``/``yes``/``1`` (any case);
    anything else, NULL included, is not batch. Per-request reconciliation prices a table's rows
    by the same rule.
    """
    flag = batch is True or (type(batch) is int and batch == 1)
    if isinstance(batch, str):
        flag = batch.strip().lower() in _TRUE_TEXT
    return tier_of(flag, service_tier)


def family_sums(family: str, summed: dict[str, Any], row: list[int], n: int) -> list[int]:
    """The sums after cost (Usage's fields from ``cache_write_tokens`` on) of one result row.

    Token classes are split as the NDJSON source splits a record's (see
    :mod:`~recon_job.sources.ndjson.quantities`), here on the group's sums. Without a column of
    its own, a row is one image, session or search call (the APIs' defaults); the families
    OpenAI counts no requests of count none.
    """

    def total(name: str) -> int:
        value = summed.get(name)
        if value is None:
            return 0
        # Seconds may be a fractional column: its sum is rounded half up, like a record's.
        return int(Decimal(str(value)).to_integral_value(ROUND_HALF_UP))

    inp, cached, out, _ = row
    write = total("cache_write_tokens")
    room = max(inp - cached - write, 0)
    audio, cached_audio = split_class(
        total("input_audio_tokens"), total("cached_audio_tokens"), room
    )
    image, cached_image = split_class(
        total("input_image_tokens"), total("cached_image_tokens"), room - audio
    )
    out_image = total("output_image_tokens")
    if family == "images" and "output_image_tokens" not in summed:
        out_image = out - total("output_audio_tokens")
    counted = {"images": "images", "code_interpreter_sessions": "sessions"}
    defaults = {counted.get(family, ""): n, "calls": n if family.endswith("search_calls") else 0}
    if family in ("vector_stores", "code_interpreter_sessions", "file_search_calls"):
        row[3] = 0
    return [
        write,
        audio,
        cached_audio,
        image,
        cached_image,
        total("output_audio_tokens"),
        out_image,
        *(
            total(name) if name in summed else defaults.get(name, 0)
            for name in ("images", "characters", "seconds", "sessions", "calls")
        ),
        total("usage_bytes"),
    ]


def _variant(size: Any, quality: Any) -> str | None:
    if size is None or not str(size).strip():
        return None
    name = str(size).strip().lower()
    if quality is not None and str(quality).strip():
        name += "/" + str(quality).strip().lower()
    return name


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _usd(value: Any, cents: bool) -> Decimal:
    """A SUM of the cost column as exact USD."""
    if value is None:
        return ZERO
    if isinstance(value, float):
        # SQLite sums a NUMERIC column of 0.001s as a binary float (0.0030000000000000004): a
        # float holds 15 significant decimal digits, so the sum is rounded back to them.
        amount = _FLOAT_DIGITS.create_decimal(value).normalize(_FLOAT_DIGITS)
    else:
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
    return amount.scaleb(-2) if cents else amount


#: The decimal digits a binary float (IEEE 754 double) always holds exactly.
_FLOAT_DIGITS = Context(prec=15)
