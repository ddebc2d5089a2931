"""``recon-job serve``: the web application alone over the history database, no scheduler.

Only click and :mod:`recon_job.cli.common` are imported at the top: FastAPI, uvicorn and the
store are imported by the command itself, so ``recon-job --help`` never loads them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from recon_job.cli.common import config_option, fail, listen_option, setup

if TYPE_CHECKING:
    from recon_job.config import Settings
    from recon_job.web import WebContext


@click.command()
@listen_option
@config_option
def serve(listen: str | None, config: str | None) -> None:
    """Serve the dashboard, admin API, probes and /metrics over the history, no scheduler.

    The dashboard (/usage-api) and admin API need RECON_DASHBOARD_KEY; without it they answer
    404. Pages read the history only and never call OpenAI. Listens on --listen (default
    127.0.0.1:9108); stops on SIGTERM or SIGINT. A Deployment beside the CronJob runs this.
    """
    from recon_job.cli.common import utcnow
    from recon_job.errors import ConfigError, ReconError
    from recon_job.runtime import Metrics
    from recon_job.web import ServeProbes, WebServer, create_app
    from recon_job.web import wiring as web_wiring

    settings = setup(config)
    try:
        host, port = web_wiring.listen_address(settings, listen)
    except ValueError as e:
        fail(ConfigError(f"web.listen: {e}"))
    _warn_of_problems(settings)
    ctx = web_wiring.context(
        settings, probes=ServeProbes(lambda: None), metrics=Metrics(), clock=utcnow
    )
    ctx.probes = ServeProbes(lambda: _history_problem(ctx))
    try:
        server = WebServer(create_app(ctx), host, port)
    except ReconError as e:
        fail(e)
    try:
        server.serve_forever()
    finally:
        ctx.close()


def _warn_of_problems(settings: Settings) -> None:
    """Say at start what would stop "Reconcile this range" (an admin key, a channel URL, the
    logs): the pages serve the history without them, so the server starts anyway."""
    import structlog

    from recon_job.config.checks import problems

    log = structlog.get_logger(__name__)
    for problem in problems(settings):
        log.warning("web.reconcile_unavailable", problem=problem)


def _history_problem(ctx: WebContext) -> str | None:
    """None while the history database can be read (or holds no history yet: the dashboard
    says so); else why not, without a secret."""
    from recon_job.errors import StoreError

    try:
        ctx.history().list_runs(1)
    except StoreError as e:
        return None if e.reason == "store_missing" else str(e)
    return None
