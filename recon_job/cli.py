"""``recon-job``: parse, load settings, configure logging, call one function, map errors to exits.

Exit codes: 0 completed (or nothing to do, or skipped: locked / complete), 1 a mismatch with
``--fail-on-mismatch``, 2 a configuration or permanent error (bad key, unreadable input), 3 a
transient failure (API down, deadline hit, database locked: safe to retry), 143 stopped by
SIGTERM (the run recorded as interrupted).
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from types import FrameType

import click
import structlog

from recon_job import __version__, job, report, windows
from recon_job.cli_alerts import alerts
from recon_job.cli_common import (
    EXIT_MISMATCH,
    EXIT_PERMANENT,
    config_option,
    exit_code,
    fail,
    format_option,
    setup,
    utcnow,
)
from recon_job.cli_daemon import daemon
from recon_job.config import NdjsonSourceSettings, Settings, load_settings
from recon_job.due import DueReport, run_due
from recon_job.errors import ConfigError, Interrupted, ReconError, StoreError
from recon_job.health import Metrics
from recon_job.models import Status, Window
from recon_job.ping import push_metrics, with_pings

log = structlog.get_logger(__name__)

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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="recon-job")
def main() -> None:
    """Reconcile your own OpenAI usage logs against OpenAI's Usage and Costs APIs."""


main.add_command(alerts)
main.add_command(daemon)


@main.command()
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
    from recon_job import request_recon

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

    from recon_job.sources.ndjson_logs import resolve_log_files

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
    from recon_job.alerting import channel_problems

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
