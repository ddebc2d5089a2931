"""Tests of the local NDJSON log source: shapes, bad lines, files, time zones, cost and pricing."""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from recon_job.errors import LogSourceError
from recon_job.modelnames import ModelNamer
from recon_job.models import UNDATED_REASONS, UnpricedKey, Usage
from recon_job.sources.ndjson import files as ndjson_files
from recon_job.sources.ndjson import source as ndjson_logs
from recon_job.sources.ndjson.skips import LOCATIONS_PER_REASON
from recon_job.sources.ndjson.source import NdjsonOptions
from tests.helpers import FakePricer
from tests.sources.ndjson.helpers import MARCH, NDJSON, D, accounted, fetch, key, rec, write


def test_it_reads_every_built_in_shape_and_prices_cost_less_records_per_tier() -> None:
    totals = fetch(NDJSON / "shapes.ndjson", namer=ModelNamer())

    # The pricer knows gpt-4o-mini, not its snapshot: a snapshot's date is never stripped to
    # find a price (issue 9 item 5), so the snapshot is unpriced, namer or not.
    assert totals.groups == {
        key(10, "gpt-4o-mini"): Usage(1500, 400, 250, 2, D("0.0018")),
        key(10, "gpt-4o-mini-2024-07-18"): Usage(300, 100, 30, 1, D(0)),
        key(10, "gpt-4.1"): Usage(2110, 1000, 115, 3, D("0.01421")),
        key(11, "gpt-4o-mini"): Usage(1000, 0, 1000, 1, D("0.0015")),
        key(12, "gpt-4o-mini"): Usage(10, 0, 10, 1, D("0.00006")),
        # Issue 10: a text-embedding-* model is the embeddings family, whose usage has no
        # output side (so it is no longer noted as ``output_tokens_missing``).
        replace(key(12, "text-embedding-3-small"), family="embeddings"): Usage(8, 0, 0, 1, D(0)),
    }
    assert totals.unpriced == {
        UnpricedKey("gpt-4o-mini-2024-07-18", "standard"): Usage(300, 100, 30, 1),
        UnpricedKey("text-embedding-3-small", "standard"): Usage(8, 0, 0, 1),
    }
    assert totals.skipped == {}
    assert totals.info == {
        "files_read": 1,
        "lines_read": 11,
        "records_counted": 9,
        "outside_window": 2,
        "total_tokens_inconsistent": 1,
    }


def test_it_reports_a_snapshot_name_unpriced_under_its_raw_name_without_a_namer() -> None:
    totals = fetch(NDJSON / "shapes.ndjson")

    assert totals.groups[key(10, "gpt-4o-mini-2024-07-18")].cost == 0
    assert totals.unpriced == {
        UnpricedKey("gpt-4o-mini-2024-07-18", "standard"): Usage(300, 100, 30, 1),
        UnpricedKey("text-embedding-3-small", "standard"): Usage(8, 0, 0, 1),
    }


def test_it_prices_each_day_model_and_tier_aggregate_once(tmp_path: Path) -> None:
    lines = [rec(prompt_tokens=100 + i, completion_tokens=i, cached_tokens=i) for i in range(50)]
    lines += [rec(batch=True, prompt_tokens=1000, completion_tokens=0) for _ in range(3)]
    pricer = FakePricer()

    totals = fetch(write(tmp_path / "a.ndjson", *lines), pricer=pricer)

    assert sorted((c[2], c[3]) for c in pricer.calls) == [
        ("batch", Usage(3000, 0, 0, 3)),
        ("standard", Usage(sum(range(100, 150)), 1225, 1225, 50)),
    ]
    per_record = sum(
        (D(100) * D("0.000001") + i * D("0.0000005") + i * D("0.000002")) for i in range(50)
    )
    assert totals.groups[key(10, "gpt-4o-mini")].cost == per_record + D("0.0015")


