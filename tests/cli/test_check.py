"""``recon-job check-config --connect``: each SQL source and the history database, read-only.

Issue 9 item 4. Real databases: SQLite files, and PostgreSQL and MariaDB throw-away databases
(``tests/databases.py``; those cases skip when the servers are not configured), plus a port
nothing listens on. The command only looks: it creates no history database, no table, no row.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from recon_job.store import HistoryStore
from tests.databases import ALL, POSTGRES, Database, temporary_postgres_database
from tests.e2e import Ran, cli, workdir_fixture  # noqa: F401
from tests.fakeopenai import FakeOpenAI, fake_openai_fixture  # noqa: F401

SECRET = "s3cretPassw0rd"
SOURCE = """
[[sources]]
kind = "sql"
name = "billing"
url_env = "BILLING_DB"
table = "token_usage"
{filter}
[sources.columns]
timestamp = "created_at"
model = "model_used"
input_tokens = "prompt_tokens"
output_tokens = "completion_tokens"
"""


class App(Database):
    """The application's database, holding its ``token_usage`` table."""

    def create(self) -> None:
        sa.Table(
            "token_usage",
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("model_used", sa.String(64)),
            sa.Column("prompt_tokens", sa.Integer),
            sa.Column("completion_tokens", sa.Integer),
            sa.Column("created_at", sa.DateTime(timezone=self.backend == "postgresql")),
            sa.Column("environment", sa.String(16)),
        ).create(self.engine)


@pytest.fixture(params=ALL)
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    for db in App.fresh(request.param, tmp_path):
        db.create()
        yield db


def check(workdir: Path, fake: FakeOpenAI, app_url: str, filter: str = "", **env: str) -> Ran:
    config = workdir / "recon.toml"
    config.write_text(SOURCE.format(filter=filter), encoding="utf-8")
    return cli(
        workdir,
        fake,
        "check-config",
        "--connect",
        "--config",
        str(config),
        BILLING_DB=app_url,
        **env,
    )


def test_it_says_the_source_and_a_new_history_answer_and_creates_nothing(
    workdir: Path, fake_openai: FakeOpenAI, app: App
) -> None:
    ran = check(workdir, fake_openai, app.url, filter="filter = \"environment = 'production'\"")

    assert ran.code == 0, ran.stderr
    assert "configuration OK" in ran.stdout
    assert "billing: SQL table token_usage in" in ran.stdout
    assert "source billing (" in ran.stdout
    assert (
        "table token_usage): answers; the table, its mapped columns and the filter are readable"
    ) in ran.stdout
    history = workdir / "history.db"
    assert f"history (sqlite:///{history}): no database yet; the first run creates it" in (
        ran.stdout
    )
    assert not history.exists()
    assert sa.inspect(app.engine).get_table_names() == ["token_usage"]


@pytest.mark.parametrize(
    ("filter", "column", "expected"),
    [
        ('filter = "enviroment = 1"', "", "the usage query on table 'token_usage' failed"),
        ("", 'cached_tokens = "cached"\n', "has no column 'cached' (mapped as cached_tokens)"),
    ],
    ids=["filter", "column"],
)
def test_a_filter_or_a_column_the_table_lacks_is_found_only_by_connecting(
    workdir: Path, fake_openai: FakeOpenAI, app: App, filter: str, column: str, expected: str
) -> None:
    config = workdir / "recon.toml"
    config.write_text(SOURCE.format(filter=filter) + column, encoding="utf-8")

    plain = cli(workdir, fake_openai, "check-config", "--config", str(config), BILLING_DB=app.url)
    connected = cli(
        workdir,
        fake_openai,
        "check-config",
        "--connect",
        "--config",
        str(config),
        BILLING_DB=app.url,
    )

    assert plain.code == 0, plain.stderr
    assert connected.code == 2
    assert "source billing (" in connected.stdout
    assert "does not answer: " in connected.stdout
    assert expected in connected.stdout
    assert "1 of 2 databases did not answer" in connected.stderr


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg://recon:{SECRET}@127.0.0.1:1/app",
        f"mysql+pymysql://recon:{SECRET}@127.0.0.1:1/app",
    ],
    ids=["postgresql", "mysql"],
)
def test_an_unreachable_server_is_exit_3_and_its_password_never_shown(
    workdir: Path, fake_openai: FakeOpenAI, url: str
) -> None:
    history = f"postgresql+psycopg://recon:{SECRET}@127.0.0.1:1/history"

    ran = check(workdir, fake_openai, url, RECON_DATABASE_URL=history)

    assert ran.code == 3, ran.stdout + ran.stderr
    assert "source billing (" in ran.stdout
    assert "recon:***@127.0.0.1:1/app" in ran.stdout
    assert "does not answer: cannot reach database" in ran.stdout
    assert "history (postgresql+psycopg://recon:***@127.0.0.1:1/history): does not answer" in (
        ran.stdout
    )
    assert "2 of 2 databases did not answer" in ran.stderr
    assert SECRET not in ran.stdout + ran.stderr


@pytest.mark.postgres
def test_a_postgresql_history_is_read_without_being_created_or_upgraded(
    workdir: Path, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    from tests.databases import postgres_server_or_skip

    urls = temporary_postgres_database(postgres_server_or_skip())
    history = next(urls)
    app = f"sqlite:///{tmp_path / 'app.db'}"
    for db in App.fresh("sqlite", tmp_path):
        db.create()
    try:
        empty = check(workdir, fake_openai, app, RECON_DATABASE_URL=history)
        engine = sa.create_engine(history)
        with engine.connect() as conn:
            tables = sa.inspect(conn).get_table_names()
        engine.dispose()
        HistoryStore(history).close()
        current = check(workdir, fake_openai, app, RECON_DATABASE_URL=history)
    finally:
        next(urls, None)

    assert empty.code == 0, empty.stderr
    assert "holds no recon-job history yet (the first run creates the tables)" in empty.stdout
    assert tables == []  # the probe created nothing, not even alembic_version
    assert current.code == 0, current.stderr
    assert "answers; schema revision" in current.stdout
    assert "(current)" in current.stdout


def test_an_unknown_database_refuses_and_is_exit_2(
    workdir: Path, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-app.db"

    ran = check(workdir, fake_openai, f"sqlite:///{missing}")

    assert ran.code == 2
    assert "source billing (" in ran.stdout
    assert "does not answer: cannot open database" in ran.stdout
    assert not missing.exists()


def test_a_sqlite_history_a_run_could_not_create_is_reported(
    workdir: Path, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    for db in App.fresh("sqlite", tmp_path):
        db.create()

    ran = check(
        workdir,
        fake_openai,
        f"sqlite:///{tmp_path / 'app.db'}",
        RECON_DATABASE_URL=f"sqlite:///{blocker / 'history.db'}",
    )

    assert ran.code == 2
    assert f"a run cannot create it: {blocker} is not a directory" in ran.stdout


@pytest.mark.parametrize("backend", [POSTGRES, "mysql"])
def test_the_source_is_read_with_the_password_hidden_on_a_server(
    workdir: Path, fake_openai: FakeOpenAI, tmp_path: Path, backend: str
) -> None:
    for db in App.fresh(backend, tmp_path):
        db.create()
        with_password = make_url(db.url).set(password=SECRET).render_as_string(False)
        ran = check(workdir, fake_openai, with_password)

        # The test servers' users have no password, so a given one is refused or ignored:
        # either way it is never shown.
        assert SECRET not in ran.stdout + ran.stderr
        assert ":***@" in ran.stdout
