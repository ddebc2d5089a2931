"""Every usage family OpenAI bills: its endpoint, its quantities, and how a local record finds it.

OpenAI's organization Usage API has one endpoint per family (reference §1.3); each family counts
other things (tokens, images, characters, seconds, sessions, calls, stored bytes). This module is
the one table of those facts, pure data with a few rules, so the client, the local sources, the
comparison and every output agree on names, order and quantities.

Quantity names are :class:`~recon_job.models.Usage` field names, plus ``tokens`` (input +
output). The *deciding* quantities of a family are the ones that make one of its groups a
mismatch; the *details* are shown to say which part drifted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

#: Every family, in report order: completions first, then by how often apps log them.
FAMILIES: tuple[str, ...] = (
    "completions",
    "embeddings",
    "moderations",
    "images",
    "audio_speeches",
    "audio_transcriptions",
    "vector_stores",
    "code_interpreter_sessions",
    "file_search_calls",
    "web_search_calls",
)
#: The family of billed line items that map to no usage family: kept with their text, never
#: dropped.
OTHER = "other"
#: The default family of a record or group that says nothing else.
COMPLETIONS = "completions"

#: Token classes of the completions family (all part of ``input_tokens`` or ``output_tokens``).
TOKEN_DETAILS: tuple[str, ...] = (
    "input_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "input_audio_tokens",
    "cached_audio_tokens",
    "input_image_tokens",
    "cached_image_tokens",
    "output_tokens",
    "output_audio_tokens",
    "output_image_tokens",
)
#: The token classes beyond input, cached and output (each part of one of those totals).
EXTRA_TOKEN_CLASSES: tuple[str, ...] = (
    "cache_write_tokens",
    "input_audio_tokens",
    "cached_audio_tokens",
    "input_image_tokens",
    "cached_image_tokens",
    "output_audio_tokens",
    "output_image_tokens",
)
#: Every quantity a family may compare besides the six every comparison carries.
EXTRA_QUANTITIES: tuple[str, ...] = (
    *EXTRA_TOKEN_CLASSES,
    "images",
    "characters",
    "seconds",
    "sessions",
    "calls",
    "usage_bytes",
)

_ALL_BY = ("project_id", "user_id", "api_key_id", "model")


@dataclass(frozen=True, slots=True)
class FamilySpec:
    """What one usage family is at OpenAI and how recon-job compares it."""

    #: Family name, as in ``openai.families`` and every output.
    name: str
    #: Usage API path under ``/v1``.
    path: str
    #: The ``object`` of its result rows.
    result_object: str
    #: The ``group_by`` values its endpoint accepts (reference §1.3); never ask for others.
    group_by: tuple[str, ...]
    #: Quantities that decide a group's status.
    deciding: tuple[str, ...]
    #: Quantities shown as a diagnosis of which part drifted (never decide).
    details: tuple[str, ...] = ()

    @property
    def by_model(self) -> bool:
        """True when OpenAI reports this family per model (else per project only)."""
        return "model" in self.group_by

    @property
    def counts_tokens(self) -> bool:
        """True when the family's usage is measured in tokens (they add up across such families)."""
        return "tokens" in self.deciding


def _spec(
    name: str, obj: str, by: tuple[str, ...], deciding: tuple[str, ...], *details: str
) -> FamilySpec:
    return FamilySpec(
        name,
        f"/organization/usage/{name}",
        f"organization.usage.{obj}.result",
        by,
        deciding,
        details,
    )


SPECS: Mapping[str, FamilySpec] = {
    spec.name: spec
    for spec in (
        _spec(
            "completions",
            "completions",
            (*_ALL_BY, "batch", "service_tier"),
            ("tokens", "requests", "cost"),
            *TOKEN_DETAILS,
        ),
        _spec("embeddings", "embeddings", _ALL_BY, ("tokens", "requests", "cost")),
        _spec("moderations", "moderations", _ALL_BY, ("tokens", "requests", "cost")),
        _spec("images", "images", (*_ALL_BY, "size", "source"), ("images", "requests", "cost")),
        _spec("audio_speeches", "audio_speeches", _ALL_BY, ("characters", "requests", "cost")),
        _spec(
            "audio_transcriptions", "audio_transcriptions", _ALL_BY, ("seconds", "requests", "cost")
        ),
        _spec("vector_stores", "vector_stores", ("project_id",), ("usage_bytes", "cost")),
        _spec(
            "code_interpreter_sessions",
            "code_interpreter_sessions",
            ("project_id",),
            ("sessions", "cost"),
        ),
        _spec(
            "file_search_calls",
            "file_searches",
            ("project_id", "user_id", "api_key_id", "vector_store_id"),
            ("calls", "cost"),
        ),
        _spec(
            "web_search_calls",
            "web_searches",
            (*_ALL_BY, "context_level"),
            ("calls", "requests", "cost"),
        ),
    )
}
#: The model name of the families OpenAI does not report per model: their product. Local
#: records and billed line items of these families use the same names, so the groups meet.
PRODUCT_MODELS: Mapping[str, str] = {
    "vector_stores": "vector-storage",
    "code_interpreter_sessions": "code-interpreter",
    "file_search_calls": "file-search",
}
#: Costs of line items that map to no family are compared by dollars only.
OTHER_DECIDING: tuple[str, ...] = ("cost",)


