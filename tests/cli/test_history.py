"""``recon-job history --run ID``: one past run in full (issue 9 item 31).

The runs are made by ``recon-job run`` against the fake OpenAI (a real HTTP server), recorded in
a real SQLite history, then read back.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from tests.e2e import D1, cli, drifting_world, rec, workdir_fixture, write_logs  # noqa: F401
from tests.fakeopenai import FakeOpenAI, fake_openai_fixture  # noqa: F401


def a_drifting_range(fake: FakeOpenAI, workdir: Path) -> int:
    drifting_world(fake, workdir)
    ran = cli(workdir, fake, "run", "--start", "2026-08-01", "--end", "2026-08-02")
    assert ran.code == 0, ran.stderr
    listed = json.loads(cli(workdir, fake, "history", "--format", "json").stdout)
    run_id = listed[0]["run_id"]
    assert isinstance(run_id, int)
    return run_id


def test_history_run_shows_one_run_in_full_as_text(fake_openai: FakeOpenAI, workdir: Path) -> None:
    run_id = a_drifting_range(fake_openai, workdir)

    ran = cli(workdir, fake_openai, "history", "--run", str(run_id))

    assert ran.code == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0] == f"run {run_id} · range:2026-08-01..2026-08-02 · status: mismatch"
    text = ran.stdout
    for expected in (
        "  trigger:  cli",
        "  rule:     over 5% and over $0.05 / 1,000 tokens / 0 requests",
        "local (yours)",
        "groups (",
        "2026-08-01 gpt-4o-mini",
        "mismatch",
        "reconciled",  # every group, not only the drifting ones
        "unpriced: my-private-model",
        "skipped log records:",
    ):
        assert expected in text, expected
    # The columns line up: each group row is as wide as the header row or narrower.
    groups_at = lines.index(next(line for line in lines if line.startswith("groups (")))
    header = lines[groups_at + 1]
    assert header.startswith("  group")
    assert header.rstrip().endswith("%")


def test_history_run_prints_one_json_document_with_every_group(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    run_id = a_drifting_range(fake_openai, workdir)

    ran = cli(workdir, fake_openai, "history", "--run", str(run_id), "--format", "json")

    assert ran.code == 0, ran.stderr
    doc = ran.doc()
    assert doc["run_id"] == run_id
    assert doc["status"] == "mismatch"
    assert doc["floors"] == {"cost": "0.050000", "tokens": 1000, "requests": 0}
    rows = {(g["date"], g["model"]): g for g in doc["breakdown"]}
    assert len(rows) == doc["groups"]
    mini = rows[("2026-08-01", "gpt-4o-mini")]
    assert mini["status"] == "mismatch"
    assert mini["difference"]["tokens"] == -15000
    assert mini["difference"]["tokens_pct"] == "-10.000000"
    assert rows[("2026-08-01", "gpt-4o")]["status"] == "reconciled"
    # The same fields as the run's entry in the list.
    listed = json.loads(cli(workdir, fake_openai, "history", "--format", "json").stdout)[0]
    assert {k: doc[k] for k in listed} == listed


def test_history_run_of_a_failed_run_shows_its_error(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    write_logs(workdir, [rec(D1, "gpt-4o", 3, input_tokens=1, output_tokens=1)])
    fake_openai.fail_next(1, 401, body={"error": {"message": "Incorrect API key provided"}})
    assert cli(workdir, fake_openai, "run", "--date", "2026-08-01").code == 2

    ran = cli(workdir, fake_openai, "history", "--run", "1")

    assert ran.code == 0, ran.stderr
    assert ran.stdout.startswith("run 1 · daily:2026-08-01 · status: failed\n")
    assert "  error:    unauthorized: " in ran.stdout
    assert "groups (" not in ran.stdout


def test_history_run_of_an_unknown_id_is_exit_2(fake_openai: FakeOpenAI, workdir: Path) -> None:
    a_drifting_range(fake_openai, workdir)

    text = cli(workdir, fake_openai, "history", "--run", "99")
    as_json = cli(workdir, fake_openai, "history", "--run", "99", "--format", "json")

    assert text.code == 2
    assert "there is no run 99 in the history" in text.stderr
    assert as_json.code == 2
    assert as_json.doc()["error"]["reason"] == "run_missing"
    # Past 64 bits SQLite raised OverflowError: a traceback, and no JSON at all.
    huge = "99999999999999999999999"
    beyond = cli(workdir, fake_openai, "history", "--run", huge, "--format", "json")
    assert beyond.code == 2
    assert beyond.doc()["error"]["reason"] == "run_missing"


def test_history_run_never_creates_a_history_database(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    ran = cli(workdir, fake_openai, "history", "--run", "1")

    assert ran.code == 2
    assert "there is no history database" in ran.stderr
    assert not (workdir / "history.db").exists()
    # cache clear created a new, empty history at a mistyped path ("0 cache entries dropped").
    cleared = cli(workdir, fake_openai, "cache", "clear")
    assert cleared.code == 2
    assert "there is no history database" in cleared.stderr
    assert not (workdir / "history.db").exists()


def test_a_36_decimal_amount_reaches_the_history_exactly(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    # OpenAI's amounts carry up to 36 decimals; summing them in Python's default context (28
    # significant digits) rounds the last ones away.
    from recon_job.store import HistoryStore

    fake_openai.add_usage(D1, "gpt-4o-2024-08-06", input_tokens=1000, output_tokens=100, requests=1)
    fake_openai.add_cost(D1, "gpt-4o-2024-08-06, input", "0.200000000000000000000000000000000001")
    fake_openai.add_cost(D1, "gpt-4o-2024-08-06, output", "0.25")
    write_logs(workdir, [rec(D1, "gpt-4o", 10, input_tokens=1000, output_tokens=100)])

    ran = cli(workdir, fake_openai, "run", "--date", str(D1))

    assert ran.code == 0, ran.stderr
    with HistoryStore(f"sqlite:///{workdir / 'history.db'}", create=False) as store:
        [run] = store.list_runs(10)
        [group] = store.run_groups(run.id)
    exact = Decimal("0.450000000000000000000000000000000001")
    assert run.openai is not None
    assert run.openai.cost == group.openai.cost == exact
