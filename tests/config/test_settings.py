"""Settings: precedence, secrets files, and one error listing every problem."""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import BaseModel

from recon_job.config import ENV_VARS, SECRET_KEYS, Settings, load_settings
from recon_job.errors import ConfigError
from tests.helpers import ROOT

EXAMPLE = ROOT / "config" / "recon.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recon.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_it_loads_defaults_without_a_file_or_environment() -> None:
    settings = load_settings(environ={})
    assert settings.openai.base_url == "https://api.openai.com/v1"
    assert settings.openai.admin_key is None
    assert settings.reconcile.threshold_pct == Decimal(5)
    assert settings.reconcile.cost_floor == Decimal("0.05")
    assert settings.history.database_url.get_secret_value() == "sqlite:///recon_history.db"


def test_the_example_file_lists_every_setting_and_only_real_ones() -> None:
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    load_settings(EXAMPLE, environ={})  # valid as shipped
    for section, field in Settings.model_fields.items():
        if section == "sources":
            documented = EXAMPLE.read_text(encoding="utf-8")
            for key in ("[[sources]]", 'kind = "ndjson"', 'kind = "sql"', "url_env", "columns"):
                assert key in documented
            continue
        model = field.annotation
        assert isinstance(model, type)
        assert issubclass(model, BaseModel)
        documented = EXAMPLE.read_text(encoding="utf-8")
        assert f"[{section}]" in documented
        for key in model.model_fields:
            if (section, key) in SECRET_KEYS:
                # Secrets are documented by the variable that carries them.
                names = [n for n, (sec, k, _) in ENV_VARS.items() if (sec, k) == (section, key)]
                assert any(n in documented for n in names), f"{section}.{key}"
                continue
            in_table = key in data.get(section, {})
            assert in_table or f"# {key} =" in documented or f"[{section}.{key}]" in documented, (
                f"{section}.{key} is not documented in {EXAMPLE.name}"
            )


def test_documented_environment_variables_override_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[openai]\nbase_url = "https://file.example/v1"\n')
    env = {
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1/",
        "RECON_LOG_PATHS": "a.ndjson, logs/*.gz ,",
        "RECON_PROJECT_IDS": "proj_a,proj_b",
        "RECON_THRESHOLD_PCT": "2.5",
    }
    settings = load_settings(path, environ=env)
    assert settings.openai.base_url == "http://127.0.0.1:9/v1"
    assert settings.logs.paths == ("a.ndjson", "logs/*.gz")
    assert settings.openai.project_ids == ("proj_a", "proj_b")
    assert settings.reconcile.threshold_pct == Decimal("2.5")


def test_any_setting_can_be_set_as_a_nested_environment_variable() -> None:
    settings = load_settings(
        environ={"RECON_RECONCILE__TOKEN_FLOOR": "7", "RECON_OPENAI__GROUP_BY": '["model"]'}
    )
    assert settings.reconcile.token_floor == 7


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        # Each passed check-config, then crashed the run: 1e400 when the report printed it,
        # 10^20 tokens when the history stored it (an OverflowError and a failed run).
        ("RECON_RECONCILE__COST_FLOOR", "1e400"),
        ("RECON_RECONCILE__TOKEN_FLOOR", "99999999999999999999"),
        ("RECON_RECONCILE__REQUEST_FLOOR", "99999999999999999999"),
        ("RECON_ALERTS__REPEAT_INTERVAL_DAILY_HOURS", "1e308"),
        ("RECON_ALERTS__REPEAT_INTERVAL_MONTHLY_DAYS", "1e308"),
        ("RECON_DIAGNOSIS__TREND_SLACK_PCT", "1e400"),
        ("RECON_DIAGNOSIS__TREND_THRESHOLD_PCT", "1e400"),
        ("RECON_OPENAI__MAX_PAGES", "99999999999999999999"),
    ],
)
def test_numbers_no_run_could_use_are_refused_with_their_bound(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ={variable: value})
    [problem] = info.value.problems
    assert "less than or equal to" in problem


