"""fetch_scope over the fake OpenAI server: one request per endpoint, per-id totals, a budget,
and the shadow-usage scenario end to end (unknown key -> entry with its share and name)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import requests

from recon_job.diagnosis.shadow import IdTotals, LocalIds, shadow, shadow_sentence
from recon_job.models import UsageKey, Window
from recon_job.sources.openai.admin import FORBIDDEN, AdminNames
from recon_job.sources.openai.options import OpenAIOptions
from recon_job.sources.openai.scope import fetch_scope
from tests.fakeopenai import (  # noqa: F401
    FakeOpenAI,
    fake_openai_fixture,
    fast_session_fixture,
)

NOV1, NOV2 = date(2026, 11, 1), date(2026, 11, 2)
MONTH = Window("monthly", NOV1, date(2026, 12, 1))


def options(fake: FakeOpenAI, **overrides: object) -> OpenAIOptions:
    return OpenAIOptions(base_url=fake.base_url, admin_key=fake.admin_key, **overrides)  # type: ignore[arg-type]


def month_with_a_ci_key(fake: FakeOpenAI) -> None:
    """1,000 tokens and $100 in November; ``key_ci`` (proj_app) holds 120 tokens and $41.20."""
    fake.add_usage(
        NOV1, "gpt-4o", input_tokens=500, output_tokens=200, requests=7, project_id="proj_app",
        api_key_id="key_app", user_id="user_a",
    )  # fmt: skip
    fake.add_usage(
        NOV2, "gpt-4o", input_tokens=100, output_tokens=20, requests=2, project_id="proj_app",
        api_key_id="key_ci",
    )  # fmt: skip
    fake.add_usage(NOV2, "gpt-4o", input_tokens=150, output_tokens=0, requests=1)  # no project
    fake.add_family_usage(
        "embeddings", NOV2, "text-embedding-3-small", "proj_app", "key_app", None,
        input_tokens=30, num_model_requests=1,
    )  # fmt: skip
    fake.add_cost(NOV1, "gpt-4o, input", "50.00", project_id="proj_app", api_key_id="key_app")
    fake.add_cost(NOV2, "gpt-4o, input", "41.20", project_id="proj_app", api_key_id="key_ci")
    fake.add_cost(NOV2, "gpt-4o, output", "8.80", project_id=None, api_key_id=None)
    fake.add_project("proj_app", "Main app")
    fake.add_api_key("proj_app", "key_app", "web", redacted_value="sk-proj-****SECRETISH")
    fake.add_api_key("proj_app", "key_ci", "ci-bot", redacted_value="sk-proj-****SECRETISH")


def test_it_asks_each_endpoint_once_grouped_by_every_id_completions_first(
    fake_openai: FakeOpenAI, fast_session: requests.Session
) -> None:
    month_with_a_ci_key(fake_openai)

    scope = fetch_scope(options(fake_openai), fast_session, MONTH)

    paths = [r.path.rsplit("/", 1)[-1] for r in fake_openai.requests]
    assert paths == ["completions", "costs", "embeddings", "moderations"]
    assert scope.requests == 4
    assert fake_openai.requests[0].query["group_by[]"] == ["project_id", "api_key_id", "user_id"]
    assert fake_openai.requests[1].query["group_by[]"] == ["project_id", "api_key_id"]
    assert scope.api_keys["key_ci"] == IdTotals(tokens=120, requests=2, cost=Decimal("41.20"))
    assert scope.api_keys["key_app"] == IdTotals(tokens=730, requests=8, cost=Decimal("50.00"))
    assert scope.projects == {"proj_app": IdTotals(850, 10, Decimal("91.20"))}
    assert scope.users == {"user_a": IdTotals(tokens=700, requests=7, cost=None)}
    assert (scope.total_tokens, scope.total_requests, scope.total_cost) == (
        1000,
        11,
        Decimal("100.00"),
    )
    assert scope.key_projects == {"key_app": "proj_app", "key_ci": "proj_app"}
    assert scope.families == ("completions", "embeddings", "moderations")
    assert (scope.skipped, scope.error) == ((), None)


def test_it_stops_at_the_request_budget_and_says_what_it_skipped(
    fake_openai: FakeOpenAI, fast_session: requests.Session
) -> None:
    month_with_a_ci_key(fake_openai)

    scope = fetch_scope(options(fake_openai), fast_session, MONTH, max_requests=2)

    assert len(fake_openai.requests) == scope.requests == 2
    assert scope.skipped == ("embeddings: budget", "moderations: budget")
    assert scope.total_tokens == 970  # completions only
    assert scope.total_cost == Decimal("100.00")


def test_a_missing_family_endpoint_is_skipped_and_a_failure_stops_without_raising(
    fake_openai: FakeOpenAI, fast_session: requests.Session
) -> None:
    month_with_a_ci_key(fake_openai)
    fake_openai.unavailable.add("embeddings")
    fake_openai.fail_next(status=401, path="/moderations")

    scope = fetch_scope(options(fake_openai), fast_session, MONTH)

    assert scope.skipped == ("embeddings: HTTP 404", "moderations: unauthorized")
    assert scope.requests == len(fake_openai.requests) == 4
    assert scope.error is not None
    assert fake_openai.admin_key not in scope.error
    assert scope.api_keys["key_ci"].tokens == 120


def test_a_key_the_logs_never_mention_is_shadow_usage_with_its_share_and_name(
    fake_openai: FakeOpenAI, fast_session: requests.Session
) -> None:
    month_with_a_ci_key(fake_openai)
    opts = options(fake_openai)
    scope = fetch_scope(opts, fast_session, MONTH, max_requests=2)
    local = LocalIds.from_keys([UsageKey(NOV1, "gpt-4o", "proj_app", "key_app")])
    unknown = [k for k in scope.api_keys if k not in local.api_keys]

    names = AdminNames(opts, fast_session).names([], unknown, scope.key_projects)
    entries = shadow(scope, local, key_names=names.api_keys)

    assert [(e.kind, e.id, e.name, e.token_share_pct, e.cost_share_pct) for e in entries] == [
        ("api_key", "key_ci", "ci-bot", Decimal("12.37"), Decimal("41.20"))
    ]
    assert names.requests == 1
    sentence = shadow_sentence(entries[0], "this month's")
    assert sentence == (
        "key `key_ci` (name 'ci-bot') that your logs never mention used 12% of this month's "
        "tokens ($41.20)"
    )
    assert "SECRETISH" not in repr(names) + repr(entries)


def test_when_key_names_are_forbidden_the_entry_has_its_id_only(
    fake_openai: FakeOpenAI, fast_session: requests.Session
) -> None:
    month_with_a_ci_key(fake_openai)
    opts = options(fake_openai)
    scope = fetch_scope(opts, fast_session, MONTH)
    fake_openai.fail_next(status=403, path="/api_keys")
    local = LocalIds.from_keys([UsageKey(NOV1, "gpt-4o", "proj_app", "key_app")])

    names = AdminNames(opts, fast_session).names([], ["key_ci"], scope.key_projects)
    entries = shadow(scope, local, key_names=names.api_keys)

    assert (names.api_keys, names.missing) == ({}, FORBIDDEN)
    assert [(e.id, e.name, e.token_share_pct) for e in entries] == [
        ("key_ci", None, Decimal("12.00"))
    ]
    assert shadow_sentence(entries[0]).startswith("key `key_ci` that your logs never mention")


def test_when_the_logs_mention_every_id_nothing_is_shadow(
    fake_openai: FakeOpenAI, fast_session: requests.Session
) -> None:
    month_with_a_ci_key(fake_openai)
    scope = fetch_scope(options(fake_openai), fast_session, MONTH)
    local = LocalIds.from_keys(
        [
            UsageKey(NOV1, "gpt-4o", "proj_app", "key_app"),
            UsageKey(NOV2, "gpt-4o", "proj_app", "key_ci"),
        ],
        users=["user_a"],
    )

    assert shadow(scope, local) == ()
