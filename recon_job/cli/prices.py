"""``recon-job prices``: keep the price table current.

``prices check`` lists the models recent runs could not price that the table still cannot, and,
given a LiteLLM ``model_prices_and_context_window.json`` file (``--against``), every figure of it
that differs from the table (:mod:`recon_job.config.pricecheck`). Exit codes: 0 everything
agrees and nothing recent is unpriced; 1 something differs or is unpriced; 2 a bad price map,
settings or price file; 3 the history database did not answer.
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
    fail,
    format_option,
    setup,
    utcnow,
)

if TYPE_CHECKING:
    from recon_job.config import Settings
    from recon_job.config.pricecheck import Comparison, Unpriced
    from recon_job.pricing import PriceTable


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
@format_option
@config_option
def prices_check(against: Path | None, runs: int, fmt: str, config: str | None) -> None:
    """List models recent runs could not price, and figures that differ from a price map.

    Exits 0 when everything agrees, 1 when a figure differs or a model is still unpriced, 2 on
    an unreadable or malformed price map (or settings), 3 when the history did not answer.
    """
    from recon_job import wiring
    from recon_job.config.pricecheck import compare, read_price_map
    from recon_job.errors import ConfigError

    settings = setup(config, fmt)
    try:
        table = wiring.price_table(settings, wiring.model_namer(settings))
        entries = read_price_map(against) if against is not None else None
    except ConfigError as e:
        fail(e, fmt)
    unpriced, history_note = _unpriced(settings, table, runs, fmt)
    comparison = compare(table, entries, utcnow().date()) if entries is not None else None
    failed = bool(
        [u for u in unpriced if not u.priced_now] or (comparison and comparison.differences)
    )
    if fmt == "json":
        click.echo(json.dumps(_document(unpriced, comparison, against, history_note), indent=2))
    else:
        click.echo(_text(unpriced, comparison, against, history_note, runs), nl=False)
    sys.exit(EXIT_MISMATCH if failed else EXIT_OK)


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
    return None if value is None else format(value.normalize(), "f")


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
