"""What every ``recon-job`` command shares: exit codes, the clock, setup and error exits."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import NoReturn

import click

from recon_job.config.settings import Settings, load_settings, secret_values
from recon_job.errors import ConfigError, ReconError
from recon_job.logconfig import configure_logging
from recon_job.models import Status

EXIT_OK = 0
EXIT_MISMATCH = 1
EXIT_PERMANENT = 2
EXIT_TRANSIENT = 3


def utcnow() -> datetime:
    """The clock. The only place (with the daemon) where recon-job reads it."""
    return datetime.now(UTC)


def exit_code(error: ReconError) -> int:
    """2 for permanent errors, 3 for transient ones."""
    return EXIT_PERMANENT if error.permanent else EXIT_TRANSIENT


def fail(error: ReconError, fmt: str = "text") -> NoReturn:
    if fmt == "json":
        doc = {
            "run_id": None,
            "status": str(Status.FAILED),
            "reconciled": False,
            "error": {"reason": error.reason, "message": str(error), "permanent": error.permanent},
        }
        click.echo(json.dumps(doc, indent=2))
    click.echo(f"recon-job: error: {error}", err=True)
    sys.exit(exit_code(error))


def setup(config: str | None, fmt: str = "text") -> Settings:
    try:
        settings = load_settings(config)
    except ConfigError as e:
        fail(e, fmt)
    configure_logging(
        level=settings.logging.level,
        fmt=settings.logging.format,
        secrets=secret_values(settings),
    )
    return settings


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
