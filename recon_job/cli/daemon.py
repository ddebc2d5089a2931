"""``recon-job daemon``: the always-on scheduler (see :mod:`recon_job.daemon.scheduler`).

Only click and :mod:`recon_job.cli.common` are imported at the top: APScheduler, the run loop
and the logging setup are imported by the command itself, so that the other commands and
``recon-job --help`` never load them.
"""

from __future__ import annotations

import sys

import click

from recon_job.cli.common import config_option, fail, listen_option, setup
from recon_job.errors import ReconError


@click.command()
@listen_option
@config_option
def daemon(listen: str | None, config: str | None) -> None:
    """Run daily and monthly reconciliations on a schedule (UTC), catching up on anything
    missed; serve GET /livez, /readyz, /healthz and /metrics on --listen (default
    127.0.0.1:9108).

    The same port serves the dashboard and admin API when RECON_DASHBOARD_KEY is set (see
    `recon-job serve`).

    Stops cleanly on SIGTERM (exit 143) or SIGINT (exit 130): the run in progress stops at its
    next checkpoint and is recorded as interrupted. A failing run never stops the daemon.
    """
    from recon_job.daemon import serve
    from recon_job.logconfig import REDACTOR
    from recon_job.runtime import secret_values

    settings = setup(config)
    ping_url = settings.daemon.ping_url
    REDACTOR.add(*secret_values(ping_url.get_secret_value() if ping_url else None))
    try:
        code = serve(settings, listen=listen)
    except ReconError as e:
        fail(e)
    sys.exit(code)
