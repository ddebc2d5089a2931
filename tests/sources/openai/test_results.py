"""Usage API result objects -> Usage: every family, and the token-class identities of §1.5."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recon_job.errors import UsageApiError
from recon_job.families import FAMILIES
from recon_job.models import Usage
from recon_job.sources.openai.results import parse_result
from tests.fakeopenai import ENDPOINTS

#: The spec's examples (reference §1.6 and the x-oaiMeta examples of each result object).
SPEC_EXAMPLES: list[tuple[str, dict[str, Any], Usage]] = [
    (
        "completions",
        {
            "object": "organization.usage.completions.result",
            "input_tokens": 1000,
            "input_cached_tokens": 400,
            "input_cache_write_tokens": 100,
            "input_uncached_tokens": 500,
            "output_tokens": 500,
            "input_text_tokens": 400,
            "output_text_tokens": 400,
            "input_cached_text_tokens": 300,
            "input_audio_tokens": 50,
            "input_cached_audio_tokens": 50,
            "output_audio_tokens": 50,
            "input_image_tokens": 50,
            "input_cached_image_tokens": 50,
            "output_image_tokens": 50,
            "num_model_requests": 5,
        },
        Usage(
            input_tokens=1000,
            cached_tokens=400,
            output_tokens=500,
            requests=5,
            cache_write_tokens=100,
            input_audio_tokens=50,
            cached_audio_tokens=50,
            input_image_tokens=50,
            cached_image_tokens=50,
            output_audio_tokens=50,
            output_image_tokens=50,
        ),
    ),
    (
        "embeddings",
        {
            "object": "organization.usage.embeddings.result",
            "input_tokens": 20,
            "num_model_requests": 2,
        },
        Usage(input_tokens=20, requests=2),
    ),
    (
        "moderations",
        {
            "object": "organization.usage.moderations.result",
            "input_tokens": 20,
            "num_model_requests": 2,
        },
        Usage(input_tokens=20, requests=2),
    ),
    (
        "images",
        {
            "object": "organization.usage.images.result",
            "images": 2,
            "num_model_requests": 2,
            "size": "1024x1024",
            "source": "image.generation",
        },
        Usage(images=2, requests=2),
    ),
    (
        "audio_speeches",
        {
            "object": "organization.usage.audio_speeches.result",
            "characters": 45,
            "num_model_requests": 1,
        },
        Usage(characters=45, requests=1),
    ),
    (
        "audio_transcriptions",
        {
            "object": "organization.usage.audio_transcriptions.result",
            "seconds": 10,
            "num_model_requests": 1,
        },
        Usage(seconds=10, requests=1),
    ),
    (
        "vector_stores",
        {"object": "organization.usage.vector_stores.result", "usage_bytes": 1024},
        Usage(usage_bytes=1024),
    ),
    (
        "code_interpreter_sessions",
        {"object": "organization.usage.code_interpreter_sessions.result", "num_sessions": 1},
        Usage(sessions=1),
    ),
    (
        "file_search_calls",
        {"object": "organization.usage.file_searches.result", "num_requests": 2},
        Usage(calls=2),
    ),
    (
        "web_search_calls",
        {
            "object": "organization.usage.web_searches.result",
            "num_model_requests": 2,
            "num_requests": 3,
            "context_level": "medium",
        },
        Usage(calls=3, requests=2),
    ),
]


def test_every_family_has_a_spec_example() -> None:
    assert [family for family, _, _ in SPEC_EXAMPLES] == list(FAMILIES)


@pytest.mark.parametrize(("family", "result", "expected"), SPEC_EXAMPLES, ids=FAMILIES)
def test_each_spec_example_parses_into_its_quantities(
    family: str, result: dict[str, Any], expected: Usage
) -> None:
    assert parse_result(family, result, "Usage") == (expected, True)


@pytest.mark.parametrize(("family", "result", "expected"), SPEC_EXAMPLES, ids=FAMILIES)
def test_a_missing_required_counter_is_a_schema_error(
    family: str, result: dict[str, Any], expected: Usage
) -> None:
    required = next(k for k in result if k != "object" and isinstance(result[k], int))
    broken = {k: v for k, v in result.items() if k != required}
    with pytest.raises(UsageApiError) as info:
        parse_result(family, broken, "Usage (x)")
    assert info.value.reason == "schema"
    assert required in str(info.value)
    assert "Usage (x)" in str(info.value)


def test_a_negative_or_fractional_counter_is_a_schema_error() -> None:
    for value in (-1, 1.5, "3", True):
        with pytest.raises(UsageApiError):
            parse_result("images", {"images": value, "num_model_requests": 1}, "Usage")


def test_the_cookbook_month_keeps_its_audio_tokens() -> None:
    # Reference §2 / the issue: 49,963 audio input and 18,042 audio output tokens in a month,
    # an old ("audio") page: they were dropped before; now they are classes of their own.
    old = {
        "input_tokens": 1_200_000,
        "input_cached_tokens": 300_000,
        "output_tokens": 90_000,
        "num_model_requests": 800,
        "input_audio_tokens": 49_963,
        "output_audio_tokens": 18_042,
    }
    usage, consistent = parse_result("completions", old, "Usage")
    assert consistent
    assert (usage.input_audio_tokens, usage.cached_audio_tokens) == (49_963, 0)
    assert usage.output_audio_tokens == 18_042
    assert usage.input_text_tokens == 1_200_000 - 300_000 - 49_963
    assert usage.output_text_tokens == 90_000 - 18_042


def test_old_audio_beyond_the_uncached_input_is_cached_audio() -> None:
    # Before 2026-07-15 input_audio_tokens counted cached audio too: 600 of audio with only
    # 500 uncached tokens means at least 100 of it was cached.
    old = {
        "input_tokens": 1000,
        "input_cached_tokens": 500,
        "output_tokens": 0,
        "num_model_requests": 1,
        "input_audio_tokens": 600,
    }
    usage, consistent = parse_result("completions", old, "Usage")
    assert consistent
    assert (usage.input_audio_tokens, usage.cached_audio_tokens) == (500, 100)
    assert usage.input_text_tokens == 0
    assert usage.cached_text_tokens == 400


def test_new_parts_are_trusted_over_an_inconsistent_total() -> None:
    new = {
        "input_tokens": 1200,
        "input_cached_tokens": 400,
        "input_cache_write_tokens": 100,
        "input_uncached_tokens": 500,
        "output_tokens": 10,
        "num_model_requests": 1,
    }
    usage, consistent = parse_result("completions", new, "Usage")
    assert (usage.input_tokens, consistent) == (1000, False)


def test_parts_larger_than_the_total_are_clamped_not_counted_twice() -> None:
    launch = {
        "input_tokens": 5,
        "input_cached_tokens": 10,
        "output_tokens": 1,
        "num_model_requests": 1,
    }
    usage, consistent = parse_result("completions", launch, "Usage")
    assert (usage.input_tokens, usage.cached_tokens, consistent) == (5, 5, False)


# --- the identities, as properties -------------------------------------------------------

counts = st.integers(min_value=0, max_value=10**9)
CLASSES = (
    "text_in",
    "audio_in",
    "image_in",
    "cached_text",
    "cached_audio",
    "cached_image",
    "cache_write",
    "out_text",
    "out_audio",
    "out_image",
)


def page_of(c: dict[str, int], field_set: str, requests: int) -> dict[str, Any]:
    """A completions result of ``field_set`` for the token classes ``c``."""
    cached = c["cached_text"] + c["cached_audio"] + c["cached_image"]
    uncached = c["text_in"] + c["audio_in"] + c["image_in"]
    full = {
        "object": "organization.usage.completions.result",
        "input_tokens": cached + c["cache_write"] + uncached,
        "output_tokens": c["out_text"] + c["out_audio"] + c["out_image"],
        "num_model_requests": requests,
        "input_cached_tokens": cached,
        "input_cache_write_tokens": c["cache_write"],
        "input_uncached_tokens": uncached,
        "input_text_tokens": c["text_in"],
        "output_text_tokens": c["out_text"],
        "input_cached_text_tokens": c["cached_text"],
        "input_audio_tokens": c["audio_in"],
        "input_cached_audio_tokens": c["cached_audio"],
        "output_audio_tokens": c["out_audio"],
        "input_image_tokens": c["image_in"],
        "input_cached_image_tokens": c["cached_image"],
        "output_image_tokens": c["out_image"],
    }
    if field_set == "new":
        return full
    keep = ["object", "input_tokens", "output_tokens", "num_model_requests", "input_cached_tokens"]
    page = {k: full[k] for k in keep}
    if field_set == "audio":
        # 2024-12 to 2026-07: all audio input, cached included; no cache writes, no images.
        page["input_audio_tokens"] = c["audio_in"] + c["cached_audio"]
        page["output_audio_tokens"] = c["out_audio"]
    return page


def assert_identities(usage: Usage) -> None:
    """No class is negative: every class lies inside its total, none is counted twice."""
    parts = (
        usage.cached_text_tokens,
        usage.cached_audio_tokens,
        usage.cached_image_tokens,
        usage.cache_write_tokens,
        usage.input_text_tokens,
        usage.input_audio_tokens,
        usage.input_image_tokens,
    )
    assert all(part >= 0 for part in parts)
    assert sum(parts) == usage.input_tokens
    outputs = (usage.output_text_tokens, usage.output_audio_tokens, usage.output_image_tokens)
    assert all(part >= 0 for part in outputs)
    assert sum(outputs) == usage.output_tokens


@given(
    classes=st.fixed_dictionaries(dict.fromkeys(CLASSES, counts)),
    field_set=st.sampled_from(["new", "audio", "launch"]),
    requests=counts,
    dropped=st.sets(
        st.sampled_from(["input_text_tokens", "output_text_tokens", "input_cached_text_tokens"])
    ),
)
def test_any_consistent_page_parses_into_its_classes_in_either_field_set(
    classes: dict[str, int], field_set: str, requests: int, dropped: set[str]
) -> None:
    page = page_of(classes, field_set, requests)
    for name in dropped:  # derived fields a page may leave out
        page.pop(name, None)
    usage, consistent = parse_result("completions", page, "Usage")
    assert_identities(usage)
    assert consistent
    assert usage.input_tokens == page["input_tokens"]
    assert usage.cached_tokens == page["input_cached_tokens"]
    assert usage.output_tokens == page["output_tokens"]
    assert usage.requests == requests
    if field_set == "new":
        assert usage.input_text_tokens == classes["text_in"]
        assert usage.cached_text_tokens == classes["cached_text"]
        assert usage.output_text_tokens == classes["out_text"]
        assert (usage.input_audio_tokens, usage.cached_audio_tokens) == (
            classes["audio_in"],
            classes["cached_audio"],
        )
        assert (usage.input_image_tokens, usage.cached_image_tokens) == (
            classes["image_in"],
            classes["cached_image"],
        )
        assert usage.cache_write_tokens == classes["cache_write"]
    elif field_set == "audio":
        # All audio is kept (none dropped, none counted twice); its cached share is a bound.
        all_audio = classes["audio_in"] + classes["cached_audio"]
        assert usage.input_audio_tokens + usage.cached_audio_tokens == all_audio
        assert usage.output_audio_tokens == classes["out_audio"]


#: Every counter of a completions result, the three required first (as the fake serves them).
FIELDS = ENDPOINTS["completions"].counters
REQUIRED = ("input_tokens", "output_tokens", "num_model_requests")


@given(
    st.fixed_dictionaries(
        dict.fromkeys(REQUIRED, counts),
        optional=dict.fromkeys(FIELDS[3:], st.one_of(st.none(), counts)),
    )
)
def test_any_page_at_all_keeps_the_identities_and_flags_what_cannot_be_true(
    page: dict[str, Any],
) -> None:
    usage, consistent = parse_result("completions", page, "Usage")
    assert_identities(usage)
    if consistent:
        assert usage.input_tokens == page["input_tokens"]
        assert usage.output_tokens == page["output_tokens"]
        if page.get("input_cached_tokens") is not None:
            assert usage.cached_tokens == page["input_cached_tokens"]
