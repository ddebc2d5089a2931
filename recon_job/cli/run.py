"""``recon-job run``: one window (or every due period), its output, its exit code, SIGTERM.

The window flags are turned into a :class:`~recon_job.models.Window` by :func:`choose_window`;
the run itself is one tick of the run loop (:func:`recon_job.runtime.run_tick`), the same as a
daemon tick. Exit codes are those of :mod:`recon_job.cli.main`, plus 143 after SIGTERM (the run
recorded as interrupted).

Only click, :mod:`recon_job.cli.common` and the pure core are imported at the top: the run loop
(SQLAlchemy, requests, prometheus-client) is imported by the command itself, so that
``recon-job --help`` and the other commands do not pay for it.
"""

from __future__ import annotations

import json
import signal
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

import click

from recon_job import windows
from recon_job.cli.common import (
    EXIT_MISMATCH,
    EXIT_SIGTERM,
    config_option,
    echo_error_doc,
    exit_code,
    fail,
    format_option,
    setup,
    utcnow,
)
from recon_job.errors import Interrupted, ReconError
from recon_job.models import RunOutcome, Status, Window

if TYPE_CHECKING:
    from recon_job.config import Settings
    from recon_job.runtime import DueReport


@dataclass(frozen=True)
class WindowFlags:
    """The window flags of ``recon-job run``, as given (None: not given)."""

    #: ``--window``: ``daily``, ``monthly`` or ``range``.
    kind: str | None = None
    #: ``--date`` (YYYY-MM-DD).
    day: str | None = None
    #: ``--month`` (YYYY-MM).
    month: str | None = None
    #: ``--start`` (YYYY-MM-DD, inclusive).
    start: str | None = None
    #: ``--end`` (YYYY-MM-DD, inclusive).
    end: str | None = None

    @property
    def given(self) -> bool:
        """True when any flag was given."""
        return any((self.kind, self.day, self.month, self.start, self.end))


@dataclass(frozen=True)
class RunRequest:
    """What ``recon-job run`` was asked for, beyond the window."""

    #: ``--due``: every due period (run-once mode: pings, Pushgateway).
    due: bool = False
    #: ``--force``: re-run a complete daily or monthly window.
    force: bool = False
    #: ``--fail-on-mismatch``: exit 1 on a mismatch.
    fail_on_mismatch: bool = False
    #: ``--no-alerts``: send no notifications.
    no_alerts: bool = False
    #: ``--openai-from-csv``: OpenAI's figures from dashboard exports.
    openai_csv: tuple[str, ...] = ()
    #: ``--no-cache``: read every log file, neither using nor updating the cache.
    no_cache: bool = False


@dataclass(frozen=True)
class RunExitCodes:
    """The exit codes of ``recon-job run``; run-once mode pings them as ``/<code>``."""

    fail_on_mismatch: bool = False

    def of_report(self, report: DueReport) -> int:
        """The exit code of a run (or of every due period run, or of the stored last run of a
        complete period)."""
        if report.interrupted:
            return EXIT_SIGTERM
        errors = [r.error for r in report.runs if r.error is not None]
        if errors:
            return min(exit_code(e) for e in errors)  # permanent (2) outranks transient (3)
        if self.fail_on_mismatch and any(map(_drifts, (*report.runs, *report.from_history))):
            return EXIT_MISMATCH
        return 0

    def of_error(self, error: ReconError) -> int:
        """The exit code after ``error``: 143 when a shutdown cut the run short."""
        return EXIT_SIGTERM if isinstance(error, Interrupted) else exit_code(error)


def _drifts(outcome: RunOutcome) -> bool:
    """A mismatch, or a pending run (not judged as a whole yet) whose settled groups drift."""
    result = outcome.result
    return outcome.status is Status.MISMATCH or (result is not None and bool(result.mismatches))


def _day(value: str, flag: str) -> date:
    try:
        return windows.parse_day(value)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint=flag) from None


def choose_window(flags: WindowFlags, *, now: datetime, settle: timedelta) -> Window:
    """The window the ``run`` flags ask for (defaults: the last settled day, last month)."""
    if flags.start or flags.end:
        return _range(flags)
    kind = flags.kind or ("monthly" if flags.month else "daily")
    if kind == "range":
        raise click.UsageError("--window range needs --start and --end")
    if kind == "daily":
        if flags.month:
            raise click.UsageError("--month goes with --window monthly")
        day = _day(flags.day, "--date") if flags.day else windows.last_settled_day(now, settle)
        return windows.daily(day)
    if flags.day:
        raise click.UsageError("--date goes with --window daily")
    if flags.month is None:
        return windows.previous_month(now)
    try:
        return windows.parse_month(flags.month)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--month") from None


