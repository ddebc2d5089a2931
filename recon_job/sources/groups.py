"""The bound on a window's group cardinality (``reconcile.max_groups``): memory stays bounded.

A source sums usage per UTC day × family × model × project × API key. Those groups are few when
the fields mean what they should, and one per request when a field is mapped to something
request-unique (a request id read as the model): a day with a million distinct "models" once
took 7.8 GB and four minutes, then failed. :class:`GroupLimit` counts the distinct groups of a
window as they appear and says, the moment there are more than ``max_groups``, which dimension
looks request-unique, so the source stops with a clear error instead of growing to gigabytes.

The count is exact (a set of the groups' keys: about 200 bytes per group on top of the sums'
own), and it is checked only when a group is new: the records of known groups cost nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

#: The default of ``reconcile.max_groups``: distinct groups one window of one source may hold.
DEFAULT_MAX_GROUPS = 10_000
#: A group's dimensions besides the day and the family, in the order of a :data:`Group`.
DIMENSIONS = ("model", "project_id", "api_key_id")
#: Example values in messages are cut to this many characters.
_EXAMPLE_CHARS = 24

#: One group: (UTC day, family, model, project id, API key id).
Group = tuple[date, str, str, str | None, str | None]


class GroupLimit:
    """The distinct groups of one window, counted as they appear, at most ``limit`` of them."""

    __slots__ = ("groups", "limit")

    def __init__(self, limit: int = DEFAULT_MAX_GROUPS) -> None:
        #: How many distinct groups the window may hold.
        self.limit = limit
        self.groups: set[Group] = set()

    def add(self, group: Group) -> bool:
        """Count ``group``; True when the window now holds more than ``limit`` groups."""
        groups = self.groups
        groups.add(group)
        return len(groups) > self.limit

    def culprit(self) -> tuple[str, date, int, str]:
        """The dimension with the most distinct values on one day, as (dimension, day, how
        many, an example value): the one that looks request-unique."""
        per_day: dict[tuple[int, date], set[str]] = {}
        for group in self.groups:
            day = group[0]
            for index, value in enumerate(group[2:]):
                if value is not None:
                    per_day.setdefault((index, day), set()).add(value)
        if not per_day:
            return DIMENSIONS[0], min(g[0] for g in self.groups), 0, ""
        (index, day), values = max(per_day.items(), key=lambda item: len(item[1]))
        return DIMENSIONS[index], day, len(values), max(values)

    def message(
        self, where: str, window: str, fields: Mapping[str, str], advice: str | None = None
    ) -> str:
        """Why the source stopped: ``where`` it did (a file and line, a table), the window's key,
        and ``fields``: per dimension, the setting that says where its value comes from
        (``logs.fields.model = 'req'``); the dimension that looks request-unique is named by
        it. ``advice`` replaces the default (map the field to what it should hold)."""
        dimension, day, count, example = self.culprit()
        if len(example) > _EXAMPLE_CHARS:
            example = example[:_EXAMPLE_CHARS] + "…"
        source = fields.get(dimension, dimension)
        meant = "the model name" if dimension == "model" else f"the {dimension.replace('_', ' ')}"
        if advice is None:
            advice = f"which looks unique per request: map {dimension} to {meant}"
        return (
            f"{where}: more than {self.limit:,} groups (day × family × model × project × key) "
            f"in window {window}; {source} has {count:,} distinct values on {day} alone "
            f"(e.g. {example!r}), {advice}. If that many groups are real, raise "
            f"reconcile.max_groups (now {self.limit:,})"
        )
