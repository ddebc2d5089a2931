"""Every usage family from its own endpoint, over real HTTP against the fake OpenAI server.

The fake knows each endpoint's spec (``tests.fakeopenai.ENDPOINTS``: its group-by enum and its
filters) independently of recon-job's table, and answers a value it does not accept with 400,
as OpenAI does; so these tests check what recon-job asks as much as what it reads.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import requests

from recon_job import wiring
from recon_job.config import load_settings
from recon_job.errors import UsageApiError
from recon_job.families import FAMILIES
from recon_job.job import merge
from recon_job.models import Usage, UsageKey, UsageTotals, Window
from recon_job.sources.base import UsageSource
from recon_job.sources.openai import OpenAICostsSource, OpenAIOptions, OpenAIUsageSource
from tests.fakeopenai import (  # noqa: F401
    ENDPOINTS,
    FakeOpenAI,
    fake_openai_fixture,
    fast_session_fixture,
)

AUG1, AUG2 = date(2026, 8, 1), date(2026, 8, 2)
AUGUST = Window("monthly", AUG1, date(2026, 9, 1))
BY_ALL = ("model", "project_id", "api_key_id")


def options(fake: FakeOpenAI, **overrides: Any) -> OpenAIOptions:
    values: dict[str, Any] = {
        "base_url": fake.base_url,
        "admin_key": fake.admin_key,
        "read_timeout": 2.0,
        "connect_timeout": 2.0,
        "group_by": BY_ALL,
    }
    values.update(overrides)
    return OpenAIOptions(**values)


def fetch(source: UsageSource, window: Window = AUGUST) -> UsageTotals:
    return source.fetch(window)


def add_every_family(fake: FakeOpenAI, day: date = AUG1) -> None:
    """One day of usage in every family, from project p1 and key k1 (as the spec shapes them)."""
    fake.add_usage(
        day,
        "gpt-4o-2024-08-06",
        input_tokens=1000,
        cached_tokens=300,
        cache_write_tokens=100,
        input_audio_tokens=50,
        cached_audio_tokens=20,
        input_image_tokens=40,
        output_tokens=500,
        output_audio_tokens=60,
        requests=5,
        project_id="p1",
        api_key_id="k1",
    )
    common = {"project_id": "p1", "api_key_id": "k1"}
    fake.add_family_usage(
        "embeddings",
        day,
        "text-embedding-3-small",
        input_tokens=1_000_000,
        num_model_requests=1,
        **common,
    )
    fake.add_family_usage(
        "moderations",
        day,
        "omni-moderation-latest",
        input_tokens=70,
        num_model_requests=2,
        **common,
    )
    fake.add_family_usage(
        "images",
        day,
        "gpt-image-1",
        images=3,
        num_model_requests=2,
        size="1024x1024",
        source="image.generation",
        **common,
    )
    fake.add_family_usage(
        "audio_speeches", day, "tts-1", characters=4500, num_model_requests=3, **common
    )
    fake.add_family_usage(
        "audio_transcriptions", day, "whisper-1", seconds=610, num_model_requests=4, **common
    )
    fake.add_family_usage("vector_stores", day, usage_bytes=5_000_000, project_id="p1")
    fake.add_family_usage("code_interpreter_sessions", day, num_sessions=2, project_id="p1")
    fake.add_family_usage(
        "file_search_calls", day, num_requests=7, vector_store_id="vs_1", **common
    )
    fake.add_family_usage(
        "web_search_calls",
        day,
        "gpt-4o-2024-08-06",
        num_requests=9,
        num_model_requests=6,
        context_level="medium",
        **common,
    )


#: What :func:`add_every_family` reports per family, grouped by model, project and key.
EXPECTED = {
    UsageKey(AUG1, "gpt-4o-2024-08-06", "p1", "k1"): Usage(
        input_tokens=1000,
        cached_tokens=300,
        cache_write_tokens=100,
        input_audio_tokens=50,
        cached_audio_tokens=20,
        input_image_tokens=40,
        output_tokens=500,
        output_audio_tokens=60,
        requests=5,
    ),
    UsageKey(AUG1, "text-embedding-3-small", "p1", "k1", "embeddings"): Usage(
        input_tokens=1_000_000, requests=1
    ),
    UsageKey(AUG1, "omni-moderation-latest", "p1", "k1", "moderations"): Usage(
        input_tokens=70, requests=2
    ),
    UsageKey(AUG1, "gpt-image-1", "p1", "k1", "images"): Usage(images=3, requests=2),
    UsageKey(AUG1, "tts-1", "p1", "k1", "audio_speeches"): Usage(characters=4500, requests=3),
    UsageKey(AUG1, "whisper-1", "p1", "k1", "audio_transcriptions"): Usage(seconds=610, requests=4),
    UsageKey(AUG1, "vector-storage", "p1", None, "vector_stores"): Usage(usage_bytes=5_000_000),
    UsageKey(AUG1, "code-interpreter", "p1", None, "code_interpreter_sessions"): Usage(sessions=2),
    UsageKey(AUG1, "file-search", "p1", "k1", "file_search_calls"): Usage(calls=7),
    UsageKey(AUG1, "gpt-4o-2024-08-06", "p1", "k1", "web_search_calls"): Usage(calls=9, requests=6),
}
#: The group_by[] each endpoint must be asked for when model, project and key are configured.
ASKED = {
    "completions": ["model", "project_id", "api_key_id"],
    "embeddings": ["model", "project_id", "api_key_id"],
    "moderations": ["model", "project_id", "api_key_id"],
    "images": ["model", "project_id", "api_key_id"],
    "audio_speeches": ["model", "project_id", "api_key_id"],
    "audio_transcriptions": ["model", "project_id", "api_key_id"],
    "vector_stores": ["project_id"],
    "code_interpreter_sessions": ["project_id"],
    "file_search_calls": ["project_id", "api_key_id"],
    "web_search_calls": ["model", "project_id", "api_key_id"],
    "costs": ["line_item", "project_id", "api_key_id"],
}


def settings_for(fake: FakeOpenAI, **env: str) -> Any:
    return load_settings(
        environ={
            "OPENAI_ADMIN_KEY": fake.admin_key,
            "OPENAI_BASE_URL": fake.base_url,
            "RECON_GROUP_BY": ",".join(BY_ALL),
            "RECON_OPENAI__MAX_RETRIES": "1",
            **env,
        }
    )


class TestEveryFamily:
    def test_a_month_of_every_family_is_one_request_per_endpoint_and_one_for_costs(
        self, fake_openai: FakeOpenAI
    ) -> None:
        add_every_family(fake_openai)
        fake_openai.add_cost(AUG1, "gpt-4o-2024-08-06, input", "0.5", project_id="p1")
        sources = wiring.api_sources(settings_for(fake_openai))
        totals = merge([fetch(source) for source in sources])

        paths = [r.path for r in fake_openai.requests]
        assert paths == [ENDPOINTS[f].path for f in (*FAMILIES, "costs")]
        for request in fake_openai.requests:
            family = next(f for f, e in ENDPOINTS.items() if e.path == request.path)
            assert request.query["group_by[]"] == ASKED[family], family
            assert request.param("start_time") == "1785542400"  # 2026-08-01T00:00:00Z
            assert request.param("end_time") == "1788220800"  # 2026-09-01T00:00:00Z, exclusive
            assert request.param("bucket_width") == "1d"
            assert request.param("limit") == ("180" if family == "costs" else "31")
        usage = {k: u for k, u in totals.groups.items() if not u.cost}
        assert usage == EXPECTED
        assert totals.unavailable_families == ()

    def test_each_family_reads_its_fields_and_counts_its_pages(
        self, fake_openai: FakeOpenAI, fast_session: requests.Session
    ) -> None:
        add_every_family(fake_openai)
        for family in FAMILIES:
            source = OpenAIUsageSource(options(fake_openai), fast_session, family=family)
            totals = fetch(source, Window("daily", AUG1, AUG2))
            expected = {k: u for k, u in EXPECTED.items() if k.family == family}
            assert totals.groups == expected, family
            prefix = "usage" if family == "completions" else f"usage_{family}"
            assert totals.info[f"{prefix}_pages"] == 1
            assert totals.info[f"{prefix}_results"] == 1

    def test_only_the_grouping_that_is_configured_is_asked_for(
        self, fake_openai: FakeOpenAI, fast_session: requests.Session
    ) -> None:
        add_every_family(fake_openai)
        for family in FAMILIES:
            source = OpenAIUsageSource(
                options(fake_openai, group_by=("model",)), fast_session, family=family
            )
            totals = fetch(source)
            (key,) = totals.groups
            assert (key.project_id, key.api_key_id, key.family) == (None, None, family)
        asked = [r.query.get("group_by[]") for r in fake_openai.requests]
        by_model = [f for f in FAMILIES if "model" in ENDPOINTS[f].group_by]
        assert asked == [["model"] if f in by_model else None for f in FAMILIES]

    def test_a_long_window_pages_every_family_on_its_own(
        self, fake_openai: FakeOpenAI, fast_session: requests.Session
    ) -> None:
        window = Window("range", date(2026, 7, 1), date(2026, 8, 10))  # 40 days: 2 pages each
        add_every_family(fake_openai, date(2026, 7, 1))
        add_every_family(fake_openai, date(2026, 8, 9))
        for family in ("embeddings", "vector_stores"):
            source = OpenAIUsageSource(options(fake_openai), fast_session, family=family)
            totals = fetch(source, window)
            assert {k.day for k in totals.groups} == {date(2026, 7, 1), date(2026, 8, 9)}
        assert len(fake_openai.requests) == 4
        assert [r.param("page") is not None for r in fake_openai.requests] == [
            False,
            True,
            False,
            True,
        ]

    def test_vector_storage_is_a_level_per_day_never_summed_over_days(
        self, fake_openai: FakeOpenAI, fast_session: requests.Session
    ) -> None:
        fake_openai.add_family_usage("vector_stores", AUG1, usage_bytes=4_000, project_id="p1")
        fake_openai.add_family_usage("vector_stores", AUG1, usage_bytes=1_000, project_id="p2")
        fake_openai.add_family_usage("vector_stores", AUG2, usage_bytes=7_000, project_id="p1")
        source = OpenAIUsageSource(
            options(fake_openai, group_by=("model",)), fast_session, family="vector_stores"
        )
        totals = fetch(source)
        assert {k.day: u.usage_bytes for k, u in totals.groups.items()} == {
            AUG1: 5_000,
            AUG2: 7_000,
        }
        assert totals.total.usage_bytes == 7_000  # the last day's level


class TestUnavailableFamilies:
    def test_a_family_the_endpoint_does_not_know_is_reported_not_fatal(
        self, fake_openai: FakeOpenAI
    ) -> None:
        add_every_family(fake_openai)
        fake_openai.unavailable = {"file_search_calls", "web_search_calls"}
        sources = wiring.api_sources(settings_for(fake_openai))
        totals = merge([fetch(source) for source in sources])
        assert totals.unavailable_families == ("file_search_calls", "web_search_calls")
        families = {k.family for k in totals.groups}
        assert families == set(FAMILIES) - {"file_search_calls", "web_search_calls"}
        # Asked once each: a 404 is not retried.
        assert len(fake_openai.requests) == len(FAMILIES) + 1

    def test_a_404_from_completions_means_a_wrong_base_url_and_fails(
        self, fake_openai: FakeOpenAI, fast_session: requests.Session
    ) -> None:
        fake_openai.unavailable = {"completions"}
        source = OpenAIUsageSource(options(fake_openai), fast_session)
        with pytest.raises(UsageApiError) as info:
            fetch(source)
        assert (info.value.reason, info.value.status) == ("http_404", 404)

    def test_a_404_from_the_costs_api_fails_too(
        self, fake_openai: FakeOpenAI, fast_session: requests.Session
    ) -> None:
        fake_openai.unavailable = {"costs"}
        with pytest.raises(UsageApiError) as info:
            fetch(OpenAICostsSource(options(fake_openai), fast_session))
        assert info.value.status == 404

    @pytest.mark.parametrize(("status", "reason"), [(500, "server_error"), (400, "http_400")])
    def test_any_other_failure_of_a_family_endpoint_stays_fatal(
        self, fake_openai: FakeOpenAI, fast_session: requests.Session, status: int, reason: str
    ) -> None:
        fake_openai.fail_next(3, status, path="/usage/images")
        source = OpenAIUsageSource(options(fake_openai), fast_session, family="images")
        with pytest.raises(UsageApiError) as info:
            fetch(source)
        assert info.value.reason == reason
        assert "OpenAI Usage (images) API" in str(info.value)

    def test_an_api_key_filter_leaves_out_the_families_that_cannot_apply_it(
        self, fake_openai: FakeOpenAI
    ) -> None:
        add_every_family(fake_openai)
        sources = wiring.api_sources(settings_for(fake_openai, RECON_API_KEY_IDS="k1"))
        totals = merge([fetch(source) for source in sources])
        assert totals.unavailable_families == ("vector_stores", "code_interpreter_sessions")
        asked = {r.path: r.query.get("api_key_ids[]") for r in fake_openai.requests}
        assert ENDPOINTS["vector_stores"].path not in asked
        assert ENDPOINTS["code_interpreter_sessions"].path not in asked
        assert set(map(tuple, filter(None, asked.values()))) == {("k1",)}
        assert len(asked) == len(FAMILIES) - 2 + 1


class TestFieldSets:
    @pytest.mark.parametrize("field_set", ["new", "audio", "launch"])
    def test_every_field_set_gives_the_same_totals_and_no_token_twice(
        self, fake_openai: FakeOpenAI, fast_session: requests.Session, field_set: str
    ) -> None:
        add_every_family(fake_openai)
        fake_openai.field_set = field_set
        totals = fetch(OpenAIUsageSource(options(fake_openai), fast_session))
        (usage,) = totals.groups.values()
        new = EXPECTED[UsageKey(AUG1, "gpt-4o-2024-08-06", "p1", "k1")]
        assert (usage.input_tokens, usage.cached_tokens, usage.output_tokens) == (1000, 300, 500)
        assert usage.requests == 5
        if field_set == "new":
            assert usage == new
        elif field_set == "audio":
            # All 70 audio input tokens are kept; the old field set cannot say which were
            # cached, so none is assumed cached while the uncached input can hold them.
            assert (usage.input_audio_tokens, usage.cached_audio_tokens) == (70, 0)
            assert usage.output_audio_tokens == 60
            assert usage.cache_write_tokens == 0  # not in that field set: counted as uncached
        else:
            assert usage == Usage(
                input_tokens=1000, cached_tokens=300, output_tokens=500, requests=5
            )
        assert "usage_inconsistent_results" not in totals.info


class TestCostsByFamily:
    def test_every_real_line_item_lands_in_its_family_and_the_unknown_in_other(
        self, fake_openai: FakeOpenAI, fast_session: requests.Session
    ) -> None:
        items = {
            "gpt-4o-2024-08-06, input": ("completions", "gpt-4o-2024-08-06"),
            "gpt-4o-2024-08-06, cached input": ("completions", "gpt-4o-2024-08-06"),
            "priority | gpt-4o-2024-08-06, output, long context": (
                "completions",
                "gpt-4o-2024-08-06",
            ),
            "gpt-audio-mini-2025-12-15 audio, input": ("completions", "gpt-audio-mini-2025-12-15"),
            "text-embedding-3-small, input": ("embeddings", "text-embedding-3-small"),
            "gpt-image-1 image, output": ("images", "gpt-image-1"),
            "tts-1, characters": ("audio_speeches", "tts-1"),
            "whisper-1, audio": ("audio_transcriptions", "whisper-1"),
            "Vector storage": ("vector_stores", "vector-storage"),
            "code interpreter sessions": ("code_interpreter_sessions", "code-interpreter"),
            "file search tool calls": ("file_search_calls", "file-search"),
            "web search tool calls": ("web_search_calls", "web-search"),
            "Sora video seconds": ("other", "Sora video seconds"),
        }
        for item in items:
            fake_openai.add_cost(AUG1, item, "0.25", project_id="p1")
        totals = fetch(OpenAICostsSource(options(fake_openai), fast_session))
        expected: dict[UsageKey, Usage] = {}
        for family, model in items.values():
            key = UsageKey(AUG1, model, "p1", None, family)
            expected[key] = expected.get(key, Usage()) + Usage(cost=Decimal("0.25"))
        assert totals.groups == expected
        assert totals.info["costs_unparsed_line_items"] == 1
        assert totals.total.cost == Decimal("0.25") * len(items)  # never a cent dropped

    def test_the_users_patterns_come_first(
        self, fake_openai: FakeOpenAI, fast_session: requests.Session
    ) -> None:
        fake_openai.add_cost(AUG1, "Sora video seconds", "1.5")
        fake_openai.add_cost(AUG1, "Text tokens", "2")
        patterns = ((r"^(?P<model>sora)\b", "images"), ("^Text tokens$", "embeddings"))
        opts = options(fake_openai, group_by=("model",), line_items=patterns)
        totals = fetch(OpenAICostsSource(opts, fast_session))
        assert totals.groups == {
            UsageKey(AUG1, "Sora", family="images"): Usage(cost=Decimal("1.5")),
            UsageKey(AUG1, "(embeddings)", family="embeddings"): Usage(cost=Decimal(2)),
        }


class TestFamiliesSetting:
    def test_only_the_chosen_families_are_fetched(self, fake_openai: FakeOpenAI) -> None:
        sources = wiring.api_sources(
            settings_for(fake_openai, RECON_FAMILIES="web_search_calls,embeddings")
        )
        for source in sources:
            fetch(source)
        assert [r.path for r in fake_openai.requests] == [
            ENDPOINTS["embeddings"].path,
            ENDPOINTS["web_search_calls"].path,
            ENDPOINTS["costs"].path,
        ]

    def test_the_line_item_patterns_reach_the_costs_source(self, fake_openai: FakeOpenAI) -> None:
        settings = settings_for(
            fake_openai, RECON_FAMILIES="completions", RECON_FAMILIES__LINE_ITEMS='{"^x": "images"}'
        )
        *_, costs = wiring.api_sources(settings)
        assert isinstance(costs, OpenAICostsSource)
        assert costs.options.line_items == (("^x", "images"),)
