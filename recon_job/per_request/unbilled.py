"""The logged requests no billed row names, kept out of memory while they are read.

Against a bill of a few days a month of logs is mostly requests the bill does not name: every
one within the bill's days is a ``pending`` row (or an ``error`` when logged twice). Held as
objects, 1.8 million of them took about a gigabyte; :class:`Unbilled` writes each as one short
line to a temporary file (in memory up to :data:`SPOOL_BYTES`, then on disk) and keeps only an
4-byte fingerprint of its id, so memory does not grow with the log. Ids logged more than once
are found from the fingerprints (one bucket at a time) and confirmed on their real ids by one
more read of the file, only when some fingerprints repeat.
"""

from __future__ import annotations

import tempfile
import weakref
from array import array
from collections.abc import Iterator
from decimal import Decimal

import orjson

from recon_job.errors import LogSourceError

#: Bytes of records kept in memory before they go to a temporary file.
SPOOL_BYTES = 8 << 20
#: Fingerprints are kept in this many buckets, checked for repeats one bucket at a time.
_BUCKETS = 64
_BLOCK = 1 << 20

#: One record as stored: (request id, USD estimate as text or None, model or None).
Record = tuple[str, str | None, str | None]


def _fingerprint(request_id: str) -> tuple[int, int]:
    """37 bits of the id's hash: a bucket (6 bits) and a value for a 4-byte array (31 bits).

    ``hash`` of a ``str`` is salted per process, which is all this needs: one process reads
    the records. A shared fingerprint only costs its ids a look at their real values.
    """
    h = hash(request_id)
    return h % _BUCKETS, (h >> 6) & 0x7FFFFFFF


class Unbilled:
    """The unbilled in-scope records, in reading order; :meth:`add` them, :meth:`finish`, read
    :meth:`records` as often as needed (each read is independent of the others)."""

    def __init__(self) -> None:
        # Open as long as this object lives (a report reads its rows from it): closed, and
        # deleted from disk, when it is collected.
        self._file = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, mode="w+b")  # noqa: SIM115
        weakref.finalize(self, self._file.close)
        self._prints: list[array[int]] = [array("i") for _ in range(_BUCKETS)]
        self._finished = False
        #: Records added.
        self.count = 0
        #: The request ids added more than once, and how many records repeat an id added
        #: before them (known after :meth:`finish`).
        self.dupes: frozenset[str] = frozenset()
        self.repeats = 0

    def add(self, request_id: str, estimated: Decimal | None, model: str | None) -> None:
        """Keep one record (before :meth:`finish`)."""
        # str() of a Decimal reads back as the same Decimal, digits and exponent alike.
        cost = None if estimated is None else str(estimated)
        line = orjson.dumps((request_id, cost, model), option=orjson.OPT_APPEND_NEWLINE)
        try:
            self._file.write(line)
        except OSError as e:
            raise LogSourceError(
                f"cannot keep the unbilled requests in a temporary file in "
                f"{tempfile.gettempdir()} ({e.strerror or e}); free space there or point TMPDIR "
                "at a writable directory with room",
                permanent=False,
                reason="temporary_file",
            ) from e
        bucket, value = _fingerprint(request_id)
        self._prints[bucket].append(value)
        self.count += 1

    def finish(self) -> None:
        """Find the ids added more than once; no record may be added after."""
        if self._finished:
            return
        self._finished = True
        repeated: set[tuple[int, int]] = set()
        for bucket, values in enumerate(self._prints):
            if len(set(values)) == len(values):
                continue  # the common case, decided in C
            seen: set[int] = set()
            for value in values:
                if value in seen:
                    repeated.add((bucket, value))
                else:
                    seen.add(value)
        self._prints = []
        if not repeated:
            return
        counts: dict[str, int] = {}
        for request_id, _, _ in self.records():
            if _fingerprint(request_id) in repeated:
                counts[request_id] = counts.get(request_id, 0) + 1
        self.dupes = frozenset(rid for rid, n in counts.items() if n > 1)
        self.repeats = sum(n - 1 for n in counts.values())

    def records(self) -> Iterator[tuple[str, Decimal | None, str | None]]:
        """Every record added, in order: (request id, USD estimate or None, model or None).

        Each iterator reads from its own offset, so two may be interleaved.
        """
        offset, rest = 0, b""
        loads = orjson.loads
        while True:
            self._file.seek(offset)
            block = self._file.read(_BLOCK)
            if not block:
                break
            offset += len(block)
            lines = (rest + block).split(b"\n")
            rest = lines.pop()
            for line in lines:
                rid, cost, model = loads(line)
                yield rid, None if cost is None else Decimal(cost), model
        if not self._finished:
            self._file.seek(0, 2)  # back to the end, where the next record is written
