"""``recon-job history``: past runs, newest first, or one past run in full (``--run ID``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from recon_job.cli.common import config_option, fail, format_option, read_history, setup

if TYPE_CHECKING:
    from recon_job.store import GroupRecord, HistoryStore, RunRecord


@click.command()
@click.option(
    "--limit",
    type=click.IntRange(1, 10_000),
    default=20,
    show_default=True,
    help="How many runs to list, newest first.",
)
@click.option(
    "--run",
    "run_id",
    type=click.IntRange(1),
    metavar="ID",
    help="Show this one run in full instead (its id is the first column of the list): the "
    "totals, every group, what was skipped or unpriced.",
)
@format_option
@config_option
def history(limit: int, run_id: int | None, fmt: str, config: str | None) -> None:
    """Past runs, newest first; or one past run in full with --run ID."""
    from recon_job.report import history as report

    settings = setup(config, fmt)
    if run_id is not None:
        _one_run(run_id, read_history(settings, fmt, lambda store: _read_run(store, run_id)), fmt)
        return
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


def _read_run(store: HistoryStore, run_id: int) -> tuple[RunRecord, list[GroupRecord]] | None:
    run = store.get_run(run_id)
    return None if run is None else (run, store.run_groups(run_id))


def _one_run(run_id: int, found: tuple[RunRecord, list[GroupRecord]] | None, fmt: str) -> None:
    from recon_job.errors import StoreError
    from recon_job.report import history as report

    if found is None:
        fail(
            StoreError(
                f"there is no run {run_id} in the history; `recon-job history` lists the runs "
                "with their ids",
                permanent=True,
                reason="run_missing",
            ),
            fmt,
        )
    run, groups = found
    if fmt == "json":
        click.echo(json.dumps(report.run_detail_dict(run, groups), indent=2))
    else:
        click.echo(report.run_detail_text(run, groups), nl=False)
