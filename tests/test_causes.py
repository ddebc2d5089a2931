"""Tests of the likely causes (recon_job.causes): pure rules over a result, no server, no clock.

Issue 9 item 29: a model logged under a deployment name says which ``[models.aliases]`` line to
add (not "add it to your pricing file"), and the causes never contradict each other (requests
listed both as missing and as extra when the only problem is naming). Items 5 and 6: unpriced
usage says which tier, or which snapshot, lacks a price.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from recon_job.causes import likely_causes, unpriced_hints
from recon_job.compare import reconcile
from recon_job.models import (
    ReconResult,
    Tolerance,
    UnpricedKey,
    Usage,
    UsageKey,
    UsageTotals,
    Window,
)

D1 = date(2026, 3, 14)
D2 = D1 + timedelta(days=1)
WINDOW = Window("range", D1, D1 + timedelta(days=2))
Side = dict[tuple[date, str], Usage]


def usage(requests: int, cost: str = "0", tokens_per_request: int = 1000) -> Usage:
    tokens = requests * tokens_per_request
    return Usage(tokens, 0, tokens // 4, requests, Decimal(cost))


def result(
    local: Side, openai: Side, unpriced: dict[UnpricedKey, Usage] | None = None
) -> ReconResult:
    return reconcile(
        UsageTotals(
            groups={UsageKey(day, model): u for (day, model), u in local.items()},
            unpriced=unpriced or {},
        ),
        UsageTotals(groups={UsageKey(day, model): u for (day, model), u in openai.items()}),
        window=WINDOW,
        tolerance=Tolerance(),
    )


ALIAS_CAUSE = (
    "Model prod-4o appears only in your logs and gpt-4o only at OpenAI, on the same days "
    "(2026-03-14) — if prod-4o is your deployment name for gpt-4o, map it in your settings: "
    '[models.aliases] "prod-4o" = "gpt-4o" (that also prices it as gpt-4o).'
)


# --- naming (item 29) ---------------------------------------------------------------------------


def test_a_deployment_name_only_in_the_logs_asks_for_the_alias_line_not_a_price() -> None:
    deployment = UnpricedKey("prod-4o", "standard")
    drift = result(
        {(D1, "prod-4o"): usage(38)},
        {(D1, "gpt-4o"): usage(38, "0.95")},
        unpriced={deployment: usage(38)},
    )

    causes = likely_causes(drift)

    # Not "38 requests … not in your logs" AND "38 more requests in your logs", not two
    # one-sided models, not "add a price to your pricing file": one model, two names.
    assert causes == [ALIAS_CAUSE]
    assert unpriced_hints(drift) == {
        deployment: 'if it is your deployment name for gpt-4o, add "prod-4o" = "gpt-4o" under '
        "[models.aliases] in your settings"
    }


def test_requests_are_netted_per_day_and_a_same_day_offset_is_named_as_attribution() -> None:
    # prod-4o is logged while OpenAI counts those 38 requests under gpt-4o, which both sides
    # also know: nothing is missing or extra on the day.
    drift = result(
        {(D1, "prod-4o"): usage(38), (D1, "gpt-4o"): usage(100)},
        {(D1, "gpt-4o"): usage(138)},
    )

    causes = likely_causes(drift)

    assert not any("not in your logs" in c or "more requests in your logs" in c for c in causes)
    assert causes[0] == (
        "38 requests are counted under a different model, project or API key in your logs than "
        "at OpenAI on the same days — check [models.aliases] in your settings and how your "
        "logger records the project and key."
    )


def test_gaps_on_different_days_are_reported_as_they_are() -> None:
    drift = result({(D1, "mine"): usage(38)}, {(D2, "theirs"): usage(20)})

    causes = likely_causes(drift)

    assert causes == [
        "20 requests OpenAI counted are not in your logs — retries, timeouts or traffic that "
        "bypasses the logger.",
        "38 more requests in your logs than OpenAI counted — duplicated log lines, requests "
        "that never reached OpenAI, or logs from outside the window.",
        "Model mine appears only in your logs (a name the alias map does not cover, another "
        "organization or project, or traffic OpenAI never billed).",
        "Model theirs appears only at OpenAI (unlogged traffic, a new model, or a name the "
        "alias map does not cover).",
    ]


def test_each_deployment_name_is_paired_with_the_closest_model_of_its_days() -> None:
    drift = result(
        {(D1, "prod-mini"): usage(500), (D1, "prod-4o"): usage(40)},
        {(D1, "gpt-4o-mini"): usage(498), (D1, "gpt-4o"): usage(41)},
    )

    causes = likely_causes(drift)

    assert [c.split(" — ")[1] for c in causes] == [
        "if prod-4o is your deployment name for gpt-4o, map it in your settings: "
        '[models.aliases] "prod-4o" = "gpt-4o".',
        "if prod-mini is your deployment name for gpt-4o-mini, map it in your settings: "
        '[models.aliases] "prod-mini" = "gpt-4o-mini".',
    ]


# --- tiers and snapshots (items 5 and 6) ---------------------------------------------------------


def test_a_priced_models_unpriced_flex_usage_names_the_missing_tier() -> None:
    flex = UnpricedKey("gpt-4o", "flex")
    # Tokens match; the local cost lacks the flex usage, which has no price.
    drift = result(
        {(D1, "gpt-4o"): usage(100, "1.00")},
        {(D1, "gpt-4o"): usage(100, "1.50")},
        {flex: usage(40)},
    )

    causes = likely_causes(drift)

    assert causes == [
        "No flex price for gpt-4o: that usage's cost is not counted on your side — add flex rates "
        "(flex = { input = …, output = … }) to its entry in your pricing file."
    ]
    assert unpriced_hints(drift) == {
        flex: "add flex rates (flex = { input = …, output = … }) to its entry in your pricing file"
    }


def test_an_unpriced_snapshot_asks_for_its_own_entries_or_a_snapshots_line() -> None:
    snapshot = UnpricedKey("gpt-4o-2025-12-01", "standard")
    same = usage(10, "1")
    drift = result({(D1, "gpt-4o"): same}, {(D1, "gpt-4o"): same}, {snapshot: usage(10)})

    assert likely_causes(drift) == [
        "No price for snapshot gpt-4o-2025-12-01: its cost is not counted on your side — add "
        '[[models."gpt-4o-2025-12-01"]] entries to your pricing file, or the line '
        '"gpt-4o-2025-12-01" = "gpt-4o" under [snapshots] if it is billed at gpt-4o\'s price.'
    ]


def test_unpriced_usage_is_grouped_by_what_to_add() -> None:
    same = usage(10, "1")
    unpriced = {
        UnpricedKey("new-a", "standard"): usage(1),
        UnpricedKey("new-a", "flex"): usage(1),
        UnpricedKey("new-b", "batch"): usage(1),
        UnpricedKey("gpt-5-nano", "priority"): usage(1),
        UnpricedKey("o3", "priority"): usage(1),
        UnpricedKey("old-model", None): usage(1),  # a run stored before tiers were recorded
    }

    causes = likely_causes(result({(D1, "m"): same}, {(D1, "m"): same}, unpriced))

    assert causes == [
        "No price for new-a, old-model: their cost is not counted on your side — add a price "
        "to your pricing file.",
        "No batch price for new-b: that usage's cost is not counted on your side — add batch "
        "rates (batch = { input = …, output = … }) to its entry in your pricing file, or the "
        "rates the batch discount applies to.",
        "No priority price for gpt-5-nano, o3: that usage's cost is not counted on your side — "
        "add priority rates (priority = { input = …, output = … }) to their entries in your "
        "pricing file.",
    ]
