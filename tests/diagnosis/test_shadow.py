"""The shadow-usage rule: ids OpenAI counts that the local records never mention."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from recon_job.diagnosis.shadow import (
    IdTotals,
    LocalIds,
    Scope,
    shadow,
    shadow_alerts,
    shadow_sentence,
)
from recon_job.findings import ShadowEntry
from recon_job.models import UsageKey

DAY = date(2026, 11, 3)


def scope() -> Scope:
    """A month: 1,000 tokens and $100 in all; key_ci is 120 tokens and $41.20 of it."""
    return Scope(
        projects={
            "proj_app": IdTotals(tokens=800, requests=8, cost=Decimal("50")),
            "proj_side": IdTotals(tokens=150, requests=2, cost=Decimal("45.00")),
        },
        api_keys={
            "key_app": IdTotals(tokens=830, requests=8, cost=Decimal("53.80")),
            "key_ci": IdTotals(tokens=120, requests=2, cost=Decimal("41.20")),
            "key_idle": IdTotals(tokens=0, requests=0, cost=Decimal(0)),
        },
        users={"user_a": IdTotals(tokens=600, requests=5), "user_b": IdTotals(tokens=50)},
        total_tokens=1000,
        total_requests=10,
        total_cost=Decimal("100"),
    )


def local_of(*keys: tuple[str | None, str | None], users: tuple[str, ...] = ()) -> LocalIds:
    return LocalIds.from_keys(
        (UsageKey(DAY, "gpt-4o", project_id=p, api_key_id=k) for p, k in keys), users
    )


def test_a_key_the_logs_never_mention_is_shadow_with_its_shares_and_name() -> None:
    entries = shadow(
        scope(),
        local_of(("proj_app", "key_app"), ("proj_side", "key_app")),
        key_names={"key_ci": "ci-bot"},
    )

    assert entries == (
        ShadowEntry(
            kind="api_key",
            id="key_ci",
            name="ci-bot",
            tokens=120,
            requests=2,
            cost=Decimal("41.20"),
            token_share_pct=Decimal("12.00"),
            cost_share_pct=Decimal("41.20"),
        ),
    )
    assert shadow_sentence(entries[0], "this month's") == (
        "key `key_ci` (name 'ci-bot') that your logs never mention used 12% of this month's "
        "tokens ($41.20)"
    )


def test_entries_come_largest_share_first_across_kinds() -> None:
    entries = shadow(scope(), local_of(("proj_app", "key_app")), project_names={"proj_side": "x"})

    assert [(e.kind, e.id, e.name) for e in entries] == [
        ("project", "proj_side", "x"),  # 45% of the cost
        ("api_key", "key_ci", None),  # 41.2%
    ]


def test_when_the_logs_mention_every_id_there_is_no_shadow() -> None:
    local = local_of(("proj_app", "key_app"), ("proj_side", "key_ci"), users=("user_a", "user_b"))

    assert shadow(scope(), local) == ()


def test_a_kind_the_logs_never_name_is_not_checked() -> None:
    # Logs without project, key or user ids say nothing about them: nothing is shadow.
    assert shadow(scope(), local_of((None, None))) == ()
    # Users are checked only once the local side mentions one.
    entries = shadow(scope(), local_of(("proj_app", "key_app"), ("proj_side", "key_ci")))
    assert entries == ()
    with_users = shadow(
        scope(), local_of(("proj_app", "key_app"), ("proj_side", "key_ci"), users=("user_a",))
    )
    assert [(e.kind, e.id, e.token_share_pct, e.cost) for e in with_users] == [
        ("user", "user_b", Decimal("5.00"), None)
    ]


def test_a_null_or_unused_id_is_never_shadow() -> None:
    totals = Scope(
        api_keys={"": IdTotals(tokens=500), "key_idle": IdTotals()},
        total_tokens=1000,
    )

    assert shadow(totals, local_of(("proj_app", "key_app"))) == ()


def test_a_key_with_cost_but_no_tokens_reads_as_spend_and_names_are_made_printable() -> None:
    totals = Scope(
        api_keys={"key_img": IdTotals(cost=Decimal("7.5"))},
        total_tokens=0,
        total_cost=Decimal("30"),
    )

    (entry,) = shadow(totals, local_of((None, "key_app")), key_names={"key_img": "img\nbot\x00"})

    assert entry.token_share_pct == 0
    assert entry.cost_share_pct == Decimal("25.00")
    assert shadow_sentence(entry) == (
        "key `key_img` (name 'img bot') that your logs never mention cost 25% of the window's "
        "spend ($7.50)"
    )


def test_the_alert_takes_entries_at_or_above_the_share_and_is_off_without_one() -> None:
    entries = shadow(scope(), local_of(("proj_app", "key_app")))

    assert shadow_alerts(entries, None) == ()
    assert [e.id for e in shadow_alerts(entries, Decimal("41.2"))] == ["proj_side", "key_ci"]
    assert [e.id for e in shadow_alerts(entries, Decimal("45"))] == ["proj_side"]
    assert shadow_alerts(entries, Decimal("45.01")) == ()
