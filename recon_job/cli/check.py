"""``recon-job check-config``: every problem of the settings and inputs, listed at once.

It runs the checks every run runs (:func:`recon_job.config.problems`), so a configuration it
accepts is one a run accepts, and what it refuses a run refuses with the same message; with
invalid values it still checks the rest (:func:`recon_job.config.every_problem`). ``--connect``
also opens each SQL source and the history database, read-only, and says whether they answer.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import click

from recon_job.cli.common import EXIT_OK, EXIT_PERMANENT, EXIT_TRANSIENT, config_option, utcnow

if TYPE_CHECKING:
    from recon_job.config import Settings, SqlSourceSettings
    from recon_job.errors import ReconError


@dataclass(frozen=True)
class Answer:
    """Whether one database answered."""

    #: ``source billing (postgresql+psycopg://app:***@db/app, table token_usage)``.
    what: str
    #: What it said: None when it answered.
    error: ReconError | None = None
    #: What was found when it answered.
    note: str = ""

    @property
    def line(self) -> str:
        """One line of the report."""
        if self.error is None:
            return f"{self.what}: {self.note}"
        return f"{self.what}: does not answer: {self.error}"


@click.command("check-config")
@click.option(
    "--connect",
    is_flag=True,
    help="Also open each SQL source and the history database, read-only, and say whether they "
    "answer (exit 3 when one is unreachable, 2 when one refuses).",
)
@config_option
def check_config(connect: bool, config: str | None) -> None:
    """Validate the settings, the price table and the inputs; list every problem at once."""
    from recon_job.config import describe, every_problem, read_settings
    from recon_job.errors import ConfigError

    loaded = read_settings(config)
    found = every_problem(loaded)
    if found or loaded.settings is None:
        click.echo(str(ConfigError(found or ["invalid configuration"])), err=True)
        sys.exit(EXIT_PERMANENT)
    click.echo(describe(loaded.settings))
    if connect:
        sys.exit(_connections(loaded.settings))


def _connections(settings: Settings) -> int:
    """Print whether each database answers; the exit code: 0, 3 (unreachable) or 2."""
    from recon_job.config import SqlSourceSettings, secret_values
    from recon_job.logconfig import configure_logging

    configure_logging(
        level=settings.logging.level, fmt=settings.logging.format, secrets=secret_values(settings)
    )
    answers = [
        _sql_source(settings, source)
        for source in settings.sources
        if isinstance(source, SqlSourceSettings)
    ]
    answers.append(_history(settings))
    click.echo("connections:")
    for answer in answers:
        click.echo(f"  {answer.line}")
    errors = [a.error for a in answers if a.error is not None]
    if not errors:
        return EXIT_OK
    click.echo(
        f"recon-job: error: {len(errors)} of {len(answers)} databases did not answer", err=True
    )
    return EXIT_PERMANENT if any(e.permanent for e in errors) else EXIT_TRANSIENT


def _sql_source(settings: Settings, source: SqlSourceSettings) -> Answer:
    """Open the table as a run would and prepare its query for yesterday, fetching no row.

    The query is the run's own, with ``LIMIT 0``: the database checks the table, every mapped
    column and the filter, and returns nothing.
    """
    from sqlalchemy import exc

    from recon_job import wiring
    from recon_job.errors import ReconError
    from recon_job.models import Window
    from recon_job.sources.sql.connect import database_error

    options = wiring.sql_options(source, settings)
    read = f"table {source.table}" if source.relation is None else f"relation {source.relation}"
    what = f"source {source.name} ({options.display_url}, {read})"
    table = wiring.sql_source(source, settings)
    yesterday = utcnow().date() - timedelta(days=1)
    try:
        with table.connect() as conn:
            statement = table.statement(conn, Window("daily", yesterday, yesterday + timedelta(1)))
            try:
                conn.execute(statement.limit(0)).all()
            except exc.DBAPIError as e:
                raise database_error(options, e, "query") from e
    except ReconError as e:
        return Answer(what, e)
    return Answer(what, note="answers; the table, its mapped columns and the filter are readable")


def _history(settings: Settings) -> Answer:
    from recon_job.database import display_url
    from recon_job.errors import StoreError
    from recon_job.store import probe_history

    url = settings.history.database_url.get_secret_value()
    what = f"history ({display_url(url)})"
    try:
        probe = probe_history(url)
    except StoreError as e:
        return Answer(what, e)
    return Answer(what, note=probe.summary)