def test_a_logged_cost_is_kept_exactly_and_cents_are_converted(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.ndjson",
        rec(cost=0.1),
        rec(cost=0.2),
        rec(cost="0.3"),
        rec(cost_usd=0.4),
        rec(cost=None, cost_usd=0.05),
    )

    assert fetch(path).total.cost == D("1.05")
    # cost_usd is USD whatever the unit of ``cost``.
    assert fetch(path, cost_unit="cents").total.cost == D("0.006") + D("0.4") + D("0.05")


def test_a_record_with_its_own_cost_is_not_priced(tmp_path: Path) -> None:
    pricer = FakePricer()
    totals = fetch(write(tmp_path / "a.ndjson", rec(model="mystery", cost=0.5)), pricer=pricer)

    assert pricer.calls == []
    assert totals.unpriced == {}
    assert totals.groups == {key(10, "mystery"): Usage(10, 0, 1, 1, D("0.5"))}


@pytest.mark.parametrize(
    ("fields", "tier"),
    [
        ({}, "standard"),
        ({"batch": True}, "batch"),
        ({"batch": "true"}, "standard"),
        ({"service_tier": "flex"}, "flex"),
        ({"service_tier": "priority"}, "priority"),
        ({"service_tier": "default"}, "standard"),
        ({"service_tier": "scale"}, "standard"),
        ({"batch": True, "service_tier": "priority"}, "batch"),
    ],
)
def test_it_prices_at_the_tier_the_record_was_billed_at(
    tmp_path: Path, fields: dict[str, Any], tier: str
) -> None:
    pricer = FakePricer()
    fetch(write(tmp_path / "a.ndjson", rec(**fields)), pricer=pricer)

    assert [c[2] for c in pricer.calls] == [tier]


def test_it_keeps_raw_model_names_in_group_keys_and_names_unpriced_usage_by_its_alias(
    tmp_path: Path,
) -> None:
    namer = ModelNamer(aliases={"my-model": "mystery"})
    totals = fetch(
        write(tmp_path / "a.ndjson", rec(model="my-model"), rec(model="mystery-2025-01-01")),
        namer=namer,
    )

    assert set(totals.groups) == {key(10, "my-model"), key(10, "mystery-2025-01-01")}
    # The alias applies; a snapshot date is kept (a snapshot is priced apart from its alias).
    assert totals.unpriced == {
        UnpricedKey("mystery", "standard"): Usage(10, 0, 1, 1),
        UnpricedKey("mystery-2025-01-01", "standard"): Usage(10, 0, 1, 1),
    }


# -- bad lines -----------------------------------------------------------------------------------


def test_it_counts_every_bad_line_under_its_reason() -> None:
    totals = fetch(NDJSON / "bad_lines.ndjson")

    assert totals.skipped == {
        "bad_cost": 2,
        "bad_model": 1,
        "bad_timestamp": 2,
        "bad_tokens": 3,
        "blank_line": 2,
        "cached_exceeds_input": 1,
        "malformed_json": 3,
        "missing_model": 1,
        "missing_timestamp": 1,
        "missing_tokens": 1,
        "negative_tokens": 1,
        "not_an_object": 3,
    }
    assert totals.groups == {key(10, "gpt-4o"): Usage(10, 0, 1, 1, D("0"))}
    assert totals.info["lines_read"] == 22 == accounted(totals)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"prompt_tokens": -3}, "negative_tokens"),
        ({"completion_tokens": -3}, "negative_tokens"),
        ({"cached_tokens": -3}, "negative_tokens"),
        ({"prompt_tokens": 1.5}, "bad_tokens"),
        ({"prompt_tokens": False}, "bad_tokens"),
        ({"cached_tokens": "3"}, "bad_tokens"),
        ({"prompt_tokens": None}, "missing_tokens"),
        ({"cached_tokens": 11}, "cached_exceeds_input"),
        ({"cost": True}, "bad_cost"),
        ({"cost": [1]}, "bad_cost"),
        ({"cost": "NaN"}, "bad_cost"),
        ({"cost_usd": "-1"}, "bad_cost"),
    ],
)
def test_a_bad_value_is_skipped_with_its_reason(
    tmp_path: Path, fields: dict[str, Any], reason: str
) -> None:
    totals = fetch(write(tmp_path / "a.ndjson", rec(**fields)))

    assert totals.skipped == {reason: 1}
    assert totals.groups == {}


