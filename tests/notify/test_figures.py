"""Figures people read in the email and Slack (issue 9 item 28); the webhook keeps them exact.

Before: ``84.6555252``, ``85.22054575``, ``0.000000``, ``$-0.60322005``, ``18047.827125875``
without separators, "Requests 1,529 / 1,778" without saying which side is which, an empty
Project column when not grouped by project, and no word when the totals are within tolerance
while some groups drift.
"""

from __future__ import annotations

import json
import re
from datetime import date
from decimal import Decimal

from recon_job.compare import reconcile
from recon_job.models import Message, Tolerance, Usage, UsageKey, UsageTotals, Window
from recon_job.notify.context import Notice
from recon_job.notify.detail import webhook_body
from recon_job.notify.figures import aligned
from recon_job.notify.render import render_message
from recon_job.notify.slack import build_body

DAY = date(2026, 3, 14)
WINDOW = Window("daily", DAY, date(2026, 3, 15))
AMOUNT = re.compile(r"\$[\d,]+\.\d+")
BARE = re.compile(r"(?<![\d$.,])\d+\.\d{3,}")


def uneven_figures(text: str) -> list[str]:
    """Amounts that are not ``$1,234.56`` (or a tiny ``$0.0034``), bare long decimals, ``$-``."""
    bad = [
        a for a in AMOUNT.findall(text) if not (re.search(r"\.\d\d$", a) or a.startswith("$0.00"))
    ]
    bad += [a for a in AMOUNT.findall(text) if re.match(r"\$\d{4}", a)]  # no separator
    return bad + BARE.findall(text) + re.findall(r"\$-", text)


def usage(tokens: int, requests: int, cost: str) -> Usage:
    return Usage(tokens, 0, tokens // 4, requests, Decimal(cost))


def message(local: dict[UsageKey, Usage], official: dict[UsageKey, Usage]) -> Message:
    result = reconcile(
        UsageTotals(groups=local),
        UsageTotals(groups=official),
        window=WINDOW,
        tolerance=Tolerance(),
    )
    return render_message(Notice("opened", WINDOW.key, "k", WINDOW, result))


def uneven() -> Message:
    """The figures of the issue: long, tiny, negative amounts; 1,529 vs 1,778 requests."""
    big, tiny, small = (
        UsageKey(DAY, m, p) for m, p in (("gpt-4o", "proj_1"), ("o3", "proj_2"), ("mini", "proj_1"))
    )
    return message(
        {
            big: usage(9_000_000, 1529, "18047.827125875"),
            tiny: usage(2_000, 3, "0.0034"),
            small: usage(500_000, 400, "84.6555252"),
        },
        {
            big: usage(9_900_000, 1778, "17000.5"),
            tiny: usage(2_000, 3, "0.60662005"),
            small: usage(500_000, 400, "95.22054575"),
        },
    )


def readable_parts(m: Message) -> dict[str, str]:
    blocks = json.dumps(build_body(m)["blocks"], ensure_ascii=False)
    return {"text": m.text, "html": m.html, "slack": m.slack_text, "blocks": blocks}


def test_money_has_a_dollar_sign_separators_and_two_decimals_everywhere_people_read_it() -> None:
    m = uneven()

    parts = readable_parts(m)
    for name, part in parts.items():
        assert uneven_figures(part) == [], name
    for name in ("text", "html", "blocks"):
        assert "$18,047.83" in parts[name], name
        assert "$0.0034" in parts[name], name  # more decimals only where $0.00 would mislead
    assert "Cost $18,132.49 local vs $17,096.33 OpenAI (+$1,036.16, +6.06%)" in m.slack_text
    assert "-$0.60" in m.text  # 0.0034 - 0.60662005: the sign before the $
    assert "-$10.57" in m.text  # 84.6555252 - 95.22054575, rounded once
    assert "$84.66" in m.text
    assert "$95.22" in m.html


def test_the_webhook_keeps_exact_decimal_strings() -> None:
    body = webhook_body(uneven().payload)

    costs = {g["model"]: (g["local"]["cost"], g["openai"]["cost"]) for g in body["groups"]}
    assert costs["gpt-4o"] == ("18047.827125875", "17000.500000")
    assert costs["mini"] == ("84.6555252", "95.22054575")
    assert costs["o3"] == ("0.003400", "0.60662005")
    assert body["totals"]["difference"]["cost"] == "1036.158885275"


def test_the_text_tables_are_aligned_and_say_which_side_is_which() -> None:
    text = uneven().text
    lines = text.splitlines()
    start = lines.index(
        "Window totals (local = your logs, difference = local - OpenAI, ! = out of tolerance):"
    )
    table = [line.removesuffix("  !") for line in lines[start + 1 : start + 5]]

    assert "local (yours)" in table[0]
    assert "OpenAI" in table[0]
    assert len({len(line) for line in table}) == 1  # right-aligned columns end together
    assert aligned([("a", "1"), ("bbb", "1,000")]) == ["a        1", "bbb  1,000"]


def test_requests_say_which_side_is_which() -> None:
    m = uneven()

    assert "1,529 / 1,778" not in m.html
    assert re.search(r"Local \(your logs\).*OpenAI", m.html, re.S)
    blocks = json.dumps(build_body(m)["blocks"], ensure_ascii=False)
    assert "requests 1,529 local vs 1,778 OpenAI" in blocks
    assert "requests 1,932 local vs 2,181 OpenAI" in m.slack_text  # the totals


def test_the_project_shows_only_when_grouped_by_project() -> None:
    by_project = uneven()
    plain = message(
        {UsageKey(DAY, "gpt-4o"): usage(9_000_000, 1529, "18047.83")},
        {UsageKey(DAY, "gpt-4o"): usage(9_900_000, 1778, "17000.5")},
    )

    assert "project proj_1" in by_project.text
    assert "proj_1" in by_project.html
    for part in (plain.text, plain.html, plain.slack_text):
        assert "roject" not in part


def test_totals_within_tolerance_while_groups_drift_is_said() -> None:
    up, down = UsageKey(DAY, "gpt-4o"), UsageKey(DAY, "gpt-4o-mini")
    m = message(
        {up: usage(1_000_000, 1000, "150.00"), down: usage(1_000_000, 1000, "50.00")},
        {up: usage(1_000_000, 1000, "100.00"), down: usage(1_000_000, 1000, "100.00")},
    )

    said = "The window's totals are within tolerance: the drift is in the groups."
    assert said in m.text
    assert said in m.html.replace("&#39;", "'")
    assert said in m.slack_text
    assert "2 of 2 groups are out of tolerance" in m.text
