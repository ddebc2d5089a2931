"""``recon-job prices``: keep the price table current.

``prices check`` lists the models recent runs could not price that the table still cannot,
given a LiteLLM ``model_prices_and_context_window.json`` file (``--against``) every figure of it
that differs from the table, and, when the OpenAI admin key is set, every piece OpenAI billed
over the last ``--days`` settled days at another unit price than the table's, with the day it
started (:mod:`recon_job.config.pricecheck`). Exit codes: 0 everything agrees and nothing
recent is unpriced; 1 something differs or is unpriced; 2 a bad price map, settings or price
file, or OpenAI refused the key; 3 the history database or OpenAI's Costs API did not answer.
"""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from recon_job.cli.common import (
    EXIT_MISMATCH,
    EXIT_OK,
    WholeSummaryGroup,
    config_option,
    exit_code,
    fail,
    format_option,
    setup,
    utcnow,
)
from recon_job.models import MONEY

if TYPE_CHECKING:
    from recon_job.config import Settings
    from recon_job.config.pricecheck import BilledPrices, Comparison, Unpriced
    from recon_job.errors import ReconError
    from recon_job.modelnames import ModelNamer
    from recon_job.pricing import PriceTable

#: What :func:`_billed` gives: the check made, or a note saying why none was (no key,
#: ``--days 0``), or the error that stopped it.
Billed = tuple["BilledPrices | None", "str | None", "ReconError | None"]


@click.group(cls=WholeSummaryGroup)
def prices() -> None:
    """Check the price table: unpriced models and figures that differ from a price map."""


@prices.command("check")
@click.option(
    "--against",
    "against",
    type=click.Path(path_type=Path),
    metavar="FILE.json",
    help="A price map in LiteLLM's model_prices_and_context_window.json format: list every "
    "figure of it that differs from the price table.",
)
@click.option(
    "--runs",
    type=click.IntRange(1, 10_000),
    default=20,
    show_default=True,
    help="How many recent runs to look through for models without a price.",
)
@click.option(
    "--days",
    type=click.IntRange(0, 180),
    default=7,
    show_default=True,
    help="Compare the unit prices OpenAI billed over this many recent settled days (Costs "
    "API, needs the admin key) with the table; 0 does not ask OpenAI.",
)
@format_option
@config_option
def prices_check(against: Path | None, runs: int, days: int, fmt: str, config: str | None) -> None:
    """List models recent runs could not price, figures that differ from a price map, and
    pieces OpenAI bills at another price than the table's.

    Exits 0 when everything agrees, 1 when a figure or a billed price differs or a model is
    still unpriced, 2 on an unreadable or malformed price map (or settings) or a key OpenAI
    refuses, 3 when the history or OpenAI's Costs API did not answer.
    """
    from recon_job import wiring
    from recon_job.config.pricecheck import compare, read_price_map
    from recon_job.errors import ConfigError

    settings = setup(config, fmt)
    try:
        namer = wiring.model_namer(settings)
        table = wiring.price_table(settings, namer)
        entries = read_price_map(against) if against is not None else None
    except ConfigError as e:
        fail(e, fmt)
    unpriced, history_note = _unpriced(settings, table, runs, fmt)
    comparison = compare(table, entries, utcnow().date()) if entries is not None else None
    billed = _billed(settings, table, namer, days)
    failed = bool(
        [u for u in unpriced if not u.priced_now]
        or (comparison and comparison.differences)
        or (billed[0] is not None and billed[0].findings)
    )
    if fmt == "json":
        doc = _document(unpriced, comparison, against, history_note)
        doc["ok"] = doc["ok"] and not failed and billed[2] is None
        doc["billed_prices"] = _billed_document(billed)
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo(_text(unpriced, comparison, against, history_note, runs), nl=False)
        click.echo(_billed_text(billed), nl=False)
    if billed[2] is not None:
        click.echo(f"recon-job: error: {billed[2]}", err=True)
        sys.exit(exit_code(billed[2]))
    sys.exit(EXIT_MISMATCH if failed else EXIT_OK)


def _billed(settings: Settings, table: PriceTable, namer: ModelNamer, days: int) -> Billed:
    """The billed prices of the last ``days`` settled days; or why they were not checked (a
    note), or the error that stopped the check (OpenAI refused or did not answer)."""
    from datetime import timedelta

    from recon_job import wiring
    from recon_job.config import admin_key_problems
    from recon_job.config.pricecheck import billed_prices
    from recon_job.errors import ConfigError, ReconError
    from recon_job.sources.openai import OpenAICostsSource
    from recon_job.windows import date_range, last_settled_day

    if days == 0:
        return None, "not checked (--days 0)", None
    if settings.openai.admin_key is None:
        return None, "not checked: no OpenAI admin key (set OPENAI_ADMIN_KEY)", None
    problems = admin_key_problems(settings)
    if problems:
        return None, None, ConfigError(problems)
    last = last_settled_day(utcnow(), wiring.settle(settings))
    window = date_range(last - timedelta(days=days - 1), last)
    try:
        costs = next(s for s in wiring.api_sources(settings) if isinstance(s, OpenAICostsSource))
        return billed_prices(costs, window, table, namer), None, None
    except ReconError as e:
        return None, None, e


