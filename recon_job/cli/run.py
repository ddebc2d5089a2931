"""``recon-job run``: one window (or every due period), its output, its exit code, SIGTERM.

The window flags are turned into a :class:`~recon_job.models.Window` by :func:`choose_window`;
the run itself is :func:`recon_job.runtime.due.run_due`. Exit codes are those of :mod:`recon_job.cli.main`,
plus 143 after SIGTERM (the run recorded as interrupted).
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from types import FrameType

import click

from recon_job import windows
from recon_job.cli.common import (
    EXIT_MISMATCH,
    config_option,
    exit_code,
    fail,
    format_option,
    setup,
    utcnow,
)
from recon_job.config.settings import Settings
from recon_job.daemon.health import Metrics
from recon_job.errors import Interrupted, ReconError
from recon_job.models import Status, Window
from recon_job.report import run as report
from recon_job.runtime.due import DueReport, run_due
from recon_job.runtime.ping import push_metrics, with_pings

#: Exit status after SIGTERM (128 + 15), what Kubernetes expects of a terminated container.
EXIT_SIGTERM = 143
#: Seconds a run may take to reach its next checkpoint after SIGTERM before it is cut off.
SHUTDOWN_BUDGET_SECONDS = 20.0


def _day(value: str, flag: str) -> date:
    try:
        return windows.parse_day(value)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint=flag) from None


def choose_window(
    kind: str | None,
    day: str | None,
    month: str | None,
    start: str | None,
    end: str | None,
    *,
    now: datetime,
    settle: timedelta,
) -> Window:
    """The window the ``run`` flags ask for (defaults: the last settled day, last month)."""
    if start or end:
        if not (start and end):
            raise click.UsageError("--start and --end go together (both inclusive YYYY-MM-DD)")
        if kind not in (None, "range") or day or month:
            raise click.UsageError("--start/--end cannot be combined with --window/--date/--month")
        first, last = _day(start, "--start"), _day(end, "--end")
        if last < first:
            raise click.BadParameter(f"{end} is before {start}", param_hint="--end")
        return windows.date_range(first, last)
    kind = kind or ("monthly" if month else "daily")
    if kind == "range":
        raise click.UsageError("--window range needs --start and --end")
    if kind == "daily":
        if month:
            raise click.UsageError("--month goes with --window monthly")
        chosen = _day(day, "--date") if day else windows.last_settled_day(now, settle)
        return windows.daily(chosen)
    if day:
        raise click.UsageError("--date goes with --window daily")
    if month is None:
        return windows.previous_month(now)
    try:
        return windows.parse_month(month)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--month") from None


@click.command()
@click.option(
    "--window",
    "kind",
    type=click.Choice(["daily", "monthly", "range"]),
    help="daily (default: the last settled UTC day), monthly (default: last month) or range.",
)
@click.option("--date", "day", metavar="YYYY-MM-DD", help="The UTC day of a daily run.")
@click.option("--month", metavar="YYYY-MM", help="The month of a monthly run.")
@click.option("--start", metavar="YYYY-MM-DD", help="First UTC day of a range (inclusive).")
@click.option("--end", metavar="YYYY-MM-DD", help="Last UTC day of a range (inclusive).")
@format_option
@click.option(
    "--fail-on-mismatch", is_flag=True, help="Exit 1 when the window is out of tolerance."
)
@click.option("--no-alerts", is_flag=True, help="Send no notifications for this run.")
@click.option(
    "--openai-from-csv",
    "openai_csv",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Read OpenAI's figures from usage-dashboard exports instead of the APIs (no admin key"
    " needed): give the Cost export and the Activity export, each with its own flag.",
)
@click.option(
    "--due",
    is_flag=True,
    help="Run every settled daily and monthly period in the look-back that has no completed"
    " run, oldest first, then exit (the command for cron and a Kubernetes CronJob).",
)
@click.option(
    "--force", is_flag=True, help="Run a daily or monthly window even if it already completed."
)
@config_option
def run(
    kind: str | None,
    day: str | None,
    month: str | None,
    start: str | None,
    end: str | None,
    fmt: str,
    fail_on_mismatch: bool,
    no_alerts: bool,
    openai_csv: tuple[str, ...],
    due: bool,
    force: bool,
    config: str | None,
) -> None:
    """Reconcile one window (or every due period), record it, and notify the channels.

    Each period runs once: a period another runner holds is skipped (``skipped: locked``), a
    completed one too unless --force. Exit 143 after SIGTERM, the run recorded as interrupted.
    """
    if due and (kind or day or month or start or end or force or openai_csv):
        raise click.UsageError(
            "--due picks the periods itself: it cannot be combined with --window, --date,"
            " --month, --start, --end, --force or --openai-from-csv"
        )
    settings = setup(config, fmt)
    now = utcnow()
    window = None
    if not due:
        window = choose_window(
            kind,
            day,
            month,
            start,
            end,
            now=now,
            settle=timedelta(hours=settings.reconcile.settle_hours),
        )
    stop = threading.Event()

    def work() -> DueReport:
        return run_due(
            settings,
            now=now,
            clock=utcnow,
            only=window,
            force=force,
            stop=stop,
            trigger="due" if due else "cli",
            openai_csv=openai_csv,
            channels={} if no_alerts else None,
        )

    try:
        with _stop_on_sigterm(stop):
            if due:
                # Run-once mode (CronJob, cron): the dead-man's switch hears of every run.
                outcome = with_pings(
                    settings,
                    work,
                    exit_code=lambda r: _exit_for(r, fail_on_mismatch),
                    error_exit_code=lambda e: (
                        EXIT_SIGTERM if isinstance(e, Interrupted) else exit_code(e)
                    ),
                    reason=lambda r: r.status,
                )
                _push_metrics(settings, outcome)
            else:
                outcome = work()
    except Interrupted as e:
        click.echo(f"recon-job: {e}", err=True)
        sys.exit(EXIT_SIGTERM)
    except ReconError as e:
        fail(e, fmt)
    if window is None:
        _print_due(outcome, fmt)
    else:
        _print_one(outcome, window, fmt)
    if outcome.interrupted:
        click.echo("recon-job: interrupted: shutdown requested", err=True)
    code = _exit_for(outcome, fail_on_mismatch)
    if code:
        sys.exit(code)


def _exit_for(outcome: DueReport, fail_on_mismatch: bool) -> int:
    """The exit code of a run (or of every due period run)."""
    if outcome.interrupted:
        return EXIT_SIGTERM
    errors = [r.error for r in outcome.runs if r.error is not None]
    if errors:
        return min(exit_code(e) for e in errors)  # permanent (2) outranks transient (3)
    if fail_on_mismatch and any(r.status is Status.MISMATCH for r in outcome.runs):
        return EXIT_MISMATCH
    return 0


def _push_metrics(settings: Settings, outcome: DueReport) -> None:
    """Run-once mode has no /metrics to scrape: push the run's figures when configured."""
    url = settings.daemon.pushgateway_url
    if not url:
        return
    metrics = Metrics()
    for ran in outcome.runs:
        metrics.observe_outcome(ran)
    push_metrics(url, metrics.registry)