@pytest.mark.parametrize("path", ["fast", "general"])
@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        # 2**53 - 1 is the largest count kept; sums of larger ones overflow the history DB.
        ({"prompt_tokens": 2**53}, "bad_tokens"),
        ({"completion_tokens": 2**63}, "bad_tokens"),
        ({"prompt_tokens": 2**64 - 1, "cached_tokens": 2**63}, "bad_tokens"),
        ({"prompt_tokens": 1e300}, "bad_tokens"),
        ({"cost": "1e999999"}, "bad_cost"),
        ({"cost": 1e300}, "bad_cost"),
        ({"cost_usd": "1e15"}, "bad_cost"),
        ({"cost": "Infinity"}, "bad_cost"),
        ({"model": "gpt-4o-mini\x00"}, "bad_model"),
        ({"model": "\x00"}, "bad_model"),
    ],
)
def test_a_value_out_of_range_is_skipped_on_either_path(
    tmp_path: Path, fields: dict[str, Any], reason: str, path: str
) -> None:
    # A field mapping turns the inline fast path off: both paths must refuse the same lines.
    mapping = {"model": "model"} if path == "general" else {}
    log = write(tmp_path / "a.ndjson", rec(), rec(**fields), rec())

    totals = fetch(log, fields=mapping)

    assert totals.skipped == {reason: 1}
    assert totals.groups == {key(10, "gpt-4o-mini"): Usage(20, 0, 2, 2, D("0.000024"))}


def test_the_largest_counts_and_costs_in_range_are_kept(tmp_path: Path) -> None:
    largest = 2**53 - 1
    log = write(
        tmp_path / "a.ndjson",
        rec(prompt_tokens=largest, completion_tokens=largest, cost_usd="999999999999999.99"),
    )

    totals = fetch(log)

    assert totals.skipped == {}
    assert totals.groups[key(10, "gpt-4o-mini")] == Usage(
        largest, 0, largest, 1, D("999999999999999.99")
    )


def test_integral_floats_count_as_token_counts(tmp_path: Path) -> None:
    totals = fetch(write(tmp_path / "a.ndjson", rec(prompt_tokens=12.0, cached_tokens=2.0)))

    assert totals.groups[key(10, "gpt-4o-mini")] == Usage(12, 2, 1, 1, D("0.000013"))


def test_total_tokens_never_replace_the_counts(tmp_path: Path) -> None:
    totals = fetch(write(tmp_path / "a.ndjson", rec(total_tokens=5000), rec(total_tokens=11)))

    assert totals.groups[key(10, "gpt-4o-mini")].total_tokens == 22
    assert totals.info["total_tokens_inconsistent"] == 1


