"""One Usage API result object as :class:`~recon_job.models.Usage`, for every family.

Each family's result carries its own counters (reference §1.5): tokens for completions,
embeddings and moderations, ``images``, ``characters``, ``seconds``, ``num_sessions``,
``num_requests`` (search calls) and ``usage_bytes``. :func:`parse_result` maps them onto the
fields of ``Usage``; a required counter that is missing is a schema error, an optional one that
is missing is 0 (older pages lack the newer fields).

Completions carry token classes whose meaning changed on 2026-07-15 (reference §1.7): before,
``input_audio_tokens`` counted cached audio too, and no page had ``input_uncached_tokens``; since,
every modality input is *uncached* and ``input_tokens = cached + cache_write + uncached``.
:func:`completions_usage` reads both field sets into the same classes, so that ``Usage``'s
identities hold and no token is counted twice (see :class:`~recon_job.models.Usage`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from recon_job.models import EMPTY, Usage
from recon_job.sources.openai.base import optional_int, require_int

#: Fields only pages of the 2026-07-15 field set carry: with any, modality inputs are uncached.
NEW_FIELDS = (
    "input_uncached_tokens",
    "input_cache_write_tokens",
    "input_cached_audio_tokens",
    "input_text_tokens",
    "input_cached_text_tokens",
    "input_image_tokens",
    "input_cached_image_tokens",
    "output_text_tokens",
    "output_image_tokens",
)

Result = Mapping[str, Any]


def completions_usage(result: Result, endpoint: str) -> tuple[Usage, bool]:
    """The token classes of one completions result, and whether its figures were consistent.

    New field set: ``input_tokens`` is rebuilt from its parts when ``input_uncached_tokens`` is
    given and disagrees (the parts are what is priced); without it, the required ``input_tokens``
    stands. Old field set: ``input_audio_tokens`` is all audio input; the part of it that cannot
    be uncached (more than the uncached input) is cached audio. Figures that cannot all be true
    are clamped so every class stays within its total (never counted twice), and reported as
    inconsistent.
    """

    def get(name: str) -> int:
        return optional_int(result, name, endpoint)

    stated_input = require_int(result, "input_tokens", endpoint)
    stated_output = require_int(result, "output_tokens", endpoint)
    requests = require_int(result, "num_model_requests", endpoint)
    new = any(name in result and result[name] is not None for name in NEW_FIELDS)
    cached = get("input_cached_tokens")
    if result.get("input_cached_tokens") is None:
        cached = sum(get(f"input_cached_{m}_tokens") for m in ("text", "audio", "image"))
    cache_write = get("input_cache_write_tokens")
    stated_parts = (cached, cache_write)
    if new and result.get("input_uncached_tokens") is not None:
        input_tokens = cached + cache_write + get("input_uncached_tokens")
    else:
        # No uncached figure to rebuild it from: the required total stands, its parts fit in it.
        input_tokens = stated_input
        cached = min(cached, input_tokens)
        cache_write = min(cache_write, input_tokens - cached)
    consistent = input_tokens == stated_input and (cached, cache_write) == stated_parts
    uncached = input_tokens - cached - cache_write
    if new:
        audio = min(get("input_audio_tokens"), uncached)
        cached_audio = min(get("input_cached_audio_tokens"), cached)
        consistent &= audio == get("input_audio_tokens")
        consistent &= cached_audio == get("input_cached_audio_tokens")
    else:
        # Old pages: all audio input, cached included; what exceeds the uncached input is cached.
        total_audio = min(get("input_audio_tokens"), uncached + cached)
        cached_audio = max(0, total_audio - uncached)
        audio = total_audio - cached_audio
        consistent &= total_audio == get("input_audio_tokens")
    image = min(get("input_image_tokens"), uncached - audio)
    cached_image = min(get("input_cached_image_tokens"), cached - cached_audio)
    out_audio = get("output_audio_tokens")
    out_image = get("output_image_tokens")
    output_tokens = max(stated_output, get("output_text_tokens") + out_audio + out_image)
    consistent &= image == get("input_image_tokens")
    consistent &= cached_image == get("input_cached_image_tokens")
    consistent &= output_tokens == stated_output
    for name, rest in (
        ("input_text_tokens", uncached - audio - image),
        ("input_cached_text_tokens", cached - cached_audio - cached_image),
        ("output_text_tokens", output_tokens - out_audio - out_image),
    ):
        consistent &= result.get(name) is None or get(name) == rest
    usage = Usage(
        input_tokens=input_tokens,
        cached_tokens=cached,
        output_tokens=output_tokens,
        requests=requests,
        cache_write_tokens=cache_write,
        input_audio_tokens=audio,
        cached_audio_tokens=cached_audio,
        input_image_tokens=image,
        cached_image_tokens=cached_image,
        output_audio_tokens=out_audio,
        output_image_tokens=out_image,
    )
    return usage, consistent


#: Each family but completions (which also reports consistency): the ``Usage`` field each
#: required counter of its results fills (reference §1.3).
COUNTERS: Mapping[str, Mapping[str, str]] = {
    "embeddings": {"input_tokens": "input_tokens", "requests": "num_model_requests"},
    "moderations": {"input_tokens": "input_tokens", "requests": "num_model_requests"},
    "images": {"images": "images", "requests": "num_model_requests"},
    "audio_speeches": {"characters": "characters", "requests": "num_model_requests"},
    "audio_transcriptions": {"seconds": "seconds", "requests": "num_model_requests"},
    "vector_stores": {"usage_bytes": "usage_bytes"},
    "code_interpreter_sessions": {"sessions": "num_sessions"},
    "file_search_calls": {"calls": "num_requests"},
    "web_search_calls": {"calls": "num_requests", "requests": "num_model_requests"},
}


def parse_result(family: str, result: Result, endpoint: str) -> tuple[Usage, bool]:
    """The usage one result of ``family`` reports, and whether its figures were consistent.

    Raises a schema :class:`~recon_job.errors.UsageApiError` (naming ``endpoint``) for a missing
    required counter or one that is not a non-negative integer.
    """
    if family == "completions":
        return completions_usage(result, endpoint)
    counts: dict[str, Any] = {
        f: require_int(result, key, endpoint) for f, key in COUNTERS[family].items()
    }
    return replace(EMPTY, **counts), True
