"""End to end, through ``recon-job run`` in-process against the fake OpenAI: the findings that
need the history (issue 12 items 6-8).

A day OpenAI revised after it was reconciled is told ("OpenAI restated ...") by the next run
whose page covers it, at no extra request, notified once, and its period evaluated again; a
local log that starts missing 8% of the usage shows up as one change point of the drift series;
lines logged twice across two files are counted once and reported. Dates are relative to the
real clock (the CLI reads it), far enough back to be settled.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from recon_job.store import HistoryStore
from tests.e2e import Ran, cli, rec, workdir_fixture, write_logs  # noqa: F401
from tests.fakeopenai import FakeOpenAI, fake_openai_fixture  # noqa: F401

pytestmark = pytest.mark.slow

MODEL = "gpt-4.1-nano"
SNAPSHOT = "gpt-4.1-nano-2025-04-14"
HOOK = "/hooks/recon-secret-path"


def today() -> date:
    return datetime.now(UTC).date()


def bill(fake: FakeOpenAI, day: date, requests: int, *, extra: Decimal = Decimal(0)) -> None:
    """``requests`` requests of 1,000 input and 100 output tokens on ``day`` at the table's
    gpt-4.1-nano prices ($0.10 and $0.40 per 1M tokens), plus ``extra`` dollars of input."""
    fake.add_usage(
        day,
        SNAPSHOT,
        input_tokens=1000 * requests,
        output_tokens=100 * requests,
        requests=requests,
        at=datetime(day.year, day.month, day.day, 9, tzinfo=UTC),  # when the logs say
    )
    fake.add_cost(day, f"{SNAPSHOT}, input", Decimal("0.0001") * requests + extra)
    fake.add_cost(day, f"{SNAPSHOT}, output", Decimal("0.00004") * requests)


def logged(day: date, requests: int) -> list[str]:
    return [rec(day, MODEL, 9, input_tokens=1000, output_tokens=100) for _ in range(requests)]


def webhook_env(receiver: HTTPServer) -> dict[str, str]:
    return {
        "RECON_WEBHOOK_URL": receiver.url_for(HOOK),
        "RECON_WEBHOOK__ALLOW_PRIVATE": "true",
        "RECON_WEBHOOK_SECRET": "whsec_e2e_0123456789abcdef",
    }


def findings_posted(receiver: HTTPServer, event: str) -> list[dict[str, Any]]:
    bodies = [json.loads(r.get_data()) for r, _ in receiver.log if r.path == HOOK]
    return [b for b in bodies if b.get("event") == event]


@pytest.fixture
def receiver(httpserver: HTTPServer) -> HTTPServer:
    httpserver.expect_request(HOOK, method="POST").respond_with_data("", status=204)
    return httpserver


def history(workdir: Path) -> HistoryStore:
    return HistoryStore(f"sqlite:///{workdir / 'history.db'}")


def test_a_day_openai_revised_two_days_later_is_told_notified_once_and_evaluated_again(
    fake_openai: FakeOpenAI, workdir: Path, receiver: HTTPServer
) -> None:
    day = today() - timedelta(days=5)
    later = day + timedelta(days=2)
    for d in (day, later):
        bill(fake_openai, d, 10)
    write_logs(workdir, logged(day, 10) + logged(later, 10))
    env = webhook_env(receiver)

    first = cli(workdir, fake_openai, "run", "--date", day.isoformat(), **env)
    assert first.code == 0, first.stderr
    assert "status: reconciled" in first.stdout
    asked = len(fake_openai.requests)

    # OpenAI bills the day $1.85 more, two days after it was reconciled.
    fake_openai.add_cost(day, f"{SNAPSHOT}, input", Decimal("1.85"))
    ran = cli(workdir, fake_openai, "run", "--date", later.isoformat(), **env)
    assert ran.code == 0, ran.stderr
    # The later day's page covers the revised day: no request more than the first run made.
    assert len(fake_openai.requests) - asked == asked
    told = [line.strip() for line in ran.stdout.splitlines() if "OpenAI restated" in line]
    assert told == [
        f"- OpenAI restated {day.isoformat()} gpt-4.1-nano: cost $0.0014 → $1.8514 (+$1.85), "
        f"seen {today().isoformat()}"
    ], ran.stdout
    # The JSON carries it too (here the stored result, shown from the history).
    shown = cli(workdir, fake_openai, "run", "--date", later.isoformat(), "--format", "json")
    assert shown.doc()["from_history"] is True
    assert [
        (r["group"]["day"], r["quantity"], Decimal(r["before"]), Decimal(r["after"]))
        for r in shown.doc()["diagnosis"]["restatements"]
    ] == [(day.isoformat(), "cost", Decimal("0.0014"), Decimal("1.8514"))]

    with history(workdir) as store:
        stored = store.restatements_since()
    assert [(r.group.day, r.quantity, r.before, r.after) for r in stored] == [
        (day, "cost", Decimal("0.0014"), Decimal("1.8514"))
    ]
    assert len(findings_posted(receiver, "restated")) == 1

    # The revised day is due again: re-run (not shown from the history), now a mismatch of
    # $1.85 that says why, and then complete.
    again = cli(workdir, fake_openai, "run", "--date", day.isoformat(), **env)
    assert again.code == 0, again.stderr
    assert "from the history" not in again.stdout
    assert "status: mismatch" in again.stdout
    assert told[0] in again.stdout
    with history(workdir) as store:
        assert len(store.restatements_since()) == 1  # told again, not recorded again
    done = cli(workdir, fake_openai, "run", "--date", day.isoformat(), "--format", "json", **env)
    assert done.doc()["from_history"] is True
    # Told once, whatever the number of runs that see the revised figures.
    assert len(findings_posted(receiver, "restated")) == 1


def test_a_log_that_starts_missing_8_percent_is_one_change_point_of_the_drift_series(
    fake_openai: FakeOpenAI, workdir: Path, receiver: HTTPServer
) -> None:
    # 30 settled days; from the 16th the app logs 23 of its 25 requests a day (-8%).
    last = today() - timedelta(days=2)
    days = [last - timedelta(days=29 - i) for i in range(30)]
    step = days[15]
    lines: list[str] = []
    for d in days:
        bill(fake_openai, d, 25)
        lines += logged(d, 25 if d < step else 23)
    write_logs(workdir, lines)
    env = {
        **webhook_env(receiver),
        "RECON_SCHEDULE__LOOKBACK_DAYS": "30",
        "RECON_SCHEDULE__LOOKBACK_MONTHS": "1",
        "RECON_DIAGNOSIS__TREND_ALERT": "true",
    }

    caught_up = cli(workdir, fake_openai, "run", "--due", "--format", "json", **env)
    assert caught_up.code == 0, caught_up.stderr
    assert [
        r["window"]["key"] for r in caught_up.doc()["due"] if r["window"]["kind"] == "daily"
    ] == [f"daily:{d.isoformat()}" for d in days]

    ran = cli(workdir, fake_openai, "run", "--date", last.isoformat(), "--force", **env)
    assert ran.code == 0, ran.stderr
    told = [line.strip() for line in ran.stdout.splitlines() if "drift moved" in line]
    assert told == [
        f"- gpt-4.1-nano drift moved from 0.0% to −8.0% on {step.isoformat()} and stayed"
    ], ran.stdout
    as_json = cli(workdir, fake_openai, "run", "--date", last.isoformat(), "--format", "json")
    points = as_json.doc()["diagnosis"]["change_points"]
    assert [(p["model"], p["day"]) for p in points] == [("gpt-4.1-nano", step.isoformat())]
    # Every run since the step was detected finds it again: the trend notice is sent once.
    assert len(findings_posted(receiver, "trend")) == 1


def big(day: date, request_id: str) -> str:
    """One request of 1M input and 100k output tokens: $0.14 at gpt-4.1-nano's prices."""
    return rec(day, MODEL, 9, input_tokens=1_000_000, output_tokens=100_000, request_id=request_id)


