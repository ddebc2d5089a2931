"""Billed line items -> (family, model, piece): every real string of reference §1.8 and more."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recon_job.families import FAMILIES, OTHER, PRODUCT_MODELS
from recon_job.sources.openai.lineitems import (
    Attribution,
    LineItemRules,
    billed_model,
    map_line_item,
    per_family_models,
)

A = Attribution

#: Every line item the reference quotes (§1.6, §1.8, §3, §5 and the CSV fixtures), and the
#: attribution it must get.
REAL_LINE_ITEMS = [
    # openai-java#769, real output 2026-06.
    ("gpt-5.4-2026-03-05, cached input", A("completions", "gpt-5.4-2026-03-05", "cached input")),
    ("gpt-5.4-2026-03-05, input", A("completions", "gpt-5.4-2026-03-05", "input")),
    ("gpt-5.4-2026-03-05, output", A("completions", "gpt-5.4-2026-03-05", "output")),
    (
        "gpt-5-search-api-2025-10-14, input",
        A("completions", "gpt-5-search-api-2025-10-14", "input"),
    ),
    ("web search tool calls", A("web_search_calls", "web-search", "calls")),
    # Pelanor (S7), reference payload B and the dashboard exports (S6).
    ("gpt-4o-2024-08-06, input", A("completions", "gpt-4o-2024-08-06", "input")),
    ("gpt-4o-2024-08-06, cached input", A("completions", "gpt-4o-2024-08-06", "cached input")),
    ("gpt-4o-2024-08-06, output", A("completions", "gpt-4o-2024-08-06", "output")),
    ("gpt-4o-mini-2024-07-18, input", A("completions", "gpt-4o-mini-2024-07-18", "input")),
    ("gpt-4.1-2025-04-14, input", A("completions", "gpt-4.1-2025-04-14", "input")),
    (
        "gpt-5-mini-2025-08-07, cached input",
        A("completions", "gpt-5-mini-2025-08-07", "cached input"),
    ),
    ("gpt-5-nano, input_tokens", A("completions", "gpt-5-nano", "input_tokens")),
    ("gpt-5-nano, output_tokens", A("completions", "gpt-5-nano", "output_tokens")),
    # Strings other public code parses (§1.8): tiers, long context, modality words, pieces.
    (
        "priority | gpt-5.6-sol, output, long context",
        A("completions", "gpt-5.6-sol", "output", "priority", long_context=True),
    ),
    ("gpt-5, cache writes", A("completions", "gpt-5", "cache writes")),
    (
        "gpt-audio-mini-2025-12-15 audio, input",
        A("completions", "gpt-audio-mini-2025-12-15", "input", modality="audio"),
    ),
    ("gpt-4o text, cached input", A("completions", "gpt-4o", "cached input", modality="text")),
    ("gpt-image-1 image, output", A("images", "gpt-image-1", "output", modality="image")),
    ("whisper-1, audio", A("audio_transcriptions", "whisper-1", "audio")),
    ("Vector storage", A("vector_stores", "vector-storage", "storage")),
    # CodexBar#999 and the spec's examples: labels without a model.
    ("Text tokens", A("completions", "(completions)", "tokens")),
    ("input_tokens", A("completions", "(completions)", "input")),
    ("Image models", A("images", "(images)", "images")),
]
#: More shapes the built-in rules know: every family, every tier word.
MORE_LINE_ITEMS = [
    ("text-embedding-3-small, input", A("embeddings", "text-embedding-3-small", "input")),
    ("text-embedding-ada-002-v2, input", A("embeddings", "text-embedding-ada-002-v2", "input")),
    ("omni-moderation-latest, input", A("moderations", "omni-moderation-latest", "input")),
    ("dall-e-3, 1024x1024, hd", A("images", "dall-e-3", "1024x1024, hd")),
    ("gpt-image-1 text, input", A("images", "gpt-image-1", "input", modality="text")),
    ("tts-1, characters", A("audio_speeches", "tts-1", "characters")),
    (
        "gpt-4o-mini-tts audio, output",
        A("audio_speeches", "gpt-4o-mini-tts", "output", modality="audio"),
    ),
    (
        "gpt-4o-transcribe audio, input",
        A("audio_transcriptions", "gpt-4o-transcribe", "input", modality="audio"),
    ),
    ("code interpreter sessions", A("code_interpreter_sessions", "code-interpreter", "sessions")),
    ("file search tool calls", A("file_search_calls", "file-search", "calls")),
    (
        "gpt-4o-search-preview, web search tool calls",
        A("web_search_calls", "gpt-4o-search-preview", "web search tool calls"),
    ),
    ("flex | o3-2025-04-16, input", A("completions", "o3-2025-04-16", "input", "flex")),
    ("batch | gpt-4o-mini, output", A("completions", "gpt-4o-mini", "output", "batch")),
    ("priority | web search tool calls", A("web_search_calls", "web-search", "calls", "priority")),
    (
        "gpt-realtime audio, cached input",
        A("completions", "gpt-realtime", "cached input", modality="audio"),
    ),
    ("  gpt-4o, input  ", A("completions", "gpt-4o", "input")),
]
#: Text no rule knows: family other, the text verbatim as the model.
UNKNOWN_LINE_ITEMS = ["Sora video seconds", "fine-tuning training hours", "", "x", "gpt-4o"]


@pytest.mark.parametrize(("text", "expected"), REAL_LINE_ITEMS + MORE_LINE_ITEMS)
def test_every_known_line_item_gets_its_family_model_and_piece(
    text: str, expected: Attribution
) -> None:
    assert map_line_item(text) == expected


@pytest.mark.parametrize("text", UNKNOWN_LINE_ITEMS)
def test_a_line_item_no_rule_knows_is_other_under_its_verbatim_text(text: str) -> None:
    assert map_line_item(text) == Attribution(OTHER, text)


def test_product_families_are_billed_under_the_names_their_usage_carries() -> None:
    for family, product in PRODUCT_MODELS.items():
        assert billed_model(family) == product
    assert map_line_item("Vector storage").model == PRODUCT_MODELS["vector_stores"]
    assert (
        map_line_item("code interpreter sessions").model
        == PRODUCT_MODELS["code_interpreter_sessions"]
    )
    assert map_line_item("file search tool calls").model == PRODUCT_MODELS["file_search_calls"]


class TestUserPatterns:
    def test_they_are_tried_first_and_in_order(self) -> None:
        rules = LineItemRules.compile(
            {"^sora": "images", "video": "other", "^Text tokens$": "embeddings"}
        )
        assert map_line_item("Sora video seconds", rules) == A("images", "(images)")
        assert map_line_item("some video", rules) == A(OTHER, "some video")
        # A user pattern wins over a built-in rule.
        assert map_line_item("Text tokens", rules).family == "embeddings"
        assert map_line_item("gpt-4o, input", rules) == A("completions", "gpt-4o", "input")

    def test_a_model_group_picks_the_model_else_the_line_item_names_it(self) -> None:
        rules = LineItemRules.compile(
            [(r"^(?P<model>sora-[\w.-]+) video", "images"), (r"^my-ft:", "completions")]
        )
        assert map_line_item("sora-2-pro video seconds", rules) == A("images", "sora-2-pro")
        found = map_line_item("priority | my-ft:gpt-4o:acme, output", rules)
        assert found == A("completions", "my-ft:gpt-4o:acme", "output", "priority")

    def test_patterns_ignore_case(self) -> None:
        rules = LineItemRules.compile({"^SORA": "images"})
        assert map_line_item("sora video", rules).family == "images"

    def test_a_bad_pattern_is_refused_when_compiled(self) -> None:
        with pytest.raises(re.error):
            LineItemRules.compile({"(": "images"})


@given(st.text(max_size=80))
def test_it_never_raises_and_never_drops_a_line_item(text: str) -> None:
    found = map_line_item(text)
    assert found.family in (*FAMILIES, OTHER)
    if found.family == OTHER:
        assert found.model == text
    else:
        assert found.model.strip()
        assert found.model in text or found.model == billed_model(found.family)


@given(
    tier=st.sampled_from([None, "priority", "flex", "batch"]),
    model=st.from_regex(r"gpt-[a-z0-9][a-z0-9.\-]{0,20}[a-z0-9]", fullmatch=True),
    modality=st.sampled_from([None, "text", "audio", "image"]),
    piece=st.sampled_from(["input", "output", "cached input", "cache writes"]),
    long_context=st.booleans(),
)
def test_it_recovers_every_part_of_a_completions_line_item(
    tier: str | None, model: str, modality: str | None, piece: str, long_context: bool
) -> None:
    text = (
        (f"{tier} | " if tier else "")
        + model
        + (f" {modality}" if modality else "")
        + f", {piece}"
        + (", long context" if long_context else "")
    )
    family = "images" if model.startswith("gpt-image-") else "completions"
    if re.search(r"-transcribe", model):
        family = "audio_transcriptions"
    elif re.search(r"-tts\b|-tts-", model):
        family = "audio_speeches"
    elif "moderation" in model:
        family = "moderations"
    elif "-embedding" in model:
        family = "embeddings"
    assert map_line_item(text) == A(family, model, piece, tier, modality, long_context)


def test_families_billed_without_a_model_are_compared_as_a_whole() -> None:
    keys = [
        ("completions", "gpt-4o-2024-08-06"),
        ("web_search_calls", "web-search"),
        ("vector_stores", "vector-storage"),  # reported per project anyway: nothing to fold
        ("images", "gpt-image-1"),
        ("other", "(other)"),
    ]
    assert per_family_models(keys) == {"web_search_calls": "web-search"}
    assert per_family_models([("completions", "(completions)")]) == {"completions": "(completions)"}