def test_a_truncated_gzip_keeps_its_whole_lines_and_counts_the_cut_one(tmp_path: Path) -> None:
    data = "".join(rec(prompt_tokens=i + 1) + "\n" for i in range(2000)).encode()
    whole = gzip.compress(data, mtime=0)
    path = tmp_path / "live.ndjson.gz"
    path.write_bytes(whole[: len(whole) * 3 // 4])

    totals = fetch(path)

    counted = totals.info["records_counted"]
    assert 0 < counted < 2000
    assert totals.skipped == {"malformed_json": 1}
    assert totals.info["gzip_truncated"] == 1
    assert totals.groups[key(10, "gpt-4o-mini")].input_tokens == counted * (counted + 1) // 2


def test_an_overlong_line_is_skipped_without_being_buffered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ndjson_files, "CHUNK_BYTES", 64)
    monkeypatch.setattr(ndjson_files, "MAX_LINE_BYTES", 100)
    path = write(tmp_path / "a.ndjson", rec(), "x" * 1000, rec(), "y" * 500)

    totals = fetch(path)

    assert totals.skipped == {"line_too_long": 2}
    assert totals.info["records_counted"] == 2
    assert totals.info["lines_read"] == 4


def test_a_byte_order_mark_and_crlf_line_ends_are_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "a.ndjson"
    path.write_bytes(b"\xef\xbb\xbf" + rec().encode() + b"\r\n" + rec().encode() + b"\r\n")

    assert fetch(path).info["records_counted"] == 2


# -- timestamps ----------------------------------------------------------------------------------


def test_naive_times_in_a_dst_zone_land_on_the_right_utc_day() -> None:
    totals = fetch(NDJSON / "helsinki_dst.ndjson", timezone="Europe/Helsinki")

    # 10**i input tokens for line i: see the fixture. 03-30 02:30 EEST is 03-29 23:30 UTC,
    # while 03-29 02:30 EET is 03-29 00:30 UTC; 04-01 00:59 local is still March in UTC.
    assert {k.day.day: u.input_tokens for k, u in totals.groups.items()} == {
        28: 1 + 10,
        29: 100 + 1000,
        30: 10_000,
        31: 100_000 + 1_000_000,
    }
    assert totals.info["outside_window"] == 1


def test_naive_times_default_to_utc() -> None:
    totals = fetch(NDJSON / "helsinki_dst.ndjson")

    assert {k.day.day: u.input_tokens for k, u in totals.groups.items()} == {
        1: 10_000_000,
        28: 1,
        29: 10 + 100,
        30: 1000 + 10_000,
        31: 100_000,
    }
    assert totals.info["outside_window"] == 1


@pytest.mark.parametrize(
    ("ts", "day"),
    [
        ("2026-03-31T23:59:59.999Z", 31),
        ("2026-03-31T23:59:59.999+00:00", 31),
        ("2026-03-31T23:59:59.999-05:00", None),
        ("2026-04-01T01:00:00+02:00", 31),
        ("2026-03-01T00:30:00+01:00", None),
        ("2026-03-15 10:00:00Z", 15),
        ("20260315T100000Z", 15),
        ("2026-03-15", 15),
        (1773446400, 14),
        (1773446400.5, 14),
        (1773446399, 13),
        (1773446400000, 14),
        (1773446399999, 13),
        ("1773446400", 14),
        ("1773446400000", 14),
        ("1773446400.25", 14),
    ],
)
def test_timestamps_are_bucketed_by_utc_day(tmp_path: Path, ts: object, day: int | None) -> None:
    totals = fetch(write(tmp_path / "a.ndjson", rec(ts)))

    assert [k.day for k in totals.groups] == ([] if day is None else [date(2026, 3, day)])
    assert totals.info["outside_window"] == (1 if day is None else 0)


@pytest.mark.parametrize("ts", ["", "2026-13-01T00:00:00Z", "2026-03-10T25:00:00Z", "soon", 1e300])
def test_an_unparseable_timestamp_is_skipped(tmp_path: Path, ts: object) -> None:
    assert fetch(write(tmp_path / "a.ndjson", rec(ts))).skipped == {"bad_timestamp": 1}


def test_timestamp_key_variants_and_a_wrapped_response_are_understood(tmp_path: Path) -> None:
    usage = {"input_tokens": 7, "output_tokens": 3}
    lines: list[str | bytes] = [
        orjson.dumps({name: "2026-03-10T08:00:00Z", "model": "m", **usage})
        for name in ("timestamp", "ts", "time", "created_at", "created")
    ]
    lines.append(
        orjson.dumps({"response": {"created_at": 1773136800, "model": "m", "usage": usage}})
    )
    totals = fetch(write(tmp_path / "a.ndjson", *lines))

    assert totals.groups == {key(10, "m"): Usage(42, 0, 18, 6, D(0))}


# -- projects, grouping, field mapping -------------------------------------------------------------


def test_a_project_filter_drops_other_projects_and_keeps_unlabelled_records() -> None:
    totals = fetch(NDJSON / "shapes.ndjson", project_ids=("proj_a",))

    assert totals.skipped == {"other_project": 1}
    assert totals.groups[key(10, "gpt-4o-mini")].input_tokens == 1000


def test_group_by_project_and_api_key_makes_them_part_of_the_key(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.ndjson",
        rec(project_id="p1", api_key_id="k1"),
        rec(project_id="p1", api_key_id="k2"),
        rec(project_id="p1", api_key_id="k2"),
        rec(project_id="p2"),
        rec(),
    )

    by_project = fetch(path, group_by=("model", "project_id"))
    by_both = fetch(path, group_by=("model", "project_id", "api_key_id"))

    assert {k: u.requests for k, u in by_project.groups.items()} == {
        key(10, "gpt-4o-mini"): 1,
        key(10, "gpt-4o-mini", "p1"): 3,
        key(10, "gpt-4o-mini", "p2"): 1,
    }
    assert {k: u.requests for k, u in by_both.groups.items()} == {
        key(10, "gpt-4o-mini"): 1,
        key(10, "gpt-4o-mini", "p1", "k1"): 1,
        key(10, "gpt-4o-mini", "p1", "k2"): 2,
        key(10, "gpt-4o-mini", "p2"): 1,
    }


def test_a_field_mapping_reads_a_custom_shape(tmp_path: Path) -> None:
    line = {
        "meta": {"when": "2026-03-10 10:00:00", "project": "p1"},
        "engine": "gpt-4.1",
        "tok": {"in": 100, "out": 10, "hit": 40},
        "price_cents": 2,
    }
    fields = {
        "timestamp": "meta.when",
        "model": "engine",
        "input_tokens": "tok.in",
        "output_tokens": "tok.out",
        "cached_tokens": "tok.hit",
        "cost": "price_cents",
        "project_id": "meta.project",
    }
    path = write(tmp_path / "a.ndjson", orjson.dumps(line), orjson.dumps({**line, "tok": {}}))

    totals = fetch(path, fields=fields, cost_unit="cents", group_by=("model", "project_id"))

    assert totals.groups == {key(10, "gpt-4.1", "p1"): Usage(100, 40, 10, 1, D("0.02"))}
    assert totals.skipped == {"missing_tokens": 1}


# -- files, directories, globs ---------------------------------------------------------------------


def test_a_directory_reads_plain_rotated_and_gzipped_logs_only() -> None:
    totals = fetch(NDJSON / "rotated")

    assert totals.info["files_read"] == 5
    assert {k.day.day: u.input_tokens for k, u in totals.groups.items()} == {
        1: 1100,
        2: 10,
        3: 1,
        4: 10_000,
    }


def test_globs_recurse_and_overlapping_paths_are_read_once(tmp_path: Path) -> None:
    shutil.copytree(NDJSON / "rotated", tmp_path / "logs" / "app")

    totals = fetch(
        str(tmp_path / "logs" / "**" / "*.ndjson*"),
        tmp_path / "logs" / "app" / "usage.ndjson",
        tmp_path / "logs" / "app",
    )

    assert totals.info["files_read"] == 6  # the glob also matches usage.ndjson.bak
    assert totals.total.input_tokens == 1 + 10 + 100 + 1000 + 10_000 + 100_000


def test_a_glob_that_matches_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(LogSourceError, match=r"no log files match '.*\*\.ndjson'.*RECON_LOG_PATHS"):
        fetch(str(tmp_path / "*.ndjson"))


def test_a_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(LogSourceError, match=r"log file '.*nope\.ndjson' does not exist"):
        fetch(NDJSON / "shapes.ndjson", tmp_path / "nope.ndjson")


def test_a_directory_without_logs_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")

    with pytest.raises(LogSourceError, match="holds no log files"):
        fetch(tmp_path)


def test_a_corrupt_gzip_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "bad.ndjson.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00" + b"garbage" * 20)

    with pytest.raises(LogSourceError, match=r"bad\.ndjson\.gz.*damaged \.gz"):
        fetch(path)


