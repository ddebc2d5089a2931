"""The SQL source's duplicate request ids and its per-minute series, both computed in SQL.

**Duplicates** (``SqlTableOptions.dedupe``, with a ``request_id`` column). First one
``GROUP BY day, request_id HAVING COUNT(*) > 1`` over the window's counted rows says how many
ids repeat on a UTC day (a hash aggregate: a table without repeats pays only that query).
Only when some do, those rows are numbered by timestamp with ``ROW_NUMBER() OVER (PARTITION BY
day, request_id ...)`` (:meth:`~recon_job.sources.sql.query.AggregateQuery.repeats`), the
aggregate query runs again over the rows numbered 2 and above (the extra rows), their sums are
taken off the fetch's groups and priced apart (the dollars they would have added), and the
first few extra rows are named as ``table:request_id``. The database does the work: Python
memory grows with the groups, never with the rows or the ids.

**Series.** The aggregate query grouped by the minute of each row instead of its day
(:meth:`~recon_job.sources.sql.query.AggregateQuery.minute`: ``date_trunc`` on PostgreSQL,
``strftime`` on SQLite, ``DATE_FORMAT`` on MySQL/MariaDB, integer division for epoch seconds);
Python puts each minute in its bucket of the width asked and prices each bucket's sums as a
day's. The bounds are applied to the minute: a ``start`` or ``end`` inside a minute is taken at
that minute's start.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from recon_job.findings import Duplicates
from recon_job.modelnames import ModelNamer
from recon_job.models import EMPTY, ZERO, Usage, Window
from recon_job.sources.aggregate import AggregateKey, price_aggregates
from recon_job.sources.base import Pricer, SeriesKey, bucket_of
from recon_job.sources.sql.options import SqlTableOptions
from recon_job.sources.sql.query import AggregateQuery, QueryTotals

#: How many extra rows are named in ``Duplicates.locations``.
LOCATIONS = 5
_NUMBER = "recon_rn"
_BYTES = 17


def find_duplicates(
    conn: sa.Connection,
    query: AggregateQuery,
    window: Window,
    pricer: Pricer,
    namer: ModelNamer | None,
) -> tuple[QueryTotals | None, Duplicates | None]:
    """The extra rows of ``window`` as sums (to take off the fetch's), and their summary.

    ``(None, None)`` when the source does not dedupe (off, or no ``request_id`` column);
    ``(None, Duplicates(0, 0, 0))`` when no id repeats.
    """
    options = query.options
    counting = query.repeated_ids(window) if options.dedupe else None
    repeats = query.repeats(window) if counting is not None else None
    if counting is None or repeats is None:
        return None, None
    # A hash aggregate says whether any id repeats; the rows are numbered only when some do.
    repeated_ids = int(conn.execute(counting).scalar_one() or 0)
    if not repeated_ids:
        return None, Duplicates(count=0, request_ids=0, cost=ZERO)
    number = repeats.c[_NUMBER]
    inner = AggregateQuery(options, repeats, conn.dialect.name)
    rows = conn.execute(inner.select(window).where(number > 1)).all()
    extras = QueryTotals(window, options, inner.day_base).add_rows(rows)
    rid = inner.col["request_id"]
    first = conn.execute(
        sa.select(rid).where(number == 2).order_by(inner.col["timestamp"], rid).limit(LOCATIONS)
    ).scalars()
    priced = extras.build(pricer, namer)
    duplicates = Duplicates(
        count=extras.info["rows_counted"],
        request_ids=repeated_ids,
        # Priced extras only: an unpriced model's would-be dollars are unknown, not 0.
        cost=sum((usage.cost for usage in priced.groups.values()), ZERO),
        locations=tuple(f"{options.name}:{value}" for value in first),
    )
    return extras, duplicates


def take_off(acc: dict[AggregateKey, list[Any]], extras: dict[AggregateKey, list[Any]]) -> None:
    """Take the extra rows' sums off the counted ones (an aggregate of nothing else goes).

    ``usage_bytes`` is a level, not a sum: it stays (a repeated row repeats its level).
    """
    for key, sums in extras.items():
        mine = acc.get(key)
        if mine is None:  # not expected: every extra row is a counted row too
            continue
        if all(mine[i] == value for i, value in enumerate(sums) if i != _BYTES):
            del acc[key]
            continue
        for i, value in enumerate(sums):
            if i != _BYTES:
                mine[i] -= value


def series(  # noqa: PLR0913 -- the query, its bounds and the pricing
    conn: sa.Connection,
    query: AggregateQuery,
    bounds: tuple[datetime, datetime, timedelta],
    window: Window,
    pricer: Pricer,
    namer: ModelNamer | None,
) -> dict[SeriesKey, dict[datetime, Usage]]:
    """Usage per group and bucket in ``bounds`` (``start``, ``end``, width; ``window``: the
    UTC days they touch), deduped as ``fetch`` dedupes."""
    options = query.options
    rows = conn.execute(query.select(window, day=query.minute())).all()
    counted = _per_bucket(query, rows, bounds)
    extras: dict[datetime, list[tuple[Any, ...]]] = {}
    repeats = query.repeats(window) if options.dedupe else None
    if repeats is not None:
        inner = AggregateQuery(options, repeats, conn.dialect.name)
        statement = inner.select(window, day=inner.minute()).where(repeats.c[_NUMBER] > 1)
        extras = _per_bucket(inner, conn.execute(statement).all(), bounds)
    out: dict[SeriesKey, dict[datetime, Usage]] = {}
    for bucket in sorted(counted):
        acc = _sums(options, bucket, counted[bucket])
        if bucket in extras:
            take_off(acc, _sums(options, bucket, extras[bucket]))
        totals = price_aggregates(acc.items(), pricer, namer, skipped={}, info={})
        for key, usage in totals.groups.items():
            per_bucket = out.setdefault((key.family, key.model, key.project_id), {})
            per_bucket[bucket] = per_bucket.get(bucket, EMPTY) + usage
    return out


def _per_bucket(
    query: AggregateQuery,
    rows: Iterable[Sequence[Any]],
    bounds: tuple[datetime, datetime, timedelta],
) -> dict[datetime, list[tuple[Any, ...]]]:
    """Result rows by bucket, their minute replaced by its UTC day (what QueryTotals reads)."""
    start, end, width = bounds
    # Bounds inside a minute are taken at its start (rows are known to the minute only).
    start = start.replace(second=0, microsecond=0)
    end = end.replace(second=0, microsecond=0)
    found: dict[datetime, list[tuple[Any, ...]]] = {}
    for row in rows:
        minute = query.utc_minute(row[0])
        if minute is None or not start <= minute < end:
            continue
        found.setdefault(bucket_of(minute, width), []).append((minute.date(), *row[1:]))
    return found


def _sums(
    options: SqlTableOptions, bucket: datetime, rows: list[tuple[Any, ...]]
) -> dict[AggregateKey, list[Any]]:
    day = bucket.date()
    window = Window("daily", day, day + timedelta(days=1))
    return QueryTotals(window, options, None).add_rows(rows).acc
