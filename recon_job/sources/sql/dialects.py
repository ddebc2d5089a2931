"""The one table of per-dialect SQL the source needs: a timestamp's UTC day and minute.

Everything the aggregate query writes differently per database is here, one :class:`Dialect`
entry per SQLAlchemy dialect name, so a new warehouse needs one entry (and its name in
:data:`recon_job.config.sources.BACKENDS`):

* ``instant(type)``: does a date-time column of this type hold absolute instants (PostgreSQL
  ``timestamptz``, MySQL ``TIMESTAMP``, DuckDB ``TIMESTAMPTZ`` ...), or wall times?
* ``to_utc(column, zone)``: a naive UTC timestamp of the column — ``zone`` None for an instant
  column, else the IANA zone its wall times are in. None when the database cannot convert
  without time-zone tables (MySQL/MariaDB): the query then falls back to a ``CASE`` over the
  window's UTC midnights for the day, and converts the minute in Python.
* ``day(utc)`` and ``minute(utc)``: the date, and the minute (a datetime or ISO text), of such a
  timestamp; ``divide(column, seconds)``: integer division of epoch seconds.
* ``aware_bounds``: compare an instant column with aware datetimes (else naive UTC ones).
* ``text_timestamps``: timestamps are ISO text (SQLite), compared and bucketed as text.

**Tested** on real databases by the test suite: ``sqlite``, ``postgresql``, ``mysql`` (MySQL
and MariaDB) and ``duckdb``. **Untested** (written from each engine's documentation, not run
here; reports welcome): ``clickhouse``, ``bigquery``, ``snowflake``, ``trino``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

Column = sa.ColumnElement[Any]


def quoted(text: str) -> Column:
    """``text`` as an inline SQL string constant.

    Inlined, not bound: zone names are validated IANA names, and an inline constant keeps the
    day expression identical in every place it appears (GROUP BY and window functions).
    """
    return sa.literal_column("'" + text.replace("'", "''") + "'")


def _has_zone(kind: sa.types.TypeEngine[Any]) -> bool:
    return bool(getattr(kind, "timezone", False))


def _floor_div(column: Column, seconds: int) -> Column:
    return column // seconds


def _pg_utc(column: Column, zone: str | None) -> Column:
    # AT TIME ZONE both ways: a wall time read in its zone, then that instant's UTC wall time.
    local = column if zone is None else sa.func.timezone(quoted(zone), column)
    return sa.func.timezone(quoted("UTC"), local)


def _date_trunc_minute(utc: Column) -> Column:
    return sa.func.date_trunc(quoted("minute"), utc)


@dataclass(frozen=True)
class Dialect:
    """How one database computes the UTC day and minute of a timestamp column."""

    #: Whether a date-time column of this type holds instants (else wall times).
    instant: Callable[[sa.types.TypeEngine[Any]], bool]
    #: A naive UTC timestamp of the column (zone None: an instant column); None: cannot.
    to_utc: Callable[[Column, str | None], Column | None]
    #: The date of a naive UTC timestamp.
    day: Callable[[Column], Column]
    #: The minute of a naive UTC timestamp, as a datetime or ISO text (``YYYY-MM-DD HH:MM``).
    minute: Callable[[Column], Column]
    #: Integer division of an epoch-seconds column (to a day or minute number).
    divide: Callable[[Column, int], Column] = _floor_div
    #: Bind the window bounds of an instant column as aware datetimes (else naive UTC).
    aware_bounds: bool = False
    #: Timestamps are ISO-8601 text in UTC (SQLite): compared and bucketed as text.
    text_timestamps: bool = False
    #: Run by the test suite against a real database.
    tested: bool = False


#: Dialect name (``Connection.dialect.name``; MariaDB is read as ``mysql``) -> its SQL.
DIALECTS: dict[str, Dialect] = {
    "sqlite": Dialect(
        instant=lambda kind: False,
        to_utc=lambda column, zone: column,  # only UTC text is accepted (config checks it)
        day=lambda utc: sa.func.date(utc),
        minute=lambda utc: sa.func.strftime("%Y-%m-%d %H:%M", utc),
        text_timestamps=True,
        tested=True,
    ),
    "postgresql": Dialect(
        instant=_has_zone,
        to_utc=_pg_utc,
        day=lambda utc: sa.func.date(utc),
        minute=_date_trunc_minute,
        aware_bounds=True,
        tested=True,
    ),
    "mysql": Dialect(
        # TIMESTAMP is stored in UTC and shown in the session zone, set to UTC.
        instant=lambda kind: isinstance(kind, sa.TIMESTAMP),
        # CONVERT_TZ needs the server's named time-zone tables, often not loaded.
        to_utc=lambda column, zone: column if zone is None else None,
        day=lambda utc: sa.func.date(utc),
        minute=lambda utc: sa.func.date_format(utc, "%Y-%m-%d %H:%i"),
        tested=True,
    ),
    "duckdb": Dialect(
        instant=_has_zone,
        to_utc=_pg_utc,  # timezone(zone, ts) as PostgreSQL's (the session TimeZone is UTC)
        day=lambda utc: sa.cast(utc, sa.Date),
        minute=_date_trunc_minute,
        # ``/`` is float division in DuckDB; ``//`` the integer one.
        divide=lambda column, seconds: column.op("//")(sa.literal_column(str(seconds))),
        aware_bounds=True,
        tested=True,
    ),
    # --- Untested entries: written from the engines' documentation, not run by the suite. ---
    "clickhouse": Dialect(
        # DateTime and DateTime64 are Unix instants (their zone only says how to show them).
        instant=lambda kind: True,
        to_utc=lambda column, zone: sa.func.toTimeZone(column, quoted("UTC")),
        day=lambda utc: sa.func.toDate(utc),
        minute=lambda utc: sa.func.formatDateTime(utc, quoted("%Y-%m-%d %H:%i")),
        divide=lambda column, seconds: sa.func.intDiv(column, seconds),
        aware_bounds=True,
    ),
    "bigquery": Dialect(
        # TIMESTAMP is an instant, DATETIME a wall time.
        instant=lambda kind: isinstance(kind, sa.TIMESTAMP),
        to_utc=lambda column, zone: sa.func.DATETIME(
            column if zone is None else sa.func.TIMESTAMP(column, quoted(zone)), quoted("UTC")
        ),
        day=lambda utc: sa.func.DATE(utc),
        minute=lambda utc: sa.func.DATETIME_TRUNC(utc, sa.literal_column("MINUTE")),
        divide=lambda column, seconds: sa.func.DIV(column, seconds),
        aware_bounds=True,
    ),
    "snowflake": Dialect(
        # TIMESTAMP_TZ and TIMESTAMP_LTZ are instants, TIMESTAMP_NTZ a wall time.
        instant=lambda kind: _has_zone(kind) or type(kind).__name__.endswith(("_TZ", "_LTZ")),
        to_utc=lambda column, zone: (
            sa.func.TO_TIMESTAMP_NTZ(sa.func.CONVERT_TIMEZONE(quoted("UTC"), column))
            if zone is None
            else sa.func.CONVERT_TIMEZONE(quoted(zone), quoted("UTC"), column)
        ),
        day=lambda utc: sa.func.TO_DATE(utc),
        minute=lambda utc: sa.func.DATE_TRUNC(quoted("MINUTE"), utc),
        divide=lambda column, seconds: sa.func.FLOOR(column / seconds),
        aware_bounds=True,
    ),
    "trino": Dialect(
        instant=_has_zone,
        to_utc=lambda column, zone: sa.func.at_timezone(
            column if zone is None else sa.func.with_timezone(column, quoted(zone)),
            quoted("UTC"),
        ),
        day=lambda utc: sa.cast(utc, sa.Date),
        minute=_date_trunc_minute,
        aware_bounds=True,
    ),
}


def dialect_of(name: str) -> Dialect:
    """The entry of a SQLAlchemy dialect name (``mariadb`` is ``mysql``); KeyError if none."""
    return DIALECTS["mysql" if name == "mariadb" else name]
