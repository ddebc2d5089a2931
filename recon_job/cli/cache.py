"""``recon-job cache clear``: drop the NDJSON source's cache kept with the history.

The cache (:mod:`recon_job.sources.ndjson.cache`) only saves reading: dropping it loses
nothing, and the next run reads every log file again and stores it anew. ``recon-job run
--no-cache`` bypasses it for one run instead.
"""

from __future__ import annotations

import json

import click

from recon_job.cli.common import WholeSummaryGroup, config_option, fail, format_option, setup


@click.group(cls=WholeSummaryGroup)
def cache() -> None:
    """The cache of log files already read, kept with the history."""


@cache.command("clear")
@format_option
@config_option
def cache_clear(fmt: str, config: str | None) -> None:
    """Drop every cached log file: the next run reads all of them again.

    Exit 0 when done (also when the cache was empty), 2 on a configuration or permanent error,
    3 when the database is busy or unreachable (retry).
    """
    from recon_job.errors import StoreError
    from recon_job.store import HistoryStore

    settings = setup(config, fmt)
    url = settings.history.database_url.get_secret_value()
    try:
        # Never created: a mistyped path has no cache to clear, and is said to be missing.
        with HistoryStore(url, create=False) as store:
            dropped = store.cache_clear()
    except StoreError as e:
        fail(e, fmt)
    if fmt == "json":
        click.echo(json.dumps({"dropped": dropped}, indent=2))
        return
    click.echo(f"{dropped} cache entries dropped")
