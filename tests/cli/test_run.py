"""``recon-job run`` in this process: the verdicts a user sees (issue 9 items 1, 2 and 3).

The fake OpenAI is real HTTP on 127.0.0.1; the webhook receiver is a real HTTP server; the clock
is frozen through the CLI's one clock seam (``recon_job.cli.run.utcnow``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from recon_job.cli import run as run_command
from recon_job.store import HistoryStore, RunStatus
from tests.e2e import cli, drifting_world, workdir_fixture, write_logs  # noqa: F401
from tests.fakeopenai import FakeOpenAI, fake_openai_fixture  # noqa: F401

HOOK = "/hooks/recon"


@pytest.fixture
def receiver() -> Iterator[HTTPServer]:
    """A real webhook receiver on 127.0.0.1 that accepts everything."""
    with HTTPServer(host="127.0.0.1", port=0) as server:
        server.expect_request(HOOK, method="POST").respond_with_data("", status=204)
        yield server


@pytest.fixture
def freeze(monkeypatch: pytest.MonkeyPatch) -> Callable[[datetime], None]:
    """Set the CLI's clock (the only place ``run`` reads it)."""

    def set_clock(at: datetime) -> None:
        monkeypatch.setattr(run_command, "utcnow", lambda: at)

    return set_clock


def webhook(receiver: HTTPServer) -> dict[str, str]:
    return {
        "RECON_WEBHOOK_URL": receiver.url_for(HOOK),
        "RECON_WEBHOOK__ALLOW_PRIVATE": "true",
    }


def alerts_sent(receiver: HTTPServer) -> list[dict[str, Any]]:
    return [json.loads(request.get_data()) for request, _ in receiver.log]


def drifting_days(fake: FakeOpenAI, workdir: Path, days: list[date]) -> None:
    """gpt-4o-mini: OpenAI counts 40 requests a day, the logs only 36 (-10 %)."""
    lines = []
    for day in days:
        fake.add_usage(
            day, "gpt-4o-mini-2024-07-18", input_tokens=120000, output_tokens=30000, requests=40
        )
        fake.add_cost(day, "gpt-4o-mini-2024-07-18, input", Decimal("0.018"))
        fake.add_cost(day, "gpt-4o-mini-2024-07-18, output", Decimal("0.018"))
        lines += [
            json.dumps(
                {
                    "timestamp": f"{day.isoformat()}T12:00:00Z",
                    "model": "gpt-4o-mini",
                    "input_tokens": 3000,
                    "output_tokens": 750,
                }
            )
            for _ in range(36)
        ]
    write_logs(workdir, lines)


def history(workdir: Path) -> list[tuple[str, RunStatus]]:
    with HistoryStore(f"sqlite:///{workdir / 'history.db'}") as store:
        return [(r.window_key, r.status) for r in reversed(store.list_runs(100))]


# --- item 1: an early run never completes a period -----------------------------------------------


def test_a_month_run_before_it_settled_is_pending_and_the_due_run_after_it_settled_runs_it(
    fake_openai: FakeOpenAI,
    workdir: Path,
    receiver: HTTPServer,
    freeze: Callable[[datetime], None],
) -> None:
    # On 3 December only the 1st has settled (24 h after its end); the 2nd drifts but is not.
    drifting_days(fake_openai, workdir, [date(2026, 12, 1), date(2026, 12, 2)])
    env = {
        **webhook(receiver),
        "RECON_SCHEDULE__LOOKBACK_DAYS": "1",
        "RECON_SCHEDULE__LOOKBACK_MONTHS": "1",
    }
    freeze(datetime(2026, 12, 3, 12, 0, tzinfo=UTC))

    early = cli(workdir, fake_openai, "run", "--month", "2026-12", "--format", "json", **env)

    assert early.code == 0, early.stderr
    doc = early.doc()
    assert doc["status"] == "pending"
    assert doc["reconciled"] is False
    assert len(doc["pending_days"]) == 30
    statuses = {row["date"]: row["status"] for row in doc["breakdown"]}
    assert statuses == {"2026-12-01": "mismatch", "2026-12-02": "pending"}
    # The settled day's drift is told; nothing is opened for the unsettled day.
    [alert] = alerts_sent(receiver)
    assert alert["status"] == "pending"
    assert [g["date"] for g in alert["groups"]] == ["2026-12-01"]
    assert history(workdir) == [("monthly:2026-12", RunStatus.PENDING)]

    # Not complete: asked again the same day, it runs again (and tells nothing new).
    asked = len(fake_openai.requests)
    again = cli(workdir, fake_openai, "run", "--month", "2026-12", "--format", "json", **env)
    assert again.code == 0, again.stderr
    assert again.doc()["status"] == "pending"
    assert again.doc()["from_history"] is False
    assert len(fake_openai.requests) > asked
    assert len(receiver.log) == 1

    # In January the month has settled: run --due plans it, and judges it whole.
    freeze(datetime(2027, 1, 2, 6, 0, tzinfo=UTC))
    due = cli(workdir, fake_openai, "run", "--due", "--format", "json", **env)

    assert due.code == 0, due.stderr
    ran = {run["window"]["key"]: run for run in due.doc()["due"]}
    assert set(ran) == {"monthly:2026-12", "daily:2026-12-31"}
    assert ran["monthly:2026-12"]["status"] == "mismatch"
    assert ran["monthly:2026-12"]["pending_days"] == []
    assert ("monthly:2026-12", RunStatus.MISMATCH) in history(workdir)