def _print_one(outcome: DueReport, window: Window, fmt: str) -> None:
    """An explicit window: its one outcome as before, or one line saying why it was skipped."""
    if outcome.runs:
        (ran,) = outcome.runs
        if fmt == "json":
            click.echo(json.dumps(report.outcome_dict(ran), indent=2))
        else:
            click.echo(report.render_text(ran), nl=False)
        return
    if not outcome.skipped:
        return  # interrupted before it started
    reason = outcome.skipped[0][1]
    if fmt == "json":
        doc = {
            "run_id": None,
            "status": "skipped",
            "reason": reason,
            "window": report.window_dict(window),
        }
        click.echo(json.dumps(doc, indent=2))
    else:
        hint = " (use --force to run it again)" if reason == "complete" else ""
        click.echo(f"skipped: {reason} {window.key}{hint}")


def _print_due(outcome: DueReport, fmt: str) -> None:
    """``--due``: one block per run, then one line per skipped period (or one JSON document)."""
    if fmt == "json":
        doc = {
            "status": outcome.status,
            "due": [report.outcome_dict(r) for r in outcome.runs],
            "skipped": [{"period": key, "reason": why} for key, why in outcome.skipped],
            "abandoned": list(outcome.abandoned),
            "interrupted": outcome.interrupted,
        }
        click.echo(json.dumps(doc, indent=2))
        return
    for ran in outcome.runs:
        click.echo(report.render_text(ran), nl=False)
    for key, why in outcome.skipped:
        click.echo(f"skipped: {why} {key}")
    for run_id in outcome.abandoned:
        click.echo(f"abandoned: run {run_id} (its process had died; its period runs again)")
    if not outcome.runs and not outcome.skipped and not outcome.interrupted:
        click.echo("nothing due")


@contextlib.contextmanager
def _stop_on_sigterm(stop: threading.Event) -> Iterator[None]:
    """While inside, SIGTERM sets ``stop``; the run ends at its next checkpoint (interrupted).

    A step that does not reach a checkpoint within ``SHUTDOWN_BUDGET_SECONDS`` (a hung fetch)
    is interrupted by raising ``Interrupted`` from a SIGALRM handler, still before Kubernetes'
    SIGKILL after its 30 s grace period (reliability.md §2.1, R38).
    """

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()
        signal.setitimer(signal.ITIMER_REAL, SHUTDOWN_BUDGET_SECONDS)

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise Interrupted("interrupted: the shutdown budget ran out mid-step")

    previous_term = signal.signal(signal.SIGTERM, on_term)
    previous_alarm = signal.signal(signal.SIGALRM, on_alarm)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGALRM, previous_alarm)


__all__ = ["EXIT_SIGTERM", "SHUTDOWN_BUDGET_SECONDS", "choose_window", "run"]
