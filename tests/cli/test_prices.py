"""``recon-job prices check``: unpriced models of recent runs and a LiteLLM price map compared.

The runs are made by ``recon-job run`` against the fake OpenAI (a real HTTP server) and recorded
in a real SQLite history; the price map is a small file shaped like LiteLLM's
``model_prices_and_context_window.json``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.e2e import cli, drifting_world, workdir_fixture  # noqa: F401
from tests.fakeopenai import FakeOpenAI, fake_openai_fixture  # noqa: F401
from tests.helpers import FIXTURES

LITELLM = FIXTURES / "litellm" / "model_prices.json"


def a_run_with_an_unpriced_model(fake: FakeOpenAI, workdir: Path) -> None:
    drifting_world(fake, workdir)  # logs my-private-model without a cost on 2026-08-02
    ran = cli(workdir, fake, "run", "--start", "2026-08-01", "--end", "2026-08-02")
    assert ran.code == 0, ran.stderr


def test_a_model_recent_runs_could_not_price_is_listed_and_exits_1(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    a_run_with_an_unpriced_model(fake_openai, workdir)

    ran = cli(workdir, fake_openai, "prices", "check")

    assert ran.code == 1, ran.stderr
    assert "history: 1 recent run(s) read (the last 20 at most)" in ran.stdout
    assert "  my-private-model at standard (runs 1)" in ran.stdout


def test_a_model_priced_since_by_the_users_file_no_longer_fails(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    a_run_with_an_unpriced_model(fake_openai, workdir)
    prices = workdir / "my-prices.toml"
    prices.write_text(
        '[[models."my-private-model"]]\neffective = 2026-01-01\ninput = "1"\noutput = "2"\n',
        encoding="utf-8",
    )

    ran = cli(
        workdir, fake_openai, "prices", "check", "--format", "json", RECON_PRICING__FILE=str(prices)
    )

    assert ran.code == 0, ran.stderr
    doc = ran.doc()
    assert doc["ok"] is True
    assert doc["unpriced"] == [
        {"model": "my-private-model", "tier": "standard", "runs": [1], "priced_now": True}
    ]
    assert doc["differences"] is None


def test_figures_that_differ_from_a_litellm_map_are_listed(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    ran = cli(workdir, fake_openai, "prices", "check", "--against", str(LITELLM))

    assert ran.code == 1, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0] == "history: no run recorded yet (the last 20 at most)"
    assert f"{LITELLM}: 10 model(s) compared, 4 figure(s) differ" in lines
    table = [line.split() for line in lines if line.startswith("  ")]
    assert table[:5] == [
        ["model", "piece", "ours", "theirs"],
        ["gpt-5.2", "flex.input", "-", "0.875"],
        ["o1-mini", "cached_input", "0.55", "1.5"],
        ["o1-mini", "input", "1.1", "3"],
        ["o1-mini", "output", "4.4", "12"],
    ]
    assert "not in the table (1): gpt-9-preview" in lines


def test_the_json_document_lists_every_difference(fake_openai: FakeOpenAI, workdir: Path) -> None:
    ran = cli(
        workdir, fake_openai, "prices", "check", "--against", str(LITELLM), "--format", "json"
    )

    assert ran.code == 1, ran.stderr
    doc = ran.doc()
    assert doc["ok"] is False
    assert doc["compared_models"] == 10
    assert doc["not_in_table"] == ["gpt-9-preview"]
    assert doc["differences"][1] == {
        "model": "o1-mini",
        "piece": "cached_input",
        "ours": "0.55",
        "theirs": "1.5",
    }


def test_a_map_that_agrees_exits_0(fake_openai: FakeOpenAI, workdir: Path) -> None:
    agreeing = workdir / "agree.json"
    entries = json.loads(LITELLM.read_text(encoding="utf-8"))
    for name in ("gpt-5.2", "o1-mini", "gpt-9-preview"):
        del entries[name]
    agreeing.write_text(json.dumps(entries), encoding="utf-8")

    ran = cli(workdir, fake_openai, "prices", "check", "--against", str(agreeing))

    assert ran.code == 0, ran.stdout + ran.stderr
    assert f"{agreeing}: 8 model(s) compared, 0 figure(s) differ" in ran.stdout


def test_bad_price_maps_exit_2_with_a_clear_message_and_no_traceback(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    not_json = workdir / "broken.json"
    not_json.write_text('{"gpt-4o": {"input_cost_per_token": 2.5e-06,', encoding="utf-8")
    wrong_shape = workdir / "list.json"
    wrong_shape.write_text("[]", encoding="utf-8")
    directory = workdir / "adir.json"
    directory.mkdir()

    for path, message in (
        (not_json, "not JSON"),
        (wrong_shape, "expected a JSON object of model name -> prices"),
        (workdir / "absent.json", "cannot read the price map"),
        (directory, "cannot read the price map"),
    ):
        ran = cli(workdir, fake_openai, "prices", "check", "--against", str(path))

        assert ran.code == 2, (path, ran.stdout, ran.stderr)
        assert f"recon-job: error: {path}: {message}" in ran.stderr
        assert "Traceback" not in ran.stdout + ran.stderr


def test_a_bad_map_in_json_mode_is_one_json_document(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    path = workdir / "broken.json"
    shutil.copy(LITELLM, path)
    path.write_text(path.read_text(encoding="utf-8")[:-10], encoding="utf-8")

    ran = cli(workdir, fake_openai, "prices", "check", "--against", str(path), "--format", "json")

    assert ran.code == 2
    doc = ran.doc()
    assert doc["status"] == "failed"
    assert "not JSON" in doc["error"]["message"]
