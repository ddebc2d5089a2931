"""``GET /api/admin/reconcile-openai-costs`` read from the SQL source's write-back, read-only.

``recon-job reconcile-requests --apply`` (and ``POST ... dryRun: false``) writes each request's
actual cost in cents and its reconciliation status into the source's table
(:data:`~recon_job.per_request.writeback.WRITEBACK_COLUMNS`). This module lists the rows whose
status is ``discrepancy``, largest absolute difference first, then by the table's primary key,
a page at a time with an opaque keyset cursor. Only SQLAlchemy Core with bound parameters; the
identifiers are the ones the config validated, quoted by SQLAlchemy. The source's ``filter``
applies, as it does to the reconciliation itself.
"""

from __future__ import annotations

import base64
import binascii
import json
from decimal import Decimal, InvalidOperation
from typing import Any, Final
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import exc

from recon_job.errors import LogSourceError
from recon_job.models import MONEY
from recon_job.per_request.classify import RequestStatus
from recon_job.per_request.local import utc_moment
from recon_job.per_request.writeback import (
    ACTUAL_COLUMN,
    STATUS_COLUMN,
    WRITEBACK_COLUMNS,
    RequestTable,
)
from recon_job.web.auth import WebError

_BAD_CURSOR: Final = "cursor must be the nextCursor of the previous page"
_HUNDRED: Final = Decimal(100)
#: The statuses of requests both sides priced: what the totals are over.
_BOTH_SIDES: Final = (RequestStatus.MATCHED.value, RequestStatus.DISCREPANCY.value)
#: Decimal places the ordering difference is rounded to, so that a cursor round-trips exactly
#: on every backend (SQLite computes in floating point).
_PLACES: Final = 6
_NUMERIC: Final = sa.Numeric(38, _PLACES)


Cursor = tuple[Decimal, int | str] | None


def parse_cursor(cursor: str | None) -> Cursor:
    """The (difference, id) a ``nextCursor`` stands for; a 400 when it is not one."""
    if cursor is None:
        return None
    try:
        if len(cursor) > 400:
            raise ValueError
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        diff_text, key = json.loads(raw)
        diff = Decimal(diff_text)
    except (ValueError, TypeError, binascii.Error, InvalidOperation, UnicodeDecodeError):
        raise WebError(400, _BAD_CURSOR) from None
    if not isinstance(diff_text, str) or not diff.is_finite() or diff < 0:
        raise WebError(400, _BAD_CURSOR)
    if isinstance(key, bool) or not isinstance(key, (int, str)):
        raise WebError(400, _BAD_CURSOR)
    return diff, key


