"""Column types that keep money exact and timestamps in UTC on every backend.

SQLite has neither an exact numeric type nor time zones: its ``NUMERIC`` affinity turns
``0.0034`` into a float, and SQLAlchemy's SQLite ``DateTime`` drops ``tzinfo``. These two
decorators make both backends return what was written: a ``Decimal`` equal to the one stored and
an aware UTC ``datetime``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, Dialect, Text
from sqlalchemy.types import TypeDecorator, TypeEngine


class ExactDecimal(TypeDecorator[Decimal]):
    """A ``Decimal`` stored without rounding: unbounded ``NUMERIC`` on PostgreSQL, text elsewhere.

    PostgreSQL's ``numeric`` without precision keeps every digit and the scale as given, so it is
    used instead of ``Numeric(38, 18)``, which would silently round a percentage such as
    ``33.33…`` (28 significant digits) or a 36-decimal amount. Elsewhere the value is stored as
    its canonical fixed-point string (``format(d, "f")``), which ``Decimal()`` reads back exactly.
    Floats are refused (money is never float); NaN and infinities are refused as well.
    """

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """NUMERIC on PostgreSQL, TEXT on every other backend."""
        if dialect.name == "postgresql":
            # Imported here: SQLite histories never load the PostgreSQL dialect.
            from sqlalchemy.dialects import postgresql

            return dialect.type_descriptor(postgresql.NUMERIC())
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Decimal | str | None:
        """Validate and convert a ``Decimal`` (or ``int``) for the backend."""
        if value is None:
            return None
        # bool is an int subclass; a flag in a money column is a bug, not an amount.
        if isinstance(value, bool) or not isinstance(value, Decimal | int):
            raise TypeError(f"expected a Decimal amount, got {type(value).__name__}")
        exact = Decimal(value)
        if not exact.is_finite():
            raise ValueError(f"cannot store non-finite amount {exact}")
        if dialect.name == "postgresql":
            return exact
        return format(exact, "f")

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        """Read the stored value back as a ``Decimal``."""
        if value is None:
            return None
        if isinstance(value, Decimal):
            return value
        return Decimal(str(value))


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime, stored as UTC and always returned as an aware UTC datetime.

    Naive datetimes are refused: the store cannot know which zone they meant. On SQLite the value
    is stored as naive UTC (the dialect drops ``tzinfo``) and UTC is re-attached on read; on
    PostgreSQL it is a ``timestamptz``, converted to UTC on read whatever the session zone.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert an aware datetime to UTC (naive UTC on SQLite)."""
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"refusing naive datetime {value.isoformat()}: pass an aware UTC time")
        utc = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return utc.replace(tzinfo=None)
        return utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return the stored instant as an aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
