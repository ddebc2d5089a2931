"""The local side from the application's own database: one row per OpenAI request in a table.

Any SQLAlchemy URL works on PostgreSQL (psycopg), MySQL/MariaDB (pymysql), SQLite and DuckDB
(duckdb-engine: a database file's table, or a ``relation`` such as
``read_parquet('lake/*.parquet')``, see :mod:`~recon_job.sources.sql.relation`); the SQL that
differs per database is one table, :mod:`~recon_job.sources.sql.dialects`. The
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
``PRAGMA query_only``, a DuckDB file ``read_only``; DuckDB ``:memory:`` with a relation only
reads its files). Still, give it a database user that may only ``SELECT`` from the table:
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
* DuckDB: ``TIMESTAMPTZ`` is an instant, ``TIMESTAMP`` wall time in ``timestamp_timezone``,
  converted with ``timezone()`` as on PostgreSQL (the session's ``TimeZone`` is set to UTC).
* An integer column (any database): Unix epoch seconds.

Rows with a NULL timestamp belong to no window and are not counted.

**Numbers.** Token sums are returned as ``int``. A ``NUMERIC``/``DECIMAL`` cost column sums
exactly; a ``FLOAT``/``DOUBLE`` (or SQLite ``REAL``) one sums in binary floating point and the
sum is converted with ``Decimal(str(x))``, so it may be off in the last cents digits.

**Skipped rows** (``UsageTotals.skipped``), each counted once, first reason wins:
``missing_model`` (NULL or empty), ``missing_tokens`` (input or output NULL), ``negative_tokens``,
``bad_tokens`` (a fractional count such as ``2999.9`` — never truncated — or one above
2**53 - 1, or on SQLite a value stored as text), ``cached_exceeds_input``, ``bad_cost``
(negative, not below 10**15 USD, NaN or infinite, or on SQLite text), ``bad_model`` (a NUL in
the name), ``bad_timestamp`` (SQLite text that is not a date), ``bad_family`` (a ``family`` or
``endpoint`` column value that names no known family). A NULL cached-token count means 0; a
NULL cost means "price it".

**Families** (issue 10). A ``family`` or ``endpoint`` column is grouped by as it is and the
family detected in Python once per distinct value (with the model name, by the same rules as
the NDJSON source); quantity and token-class columns are summed (``usage_bytes``: its MAX, a
level). A row with a quantity column set may leave its token columns NULL. Without its own
column, a row of images, code-interpreter sessions or search calls counts one; token classes
are split on the group's sums as a record's are.

**Duplicates** (``dedupe``, on by default, with a ``request_id`` column): rows of one UTC day
with the same request id count once; the extra rows are found in SQL and reported in
``UsageTotals.duplicates`` (see :mod:`~recon_job.sources.sql.repeats`). Within this table only.

**Series** (:meth:`SqlTableSource.series`): the same aggregate grouped per minute, bucketed by
hour or minute for the gap locator.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy import exc as sa_exc

from recon_job.errors import LogSourceError
from recon_job.modelnames import ModelNamer
from recon_job.models import Usage, UsageTotals, Window
from recon_job.sources.base import Pricer, SeriesKey, series_bounds
from recon_job.sources.sql.connect import database_error, open_connection
from recon_job.sources.sql.options import SqlTableOptions
from recon_job.sources.sql.query import AggregateQuery, QueryTotals
from recon_job.sources.sql.relation import described
from recon_job.sources.sql.repeats import find_duplicates, take_off
from recon_job.sources.sql.repeats import series as query_series

logger = structlog.get_logger(__name__)

EVENT_FETCHED = "recon.source.sql.fetched"


class SqlTableSource:
    """A :class:`~recon_job.sources.base.UsageSource` over the app's own usage table."""

    def __init__(
        self, options: SqlTableOptions, pricer: Pricer, namer: ModelNamer | None = None
    ) -> None:
        self.options = options
        self.pricer = pricer
        self.namer = namer

    def __repr__(self) -> str:
        o = self.options
        read = f"table={o.table!r}" if o.relation is None else f"relation={o.relation!r}"
        return f"SqlTableSource({o.display_url!r}, {read})"

    def fetch(self, window: Window) -> UsageTotals:
        """Usage per UTC day and group in ``window``; LogSourceError if the table can't be read."""
        started = time.perf_counter()
        with self.connect() as conn:
            query = self._query(conn)
            statement = query.select(window)
            scan = QueryTotals(window, self.options, query.day_base)
            try:
                # Streamed: a request-unique column stops at reconcile.max_groups groups
                # (QueryTotals.limit), never after fetching every row into memory.
                with conn.execution_options(stream_results=True, yield_per=1000).execute(
                    statement
                ) as result:
                    scan.add_rows(result)
                extras, duplicates = find_duplicates(conn, query, window, self.pricer, self.namer)
            except sa_exc.DBAPIError as e:
                raise database_error(self.options, e, "query") from e
        if extras is not None:
            take_off(scan.acc, extras.acc)
            repeated = extras.info["rows_counted"]
            scan.info["rows_counted"] -= repeated
            scan.info["duplicate_records"] = repeated
        scan.info["query_ms"] = round((time.perf_counter() - started) * 1000)
        totals = replace(scan.build(self.pricer, self.namer), duplicates=duplicates)
        logger.info(
            EVENT_FETCHED,
            url=self.options.display_url,
            table=self.options.name,
            window=window.key,
            groups=len(totals.groups),
            skipped=dict(totals.skipped),
            unpriced=sorted(totals.unpriced),
            **totals.info,
        )
        return totals

    def series(
        self, start: datetime, end: datetime, width: timedelta
    ) -> dict[SeriesKey, dict[datetime, Usage]]:
        """Usage per (family, model as logged, project id) and bucket of ``width`` in
        ``[start, end)`` (see :class:`~recon_job.sources.base.SeriesSource`), priced and deduped
        as ``fetch`` does; LogSourceError if the table cannot be read."""
        start, end = series_bounds(start, end, width)
        last = (end - timedelta(microseconds=1)).date()
        window = Window("range", start.date(), last + timedelta(days=1))
        with self.connect() as conn:
            query = self._query(conn)
            try:
                return query_series(
                    conn, query, (start, end, width), window, self.pricer, self.namer
                )
            except sa_exc.DBAPIError as e:
                raise database_error(self.options, e, "query") from e

    @contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        """A read-only connection set up for the query (UTC session); the engine is disposed after.

        Connection failures become :class:`LogSourceError`: transient when the server could not
        be reached, permanent when it refused (login, unknown database).
        """
        with open_connection(self.options) as conn:
            yield conn

    def statement(self, conn: sa.Connection, window: Window) -> sa.Select[Any]:
        """The aggregate ``SELECT`` for ``window`` (public so its plan can be checked)."""
        return self._query(conn).select(window)

    def _query(self, conn: sa.Connection) -> AggregateQuery:
        return AggregateQuery(self.options, self._reflect(conn), conn.dialect.name)

    def _reflect(self, conn: sa.Connection) -> sa.Table | sa.Subquery:
        table = self._described(conn)
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
                f"{self.options.subject} has no column {', '.join(missing)} — its columns "
                f"are {shown}; fix the SQL source's column mapping",
                reason="column_missing",
            )
        return table

    def _described(self, conn: sa.Connection) -> sa.Table | sa.Subquery:
        """The table (or DuckDB relation) with its columns, as the database describes it."""
        options = self.options
        missing = LogSourceError(
            f"table {options.table!r} does not exist in database {options.display_url} — check "
            "the SQL source's table name (and schema), and that its user may see the table",
            reason="table_missing",
        )
        try:
            if conn.dialect.name == "duckdb":
                return described(options, conn)
            schema, _, name = str(options.table).rpartition(".")
            return sa.Table(name, sa.MetaData(), schema=schema or None, autoload_with=conn)
        except sa_exc.NoSuchTableError as e:
            raise missing from e
        except sa_exc.DBAPIError as e:
            if options.relation is None and "does not exist" in str(e.orig):
                raise missing from e  # DuckDB's "Table with name ... does not exist"
            raise database_error(options, e, "reflect") from e
