"""What every ``recon-job`` command shares: exit codes, the clock, setup and error exits.

Only click is imported at the top: ``recon-job --help`` must not pay for pydantic, SQLAlchemy or
requests. Everything heavier is imported inside the function that needs it.
"""

from __future__ import annotations

import contextlib
import gc
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, NoReturn, TypeVar

import click

if TYPE_CHECKING:
    from recon_job.config import Settings
    from recon_job.errors import ReconError
    from recon_job.store import HistoryStore

T = TypeVar("T")

#: The run completed (or there was nothing to do, or the period was skipped).
EXIT_OK = 0
#: A mismatch with ``--fail-on-mismatch`` (or discrepancies with ``--fail-on-discrepancy``).
EXIT_MISMATCH = 1
#: A configuration or other permanent error: fix something before running again.
EXIT_PERMANENT = 2
#: A transient failure (API down, deadline hit, database locked): safe to retry.
EXIT_TRANSIENT = 3
#: Stopped by SIGTERM (128 + 15), what Kubernetes expects of a terminated container.
EXIT_SIGTERM = 143


class WholeSummaryGroup(click.Group):
    """A command group whose command list shows each command's whole first line of help.

    click cuts a summary at 45 characters ("Send the notifications still pending now:
    retries, or what a..."), which hides what a command does.
    """

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list, each with its whole first line of help (never cut)."""
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=200)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def utcnow() -> datetime:
    """The clock. The only place (with the daemon) where recon-job reads it."""
    return datetime.now(UTC)


def exit_code(error: ReconError) -> int:
    """2 for permanent errors, 3 for transient ones."""
    return EXIT_PERMANENT if error.permanent else EXIT_TRANSIENT


def fail(error: ReconError, fmt: str = "text") -> NoReturn:
    """Report ``error`` (one JSON document on stdout with ``--format json``) and exit 2 or 3."""
    if fmt == "json":
        echo_error_doc(error.reason, str(error), permanent=error.permanent)
    click.echo(f"recon-job: error: {error}", err=True)
    sys.exit(exit_code(error))


def echo_error_doc(reason: str, message: str, *, permanent: bool) -> None:
    """The one JSON document of a command that could not do its work, on stdout."""
    doc = {
        "run_id": None,
        "status": "failed",
        "reconciled": False,
        "error": {"reason": reason, "message": message, "permanent": permanent},
    }
    click.echo(json.dumps(doc, indent=2))


def asks_json(argv: Sequence[str]) -> bool:
    """True when the command line asks for ``--format json`` (it may not be parsed yet)."""
    pairs = zip(argv, [*argv[1:], ""], strict=True)
    return "--format=json" in argv or any(a == "--format" and b == "json" for a, b in pairs)


def load(config: str | None, fmt: str = "text") -> Settings:
    """The settings, or exit 2 listing every problem."""
    from recon_job.config import load_settings
    from recon_job.errors import ConfigError

    try:
        return load_settings(config)
    except ConfigError as e:
        fail(e, fmt)


def structlog_without_rich() -> None:
    """Import structlog with rich hidden from it, once, when neither is imported yet.

    structlog imports rich (and with it pygments and attrs: about 40 ms, 5% of a whole run)
    whenever it is installed, only to offer pretty tracebacks in its console renderer. recon-job
    renders tracebacks itself (``format_exc_info`` before the console renderer, a dict in JSON),
    so a CLI process never uses them. rich itself stays importable: it is hidden only while
    structlog is imported (the progress bar imports it later, on a terminal).
    """
    if "structlog" in sys.modules or "rich" in sys.modules:
        return
    sys.modules["rich"] = None  # type: ignore[assignment]  # ``import rich`` -> ImportError
    try:
        import structlog  # noqa: F401
    finally:
        del sys.modules["rich"]


def started() -> None:
    """Start-up is over: collect garbage again, but never through what start-up built.

    The console script turns the collector off while the process starts (``recon_job.__main__``).
    What was built so far lives as long as the process, so it is frozen out of every later
    collection. Nothing to do when the collector is on (the CLI called in process, by tests).
    """
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def setup(config: str | None, fmt: str = "text") -> Settings:
    """The settings (or exit 2), with logging configured and their secrets registered; the
    garbage collector back on."""
    structlog_without_rich()
    from recon_job.config import secret_values
    from recon_job.logconfig import configure_logging

    settings = load(config, fmt)
    configure_logging(
        level=settings.logging.level,
        fmt=settings.logging.format,
        secrets=secret_values(settings),
    )
    started()
    return settings


def read_history(settings: Settings, fmt: str, read: Callable[[HistoryStore], T]) -> T:
    """``read(store)`` on the history database, opened for reading (never created); exit 2 or
    3 when it cannot be read."""
    from recon_job.errors import StoreError
    from recon_job.store import HistoryStore

    try:
        with HistoryStore(settings.history.database_url.get_secret_value(), create=False) as store:
            return read(store)
    except StoreError as e:
        fail(e, fmt)


@contextlib.contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar on stderr when it is a terminal; nothing otherwise.

    The callback takes ``(done, total)``; a total of 0 means "not known yet".
    """
    if not sys.stderr.isatty():
        yield None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None)

        yield update


config_option = click.option(
    "--config",
    "config",
    envvar="RECON_CONFIG",
    type=click.Path(dir_okay=False),
    help="TOML settings file (default: $RECON_CONFIG; see config/recon.example.toml).",
)
format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json prints exactly one JSON document on stdout; logs always go to stderr.",
)


def _check_listen(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    from recon_job.config import split_listen

    try:
        split_listen(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    return value


listen_option = click.option(
    "--listen",
    metavar="HOST:PORT",
    callback=_check_listen,
    help="Where the web application (dashboard, admin API, probes, /metrics) listens "
    "(default: [web] listen or RECON_WEB__LISTEN, else 127.0.0.1:9108).",
)