def _range(flags: WindowFlags) -> Window:
    if not (flags.start and flags.end):
        raise click.UsageError("--start and --end go together (both inclusive YYYY-MM-DD)")
    if flags.kind not in (None, "range") or flags.day or flags.month:
        raise click.UsageError("--start/--end cannot be combined with --window/--date/--month")
    first, last = _day(flags.start, "--start"), _day(flags.end, "--end")
    if last < first:
        raise click.BadParameter(f"{flags.end} is before {flags.start}", param_hint="--end")
    return windows.date_range(first, last)


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
@click.option(
    "--no-cache",
    is_flag=True,
    help="Read every log file, neither using nor updating the cache of files already read.",
)
@config_option
# One parameter per option is how click calls a command; they are bundled right away.
def run(  # noqa: PLR0913
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
    no_cache: bool,
    config: str | None,
) -> None:
    """Reconcile one window (or every due period), record it, and notify the channels.

    Each period runs once: a period another runner holds is skipped (skipped: locked). A
    completed one is not fetched again: its last completed run is shown from the history, and
    exits by it; --force runs it again. A window with days not settled yet is recorded as
    pending and runs again later. --due first sends the notifications still pending. Exit 143
    after SIGTERM, the run recorded as interrupted.
    """
    flags = WindowFlags(kind, day, month, start, end)
    request = RunRequest(due, force, fail_on_mismatch, no_alerts, openai_csv, no_cache)
    if due and (flags.given or force or openai_csv):
        raise click.UsageError(
            "--due picks the periods itself: it cannot be combined with --window, --date,"
            " --month, --start, --end, --force or --openai-from-csv"
        )
    settings = setup(config, fmt)
    now = utcnow()
    window = None
    if not due:
        settle = timedelta(hours=settings.reconcile.settle_hours)
        window = choose_window(flags, now=now, settle=settle)
    report = _tick(settings, request, window, now=now, fmt=fmt)
    if window is None:
        _print_due(report, fmt)
    else:
        _print_one(report, window, fmt)
    if report.interrupted:
        click.echo("recon-job: interrupted: shutdown requested", err=True)
    code = RunExitCodes(fail_on_mismatch).of_report(report)
    if code:
        sys.exit(code)


def _tick(
    settings: Settings, request: RunRequest, window: Window | None, *, now: datetime, fmt: str
) -> DueReport:
    """One tick of the run loop for ``window`` (None: every due period), under SIGTERM rules.

    Run-once mode (``--due``: cron, a CronJob) pings the dead-man's switch and pushes its
    metrics; an explicit window (a backfill by hand) does neither.
    """
    from recon_job import runtime

    monitor = runtime.Monitor(
        pinger=runtime.pinger_for(settings) if request.due else runtime.Pinger(None),
        exit_codes=RunExitCodes(request.fail_on_mismatch),
        pushgateway=settings.daemon.pushgateway_url if request.due else None,
        # A process that serves no /metrics keeps none (a push sends the last run's gauges).
        metrics=runtime.Metrics(kept=False),
    )
    rt = runtime.Runtime(
        settings,
        clock=utcnow,
        channels={} if request.no_alerts else None,
        openai_csv=request.openai_csv,
        no_cache=request.no_cache,
        monitor=monitor,
    )
    plan = runtime.Plan(
        only=window,
        force=request.force,
        trigger="due" if request.due else "cli",
        relay=request.due,
    )
    shutdown = runtime.Shutdown(settings.daemon.shutdown_budget_seconds, rt.stop)
    try:
        with shutdown.handle(signal.SIGTERM), shutdown.interruptible():
            return runtime.run_tick(rt, plan, now)
    except Interrupted as e:
        if fmt == "json":
            echo_error_doc(e.reason, str(e), permanent=e.permanent)
        click.echo(f"recon-job: {e}", err=True)
        sys.exit(EXIT_SIGTERM)
    except ReconError as e:
        fail(e, fmt)
    finally:
        monitor.pinger.close()


def _print_one(report: DueReport, window: Window, fmt: str) -> None:
    """An explicit window: its one outcome as before, or one line saying why it was skipped."""
    from recon_job.report import run as output

    if report.runs:
        (ran,) = report.runs
        if fmt == "json":
            click.echo(json.dumps(output.outcome_dict(ran), indent=2))
        else:
            click.echo(output.render_text(ran), nl=False)
        return
    if report.from_history:
        (stored,) = report.from_history
        if fmt == "json":
            click.echo(json.dumps(output.outcome_dict(stored, from_history=True), indent=2))
        else:
            click.echo(output.render_text(stored, from_history=True), nl=False)
        return
    if not report.skipped:
        # Interrupted before it started: JSON still gets its one document.
        if fmt == "json" and report.interrupted:
            echo_error_doc("interrupted", "interrupted: shutdown requested", permanent=False)
        return
    reason = report.skipped[0][1]
    if fmt == "json":
        doc = {
            "run_id": None,
            "status": "skipped",
            "reason": reason,
            "window": output.window_dict(window),
        }
        click.echo(json.dumps(doc, indent=2))
    else:
        hint = " (use --force to run it again)" if reason == "complete" else ""
        click.echo(f"skipped: {reason} {window.key}{hint}")


def _print_due(report: DueReport, fmt: str) -> None:
    """``--due``: one block per run, then one line per skipped period (or one JSON document)."""
    from recon_job.report import run as output

    relayed = report.relayed
    if fmt == "json":
        doc = {
            "status": report.status,
            "due": [output.outcome_dict(r) for r in report.runs],
            "skipped": [{"period": key, "reason": why} for key, why in report.skipped],
            "abandoned": list(report.abandoned),
            "interrupted": report.interrupted,
            "relayed": None
            if relayed is None
            else {
                "sent": relayed.sent + relayed.partial,
                "failed": relayed.dead,
                "pending": relayed.deferred,
            },
        }
        click.echo(json.dumps(doc, indent=2))
        return
    if relayed is not None:
        click.echo(
            f"relayed notifications left pending: sent {relayed.sent + relayed.partial}, "
            f"given up {relayed.dead}, still pending {relayed.deferred}"
        )
    for ran in report.runs:
        click.echo(output.render_text(ran), nl=False)
    for key, why in report.skipped:
        click.echo(f"skipped: {why} {key}")
    for run_id in report.abandoned:
        click.echo(f"abandoned: run {run_id} (its process had died; its period runs again)")
    if not report.runs and not report.skipped and not report.interrupted:
        click.echo("nothing due")


__all__ = ["RunExitCodes", "RunRequest", "WindowFlags", "choose_window", "run"]
