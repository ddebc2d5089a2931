"""The daily drift % series the trend rule reads (issue 12, item 8).

A mixin of :class:`~recon_job.store.HistoryStore`, read-only. One day's figure per family x
model comes from the latest completed daily run of that day (``reconciled`` or ``mismatch``; a
forced rerun replaces an earlier one), its groups summed over projects and API keys, and the
percentage computed again from the sums: ``(local - OpenAI) x 100 / OpenAI`` of the cost, or of
the tokens for a family x model OpenAI never billed in the period (one measure per series, so a
series never jumps from one to the other). Untracked groups (a family the logs do not have at
all) are left out: they are not drift. A day with no such run, or with no OpenAI figure, is a gap.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import TYPE_CHECKING

from sqlalchemy import Connection, func, select

from recon_job.models import Status
from recon_job.store.records import COMPLETE
from recon_job.store.schema import run_groups, runs

_CONTEXT = Context(prec=34)
_HUNDRED = Decimal(100)
#: Digits of a day's drift %: far below any slack, and stable to print and compare.
_QUANTUM = Decimal("0.0001")


@dataclass(slots=True)
class _Sums:
    local_cost: Decimal = Decimal(0)
    openai_cost: Decimal = Decimal(0)
    local_tokens: int = 0
    openai_tokens: int = 0


class TrendStore:
    """Drift series from the history; needs ``_read`` and ``_errors`` of HistoryStore."""

    if TYPE_CHECKING:

        def _read(self) -> AbstractContextManager[Connection]: ...
        def _errors(self, action: str) -> AbstractContextManager[None]: ...

    def drift_series(self, end: date, days: int) -> dict[tuple[str, str], dict[date, Decimal]]:
        """Per ``(family, model)``, the drift % of each of the ``days`` UTC days up to ``end``
        (included), oldest first; days without a figure are missing. One query.

        Amounts are summed in Python, not in SQL: SQLite keeps exact decimals as text, and its
        ``SUM`` would turn them into floats.
        """
        if days < 1:
            raise ValueError(f"days must be at least 1, got {days}")
        first = end - timedelta(days=days - 1)
        latest = (
            select(runs.c.window_start.label("day"), func.max(runs.c.id).label("run_id"))
            .where(runs.c.window_kind == "daily")
            .where(runs.c.status.in_([status.value for status in COMPLETE]))
            .where(runs.c.window_start >= first, runs.c.window_start <= end)
            .group_by(runs.c.window_start)
            .subquery()
        )
        groups = run_groups.c
        query = (
            select(
                groups.day,
                groups.family,
                groups.model,
                groups.local_cost,
                groups.openai_cost,
                groups.local_input_tokens + groups.local_output_tokens,
                groups.openai_input_tokens + groups.openai_output_tokens,
            )
            .join(latest, (groups.run_id == latest.c.run_id) & (groups.day == latest.c.day))
            .where(groups.status != Status.UNTRACKED.value)
        )
        sums: dict[tuple[str, str], dict[date, _Sums]] = {}
        with self._errors("read the drift series"), self._read() as conn:
            for (
                day,
                family,
                model,
                local_cost,
                openai_cost,
                local_tokens,
                openai_tokens,
            ) in conn.execute(query):
                one = sums.setdefault((family, model), {}).setdefault(day, _Sums())
                one.local_cost += local_cost
                one.openai_cost += openai_cost
                one.local_tokens += int(local_tokens or 0)
                one.openai_tokens += int(openai_tokens or 0)
        return {name: dict(_series(sums[name])) for name in sorted(sums)}


def _series(by_day: dict[date, _Sums]) -> Iterator[tuple[date, Decimal]]:
    by_cost = any(s.openai_cost for s in by_day.values())
    for day in sorted(by_day):
        s = by_day[day]
        local, openai = (
            (s.local_cost, s.openai_cost)
            if by_cost
            else (Decimal(s.local_tokens), Decimal(s.openai_tokens))
        )
        if openai:
            pct = _CONTEXT.divide(_CONTEXT.multiply(local - openai, _HUNDRED), openai)
            yield day, pct.quantize(_QUANTUM, ROUND_HALF_EVEN)