def _encode(diff: Decimal, key: int | str) -> str:
    raw = json.dumps([format(diff, "f"), key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cents(value: Any, factor: Decimal) -> str | None:
    if value is None:
        return None
    return format(MONEY.multiply(Decimal(str(value)), factor).normalize(MONEY), "f")


def _iso(value: Any, zone: str) -> str | None:
    """`created_at`: the timestamp column read as a run reads it, in UTC (None if unreadable)."""
    at = utc_moment(value, ZoneInfo(zone))
    return None if at is None else at.isoformat().replace("+00:00", "Z")


def _primary_key(table: RequestTable) -> str:
    """The table's single-column primary key, else the request id column."""
    try:
        with table.engine().connect() as conn:
            pk = sa.inspect(conn).get_pk_constraint(table.table_name, schema=table.schema or None)
    except exc.SQLAlchemyError as e:
        raise WebError(503, f"source {table.name!r}: cannot read the table's primary key") from e
    columns = pk.get("constrained_columns") or []
    return str(columns[0]) if len(columns) == 1 else table.request_column


def page(named_spec: tuple[str, Any], limit: int, cursor: str | None) -> dict[str, Any] | None:
    """The seed's GET answer from the table (``source: "table"``); None when the table has no
    write-back columns (it cannot be written to: the caller answers from the last upload)."""
    name, spec = named_spec
    table = RequestTable(spec.url, spec.table, spec.columns, filter=spec.filter, name=name)
    try:
        existing = table.existing_columns()
        table.check_mapped_columns(existing)
        if not set(WRITEBACK_COLUMNS) <= existing:
            return None
        return _page(table, spec, existing, limit, parse_cursor(cursor))
    except LogSourceError as e:
        status = 409 if e.permanent else 503
        raise WebError(status, e.message) from None
    finally:
        table.close()


def _page(
    table: RequestTable, spec: Any, existing: set[str], limit: int, cursor: Cursor
) -> dict[str, Any]:
    columns = spec.columns
    key_column = _primary_key(table)
    # The estimate's unit: the cost column in cents, or in USD (x 100).
    factor = Decimal(1) if spec.cost_unit == "cents" else _HUNDRED
    wanted = {
        "id": key_column,
        "request_id": table.request_column,
        "actual": ACTUAL_COLUMN,
        "status": STATUS_COLUMN,
    }
    for canonical, label in (("model", "model"), ("cost", "cost"), ("timestamp", "created_at")):
        if canonical in columns:
            wanted[label] = columns[canonical]
    action = columns.get("action_type", "action_type")
    if action in existing:
        wanted["action_type"] = action
    types: dict[str, Any] = {
        "actual": _NUMERIC,
        "cost": _NUMERIC,
        "created_at": sa.DateTime(),
    }
    unique: dict[str, Any] = {}
    for label, c in wanted.items():
        unique.setdefault(c, sa.column(c, types.get(label)))
    t = sa.table(table.table_name, *unique.values(), schema=table.schema or None)

    def col(label: str) -> Any:
        return t.c[wanted[label]]

    in_source: list[Any] = [col("request_id").is_not(None)]
    if table.filter:
        in_source.append(sa.text(table.filter))
    estimate = col("cost") * factor if "cost" in wanted else sa.literal(0, _NUMERIC)
    gap = sa.func.round(sa.func.abs(col("actual") - sa.func.coalesce(estimate, 0)), _PLACES)
    diff = gap.label("diff")
    where = [*in_source, col("status") == sa.bindparam("p_status", "discrepancy")]
    if cursor is not None:
        after_diff, after_key = cursor
        bound_diff = sa.bindparam("p_diff", after_diff, type_=_NUMERIC)
        bound_key: sa.BindParameter[Any] = sa.bindparam("p_key", after_key)
        where.append(
            sa.or_(
                gap < bound_diff,
                sa.and_(gap == bound_diff, col("id") > bound_key),
            )
        )
    shown = [col(label).label(label) for label in wanted if label != "status"]
    listing = (
        sa.select(*shown, diff).where(*where).order_by(gap.desc(), col("id").asc()).limit(limit + 1)
    )
    estimate_sum = sa.func.sum(estimate) if "cost" in wanted else sa.literal(0, _NUMERIC)
    totals = (
        sa.select(
            col("status").label("status"),
            sa.func.count().label("n"),
            estimate_sum.label("estimated"),
            sa.func.sum(col("actual")).label("actual"),
        )
        .where(*in_source, col("status").is_not(None))
        .group_by(col("status"))
    )
    pending = sa.select(sa.func.count()).select_from(t).where(*in_source, col("actual").is_(None))
    try:
        with table.engine().connect() as conn:
            rows = conn.execute(listing).all()
            groups = conn.execute(totals).all()
            pending_count = int(conn.execute(pending).scalar_one())
    except exc.SQLAlchemyError as e:
        raise table._error(e, "reading the reconciliation results") from e
    more = len(rows) > limit
    rows = rows[:limit]
    counts = {str(g.status): int(g.n) for g in groups}
    # As an upload's summary (recon_job.per_request.classify): the totals are over the requests
    # both sides priced, and the difference is ours minus OpenAI's.
    both = [g for g in groups if str(g.status) in _BOTH_SIDES]
    estimated = sum((Decimal(str(g.estimated or 0)) for g in both), Decimal(0))
    actual = sum((Decimal(str(g.actual or 0)) for g in both), Decimal(0))
    last = rows[-1]._mapping if rows else None
    return {
        "summary": {
            "total": sum(counts.values()),
            "pending": counts.get("pending", 0),
            "matched": counts.get("matched", 0),
            "discrepancies": counts.get("discrepancy", 0),
            "totalEstimatedCents": _cents(estimated, Decimal(1)),
            "totalActualCents": _cents(actual, Decimal(1)),
            "totalDifferenceCents": _cents(estimated - actual, Decimal(1)),
            # A write-back keeps the rows your side has: billed rows it lacks are not there.
            "totalBilledCents": None,
            "notFoundCents": None,
        },
        "discrepancies": [
            {
                "id": _key(m["id"]),
                "action_type": m.get("action_type"),
                "model_used": m.get("model"),
                "calculated_cost_cents": _cents(m.get("cost"), factor),
                "actual_cost_cents": _cents(m["actual"], Decimal(1)),
                "openai_request_id": str(m["request_id"]),
                "created_at": _iso(m.get("created_at"), spec.timezone),
            }
            for m in (r._mapping for r in rows)
        ],
        "pendingCount": pending_count,
        "nextCursor": (
            _encode(Decimal(str(last["diff"])), _key(last["id"]))
            if more and last is not None
            else None
        ),
        "source": "table",
        "success": True,
    }


def _key(value: Any) -> int | str:
    return value if isinstance(value, int) and not isinstance(value, bool) else str(value)
