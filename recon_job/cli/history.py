"""``recon-job history``: past runs, newest first, or one past run in full (``--run ID``); and
``recon-job history prune``: delete what is older than ``[history] keep_days``.

``history`` is a group invoked without a subcommand as well, so ``recon-job history`` and
``recon-job history --run ID`` list and show runs as they always did.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from recon_job.cli.common import (
    WholeSummaryGroup,
    config_option,
    fail,
    format_option,
    read_history,
    setup,
    utcnow,
)

if TYPE_CHECKING:
    from recon_job.store import GroupRecord, HistoryStore, PruneReport, RunRecord


@click.group(cls=WholeSummaryGroup, invoke_without_command=True)
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
@click.pass_context
def history(
    ctx: click.Context, limit: int, run_id: int | None, fmt: str, config: str | None
) -> None:
    """Past runs, newest first; or one past run in full with --run ID.

    With a command (prune), the options of that command follow its name.
    """
    from recon_job.report import history as report

    if ctx.invoked_subcommand is not None:
        given = [
            p.opts[0]
            for p in ctx.command.params
            if p.name is not None
            and ctx.get_parameter_source(p.name) is click.core.ParameterSource.COMMANDLINE
        ]
        if given:
            raise click.UsageError(
                f"{', '.join(given)} belongs to the list of runs; give the options of "
                f"{ctx.invoked_subcommand} after its name",
                ctx,
            )
        return
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


@history.command("prune")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Count what would be deleted, per table, and delete nothing.",
)
@format_option
@config_option
def history_prune(dry_run: bool, fmt: str, config: str | None) -> None:
    """Delete the history older than [history] keep_days: old runs, delivered notifications.

    Kept always: every run whose window overlaps the last keep_days UTC days (the dashboard
    shows any range inside them as before), a run still running, a run whose notifications are
    still to be sent. keep_days = 0 keeps everything. Exit 0 when done (also when nothing was
    old enough), 2 on a configuration or permanent error, 3 when the database is busy or
    unreachable (retry).
    """
    from recon_job.errors import StoreError
    from recon_job.store import HistoryStore, retention_start

    settings = setup(config, fmt)
    keep_days = settings.history.keep_days
    kept_from = retention_start(utcnow().date(), keep_days)
    if kept_from is None:
        _print_pruned(None, keep_days, fmt)
        return
    url = settings.history.database_url.get_secret_value()
    try:
        with HistoryStore(url, create=False) as store:
            report = store.prune_history(kept_from, dry_run=dry_run)
    except StoreError as e:
        fail(e, fmt)
    _print_pruned(report, keep_days, fmt)


def _print_pruned(report: PruneReport | None, keep_days: int, fmt: str) -> None:
    """What a prune deleted (None: keep_days is 0, nothing is ever pruned)."""
    from recon_job.store import PRUNED_TABLES

    deleted = dict(report.deleted) if report else dict.fromkeys(PRUNED_TABLES, 0)
    if fmt == "json":
        doc: dict[str, Any] = {
            "keep_days": keep_days,
            "kept_from": report.kept_from.isoformat() if report else None,
            "dry_run": report.dry_run if report else False,
            "deleted": deleted,
            "total": sum(deleted.values()),
        }
        click.echo(json.dumps(doc, indent=2))
        return
    if report is None:
        click.echo("history.keep_days is 0: the whole history is kept, nothing was deleted")
        return
    verb = "would delete" if report.dry_run else "deleted"
    click.echo(
        f"keeping {keep_days} days, from {report.kept_from} (UTC); "
        f"{verb} {report.total} rows{' (dry run)' if report.dry_run else ''}"
    )
    for table, count in deleted.items():
        click.echo(f"  {table:<18} {count:>9}")