def test_lines_logged_twice_across_two_files_are_counted_once_and_reported(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    day = today() - timedelta(days=5)
    fake_openai.add_usage(
        day,
        SNAPSHOT,
        input_tokens=10_000_000,
        output_tokens=1_000_000,
        requests=10,
        at=datetime(day.year, day.month, day.day, 9, tzinfo=UTC),
    )
    fake_openai.add_cost(day, f"{SNAPSHOT}, input", Decimal("1.00"))
    fake_openai.add_cost(day, f"{SNAPSHOT}, output", Decimal("0.40"))
    logs = workdir / "logs"
    (logs / "app-1.ndjson").write_text(
        "".join(big(day, f"req_{i}") + "\n" for i in range(10)), "utf-8"
    )
    # A copied rotation: the last 5 requests logged again in a second file, from its line 2.
    other = [
        rec(day - timedelta(days=1), MODEL, 8, input_tokens=1, output_tokens=1),
        *(big(day, f"req_{i}") for i in range(5, 10)),
    ]
    (logs / "app-2.ndjson").write_text("".join(line + "\n" for line in other), "utf-8")
    args = ("run", "--date", day.isoformat(), "--force")

    ran = cli(workdir, fake_openai, *args)
    assert ran.code == 0, ran.stderr
    assert "status: reconciled" in ran.stdout, ran.stdout
    told = [line.strip() for line in ran.stdout.splitlines() if "duplicate record" in line]
    assert told == [
        "- 5 duplicate records of 5 request ids counted once ($0.70 they would have added); "
        f"first at {logs / 'app-2.ndjson'}:2"
    ], ran.stdout
    doc = cli(workdir, fake_openai, *args, "--format", "json").doc()
    duplicates = doc["diagnosis"]["duplicates"]
    assert (duplicates["count"], duplicates["request_ids"]) == (5, 5)
    assert Decimal(duplicates["cost"]) == Decimal("0.70")
    assert duplicates["locations"][0].endswith("app-2.ndjson:2")

    # Dedupe off: the copies are counted, and the day drifts by their 50%.
    counted = cli(workdir, fake_openai, *args, "--format", "json", RECON_LOGS__DEDUPE="false").doc()
    assert counted["status"] == "mismatch"
    assert counted["local"]["requests"] == 15
    assert counted["diagnosis"].get("duplicates") is None


def test_run_due_evaluates_a_restated_day_again_in_the_same_tick_and_then_not_again(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    day = today() - timedelta(days=5)
    days = [day + timedelta(days=i) for i in range(4)]  # up to the last settled day
    for d in days:
        bill(fake_openai, d, 10)
    write_logs(workdir, [line for d in days for line in logged(d, 10)])
    env = {"RECON_SCHEDULE__LOOKBACK_DAYS": "4", "RECON_SCHEDULE__LOOKBACK_MONTHS": "1"}
    assert cli(workdir, fake_openai, "run", "--date", day.isoformat()).code == 0

    fake_openai.add_cost(day, f"{SNAPSHOT}, input", Decimal("1.85"))
    ran = cli(workdir, fake_openai, "run", "--due", "--format", "json", **env)
    assert ran.code == 0, ran.stderr
    runs = ran.doc()["due"]
    daily = [r["window"]["key"] for r in runs if r["window"]["kind"] == "daily"]
    # The first day after it finds the revision; the revised day runs again after the others.
    assert daily == [f"daily:{d.isoformat()}" for d in (*days[1:], day)]
    found, revised = runs[0], runs[-1]
    for run in (found, revised):  # the revised day's run says why it changed
        restated = run["diagnosis"]["restatements"]
        assert [(r["group"]["day"], Decimal(r["after"])) for r in restated] == [
            (day.isoformat(), Decimal("1.8514"))
        ]
    assert revised["status"] == "mismatch"  # judged on OpenAI's new figures
    with history(workdir) as store:
        assert [r.group.day for r in store.restatements_since()] == [day]

    again = cli(workdir, fake_openai, "run", "--due", "--format", "json", **env)
    assert again.code == 0, again.stderr
    assert again.doc()["due"] == []
