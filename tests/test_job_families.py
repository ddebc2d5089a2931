"""A run over every usage family: OpenAI's side from the fake server (every family endpoint and
the Costs API, over real HTTP), the local side a stub that logs what the app would; usage and
costs meet by family and model, and a family billed without a model meets as a whole."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from recon_job import job, windows, wiring
from recon_job.config import load_settings
from recon_job.families import FAMILIES
from recon_job.job import RunControl
from recon_job.models import RunOutcome, Status, Usage, UsageKey, UsageTotals
from recon_job.store import HistoryStore
from tests.fakeopenai import FakeOpenAI, fake_openai_fixture  # noqa: F401
from tests.test_job import Stub

DAY = date(2026, 8, 1)
NOW = datetime(2026, 8, 5, 6, 0, tzinfo=UTC)
D = Decimal

#: Line item -> USD billed on DAY (reference §1.8's shapes, one or more per family).
BILL = {
    "gpt-4o-2024-08-06, input": D("0.00175"),
    "gpt-4o-2024-08-06, cached input": D("0.000375"),
    "gpt-4o-2024-08-06, output": D("0.005"),
    "text-embedding-3-small, input": D("0.02"),
    "omni-moderation-latest, input": D(0),
    "gpt-image-1 image, output": D("0.12"),
    "tts-1, characters": D("0.0675"),
    "whisper-1, audio": D("0.061"),
    "Vector storage": D("0.01"),
    "code interpreter sessions": D("0.06"),
    "file search tool calls": D("0.0175"),
    "web search tool calls": D("0.09"),
}
#: What the app logged, per family (models as apps log them: aliases, product names).
LOGGED = {
    UsageKey(DAY, "gpt-4o"): Usage(
        input_tokens=1000,
        cached_tokens=300,
        output_tokens=500,
        requests=5,
        input_audio_tokens=50,
        output_audio_tokens=60,
        cost=D("0.007125"),
    ),
    UsageKey(DAY, "text-embedding-3-small", family="embeddings"): Usage(
        input_tokens=1_000_000, requests=1, cost=D("0.02")
    ),
    UsageKey(DAY, "omni-moderation-latest", family="moderations"): Usage(
        input_tokens=70, requests=2
    ),
    UsageKey(DAY, "gpt-image-1", family="images"): Usage(images=3, requests=2, cost=D("0.12")),
    UsageKey(DAY, "tts-1", family="audio_speeches"): Usage(
        characters=4500, requests=3, cost=D("0.0675")
    ),
    UsageKey(DAY, "whisper-1", family="audio_transcriptions"): Usage(
        seconds=610, requests=4, cost=D("0.061")
    ),
    UsageKey(DAY, "vector-storage", family="vector_stores"): Usage(
        usage_bytes=5_000_000, cost=D("0.01")
    ),
    UsageKey(DAY, "code-interpreter", family="code_interpreter_sessions"): Usage(
        sessions=2, cost=D("0.06")
    ),
    UsageKey(DAY, "file-search", family="file_search_calls"): Usage(calls=7, cost=D("0.0175")),
    # Logged under the model that searched; OpenAI bills "web search tool calls" without one.
    UsageKey(DAY, "gpt-4o", family="web_search_calls"): Usage(calls=9, requests=6, cost=D("0.09")),
}


def openai_world(fake: FakeOpenAI) -> None:
    fake.add_usage(
        DAY,
        "gpt-4o-2024-08-06",
        input_tokens=1000,
        cached_tokens=300,
        output_tokens=500,
        requests=5,
        input_audio_tokens=50,
        output_audio_tokens=60,
    )
    fake.add_family_usage(
        "embeddings", DAY, "text-embedding-3-small", input_tokens=1_000_000, num_model_requests=1
    )
    fake.add_family_usage(
        "moderations", DAY, "omni-moderation-latest", input_tokens=70, num_model_requests=2
    )
    fake.add_family_usage("images", DAY, "gpt-image-1", images=3, num_model_requests=2)
    fake.add_family_usage("audio_speeches", DAY, "tts-1", characters=4500, num_model_requests=3)
    fake.add_family_usage(
        "audio_transcriptions", DAY, "whisper-1", seconds=610, num_model_requests=4
    )
    fake.add_family_usage("vector_stores", DAY, usage_bytes=5_000_000)
    fake.add_family_usage("code_interpreter_sessions", DAY, num_sessions=2)
    fake.add_family_usage("file_search_calls", DAY, num_requests=7)
    fake.add_family_usage(
        "web_search_calls", DAY, "gpt-4o-2024-08-06", num_requests=9, num_model_requests=6
    )
    for item, amount in BILL.items():
        fake.add_cost(DAY, item, str(amount))


@pytest.fixture
def store() -> Iterator[HistoryStore]:
    history = HistoryStore("sqlite://")
    yield history
    history.close()


def run(
    fake: FakeOpenAI, store: HistoryStore, local: dict[UsageKey, Usage], **env: str
) -> RunOutcome:
    settings = load_settings(
        environ={"OPENAI_ADMIN_KEY": fake.admin_key, "OPENAI_BASE_URL": fake.base_url, **env}
    )
    sources = job.Sources(
        local=(("logs", Stub(UsageTotals(groups=local))),),
        official=wiring.api_sources(settings),
    )
    deps = wiring.deps(
        settings, store, RunControl(lambda: NOW), wiring.Overrides(sources=sources, channels={})
    )
    return job.run_once(deps, windows.daily(DAY), NOW)


def test_every_family_logged_reconciles_exactly(
    fake_openai: FakeOpenAI, store: HistoryStore
) -> None:
    openai_world(fake_openai)
    outcome = run(fake_openai, store, LOGGED)
    result = outcome.result
    assert result is not None
    assert result.status is Status.RECONCILED, [
        (g.key, g.comparison) for g in result.groups if g.status is not Status.RECONCILED
    ]
    assert {g.key.family for g in result.groups} == set(FAMILIES)
    assert all(g.local == g.openai for g in result.groups)
    web = next(g for g in result.groups if g.key.family == "web_search_calls")
    # Compared as a whole: the bill names no model, so neither side keeps one.
    assert web.key.model == "web-search"
    assert web.openai == Usage(calls=9, requests=6, cost=D("0.09"))
    assert result.openai.cost == sum(BILL.values())
    assert result.untracked == {}
    assert result.unavailable_families == ()


def test_a_family_missing_locally_is_untracked_and_the_rest_still_reconcile(
    fake_openai: FakeOpenAI, store: HistoryStore
) -> None:
    openai_world(fake_openai)
    local = {k: u for k, u in LOGGED.items() if k.family != "embeddings"}
    result = run(fake_openai, store, local).result
    assert result is not None
    assert result.status is Status.RECONCILED
    assert result.untracked == {
        "embeddings": Usage(input_tokens=1_000_000, requests=1, cost=D("0.02"))
    }
    assert result.openai.cost == sum(BILL.values()) - D("0.02")


def test_a_family_the_deployment_lacks_is_reported_with_the_result(
    fake_openai: FakeOpenAI, store: HistoryStore
) -> None:
    openai_world(fake_openai)
    fake_openai.unavailable = {"file_search_calls"}
    result = run(fake_openai, store, LOGGED).result
    assert result is not None
    assert result.unavailable_families == ("file_search_calls",)
    # Its dollars still come from the Costs API; only the calls count is unknown.
    search = next(g for g in result.groups if g.key.family == "file_search_calls")
    assert search.openai == Usage(cost=D("0.0175"))
    assert search.comparison.cost.difference == 0


def test_reconcile_untracked_mismatch_fails_the_window_from_the_settings(
    fake_openai: FakeOpenAI, store: HistoryStore
) -> None:
    openai_world(fake_openai)
    local = {k: u for k, u in LOGGED.items() if k.family != "embeddings"}
    outcome = run(fake_openai, store, local, RECON_RECONCILE__UNTRACKED="mismatch")
    assert outcome.result is not None
    assert outcome.result.status is Status.MISMATCH
    assert list(outcome.result.untracked) == ["embeddings"]
    assert outcome.result.mismatches == ()  # no tracked group drifts: the untracked family fails it
    (record,) = store.list_runs()
    assert str(record.status) == "mismatch"


def test_reconcile_families_limits_the_comparison_from_the_settings(
    fake_openai: FakeOpenAI, store: HistoryStore
) -> None:
    openai_world(fake_openai)
    # Images drift and embeddings are not logged, but only completions and speech are compared.
    local = {k: u for k, u in LOGGED.items() if k.family != "embeddings"}
    local[UsageKey(DAY, "gpt-image-1", family="images")] = Usage(images=30, cost=D("1.20"))
    outcome = run(
        fake_openai,
        store,
        local,
        RECON_RECONCILE__FAMILIES='["completions", "audio_speeches"]',
        RECON_RECONCILE__UNTRACKED="mismatch",
    )
    result = outcome.result
    assert result is not None
    assert result.status is Status.RECONCILED
    assert {g.key.family for g in result.groups} == {"completions", "audio_speeches"}
    assert result.untracked == {}
