"""The series cache: points stored exactly (Decimal cost, other families' quantities), one row per
family x width x span, and a second fetch through SeriesFetcher that never asks OpenAI."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import requests

from recon_job.models import Usage
from recon_job.sources.openai.options import OpenAIOptions
from recon_job.sources.openai.series import SeriesFetcher, SeriesPoint
from recon_job.store import HistoryStore
from tests.fakeopenai import (  # noqa: F401
    FakeOpenAI,
    fake_openai_fixture,
    fast_session_fixture,
)

MIDNIGHT = datetime(2026, 2, 3, tzinfo=UTC)
NOW = datetime(2026, 2, 10, 6, tzinfo=UTC)
POINTS = [
    SeriesPoint(
        MIDNIGHT + timedelta(hours=14),
        "gpt-4o-2024-08-06",
        "proj_a",
        Usage(
            input_tokens=12,
            cached_tokens=2,
            output_tokens=3,
            requests=1,
            cost=Decimal("0.0000340000001"),
        ),
    ),
    SeriesPoint(MIDNIGHT + timedelta(hours=15), "dall-e-3", None, Usage(images=4, requests=2)),
]


def test_saved_points_come_back_exactly_and_an_unsaved_span_is_none(
    open_store: Callable[..., HistoryStore],
) -> None:
    store = open_store()
    end = MIDNIGHT + timedelta(days=1)

    assert store.cached_series("completions", "1h", MIDNIGHT, end) is None
    store.save_series("completions", "1h", MIDNIGHT, end, POINTS, NOW)
    store.save_series("completions", "1h", MIDNIGHT, end + timedelta(days=1), [], NOW)

    assert store.cached_series("completions", "1h", MIDNIGHT, end) == POINTS
    assert store.cached_series("completions", "1h", MIDNIGHT, end + timedelta(days=1)) == []
    assert store.cached_series("completions", "1m", MIDNIGHT, end) is None
    assert store.cached_series("embeddings", "1h", MIDNIGHT, end) is None


def test_saving_a_span_again_replaces_it(open_store: Callable[..., HistoryStore]) -> None:
    store = open_store()
    end = MIDNIGHT + timedelta(hours=1)
    store.save_series("completions", "1m", MIDNIGHT, end, POINTS, NOW)

    store.save_series("completions", "1m", MIDNIGHT, end, POINTS[1:], NOW + timedelta(hours=1))

    assert store.cached_series("completions", "1m", MIDNIGHT, end) == POINTS[1:]


def test_naive_bounds_are_refused(open_store: Callable[..., HistoryStore]) -> None:
    store = open_store()

    with pytest.raises(ValueError, match="aware"):
        store.cached_series("completions", "1h", datetime(2026, 2, 3), MIDNIGHT)


def test_a_second_fetch_of_a_settled_span_comes_from_the_cache_without_a_request(
    open_store: Callable[..., HistoryStore],
    fake_openai: FakeOpenAI,
    fast_session: requests.Session,
) -> None:
    fake_openai.add_usage(
        MIDNIGHT.date(),
        "gpt-4o-2024-08-06",
        requests=3,
        at=MIDNIGHT + timedelta(hours=14, minutes=5),
    )
    options = OpenAIOptions(base_url=fake_openai.base_url, admin_key=fake_openai.admin_key)
    store = open_store()
    start, end = MIDNIGHT - timedelta(days=1), MIDNIGHT + timedelta(days=2)

    def fetcher() -> SeriesFetcher:
        return SeriesFetcher(options, fast_session, now=NOW, cache=store, settled_before=NOW)

    assert fetcher().requests_needed("completions", start, end, "1h") == 1
    first, first_requests = fetcher()("completions", start, end, timedelta(hours=1))
    assert fetcher().requests_needed("completions", start, end, "1h") == 0
    again, again_requests = fetcher()("completions", start, end, timedelta(hours=1))

    assert (first_requests, again_requests) == (1, 0)
    assert len(fake_openai.requests) == 1
    assert (
        again
        == first
        == {
            ("completions", "gpt-4o-2024-08-06", None): {
                MIDNIGHT + timedelta(hours=14): Usage(requests=3)
            }
        }
    )


def test_a_span_not_yet_settled_is_fetched_again(
    open_store: Callable[..., HistoryStore],
    fake_openai: FakeOpenAI,
    fast_session: requests.Session,
) -> None:
    options = OpenAIOptions(base_url=fake_openai.base_url, admin_key=fake_openai.admin_key)
    store = open_store()
    fetcher = SeriesFetcher(
        options, fast_session, now=NOW, cache=store, settled_before=MIDNIGHT + timedelta(hours=12)
    )

    for _ in range(2):
        fetcher("completions", MIDNIGHT, MIDNIGHT + timedelta(days=1), timedelta(minutes=1))

    assert len(fake_openai.requests) == 2
    assert store.cached_series("completions", "1m", MIDNIGHT, MIDNIGHT + timedelta(days=1)) is None
