"""The text report of ``recon-job run`` reads like the alerts (issue 9 item 28, the text part).

Before: ``84.6555252``, ``0.000000``, ``$-0.60322005``, ``18047.827125875`` without separators
in the table a user reads after every run. The email and Slack are tested in
``tests/notify/test_figures.py``; this is the terminal's copy of the same figures.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal

from recon_job.compare import reconcile
from recon_job.models import RunOutcome, Tolerance, Usage, UsageKey, UsageTotals, Window
from recon_job.report.run import render_text

DAY = date(2026, 3, 14)
WINDOW = Window("daily", DAY, date(2026, 3, 15))
AT = datetime(2026, 3, 16, tzinfo=UTC)


def usage(tokens: int, requests: int, cost: str) -> Usage:
    return Usage(tokens, 0, tokens // 4, requests, Decimal(cost))


def uneven_report() -> str:
    """The figures of the issue: long, tiny and negative amounts; 1,529 vs 1,778 requests."""
    big, tiny, small = (
        UsageKey(DAY, m, p) for m, p in (("gpt-4o", "proj_1"), ("o3", "proj_2"), ("mini", "proj_1"))
    )
    result = reconcile(
        UsageTotals(
            groups={
                big: usage(9_000_000, 1529, "18047.827125875"),
                tiny: usage(2_000, 3, "0.0034"),
                small: usage(500_000, 400, "84.6555252"),
            }
        ),
        UsageTotals(
            groups={
                big: usage(9_900_000, 1778, "17000.5"),
                tiny: usage(2_000, 3, "0.60662005"),
                small: usage(500_000, 400, "95.22054575"),
            }
        ),
        window=WINDOW,
        tolerance=Tolerance(),
    )
    return render_text(RunOutcome(7, WINDOW, started_at=AT, finished_at=AT, result=result))


def test_money_in_the_text_report_has_a_dollar_sign_separators_and_two_decimals() -> None:
    text = uneven_report()

    for shown in ("$18,047.83", "$17,000.50", "$84.66", "$95.22", "$0.61", "+$1,036.16"):
        assert shown in text, shown
    assert "$0.0034" in text  # a cost that would round to $0.00 keeps two significant digits
    assert "$-" not in text
    assert "0.000000" not in text
    # No bare long decimals, no amount of four digits or more without a separator.
    assert re.findall(r"(?<![\d$.,])\d+\.\d{3,}", text) == []
    assert re.findall(r"\$\d{4}", text) == []


def test_the_text_tables_are_aligned_and_say_which_side_is_which() -> None:
    lines = uneven_report().splitlines()

    header = next(line for line in lines if "local (yours)" in line)
    table = lines[lines.index(header) : lines.index(header) + 7]
    assert [line.split()[0] for line in table[1:]] == [
        "tokens",
        "input",
        "cached",
        "output",
        "requests",
        "cost",
    ]
    # Right-aligned columns: every row of the totals table ends at the same column.
    assert len({len(line) for line in table}) == 1, table
    assert "requests          1,932       2,181        -249  -11.42%" in table


def test_totals_within_tolerance_while_groups_drift_is_said() -> None:
    a, b = (UsageKey(DAY, m) for m in ("gpt-4o", "o3"))
    result = reconcile(
        UsageTotals(groups={a: usage(1_000_000, 100, "11.00"), b: usage(1_000_000, 100, "9.00")}),
        UsageTotals(groups={a: usage(1_000_000, 100, "10.00"), b: usage(1_000_000, 100, "10.00")}),
        window=WINDOW,
        tolerance=Tolerance(),
    )

    text = render_text(RunOutcome(8, WINDOW, started_at=AT, finished_at=AT, result=result))

    assert (
        "2 of 2 groups out of tolerance (over 5% and over $0.05 / 1,000 tokens / 0 requests); "
        "the window's totals are within tolerance, the drift is in the groups"
    ) in text
    assert "cost             $20.00     $20.00       $0.00  +0.00%" in text
