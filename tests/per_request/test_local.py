"""Tests of the local side of per-request reconciliation: requests read from a database table."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from recon_job import wiring
from recon_job.config import load_settings
from recon_job.per_request import reconcile_requests as reconcile
from recon_job.per_request.local import table_requests
from recon_job.per_request.writeback import RequestTable
from recon_job.sources.sql.query import row_tier
from tests.helpers import FIXTURES, FakePricer

D = Decimal
BILLING = FIXTURES / "billing"
#: batch as stored in a TEXT column -> the tier the SQL source counts such a row at.
BATCH_TEXT = {"true": "batch", " Yes ": "batch", "1": "batch", "false": "standard", "0": "standard"}


@pytest.mark.parametrize(("stored", "tier"), [*BATCH_TEXT.items(), (None, "standard")])
def test_a_rows_batch_flag_means_what_it_means_to_the_sql_source(
    tmp_path: Path, stored: str | None, tier: str
) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE usage (rid TEXT, ts TEXT, model TEXT, inp INTEGER, out INTEGER, "
            "batch TEXT)"
        )
        conn.exec_driver_sql(
            "INSERT INTO usage VALUES ('r', '2026-03-02 10:00:00', 'gpt-4o-mini', 1000000, 0, ?)",
            (stored,),
        )
    engine.dispose()
    columns = {
        "request_id": "rid",
        "timestamp": "ts",
        "model": "model",
        "input_tokens": "inp",
        "output_tokens": "out",
        "batch": "batch",
    }
    table = RequestTable(url, "usage", columns)
    pricer = FakePricer()

    (request,) = table_requests(table, pricer, skipped={})
    table.close()

    assert row_tier(stored, None) == tier
    assert pricer.calls[0][2] == tier
    assert request.estimated == D(1) * FakePricer.MULTIPLIER[tier]


# -- values out of range (issue 9 items 8, 9 and 17) ----------------------------------------


def _usage_table(tmp_path: Path, rows: list[tuple[object, ...]]) -> RequestTable:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE usage (rid TEXT, ts TEXT, model TEXT, inp INTEGER, out INTEGER, "
            "cost REAL)"
        )
        for row in rows:
            conn.exec_driver_sql(
                "INSERT INTO usage VALUES (?, '2026-03-02 10:00:00', ?, ?, 10, ?)", row
            )
    engine.dispose()
    columns = {
        "request_id": "rid",
        "timestamp": "ts",
        "model": "model",
        "input_tokens": "inp",
        "output_tokens": "out",
        "cost": "cost",
    }
    return RequestTable(url, "usage", columns)


def test_a_table_row_with_a_cost_out_of_range_or_a_nul_in_its_model_is_skipped(
    tmp_path: Path,
) -> None:
    table = _usage_table(
        tmp_path,
        [
            ("ok", "gpt-4o-mini", 100, "12"),
            ("huge", "gpt-4o-mini", 100, "1e999999"),  # REAL affinity: stored as infinity
            ("big", "gpt-4o-mini", 100, 1e17),
            ("negative", "gpt-4o-mini", 100, -1),
            ("text", "gpt-4o-mini", 100, "twelve"),
            ("nul", "gpt-4o-mini\x00", 100, "12"),
            ("tokens", "gpt-4o-mini", 2**63 - 1, None),
        ],
    )
    skipped: dict[str, int] = {}

    requests = list(table_requests(table, FakePricer(), cost_unit="cents", skipped=skipped))
    table.close()

    assert skipped == {"bad_cost": 4, "bad_model": 1}
    assert [(r.request_id, r.estimated) for r in requests] == [
        ("ok", D("0.12")),
        ("tokens", None),  # beyond 2**53 - 1 tokens: not priced, as a fractional count
    ]


def test_a_logged_cost_out_of_range_is_bad_cost_in_per_request_reconciliation(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "usage.ndjson"
    base = {"timestamp": "2026-03-01T10:00:00Z", "model": "gpt-4o-mini"}
    lines = [
        {**base, "request_id": "req-1", "prompt_tokens": 10, "completion_tokens": 1,
         "cost_usd": "0.0101"},
        {**base, "request_id": "req-2", "prompt_tokens": 10, "completion_tokens": 1,
         "cost": "1e999999"},
        {**base, "request_id": "req-3", "prompt_tokens": 10, "completion_tokens": 1,
         "cost": "1e99999999999"},
        {**base, "request_id": "req-5", "prompt_tokens": 2**63, "completion_tokens": 1},
        {**base, "request_id": "req-4", "model": "gpt-4o\x00", "prompt_tokens": 1,
         "completion_tokens": 1},
    ]  # fmt: skip
    logs.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    settings = load_settings(
        environ={"RECON_LOG_PATHS": str(logs), "RECON_LOGS__COST_UNIT": "cents"}
    )

    report = reconcile(wiring.request_source(settings, None), BILLING / "requests.csv")

    assert report.skipped == {"bad_cost": 2, "bad_model": 1, "bad_tokens": 1}
    assert {row.request_id: row.status.value for row in report.rows}["req-2"] == "not_found"
