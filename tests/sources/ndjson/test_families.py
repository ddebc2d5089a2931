"""Issue 10 item 4: every family's record shape, read by both paths into the right group."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from recon_job.models import Usage, UsageKey
from recon_job.sources.ndjson import source as ndjson_logs
from recon_job.sources.ndjson.source import NdjsonOptions
from tests.helpers import FakePricer
from tests.sources.ndjson.helpers import MARCH, D, fetch, key, write

TS = "2026-03-10T08:00:00Z"


def line(**fields: Any) -> str:
    return orjson.dumps({"timestamp": TS, **fields}).decode()


def fkey(
    model: str, family: str, project: str | None = None, api_key: str | None = None
) -> UsageKey:
    return replace(key(10, model, project, api_key), family=family)


# (record, expected group key, expected usage without cost)
SHAPES: list[tuple[dict[str, Any], UsageKey, Usage]] = [
    # completions: Chat usage with audio in and out (audio counted with its cached part)
    (
        {
            "model": "gpt-4o-audio-preview",
            "usage": {
                "prompt_tokens": 1000,
                "completion_tokens": 300,
                "prompt_tokens_details": {"cached_tokens": 100, "audio_tokens": 600},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 200},
            },
        },
        fkey("gpt-4o-audio-preview", "completions"),
        Usage(1000, 100, 300, 1, input_audio_tokens=600, output_audio_tokens=200),
    ),
    # completions: Realtime usage with a cached split and image input
    (
        {
            "model": "gpt-realtime",
            "endpoint": "/v1/realtime",
            "usage": {
                "input_tokens": 1000,
                "output_tokens": 50,
                "input_token_details": {
                    "cached_tokens": 400,
                    "audio_tokens": 700,
                    "image_tokens": 100,
                    "cached_tokens_details": {"audio_tokens": 300, "image_tokens": 0},
                },
                "output_token_details": {"text_tokens": 10, "audio_tokens": 40},
            },
        },
        fkey("gpt-realtime", "completions"),
        Usage(
            1000,
            400,
            50,
            1,
            input_audio_tokens=400,
            cached_audio_tokens=300,
            input_image_tokens=100,
            output_audio_tokens=40,
        ),
    ),
    # completions: Responses usage with cache-write tokens (part of the input)
    (
        {
            "model": "gpt-5",
            "endpoint": "https://api.openai.com/v1/responses/resp_1",
            "usage": {
                "input_tokens": 500,
                "output_tokens": 20,
                "input_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 50},
                "output_tokens_details": {"reasoning_tokens": 10},
            },
        },
        fkey("gpt-5", "completions"),
        Usage(500, 100, 20, 1, cache_write_tokens=50),
    ),
    # embeddings by model name, by endpoint and by family field
    (
        {"model": "text-embedding-3-small", "usage": {"prompt_tokens": 8, "total_tokens": 8}},
        fkey("text-embedding-3-small", "embeddings"),
        Usage(8, 0, 0, 1),
    ),
    (
        {"model": "my-embedder", "endpoint": "/v1/embeddings", "prompt_tokens": 9},
        fkey("my-embedder", "embeddings"),
        Usage(9, 0, 0, 1),
    ),
    (
        {"model": "omni-moderation-latest", "family": "moderation", "input_tokens": 7},
        fkey("omni-moderation-latest", "moderations"),
        Usage(7, 0, 0, 1),
    ),
    # images: n, data, size/quality; gpt-image-1 tokens (its output is image tokens)
    (
        {"model": "dall-e-3", "endpoint": "/v1/images/generations", "n": 2, "size": "1024x1024"},
        fkey("dall-e-3", "images"),
        Usage(requests=1, images=2),
    ),
    (
        {
            "model": "gpt-image-1",
            "data": [{"b64_json": "x"}, {"b64_json": "y"}, {"b64_json": "z"}],
            "quality": "high",
            "size": "1024x1024",
            "usage": {
                "input_tokens": 60,
                "output_tokens": 4000,
                "input_tokens_details": {"text_tokens": 50, "image_tokens": 10},
            },
        },
        fkey("gpt-image-1", "images"),
        Usage(60, 0, 4000, 1, input_image_tokens=10, output_image_tokens=4000, images=3),
    ),
    # speech: characters, or the input text's length
    (
        {"model": "tts-1", "characters": 1200},
        fkey("tts-1", "audio_speeches"),
        Usage(requests=1, characters=1200),
    ),
    (
        {"model": "tts-1-hd", "endpoint": "/v1/audio/speech", "input": "Hello there!"},
        fkey("tts-1-hd", "audio_speeches"),
        Usage(requests=1, characters=12),
    ),
    # transcription: seconds, usage.seconds, or duration rounded half up
    (
        {"model": "whisper-1", "usage": {"type": "duration", "seconds": 42}},
        fkey("whisper-1", "audio_transcriptions"),
        Usage(requests=1, seconds=42),
    ),
    (
        {"model": "whisper-1", "endpoint": "/v1/audio/translations", "duration": 12.5},
        fkey("whisper-1", "audio_transcriptions"),
        Usage(requests=1, seconds=13),
    ),
    (
        {
            "model": "gpt-4o-transcribe",
            "usage": {
                "type": "tokens",
                "input_tokens": 14,
                "output_tokens": 45,
                "input_token_details": {"text_tokens": 0, "audio_tokens": 14},
            },
        },
        fkey("gpt-4o-transcribe", "audio_transcriptions"),
        Usage(14, 0, 45, 1, input_audio_tokens=14),
    ),
    # per-project families: their product's name, no requests, no API key
    (
        {
            "family": "vector_stores",
            "usage_bytes": 5_000_000,
            "project_id": "p1",
            "api_key_id": "k",
        },
        fkey("vector-storage", "vector_stores", "p1"),
        Usage(usage_bytes=5_000_000),
    ),
    (
        {"family": "code_interpreter", "project_id": "p1", "api_key_id": "k"},
        fkey("code-interpreter", "code_interpreter_sessions", "p1"),
        Usage(sessions=1),
    ),
    (
        {"family": "file_search", "calls": 3, "project_id": "p1", "api_key_id": "k"},
        fkey("file-search", "file_search_calls", "p1", "k"),
        Usage(calls=3),
    ),
    (
        {"family": "web_search", "model": "gpt-4o-search-preview", "calls": 2},
        fkey("gpt-4o-search-preview", "web_search_calls"),
        Usage(requests=1, calls=2),
    ),
]


@pytest.mark.parametrize(("record", "group", "usage"), SHAPES, ids=lambda v: str(v)[:40])
@pytest.mark.parametrize("fast", [True, False])
def test_each_familys_record_is_read_into_its_group(
    record: dict[str, Any], group: UsageKey, usage: Usage, fast: bool
) -> None:
    options = NdjsonOptions(paths=("unused",), group_by=("model", "project_id", "api_key_id"))
    scan = ndjson_logs._Scan(options, MARCH)
    scan.fast = fast
    scan.scan([orjson.dumps({"timestamp": TS, **record})])
    totals = scan.totals(FakePricer(), None)

    assert totals.skipped == {}
    assert totals.groups == {group: usage}


def test_a_group_keeps_the_identities_of_its_token_classes() -> None:
    for _record, _group, usage in SHAPES:
        assert usage.input_text_tokens >= 0
        assert usage.cached_text_tokens >= 0
        assert usage.output_text_tokens >= 0


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"model": "gpt-4o", "family": "telepathy", "prompt_tokens": 1}, "bad_family"),
        ({"model": "gpt-4o", "endpoint": "/v1/files", "prompt_tokens": 1}, "bad_family"),
        ({"model": "gpt-4o", "endpoint": ["/v1/embeddings"], "prompt_tokens": 1}, "bad_family"),
        ({"model": "tts-1"}, "missing_quantity"),
        ({"model": "whisper-1"}, "missing_quantity"),
        ({"family": "vector_stores"}, "missing_quantity"),
        ({"model": "whisper-1", "seconds": -3}, "bad_quantity"),
        ({"model": "dall-e-2", "n": 1.5}, "bad_quantity"),
        ({"model": "text-embedding-3-large"}, "missing_tokens"),
        (
            {
                "model": "gpt-4o-audio-preview",
                "usage": {
                    "prompt_tokens": 10,
                    "completion_tokens": 5,
                    "completion_tokens_details": {"audio_tokens": 6},
                },
            },
            "token_classes_exceed_total",
        ),
    ],
)
def test_a_record_of_no_known_family_or_without_its_quantity_is_skipped_and_located(
    tmp_path: Path, fields: dict[str, Any], reason: str
) -> None:
    path = write(tmp_path / "a.ndjson", line(model="gpt-4o", prompt_tokens=1), line(**fields))

    totals = fetch(path)

    assert totals.skipped == {reason: 1}
    assert totals.skipped_locations == {reason: (f"{path}:2",)}
    assert totals.info["records_counted"] == 1


def test_old_records_keep_their_groups_and_a_plain_completion_is_priced_once(
    tmp_path: Path,
) -> None:
    pricer = FakePricer()
    path = write(
        tmp_path / "a.ndjson",
        line(model="gpt-4o-mini", prompt_tokens=100, completion_tokens=10),
        line(
            model="gpt-4o-mini",
            endpoint="/v1/chat/completions",
            prompt_tokens=100,
            completion_tokens=10,
        ),
        line(model="gpt-4o-mini", family="chat", input_tokens=100, output_tokens=10),
    )

    totals = fetch(path, pricer=pricer)

    assert list(totals.groups) == [key(10, "gpt-4o-mini")]
    assert totals.groups[key(10, "gpt-4o-mini")].requests == 3
    assert len(pricer.calls) == 1


def test_a_chat_endpoint_never_makes_a_whisper_model_group_for_later_records(
    tmp_path: Path,
) -> None:
    # The fast path makes groups for completions models only: a record counted as completions
    # by its endpoint must not open a group that a later whisper-1 record would fall into.
    path = write(
        tmp_path / "a.ndjson",
        line(
            model="whisper-1", endpoint="/v1/chat/completions", prompt_tokens=5, completion_tokens=1
        ),
        line(model="whisper-1", seconds=30),
    )

    totals = fetch(path)

    assert totals.groups == {
        fkey("whisper-1", "completions"): Usage(5, 0, 1, 1),
        fkey("whisper-1", "audio_transcriptions"): Usage(requests=1, seconds=30),
    }


def test_an_image_size_and_quality_reach_the_pricer_as_its_variant(tmp_path: Path) -> None:
    seen: list[str | None] = []

    class VariantPricer(FakePricer):
        def cost(
            self, model: str, day: Any, tier: Any, usage: Usage, variant: str | None = None
        ) -> Any:
            seen.append(variant)
            return D("0.08") * usage.images if model == "dall-e-3" else None

    path = write(
        tmp_path / "a.ndjson",
        line(model="dall-e-3", size="1024x1024", quality="HD"),
        line(model="dall-e-3", size="1024x1024", quality="hd", n=2),
        line(model="dall-e-2"),
    )

    totals = fetch(path, pricer=VariantPricer())

    assert sorted(seen, key=str) == ["1024x1024/hd", None]
    assert totals.groups[fkey("dall-e-3", "images")] == Usage(requests=2, images=3, cost=D("0.24"))
    # A family without a price is unpriced, never $0.
    assert [k.model for k in totals.unpriced] == ["dall-e-2"]


def test_stored_bytes_are_a_level_the_largest_of_a_day_not_a_sum(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.ndjson",
        *(line(family="vector_stores", usage_bytes=n, project_id="p1") for n in (10, 30, 20)),
    )

    totals = fetch(path, group_by=("model", "project_id"))

    assert totals.groups == {fkey("vector-storage", "vector_stores", "p1"): Usage(usage_bytes=30)}


def test_mapped_fields_read_a_custom_shape_of_every_family(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.ndjson",
        line(model="tts-1", kind="speech", meta={"chars": 100}),
        line(model="gpt-4o-audio", kind="chat", toks={"in": 50, "out": 9, "ain": 40, "aout": 5}),
    )
    fields = {
        "family": "kind",
        "characters": "meta.chars",
        "input_tokens": "toks.in",
        "output_tokens": "toks.out",
        "input_audio_tokens": "toks.ain",
        "output_audio_tokens": "toks.aout",
    }

    totals = fetch(path, fields=fields)

    assert totals.skipped == {}
    assert totals.groups == {
        fkey("gpt-4o-audio", "completions"): Usage(
            50, 0, 9, 1, input_audio_tokens=40, output_audio_tokens=5
        ),
        fkey("tts-1", "audio_speeches"): Usage(requests=1, characters=100),
    }
