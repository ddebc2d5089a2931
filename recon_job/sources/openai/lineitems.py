"""Which usage family, model and piece a billed Costs line item belongs to: a pure table.

The Costs API has no ``model`` field; its ``line_item`` is free text that changes over time
(reference §1.8): ``"gpt-4o-2024-08-06, cached input"``, ``"priority | gpt-5.6-sol, output, long
context"``, ``"gpt-audio-mini-2025-12-15 audio, input"``, ``"whisper-1, audio"``, ``"Vector
storage"``, ``"web search tool calls"``, and the spec's ``"input_tokens"`` / ``"Image models"``.
:func:`map_line_item` turns each into an :class:`Attribution` — never failing: what no rule knows
goes to family ``other`` under its verbatim text, so it is listed, never dropped.

The order of the rules: the user's ``[families.line_items]`` patterns, then the named items
without a model (:data:`NAMED_ITEMS`), then ``<model>, <piece>`` with the family the model name
implies (:func:`recon_job.families.family_of_model`) or the piece names (``web search tool
calls``), then a bare ``<model>, <anything>`` whose model belongs to a family other than
completions (``"dall-e-3, 1024x1024, hd"``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from recon_job.families import COMPLETIONS, MODEL_RULES, OTHER, PRODUCT_MODELS, SPECS

#: The model of billed usage of a family whose line item names no model: the product names of
#: :data:`recon_job.families.PRODUCT_MODELS`, ``web-search`` for web search tool calls, else
#: ``(<family>)``. Local records of those products use the same names, so the groups meet.
BILLED_MODELS: Mapping[str, str] = {**PRODUCT_MODELS, "web_search_calls": "web-search"}

# "<tier> | " prefix of a service tier other than the default (reference §1.8).
_TIER = re.compile(r"^(?P<tier>[A-Za-z]+) \| (?P<rest>.+)$")
# Reference §1.8's suggested parse, without the tier (taken off first).
_MODEL_PIECE = re.compile(
    r"(?P<model>[^,]+?)(?: (?P<modality>text|audio|image))?"
    r", (?P<piece>input|output|cached input|cache writes|[^,]+)(?P<long>, long context)?"
)
# Anything shaped "<model>, <more>" (a piece with commas of its own).
_MODEL_FIRST = re.compile(r"(?P<model>[^,\s][^,]*?), (?P<piece>.+)")


@dataclass(frozen=True, slots=True)
class Attribution:
    """What one billed line item is: a family, a model and the piece billed."""

    #: A family of :data:`recon_job.families.FAMILIES`, or ``other`` when no rule knows it.
    family: str
    #: Model snapshot as billed; a product name (:data:`BILLED_MODELS`) for items without one;
    #: the line item text verbatim for family ``other``.
    model: str
    #: What is billed: ``input``, ``output``, ``cached input``, ``cache writes``, ``audio``,
    #: ``calls``, ``sessions``, ``storage``, ``tokens`` ...; ``""`` when unknown.
    piece: str = ""
    #: Service tier prefix (``priority``, ``flex``, ``batch``), None for the default tier.
    tier: str | None = None
    #: ``text``, ``audio`` or ``image`` when the line item names one.
    modality: str | None = None
    #: True for the ``, long context`` variant.
    long_context: bool = False


#: Line items that name no model, lower case, after any tier prefix: family and piece.
NAMED_ITEMS: Mapping[str, tuple[str, str]] = {
    "web search tool calls": ("web_search_calls", "calls"),
    "web search calls": ("web_search_calls", "calls"),
    "file search tool calls": ("file_search_calls", "calls"),
    "file search calls": ("file_search_calls", "calls"),
    "code interpreter sessions": ("code_interpreter_sessions", "sessions"),
    "code interpreter": ("code_interpreter_sessions", "sessions"),
    "vector storage": ("vector_stores", "storage"),
    "vector stores": ("vector_stores", "storage"),
    # The spec's examples and CodexBar#999: labels of token spend without a model.
    "text tokens": (COMPLETIONS, "tokens"),
    "input_tokens": (COMPLETIONS, "input"),
    "output_tokens": (COMPLETIONS, "output"),
    "input_cached_tokens": (COMPLETIONS, "cached input"),
    "audio tokens": (COMPLETIONS, "audio"),
    "image models": ("images", "images"),
    "embedding models": ("embeddings", "input"),
}
#: Pieces that say the family whatever the model (``"gpt-4o-search-preview, web search tool
#: calls"``).
FAMILY_PIECES: Mapping[str, str] = {
    piece: family
    for piece, (family, _) in NAMED_ITEMS.items()
    if family not in (COMPLETIONS, "images", "embeddings")
}


@dataclass(frozen=True, slots=True)
class LineItemRules:
    """The user's ``[families.line_items]`` patterns, compiled: tried first, in order."""

    #: (pattern, family) pairs; a named group ``model`` in a pattern picks the model.
    patterns: tuple[tuple[re.Pattern[str], str], ...] = ()

    @classmethod
    def compile(cls, patterns: Mapping[str, str] | Iterable[tuple[str, str]]) -> LineItemRules:
        """Rules from validated ``regex -> family`` pairs (``re.error`` on a bad pattern)."""
        items = patterns.items() if isinstance(patterns, Mapping) else patterns
        return cls(tuple((re.compile(p, re.IGNORECASE), family) for p, family in items))


