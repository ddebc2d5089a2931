"""The local sources' settings (recon_job.config.sources): every rule the sources' options obey.

These rules used to be checked a second time by the option dataclasses; they are checked once,
here, so ``check-config`` refuses what a run would.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from recon_job.config import SqlSourceSettings, load_settings
from recon_job.errors import ConfigError
from recon_job.models import RECORD_FIELDS

SECRET = "pw-7f3a9c"
PG_URL = f"postgresql+psycopg://app:{SECRET}@db/app"
COLUMNS = """
[sources.columns]
timestamp = "created_at"
model = "model_used"
input_tokens = "prompt_tokens"
output_tokens = "completion_tokens"
"""


def problems(tmp_path: Path, text: str, **environ: str) -> list[str]:
    path = tmp_path / "recon.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ=environ)
    return info.value.problems


def sql_source(*lines: str, columns: str = COLUMNS) -> str:
    head = ["[[sources]]", 'kind = "sql"', 'name = "billing"', 'url_env = "BILLING_DB"', *lines]
    return "\n".join(head) + "\n" + columns


def test_a_sql_source_lists_every_problem_and_never_shows_the_url(tmp_path: Path) -> None:
    text = sql_source(
        'table = "public.token usage"',
        'cost_unit = "euros"',
        'filter = "1=1; DROP TABLE token_usage"',
        'timestamp_timezone = "Mars/Olympus"',
        columns='[sources.columns]\ntimestamp = "created_at"\nmodle = "model"\ninput_tokens = ""\n',
    )
    found = problems(
        tmp_path, "[openai]\ngroup_by = ['model', 'region']\n" + text, BILLING_DB=PG_URL
    )

    listed = "\n".join(found)
    for expected in (
        "sources.0.sql.table: SQL source table 'public.token usage'",
        "sources.0.sql.columns.modle: unknown SQL source column 'modle'",
        "sources.0.sql.columns.input_tokens: SQL source column 'input_tokens' maps to an empty",
        "sources.0.sql.columns: SQL source columns must map model, output_tokens",
        "sources.0.sql.cost_unit",
        "'euros'",
        "sources.0.sql.filter: SQL source filter may not contain ';' or a comment",
        "sources.0.sql.timestamp_timezone: unknown timestamp_timezone 'Mars/Olympus'",
        "openai.group_by.1",
        "'region'",
    ):
        assert expected in listed, listed
    assert SECRET not in listed


def test_grouping_and_project_filters_need_their_columns(tmp_path: Path) -> None:
    text = "[openai]\ngroup_by = ['model', 'api_key_id']\nproject_ids = ['proj_a']\n"

    found = problems(tmp_path, text + sql_source('table = "token_usage"'), BILLING_DB=PG_URL)

    assert found == [
        "sources.0.sql.columns: grouping by 'api_key_id' needs a 'api_key_id' column in the "
        "mapping",
        "sources.0.sql.columns: project_ids needs a 'project_id' column in the mapping",
    ]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+psycopg://app:pw-7f3a9c@[bad/app", "is not a SQLAlchemy URL"),
        (f"oracle://app:{SECRET}@db/app", "not 'oracle'"),
    ],
)
def test_a_sql_source_url_must_name_a_supported_database(
    tmp_path: Path, url: str, expected: str
) -> None:
    [problem] = problems(tmp_path, sql_source('table = "token_usage"'), BILLING_DB=url)

    assert problem.startswith("sources.0.sql.url: ")
    assert expected in problem
    assert SECRET not in problem


def test_sqlite_refuses_a_timestamp_zone_other_than_utc(tmp_path: Path) -> None:
    text = sql_source('table = "token_usage"', 'timestamp_timezone = "Europe/Helsinki"')

    [problem] = problems(tmp_path, text, BILLING_DB=f"sqlite:///{tmp_path / 'app.db'}")

    assert "SQLite timestamps must be UTC" in problem


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('filter = "  "', "SQL source filter is empty"),
        ('filter = "a = 1 /* why */"', "may not contain ';' or a comment"),
        ('table = "a.b.c"', "not a plain name or schema.table"),
        ('table = "app.token_usage"', None),
    ],
)
def test_table_and_filter_rules(tmp_path: Path, line: str, expected: str | None) -> None:
    table = [] if line.startswith("table") else ['table = "token_usage"']
    text = sql_source(*table, line)
    path = tmp_path / "recon.toml"
    path.write_text(text, encoding="utf-8")
    if expected is None:
        settings = load_settings(path, environ={"BILLING_DB": PG_URL})
        assert isinstance(settings.sources[0], SqlSourceSettings)
        return
    [problem] = problems(tmp_path, text, BILLING_DB=PG_URL)
    assert expected in problem


def test_a_repeated_name_is_reported_with_the_problems_of_the_entries(tmp_path: Path) -> None:
    ndjson = '[[sources]]\nkind = "ndjson"\nname = "billing"\npaths = ["a.ndjson"]\n\n'

    found = problems(tmp_path, ndjson + sql_source('table = "bad table"'), BILLING_DB=PG_URL)

    assert len(found) == 2, found
    assert "sources: names must be unique; repeated: billing" in found
    assert any("SQL source table 'bad table'" in p for p in found)


def test_invalid_log_settings_are_reported_all_at_once(tmp_path: Path) -> None:
    text = """
[openai]
group_by = ["model", "user"]
[logs]
paths = []
timezone = "Mars/Olympus"
cost_unit = "eur"
workers = -1
[logs.fields]
tokens = "a"
model = "a..b"
"""
    found = problems(tmp_path, text)

    assert len(found) == 7, found
    listed = "\n".join(found)
    for expected in (
        "openai.group_by.1",
        "logs.paths: needs at least one path",
        "logs.timezone: 'Mars/Olympus' is not a known time zone",
        "logs.cost_unit",
        "logs.workers",
        "logs.fields: unknown field name(s) tokens",
        "logs.fields.model: log field 'model' maps to an empty path 'a..b'",
    ):
        assert expected in listed


def test_an_ndjson_source_has_the_rules_of_logs(tmp_path: Path) -> None:
    text = '[[sources]]\nkind = "ndjson"\nname = "prod"\npaths = ["a"]\nfields = { model = "" }\n'

    assert problems(tmp_path, text) == [
        "sources.0.ndjson.fields.model: log field 'model' maps to an empty path ''"
    ]


def test_the_family_fields_and_columns_are_known_names(tmp_path: Path) -> None:
    # Issue 10 item 4: the field mapping and the column mapping take every family's fields.
    logs = (
        '[logs.fields]\nfamily = "kind"\nendpoint = "req.path"\nseconds = "audio.duration"\n'
        'input_audio_tokens = "u.a"\nusage_bytes = "store.bytes"\nquality = "q"\n'
    )
    columns = COLUMNS.rstrip("\n") + '\nfamily = "api_family"\nimages = "n_images"\n'

    path = tmp_path / "ok.toml"
    path.write_text(logs + sql_source('table = "app_usage"', columns=columns), encoding="utf-8")
    settings = load_settings(path, environ={"BILLING_DB": f"sqlite:///{tmp_path}/app.db"})
    assert settings.logs.fields["seconds"] == "audio.duration"
    assert problems(tmp_path, '[logs.fields]\nfamilies = "kind"\n') == [
        f"logs.fields: unknown field name(s) families; known: {KNOWN}"
    ]


KNOWN = ", ".join(sorted(RECORD_FIELDS))
