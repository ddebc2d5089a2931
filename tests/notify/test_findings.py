"""Finding notices (issue 12): what each says, the subject it is told once about, and how it
renders (the ``finding/`` templates, the ``recon-job.finding/v1`` payload)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from recon_job.findings import ChangePoint, GroupRef, PriceFinding, Restatement, ShadowEntry
from recon_job.models import Window
from recon_job.notify.findings import (
    FINDING_SCHEMA,
    GROUP_KEY_LENGTH,
    FindingNotice,
    price_notices,
    restated_notices,
    shadow_notices,
    trend_notices,
)
from recon_job.notify.render import check_templates, render_finding
from recon_job.notify.slack import build_body
from recon_job.notify.webhook import encode_payload

D = Decimal
XSS = "<img src=x onerror=alert(1)>"
NOVEMBER = Window("monthly", date(2026, 11, 1), date(2026, 12, 1))
STALE = PriceFinding(
    model="gpt-5",
    piece="cached input",
    tier="standard",
    billed=D("0.125"),
    table=D("0.25"),
    unit="1M tokens",
    since=date(2026, 8, 7),
    last_day=date(2026, 11, 30),
)


def test_a_price_notice_says_what_openai_bills_and_what_the_table_says() -> None:
    [notice] = price_notices([STALE])

    assert notice.event == "price_changed"
    assert notice.subject_key == "price:gpt-5:cached input:standard:0.125"
    assert notice.lines[0] == (
        "OpenAI bills gpt-5 cached input at $0.125/1M since 2026-08-07; your table: $0.25"
    )
    assert "from 2026-08-07 to 2026-11-30" in notice.lines[1]
    assert notice.data == {
        "model": "gpt-5",
        "piece": "cached input",
        "tier": "standard",
        "billed": "0.125",
        "table": "0.25",
        "unit": "1M tokens",
        "since": "2026-08-07",
        "last_day": "2026-11-30",
    }


def test_a_price_the_table_lacks_and_another_tier_are_other_subjects() -> None:
    batch = PriceFinding("gpt-5", "input", "batch", D("0.625"), None, "1M tokens", date(2026, 9, 1))
    newer = PriceFinding(
        "gpt-5", "cached input", "standard", D("0.1"), D("0.25"), "1M tokens", date(2026, 11, 1)
    )

    notices = price_notices([STALE, batch, newer])

    assert [n.subject_key for n in notices] == [
        "price:gpt-5:cached input:standard:0.125",
        "price:gpt-5:input:batch:0.625",
        "price:gpt-5:cached input:standard:0.1",
    ]
    assert notices[1].lines[0] == (
        "OpenAI bills gpt-5 input (batch) at $0.625/1M since 2026-09-01; "
        "your table has no price for it"
    )
    assert notices[1].title == "gpt-5 input (batch): $0.625/1M billed, none in your table"
    assert len({n.dedupe_key for n in notices}) == 3


def test_restatements_of_one_group_make_one_notice_listing_each_quantity() -> None:
    group = GroupRef(date(2026, 11, 28), "completions", "gpt-4o")
    seen = datetime(2026, 11, 30, 6, 5, tzinfo=UTC)
    other = GroupRef(date(2026, 11, 28), "completions", "gpt-4o-mini", "proj_a")
    restated = [
        Restatement(group, "cost", D("12.40"), D("13.10"), seen, previous_run_id=3),
        Restatement(group, "requests", D(900), D(950), seen),
        Restatement(other, "tokens", D(1000), D(900), seen),
    ]

    first, second = restated_notices(restated)

    assert first.subject_key.startswith("restated:2026-11-28:completions:gpt-4o:")
    assert second.subject_key.startswith("restated:2026-11-28:completions:gpt-4o-mini:proj_a:")
    # The same figures seen again are the same subject (told once); a later revision of the
    # same day is a new one (told again).
    (again,) = restated_notices(restated[:2])
    assert again.subject_key == first.subject_key
    (revised,) = restated_notices(
        [Restatement(group, "cost", D("13.10"), D("13.40"), seen), restated[1]]
    )
    assert revised.subject_key != first.subject_key
    assert first.lines[:2] == (
        "OpenAI revised the cost of 2026-11-28 completions gpt-4o from $12.40 to $13.10 "
        "(+$0.70), seen 2026-11-30 06:05 UTC.",
        "OpenAI revised the requests of 2026-11-28 completions gpt-4o from 900 to 950 (+50), "
        "seen 2026-11-30 06:05 UTC.",
    )
    assert first.data["changes"][0] == {
        "quantity": "cost",
        "before": "12.4",
        "after": "13.1",
        "difference": "0.7",
        "seen_at": "2026-11-30T06:05:00+00:00",
        "previous_run_id": 3,
    }
    assert second.title == "OpenAI revised 2026-11-28 completions gpt-4o-mini [proj_a]"


def test_shadow_usage_is_told_per_entry_and_window_over_the_configured_share() -> None:
    key = ShadowEntry("api_key", "key_abc", "ci-bot", 1_234_567, 345, D("12.34"), D("12"), D("9.5"))
    user = ShadowEntry("user", "user_x", None, 1_000, 2, None, D("0.01"))

    every = shadow_notices([key, user], NOVEMBER)
    some = shadow_notices([key, user], NOVEMBER, min_share_pct=D(10))

    assert [n.subject_key for n in every] == [
        "shadow:api_key:key_abc:monthly:2026-11",
        "shadow:user:user_x:monthly:2026-11",
    ]
    assert [n.subject_key for n in some] == ["shadow:api_key:key_abc:monthly:2026-11"]
    assert some[0].lines[0] == (
        "API key key_abc (ci-bot) that your logs never mention used 12.00% of OpenAI's tokens "
        "and 9.50% of its cost in monthly:2026-11: 1,234,567 tokens, 345 requests, $12.34."
    )
    assert every[1].lines[0].startswith("User user_x that your logs never mention used 0.01%")
    assert every[1].data["cost"] is None
    assert some[0].data["cost"] == "12.340000"


def test_a_trend_notice_names_the_day_and_both_levels() -> None:
    point = ChangePoint("completions", "gpt-4o", date(2026, 11, 14), D("0.2"), D("-3.8"))
    images = ChangePoint("images", "gpt-image-1", date(2026, 11, 2), D(0), D("4"))

    first, second = trend_notices([point, images])

    assert first.subject_key == "trend:completions:gpt-4o:2026-11-14"
    assert first.lines[0] == "gpt-4o drift moved from +0.20% to -3.80% on 2026-11-14 and stayed."
    assert second.subject_key == "trend:images:gpt-image-1:2026-11-02"
    assert second.lines[0].startswith("gpt-image-1 images drift moved from +0.00% to +4.00%")


def test_a_long_subject_gets_a_group_key_that_fits_and_stays_unique() -> None:
    long_a = FindingNotice("trend", "trend:completions:" + "m" * 200 + ":a", "t", ())
    long_b = FindingNotice("trend", "trend:completions:" + "m" * 200 + ":b", "t", ())
    short = FindingNotice("trend", "trend:completions:gpt-4o:2026-11-14", "t", ())

    assert short.group_key == short.subject_key
    assert len(long_a.group_key) == GROUP_KEY_LENGTH
    assert long_a.group_key != long_b.group_key
    assert long_a.group_key.startswith("trend:completions:mmm")
    # The dedupe key: stable, 32 hex characters (the outbox column holds 64), per event too.
    assert short.dedupe_key == FindingNotice("trend", short.subject_key, "other", ()).dedupe_key
    assert len(short.dedupe_key) == 32
    assert short.dedupe_key != FindingNotice("restated", short.subject_key, "t", ()).dedupe_key


def test_a_finding_renders_every_part_with_its_own_templates() -> None:
    [notice] = price_notices([STALE])

    message = render_finding(notice, run_id=12)

    assert message.subject == (
        "[recon-job] OpenAI bills another price · gpt-5 cached input: $0.125/1M billed, "
        "$0.25/1M in your table"
    )
    assert message.event == "price_changed"
    assert message.group_key == notice.subject_key
    assert message.dedupe_key == notice.dedupe_key
    assert notice.lines[0] in message.text
    assert f'<li style="margin-bottom:4px;">{notice.lines[0]}</li>' in message.html
    assert f"• {notice.lines[0]}" in message.slack_text
    payload = json.loads(encode_payload(message.payload))
    assert payload["schema"] == FINDING_SCHEMA
    assert payload["subject_key"] == "price:gpt-5:cached input:standard:0.125"
    assert payload["run_id"] == 12
    assert payload["finding"]["billed"] == "0.125"
    # Slack: a header, the text, the footer; no drift fields.
    kinds = [b["type"] for b in build_body(message)["blocks"]]
    assert kinds == ["header", "section", "context"]


def test_names_from_data_are_escaped_in_a_finding_and_never_break_the_subject() -> None:
    point = ChangePoint(
        "completions", f"evil\r\nBcc: x@y.z {XSS} <!channel>", date(2026, 11, 14), D(0), D(-4)
    )
    [notice] = trend_notices([point])

    message = render_finding(notice)

    assert "\n" not in message.subject
    assert "\r" not in message.subject
    assert XSS not in message.html
    assert "&lt;img src=x onerror=alert(1)&gt;" in message.html
    assert "<!channel>" not in message.slack_text


def test_a_broken_user_finding_template_is_reported_by_check_templates(tmp_path: Path) -> None:
    (tmp_path / "finding").mkdir()
    (tmp_path / "finding" / "body.txt.j2").write_text("{{ no_such_field }}", "utf-8")

    problems = check_templates(tmp_path)

    assert problems
    assert "finding/body.txt.j2" in problems[0]