NO_RULES = LineItemRules()


def billed_model(family: str) -> str:
    """The model of a billed line item of ``family`` that names no model."""
    return BILLED_MODELS.get(family, f"({family})")


def map_line_item(text: str, rules: LineItemRules = NO_RULES) -> Attribution:
    """The family, model and piece of a Costs ``line_item``; never raises.

    What no rule maps is family ``other`` with the text verbatim as its model.
    """
    stripped = text.strip()
    for pattern, family in rules.patterns:
        match = pattern.search(stripped)
        if match is not None:
            return _by_user(stripped, family, match)
    tier, rest = _split_tier(stripped)
    found = _known(rest, tier)
    return found if found is not None else Attribution(OTHER, text)


def _split_tier(text: str) -> tuple[str | None, str]:
    match = _TIER.match(text)
    if match is None:
        return None, text
    return match["tier"].lower(), match["rest"].strip()


def _known(text: str, tier: str | None) -> Attribution | None:
    """The built-in rules on a line item without its tier prefix; None when none applies."""
    named = NAMED_ITEMS.get(text.lower())
    if named is not None:
        family, piece = named
        return Attribution(family, billed_model(family), piece, tier)
    match = _MODEL_PIECE.fullmatch(text)
    if match is not None:
        model, piece = match["model"].strip(), match["piece"].strip()
        family = FAMILY_PIECES.get(piece.lower()) or _family_of(model) or COMPLETIONS
        return Attribution(
            family, model, piece, tier, match["modality"], long_context=match["long"] is not None
        )
    loose = _MODEL_FIRST.fullmatch(text)
    if loose is not None:
        implied = _family_of(loose["model"].strip())
        if implied is not None:
            return Attribution(implied, loose["model"].strip(), loose["piece"].strip(), tier)
    return None


def _family_of(model: str) -> str | None:
    """The family a model-name rule gives (embeddings, images, audio ...), None for none."""
    name = model.lower()
    return next((family for pattern, family in MODEL_RULES if pattern.search(name)), None)


def _by_user(text: str, family: str, match: re.Match[str]) -> Attribution:
    """A line item a user pattern matched: its ``model`` group, the parsed model, or the
    family's product name (the text itself for ``other``)."""
    tier, rest = _split_tier(text)
    parsed = _MODEL_PIECE.fullmatch(rest)
    piece = parsed["piece"].strip() if parsed is not None else ""
    if "model" in match.re.groupindex and match["model"]:
        model = match["model"].strip()
    elif parsed is not None:
        model = parsed["model"].strip()
    elif family == OTHER:
        model = text
    else:
        model = billed_model(family)
    return Attribution(family, model, piece, tier)


def per_family_models(models: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Families billed without a model, from the (family, model) pairs of the billed groups.

    A family OpenAI reports per model (completions, web search ...) whose cost comes in a line
    item that names no model (``"web search tool calls"``) can only be compared as a whole: the
    caller keys every group of it, on both sides, under that one model.
    """
    return {
        family: model
        for family, model in models
        if family in SPECS and SPECS[family].by_model and model == billed_model(family)
    }
