"""``recon-job reconcile-requests``: each billed request id against the logged request."""

from __future__ import annotations

import json
import sys

import click

from recon_job.cli.common import (
    EXIT_MISMATCH,
    config_option,
    fail,
    format_option,
    progress_bar,
    setup,
)


@click.command("reconcile-requests")
@click.argument("billing", type=click.Path(exists=True, dir_okay=False))
@click.option("--source", help="Which [[sources]] entry holds the logged requests (if several).")
@click.option(
    "--apply/--dry-run",
    default=False,
    help="Write actual_cost_cents and reconciliation_status back (default: dry run, no writes).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=1000,
    show_default=True,
    help="Rows per write-back transaction (each batch commits on its own).",
)
@format_option
@click.option(
    "--fail-on-discrepancy", is_flag=True, help="Exit 1 on discrepancies, unbilled ids or errors."
)
@config_option
# click passes each option as its own parameter.
def reconcile_requests(  # noqa: PLR0913
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
    from recon_job import wiring
    from recon_job.errors import ReconError
    from recon_job.per_request import reconcile_requests as reconcile
    from recon_job.report.requests import render_text, report_dict

    settings = setup(config, fmt)
    with progress_bar("reading logged requests") as progress:
        try:
            result = reconcile(
                wiring.request_source(settings, source),
                billing,
                apply=apply,
                batch_size=batch_size,
                progress=progress,
            )
        except ReconError as e:
            fail(e, fmt)
    if fmt == "json":
        click.echo(json.dumps(report_dict(result), indent=2))
    else:
        click.echo(render_text(result), nl=False)
    if fail_on_discrepancy and result.needs_attention:
        sys.exit(EXIT_MISMATCH)
