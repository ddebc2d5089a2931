"""Stale-price findings in the history: one row per model x piece x tier x billed price (0008).

A mixin of :class:`~recon_job.store.HistoryStore`. Each run records the price findings of its
window (:func:`recon_job.diagnosis.prices.price_findings`); a row keeps the earliest day ever
seen billed at that price (``since``) and the latest (``last_day``), and the table's figure as
last seen. :meth:`PriceFindingStore.record_price_findings` returns the findings seen for the
first time: the ``price_changed`` alert is sent once per model x piece x tier x price.

A billed price within :data:`~recon_job.diagnosis.prices.RELATIVE_TOLERANCE` of one already
stored for the same model, piece and tier is that one (OpenAI's rounding moves a computed unit
price by a hair from one window to the next; it is not a new price).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, exc, insert, select, update

from recon_job.diagnosis.prices import RELATIVE_TOLERANCE
from recon_job.findings import PriceFinding
from recon_job.store.schema import price_findings


class PriceFindingStore:
    """The ``price_findings`` table; needs ``_write``, ``_read`` and ``_errors`` of
    HistoryStore."""

    if TYPE_CHECKING:

        def _write(self) -> AbstractContextManager[Connection]: ...
        def _read(self) -> AbstractContextManager[Connection]: ...
        def _errors(self, action: str) -> AbstractContextManager[None]: ...

    def record_price_findings(
        self, findings: Iterable[PriceFinding], now: datetime
    ) -> list[PriceFinding]:
        """Record ``findings`` (``now``: aware UTC, when first seen); return the new ones.

        A finding already stored (same model, piece, tier, and a billed price within the
        tolerance) widens its row's ``since`` / ``last_day`` and updates the table's figure; it
        is not returned. A new one is inserted and returned, with ``since`` as recorded.
        """
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("now must be an aware UTC datetime")
        new: list[PriceFinding] = []
        if not findings:
            return new  # no write transaction (on SQLite, no write lock) for nothing
        with self._errors("record price findings"), self._write() as conn:
            for finding in findings:
                last = finding.last_day or finding.since
                row = _matching(conn, finding)
                if row is None:
                    row = _inserted(
                        conn,
                        {
                            "model": finding.model,
                            "piece": finding.piece,
                            "tier": finding.tier,
                            "billed": finding.billed.normalize(),
                            "table_price": finding.table,
                            "unit": finding.unit,
                            "since": finding.since,
                            "last_day": last,
                            "first_seen_at": now,
                        },
                        finding,
                    )
                    if row is None:
                        new.append(finding)
                        continue
                wanted: dict[str, Any] = {"since": min(row.since, finding.since)}
                if last >= row.last_day:
                    wanted.update(last_day=last, table_price=finding.table)
                # Only the columns whose value changes: an equal Decimal keeps its stored scale.
                changed = {
                    name: value for name, value in wanted.items() if value != row._mapping[name]
                }
                if changed:
                    conn.execute(
                        update(price_findings)
                        .where(price_findings.c.id == row.id)
                        .values(**changed)
                    )
        return new

    def price_finding_history(self) -> list[PriceFinding]:
        """Every stored price finding, by model, piece, tier and ``since``."""
        query = select(price_findings).order_by(
            price_findings.c.model,
            price_findings.c.piece,
            price_findings.c.tier,
            price_findings.c.since,
            price_findings.c.id,
        )
        with self._errors("read price findings"), self._read() as conn:
            return [_finding(row) for row in conn.execute(query)]


def _matching(conn: Connection, finding: PriceFinding) -> Row[Any] | None:
    """The stored row of the same model, piece and tier whose price is within the tolerance
    (the closest), or None."""
    rows = conn.execute(
        select(price_findings)
        .where(
            price_findings.c.model == finding.model,
            price_findings.c.piece == finding.piece,
            price_findings.c.tier == finding.tier,
        )
        .with_for_update()
    ).all()
    close = [
        row
        for row in rows
        if abs(row.billed - finding.billed) <= RELATIVE_TOLERANCE * abs(finding.billed)
    ]
    return min(close, key=lambda row: abs(row.billed - finding.billed), default=None)


def _inserted(conn: Connection, values: dict[str, Any], finding: PriceFinding) -> Row[Any] | None:
    """Insert a row of ``values`` (at once, so a later finding of this call sees it); None when
    inserted, the row another process inserted first (PostgreSQL: the unique key says so)
    otherwise."""
    try:
        with conn.begin_nested():
            conn.execute(insert(price_findings).values(**values))
    except exc.IntegrityError:
        return _matching(conn, finding)
    return None


def _finding(row: Row[Any]) -> PriceFinding:
    return PriceFinding(
        model=row.model,
        piece=row.piece,
        tier=row.tier,
        billed=row.billed,
        table=row.table_price,
        unit=row.unit,
        since=row.since,
        last_day=row.last_day,
    )
