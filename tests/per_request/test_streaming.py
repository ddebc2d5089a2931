"""Per-request reconciliation streams the logged side against an index of the bill (issue 13
item 4): the unbilled records go to a temporary file, and the report is the one the whole-in-
memory classification made, row for row."""

from __future__ import annotations

import tempfile
import tracemalloc
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from recon_job.errors import LogSourceError
from recon_job.per_request import BilledRequest, LocalRequest, RequestRow, RequestStatus, classify
from recon_job.per_request import unbilled as unbilled_module
from recon_job.per_request.billing import BillingIndex, index_billing, read_billing
from recon_job.per_request.classify import within
from tests.helpers import FIXTURES

D = Decimal
DAY = date(2026, 3, 2)


def reference(
    billed: Sequence[BilledRequest], local: Sequence[LocalRequest]
) -> list[tuple[object, ...]]:
    """The rows as the classification before streaming made them: every record held in dicts."""
    by_id = {b.request_id: b for b in billed}
    days = [b.timestamp.date() for b in billed if b.timestamp is not None]
    span = (min(days), max(days)) if days else None
    kept: dict[str, LocalRequest] = {}
    dupes: set[str] = set()
    for record in local:
        rid = record.request_id
        in_span = span is None or (record.day is not None and span[0] <= record.day <= span[1])
        if not in_span and rid not in by_id:
            continue
        if rid in kept:
            dupes.add(rid)
        else:
            kept[rid] = record
    rows: list[tuple[object, ...]] = []
    for b in billed:
        found = kept.get(b.request_id)
        if found is None:
            rows.append((b.request_id, "not_found", None, b.actual, None))
        elif b.request_id in dupes or found.estimated is None:
            rows.append((b.request_id, "error", None, b.actual, found.model))
        else:
            ok = within(found.estimated, b.actual, D(5), D("0.05"))
            status = "matched" if ok else "discrepancy"
            rows.append((b.request_id, status, found.estimated, b.actual, found.model))
    for rid, record in kept.items():
        if rid not in by_id:
            status = "error" if rid in dupes else "pending"
            estimated = None if rid in dupes else record.estimated
            rows.append((rid, status, estimated, None, record.model))
    return rows


def shape(rows: Sequence[RequestRow]) -> list[tuple[object, ...]]:
    return [(r.request_id, r.status.value, r.estimated, r.actual, r.model) for r in rows]


def world() -> tuple[list[BilledRequest], list[LocalRequest]]:
    """3,000 billed ids over two days; 20,000 logged requests over five, some logged twice."""
    at = datetime(2026, 3, 2, 12, tzinfo=UTC)
    billed = [
        BilledRequest(
            f"req_{i:06d}", D(f"0.{i % 900 + 100:04d}"), i + 2, at + timedelta(i // 2 % 2)
        )
        for i in range(0, 6000, 2)
    ]
    billed[5] = BilledRequest("req_missing", D("1.25"), 7, at)
    local = [
        LocalRequest(
            f"req_{i:06d}",
            None if i % 97 == 0 else D(f"0.{i % 900 + 100 + (i % 3):04d}"),
            ("gpt-4o", "gpt-4o-mini")[i % 2],
            date(2026, 3, 1 + i % 5),
        )
        for i in range(20_000)
    ]
    # Repeats: of a billed id, of unbilled ids in and out of the billed days.
    local += [local[10], local[11], local[12], local[13], local[12_345], local[12_346]]
    return billed, local


def test_a_spilled_classification_is_the_in_memory_one_row_for_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(unbilled_module, "SPOOL_BYTES", 4096)  # on disk after 4 KiB
    billed, local = world()

    report = classify(billed, iter(local))

    expected = reference(billed, local)
    assert shape(report.rows) == expected
    assert len(report.rows) == len(expected)
    assert shape([report.rows[0], report.rows[-1], report.rows[3100]]) == [
        expected[0],
        expected[-1],
        expected[3100],
    ]
    assert report.counts["pending"] == sum(1 for r in expected if r[1] == "pending")
    # req_000012 is billed; req_000011 and req_012346 are not, but inside the billed days;
    # req_000010 (not billed: billed[5] took its place), 13 and 12345 are outside them.
    assert report.duplicate_ids == ("req_000011", "req_000012", "req_012346")
    assert report.duplicates == 3


def test_two_readers_of_the_rows_do_not_disturb_each_other() -> None:
    billed, local = world()
    report = classify(billed, local)

    pairs = list(zip(report.rows, report.rows, strict=True))

    assert all(a == b for a, b in pairs)
    assert report.rows == tuple(report.rows)


def test_the_unbilled_side_holds_no_record_in_memory() -> None:
    at = datetime(2026, 3, 1, tzinfo=UTC)
    billed = [BilledRequest("req_billed", D("0.01"), 2, at)]

    def logged() -> Iterator[LocalRequest]:
        for i in range(200_000):
            yield LocalRequest(f"req_{i:012x}", D("0.000123"), "gpt-4o-mini", at.date())

    tracemalloc.start()
    try:
        report = classify(billed, logged())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert report.counts["pending"] == 200_000
    # Held as objects, 200,000 records took over 80 MB; spilled, the 8 MiB spool and
    # 4-byte fingerprints.
    assert peak < 16 * 2**20, peak
    assert report.pending_total == D("0.000123") * 200_000


def test_the_billing_index_holds_what_the_rows_hold() -> None:
    rows = read_billing(FIXTURES / "billing" / "requests.csv")
    index = index_billing(FIXTURES / "billing" / "requests.csv")

    assert index == BillingIndex.of(rows)
    assert index.request_ids == [r.request_id for r in rows]
    assert index.actual == [r.actual for r in rows]
    assert index.span == (date(2026, 3, 1), date(2026, 3, 3))
    assert classify(rows, []).counts == classify(index, []).counts


def test_a_status_row_keeps_its_exact_decimal_through_the_spill() -> None:
    # str() of a Decimal and back: the same digits and exponent, never a float.
    odd = D("0.000000000000000000000000000000000123400")
    report = classify([], [LocalRequest("x", odd, None, DAY)])

    (row,) = report.rows
    assert (row.status, row.estimated, str(row.estimated)) == (
        RequestStatus.PENDING,
        odd,
        str(odd),
    )


def test_a_temporary_directory_that_cannot_be_written_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(unbilled_module, "SPOOL_BYTES", 1024)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))
    local = (LocalRequest(f"req_{i}", D("0.01"), "gpt-4o", DAY) for i in range(1000))

    with pytest.raises(LogSourceError) as info:
        classify([], local)

    assert info.value.reason == "temporary_file"
    assert f"temporary file in {tmp_path / 'gone'}" in info.value.message
    assert "TMPDIR" in info.value.message
