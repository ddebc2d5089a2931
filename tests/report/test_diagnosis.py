"""The diagnosis in the run's output: the JSON object, its inverse, and the text section."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

from recon_job.compare import reconcile
from recon_job.findings import (
    Bridge,
    BridgePart,
    ChangePoint,
    Diagnosis,
    Duplicates,
    Gap,
    GroupDiagnosis,
    GroupRef,
    PriceFinding,
    Restatement,
    ShadowEntry,
)
from recon_job.models import RunOutcome, Tolerance, Usage, UsageKey, UsageTotals, Window
from recon_job.report import diagnosis_dict, diagnosis_from_dict, diagnosis_lines
from recon_job.report.run import outcome_dict, render_text

D = Decimal
DAY = date(2026, 2, 3)
AT = datetime(2026, 2, 4, 6, 0, tzinfo=UTC)
WINDOW = Window("daily", DAY, date(2026, 2, 4))
REF = GroupRef(DAY, "completions", "gpt-4o", "proj_1")
BRIDGE = Bridge(
    difference=D("-1.0420"),
    parts=(
        BridgePart("coverage", D("-1.092"), "312 requests missing locally at $0.0035 each"),
        BridgePart("local_estimate", D("0.05"), "your logged cost $2.46 against the table's $2.41"),
    ),
)
PRICE = PriceFinding(
    model="gpt-5",
    piece="cached input",
    tier="standard",
    billed=D("0.125"),
    table=D("0.25"),
    unit="1M tokens",
    since=date(2026, 1, 7),
    last_day=DAY,
)
FULL = Diagnosis(
    groups=(
        GroupDiagnosis(
            group=REF,
            gaps=(
                Gap(
                    datetime(2026, 2, 3, 14, 0, tzinfo=UTC),
                    datetime(2026, 2, 3, 15, 20, tzinfo=UTC),
                    "requests",
                    D(-312),
                    D("94.230769"),
                    "1m",
                ),
            ),
            shift_hours=-1,
            bridge=BRIDGE,
            price_findings=(PRICE,),
        ),
        GroupDiagnosis(
            group=GroupRef(DAY, "embeddings", "text-embedding-3-small"), skipped="budget"
        ),
    ),
    bridge=Bridge(
        D("-1.442"),
        (*BRIDGE.parts, BridgePart("untracked", D("-0.40"), "OpenAI billed $0.40 of embeddings")),
    ),
    shadow=(
        ShadowEntry("api_key", "key_abc", "ci", 1200, 3, D("0.42"), D("12.5"), D("11.25")),
        ShadowEntry("user", "user_1", None, 50, 1, None, D("0.5")),
    ),
    duplicates=Duplicates(count=41, request_ids=37, cost=D("1.23"), locations=("app.ndjson:120",)),
    restatements=(
        Restatement(
            REF, "cost", D("10.00"), D("10.50"), datetime(2026, 2, 5, 6, 1, 2, 345, UTC), 7
        ),
    ),
    price_findings=(PRICE,),
    change_points=(ChangePoint("completions", "gpt-4o", DAY, D("0.2"), D("-3.8")),),
    requests_used=3,
    summary=(
        "your logs are missing 312 requests 14:00-15:20 UTC (94% of the difference)",
        "OpenAI bills gpt-5 cached input at $0.125/1M since 2026-01-07; your table: $0.25",
    ),
)


def test_a_diagnosis_reads_back_from_its_json_as_it_was() -> None:
    text = json.dumps(diagnosis_dict(FULL))
    assert diagnosis_from_dict(json.loads(text)) == FULL


def test_an_empty_diagnosis_reads_back_empty_and_a_bare_object_takes_the_defaults() -> None:
    assert diagnosis_from_dict(json.loads(json.dumps(diagnosis_dict(Diagnosis())))) == Diagnosis()
    assert diagnosis_from_dict({}) == Diagnosis()


def test_the_json_object_writes_money_as_strings_and_times_in_utc_with_a_z() -> None:
    doc = diagnosis_dict(FULL)
    group = doc["groups"][0]
    assert group["group"] == {
        "day": "2026-02-03",
        "family": "completions",
        "model": "gpt-4o",
        "project_id": "proj_1",
    }
    assert group["gaps"] == [
        {
            "start": "2026-02-03T14:00:00Z",
            "end": "2026-02-03T15:20:00Z",
            "quantity": "requests",
            "difference": "-312",
            "share_pct": "94.230769",
            "resolution": "1m",
        }
    ]
    assert group["shift_hours"] == -1
    assert group["bridge"] == {
        "difference": "-1.042000",
        "parts": [
            {
                "name": "coverage",
                "amount": "-1.092000",
                "detail": "312 requests missing locally at $0.0035 each",
            },
            {
                "name": "local_estimate",
                "amount": "0.050000",
                "detail": "your logged cost $2.46 against the table's $2.41",
            },
        ],
    }
    assert group["price_findings"][0]["billed"] == "0.125000"
    assert doc["groups"][1]["skipped"] == "budget"
    assert doc["groups"][1]["bridge"] is None
    assert doc["duplicates"] == {
        "count": 41,
        "request_ids": 37,
        "cost": "1.230000",
        "locations": ["app.ndjson:120"],
    }
    assert doc["restatements"][0]["seen_at"] == "2026-02-05T06:01:02.000345Z"
    assert doc["shadow"][1]["cost"] is None
    assert doc["change_points"][0]["after_pct"] == "-3.800000"
    assert doc["requests_used"] == 3
    assert doc["summary"] == list(FULL.summary)


def test_the_text_section_says_the_findings_then_a_bridge_table_that_adds_up() -> None:
    lines = diagnosis_lines(FULL)
    assert lines[:4] == [
        "",
        "diagnosis:",
        "  - your logs are missing 312 requests 14:00-15:20 UTC (94% of the difference)",
        "  - OpenAI bills gpt-5 cached input at $0.125/1M since 2026-01-07; your table: $0.25",
    ]
    table = lines[
        lines.index("cost bridge (local − OpenAI, parts add up to the difference):") + 1 :
    ]
    assert table == [
        "  part            amount",
        "  coverage        -$1.09  312 requests missing locally at $0.0035 each",
        "  local_estimate  +$0.05  your logged cost $2.46 against the table's $2.41",
        "  untracked       -$0.40  OpenAI billed $0.40 of embeddings",
        "  difference      -$1.44  local − OpenAI",
        "  (3 extra Usage API requests for the diagnosis)",
    ]


def test_nothing_found_adds_no_text() -> None:
    assert diagnosis_lines(Diagnosis()) == []


def outcome(diagnosis: Diagnosis) -> RunOutcome:
    key = UsageKey(DAY, "gpt-4o")
    result = reconcile(
        UsageTotals(groups={key: Usage(1000, 0, 10, 10, D("2.46"))}),
        UsageTotals(groups={key: Usage(1000, 0, 10, 12, D("3.50"))}),
        window=WINDOW,
        tolerance=Tolerance(),
    )
    return RunOutcome(
        9, WINDOW, started_at=AT, finished_at=AT, result=replace(result, diagnosis=diagnosis)
    )


def test_the_run_report_carries_the_diagnosis_only_when_something_was_found() -> None:
    assert "diagnosis" not in outcome_dict(outcome(Diagnosis()))
    doc = json.loads(json.dumps(outcome_dict(outcome(FULL))))
    assert diagnosis_from_dict(doc["diagnosis"]) == FULL


def test_the_run_text_report_shows_the_diagnosis_after_the_likely_causes() -> None:
    text = render_text(outcome(FULL))
    assert "\ndiagnosis:\n  - your logs are missing 312 requests" in text
    assert "  coverage        -$1.09  312 requests missing locally" in text
    assert text.index("likely causes:") < text.index("diagnosis:")
    assert "diagnosis:" not in render_text(outcome(Diagnosis()))
