"""The price file: the bundled table and a user's file over it, validated, as a PriceTable."""

from __future__ import annotations

from pathlib import Path

from recon_job.modelnames import ModelNamer
from recon_job.pricing import PriceTable


def load_price_table(user_file: Path | None = None, namer: ModelNamer | None = None) -> PriceTable:
    """The bundled table; every model listed in ``user_file`` gets the user's entries instead."""
    return PriceTable.load(user_file, namer=namer)
