"""``recon-job history prune``: delete what is older than ``[history] keep_days`` (issue 13
item 5), its text and JSON output and exit codes.

The history is a real SQLite file built through the store, dated from today (the command reads
the clock), then pruned by the command as a user runs it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from recon_job.store import PRUNED_TABLES, HistoryStore
from tests.e2e import cli, workdir_fixture  # noqa: F401
from tests.fakeopenai import FakeOpenAI, fake_openai_fixture  # noqa: F401
from tests.store.retention import KEEP, Built, build, row_counts


def a_long_history(workdir: Path) -> Built:
    with HistoryStore(f"sqlite:///{workdir / 'history.db'}") as store:
        return build(store, datetime.now(UTC).date())


def prune(workdir: Path, fake: FakeOpenAI, *args: str, keep: int = KEEP) -> tuple[int, str, str]:
    ran = cli(workdir, fake, "history", "prune", *args, RECON_HISTORY__KEEP_DAYS=str(keep))
    return ran.code, ran.stdout, ran.stderr


def test_prune_deletes_the_old_runs_and_says_how_many_rows_per_table(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    built = a_long_history(workdir)
    url = f"sqlite:///{workdir / 'history.db'}"
    rows = row_counts(url)

    code, out, err = prune(workdir, fake_openai)

    assert code == 0, err
    lines = out.splitlines()
    deleted = {t: rows[t] - n for t, n in row_counts(url).items()}
    assert lines[0] == (
        f"keeping {KEEP} days, from {built.kept_from} (UTC); deleted {sum(deleted.values())} rows"
    )
    assert [line.split() for line in lines[1:]] == [[t, str(deleted[t])] for t in PRUNED_TABLES]
    assert deleted["runs"] == len(built.old_runs)
    listed = cli(workdir, fake_openai, "history", "--format", "json", "--limit", "100")
    assert listed.code == 0, listed.stderr
    assert {r["run_id"] for r in json.loads(listed.stdout)} == built.kept_runs


def test_a_dry_run_prints_one_json_document_and_deletes_nothing(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    built = a_long_history(workdir)
    url = f"sqlite:///{workdir / 'history.db'}"
    rows = row_counts(url)

    code, out, err = prune(workdir, fake_openai, "--dry-run", "--format", "json")

    assert code == 0, err
    dry = json.loads(out)
    assert row_counts(url) == rows
    assert dry["dry_run"] is True
    assert dry["keep_days"] == KEEP
    assert dry["kept_from"] == built.kept_from.isoformat()
    assert list(dry["deleted"]) == list(PRUNED_TABLES)
    assert dry["deleted"]["runs"] == len(built.old_runs)
    assert dry["total"] == sum(dry["deleted"].values())
    code, out, err = prune(workdir, fake_openai, "--format", "json")
    assert code == 0, err
    assert json.loads(out) == {**dry, "dry_run": False}
    assert row_counts(url) == {t: rows[t] - dry["deleted"][t] for t in PRUNED_TABLES}


def test_keep_days_zero_keeps_everything(fake_openai: FakeOpenAI, workdir: Path) -> None:
    a_long_history(workdir)
    url = f"sqlite:///{workdir / 'history.db'}"
    rows = row_counts(url)

    text = prune(workdir, fake_openai, keep=0)
    as_json = prune(workdir, fake_openai, "--format", "json", keep=0)

    assert text[0] == 0, text[2]
    assert text[1] == "history.keep_days is 0: the whole history is kept, nothing was deleted\n"
    assert as_json[0] == 0, as_json[2]
    doc = json.loads(as_json[1])
    assert doc["kept_from"] is None
    assert doc["total"] == 0
    assert row_counts(url) == rows


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30", "history.keep_days: keeps 30 days, fewer than recon-job reads back"),
        ("-5", "history.keep_days: Input should be greater than or equal to 0"),
        ("a year", "history.keep_days: Input should be a valid integer"),
    ],
)
def test_a_bad_keep_days_is_a_configuration_error_exit_2(
    fake_openai: FakeOpenAI, workdir: Path, value: str, expected: str
) -> None:
    a_long_history(workdir)
    url = f"sqlite:///{workdir / 'history.db'}"
    rows = row_counts(url)

    text = cli(workdir, fake_openai, "history", "prune", RECON_HISTORY__KEEP_DAYS=value)
    as_json = cli(
        workdir, fake_openai, "history", "prune", "--format", "json", RECON_HISTORY__KEEP_DAYS=value
    )

    assert text.code == 2
    assert expected in text.stderr
    assert as_json.code == 2
    assert expected in as_json.doc()["error"]["message"]
    assert row_counts(url) == rows


def test_keep_days_shorter_than_the_look_back_names_the_least_it_may_be(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    ran = cli(
        workdir,
        fake_openai,
        "check-config",
        RECON_HISTORY__KEEP_DAYS="200",
        RECON_SCHEDULE__LOOKBACK_MONTHS="12",
    )

    assert ran.code == 2
    assert "use at least 434, or 0 to keep everything" in ran.stdout + ran.stderr


def test_prune_never_creates_a_history_database(fake_openai: FakeOpenAI, workdir: Path) -> None:
    code, _out, err = prune(workdir, fake_openai)

    assert code == 2
    assert "there is no history database" in err
    assert not (workdir / "history.db").exists()


def test_options_of_the_run_list_before_prune_are_refused(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    a_long_history(workdir)
    url = f"sqlite:///{workdir / 'history.db'}"
    rows = row_counts(url)

    ran = cli(workdir, fake_openai, "history", "--format", "json", "prune")

    assert ran.code == 2
    assert "--format belongs to the list of runs" in ran.stderr
    assert row_counts(url) == rows
