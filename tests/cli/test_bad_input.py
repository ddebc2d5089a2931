"""Inputs that crashed ``recon-job run`` with a traceback are exit 2 with one readable line
(issue 9 items 12, 15 and 16), through the command a user types."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e import D1, cli, rec, workdir_fixture, write_logs  # noqa: F401
from tests.fakeopenai import FakeOpenAI, fake_openai_fixture  # noqa: F401

PASSWORD = "pw-7f3a9c"  # a test value that must never be shown


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--date", "9999-12-31"), "'9999-12-31' is too far in the future"),
        (("--start", "2026-08-01", "--end", "9999-12-31"), "the last usable day is 9999-12-30"),
        # Year 1 ran the diagnosis's look-back off the calendar: a traceback, a failed run.
        (("--start", "0001-01-01", "--end", "0001-01-01"), "'0001-01-01' is before 1970-01-01"),
        (("--date", "1969-12-31"), "the first day OpenAI's Usage and Costs APIs can be asked"),
        (("--month", "1969-12"), "'1969-12' is before 1970-01, the first month"),
    ],
)
def test_the_last_date_there_is_is_a_usage_error_not_an_overflow(
    fake_openai: FakeOpenAI, workdir: Path, args: tuple[str, ...], expected: str
) -> None:
    write_logs(workdir, [rec(D1, "gpt-4o", 3, input_tokens=1, output_tokens=1)])

    ran = cli(workdir, fake_openai, "run", *args)

    assert ran.code == 2, (ran.stdout, ran.stderr)
    assert expected in ran.stderr
    assert "Traceback" not in ran.stderr
    assert fake_openai.requests == []


def test_a_history_path_under_a_regular_file_is_exit_2_naming_it(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    write_logs(workdir, [rec(D1, "gpt-4o", 3, input_tokens=1, output_tokens=1)])
    (workdir / "notadir").write_text("", encoding="utf-8")

    ran = cli(
        workdir,
        fake_openai,
        "run",
        "--date",
        D1.isoformat(),
        RECON_DATABASE_URL=f"sqlite:///{workdir / 'notadir' / 'history.db'}",
    )

    assert ran.code == 2, (ran.stdout, ran.stderr)
    assert "notadir/history.db" in ran.stderr
    assert "cannot be created" in ran.stderr
    assert "Traceback" not in ran.stderr


def test_a_database_url_only_the_driver_would_reject_is_exit_2_without_its_password(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    write_logs(workdir, [rec(D1, "gpt-4o", 3, input_tokens=1, output_tokens=1)])

    ran = cli(
        workdir,
        fake_openai,
        "run",
        "--date",
        D1.isoformat(),
        RECON_DATABASE_URL=f"postgresql+psycopg://u:{PASSWORD}@[bad",
    )

    assert ran.code == 2, (ran.stdout, ran.stderr)
    assert "history.database_url: not a database URL" in ran.stderr
    assert PASSWORD not in ran.stderr + ran.stdout
    assert "Traceback" not in ran.stderr


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs procfs, where no file is made")
def test_a_history_on_a_filesystem_that_refuses_new_files_is_exit_2_naming_it(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    # A read-only filesystem as even root meets one: procfs accepts no new file.
    write_logs(workdir, [rec(D1, "gpt-4o", 3, input_tokens=1, output_tokens=1)])

    ran = cli(
        workdir,
        fake_openai,
        "run",
        "--date",
        D1.isoformat(),
        RECON_DATABASE_URL="sqlite:////proc/recon-history.db",
    )

    assert ran.code == 2, (ran.stdout, ran.stderr)
    assert "/proc/recon-history.db" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert fake_openai.requests == []


def test_a_day_the_logs_hold_no_record_of_is_a_mismatch_not_an_all_clear(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    # Every family was "untracked" when the logs were empty: reconciled, exit 0.
    fake_openai.add_usage(
        D1, "gpt-4o-2024-08-06", input_tokens=59200, output_tokens=10646, requests=10
    )
    fake_openai.add_cost(D1, "gpt-4o-2024-08-06, input", "0.5")
    fake_openai.add_cost(D1, "gpt-4o-2024-08-06, output", "0.42")
    write_logs(workdir, [""])

    ran = cli(workdir, fake_openai, "run", "--date", str(D1), "--fail-on-mismatch")

    assert ran.code == 1, (ran.stdout, ran.stderr)
    assert "status: mismatch" in ran.stdout
    assert "untracked" not in ran.stdout
    assert "Your side has no record at all in this window while OpenAI counted 10" in ran.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("run", "--window", "range", "--start", "2026-08-02", "--end", "2026-08-01"),
        ("run", "--month", "2026-13"),
        ("explain",),
        ("history", "--run", "0"),
    ],
)
@pytest.mark.parametrize("form", [("--format", "json"), ("--format=json",)])
def test_a_usage_error_with_format_json_is_one_json_document_too(
    fake_openai: FakeOpenAI, workdir: Path, args: tuple[str, ...], form: tuple[str, ...]
) -> None:
    # --help promises "exactly one JSON document on stdout"; click's usage errors printed none.
    ran = cli(workdir, fake_openai, *args, *form)

    assert ran.code == 2, (ran.stdout, ran.stderr)
    error = ran.doc()["error"]
    assert (error["reason"], error["permanent"]) == ("usage", True)
    assert error["message"] in ran.stderr  # the same words as click's own message
    assert "Usage: " in ran.stderr
    assert fake_openai.requests == []
