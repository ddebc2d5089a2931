"""The size rules of a message: what the webhook sends and what the email attaches."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal

from recon_job.compare import reconcile
from recon_job.delivery.relay import channel_failing_message
from recon_job.models import Tolerance, Usage, UsageKey, UsageTotals, Window
from recon_job.notify.context import Notice
from recon_job.notify.detail import cut, groups_csv, webhook_body
from recon_job.notify.render import render_message, sample_message

DAY = date(2026, 3, 14)
WINDOW = Window("daily", DAY, date(2026, 3, 15))


def test_cut_keeps_the_first_entries_and_counts_the_rest() -> None:
    assert cut([1, 2, 3], 2) == ([1, 2], 1)
    assert cut([1], 5) == ([1], 0)
    assert cut([1], -1) == ([], 1)


def test_a_small_alert_is_sent_whole_and_attaches_nothing() -> None:
    payload = sample_message().payload

    body = webhook_body(payload)

    assert body["omitted"] == {"groups": 0, "likely_causes": 0, "resolved": 0, "unpriced_models": 0}
    assert body["full_detail"] is False
    assert groups_csv(payload) is None


def test_a_notice_without_detail_is_sent_as_it_is() -> None:
    notice = channel_failing_message("slack", "r", error="e", target="webhook", day=DAY)

    assert webhook_body(notice.payload, full_detail=True) == dict(notice.payload)


def test_the_csv_defuses_spreadsheet_formulas_in_names() -> None:
    # Model names come from logs: a cell starting with "=" would run in a spreadsheet.
    local = UsageTotals(
        groups={
            UsageKey(DAY, f'=HYPERLINK("x","{i}")', "+proj"): Usage(1000, 0, 10, 5, Decimal("1.5"))
            for i in range(12)
        }
    )
    result = reconcile(local, UsageTotals(), window=WINDOW, tolerance=Tolerance())
    message = render_message(Notice("opened", WINDOW.key, "k", WINDOW, result))

    attachment = groups_csv(message.payload)

    assert attachment is not None
    name, text = attachment
    assert name == "recon-daily-2026-03-14-groups.csv"
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 12
    assert all(r["model"].startswith("'=HYPERLINK") for r in rows)
    assert {r["project_id"] for r in rows} == {"'+proj"}
    assert {r["cost_difference"] for r in rows} == {"1.500000"}
