"""``recon-job explain``: where and why a stored window drifts, on demand.

It reads the window's last completed run from the history and runs the diagnosis on it (the
gaps by hour and minute, a clock shift, the cost bridge, billed prices against the table,
shadow usage), within ``diagnosis.max_requests`` extra requests; series already fetched come
from the history's cache. It never re-runs the reconciliation and never sends an alert.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING

import click

from recon_job import windows
from recon_job.cli.common import config_option, fail, format_option, setup, utcnow
from recon_job.families import FAMILIES, OTHER, family_rank

#: Why a drifting group was not located, as the text output says it.
SKIPPED = {
    "budget": "over diagnosis.max_requests",
    "pending": "on a day OpenAI is still counting",
    "no_series": "without OpenAI's hourly figures (no admin key) or a source that buckets by hour",
    "by_api_key": "grouped by API key (hourly figures are per model and project)",
    "cost_only": "drifting in dollars only (see the bridge's price part)",
    "misplaced": "with usage logged at other hours",
}

if TYPE_CHECKING:
    from recon_job.config import Settings
    from recon_job.findings import Diagnosis
    from recon_job.models import ReconResult, Window
    from recon_job.store import HistoryStore


@click.command()
@click.option("--date", "day", metavar="YYYY-MM-DD", help="The UTC day to explain.")
@click.option("--month", metavar="YYYY-MM", help="The calendar month to explain.")
@click.option("--model", help="Only this model's groups (as reported, e.g. gpt-4o).")
@click.option(
    "--family",
    type=click.Choice([*FAMILIES, OTHER]),
    help="Only this usage family's groups (completions, embeddings ...).",
)
@format_option
@config_option
def explain(  # noqa: PLR0913 -- one parameter per option
    day: str | None,
    month: str | None,
    model: str | None,
    family: str | None,
    fmt: str,
    config: str | None,
) -> None:
    """Where and why a reconciled window drifts: gaps by hour, clock shift, cost bridge,
    prices, shadow usage (needs a completed run of the window)."""
    window = _window(day, month)
    settings = setup(config, fmt)
    from recon_job.errors import ReconError

    try:
        run_id, result, found = _explain(settings, window, model=model, family=family)
    except ReconError as e:
        fail(e, fmt)
    if fmt == "json":
        from recon_job.report import diagnosis_dict

        doc = {
            "window": window.key,
            "run_id": run_id,
            "status": str(result.status),
            "model": model,
            "family": family,
            "diagnosis": diagnosis_dict(found),
        }
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(_text(window, run_id, result, found), nl=False)


def _window(day: str | None, month: str | None) -> Window:
    if bool(day) == bool(month):
        raise click.UsageError("give one of --date YYYY-MM-DD or --month YYYY-MM")
    try:
        return windows.daily(windows.parse_day(day)) if day else windows.parse_month(str(month))
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--date" if day else "--month") from None


def _explain(
    settings: Settings, window: Window, *, model: str | None, family: str | None
) -> tuple[int, ReconResult, Diagnosis]:
    from recon_job.errors import StoreError
    from recon_job.store import HistoryStore

    url = settings.history.database_url.get_secret_value()
    with HistoryStore(url, create=False) as store:
        run = store.last_completed_run(window.key)
        result = store.stored_result(run.id) if run is not None else None
        if run is None or result is None:
            when = (
                f"--date {window.start}"
                if window.kind == "daily"
                else f"--window monthly --month {window.start:%Y-%m}"
            )
            raise StoreError(
                f"{window.key} has no completed run in the history; reconcile it first with "
                f"`recon-job run {when}`",
                permanent=True,
                reason="run_missing",
            )
        chosen = _chosen(result, model=model, family=family)
        return run.id, chosen, _diagnose(settings, store, chosen)


def _chosen(result: ReconResult, *, model: str | None, family: str | None) -> ReconResult:
    """``result`` with only the groups of ``model`` and ``family`` (when given)."""
    if model is None and family is None:
        return result
    from recon_job.errors import ConfigError

    groups = tuple(
        g
        for g in result.groups
        if (model is None or g.key.model == model) and (family is None or g.key.family == family)
    )
    if not groups:
        known = sorted({g.key.model for g in result.groups})
        families = sorted({g.key.family for g in result.groups}, key=family_rank)
        raise ConfigError(
            [
                f"the run has no group of {model or 'any model'} in {family or 'any family'}; "
                f"its models: {', '.join(known) or 'none'}; its families: "
                f"{', '.join(families) or 'none'}"
            ]
        )
    return replace(result, groups=groups)


def _diagnose(settings: Settings, store: HistoryStore, result: ReconResult) -> Diagnosis:
    from recon_job import investigate, wiring
    from recon_job.models import UsageTotals

    now = utcnow()
    namer = wiring.model_namer(settings)
    pricer = wiring.price_table(settings, namer)
    local = wiring.local_sources(settings, namer=namer, pricer=pricer)
    connection = wiring.openai_connection(settings) if settings.openai.admin_key else None
    inv = wiring.investigator(
        settings,
        store,
        namer=namer,
        pricer=pricer,
        local=local,
        connection=connection,
        now=now,
    )
    billed: UsageTotals = UsageTotals()
    if connection is not None:
        # The billed quantities of the window (one Costs request): what prices are checked on.
        from recon_job.sources.openai import OpenAICostsSource

        c = connection
        billed = OpenAICostsSource(c.options, c.session, c.deadline).fetch(result.window)
    local_keys = UsageTotals(groups={g.key: g.local for g in result.groups if g.local.requests})
    restated = tuple(
        store.restatements_since(first_day=result.window.start, last_day=result.window.last_day)
    )
    return investigate.diagnose(
        inv, result, official=billed, local=local_keys, store=store, restated=restated
    )


def _text(window: Window, run_id: int, result: ReconResult, found: Diagnosis) -> str:
    from recon_job.report import diagnosis_lines

    head = f"{window.key}: run {run_id}, {result.status}"
    if not result.mismatches:
        head += " — no group drifts beyond the tolerance"
    lines = [head, *diagnosis_lines(found)] if not found.empty else [head, "nothing found"]
    skipped = Counter(g.skipped for g in found.groups if g.skipped)
    if skipped:
        why = ", ".join(
            f"{n} group{'s' if n != 1 else ''} {SKIPPED.get(reason, reason)}"
            for reason, n in skipped.items()
        )
        lines += ["", f"not located: {why}"]
    return "\n".join(lines) + "\n"
