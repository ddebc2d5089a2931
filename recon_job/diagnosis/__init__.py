"""The rules that say where and why local and OpenAI figures drift (issue 12); pure.

Each module is one rule over data already fetched, with no I/O and no clock (layer 0, like
:mod:`recon_job.compare`): ``gaps`` (the UTC intervals holding a gap), ``shift`` (a constant clock
shift between the hourly series), ``bridge`` (a cost difference in named parts that add up),
``prices`` (billed unit prices against the price table), ``shadow`` (projects, keys and users the
logs never mention), ``trends`` (a CUSUM change point in a drift series), ``restatements``
(OpenAI's revisions of settled days). What they produce is
:mod:`recon_job.findings`; what fetches their inputs is :mod:`recon_job.investigate`.
"""

from __future__ import annotations

from recon_job.diagnosis.bridge import (
    PARTS,
    bridge_sentences,
    combine,
    group_bridge,
    window_bridge,
)
from recon_job.diagnosis.gaps import gap_sentence, locate, minute_spans, refine
from recon_job.diagnosis.prices import PriceCheck, check_prices, price_findings, price_sentence
from recon_job.diagnosis.restatements import (
    official_figures,
    recheck_window,
    restatement_sentence,
    restatements,
)
from recon_job.diagnosis.shadow import (
    IdTotals,
    LocalIds,
    Scope,
    shadow,
    shadow_alerts,
    shadow_sentence,
)
from recon_job.diagnosis.shift import best_shift, shift_sentence
from recon_job.diagnosis.trends import TrendRule, all_change_points, change_points, trend_sentence
from recon_job.diagnosis.words import dollars

__all__ = [
    "PARTS",
    "IdTotals",
    "LocalIds",
    "PriceCheck",
    "Scope",
    "TrendRule",
    "all_change_points",
    "best_shift",
    "bridge_sentences",
    "change_points",
    "check_prices",
    "combine",
    "dollars",
    "gap_sentence",
    "group_bridge",
    "locate",
    "minute_spans",
    "official_figures",
    "price_findings",
    "price_sentence",
    "recheck_window",
    "refine",
    "restatement_sentence",
    "restatements",
    "shadow",
    "shadow_alerts",
    "shadow_sentence",
    "shift_sentence",
    "trend_sentence",
    "window_bridge",
]
