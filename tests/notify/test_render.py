"""Rendering: autoescaping, strict templates, user overrides, likely causes, the payload."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from recon_job.causes import likely_causes
from recon_job.compare import reconcile
from recon_job.errors import ConfigError
from recon_job.models import (
    AlertEvent,
    Message,
    ReconResult,
    Tolerance,
    UnpricedKey,
    Usage,
    UsageKey,
    UsageTotals,
    Window,
)
from recon_job.notify.context import PAYLOAD_SCHEMA, Notice, top_groups
from recon_job.notify.render import (
    CHANNEL_FAILING_TEMPLATES,
    TEMPLATES,
    check_templates,
    environment,
    one_line,
    render_message,
    render_parts,
    sample_message,
    sample_result,
)
from tests.helpers import ROOT

DAY = date(2026, 3, 14)
WINDOW = Window("daily", DAY, date(2026, 3, 15))
XSS = "<img src=x onerror=alert(1)>"


def result_of(
    local: dict[str, Usage],
    official: dict[str, Usage],
    *,
    pending: tuple[date, ...] = (),
    **extra: object,
) -> ReconResult:
    return reconcile(
        UsageTotals(groups={UsageKey(DAY, m): u for m, u in local.items()}, **extra),  # type: ignore[arg-type]
        UsageTotals(groups={UsageKey(DAY, m): u for m, u in official.items()}),
        window=WINDOW,
        tolerance=Tolerance(),
        pending_days=pending,
    )


def render(
    result: ReconResult | None,
    event: AlertEvent = "opened",
    *,
    error: tuple[str, str] | None = None,
    resolved: tuple[str, ...] = (),
    templates_dir: Path | None = None,
    max_groups: int = 10,
) -> Message:
    notice = Notice(event, WINDOW.key, "k", WINDOW, result, error=error, resolved=resolved)
    return render_message(notice, templates_dir=templates_dir, max_groups=max_groups)


def usage(tokens: int, requests: int, cost: str, cached: int = 0) -> Usage:
    return Usage(tokens, cached, tokens // 4, requests, Decimal(cost))


# --- escaping -------------------------------------------------------------------------------


def test_a_model_name_is_escaped_in_html_and_raw_in_text() -> None:
    result = result_of({XSS: usage(100_000, 100, "5")}, {})

    message = render(result)

    assert XSS not in message.html
    assert "&lt;img src=x onerror=alert(1)&gt;" in message.html
    assert XSS in message.text
    assert XSS in message.subject
    assert "<script" not in message.html


def test_the_autoescape_switch_follows_the_template_names() -> None:
    env = environment()
    autoescape = env.autoescape
    assert callable(autoescape)
    assert autoescape("body.html.j2") is True
    assert [autoescape(n) for n in ("subject.txt.j2", "body.txt.j2", "slack.txt.j2")] == [
        False,
        False,
        False,
    ]


def test_html_has_no_scripts_or_external_resources() -> None:
    html = sample_message().html

    for forbidden in ("<script", "<link", "<style", "src=", "http://", "https://"):
        assert forbidden not in html


def test_the_subject_is_one_line() -> None:
    assert one_line("a\r\nBcc: x@y\u2028z\n") == "a Bcc: x@y z"
    result = result_of({"m\r\nBcc: evil@example.com": usage(100_000, 100, "5")}, {})

    subject = render(result).subject

    assert "\n" not in subject
    assert "\r" not in subject


# --- templates ------------------------------------------------------------------------------


def test_a_user_template_overrides_one_file_only(tmp_path: Path) -> None:
    (tmp_path / "subject.txt.j2").write_text("Custom: {{ window.key }} {{ status }}\n")

    message = sample_message(templates_dir=tmp_path)
    default = sample_message()

    assert message.subject == "Custom: daily:2026-03-14 mismatch"
    assert (message.text, message.html, message.slack_text) == (
        default.text,
        default.html,
        default.slack_text,
    )


def test_a_typo_in_a_user_template_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "body.txt.j2").write_text("Window {{ windw.key }}\n")

    with pytest.raises(ConfigError) as caught:
        sample_message(templates_dir=tmp_path)

    assert "body.txt.j2" in str(caught.value)
    assert "'windw' is undefined" in str(caught.value)
    assert check_templates(tmp_path) == [str(caught.value)]


def test_a_user_html_template_is_escaped_too(tmp_path: Path) -> None:
    (tmp_path / "body.html.j2").write_text("{% for g in groups %}{{ g.model }}{% endfor %}")
    result = result_of({XSS: usage(100_000, 100, "5")}, {})

    html = render(result, templates_dir=tmp_path).html

    assert html == "&lt;img src=x onerror=alert(1)&gt;"


def test_a_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "slack.txt.j2").write_text("ok\n{% if %}\n")

    [problem] = check_templates(tmp_path)

    assert "slack.txt.j2" in problem
    assert "line 2" in problem


def test_the_built_in_templates_check_out() -> None:
    assert check_templates(None) == []
    assert check_templates(Path("/nonexistent/templates")) != []
    shipped = ROOT / "recon_job" / "notify" / "templates"
    assert sorted(p.name for p in shipped.glob("*.j2")) == sorted(TEMPLATES)


def test_the_channel_failing_templates_are_shipped_and_their_html_is_escaped() -> None:
    shipped = ROOT / "recon_job" / "notify" / "templates"
    names = [
        CHANNEL_FAILING_TEMPLATES.subject,
        CHANNEL_FAILING_TEMPLATES.text,
        CHANNEL_FAILING_TEMPLATES.html,
        CHANNEL_FAILING_TEMPLATES.slack,
    ]
    assert all((shipped / name).is_file() for name in names)
    autoescape = environment().autoescape
    assert callable(autoescape)
    assert [autoescape(name) for name in names] == [False, False, True, False]

    parts = render_parts(
        CHANNEL_FAILING_TEMPLATES, {"channel": "email", "reason": "r\nx", "error": XSS}
    )

    assert parts.subject == "recon-job cannot deliver to email: r x"
    assert XSS in parts.text
    assert XSS not in parts.html
    assert "&lt;img src=x onerror=alert(1)&gt;" in parts.html
    assert "&lt;img src=x onerror=alert(1)&gt;" in parts.slack_text


# --- groups and events ----------------------------------------------------------------------


def test_top_groups_sort_by_cost_difference_then_token_difference() -> None:
    result = result_of(
        {
            "small": usage(100_000, 100, "1.00"),
            "big-cost": usage(100_000, 100, "9.00"),
            "tokens": usage(900_000, 100, "1.00"),
        },
        {
            "small": usage(50_000, 100, "0.50"),
            "big-cost": usage(100_000, 100, "1.00"),
            "tokens": usage(100_000, 100, "0.50"),
        },
    )

    order = [g.key.model for g in top_groups(result.mismatches)]

    assert order == ["big-cost", "tokens", "small"]


def test_at_most_max_groups_are_listed_and_the_rest_counted() -> None:
    local = {f"m{i}": usage(100_000, 100, str(i + 1)) for i in range(5)}

    message = render(result_of(local, {}), max_groups=2)

    assert len(message.payload["groups"]) == 2
    assert message.payload["groups_total"] == 5
    assert "…and 3 more" in message.text


def test_a_failed_run_renders_its_error_without_figures() -> None:
    message = render(None, "failed", error=("quota_exhausted", "OpenAI said: insufficient_quota"))

    assert "quota_exhausted" in message.subject
    assert "insufficient_quota" in message.text
    assert "insufficient_quota" in message.html
    assert message.payload["status"] == "failed"
    assert message.payload["totals"] is None
    assert message.payload["error"] == {
        "reason": "quota_exhausted",
        "message": "OpenAI said: insufficient_quota",
    }


def test_a_resolved_notice_lists_the_groups_back_in_tolerance() -> None:
    result = result_of({"m": usage(100_000, 100, "1")}, {"m": usage(100_000, 100, "1")})

    message = render(result, "resolved", resolved=("2026-03-14 m",))

    assert "Drift resolved" in message.subject
    assert "2026-03-14 m" in message.text
    assert message.payload["resolved"] == ["2026-03-14 m"]
    assert message.payload["groups"] == []


def test_the_payload_is_json_with_the_schema_version_and_money_as_strings() -> None:
    message = sample_message("key-1")

    payload = json.loads(json.dumps(message.payload, allow_nan=False))

    assert payload["schema"] == PAYLOAD_SCHEMA == "recon-job.alert/v1"
    assert payload["dedupe_key"] == "key-1"
    assert payload["summary"] == message.subject
    assert payload["window"]["key"] == "daily:2026-03-14"
    assert isinstance(payload["totals"]["local"]["cost"], str)
    assert isinstance(payload["totals"]["difference"]["cost"], str)
    assert isinstance(payload["totals"]["local"]["tokens"], int)
    assert payload["groups"][0]["model"] == "gpt-4o"
    assert payload["likely_causes"] == likely_causes(sample_result())
    assert {u["model"] for u in payload["unpriced_models"]} == {"ft:gpt-4o-mini:acme"}
    assert payload["skipped"] == {"malformed_json": 3, "missing_usage": 12}
    for key in ("event", "group_key", "status", "groups", "error", "pending_days"):
        assert key in payload


# --- likely causes --------------------------------------------------------------------------


def test_requests_missing_locally_are_explained() -> None:
    causes = likely_causes(
        result_of({"m": usage(100_000, 80, "1")}, {"m": usage(100_000, 100, "1")})
    )

    assert any(
        c.startswith("20 requests OpenAI counted are not in your logs") and "bypasses" in c
        for c in causes
    )


def test_extra_local_requests_are_explained() -> None:
    causes = likely_causes(
        result_of({"m": usage(100_000, 130, "1")}, {"m": usage(100_000, 100, "1")})
    )

    assert any(c.startswith("30 more requests in your logs") for c in causes)


def test_matching_tokens_with_a_different_cost_point_at_the_price_table() -> None:
    causes = likely_causes(
        result_of({"gpt-x": usage(100_000, 100, "2.00")}, {"gpt-x": usage(100_000, 100, "3.00")})
    )

    assert causes == [
        "Tokens match but cost differs for gpt-x — the price table may be out of date, or a "
        "batch/flex/priority tier is priced at the standard rate."
    ]


def test_a_model_seen_on_one_side_only_beside_another_on_the_other_is_a_likely_alias() -> None:
    # Issue 9 item 29: on the same day this is one model under two names, not 10 requests
    # missing and 10 extra; tests/test_causes.py has the one-sided sentences.
    causes = likely_causes(
        result_of({"mine": usage(100_000, 10, "1")}, {"theirs": usage(100_000, 10, "1")})
    )

    assert causes == [
        "Model mine appears only in your logs and theirs only at OpenAI, on the same days "
        "(2026-03-14) — if mine is your deployment name for theirs, map it in your settings: "
        '[models.aliases] "mine" = "theirs".'
    ]


def test_unpriced_models_ask_for_a_price() -> None:
    result = result_of(
        {"m": usage(100_000, 100, "1")},
        {"m": usage(100_000, 100, "1")},
        unpriced={UnpricedKey("new-model", "standard"): usage(5000, 5, "0")},
    )

    assert likely_causes(result) == [
        "No price for new-model: its cost is not counted on your side — add a price to your "
        "pricing file."
    ]


def test_cached_token_differences_are_explained() -> None:
    causes = likely_causes(
        result_of(
            {"m": usage(100_000, 100, "1", cached=0)},
            {"m": usage(100_000, 100, "1", cached=60_000)},
        )
    )

    assert any(c.startswith("Cached input tokens differ (0 in your logs vs 60,000") for c in causes)


def test_skipped_lines_are_explained() -> None:
    result = result_of(
        {"m": usage(100_000, 100, "1")},
        {"m": usage(100_000, 100, "1")},
        skipped={"malformed_json": 2, "blank_line": 0},
    )

    assert likely_causes(result) == [
        "2 log lines were skipped (malformed_json 2) — their usage is missing from your side."
    ]


def test_pending_days_are_mentioned_and_not_blamed() -> None:
    result = result_of(
        {"m": usage(100_000, 50, "1")}, {"m": usage(100_000, 100, "2")}, pending=(DAY,)
    )

    assert likely_causes(result) == [
        "Not settled yet: 2026-03-14 — OpenAI's figures for these days may still change."
    ]


def test_a_clean_result_has_no_causes() -> None:
    same = usage(100_000, 100, "1")

    assert likely_causes(result_of({"m": same}, {"m": same})) == []


def test_small_wobbles_within_tolerance_explain_nothing() -> None:
    causes = likely_causes(
        result_of({"m": usage(100_000, 99, "1")}, {"m": usage(100_000, 100, "1")})
    )

    assert causes == []


def test_sample_message_is_realistic() -> None:
    message = sample_message()

    assert message.event == "test"
    assert message.dedupe_key == "test"
    assert len(message.payload["likely_causes"]) >= 4
    assert replace(message, html="").html == ""