def test_fail_on_mismatch_fails_a_pending_run_whose_settled_days_drift(
    fake_openai: FakeOpenAI, workdir: Path, freeze: Callable[[datetime], None]
) -> None:
    drifting_days(fake_openai, workdir, [date(2026, 12, 1)])
    freeze(datetime(2026, 12, 3, 12, 0, tzinfo=UTC))

    ran = cli(workdir, fake_openai, "run", "--month", "2026-12", "--fail-on-mismatch")

    assert ran.code == 1, ran.stderr
    assert "status: pending" in ran.stdout
    assert "2026-12-01 gpt-4o-mini" in ran.stdout


# --- item 2: an explicit run of a completed period shows its verdict ------------------------------


@pytest.mark.parametrize("flags", [("--date", "2026-08-01"), ("--month", "2026-08")])
def test_a_completed_period_asked_again_shows_its_stored_verdict_and_fetches_nothing(
    fake_openai: FakeOpenAI, workdir: Path, flags: tuple[str, ...]
) -> None:
    drifting_world(fake_openai, workdir)
    args = ("run", *flags, "--fail-on-mismatch")
    first = cli(workdir, fake_openai, *args, "--format", "json")
    assert first.code == 1, first.stderr
    assert first.doc()["status"] == "mismatch"
    asked = len(fake_openai.requests)

    shown = cli(workdir, fake_openai, *args, "--format", "json")
    text = cli(workdir, fake_openai, *args)

    assert len(fake_openai.requests) == asked  # nothing fetched
    assert shown.code == text.code == 1  # exits by the stored result
    assert shown.doc() == {**first.doc(), "from_history": True, "alerts": []}
    assert text.stdout.startswith(f"run {first.doc()['run_id']} · ")
    assert "status: mismatch" in text.stdout
    assert "from the history" in text.stdout
    assert "gpt-4o-mini" in text.stdout  # the drifting group, as the run showed it
    assert "use --force to run it again" in text.stdout
    assert len(history(workdir)) == 1

    forced = cli(workdir, fake_openai, *args, "--force", "--format", "json")
    assert forced.code == 1, forced.stderr
    assert forced.doc()["from_history"] is False
    assert forced.doc()["run_id"] != first.doc()["run_id"]
    assert len(fake_openai.requests) > asked


def test_without_fail_on_mismatch_a_stored_mismatch_exits_0(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    drifting_world(fake_openai, workdir)
    assert cli(workdir, fake_openai, "run", "--date", "2026-08-01").code == 0
    shown = cli(workdir, fake_openai, "run", "--date", "2026-08-01", "--format", "json")
    assert shown.code == 0, shown.stderr
    assert shown.doc()["status"] == "mismatch"
    assert shown.doc()["from_history"] is True


# --- item 3: the configuration is checked whatever the period's state ---------------------------


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_missing_log_path_exits_2_naming_it_even_for_a_completed_period(
    fake_openai: FakeOpenAI, workdir: Path, fmt: str
) -> None:
    drifting_world(fake_openai, workdir)
    assert cli(workdir, fake_openai, "run", "--date", "2026-08-01").code == 0
    asked = len(fake_openai.requests)

    ran = cli(
        workdir,
        fake_openai,
        "run",
        "--date",
        "2026-08-01",
        "--format",
        fmt,
        RECON_LOG_PATHS="/nowhere/usage.ndjson",
    )

    assert ran.code == 2, ran.stdout
    assert "/nowhere/usage.ndjson" in ran.stderr
    assert "from the history" not in ran.stdout
    if fmt == "json":
        assert ran.doc()["status"] == "failed"
    assert len(fake_openai.requests) == asked


# --- a tick stopped before it could record a run still says so -----------------------------------


def test_run_due_with_a_refused_configuration_tells_the_channels_once_a_day(
    fake_openai: FakeOpenAI, workdir: Path, receiver: HTTPServer
) -> None:
    env = {**webhook(receiver), "RECON_LOG_PATHS": "/nowhere/usage.ndjson"}
    first = cli(workdir, fake_openai, "run", "--due", **env)
    second = cli(workdir, fake_openai, "run", "--due", **env)  # cron, an hour later

    assert first.code == second.code == 2
    assert "/nowhere/usage.ndjson" in first.stderr
    [alert] = alerts_sent(receiver)
    assert alert["event"] == "failed"
    assert alert["error"]["reason"] == "config"
    assert "/nowhere/usage.ndjson" in alert["error"]["message"]


def test_one_window_run_by_hand_with_a_refused_configuration_only_says_so_on_stderr(
    fake_openai: FakeOpenAI, workdir: Path, receiver: HTTPServer
) -> None:
    env = {**webhook(receiver), "RECON_LOG_PATHS": "/nowhere/usage.ndjson"}
    ran = cli(workdir, fake_openai, "run", "--date", "2026-08-01", **env)
    assert ran.code == 2
    assert "/nowhere/usage.ndjson" in ran.stderr
    assert receiver.log == []  # whoever runs one window by hand reads the error
