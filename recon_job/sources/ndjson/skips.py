"""Skipped log lines: how many per reason, and where the first few of them are.

A user told "3 malformed_json" needs to find those lines, so a scan keeps, per reason, the
``file:line`` of the first :data:`LOCATIONS_PER_REASON` skipped lines. Lines without a usable
date (:data:`~recon_job.models.UNDATED_REASONS`) are located once per file instead: every
window's scan skips them again, and one line per file is enough to find the logger that writes
them.

Locations are collected on the skip path only, never for a counted record, so they cost the
scan of a clean log nothing. Line numbers are relative to the task that read them (a whole
file, or a byte range of one in a worker process); :meth:`Skips.merge` shifts a range's numbers
by the lines of the ranges before it.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Protocol

from recon_job.models import UNDATED_REASONS

#: How many locations are kept per reason (per file for lines without a usable date, up to
#: this many files).
LOCATIONS_PER_REASON = 5

#: Locations as collected: per reason, (path, line number) pairs in reading order.
Locations = dict[str, list[tuple[str, int]]]


class Skips:
    """Counts of skipped lines per reason, and the first few lines of each reason."""

    def __init__(self, counts: MutableMapping[str, int] | None = None) -> None:
        #: Skipped lines per reason (the caller's mapping, when given: counted into).
        self.counts: MutableMapping[str, int] = {} if counts is None else counts
        #: The first few locations per reason (see :meth:`wants`).
        self.locations: Locations = {}

    def count(self, reason: str) -> None:
        """Count one skipped line whose location is not known."""
        self.counts[reason] = self.counts.get(reason, 0) + 1

    def wants(self, reason: str, path: str) -> bool:
        """Whether a line of ``path`` skipped for ``reason`` would be located.

        True for the first :data:`LOCATIONS_PER_REASON` lines of a reason; for a reason of
        :data:`~recon_job.models.UNDATED_REASONS`, for the first line of each file (up to as
        many files).
        """
        kept = self.locations.get(reason)
        if kept is None:
            return True
        if len(kept) >= LOCATIONS_PER_REASON:
            return False
        return reason not in UNDATED_REASONS or all(p != path for p, _ in kept)

    def locate(self, reason: str, path: str, line: int) -> None:
        """Keep ``path:line`` as a location of ``reason`` if :meth:`wants` it (not counted)."""
        if self.wants(reason, path):
            self.locations.setdefault(reason, []).append((path, line))

    def add(self, reason: str, path: str, line: int) -> None:
        """Count one skipped line and locate it."""
        self.count(reason)
        self.locate(reason, path, line)

    def merge(self, counts: Mapping[str, int], locations: Locations, offset: int = 0) -> None:
        """Add another scan's counts and locations, read after everything here.

        ``offset`` is added to its line numbers: the lines of the ranges of the same file
        read before it (0 for a whole file).
        """
        for reason, count in counts.items():
            self.counts[reason] = self.counts.get(reason, 0) + count
        for reason, found in locations.items():
            for path, line in found:
                self.locate(reason, path, line + offset)

    def shown(self) -> dict[str, tuple[str, ...]]:
        """The locations as ``UsageTotals.skipped_locations``: ``file:line`` per reason, sorted."""
        return {
            reason: tuple(f"{path}:{line}" for path, line in found)
            for reason, found in sorted(self.locations.items())
        }


class Lines(Protocol):
    """Lines a skipped one is searched in: a list, or the sparse lines of a block
    (``source._Sparse``) that answer ``index`` with their places in the block."""

    def index(self, line: bytes, start: int, /) -> int: ...  # pragma: no cover


def first_index(lines: Lines, line: bytes, start: int) -> int:
    """The index of ``line`` in ``lines``, searched from ``start``.

    The scan knows which line it skipped but not its index: counting lines in the loop would
    cost every record, and this search runs for located lines only. Searching by equality is
    exact as long as ``start`` is past every earlier equal line: equal lines get the same
    verdict, so each earlier one was skipped for the same reason, and was located (and moved
    ``start`` past itself) unless that reason had no room left, in which case there is no
    search.
    """
    try:
        return lines.index(line, start)
    except ValueError:
        # Not expected; a wrong line number is better than a failed scan.
        return start
