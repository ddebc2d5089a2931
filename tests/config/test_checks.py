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
from recon_job.config import (
    Settings,
    Uses,
    describe,
    every_problem,
    load_settings,
    problems,
    read_settings,
)
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


# --- issue 9 item 4: what check-config adds, and one bad setting hiding no other --------------

PROJECT_KEY = "sk-proj-Pr0jectKeyTail42"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {"OPENAI_API_KEY": PROJECT_KEY},
            "OPENAI_API_KEY holds a project API key (sk-proj-...), not an admin key "
            "(OPENAI_ADMIN_KEY is not set, so OPENAI_API_KEY was used): OpenAI's organization "
            "Usage and Costs APIs refuse it.",
        ),
        (
            {"OPENAI_ADMIN_KEY": PROJECT_KEY},
            "OPENAI_ADMIN_KEY holds a project API key (sk-proj-...), not an admin key: ",
        ),
        (
            {"OPENAI_ADMIN_KEY": "sk-Legacy0123456789"},
            "OPENAI_ADMIN_KEY holds an API key (sk-...), not an admin key: ",
        ),
        (
            {"RECON_OPENAI__ADMIN_KEY": "sk-svcacct-0123456789"},
            "RECON_OPENAI__ADMIN_KEY holds a service account key (sk-svcacct-...), not an admin",
        ),
    ],
)
def test_a_key_that_is_not_an_admin_key_is_reported_naming_its_variable(
    environ: dict[str, str], expected: str
) -> None:
    found = problems(load_settings(environ={"RECON_LOG_PATHS": __file__, **environ}))

    assert len(found) == 1, found
    assert found[0].startswith(expected), found[0]
    assert "https://platform.openai.com/settings/organization/admin-keys" in found[0]
    for key in environ.values():
        assert key not in found[0]
        assert key[-6:] not in found[0]


def test_admin_keys_and_keys_of_other_services_are_not_reported() -> None:
    for key in ("sk-admin-0123456789", "gateway-token-0123"):
        settings = load_settings(environ={"RECON_LOG_PATHS": __file__, "OPENAI_ADMIN_KEY": key})
        assert problems(settings) == []


def test_check_config_and_run_refuse_a_project_key_with_the_same_message(tmp_path: Path) -> None:
    logs = tmp_path / "usage.ndjson"
    logs.write_text("", encoding="utf-8")
    env = {
        "OPENAI_API_KEY": PROJECT_KEY,
        "OPENAI_ADMIN_KEY": None,
        "RECON_LOG_PATHS": str(logs),
        "RECON_DATABASE_URL": f"sqlite:///{tmp_path / 'history.db'}",
        "RECON_CONFIG": None,
    }
    runner = CliRunner(env=env)

    checked = runner.invoke(main, ["check-config"])
    ran = runner.invoke(main, ["run", "--date", "2026-08-01"])

    for result in (checked, ran):
        assert result.exit_code == 2, result.output
        assert "OPENAI_API_KEY holds a project API key (sk-proj-...)" in result.stderr
        assert PROJECT_KEY not in result.output
        assert "Pr0ject" not in result.output


def test_one_bad_setting_hides_none_of_the_file_checks(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "subject.txt.j2").write_text("{{ oops", encoding="utf-8")
    runner = CliRunner(
        env={
            "OPENAI_ADMIN_KEY": KEY,
            "RECON_CONFIG": None,
            "RECON_THRESHOLD_PCT": "lots",  # invalid: used to hide every check below
            "RECON_EMAIL": "finance@example.com",  # not JSON: used to be a traceback
            "RECON_LOG_PATHS": str(tmp_path / "nowhere.ndjson"),
            "RECON_PRICING_FILE": str(tmp_path / "prices.toml"),
            "RECON_MODELS__ALIASES": '{"bot": "gpt-4o-mnii"}',
            "RECON_ALERTS__TEMPLATES_DIR": str(templates),
            "RECON_DATABASE_URL": "postgresql+psycopg2://recon:hunter22@db/recon",
        }
    )

    result = runner.invoke(main, ["check-config"])

    assert result.exit_code == 2
    for expected in (
        "reconcile.threshold_pct:",
        "RECON_EMAIL is not JSON",
        "nowhere.ndjson' does not exist",
        "prices.toml: cannot read the price file (No such file or directory)",
        "history.database_url: cannot use postgresql+psycopg2://recon:***@db/recon: the "
        "psycopg2 driver is not installed",
    ):
        assert expected in result.stderr, expected
    assert "hunter22" not in result.output
    # The email section is unknown, so the channels are not judged on a guess; the price file
    # is unreadable, so the aliases cannot be checked against it.
    assert "subject.txt.j2" not in result.stderr
    assert "gpt-4o-mnii" not in result.stderr