def test_an_unreadable_file_is_an_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "a.ndjson", rec())
    real_open = os.open

    def denied(file: str, flags: int, *args: Any) -> int:
        if file == str(path):
            raise PermissionError(13, "Permission denied", file)
        return real_open(file, flags, *args)

    # chmod 0 does not stop root, who runs these tests in CI containers.
    monkeypatch.setattr(ndjson_files.os, "open", denied)

    with pytest.raises(
        LogSourceError, match=r"cannot read log file .*a\.ndjson.*Permission denied"
    ):
        fetch(path)


def test_memory_is_bounded_by_groups_not_by_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ndjson_files, "CHUNK_BYTES", 4096)
    seen: list[int] = []
    real_scan = ndjson_logs._Scan.scan_block

    def spy(self: ndjson_logs._Scan, block: Any, count: int, first_line: int = 0) -> None:
        seen.append(count)
        real_scan(self, block, count, first_line)

    # Lists of lines, or blocks of them for the C fast path: a chunk's worth at a time.
    monkeypatch.setattr(ndjson_logs._Scan, "scan_block", spy)
    path = write(tmp_path / "a.ndjson", *(rec(prompt_tokens=i) for i in range(5000)))

    totals = fetch(path)

    assert totals.info["records_counted"] == 5000
    assert max(seen) < 100  # lines are handed over a chunk at a time, never the whole file


