"""End to end, in process: what a run says about log lines it could not use (issue 9).

* skipped lines can be found: per reason, the first few ``file:line`` locations, in the JSON
  document (``skipped_locations``) and in the text report; lines without a usable date are
  named once per file and are not blamed on the window as missing usage (item 30);
* values no real record holds — a cost of ``1e999999``, 2**63 tokens, a NUL in a model name —
  are skipped with their reason instead of ending the run in a traceback (items 8, 9, 17);
* OpenAI answering such a count is a clear permanent error (item 9).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from recon_job.causes import likely_causes
from recon_job.compare import reconcile
from recon_job.models import UNDATED_REASONS, RunOutcome, Tolerance, UsageTotals, Window
from recon_job.report.run import render_text, result_dict
from recon_job.sources.ndjson.skips import LOCATIONS_PER_REASON
from tests.e2e import D1, D2, cli, drifting_world, rec, workdir_fixture  # noqa: F401
from tests.fakeopenai import FakeOpenAI, fake_openai_fixture  # noqa: F401


def _write(workdir: Path, name: str, lines: list[str]) -> str:
    path = workdir / "logs" / name
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return str(path)


def test_the_json_and_the_text_name_the_first_skipped_lines_of_each_reason(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    drifting_world(fake_openai, workdir)  # usage_tracking.ndjson: blank, malformed, negative
    extra = _write(
        workdir,
        "z_more.ndjson",  # read after usage_tracking.ndjson (files are read in name order)
        [rec(D1, "gpt-4o-mini", 9, prompt_tokens=1, completion_tokens=1)]
        + ["{broken"] * 8
        + [rec(D1, "gpt-4o-mini", 9, prompt_tokens=1, completion_tokens=1)],
    )
    main = str(workdir / "logs" / "usage_tracking.ndjson")

    ran = cli(workdir, fake_openai, "run", "--date", D1.isoformat(), "--format", "json")
    stored = cli(workdir, fake_openai, "run", "--date", D1.isoformat(), "--format", "json")
    text = cli(workdir, fake_openai, "run", "--date", D1.isoformat(), "--force")

    doc = ran.doc()
    # Stored with the run: the period asked for again shows them from the history.
    assert stored.doc()["from_history"] is True
    assert stored.doc()["skipped_locations"] == doc["skipped_locations"]
    assert doc["skipped"] == {"blank_line": 1, "malformed_json": 9, "negative_tokens": 1}
    assert doc["skipped_locations"] == {
        "blank_line": [f"{main}:48"],
        # Bounded: the first five, file after file in reading order.
        "malformed_json": [f"{main}:49", f"{extra}:2", f"{extra}:3", f"{extra}:4", f"{extra}:5"],
        "negative_tokens": [f"{main}:50"],
    }
    assert len(doc["skipped_locations"]["malformed_json"]) == LOCATIONS_PER_REASON
    assert f"  malformed_json: {main}:49, {extra}:2, {extra}:3" in text.stdout
    assert f"{extra}:5 (and 4 more)" in text.stdout
    assert f"  negative_tokens: {main}:50\n" in text.stdout


def test_lines_without_a_usable_date_are_named_once_per_file_and_not_blamed_on_the_window(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    drifting_world(fake_openai, workdir)
    undated = json.dumps({"model": "gpt-4o-mini", "prompt_tokens": 5, "completion_tokens": 1})
    bad_date = rec(D1, "gpt-4o-mini", 9, prompt_tokens=1).replace("2026-08-01", "2026-08-99")
    a = _write(workdir, "a.ndjson", [undated] * 20 + [bad_date])
    b = _write(workdir, "b.ndjson", [rec(D2, "gpt-4o-mini", 9, prompt_tokens=1), undated])

    docs = [
        cli(workdir, fake_openai, "run", "--date", day.isoformat(), "--format", "json").doc()
        for day in (D1, D2)
    ]

    for doc in docs:
        # Every window's scan meets them again; each file is named once, at its first one.
        assert doc["skipped"]["missing_timestamp"] == 21
        assert doc["skipped_locations"]["missing_timestamp"] == [f"{a}:1", f"{b}:2"]
        assert doc["skipped_locations"]["bad_timestamp"] == [f"{a}:21"]
    text = cli(workdir, fake_openai, "run", "--date", D1.isoformat(), "--force").stdout
    assert f"  missing_timestamp: first in each file: {a}:1, {b}:2 (and 19 more)" in text
    assert (
        f"22 log lines have no usable date (bad_timestamp 1, missing_timestamp 21) in {a}:1, "
        f"{b}:2 — they belong to no day, so no window counts them" in text
    )
    # Only the day's own skipped lines are said to be missing from this window's usage.
    assert "3 log lines were skipped (blank_line 1, malformed_json 1, negative_tokens 1;" in text


def test_only_undated_lines_are_never_called_usage_missing_from_your_side() -> None:
    window = Window("daily", D1, D2)
    result = reconcile(
        UsageTotals(
            skipped={"missing_timestamp": 4},
            skipped_locations={"missing_timestamp": ("logs/a.ndjson:3",)},
        ),
        UsageTotals(),
        window=window,
        tolerance=Tolerance(),
    )

    assert likely_causes(result) == [
        "4 log lines have no usable date (missing_timestamp 4) in logs/a.ndjson:3 — they "
        "belong to no day, so no window counts them: fix the timestamps your logger writes."
    ]
    assert "missing_timestamp" in UNDATED_REASONS


def test_a_result_without_locations_still_reports_its_counts() -> None:
    # A run stored before locations were (history revision 0006) has counts but no locations.
    result = replace(
        reconcile(
            UsageTotals(
                skipped={"malformed_json": 2}, skipped_locations={"malformed_json": ("x:1",)}
            ),
            UsageTotals(),
            window=Window("daily", D1, D2),
            tolerance=Tolerance(),
        ),
        skipped_locations={},
    )

    assert result_dict(result)["skipped_locations"] == {}
    assert likely_causes(result) == [
        "2 log lines were skipped (malformed_json 2) — their usage is missing from your side."
    ]


def test_values_no_real_record_holds_are_skipped_and_the_run_and_history_still_print(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    drifting_world(fake_openai, workdir)
    odd = _write(
        workdir,
        "odd.ndjson",
        [
            rec(D1, "gpt-4o-mini", 9, prompt_tokens=10, completion_tokens=1, cost="1e999999"),
            rec(D1, "gpt-4o-mini", 9, prompt_tokens=2**63, completion_tokens=1),
            rec(D1, "gpt-4o-mini\x00", 9, prompt_tokens=10, completion_tokens=1),
        ],
    )

    ran = cli(workdir, fake_openai, "run", "--date", D1.isoformat(), "--format", "json")
    history = cli(workdir, fake_openai, "history", "--format", "json")

    assert ran.code == 0, ran.stderr  # a mismatch (the drifting world's), nothing worse
    doc = ran.doc()
    assert {k: doc["skipped"][k] for k in ("bad_cost", "bad_model", "bad_tokens")} == {
        "bad_cost": 1,
        "bad_model": 1,
        "bad_tokens": 1,
    }
    assert doc["skipped_locations"]["bad_cost"] == [f"{odd}:1"]
    assert doc["skipped_locations"]["bad_tokens"] == [f"{odd}:2"]
    assert doc["skipped_locations"]["bad_model"] == [f"{odd}:3"]
    assert history.code == 0, history.stderr
    assert "Traceback" not in ran.stderr + history.stderr


def test_a_count_of_2_63_from_openai_is_a_clear_permanent_error(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    drifting_world(fake_openai, workdir)
    fake_openai.add_raw_result(
        "usage",
        D1,
        {
            "object": "organization.usage.completions.result",
            "input_tokens": 2**63,
            "output_tokens": 1,
            "num_model_requests": 1,
            "model": "gpt-4o-mini-2024-07-18",
        },
    )

    ran = cli(workdir, fake_openai, "run", "--date", D1.isoformat())
    history = cli(workdir, fake_openai, "history", "--format", "json")

    assert ran.code == 2, ran.stdout + ran.stderr
    assert "field 'input_tokens' is 9,223,372,036,854,775,808" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert history.code == 0, history.stderr


def test_the_text_report_of_a_result_lists_locations_under_the_counts() -> None:
    result = reconcile(
        UsageTotals(
            skipped={"malformed_json": 7, "bad_timestamp": 1},
            skipped_locations={
                "bad_timestamp": ("a.ndjson:9",),
                "malformed_json": ("a.ndjson:1", "a.ndjson:2"),
            },
        ),
        UsageTotals(),
        window=Window("daily", D1, D2),
        tolerance=Tolerance(),
    )
    at = datetime(2026, 8, 3, tzinfo=UTC)
    outcome = RunOutcome(1, result.window, started_at=at, finished_at=at, result=result)

    text = render_text(outcome)

    assert "skipped log records: bad_timestamp 1, malformed_json 7\n" in text
    assert "  bad_timestamp: first in each file: a.ndjson:9\n" in text
    assert "  malformed_json: a.ndjson:1, a.ndjson:2 (and 5 more)\n" in text
