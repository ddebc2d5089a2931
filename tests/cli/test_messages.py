"""Messages that read as English (issue 9 item 31: "no channel is not configured", "no a request
id column"), through the commands that print them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e import D1, cli, rec, workdir_fixture, write_logs  # noqa: F401
from tests.fakeopenai import FakeOpenAI, fake_openai_fixture  # noqa: F401
from tests.helpers import FIXTURES


def test_alerts_test_without_any_channel_says_no_channel_is_configured(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    ran = cli(workdir, fake_openai, "alerts", "test")

    assert ran.code == 2
    assert "recon-job: error: no channel is configured; see the Alerts section" in ran.stderr
    assert "not configured" not in ran.stderr


def test_alerts_test_of_one_missing_channel_says_it_is_not_configured(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    ran = cli(workdir, fake_openai, "alerts", "test", "--channel", "slack")

    assert ran.code == 2
    assert "recon-job: error: the slack channel is not configured; see the Alerts" in ran.stderr


@pytest.mark.parametrize(
    ("billing", "expected"),
    [
        (
            "missing_columns.csv",
            "missing_columns.csv: line 1: the header has no request id column (one of ",
        ),
        (
            "no_cost_column.csv",
            "no_cost_column.csv: line 1: the header has no cost column (one of ",
        ),
    ],
)
def test_a_billing_file_without_a_needed_column_says_which_in_plain_words(
    fake_openai: FakeOpenAI, workdir: Path, billing: str, expected: str
) -> None:
    write_logs(workdir, [rec(D1, "gpt-4o", 3, input_tokens=1, output_tokens=1)])

    ran = cli(workdir, fake_openai, "reconcile-requests", str(FIXTURES / "billing" / billing))

    assert ran.code == 2, ran.stderr
    assert expected in ran.stderr
    assert "no a " not in ran.stderr
    assert "found columns" in ran.stderr