# -- properties ------------------------------------------------------------------------------------

JSON_SCALARS = st.none() | st.booleans() | st.integers(-10, 10**6) | st.floats(-5, 1e4) | st.text()
TIMESTAMPS = st.sampled_from(
    [
        "2026-03-10T08:00:00Z",
        "2026-03-10T08:00:00+05:30",
        "2026-03-31T23:30:00-01:00",
        "2026-03-10T08:00:00",
        "2026-02-28T23:59:59Z",
        "20260310T080000Z",
        "1773136800",
        1773136800,
        1773136800123,
        1773136800.5,
        "bad",
    ]
)
KEYS = st.sampled_from(
    [
        "prompt_tokens",
        "completion_tokens",
        "input_tokens",
        "output_tokens",
        "cached_tokens",
        "total_tokens",
        "cost",
        "cost_usd",
        "batch",
        "service_tier",
        "project_id",
        "api_key_id",
        "family",
        "endpoint",
    ]
)
#: Token-class details as the APIs write them, and odd ones (issue 10).
DETAILS = st.dictionaries(
    st.sampled_from(["cached_tokens", "audio_tokens", "image_tokens", "reasoning_tokens"]),
    st.integers(0, 30) | st.sampled_from([None, False, 1.0, "x"]),
    max_size=3,
)
VALUES = (
    st.integers(-2, 50)
    | JSON_SCALARS
    | st.sampled_from(["flex", "priority", "p1", "p2"])
    # Around the largest count kept (2**53 - 1), and costs beyond the largest kept.
    | st.sampled_from([2**53 - 1, 2**53, 2**64 - 1, "1e15", "1e999999"])
    | st.sampled_from(["chat", "embeddings", "/v1/chat/completions", "/v1/embeddings", "nope"])
)
USAGE = st.dictionaries(KEYS, VALUES, max_size=6) | st.fixed_dictionaries(
    {"prompt_tokens": st.integers(0, 50), "completion_tokens": st.integers(0, 50)},
    optional={
        "prompt_tokens_details": st.none()
        | st.dictionaries(st.just("cached_tokens"), VALUES | st.integers(0, 60)),
        "input_tokens_details": st.dictionaries(st.just("cached_tokens"), st.integers(0, 60)),
        "completion_tokens_details": DETAILS | st.none(),
        "output_tokens_details": DETAILS,
        "input_token_details": DETAILS,
        "total_tokens": st.integers(0, 100),
    },
)
RECORDS = st.fixed_dictionaries(
    {},
    optional={
        "timestamp": TIMESTAMPS,
        "ts": TIMESTAMPS,
        "model": st.sampled_from(
            ["gpt-4o-mini", "gpt-4.1", "", "x", "x\x00", "whisper-1", "text-embedding-3-small"]
        )
        | JSON_SCALARS,
        "prompt_tokens_details": DETAILS,
        "usage": USAGE | JSON_SCALARS,
        "response": st.fixed_dictionaries({}, optional={"usage": USAGE, "service_tier": VALUES}),
    },
).flatmap(lambda base: st.dictionaries(KEYS, VALUES, max_size=8).map(lambda d: {**d, **base}))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(RECORDS, max_size=8), st.sampled_from([(), ("p1",)]))
def test_the_fast_path_counts_exactly_what_the_general_path_counts(
    records: list[dict[str, Any]], project_ids: tuple[str, ...]
) -> None:
    lines = [orjson.dumps(r) for r in records]
    results = []
    for fast in (True, False):
        options = NdjsonOptions(
            paths=("unused",),
            group_by=("model", "project_id", "api_key_id"),
            project_ids=project_ids,
        )
        scan = ndjson_logs._Scan(options, MARCH)
        scan.fast = fast
        scan.scan(lines)
        results.append(scan.totals(FakePricer(), None))

    assert results[0] == results[1]
    assert accounted(results[0]) == len(lines)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400) | st.lists(RECORDS.map(orjson.dumps), max_size=6).map(b"\n".join))
