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
from typing import TYPE_CHECKING

from sqlalchemy import exc, select
from sqlalchemy.orm import Session

from recon_job.diagnosis.prices import RELATIVE_TOLERANCE
from recon_job.findings import PriceFinding
from recon_job.store.schema import PriceFindingRow


class PriceFindingStore:
    """The ``price_findings`` table; needs ``_write``, ``_read`` and ``_errors`` of
    HistoryStore."""

    if TYPE_CHECKING:

        def _write(self) -> AbstractContextManager[Session]: ...
        def _read(self) -> AbstractContextManager[Session]: ...
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
        with self._errors("record price findings"), self._write() as session:
            for finding in findings:
                last = finding.last_day or finding.since
                row = _matching(session, finding)
                if row is None:
                    row = _inserted(
                        session,
                        PriceFindingRow(
                            model=finding.model,
                            piece=finding.piece,
                            tier=finding.tier,
                            billed=finding.billed.normalize(),
                            table_price=finding.table,
                            unit=finding.unit,
                            since=finding.since,
                            last_day=last,
                            first_seen_at=now,
                        ),
                        finding,
                    )
                    if row is None:
                        new.append(finding)
                        continue
                row.since = min(row.since, finding.since)
                if last >= row.last_day:
                    row.last_day = last
                    row.table_price = finding.table
        return new

    def price_finding_history(self) -> list[PriceFinding]:
        """Every stored price finding, by model, piece, tier and ``since``."""
        query = select(PriceFindingRow).order_by(
            PriceFindingRow.model,
            PriceFindingRow.piece,
            PriceFindingRow.tier,
            PriceFindingRow.since,
            PriceFindingRow.id,
        )
        with self._errors("read price findings"), self._read() as session:
            return [_finding(row) for row in session.scalars(query)]


def _matching(session: Session, finding: PriceFinding) -> PriceFindingRow | None:
    """The stored row of the same model, piece and tier whose price is within the tolerance
    (the closest), or None."""
    rows = session.scalars(
        select(PriceFindingRow)
        .where(
            PriceFindingRow.model == finding.model,
            PriceFindingRow.piece == finding.piece,
            PriceFindingRow.tier == finding.tier,
        )
        .with_for_update()
    ).all()
    close = [
        row
        for row in rows
        if abs(row.billed - finding.billed) <= RELATIVE_TOLERANCE * abs(finding.billed)
    ]
    return min(close, key=lambda row: abs(row.billed - finding.billed), default=None)


def _inserted(
    session: Session, row: PriceFindingRow, finding: PriceFinding
) -> PriceFindingRow | None:
    """Insert ``row`` (flushed, so a later finding of this call sees it); None when inserted,
    the row another process inserted first (PostgreSQL: the unique key says so) otherwise."""
    try:
        with session.begin_nested():
            session.add(row)
    except exc.IntegrityError:
        return _matching(session, finding)
    return None


def _finding(row: PriceFindingRow) -> PriceFinding:
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
