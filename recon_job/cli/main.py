"""``recon-job``: the command group; each command lives in its own module, imported on use.

Exit codes: 0 completed (or nothing to do, or skipped: locked / complete), 1 a mismatch with
``--fail-on-mismatch``, 2 a configuration or permanent error (bad key, unreadable input), 3 a
transient failure (API down, deadline hit, database locked: safe to retry), 143 stopped by
SIGTERM (the run recorded as interrupted).

Subcommands are loaded lazily (click's documented ``LazyGroup`` pattern): ``recon-job --help``
imports each command module only for its one-line help, and those modules import nothing heavy
at the top, so a cron tick or a ``--help`` does not pay for SQLAlchemy, requests or Jinja2.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import click

from recon_job.cli.common import WholeSummaryGroup, asks_json, echo_error_doc

#: Command name -> "module:attribute" of the click command.
COMMANDS: Mapping[str, str] = {
    "run": "recon_job.cli.run:run",
    "history": "recon_job.cli.history:history",
    "check-config": "recon_job.cli.check:check_config",
    "alerts": "recon_job.cli.alerts:alerts",
    "reconcile-requests": "recon_job.cli.requests:reconcile_requests",
    "daemon": "recon_job.cli.daemon:daemon",
    "prices": "recon_job.cli.prices:prices",
    "serve": "recon_job.cli.serve:serve",
    "explain": "recon_job.cli.explain:explain",
    "cache": "recon_job.cli.cache:cache",
}


class LazyGroup(WholeSummaryGroup):
    """A group whose subcommands are imported only when listed or called (each listed with its
    whole first line of help)."""

    def __init__(self, *args: Any, lazy: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command, in the order of :data:`COMMANDS`."""
        return [*super().list_commands(ctx), *self._lazy]

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Parse as click does, keeping the command line for :meth:`invoke`."""
        ctx.meta["recon_job.argv"] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; with ``--format json`` a usage error (a bad option value, a missing
        argument) is also one JSON document on stdout, as every other error is."""
        try:
            return super().invoke(ctx)
        except click.UsageError as e:
            if asks_json(ctx.meta.get("recon_job.argv", ())):
                echo_error_doc("usage", e.format_message(), permanent=True)
            raise

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command, imported on first use."""
        if cmd_name not in self._lazy:
            return super().get_command(ctx, cmd_name)
        module, _, attribute = self._lazy[cmd_name].partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self._lazy[cmd_name]} is not a click command")
        return command


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="recon-job", prog_name="recon-job")
def main() -> None:
    """Reconcile your own OpenAI usage logs against OpenAI's Usage and Costs APIs."""
