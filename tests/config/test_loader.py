"""Loading the settings (recon_job.config.loader): every problem at once, none hiding another.

Issue 9 item 14: a ``RECON_<SECTION>`` (or a list setting's ``RECON_<SECTION>__<KEY>``) that is
not JSON was a pydantic-settings ``SettingsError`` traceback; it is one problem naming the
variable and the form it expects. Item 4: an invalid value leaves the rest of the settings
usable, so ``check-config`` still checks their files.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from recon_job.config import Loaded, load_settings, read_settings
from recon_job.errors import ConfigError
from tests.e2e import cli, workdir_fixture  # noqa: F401
from tests.fakeopenai import FakeOpenAI, fake_openai_fixture  # noqa: F401


def problems_of(environ: dict[str, str], config: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(config, environ=environ)
    return info.value.problems


def test_a_section_variable_that_is_not_json_names_the_variable_and_the_forms_it_takes() -> None:
    [problem] = problems_of({"RECON_EMAIL": "finance@example.com"})

    assert problem.startswith("RECON_EMAIL is not JSON: a variable named after the [email]")
    for form in ("JSON object", "RECON_EMAIL__<KEY>", "RECON_EMAIL_TO", "recipients"):
        assert form in problem
    assert "finance@example.com" not in problem  # a value is never echoed: it may be a secret


def test_a_list_setting_that_is_not_json_says_it_must_be_a_json_list() -> None:
    [problem] = problems_of({"RECON_EMAIL__RECIPIENTS": "finance@example.com"})

    assert problem == (
        "RECON_EMAIL__RECIPIENTS is not JSON: email.recipients must be given as a JSON list, "
        'e.g. \'["first", "second"]\'; or use RECON_EMAIL_TO (comma-separated)'
    )


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("RECON_MODELS__ALIASES", "bot=gpt-4o", "models.aliases must be given as a JSON object"),
        ("recon_openai__group_by", "model", "openai.group_by must be given as a JSON list"),
        ("RECON_SOURCES", "billing", "every [[sources]] table as a JSON list"),
        ("RECON_WEBHOOK", "https://hooks.example.com/T0/SECRET", "[webhook] section"),
    ],
)
def test_each_variable_that_is_not_json_is_named_as_written(
    name: str, value: str, expected: str
) -> None:
    [problem] = problems_of({name: value})

    assert problem.startswith(f"{name} is not JSON")
    assert expected in problem
    assert value not in problem


def test_a_variable_that_is_not_json_hides_no_other_problem() -> None:
    problems = problems_of(
        {
            "RECON_EMAIL": "finance@example.com",
            "RECON_LOGS__PATHS": "logs/*.ndjson",
            "RECON_THRESHOLD_PCT": "lots",
            "RECON_SLACK__SEND_RESOLVED": "true",  # valid: kept
        }
    )

    assert len(problems) == 3, problems
    assert problems[0].startswith("RECON_EMAIL is not JSON")
    assert problems[1].startswith("RECON_LOGS__PATHS is not JSON")
    assert problems[2].startswith("reconcile.threshold_pct:")


def test_check_config_and_run_exit_2_naming_the_variable(
    workdir: Path, fake_openai: FakeOpenAI
) -> None:
    for args in (("check-config",), ("run", "--date", "2026-08-01"), ("history",)):
        ran = cli(workdir, fake_openai, *args, RECON_EMAIL="finance@example.com")

        assert ran.code == 2, (args, ran.stderr)
        assert "RECON_EMAIL is not JSON" in ran.stderr
        assert "RECON_EMAIL__<KEY>" in ran.stderr
        assert "Traceback" not in ran.stderr
        assert "SettingsError" not in ran.stderr


def test_invalid_values_leave_the_rest_usable_and_say_which_sections_are_unknown(
    tmp_path: Path,
) -> None:
    config = tmp_path / "recon.toml"
    config.write_text(
        '[reconcile]\nthreshold_pct = -1\n[logs]\npaths = ["app/*.ndjson"]\ntimezone = "Mars"\n'
        '[pricing]\nfile = "prices.toml"\n',
        encoding="utf-8",
    )

    loaded = read_settings(config, environ={"RECON_EMAIL": "x", "RECON_PROJECT_IDS": "proj_a"})

    assert loaded.settings is None
    assert len(loaded.problems) == 3, loaded.problems
    assert loaded.usable is not None
    # What was valid is kept; what was not is at its default.
    assert loaded.usable.logs.paths == ("app/*.ndjson",)
    assert loaded.usable.logs.timezone == "UTC"
    assert loaded.usable.pricing.file == Path("prices.toml")
    assert loaded.usable.openai.project_ids == ("proj_a",)
    assert loaded.unknown == {"reconcile", "logs", "email"}


def test_a_broken_sources_table_is_left_out_whole(tmp_path: Path) -> None:
    config = tmp_path / "recon.toml"
    config.write_text(
        '[[sources]]\nkind = "ndjson"\nname = "prod"\npaths = ["prod/*.ndjson"]\n'
        '[[sources]]\nkind = "sql"\nname = "billing"\nurl = "sqlite:///app.db"\n'
        'table = "usage; drop"\n[sources.columns]\ntimestamp = "ts"\n',
        encoding="utf-8",
    )

    loaded = read_settings(config, environ={})

    assert loaded.usable is not None
    assert [s.name for s in loaded.usable.sources] == ["prod"]
    assert "sources" in loaded.unknown


def test_an_unreadable_config_file_leaves_nothing_to_check(tmp_path: Path) -> None:
    loaded = read_settings(tmp_path / "missing.toml", environ={"RECON_THRESHOLD_PCT": "x"})

    assert loaded == Loaded(None, loaded.problems, None, loaded.unknown)
    assert "does not exist" in loaded.problems[0]


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"OPENAI_ADMIN_KEY": "sk-admin-a"}, "OPENAI_ADMIN_KEY"),
        ({"OPENAI_API_KEY": "sk-admin-a"}, "OPENAI_API_KEY"),
        ({"OPENAI_API_KEY": "sk-proj-p", "OPENAI_ADMIN_KEY": "sk-admin-a"}, "OPENAI_ADMIN_KEY"),
        ({"RECON_OPENAI__ADMIN_KEY": "sk-admin-a", "OPENAI_ADMIN_KEY": "sk-admin-b"}, None),
    ],
)
def test_the_settings_know_which_variable_the_admin_key_came_from(
    environ: dict[str, str], variable: str | None
) -> None:
    settings = load_settings(environ=environ)

    assert settings.openai.admin_key_variable == (variable or "RECON_OPENAI__ADMIN_KEY")


def test_an_admin_key_file_is_named_as_its_origin(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("sk-proj-fromafile\n", encoding="utf-8")

    settings = load_settings(environ={"OPENAI_API_KEY_FILE": str(key)})

    assert settings.openai.admin_key_variable == "OPENAI_API_KEY_FILE"


def test_a_variable_naming_no_section_is_a_problem_with_a_suggestion() -> None:
    # RECON_RECONCIL__TOKEN_FLOOR=5 set nothing and check-config said "configuration OK".
    environ = {
        "RECON_RECONCIL__TOKEN_FLOOR": "5",
        "RECON_OPENIA__ADMIN_KEY": "sk-admin-never-shown",
        "RECON_TEST_POSTGRES_URL": "x",  # not a section's variable: left alone
    }
    loaded = read_settings(environ=environ)
    assert loaded.settings is None
    assert [p.split(";")[0] for p in loaded.problems] == [
        "RECON_OPENIA__ADMIN_KEY: there is no [openia] section (did you mean RECON_OPENAI__…?)",
        "RECON_RECONCIL__TOKEN_FLOOR: there is no [reconcil] section (did you mean "
        "RECON_RECONCILE__…?)",
    ]
    assert "never-shown" not in " ".join(loaded.problems)