def _billed_document(billed: Billed) -> dict[str, Any]:
    found, note, error = billed
    if found is None:
        return {
            "checked": False,
            "note": note,
            "error": None
            if error is None
            else {"reason": error.reason, "message": str(error), "permanent": error.permanent},
            "findings": [],
        }
    from recon_job.diagnosis.prices import price_sentence

    return {
        "checked": True,
        "start": found.window.start.isoformat(),
        "last_day": found.window.last_day.isoformat(),
        "compared": found.compared,
        "skipped": dict(found.skipped),
        "findings": [
            {
                "model": f.model,
                "piece": f.piece,
                "tier": f.tier,
                "billed": _number(f.billed),
                "table": _number(f.table),
                "unit": f.unit,
                "since": f.since.isoformat(),
                "last_day": None if f.last_day is None else f.last_day.isoformat(),
                "sentence": price_sentence(f),
            }
            for f in found.findings
        ],
    }


def _billed_text(billed: Billed) -> str:
    found, note, error = billed
    if found is None:
        return f"billed prices: {note if error is None else f'not checked: {error}'}\n"
    from recon_job.diagnosis.prices import price_sentence

    window = found.window
    lines = [
        f"billed prices {window.start.isoformat()}..{window.last_day.isoformat()}: "
        f"{found.compared} line(s) compared, {len(found.findings)} price(s) differ"
    ]
    lines.extend(f"  {price_sentence(f)}" for f in found.findings)
    if found.skipped:
        reasons = ", ".join(f"{k} {v}" for k, v in found.skipped.items())
        lines.append(f"  not compared: {reasons}")
    return "\n".join(lines) + "\n"


def _unpriced(
    settings: Settings, table: PriceTable, runs: int, fmt: str
) -> tuple[list[Unpriced], str]:
    """What recent runs left unpriced; a note instead when no run was ever recorded."""
    from recon_job.config.pricecheck import unpriced_models
    from recon_job.errors import StoreError
    from recon_job.store import HistoryStore

    url = settings.history.database_url.get_secret_value()
    try:
        with HistoryStore(url, create=False) as store:
            records = store.list_runs(runs)
    except StoreError as e:
        if e.reason == "store_missing":
            return [], "no run recorded yet"
        fail(e, fmt)
    return unpriced_models(
        table, ((r.id, r.window.last_day, r.unpriced) for r in records)
    ), f"{len(records)} recent run(s) read"


def _number(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(MONEY), "f")


def _document(
    unpriced: list[Unpriced], comparison: Comparison | None, against: Path | None, note: str
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "ok": not [u for u in unpriced if not u.priced_now]
        and not (comparison and comparison.differences),
        "history": note,
        "unpriced": [
            {
                "model": u.key.model,
                "tier": u.key.tier,
                "runs": list(u.runs),
                "priced_now": u.priced_now,
            }
            for u in unpriced
        ],
        "against": str(against) if against is not None else None,
        "differences": None,
    }
    if comparison is not None:
        doc["differences"] = [
            {
                "model": d.model,
                "piece": d.piece,
                "ours": _number(d.ours),
                "theirs": _number(d.theirs),
            }
            for d in comparison.differences
        ]
        doc["compared_models"] = comparison.compared
        doc["not_in_table"] = list(comparison.not_in_table)
    return doc


def _text(
    unpriced: list[Unpriced],
    comparison: Comparison | None,
    against: Path | None,
    note: str,
    runs: int,
) -> str:
    still = [u for u in unpriced if not u.priced_now]
    lines = [f"history: {note} (the last {runs} at most)"]
    if still:
        lines.append("models recent runs could not price, still without a price:")
        for u in still:
            ids = ", ".join(str(i) for i in u.runs)
            lines.append(f"  {u.key.model} at {u.key.tier or 'standard'} (runs {ids})")
    else:
        lines.append("every model of the recent runs is priced")
    if len(unpriced) > len(still):
        priced = ", ".join(u.key.model for u in unpriced if u.priced_now)
        lines.append(f"priced since: {priced}")
    if comparison is not None:
        lines.append(
            f"{against}: {comparison.compared} model(s) compared, "
            f"{len(comparison.differences)} figure(s) differ"
        )
        if comparison.differences:
            rows = [
                (d.model, d.piece, _number(d.ours) or "-", _number(d.theirs) or "-")
                for d in comparison.differences
            ]
            head = ("model", "piece", "ours", "theirs")
            widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
            for row in [head, *rows]:
                cells = "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
                lines.append(f"  {cells}".rstrip())
            lines.append(
                "  (USD per 1M tokens or characters, per minute, per 1k calls, per image: "
                "see the header of config/pricing.toml)"
            )
        if comparison.not_in_table:
            lines.append(
                f"not in the table ({len(comparison.not_in_table)}): "
                + ", ".join(comparison.not_in_table)
            )
    return "\n".join(lines).rstrip() + "\n"
