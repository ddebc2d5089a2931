"""The one list of checks (recon_job.config.checks): ``check-config`` and every run agree."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from recon_job import wiring
from recon_job.cli.main import main
from recon_job.config import Settings, Uses, describe, load_settings, problems
from recon_job.errors import ConfigError
from recon_job.job import RunControl, Sources
from recon_job.store import HistoryStore
from tests.helpers import ROOT

KEY = "sk-admin-test0123456789"
# The example of issue 8: a table name and a filter with pasted SQL in them.
PASTED_SQL = """
[[sources]]
kind = "sql"
name = "billing"
url_env = "BILLING_DB"
table = "token usage; drop"
filter = "environment = 'production' -- and the rest"
[sources.columns]
timestamp = "created_at"
model = "model"
input_tokens = "prompt_tokens"
output_tokens = "completion_tokens"
"""


@pytest.fixture
def store() -> Iterator[HistoryStore]:
    history = HistoryStore("sqlite://")
    yield history
    history.close()


def clock() -> datetime:
    return datetime(2026, 8, 5, 6, 0, tzinfo=UTC)


def test_check_config_and_run_refuse_pasted_sql_with_the_same_message(tmp_path: Path) -> None:
    config = tmp_path / "recon.toml"
    config.write_text(PASTED_SQL, encoding="utf-8")
    env = {
        "OPENAI_ADMIN_KEY": KEY,
        "BILLING_DB": f"sqlite:///{tmp_path / 'app.db'}",
        "RECON_DATABASE_URL": f"sqlite:///{tmp_path / 'history.db'}",
        "RECON_CONFIG": None,
    }
    runner = CliRunner(env=env)

    checked = runner.invoke(main, ["check-config", "--config", str(config)])
    ran = runner.invoke(main, ["run", "--date", "2026-08-01", "--config", str(config)])

    expected = (
        "sources.0.sql.table: SQL source table 'token usage; drop' is not a plain name",
        "sources.0.sql.filter: SQL source filter may not contain ';' or a comment",
    )
    for result in (checked, ran):
        assert result.exit_code == 2, result.output
        for message in expected:
            assert message in result.stderr
    assert "configuration OK" not in checked.stdout
    assert not (tmp_path / "history.db").exists()  # the run stopped before recording anything


def settings_with_problems(tmp_path: Path) -> Settings:
    return load_settings(
        environ={
            "RECON_LOG_PATHS": str(tmp_path / "nowhere" / "*.ndjson"),
            "RECON_MODELS__ALIASES": '{"bot": "gpt-4o-mnii"}',
            "RECON_WEBHOOK_URL": "https://user:pw@hooks.example.com/x",
        }
    )


def test_a_run_refuses_exactly_what_check_config_reports(
    tmp_path: Path, store: HistoryStore
) -> None:
    settings = settings_with_problems(tmp_path)
    found = problems(settings)
    assert len(found) == 4, found  # no admin key, the alias, the log glob, the webhook URL

    with pytest.raises(ConfigError) as info:
        wiring.deps(settings, store, RunControl(clock))

    assert info.value.problems == found
    assert store.list_runs() == []


def test_a_run_skips_the_checks_of_the_parts_it_replaces(
    tmp_path: Path, store: HistoryStore
) -> None:
    settings = settings_with_problems(tmp_path)

    with pytest.raises(ConfigError) as info:
        wiring.deps(
            settings,
            store,
            RunControl(clock),
            wiring.Overrides(sources=Sources((), ()), channels={}),
        )

    # The price table is always the configured one: its alias problem stays.
    assert info.value.problems == problems(
        settings, Uses(local_sources=False, openai_api=False, channels=False)
    )
    assert [p for p in info.value.problems if "did you mean 'gpt-4o-mini'" in p]
    assert len(info.value.problems) == 1


def test_offline_runs_need_no_admin_key_and_quiet_channels_are_not_checked(tmp_path: Path) -> None:
    logs = tmp_path / "usage.ndjson"
    logs.write_text("", encoding="utf-8")
    settings = load_settings(
        environ={
            "RECON_LOG_PATHS": str(logs),
            "RECON_WEBHOOK_URL": "https://user:pw@hooks.example.com/x",
            "RECON_ALERTS__ENABLED": "false",
        }
    )

    assert problems(settings, Uses(openai_api=False)) == []
    assert problems(settings) == [problems(load_settings(environ={}))[0]]  # the admin key


def test_a_bad_price_file_is_listed_with_the_other_problems(tmp_path: Path) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text('[[models."m"]]\neffective = 2025-01-01\ninput = "-1"\n', encoding="utf-8")
    settings = load_settings(
        environ={"RECON_PRICING_FILE": str(prices), "RECON_LOG_PATHS": str(tmp_path / "x")}
    )

    found = problems(settings)

    assert f"{prices}: models.m[0].input: '-1' is negative" in found
    assert any("log file" in p and "does not exist" in p for p in found)


def test_the_summary_masks_a_history_password() -> None:
    settings = load_settings(
        environ={
            "OPENAI_ADMIN_KEY": KEY,
            "RECON_DATABASE_URL": "postgresql+psycopg://recon:hunter22@db/recon",
        }
    )

    text = describe(settings)

    assert "hunter22" not in text
    assert "postgresql+psycopg://recon:***@db/recon" in text


def test_check_config_imports_no_database_http_or_template_library(tmp_path: Path) -> None:
    logs = tmp_path / "usage.ndjson"
    logs.write_text("", encoding="utf-8")
    code = (
        "import sys\n"
        "from recon_job.cli.main import main\n"
        "try:\n"
        "    main(['check-config'])\n"
        "except SystemExit as e:\n"
        "    assert e.code in (0, None), e.code\n"
        "print(sorted(m for m in ('sqlalchemy', 'requests', 'jinja2') if m in sys.modules))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "OPENAI_ADMIN_KEY": KEY, "RECON_LOG_PATHS": str(logs)}

    ran = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )

    assert ran.returncode == 0, ran.stderr
    assert "configuration OK" in ran.stdout
    assert ran.stdout.strip().endswith("[]"), ran.stdout