def deciding(family: str) -> tuple[str, ...]:
    """The quantities that decide a group of ``family`` (cost only for unknown families)."""
    spec = SPECS.get(family)
    return spec.deciding if spec is not None else OTHER_DECIDING


def family_rank(family: str) -> int:
    """Sort position of ``family``: the order of :data:`FAMILIES`, anything else after them."""
    try:
        return FAMILIES.index(family)
    except ValueError:
        return len(FAMILIES)


def parse_families(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Family names from a list or a comma-separated string, in :data:`FAMILIES` order.

    Raises ValueError naming every unknown name and the known ones; ``all`` means every family.
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    names = {item.strip().lower() for item in items if item.strip()}
    if "all" in names:
        return FAMILIES
    unknown = sorted(names - set(FAMILIES))
    if unknown:
        raise ValueError(
            f"unknown famil{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}; "
            f"known: {', '.join(FAMILIES)} (or all)"
        )
    if not names:
        raise ValueError(f"no family named; known: {', '.join(FAMILIES)} (or all)")
    return tuple(f for f in FAMILIES if f in names)


#: API paths of local records (``endpoint`` field) -> family. Matched on the path after ``/v1``.
ENDPOINTS: Mapping[str, str] = {
    "/chat/completions": "completions",
    "/completions": "completions",
    "/responses": "completions",
    "/realtime": "completions",
    "/embeddings": "embeddings",
    "/moderations": "moderations",
    "/images/generations": "images",
    "/images/edits": "images",
    "/images/variations": "images",
    "/audio/speech": "audio_speeches",
    "/audio/transcriptions": "audio_transcriptions",
    "/audio/translations": "audio_transcriptions",
}
#: Model-name rules, first match wins (after ``endpoint``/``family``, before the completions
#: default). Chat models that also speak (``gpt-4o-audio-preview``) stay completions.
MODEL_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), family)
    for pattern, family in (
        (r"^text-embedding-|^text-search-|-embedding", "embeddings"),
        (r"moderation", "moderations"),
        (r"^whisper-|-transcribe", "audio_transcriptions"),
        (r"^tts-|-tts\b|-tts-", "audio_speeches"),
        (r"^dall-e-|^gpt-image-|^chatgpt-image", "images"),
    )
)
_ALIASES: Mapping[str, str] = {
    "chat": "completions",
    "responses": "completions",
    "embedding": "embeddings",
    "moderation": "moderations",
    "image": "images",
    "speech": "audio_speeches",
    "tts": "audio_speeches",
    "audio_speech": "audio_speeches",
    "transcription": "audio_transcriptions",
    "transcriptions": "audio_transcriptions",
    "audio_transcription": "audio_transcriptions",
    "vector_store": "vector_stores",
    "code_interpreter": "code_interpreter_sessions",
    "file_search": "file_search_calls",
    "web_search": "web_search_calls",
}


def family_name(value: str) -> str | None:
    """The family a ``family`` field names (``embeddings``, ``embedding``, ``speech`` ...)."""
    name = value.strip().lower().replace("-", "_").replace(" ", "_")
    if name in SPECS:
        return name
    return _ALIASES.get(name)


def family_of_endpoint(endpoint: str) -> str | None:
    """The family of an API path (``/v1/embeddings``, ``https://…/v1/audio/speech``), or None."""
    path = endpoint.strip().lower().split("?", 1)[0].rstrip("/")
    if not path.startswith("/") and "://" not in path:
        path = "/" + path
    marker = path.find("/v1/")
    if marker >= 0:
        path = path[marker + 3 :]
    while path:
        family = ENDPOINTS.get(path)
        if family is not None:
            return family
        path = path.rsplit("/", 1)[0]  # /responses/resp_123 -> /responses
    return None


def family_of_model(model: str) -> str:
    """The family a model name implies; completions when no rule matches."""
    name = model.strip().lower()
    for pattern, family in MODEL_RULES:
        if pattern.search(name):
            return family
    return COMPLETIONS


def detect_family(*, family: str | None, endpoint: str | None, model: str) -> str | None:
    """A local record's family: its ``family`` field, its ``endpoint``, else its model name.

    Returns None only when a ``family`` or ``endpoint`` is given and names nothing known (the
    record is then skipped as ``bad_family``, never silently counted as completions).
    """
    if family is not None and family.strip():
        return family_name(family)
    if endpoint is not None and endpoint.strip():
        return family_of_endpoint(endpoint)
    return family_of_model(model)
