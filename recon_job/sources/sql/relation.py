"""DuckDB's side of the SQL source: a table or a relation, described by DuckDB itself.

SQLAlchemy's reflection goes through PostgreSQL's catalog, which DuckDB only imitates (and not
all of it: reflecting a table fails on DuckDB 2), and a relation such as
``read_parquet('lake/*.parquet')`` is no table to reflect. So on DuckDB the columns come from
``DESCRIBE SELECT * FROM <table or relation>``, and their DuckDB type names are mapped to the
SQLAlchemy types the query looks at (integer, decimal, float, text, timestamp with or without a
zone). A relation is read as ``(SELECT * FROM <relation>) AS recon_relation``: DuckDB pushes the
projection and the window's range down into the Parquet scan.

The relation text is inserted as written: it was validated by the settings (one call of a
file-reading table function with literal arguments, see
:func:`recon_job.config.relation.relation_problem`).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from recon_job.sources.sql.options import SqlTableOptions

#: DuckDB integer type names (all read as whole numbers).
_INTEGERS = frozenset(
    {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"}
    | {"UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"}
)
_FLOATS = frozenset({"FLOAT", "REAL", "DOUBLE"})
_TEXT = frozenset({"VARCHAR", "TEXT", "STRING", "UUID"})
#: Alias of the relation's subquery.
RELATION_ALIAS = "recon_relation"


def column_type(name: str) -> sa.types.TypeEngine[Any]:
    """The SQLAlchemy type of a DuckDB type name as ``DESCRIBE`` shows it."""
    upper = name.upper().strip()
    if upper in ("TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE"):
        return sa.DateTime(timezone=True)
    if upper.startswith("TIMESTAMP"):  # TIMESTAMP, TIMESTAMP_S/_MS/_NS: wall times
        return sa.DateTime()
    if upper in _INTEGERS:
        return sa.BigInteger()
    if upper.startswith(("DECIMAL", "NUMERIC")):
        return sa.Numeric()
    if upper in _FLOATS:
        return sa.Float()
    if upper in _TEXT:
        return sa.String()
    if upper == "BOOLEAN":
        return sa.Boolean()
    if upper == "DATE":
        return sa.Date()
    return sa.types.NullType()


def source_sql(options: SqlTableOptions, conn: sa.Connection) -> str:
    """What follows ``FROM``: the relation as written, or the quoted ``[schema.]table``."""
    if options.relation is not None:
        return options.relation
    quote = conn.dialect.identifier_preparer.quote
    return ".".join(quote(part) for part in str(options.table).split("."))


def described(options: SqlTableOptions, conn: sa.Connection) -> sa.Table | sa.Subquery:
    """The table or relation with the columns and types DuckDB describes (DBAPIError if not)."""
    sql = source_sql(options, conn)
    rows = conn.exec_driver_sql(f"DESCRIBE SELECT * FROM {sql}").all()
    columns = [(str(row[0]), column_type(str(row[1]))) for row in rows]
    if options.relation is None:
        schema, _, name = str(options.table).rpartition(".")
        return sa.Table(
            name,
            sa.MetaData(),
            *(sa.Column(column, kind) for column, kind in columns),
            schema=schema or None,
        )
    # A colon in a literal ('a:b') must not read as a bind parameter of text().
    escaped = sql.replace(":", "\\:")
    text = sa.text(f"SELECT * FROM {escaped}").columns(
        *(sa.column(column, kind) for column, kind in columns)
    )
    return text.subquery(RELATION_ALIAS)
