"""Tests of the local side of per-request reconciliation: requests read from a database table."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from recon_job.per_request.local import table_requests
from recon_job.per_request.writeback import RequestTable
from recon_job.sources.sql.query import row_tier
from tests.helpers import FakePricer

D = Decimal
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