def test_any_bytes_are_accounted_for_line_by_line_without_raising(data: bytes) -> None:
    assume(not data.startswith(b"\x1f\x8b"))  # gzip magic: a damaged archive is an error
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "any.ndjson"
        path.write_bytes(data)
        totals = fetch(path)

    expected_lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    if data.startswith(b"\xef\xbb\xbf") and data == b"\xef\xbb\xbf":
        expected_lines = 0
    assert totals.info["lines_read"] == expected_lines == accounted(totals)


GARBAGE = st.sampled_from([b"", b"  ", b"{", b"[]", b"null", b'{"model": 1}', b"\xff\xfe"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(GARBAGE | RECORDS.map(orjson.dumps), max_size=40))
def test_each_location_is_one_of_the_first_lines_skipped_for_its_reason(lines: list[bytes]) -> None:
    # Issue 9 item 30. Equal lines (blank ones, repeated records) must not confuse the search
    # for a skipped line's number: each location is exactly the n-th line skipped so.
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "a.ndjson"
        path.write_bytes(b"".join(line + b"\n" for line in lines))
        totals = fetch(path, group_by=("model", "project_id"))

    skipped_at: dict[str, list[int]] = {}
    for number, line in enumerate(lines, start=1):
        alone = ndjson_logs._Scan(
            NdjsonOptions(paths=("x",), group_by=("model", "project_id")), MARCH
        )
        alone.scan([line])
        for reason in alone.skipped:
            skipped_at.setdefault(reason, []).append(number)
    kept = {
        r: n[:1] if r in UNDATED_REASONS else n[:LOCATIONS_PER_REASON]
        for r, n in skipped_at.items()
    }
    assert totals.skipped_locations == {
        r: tuple(f"{path}:{n}" for n in numbers) for r, numbers in sorted(kept.items())
    }