def test_the_admin_key_falls_back_to_openai_api_key() -> None:
    settings = load_settings(environ={"OPENAI_API_KEY": "sk-admin-fallbackfallback"})
    assert settings.openai.admin_key is not None
    assert settings.openai.admin_key.get_secret_value() == "sk-admin-fallbackfallback"
    both = load_settings(
        environ={"OPENAI_API_KEY": "sk-proj-xxxxxxxxxx", "OPENAI_ADMIN_KEY": "sk-admin-primary1"}
    )
    assert both.openai.admin_key is not None
    assert both.openai.admin_key.get_secret_value() == "sk-admin-primary1"


def test_secrets_are_read_from_files(tmp_path: Path) -> None:
    secret = tmp_path / "key"
    secret.write_text("sk-admin-fromafile123\n", encoding="utf-8")
    settings = load_settings(environ={"OPENAI_ADMIN_KEY_FILE": str(secret)})
    assert settings.openai.admin_key is not None
    assert settings.openai.admin_key.get_secret_value() == "sk-admin-fromafile123"
    assert "fromafile" not in repr(settings)


def test_a_secret_in_the_config_file_is_refused_without_echoing_it(tmp_path: Path) -> None:
    path = write(tmp_path, '[openai]\nadmin_key = "sk-admin-leakedleaked"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert "admin_key is a secret" in str(info.value)
    assert "leaked" not in str(info.value)


def test_a_sqlite_url_may_live_in_the_file_but_a_password_may_not(tmp_path: Path) -> None:
    ok = write(tmp_path, '[history]\ndatabase_url = "sqlite:////var/lib/recon/h.db"\n')
    assert load_settings(ok, environ={}).history.database_url.get_secret_value().endswith("h.db")
    bad = write(tmp_path, '[history]\ndatabase_url = "postgresql://u:hunter22@db/x"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(bad, environ={})
    assert "hunter22" not in str(info.value)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[openai]
group_by = ["project_id"]
read_timeout_seconds = 0
[logs]
timezone = "Mars/Olympus"
fields = { colour = "x" }
[reconcile]
threshold_pct = -1
cost_flor = 1
""",
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={"OPENAI_ADMIN_KEY_FILE": str(tmp_path / "missing")})
    problems = info.value.problems
    text = str(info.value)
    assert len(problems) == 7, text
    for expected in (
        "OPENAI_ADMIN_KEY_FILE",
        "openai.group_by: must include 'model'",
        "openai.read_timeout_seconds",
        "logs.timezone: 'Mars/Olympus' is not a known time zone",
        "logs.fields: unknown field name(s) colour",
        "reconcile.threshold_pct",
        "reconcile.cost_flor: unknown setting",
    ):
        assert expected in text
    assert text.startswith("configuration has 7 problems")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[openai\n", "is not valid TOML"),
        (None, "does not exist"),
    ],
)
def test_an_unreadable_config_file_is_a_clear_error(
    tmp_path: Path, content: str | None, expected: str
) -> None:
    path = tmp_path / "recon.toml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=expected):
        load_settings(path, environ={})


def test_recon_config_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[reconcile]\ntoken_floor = 42\n")
    assert load_settings(environ={"RECON_CONFIG": str(path)}).reconcile.token_floor == 42


def test_every_documented_variable_maps_to_a_real_setting() -> None:
    for name, (section, key, _) in ENV_VARS.items():
        model = Settings.model_fields[section].annotation
        assert isinstance(model, type)
        assert issubclass(model, BaseModel)
        assert key in model.model_fields, name


SOURCES = """
[[sources]]
kind = "ndjson"
name = "production"
paths = ["prod/*.ndjson"]

[[sources]]
kind = "sql"
name = "billing"
url_env = "BILLING_DB"
table = "token_usage"
cost_unit = "cents"
[sources.columns]
timestamp = "created_at"
model = "model_used"
input_tokens = "prompt_tokens"
output_tokens = "completion_tokens"
"""


def test_several_named_sources_are_read_with_urls_from_the_environment(tmp_path: Path) -> None:
    from recon_job.config import NdjsonSourceSettings, SqlSourceSettings

    url_file = tmp_path / "url"
    url_file.write_text("postgresql://app:s3cret@db/app\n", encoding="utf-8")
    settings = load_settings(write(tmp_path, SOURCES), environ={"BILLING_DB_FILE": str(url_file)})
    ndjson, sql = settings.sources
    assert isinstance(ndjson, NdjsonSourceSettings)
    assert ndjson.paths == ("prod/*.ndjson",)
    assert isinstance(sql, SqlSourceSettings)
    assert sql.url is not None
    assert sql.url.get_secret_value() == "postgresql://app:s3cret@db/app"
    assert "s3cret" not in repr(settings)


def test_source_problems_are_reported_together(tmp_path: Path) -> None:
    text = SOURCES.replace('name = "billing"', 'name = "production"')
    text += '\n[[sources]]\nkind = "kafka"\nname = "x"\n'
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), environ={})
    message = str(info.value)
    assert "sources.2" in message  # the unknown kind
    bad = load_settings_error(tmp_path, SOURCES.replace('name = "billing"', 'name = "production"'))
    assert "repeated: production" in bad
    missing = load_settings_error(tmp_path, SOURCES)
    assert "'billing' has no database URL; set BILLING_DB" in missing


def test_a_source_url_with_a_password_is_refused_in_the_file(tmp_path: Path) -> None:
    text = SOURCES.replace('url_env = "BILLING_DB"', 'url = "mysql+pymysql://u:pw12345@h/db"')
    message = load_settings_error(tmp_path, text)
    assert "sources.1.url carries a password" in message
    assert "pw12345" not in message


def load_settings_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), environ={})
    return str(info.value)


def test_channels_come_from_the_documented_variables(tmp_path: Path) -> None:
    password = tmp_path / "smtp"
    password.write_text("hunter2hunter2\n", encoding="utf-8")
    settings = load_settings(
        environ={
            "RECON_SMTP_HOST": "smtp.example.com",
            "RECON_SMTP_SECURITY": "ssl",
            "RECON_SMTP_USERNAME": "bot",
            "RECON_SMTP_PASSWORD_FILE": str(password),
            "RECON_EMAIL_FROM": "recon@example.com",
            "RECON_EMAIL_TO": "a@example.com, b@example.com",
            "RECON_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/XYZ",
            "RECON_WEBHOOK_URL": "https://alerts.example.com/recon",
            "RECON_WEBHOOK_SECRET": "whsec_0123456789",
        }
    )
    assert settings.email.configured
    assert settings.email.effective_port == 465
    assert settings.email.recipients == ("a@example.com", "b@example.com")
    assert settings.email.password is not None
    assert settings.email.password.get_secret_value() == "hunter2hunter2"
    assert settings.slack.configured
    assert settings.webhook.configured
    text = repr(settings)
    for secret in ("hunter2", "XYZ", "whsec_", "alerts.example.com/recon"):
        assert secret not in text
    assert not load_settings(environ={}).email.configured


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"RECON_SMTP_HOST": "smtp.example.com"}, "RECON_EMAIL_FROM and RECON_EMAIL_TO"),
        (
            {
                "RECON_SMTP_HOST": "smtp.example.com",
                "RECON_SMTP_SECURITY": "none",
                "RECON_SMTP_USERNAME": "bot",
                "RECON_EMAIL_FROM": "r@example.com",
                "RECON_EMAIL_TO": "a@example.com",
            },
            "without TLS",
        ),
        ({"RECON_EMAIL_TO": "not an address"}, "is not an email address"),
        ({"RECON_SMTP_SECURITY": "tls13"}, "email.security"),
    ],
)
def test_an_incomplete_or_unsafe_email_setup_is_refused(env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_settings(environ=env)


def test_channel_secrets_are_refused_in_the_config_file(tmp_path: Path) -> None:
    text = (
        '[email]\npassword = "pw-in-file-123"\n[slack]\n'
        'webhook_url = "https://hooks.slack.com/services/SECRET"\n'
    )
    message = load_settings_error(tmp_path, text)
    assert "[email] password is a secret" in message
    assert "[slack] webhook_url is a secret" in message
    assert "pw-in-file" not in message
    assert "SECRET" not in message


def test_a_variable_and_its_file_twin_together_are_an_error(tmp_path: Path) -> None:
    secret = tmp_path / "url"
    secret.write_text("postgresql+psycopg://u:pw@db/x", encoding="utf-8")
    with pytest.raises(ConfigError, match="both RECON_DATABASE_URL and RECON_DATABASE_URL_FILE"):
        load_settings(
            environ={
                "RECON_DATABASE_URL": "sqlite:////data/h.db",
                "RECON_DATABASE_URL_FILE": str(secret),
            }
        )


def test_every_secret_and_the_path_of_secret_urls_reach_the_redactor() -> None:
    from recon_job.config import secret_values
    from recon_job.logconfig import secret_parts

    settings = load_settings(
        environ={
            "OPENAI_ADMIN_KEY": "sk-admin-abcdefghijkl",
            "RECON_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/XYZ",
            "RECON_WEBHOOK_SECRET": "whsec_0123456789",
            "RECON_PING_URL": "https://hc-ping.com/5b0c9a3e-1111",
        }
    )
    # The redactor masks each secret and every credential part of it (secret_parts).
    found = {part for secret in secret_values(settings) for part in secret_parts(secret)}
    for expected in (
        "sk-admin-abcdefghijkl",
        "https://hooks.slack.com/services/T0/B0/XYZ",
        "/services/T0/B0/XYZ",
        "whsec_0123456789",
        "/5b0c9a3e-1111",
    ):
        assert expected in found


def test_the_admin_key_from_a_secret_file_loses_its_newline_and_the_base_url_its_slash(
    tmp_path: Path,
) -> None:
    key = tmp_path / "key"
    key.write_text("sk-admin-fromafile123\n\n", encoding="utf-8")
    settings = load_settings(
        environ={
            "OPENAI_ADMIN_KEY_FILE": str(key),
            "OPENAI_BASE_URL": "https://proxy.example/v1/",
            "RECON_PROJECT_IDS": "proj_a",
        }
    )
    assert settings.openai.admin_key is not None
    assert settings.openai.admin_key.get_secret_value() == "sk-admin-fromafile123"
    assert settings.openai.base_url == "https://proxy.example/v1"
    assert settings.openai.project_ids == ("proj_a",)
    # A blank key is no key: runs that call OpenAI say so (recon_job.config.checks).
    blank = load_settings(environ={"OPENAI_ADMIN_KEY": "  \n"})
    assert blank.openai.admin_key is None


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"OPENAI_ADMIN_KEY": "sk-admin-a b"}, "contains spaces or non-ASCII characters"),
        ({"RECON_GROUP_BY": "model,user_id"}, "openai.group_by.1"),
        ({"RECON_OPENAI__READ_TIMEOUT_SECONDS": "0"}, "openai.read_timeout_seconds"),
        ({"RECON_OPENAI__MAX_PAGES": "0"}, "openai.max_pages"),
        ({"OPENAI_BASE_URL": "ftp://x"}, "openai.base_url"),
        ({"RECON_OPENAI__PROJECT_IDS": '["proj_a", ""]'}, "may not contain an empty id"),
    ],
)
def test_bad_openai_settings_are_refused_without_echoing_the_key(
    env: dict[str, str], problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem) as info:
        load_settings(environ={"OPENAI_ADMIN_KEY": "sk-admin-abcdefgh", **env})
    assert "sk-admin-a" not in str(info.value)


def test_every_email_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(
            environ={
                "RECON_SMTP_HOST": "smtp.example.com",
                "RECON_SMTP_SECURITY": "none",
                "RECON_SMTP_USERNAME": "bot",
                "RECON_EMAIL_FROM": "r@example.com",
            }
        )
    assert info.value.problems == [
        "email: email is on (RECON_SMTP_HOST is set) but RECON_EMAIL_TO is not",
        "email: refusing to log in to SMTP without TLS; set RECON_SMTP_SECURITY to ssl or starttls",
        "email: an SMTP username is set but no password",
    ]


def test_a_history_url_is_parsed_when_it_is_set() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"RECON_DATABASE_URL": "postgresql+psycopg://u:hunter22@[bad/x"})
    [problem] = info.value.problems
    assert problem.startswith("history.database_url: not a database URL")
    assert "hunter22" not in problem
