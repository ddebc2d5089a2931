"""Usage series fetched from OpenAI in hourly or minute buckets, kept so they are fetched once.

A mixin of :class:`~recon_job.store.HistoryStore` over the ``openai_series`` table (0008): one
row per family x width x span, its points as a JSON list of ``{"start", "model",
"project_id", <usage>}`` (cost as an exact decimal string, quantities of other families only
when not zero). :class:`~recon_job.sources.openai.series.SeriesFetcher` reads it before asking
OpenAI, so a rerun, ``recon-job explain`` or the dashboard never asks again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, delete, exc, insert, select

from recon_job.models import SeriesPoint, Usage
from recon_job.store.records import dumps, usage_to_json
from recon_job.store.schema import openai_series


def series_json(points: Sequence[SeriesPoint]) -> str:
    """The ``payload`` column of ``points``."""
    return dumps(
        [
            {
                "start": point.start.astimezone(UTC).isoformat(),
                "model": point.model,
                "project_id": point.project_id,
                **usage_to_json(point.usage),
            }
            for point in points
        ]
    )


def series_points(payload: str) -> list[SeriesPoint]:
    """The points of a ``payload`` column, in stored order."""
    points = []
    for entry in json.loads(payload):
        fields: dict[str, Any] = dict(entry)
        start = datetime.fromisoformat(fields.pop("start")).astimezone(UTC)
        model = fields.pop("model")
        project_id = fields.pop("project_id")
        usage = Usage(**{**fields, "cost": Decimal(fields["cost"])})
        points.append(SeriesPoint(start=start, model=model, project_id=project_id, usage=usage))
    return points


def _aware(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be an aware UTC datetime")
    return moment.astimezone(UTC)


class SeriesStore:
    """The ``openai_series`` table; needs ``_write``, ``_read`` and ``_errors`` of
    HistoryStore."""

    if TYPE_CHECKING:

        def _write(self) -> AbstractContextManager[Connection]: ...
        def _read(self) -> AbstractContextManager[Connection]: ...
        def _errors(self, action: str) -> AbstractContextManager[None]: ...

    def cached_series(
        self, family: str, width: str, start_at: datetime, end_at: datetime
    ) -> list[SeriesPoint] | None:
        """The points stored for exactly ``family``, ``width`` (``1h``/``1m``) and
        ``[start_at, end_at)``; None when that span was never saved (an empty list is a span
        OpenAI had no usage in)."""
        start_at, end_at = _aware(start_at, "start_at"), _aware(end_at, "end_at")
        with self._errors("read a cached OpenAI series"), self._read() as conn:
            payload = conn.scalar(
                select(openai_series.c.payload).where(
                    openai_series.c.family == family,
                    openai_series.c.width == width,
                    openai_series.c.start_at == start_at,
                    openai_series.c.end_at == end_at,
                )
            )
        return None if payload is None else series_points(payload)

    def save_series(  # noqa: PLR0913 -- the row's key, then its content
        self,
        family: str,
        width: str,
        start_at: datetime,
        end_at: datetime,
        points: Sequence[SeriesPoint],
        fetched_at: datetime,
    ) -> None:
        """Store ``points`` for ``family``, ``width`` and ``[start_at, end_at)``, replacing a
        row already stored for them (``fetched_at``: aware UTC)."""
        start_at, end_at = _aware(start_at, "start_at"), _aware(end_at, "end_at")
        fetched_at = _aware(fetched_at, "fetched_at")
        payload = series_json(points)
        with self._errors("cache an OpenAI series"), self._write() as conn:
            # Delete then insert in one transaction: portable across SQLite and PostgreSQL,
            # and two runs saving the same span leave one row (the unique constraint).
            conn.execute(
                delete(openai_series).where(
                    openai_series.c.family == family,
                    openai_series.c.width == width,
                    openai_series.c.start_at == start_at,
                    openai_series.c.end_at == end_at,
                )
            )
            try:
                with conn.begin_nested():
                    conn.execute(
                        insert(openai_series).values(
                            family=family,
                            width=width,
                            start_at=start_at,
                            end_at=end_at,
                            payload=payload,
                            fetched_at=fetched_at,
                        )
                    )
            except exc.IntegrityError:
                pass  # another run saved the same span meanwhile: its row serves as well
