"""Drift alerts say why (issue 12): the diagnosis's first sentences and the largest parts of the
cost bridge in the email text and HTML, the Slack text and the webhook payload; nothing at all
when the diagnosis is empty."""

from __future__ import annotations

import json
from dataclasses import replace

from recon_job.findings import Bridge, BridgePart, Diagnosis
from recon_job.models import Message
from recon_job.notify.context import Notice
from recon_job.notify.detail import webhook_body
from recon_job.notify.render import render_message, sample_message, sample_result
from recon_job.notify.slack import build_body
from recon_job.notify.webhook import encode_payload
from tests.notify.diagnosed import SENTENCES, D, diagnosed_result

XSS = "<img src=x onerror=alert(1)>"


def diagnosed_message(diagnosis: Diagnosis | None = None) -> Message:
    result = diagnosed_result()
    if diagnosis is not None:
        result = replace(result, diagnosis=diagnosis)
    notice = Notice("opened", result.window.key, "diag1", result.window, result, run_id=7)
    return render_message(notice)


def test_the_email_text_says_why_before_the_groups_and_shows_the_largest_bridge_parts() -> None:
    text = diagnosed_message().text

    why = text.index("Why (the diagnosis):")
    assert why < text.index("3 groups out of tolerance")
    for sentence in SENTENCES[:5]:
        assert f"- {sentence}\n" in text
    assert SENTENCES[5] not in text
    assert "- …and 1 more\n" in text
    lines = text.splitlines()
    start = lines.index("Cost difference -$4.11 (local - OpenAI), largest parts:")
    assert lines[start - 2] == "- …and 1 more"
    assert lines[start : start + 5] == [
        "Cost difference -$4.11 (local - OpenAI), largest parts:",
        "  Requests missing or extra locally  -$3.36  590 requests OpenAI counted are not in "
        "your logs",
        "  Prices                             -$0.75  gpt-4o-mini input: $0.075/1M yours, "
        "$0.15/1M billed",
        "  Token mix                          +$0.03  fewer cached tokens locally",
        "  …and 1 smaller part",
    ]


def test_the_html_part_lists_the_sentences_and_a_bridge_table() -> None:
    html = diagnosed_message().html

    assert ">Why</div>" in html
    assert f'<li style="margin-bottom:4px;">{SENTENCES[1]}</li>' in html
    assert "Cost difference -$4.11, largest parts" in html
    assert html.index("Requests missing or extra locally") < html.index("Prices</strong>")
    assert "<strong>Token mix</strong>" in html
    assert "Duplicate request ids" not in html
    assert "…and 1 smaller part." in html


def test_slack_shows_the_sentences_and_the_parts_in_its_text_section() -> None:
    message = diagnosed_message()
    body = build_body(message)

    assert f"› {SENTENCES[0]}" in body["text"]
    assert (
        "Cost difference -$4.11, largest parts: Requests missing or extra locally -$3.36; "
        "Prices -$0.75; Token mix +$0.03; 1 smaller part." in body["text"]
    )
    # The rendered text is the blocks' first section too, cut to Slack's 3,000 characters:
    # the diagnosis comes before the long lists, so it survives the cut.
    section = body["blocks"][1]["text"]["text"]
    assert len(section) <= 3000
    assert "Cost difference -$4.11" in section


def test_the_webhook_payload_gains_a_bounded_diagnosis_object() -> None:
    payload = json.loads(encode_payload(webhook_body(diagnosed_message().payload)))

    assert payload["schema"] == "recon-job.alert/v1"
    assert payload["diagnosis"] == {
        "summary": list(SENTENCES[:5]),
        "bridge": {
            "difference": "-4.110000",
            "parts": [
                {
                    "name": "coverage",
                    "amount": "-3.360000",
                    "detail": "590 requests OpenAI counted are not in your logs",
                },
                {
                    "name": "price",
                    "amount": "-0.750000",
                    "detail": "gpt-4o-mini input: $0.075/1M yours, $0.15/1M billed",
                },
                {
                    "name": "token_mix",
                    "amount": "0.030000",
                    "detail": "fewer cached tokens locally",
                },
            ],
            "parts_total": 4,
        },
        "omitted": {"summary": 1, "bridge_parts": 1},
    }
    # Every field a receiver already read is still there.
    assert {"groups", "totals", "likely_causes", "omitted", "full_detail"} <= set(payload)


def test_full_detail_sends_every_sentence_and_every_non_zero_part() -> None:
    payload = webhook_body(diagnosed_message().payload, full_detail=True)

    diagnosis = payload["diagnosis"]
    assert diagnosis["summary"] == list(SENTENCES)
    assert [p["name"] for p in diagnosis["bridge"]["parts"]] == [
        "coverage",
        "price",
        "token_mix",
        "duplicates",
    ]
    assert diagnosis["omitted"] == {"summary": 0, "bridge_parts": 0}


def test_an_empty_diagnosis_shows_nothing_anywhere() -> None:
    message = sample_message("plain")

    assert "Why" not in message.text
    assert "Cost difference" not in message.text
    assert ">Why</div>" not in message.html
    assert "›" not in message.slack_text
    assert message.payload["diagnosis"] is None
    assert webhook_body(message.payload, full_detail=True)["diagnosis"] is None


def test_a_bridge_of_zero_parts_alone_shows_nothing() -> None:
    zero = Bridge(D(0), (BridgePart("pending", D(0)),))
    message = diagnosed_message(Diagnosis(bridge=zero))

    assert "Cost difference" not in message.text
    assert message.payload["diagnosis"] is None


def test_a_bridge_without_sentences_is_shown_on_its_own() -> None:
    bridge = Bridge(D("-4.11"), (BridgePart("coverage", D("-4.11"), "requests missing"),))
    message = diagnosed_message(Diagnosis(bridge=bridge))

    assert "Why" not in message.text
    assert "  Requests missing or extra locally  -$4.11  requests missing" in message.text
    assert message.payload["diagnosis"]["summary"] == []


def test_a_failed_run_has_no_diagnosis() -> None:
    window = sample_result().window
    failed = Notice("failed", window.key, "f1", window, None, error=("quota", "quota exhausted"))
    message = render_message(failed)

    assert message.payload["diagnosis"] is None
    assert "Why" not in message.text


def test_sentences_from_data_are_escaped_in_html_and_slack() -> None:
    hostile = (f"model {XSS} is missing <!channel>",)
    bridge = Bridge(D("-1"), (BridgePart("coverage", D("-1"), f"detail {XSS}"),))
    message = diagnosed_message(Diagnosis(bridge=bridge, summary=hostile))

    assert XSS not in message.html
    assert "&lt;img src=x onerror=alert(1)&gt;" in message.html
    assert "<!channel>" not in message.slack_text
    assert "&lt;!channel&gt;" in message.slack_text
    # The text part is plain text: as written.
    assert f"- model {XSS} is missing <!channel>" in message.text
