"""Restatements: OpenAI changed a figure of a day an earlier run had completed (issue 12, item 7).

OpenAI's figures for a day keep moving after the day is settled (billing delays of 24-48 h are
documented): a later fetch of the same day may bill more, or count requests a first fetch had not
seen. A run compares OpenAI's figures of every settled day it fetched with the figures the latest
completed run of that day stored (:meth:`recon_job.store.HistoryStore.previous_official`), and
every quantity that moved is a :class:`~recon_job.findings.Restatement`.

What counts as moved: any change strictly above the quantity's floor
(:meth:`recon_job.models.Tolerance.floor`: ``cost_floor`` for dollars, ``token_floor`` for
tokens, ``request_floor`` for requests, the family floors for images, seconds ...). Not the
percentage threshold: a restated figure is a fact about OpenAI's own books, and $1.85 on a $41
day is worth knowing even though it is under 5%. A group present on one side only is compared
with zero usage on the other, so a group appearing or disappearing with material figures is a
restatement too, and one that appears with a few cents is not.

Quantities compared (:data:`QUANTITIES`): cost, requests, input and output tokens, and the
non-token quantities of the other families. The token classes inside input and output (cached,
audio, image tokens) are left out: they move with their total and would say the same thing
twice; a reclassification that changes the bill shows as a cost restatement.

Groups are days x family x model, summed over API keys, and over projects unless ``by_project``
(:func:`official_figures`): the same grouping on both sides whatever the runs' ``group_by`` was.

:func:`recheck_window` widens a daily run's fetch to the last settled days so that the window's
one page covers them (no extra request). Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from recon_job.diagnosis.prices import usd
from recon_job.families import EXTRA_QUANTITIES, EXTRA_TOKEN_CLASSES, family_rank
from recon_job.findings import GroupRef, Restatement
from recon_job.models import Tolerance, Usage, UsageKey, Window
from recon_job.windows import FIRST_DAY, last_settled_day

#: The quantities a restatement is about, in the order findings list them (dollars first).
QUANTITIES: tuple[str, ...] = (
    "cost",
    "requests",
    "input_tokens",
    "output_tokens",
    *(q for q in EXTRA_QUANTITIES if q not in EXTRA_TOKEN_CLASSES),
)

#: Days one Usage API page holds in ``1d`` buckets (``limit`` 31, the binding one: the Costs
#: API's pages hold 180). A recheck never makes a window need one more page.
PAGE_DAYS = 31

#: How quantities read in a sentence.
_NAMES: Mapping[str, str] = {
    "input_tokens": "input tokens",
    "output_tokens": "output tokens",
    "usage_bytes": "stored bytes",
}
_MINUS = "\N{MINUS SIGN}"
_ZERO_USAGE = Usage()


def official_figures(
    groups: Mapping[UsageKey, Usage] | Iterable[tuple[UsageKey, Usage]],
    *,
    days: Collection[date] | None = None,
    by_project: bool = False,
) -> dict[GroupRef, Usage]:
    """OpenAI's figures per :class:`GroupRef`: ``groups`` summed over API keys (and projects
    unless ``by_project``), only the ``days`` given (None: every day).

    ``groups`` are keyed with the model names the run compares under (normalised), like the
    stored ``run_groups``: pass the OpenAI side of a result's groups, or a fetch's groups after
    the run's model normalisation.
    """
    items = groups.items() if isinstance(groups, Mapping) else groups
    wanted = None if days is None else frozenset(days)
    figures: dict[GroupRef, Usage] = {}
    for key, usage in items:
        if wanted is not None and key.day not in wanted:
            continue
        ref = GroupRef(key.day, key.family, key.model, key.project_id if by_project else None)
        figures[ref] = figures[ref] + usage if ref in figures else usage
    return figures


def restatements(  # noqa: PLR0913 -- two sides, the floors, then keyword-only scope options
    previous: Mapping[GroupRef, Usage],
    current: Mapping[GroupRef, Usage],
    tolerance: Tolerance,
    *,
    seen_at: datetime,
    days: Collection[date] | None = None,
    previous_runs: Mapping[date, int] | None = None,
    cost_only: Collection[str] = (),
) -> tuple[Restatement, ...]:
    """Every quantity of :data:`QUANTITIES` that moved from ``previous`` to ``current`` by more
    than its floor, by day, family, model, project and quantity.

    ``days``: the days ``current`` covers (None: every day of either side); a previous group of
    another day is not compared (it was not fetched, it did not disappear). ``previous_runs``
    names the run each day's old figures came from (``Restatement.previous_run_id``).
    ``cost_only``: families compared by cost alone (OpenAI could not count their quantities in
    this fetch: a zero there is not a restatement). ``seen_at`` must be aware.
    """
    if seen_at.tzinfo is None or seen_at.utcoffset() is None:
        raise ValueError("seen_at must be an aware UTC datetime")
    wanted = None if days is None else frozenset(days)
    runs = previous_runs or {}
    found: list[Restatement] = []
    for ref in sorted({*previous, *current}, key=_order):
        if wanted is not None and ref.day not in wanted:
            continue
        before = previous.get(ref, _ZERO_USAGE)
        after = current.get(ref, _ZERO_USAGE)
        quantities = ("cost",) if ref.family in cost_only else QUANTITIES
        for quantity in quantities:
            old, new = Decimal(before.quantity(quantity)), Decimal(after.quantity(quantity))
            if abs(new - old) > tolerance.floor(quantity):
                found.append(Restatement(ref, quantity, old, new, seen_at, runs.get(ref.day)))
    return tuple(found)


def restated(usage: Usage, quantity: str, value: Decimal) -> Usage:
    """``usage`` with ``quantity`` set to ``value`` (a restatement's ``after`` applied)."""
    if quantity == "cost":
        return replace(usage, cost=value)
    counts: dict[str, Any] = {quantity: int(value)}
    return replace(usage, **counts)


def restatement_sentence(restatement: Restatement) -> str:
    """``OpenAI restated 2026-11-28 gpt-4o: cost $41.20 → $43.05 (+$1.85), seen 2026-11-30``.

    The family is named when it is not completions, the project when the group has one.
    """
    group = restatement.group
    family = "" if group.family == "completions" else f" {group.family}"
    project = f" [{group.project_id}]" if group.project_id else ""
    before, after = restatement.before, restatement.after
    change = after - before
    sign = "+" if change >= 0 else _MINUS
    if restatement.quantity == "cost":
        figures = f"{usd(before)} → {usd(after)} ({sign}{usd(abs(change))})"
    else:
        figures = f"{before:,f} → {after:,f} ({sign}{abs(change):,f})"
    name = _NAMES.get(restatement.quantity, restatement.quantity)
    return (
        f"OpenAI restated {group.day.isoformat()}{family} {group.model}{project}: "
        f"{name} {figures}, seen {restatement.seen_at.date().isoformat()}"
    )


def recheck_window(window: Window, now: datetime, settle: timedelta, days: int) -> Window:
    """The window to fetch from OpenAI so that it also covers the last ``days`` settled days.

    The returned window (kind ``range`` when widened; ``window`` itself otherwise) ends where
    ``window`` ends and starts up to ``days`` days before the last settled day at ``now`` (or
    before ``window``, whichever is earlier), never so early that it needs one more page of
    :data:`PAGE_DAYS` days than ``window`` does: a daily run re-checks a week at no extra
    request, a 31-day month re-checks nothing. Only the settled days of the widened part are
    worth comparing (:func:`recon_job.windows.pending_days` says which are not).
    """
    if days < 0:
        raise ValueError(f"days must not be negative, got {days}")
    anchor = min(window.start, last_settled_day(now, settle) + timedelta(days=1))
    pages = -(-window.num_days // PAGE_DAYS)
    spare = pages * PAGE_DAYS - window.num_days
    start = max(anchor - timedelta(days=days), window.start - timedelta(days=spare), FIRST_DAY)
    if start >= window.start:
        return window
    return Window("range", start, window.end)


def _order(ref: GroupRef) -> tuple[date, int, str, str, str]:
    # The order of a result's groups (recon_job.models.group_order): families in report order.
    return (ref.day, family_rank(ref.family), ref.family, ref.model, ref.project_id or "")
