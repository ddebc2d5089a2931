"""``recon-job history``: past runs, newest first."""

from __future__ import annotations

import json

import click

from recon_job.cli.common import config_option, format_option, read_history, setup


@click.command()
@click.option(
    "--limit",
    type=click.IntRange(1, 10_000),
    default=20,
    show_default=True,
    help="How many runs to list, newest first.",
)
@format_option
@config_option
def history(limit: int, fmt: str, config: str | None) -> None:
    """Past runs, newest first."""
    from recon_job.report import history as report

    settings = setup(config, fmt)
    runs = read_history(settings, fmt, lambda store: store.list_runs(limit))
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
