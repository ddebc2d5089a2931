"""``recon-job``: parse, load settings, configure logging, call one function, map errors to exits.

Exit codes: 0 completed (or nothing to do, or skipped: locked / complete), 1 a mismatch with
``--fail-on-mismatch``, 2 a configuration or permanent error (bad key, unreadable input), 3 a
transient failure (API down, deadline hit, database locked: safe to retry), 143 stopped by
SIGTERM (the run recorded as interrupted).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator

import click
import structlog

from recon_job import __version__, job
from recon_job.cli.alerts import alerts
from recon_job.cli.common import (
    EXIT_MISMATCH,
    EXIT_PERMANENT,
    config_option,
    fail,
    format_option,
    setup,
)
from recon_job.cli.daemon import daemon
from recon_job.cli.run import EXIT_SIGTERM as EXIT_SIGTERM
from recon_job.cli.run import SHUTDOWN_BUDGET_SECONDS as SHUTDOWN_BUDGET_SECONDS
from recon_job.cli.run import choose_window as choose_window
from recon_job.cli.run import run
from recon_job.config.settings import NdjsonSourceSettings, Settings, load_settings
from recon_job.errors import ConfigError, ReconError, StoreError
from recon_job.report import run as report

log = structlog.get_logger(__name__)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="recon-job")
def main() -> None:
    """Reconcile your own OpenAI usage logs against OpenAI's Usage and Costs APIs."""


main.add_command(alerts)
main.add_command(daemon)
main.add_command(run)


@main.command()
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@format_option
@config_option
def history(limit: int, fmt: str, config: str | None) -> None:
    """Past runs, newest first."""
    from recon_job.store import HistoryStore

    settings = setup(config, fmt)
    try:
        store = HistoryStore(settings.history.database_url.get_secret_value())
        try:
            runs = store.list_runs(limit)
        finally:
            store.close()
    except StoreError as e:
        fail(e, fmt)
    if fmt == "json":
        click.echo(json.dumps([report.run_record_dict(r) for r in runs], indent=2))
        return
    if not runs:
        click.echo("no runs recorded yet")
        return
    click.echo(f"{'run':>5}  {'window':<26} {'status':<11} {'started (UTC)':<20} detail")
    for r in runs:
        detail = report.run_summary(r)
        started = r.started_at.strftime("%Y-%m-%d %H:%M:%S")
        click.echo(f"{r.id:>5}  {r.window_key:<26} {r.status:<11} {started:<20} {detail}")


@main.command("reconcile-requests")
@click.argument("billing", type=click.Path(exists=True, dir_okay=False))
@click.option("--source", help="Which [[sources]] entry holds the logged requests (if several).")
@click.option(
    "--apply/--dry-run",
    default=False,
    help="Write actual_cost_cents and reconciliation_status back (default: dry run, no writes).",
)
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@format_option
@click.option(
    "--fail-on-discrepancy", is_flag=True, help="Exit 1 on discrepancies, unbilled ids or errors."
)
@config_option
def reconcile_requests(
    billing: str,
    source: str | None,
    apply: bool,
    batch_size: int,
    fmt: str,
    fail_on_discrepancy: bool,
    config: str | None,
) -> None:
    """Match each billed request id in BILLING (a CSV) to the logged request, and optionally
    write the actual cost back to the database table."""
    from recon_job.per_request import reconcile as request_recon

    settings = setup(config, fmt)
    with _progress_bar() as progress:
        try:
            result = request_recon.reconcile_requests(
                settings,
                billing,
                source=source,
                apply=apply,
                batch_size=batch_size,
                progress=progress,
            )
        except ReconError as e:
            fail(e, fmt)
    if fmt == "json":
        click.echo(json.dumps(request_recon.report_dict(result), indent=2))
    else:
        click.echo(request_recon.render_text(result), nl=False)
    if fail_on_discrepancy and result.needs_attention:
        sys.exit(EXIT_MISMATCH)


@contextlib.contextmanager
def _progress_bar() -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar on stderr when it is a terminal; nothing otherwise."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("reading", total=None)

        def update(done: int, total: int) -> None:
            if total:
                bar.update(task, description="writing back", completed=done, total=total)
            else:
                bar.update(task, description="reading logged requests", completed=done)

        yield update


@main.command("check-config")
@config_option
def check_config(config: str | None) -> None:
    """Validate the settings, the price table and the inputs; list every problem at once."""
    try:
        settings = load_settings(config)
    except ConfigError as e:
        click.echo(str(e), err=True)
        sys.exit(EXIT_PERMANENT)
    problems = problems_beyond_settings(settings)
    if problems:
        click.echo(str(ConfigError(problems)), err=True)
        sys.exit(EXIT_PERMANENT)
    click.echo(describe_settings(settings))


def problems_beyond_settings(settings: Settings) -> list[str]:
    """What a run would trip over that the settings' own validation cannot see."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from recon_job.sources.ndjson.source import resolve_log_files

    problems: list[str] = []
    if settings.openai.admin_key is None:
        problems.append("no OpenAI admin key: set OPENAI_ADMIN_KEY (or OPENAI_ADMIN_KEY_FILE)")
    namer = job.model_namer(settings)
    try:
        job.price_table(settings, namer)
    except ConfigError as e:
        problems.extend(e.problems)
    ndjson = [s for s in settings.sources if isinstance(s, NdjsonSourceSettings)]
    for paths in [s.paths for s in ndjson] if settings.sources else [settings.logs.paths]:
        try:
            resolve_log_files(paths)
        except ReconError as e:
            problems.append(str(e))
    from recon_job.delivery.plan import channel_problems

    problems.extend(channel_problems(settings))
    try:
        make_url(settings.history.database_url.get_secret_value())
    except ArgumentError:
        problems.append(
            "history.database_url: not a database URL; use e.g. sqlite:///recon_history.db or "
            "postgresql+psycopg://user@host/db"
        )
    return problems


def describe_settings(settings: Settings) -> str:
    """A summary of the effective settings, secrets masked."""
    o, r = settings.openai, settings.reconcile
    lines = [
        "configuration OK",
        f"  OpenAI:    {o.base_url} (admin key set), group by {', '.join(o.group_by)}"
        + (f", projects {', '.join(o.project_ids)}" if o.project_ids else ""),
        f"  logs:      {', '.join(settings.logs.paths)} (naive times in {settings.logs.timezone})",
        f"  tolerance: {r.threshold_pct}% and more than ${r.cost_floor} / {r.token_floor} tokens"
        f" / {r.request_floor} requests; days settle {r.settle_hours:g} h after they end",
        "  pricing:   bundled table"
        + (f" + {settings.pricing.file}" if settings.pricing.file else ""),
        f"  history:   {_safe_url(settings.history.database_url.get_secret_value())}",
    ]
    return "\n".join(lines)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
