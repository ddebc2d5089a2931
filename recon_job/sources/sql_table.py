"""The local side from the application's own database: one row per OpenAI request in a table.

Any SQLAlchemy URL works on PostgreSQL (psycopg), MySQL/MariaDB (pymysql) and SQLite. The
aggregation runs in the database: one ``GROUP BY`` query per fetch returns a row per UTC day ×
model [× project × API key] × tier × (cost logged or not) × skip reason, so memory in Python grows
with the number of groups, never with the number of rows. Aggregates without a logged cost are
priced once each with the pricer, as the NDJSON source does.

**Index.** The window is selected with a plain range on the raw timestamp column
(``created_at >= :start AND created_at < :end``), never a function of it, so an index on that
column is used. Create one if the table has none::

    CREATE INDEX token_usage_created_at_idx ON token_usage (created_at);

**Read-only.** The source only reflects the table and runs one ``SELECT``; the session is set
read-only (PostgreSQL and MySQL/MariaDB ``SET SESSION ... READ ONLY``, SQLite ``mode=ro`` and
``PRAGMA query_only``). Still, give it a database user that may only ``SELECT`` from the table:
the ``filter`` option is SQL written into the query as is (trusted configuration, checked only
against accidents such as a ``;`` or a comment).

**Timestamps.** How the UTC day of a row is computed depends on the column type:

* PostgreSQL ``timestamp with time zone``, MySQL/MariaDB ``TIMESTAMP``: absolute instants;
  ``timestamp_timezone`` is ignored. (MySQL converts ``TIMESTAMP`` values to the session zone,
  so the session's ``time_zone`` is set to ``+00:00``.)
* PostgreSQL ``timestamp``, MySQL/MariaDB ``DATETIME`` (no time zone): wall time in
  ``timestamp_timezone`` (default UTC). The window bounds are converted to that zone's wall time
  in Python. PostgreSQL computes the UTC day with ``AT TIME ZONE``. MySQL/MariaDB often lack
  the named time-zone tables ``CONVERT_TZ`` needs, so there the UTC day is a ``CASE`` over the
  wall-time instants of each UTC midnight in the window, computed in Python with ``zoneinfo``.
* SQLite: text in UTC ISO-8601 (``2026-03-01 12:00:00`` or ``2026-03-01T12:00:00``) — only
  UTC is accepted, a ``timestamp_timezone`` other than UTC is a configuration error.
* An integer column (any database): Unix epoch seconds.

Rows with a NULL timestamp belong to no window and are not counted.

**Numbers.** Token sums are returned as ``int``. A ``NUMERIC``/``DECIMAL`` cost column sums
exactly; a ``FLOAT``/``DOUBLE`` (or SQLite ``REAL``) one sums in binary floating point and the
sum is converted with ``Decimal(str(x))``, so it may be off in the last cents digits.

**Skipped rows** (``UsageTotals.skipped``), each counted once, first reason wins:
``missing_model`` (NULL or empty), ``missing_tokens`` (input or output NULL), ``negative_tokens``,
``cached_exceeds_input``, ``bad_cost`` (negative), ``bad_timestamp`` (SQLite text that is not a
date). A NULL cached-token count means 0; a NULL cost means "price it".
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
import structlog
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from recon_job.errors import ConfigError, LogSourceError
from recon_job.modelnames import ModelNamer
from recon_job.models import ZERO, Tier, Usage, UsageKey, UsageTotals, Window
from recon_job.sources.base import Pricer

logger = structlog.get_logger(__name__)

EVENT_FETCHED = "recon.source.sql.fetched"

REQUIRED_COLUMNS = ("timestamp", "model", "input_tokens", "output_tokens")
OPTIONAL_COLUMNS = (
    "cached_tokens",
    "cost",
    "request_id",
    "project_id",
    "api_key_id",
    "batch",
    "service_tier",
)
#: Canonical names a ``SqlTableOptions.columns`` mapping may use.
CANONICAL_COLUMNS = frozenset(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
GROUP_COLUMNS = ("model", "project_id", "api_key_id")
#: Database backends this source knows how to compute a UTC day on.
BACKENDS = ("postgresql", "mysql", "mariadb", "sqlite")
#: Seconds to wait for a connection unless the URL sets ``connect_timeout`` itself.
CONNECT_TIMEOUT_S = 10

# Plain identifiers only: every name is quoted by SQLAlchemy anyway, this catches typos and
# pasted SQL in a config file early.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")
_COMMENT_OR_END = re.compile(r";|--|/\*|\*/")
_EPOCH = date(1970, 1, 1)
_TIERS: dict[str, Tier] = {"flex": "flex", "priority": "priority"}
_TRUE_TEXT = frozenset({"1", "t", "true", "y", "yes"})
# Result labels, also used in GROUP BY: grouping by the output name avoids repeating an
# expression's bind parameters there (PostgreSQL would see two different parameters).
_DAY, _REASON, _PRICED = "recon_day", "recon_skip", "recon_has_cost"
# MySQL/MariaDB error codes worth retrying: cannot connect, unknown host, server gone, lost
# connection, too many connections, lock wait timeout, deadlock, query interrupted or timed out.
_MYSQL_TRANSIENT = frozenset({1040, 1053, 1205, 1213, 1317, 1927, 2002, 2003, 2005, 2006, 2013})
_MYSQL_TRANSIENT |= {2055, 3024}
# PostgreSQL SQLSTATE classes worth retrying: connection, resources, operator intervention
# (shutdown, statement timeout), transaction rollback (deadlock, serialization).
_PG_TRANSIENT_CLASSES = ("08", "53", "57", "40")
# psycopg reports errors during connection without a SQLSTATE; these mean the server refused us
# for good (wrong role or password, no such database, pg_hba rules).
_PG_REFUSED = re.compile(
    r"authentication failed|does not exist|no pg_hba\.conf entry|permission denied", re.I
)

TimestampKind = Literal["instant", "wall", "sqlite_text", "epoch"]


@dataclass(frozen=True)
class SqlTableOptions:
    """Where the app's usage table is and how its columns map to usage."""

    #: SQLAlchemy URL of the app's database. A secret: kept out of ``repr`` and of every message.
    url: str = field(repr=False)
    #: Table name, optionally ``schema.table``.
    table: str
    #: Canonical name -> column name. Required: ``timestamp``, ``model``, ``input_tokens``,
    #: ``output_tokens``; optional: ``cached_tokens``, ``cost``, ``request_id``,
    #: ``project_id``, ``api_key_id``, ``batch``, ``service_tier``.
    columns: Mapping[str, str]
    #: Unit of the ``cost`` column.
    cost_unit: Literal["usd", "cents"] = "usd"
    #: An SQL condition rows must meet (``environment = 'production'``), inserted into the
    #: ``WHERE`` as written: trusted configuration. ``;`` and comments are refused.
    filter: str | None = None
    #: IANA zone of a timestamp column stored without a time zone (PostgreSQL ``timestamp``,
    #: MySQL ``DATETIME``); ignored for absolute columns and epoch seconds.
    timestamp_timezone: str = "UTC"
    #: Group dimensions besides the day: ``model`` plus optionally ``project_id``, ``api_key_id``.
    group_by: tuple[str, ...] = ("model",)
    #: When set, only rows of these projects count (rows with a NULL project id are kept, as
    #: the NDJSON source keeps records without one).
    project_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problems: list[str] = []
        backend = self._check_url(problems)
        parts = self.table.split(".")
        if len(parts) > 2 or not all(_IDENTIFIER.fullmatch(p) for p in parts):
            problems.append(
                f"SQL source table {self.table!r} is not a plain name or schema.table "
                "(letters, digits, _ and $)"
            )
        for name, column in self.columns.items():
            if name not in CANONICAL_COLUMNS:
                problems.append(
                    f"unknown SQL source column {name!r} — use one of "
                    f"{', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)}"
                )
            if not column:
                problems.append(f"SQL source column {name!r} maps to an empty column name")
            elif not _IDENTIFIER.fullmatch(column):
                problems.append(
                    f"SQL source column {name!r} maps to {column!r}, not a plain column name "
                    "(letters, digits, _ and $)"
                )
        missing = [n for n in REQUIRED_COLUMNS if n not in self.columns]
        if missing:
            problems.append(
                f"SQL source columns must map {', '.join(missing)} "
                f"(required: {', '.join(REQUIRED_COLUMNS)})"
            )
        if self.cost_unit not in ("usd", "cents"):
            problems.append(
                f"SQL source cost unit must be 'usd' or 'cents', not {self.cost_unit!r}"
            )
        if self.filter is not None:
            if not self.filter.strip():
                problems.append("SQL source filter is empty — leave it out or write a condition")
            elif _COMMENT_OR_END.search(self.filter):
                problems.append(
                    "SQL source filter may not contain ';' or a comment ('--', '/*') — write one "
                    "condition, e.g. environment = 'production'"
                )
        try:
            ZoneInfo(self.timestamp_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(
                f"unknown timestamp_timezone {self.timestamp_timezone!r} — use an IANA name "
                "like 'Europe/Helsinki'"
            )
        else:
            if backend == "sqlite" and self.timestamp_timezone != "UTC":
                problems.append(
                    "SQLite timestamps must be UTC (ISO-8601 text or epoch seconds); "
                    f"timestamp_timezone {self.timestamp_timezone!r} is not supported there"
                )
        for name in self.group_by:
            if name not in GROUP_COLUMNS:
                problems.append(
                    f"cannot group the SQL source by {name!r} — use {', '.join(GROUP_COLUMNS)}"
                )
            elif name not in self.columns:
                problems.append(f"grouping by {name!r} needs a {name!r} column in the mapping")
        if "model" not in self.group_by:
            problems.append("the SQL source's group_by must include 'model'")
        if self.project_ids and "project_id" not in self.columns:
            problems.append("project_ids needs a 'project_id' column in the mapping")
        if any(not p for p in self.project_ids):
            problems.append("project_ids may not contain an empty id")
        if problems:
            raise ConfigError(problems)

    def _check_url(self, problems: list[str]) -> str | None:
        try:
            url = make_url(self.url)
        except (sa_exc.ArgumentError, ValueError):
            # The parser's message repeats the URL, password and all: don't pass it on.
            problems.append(
                "the SQL source URL is not a SQLAlchemy URL — e.g. "
                "postgresql+psycopg://user@host/db, mysql+pymysql://user@host/db, "
                "sqlite:///path/app.db"
            )
            return None
        backend = url.get_backend_name()
        if backend not in BACKENDS:
            problems.append(
                f"the SQL source supports {', '.join(BACKENDS)} databases, not {backend!r}"
            )
            return None
        return backend

    @property
    def display_url(self) -> str:
        """The URL with its password masked, for messages and logs."""
        return _display(self.url)


class SqlTableSource:
    """A :class:`~recon_job.sources.base.UsageSource` over the app's own usage table."""

    def __init__(
        self, options: SqlTableOptions, pricer: Pricer, namer: ModelNamer | None = None
    ) -> None:
        self.options = options
        self.pricer = pricer
        self.namer = namer

    def __repr__(self) -> str:
        return f"SqlTableSource({self.options.display_url!r}, table={self.options.table!r})"

    def fetch(self, window: Window) -> UsageTotals:
        """Usage per UTC day and group in ``window``; LogSourceError if the table can't be read."""
        started = time.perf_counter()
        with self.connect() as conn:
            query = self._query(conn)
            statement = query.select(window)
            try:
                rows = conn.execute(statement).all()
            except sa_exc.DBAPIError as e:
                raise self._error(e, "query") from e
        scan = _Totals(window, self.options, query.day_base).add_rows(rows)
        scan.info["query_ms"] = round((time.perf_counter() - started) * 1000)
        totals = scan.build(self.pricer, self.namer)
        logger.info(
            EVENT_FETCHED,
            url=self.options.display_url,
            table=self.options.table,
            window=window.key,
            groups=len(totals.groups),
            skipped=dict(totals.skipped),
            unpriced=sorted(totals.unpriced),
            **totals.info,
        )
        return totals

    @contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        """A read-only connection set up for the query (UTC session); the engine is disposed after.

        Connection failures become :class:`LogSourceError`: transient when the server could not
        be reached, permanent when it refused (login, unknown database).
        """
        url = make_url(self.options.url)
        backend = url.get_backend_name()
        connect_args: dict[str, Any] = {}
        if backend == "sqlite":
            url = _read_only_sqlite(url)
        elif "connect_timeout" not in url.query:
            connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
        try:
            # NullPool: the connection (and the session settings below) ends with the fetch.
            engine = sa.create_engine(url, poolclass=NullPool, connect_args=connect_args)
        except (ImportError, sa_exc.ArgumentError) as e:
            raise LogSourceError(
                f"cannot use database {self.options.display_url}: {type(e).__name__} — install "
                "the driver (pip install 'recon-job[postgres]' or 'recon-job[mysql]') and check "
                "the URL's dialect",
                reason="database_driver",
            ) from e
        try:
            try:
                conn = engine.connect()
            except sa_exc.DBAPIError as e:
                raise self._error(e, "connect") from e
            with conn:
                try:
                    _prepare_session(conn)
                except sa_exc.DBAPIError as e:
                    raise self._error(e, "connect") from e
                yield conn
        finally:
            engine.dispose()

    def statement(self, conn: sa.Connection, window: Window) -> sa.Select[Any]:
        """The aggregate ``SELECT`` for ``window`` (public so its plan can be checked)."""
        return self._query(conn).select(window)

    def _query(self, conn: sa.Connection) -> _Query:
        return _Query(self.options, self._reflect(conn), conn.dialect.name)

    def _reflect(self, conn: sa.Connection) -> sa.Table:
        schema, _, name = self.options.table.rpartition(".")
        try:
            table = sa.Table(name, sa.MetaData(), schema=schema or None, autoload_with=conn)
        except sa_exc.NoSuchTableError as e:
            raise LogSourceError(
                f"table {self.options.table!r} does not exist in database "
                f"{self.options.display_url} — check the SQL source's table name (and schema), "
                "and that its user may see the table",
                reason="table_missing",
            ) from e
        except sa_exc.DBAPIError as e:
            raise self._error(e, "reflect") from e
        available = {c.name.lower(): c.name for c in table.columns}
        missing = [
            f"{column!r} (mapped as {canonical})"
            for canonical, column in self.options.columns.items()
            if column not in table.c and column.lower() not in available
        ]
        if missing:
            names = [c.name for c in table.columns]
            shown = ", ".join(names[:40]) + (
                f" and {len(names) - 40} more" if len(names) > 40 else ""
            )
            raise LogSourceError(
                f"table {self.options.table!r} has no column {', '.join(missing)} — its columns "
                f"are {shown}; fix the SQL source's column mapping",
                reason="column_missing",
            )
        return table

    def _error(self, e: sa_exc.DBAPIError, stage: str) -> LogSourceError:
        """Translate a driver error, keeping the URL's password out of the message."""
        detail = _redact(_first_line(e.orig) if e.orig is not None else str(e), self.options.url)
        where = f"database {self.options.display_url}"
        if _transient(e, make_url(self.options.url).get_backend_name()):
            if stage == "connect":
                return LogSourceError(
                    f"cannot reach {where}: {detail} — check that the server is up and "
                    "reachable; the next run retries",
                    permanent=False,
                    reason="database_unreachable",
                )
            return LogSourceError(
                f"reading table {self.options.table!r} from {where} failed: {detail} — the "
                "server is busy or went away; the next run retries",
                permanent=False,
                reason="database_error",
            )
        if stage == "connect":
            return LogSourceError(
                f"cannot open {where}: {detail} — check the user, password and database name "
                "(or the SQLite file path) in the SQL source URL",
                reason="database_refused",
            )
        if stage == "reflect":
            return LogSourceError(
                f"cannot inspect table {self.options.table!r} in {where}: {detail} — check that "
                "the source's user may read it",
                reason="table_unreadable",
            )
        return LogSourceError(
            f"the usage query on table {self.options.table!r} failed: {detail} — check the "
            "SQL source's filter and column mapping",
            reason="query_failed",
        )


class _Query:
    """Builds the aggregate SELECT for one table on one dialect."""

    def __init__(self, options: SqlTableOptions, table: sa.Table, dialect: str) -> None:
        self.options = options
        self.table = table
        self.dialect = "mysql" if dialect == "mariadb" else dialect
        by_lower = {c.name.lower(): c for c in table.columns}
        self.col: dict[str, sa.ColumnElement[Any]] = {
            canonical: table.c[name] if name in table.c else by_lower[name.lower()]
            for canonical, name in options.columns.items()
        }
        self.zone = ZoneInfo(options.timestamp_timezone)
        self.kind = self._timestamp_kind()
        #: What a day *number* from the day expression counts from (epoch, or the window start
        #: for the MySQL/MariaDB zone ``CASE``); dates and ISO text need no base.
        self.day_base = _EPOCH if self.kind == "epoch" else None

    def _timestamp_kind(self) -> TimestampKind:
        column = self.col["timestamp"]
        kind = column.type
        if isinstance(kind, sa.Integer):
            return "epoch"
        if self.dialect == "sqlite":
            return "sqlite_text"
        if isinstance(kind, sa.DateTime):
            if self.dialect == "postgresql" and kind.timezone:
                return "instant"
            # MySQL TIMESTAMP is stored in UTC and shown in the session zone, set to UTC.
            if self.dialect == "mysql" and isinstance(kind, sa.TIMESTAMP):
                return "instant"
            return "wall"
        raise LogSourceError(
            f"timestamp column {self.options.columns['timestamp']!r} of table "
            f"{self.options.table!r} has type {kind}; the SQL source needs a timestamp/datetime "
            "column or an integer of Unix epoch seconds",
            reason="column_type",
        )

    def select(self, window: Window) -> sa.Select[Any]:
        """The whole query: day, groups, tier inputs, skip reason, sums."""
        col = self.col
        ts = col["timestamp"]
        start, end = self._bounds(window)
        where: list[sa.ColumnElement[bool]] = [ts >= start, ts < end]
        if self.options.filter is not None:
            where.append(sa.literal_column(f"({self.options.filter})", sa.Boolean))
        if self.options.project_ids:
            project = col["project_id"]
            where.append(sa.or_(project.in_(self.options.project_ids), project.is_(None)))

        # Row order: day, cost flag, skip reason, model, [project], [api key], [batch],
        # [service tier], then the sums (see _Totals.add_rows). Computed columns are labelled
        # and grouped by their label.
        has_cost: sa.ColumnElement[Any] = sa.literal_column("0")
        if "cost" in col:
            has_cost = sa.case((col["cost"].is_(None), 0), else_=1)
        columns: list[sa.ColumnElement[Any]] = [
            self._day(window).label(_DAY),
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
        grouping = [sa.literal_column(c.name) if isinstance(c, sa.Label) else c for c in columns]
        cached = sa.func.coalesce(col["cached_tokens"], 0) if "cached_tokens" in col else None
        sums = [
            _untyped(sa.func.sum(col["input_tokens"])),
            _untyped(sa.func.sum(cached)) if cached is not None else sa.literal_column("0"),
            _untyped(sa.func.sum(col["output_tokens"])),
            sa.func.count(),
            _untyped(sa.func.sum(col["cost"])) if "cost" in col else sa.null(),
        ]
        return sa.select(*columns, *sums).select_from(self.table).where(*where).group_by(*grouping)

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
            return (start, end) if self.dialect == "postgresql" else (_naive(start), _naive(end))
        return self._wall(start), self._wall(end)

    def _wall(self, moment: datetime) -> datetime:
        """``moment`` as naive wall time in the column's zone."""
        return moment.astimezone(self.zone).replace(tzinfo=None)

    def _day(self, window: Window) -> sa.ColumnElement[Any]:
        """The UTC day of a row: a date, ISO text (SQLite), or a day number (see ``_Totals``)."""
        ts = self.col["timestamp"]
        if self.kind == "epoch":
            return _untyped(ts // 86400)
        if self.kind == "sqlite_text":
            return _untyped(sa.func.date(ts))
        utc = self.kind == "instant" or self.options.timestamp_timezone == "UTC"
        if self.dialect == "postgresql":
            if self.kind == "instant":
                return _untyped(sa.func.date(sa.func.timezone(_quoted("UTC"), ts)))
            if utc:
                return _untyped(sa.func.date(ts))
            local = sa.func.timezone(_quoted(self.options.timestamp_timezone), ts)
            return _untyped(sa.func.date(sa.func.timezone(_quoted("UTC"), local)))
        if utc:
            return _untyped(sa.func.date(ts))
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
        negative = [inp < 0, out < 0]
        whens: list[tuple[sa.ColumnElement[bool], str]] = [
            (sa.or_(model.is_(None), model == ""), "missing_model"),
            (sa.or_(inp.is_(None), out.is_(None)), "missing_tokens"),
        ]
        if "cached_tokens" in col:
            negative.append(col["cached_tokens"] < 0)
        whens.append((sa.or_(*negative), "negative_tokens"))
        if "cached_tokens" in col:
            whens.append((col["cached_tokens"] > inp, "cached_exceeds_input"))
        if "cost" in col:
            whens.append((col["cost"] < 0, "bad_cost"))
        return sa.case(*whens, else_="")


class _Totals:
    """Folds the query's result rows into groups, skips and unpriced usage."""

    def __init__(self, window: Window, options: SqlTableOptions, day_base: date | None) -> None:
        self.window = window
        self.day_base = day_base
        self.cents = options.cost_unit == "cents"
        self.group_project = "project_id" in options.group_by
        self.group_api_key = "api_key_id" in options.group_by
        self.has_batch = "batch" in options.columns
        self.has_tier = "service_tier" in options.columns
        #: (day, model, project, api key, tier or None for logged cost) -> sums
        self.acc: dict[tuple[Any, ...], list[Any]] = {}
        self.skipped: dict[str, int] = {}
        self.info: dict[str, int] = {"rows_counted": 0, "result_rows": 0}

    def add_rows(self, rows: Any) -> _Totals:
        """Add every result row of the aggregate query."""
        for row in rows:
            it = iter(row)
            raw_day, has_cost, reason, model = next(it), next(it), next(it), next(it)
            project = next(it) if self.group_project else None
            api_key = next(it) if self.group_api_key else None
            batch = next(it) if self.has_batch else None
            service_tier = next(it) if self.has_tier else None
            inp, cached, out, n, cost = it
            n = int(n)
            self.info["result_rows"] += 1
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
            tier: Tier | None = None if int(has_cost) else _tier(batch, service_tier)
            sums = self.acc.setdefault(
                (day, str(model), _text(project), _text(api_key), tier), [0, 0, 0, 0, ZERO]
            )
            sums[0] += int(inp)
            sums[1] += int(cached)
            sums[2] += int(out)
            sums[3] += n
            if tier is None:
                sums[4] += _usd(cost, self.cents)
            self.info["rows_counted"] += n
        return self

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
        groups: dict[UsageKey, list[Any]] = {}
        unpriced: dict[str, list[int]] = {}
        for (day, model, project, api_key, tier), (inp, cached, out, n, cost) in self.acc.items():
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
                # The price table may list only the alias of a logged snapshot name.
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


def _prepare_session(conn: sa.Connection) -> None:
    """Make the session read-only and UTC, then start the transaction the query runs in."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.exec_driver_sql("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        conn.exec_driver_sql("SET TIME ZONE 'UTC'")
    elif dialect in ("mysql", "mariadb"):
        conn.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
        conn.exec_driver_sql("SET time_zone = '+00:00'")
    else:
        conn.exec_driver_sql("PRAGMA query_only = ON")
    # The settings apply from the next transaction on: end the one they ran in.
    conn.commit()


def _read_only_sqlite(url: URL) -> URL:
    """A SQLite file URL opened read-only, so a wrong path fails instead of creating a file."""
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return url
    return url.set(database=f"file:{database}", query={**url.query, "mode": "ro", "uri": "true"})


def _transient(e: sa_exc.DBAPIError, backend: str) -> bool:
    """True when retrying later can help (server down or busy), False when it cannot."""
    orig = e.orig
    text = str(orig)
    if backend == "sqlite":
        return "database is locked" in text or "database is busy" in text
    code = orig.args[0] if orig is not None and orig.args else None
    if isinstance(code, int):  # pymysql
        return code in _MYSQL_TRANSIENT
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str):  # psycopg, once connected
        return sqlstate.startswith(_PG_TRANSIENT_CLASSES)
    # psycopg errors while connecting carry no SQLSTATE: refused at the door (role, password,
    # database) is permanent, anything else (refused port, unknown host, timeout) the network.
    return isinstance(e, sa_exc.OperationalError) and not _PG_REFUSED.search(text)


def _first_line(orig: BaseException) -> str:
    args = orig.args
    text = str(args[1]) if len(args) > 1 and isinstance(args[0], int) else str(orig)
    return " ".join(text.strip().splitlines()[0].split()) if text.strip() else type(orig).__name__


def _redact(text: str, url: str) -> str:
    """``text`` with the URL's password masked, should a driver ever echo it."""
    try:
        password = make_url(url).password
    except (sa_exc.ArgumentError, ValueError):
        return text
    return text.replace(str(password), "***") if password else text


def _display(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (sa_exc.ArgumentError, ValueError):
        return "<unparseable URL>"


def _untyped(element: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    # The driver's own value (Decimal, int, float, date, str): a column type's result processor
    # would round NUMERIC sums to the column's scale or parse SQLite text.
    return sa.type_coerce(element, sa.types.NullType())


def _quoted(text: str) -> sa.ColumnElement[Any]:
    # Inlined, not bound: zone names are validated IANA names, and an inline constant keeps the
    # day expression identical in every place it appears.
    return sa.literal_column("'" + text.replace("'", "''") + "'")


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def _tier(batch: Any, service_tier: Any) -> Tier:
    """The billing tier from a row's ``batch`` flag and ``service_tier``."""
    if batch is True or (type(batch) is int and batch == 1):
        return "batch"
    if isinstance(batch, str) and batch.strip().lower() in _TRUE_TEXT:
        return "batch"
    if isinstance(service_tier, str):
        return _TIERS.get(service_tier.strip().lower(), "standard")
    return "standard"


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _usd(value: Any, cents: bool) -> Decimal:
    """A SUM of the cost column as exact USD."""
    if value is None:
        return ZERO
    # str() of a float is its shortest repr: Decimal("0.1"), not the binary expansion.
    amount = value if isinstance(value, Decimal) else Decimal(str(value))
    return amount.scaleb(-2) if cents else amount


def _group_order(key: UsageKey) -> tuple[date, str, str, str]:
    return (key.day, key.model, key.project_id or "", key.api_key_id or "")
