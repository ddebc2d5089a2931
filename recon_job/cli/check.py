"""``recon-job check-config``: every problem of the settings and inputs, listed at once.

It runs the checks every run runs (:func:`recon_job.config.problems`), so a configuration it
accepts is one a run accepts, and what it refuses a run refuses with the same message.
"""

from __future__ import annotations

import sys

import click

from recon_job.cli.common import EXIT_PERMANENT, config_option


@click.command("check-config")
@config_option
def check_config(config: str | None) -> None:
    """Validate the settings, the price table and the inputs; list every problem at once."""
    from recon_job.config import describe, load_settings, problems
    from recon_job.errors import ConfigError

    try:
        settings = load_settings(config)
    except ConfigError as e:
        click.echo(str(e), err=True)
        sys.exit(EXIT_PERMANENT)
    found = problems(settings)
    if found:
        click.echo(str(ConfigError(found)), err=True)
        sys.exit(EXIT_PERMANENT)
    click.echo(describe(settings))