def test_the_checks_of_unknown_sections_are_skipped_not_guessed(tmp_path: Path) -> None:
    # An invalid [logs] value: the default log glob must not be reported as missing.
    loaded = read_settings(environ={"OPENAI_ADMIN_KEY": KEY, "RECON_LOG_TIMEZONE": "Mars/Olympus"})

    found = every_problem(loaded)

    assert found == [
        "logs.timezone: 'Mars/Olympus' is not a known time zone; use an IANA name such as "
        "'UTC' or 'Europe/Berlin'"
    ]


def test_a_history_database_other_than_sqlite_or_postgresql_is_refused_at_load() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"RECON_DATABASE_URL": "mysql+pymysql://u:hunter22@db/recon"})

    [problem] = info.value.problems
    assert problem.startswith(
        "history.database_url: the history database must be SQLite or PostgreSQL, not mysql"
    )
    assert "hunter22" not in problem


def test_a_sql_source_whose_driver_is_missing_is_reported(tmp_path: Path) -> None:
    config = tmp_path / "recon.toml"
    config.write_text(
        PASTED_SQL.replace('"token usage; drop"', '"token_usage"').replace(
            "filter = \"environment = 'production' -- and the rest\"\n", ""
        ),
        encoding="utf-8",
    )
    settings = load_settings(
        config, environ={"OPENAI_ADMIN_KEY": KEY, "BILLING_DB": "mysql+mysqldb://app:pw0rd@db/app"}
    )

    found = problems(settings)

    assert len(found) == 1, found
    assert found[0].startswith(
        "sources: 'billing': cannot use mysql+mysqldb://app:***@db/app: the mysqldb driver is "
        "not installed (No module named 'MySQLdb')"
    )
    assert "pw0rd" not in found[0]


def test_an_email_ca_file_that_is_missing_or_holds_no_certificate_is_reported(
    tmp_path: Path,
) -> None:
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("hello\n", encoding="utf-8")
    base = {
        "OPENAI_ADMIN_KEY": KEY,
        "RECON_LOG_PATHS": __file__,
        "RECON_SMTP_HOST": "smtp.example.com",
        "RECON_EMAIL_FROM": "recon@example.com",
        "RECON_EMAIL_TO": "finance@example.com",
    }

    missing = problems(
        load_settings(environ={**base, "RECON_EMAIL__CAFILE": str(tmp_path / "none.pem")})
    )
    garbage = problems(load_settings(environ={**base, "RECON_EMAIL__CAFILE": str(not_pem)}))

    assert missing == [
        f"email.cafile: cannot read {str(tmp_path / 'none.pem')!r} (No such file or directory)"
    ]
    assert len(garbage) == 1
    assert garbage[0].startswith(f"email.cafile: {str(not_pem)!r} holds no usable PEM")


SQL_SOURCES = """
[[sources]]
kind = "ndjson"
name = "staging"
paths = ["{logs}"]
timezone = "Europe/Helsinki"

[[sources]]
kind = "sql"
name = "billing"
url_env = "BILLING_DB"
table = "token_usage"
filter = "environment = 'production'"
[sources.columns]
timestamp = "created_at"
model = "model"
input_tokens = "prompt_tokens"
output_tokens = "completion_tokens"
"""


def test_the_summary_describes_the_configured_sources_and_channels(tmp_path: Path) -> None:
    logs = tmp_path / "staging.ndjson"
    logs.write_text("", encoding="utf-8")
    config = tmp_path / "recon.toml"
    config.write_text(SQL_SOURCES.format(logs=logs), encoding="utf-8")
    settings = load_settings(
        config,
        environ={
            "OPENAI_API_KEY": KEY,
            "BILLING_DB": "postgresql+psycopg://app:s3cretpw@db.internal/app",
            "RECON_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/SLACKTOKEN",
            "RECON_SMTP_HOST": "smtp.example.com",
            "RECON_EMAIL_FROM": "recon@example.com",
            "RECON_EMAIL_TO": "finance@example.com",
        },
    )

    text = describe(settings)

    assert "logs:" not in text
    assert f"  sources:   staging: NDJSON {logs} (naive times in Europe/Helsinki)" in text
    assert (
        "             billing: SQL table token_usage in "
        "postgresql+psycopg://app:***@db.internal/app where environment = 'production'"
    ) in text
    assert "(admin key from OPENAI_API_KEY)" in text
    assert "  alerts:    email to finance@example.com via smtp.example.com:587; Slack" in text
    for secret in ("s3cretpw", KEY, "SLACKTOKEN", "/services/"):
        assert secret not in text
