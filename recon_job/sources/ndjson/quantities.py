"""What a log record counts beyond its input, cached and output tokens, family by family.

The general path of :class:`~recon_job.sources.ndjson.records.RecordParser` reads here, from the
record's usage object as each API returns it (or from the fields mapped in ``[logs.fields]``):

* token classes (every family): input details (``prompt_tokens_details``,
  ``input_tokens_details``, the Realtime API's ``input_token_details``) give ``audio_tokens``,
  ``image_tokens`` and ``cache_write_tokens``, and ``cached_tokens_details`` the cached part of
  audio and image; output details give ``audio_tokens`` and ``image_tokens``: those of the
  record's own API (``completion_tokens_details`` beside ``prompt_tokens``, else
  ``output_tokens_details``), or the Realtime API's ``output_token_details``. The Realtime-style
  names (``input_token_details``, ``output_token_details``) are read inside a usage object
  only, never at a flat record's top level. The APIs count audio
  and image input *with* its cached part; :class:`~recon_job.models.Usage` keeps uncached and
  cached apart (reference §1.5), so without a cached split the audio/image input is uncached as
  far as the uncached input reaches, and cached beyond it (as old Usage pages are read).
  ``input_tokens`` stays the whole input, each token in exactly one class.
* images: ``images``, else the length of the response's ``data``, else ``n``, else 1 (the
  API's default ``n``); ``size`` and ``quality`` make the price variant. An image model's
  output tokens (gpt-image-1) are image tokens.
* speech: ``characters``, else the length of the ``input`` text.
* transcription: ``seconds`` (``usage.seconds`` of a ``duration`` usage), else ``duration``
  (verbose_json), rounded to the nearest whole second, half up: OpenAI counts whole seconds
  (the Usage API's ``seconds`` is an int64) and bills per minute "rounded to the nearest second".
* code-interpreter ``sessions`` and search ``calls``: the field, else 1 per record.
* vector stores: ``usage_bytes`` (or ``bytes``), a level: a day's figure is the largest logged.

A speech or transcription record needs its characters or seconds unless it carries token usage
(the token-billed models); a vector-store record needs its bytes. Otherwise it is skipped as
``missing_quantity``; a count that is not a whole non-negative number as ``bad_quantity``;
token classes that exceed their total as ``token_classes_exceed_total``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from recon_job.families import EXTRA_TOKEN_CLASSES
from recon_job.models import EMPTY, Usage
from recon_job.sources.base import MAX_TOKENS

#: Objects of a usage holding input token classes, in the order they are tried.
INPUT_DETAILS: tuple[str, ...] = (
    "prompt_tokens_details",
    "input_tokens_details",
    "input_token_details",
)
#: Objects of a usage holding output token classes, in the order they are tried.
OUTPUT_DETAILS: tuple[str, ...] = (
    "completion_tokens_details",
    "output_tokens_details",
    "output_token_details",
)
#: Keys of an input details object that make a record more than plain text tokens; the fast
#: path hands a record with a non-zero one to the general path.
INPUT_CLASS_KEYS: tuple[str, ...] = ("audio_tokens", "image_tokens", "cache_write_tokens")
#: Likewise for an output details object.
OUTPUT_CLASS_KEYS: tuple[str, ...] = ("audio_tokens", "image_tokens")

#: The canonical names of the token classes, as ``[logs.fields]`` maps them.
CLASS_FIELDS: tuple[str, ...] = EXTRA_TOKEN_CLASSES

#: ``pick(name, auto)``: the value at the path mapped for canonical field ``name``, else
#: ``auto`` (what the built-in shapes hold).
Pick = Callable[[str, Any], Any]


@dataclass(frozen=True, slots=True)
class Skip:
    """What a step of the parser returns instead of its value: the line's verdict.

    A skip reason, or ``outside_window``. A class of its own because some steps' values are
    strings too (a model name, an id).
    """

    reason: str


def whole(value: Any, bad: str = "bad_tokens", negative: str = "negative_tokens") -> int | Skip:
    """A count, or why it is unusable: not a whole number, negative, or above ``MAX_TOKENS``."""
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is not int:
        return Skip(bad)
    if value < 0:
        return Skip(negative)
    return value if value <= MAX_TOKENS else Skip(bad)


def _dict(obj: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    """The first of ``keys`` in ``obj`` holding an object (empty when none does)."""
    for key in keys:
        value = obj.get(key)
        if value is not None:
            return value if type(value) is dict else {}
    return {}


def _count(value: Any) -> int | Skip:
    return 0 if value is None else whole(value)


def token_classes(
    pick: Pick, usage: dict[str, Any], family: str, totals: tuple[int, int, int], nested: bool
) -> Usage | Skip:
    """The token classes of one record (cache-write, audio and image, in and out).

    ``totals`` are its input, cached and output tokens; ``nested``: ``usage`` is a usage
    object, not the record itself (only there are Realtime-style details objects read).
    """
    inp, cached, out = totals
    names = len(INPUT_DETAILS) if nested else 2
    details = _dict(usage, INPUT_DETAILS[:names])
    cached_details = details.get("cached_tokens_details")
    cached_details = cached_details if type(cached_details) is dict else {}
    # The output details of the record's own API: Chat's with prompt_tokens, else Responses'.
    own = OUTPUT_DETAILS[0] if usage.get("prompt_tokens") is not None else OUTPUT_DETAILS[1]
    out_details = _dict(usage, (own, OUTPUT_DETAILS[2]) if nested else (own,))
    counts: dict[str, int] = {}
    for name, auto in zip(
        CLASS_FIELDS,
        (
            details.get("cache_write_tokens"),
            details.get("audio_tokens"),
            cached_details.get("audio_tokens"),
            details.get("image_tokens"),
            cached_details.get("image_tokens"),
            out_details.get("audio_tokens"),
            out_details.get("image_tokens"),
        ),
        strict=True,
    ):
        count = _count(pick(name, auto))
        if isinstance(count, Skip):
            return count
        counts[name] = count
    write = counts["cache_write_tokens"]
    uncached = inp - cached - write
    if uncached < 0:
        return Skip("cached_exceeds_input")
    audio, cached_audio = split_class(
        counts["input_audio_tokens"], counts["cached_audio_tokens"], uncached
    )
    image, cached_image = split_class(
        counts["input_image_tokens"], counts["cached_image_tokens"], uncached - audio
    )
    out_audio, out_image = counts["output_audio_tokens"], counts["output_image_tokens"]
    if family == "images" and not out_image and out_details.get("text_tokens") is None:
        out_image = out - out_audio  # an image model's output is images
    if (
        audio + image > uncached
        or cached_audio + cached_image > cached
        or out_audio + out_image > out
        or min(audio, cached_audio, image, cached_image) < 0
    ):
        return Skip("token_classes_exceed_total")
    if not (write or audio or cached_audio or image or cached_image or out_audio or out_image):
        return EMPTY
    return Usage(
        cache_write_tokens=write,
        input_audio_tokens=audio,
        cached_audio_tokens=cached_audio,
        input_image_tokens=image,
        cached_image_tokens=cached_image,
        output_audio_tokens=out_audio,
        output_image_tokens=out_image,
    )


def split_class(total: int, cached: int | None, room: int) -> tuple[int, int]:
    """(uncached, cached) parts of a modality's input ``total`` (cached ones included).

    With no cached part logged (0), the uncached part is as much as ``room`` allows and the
    rest is cached, as old Usage pages are read.
    """
    if cached:
        return total - cached, cached
    uncached = min(total, max(room, 0))
    return uncached, total - uncached


def _number(value: Any) -> int | Skip | None:
    """Whole seconds of a duration (int or float seconds), rounded half up; None when absent."""
    if value is None:
        return None
    if type(value) is int:
        return whole(value, "bad_quantity", "bad_quantity")
    if type(value) is not float or value != value or value in (float("inf"), float("-inf")):
        return Skip("bad_quantity")
    rounded = int(Decimal(str(value)).to_integral_value(ROUND_HALF_UP))
    return whole(rounded, "bad_quantity", "bad_quantity")


def _quantity(value: Any, default: int | None) -> int | Skip | None:
    if value is None:
        return default
    return whole(value, "bad_quantity", "bad_quantity")


def family_quantities(  # noqa: C901 -- one short rule per family
    pick: Pick, obj: dict[str, Any], usage: dict[str, Any], family: str, has_tokens: bool
) -> tuple[Usage, str | None] | Skip:
    """The family's own quantity of one record, and the image price variant (or None)."""
    response = obj.get("response")
    response = response if type(response) is dict else {}
    if family == "images":
        data = obj.get("data", response.get("data"))
        auto = obj.get("images")
        if auto is None:
            auto = len(data) if type(data) is list else obj.get("n")
        images = _quantity(pick("images", auto), 1)
        if isinstance(images, Skip) or images is None:
            return images or Skip("bad_quantity")
        return Usage(images=images), _variant(
            pick("size", obj.get("size")), pick("quality", obj.get("quality"))
        )
    if family == "audio_speeches":
        text = obj.get("input")
        raw = pick("characters", obj.get("characters", len(text) if type(text) is str else None))
        characters = _quantity(raw, 0 if has_tokens else None)
        if characters is None:
            return Skip("missing_quantity")
        return characters if isinstance(characters, Skip) else (Usage(characters=characters), None)
    if family == "audio_transcriptions":
        auto = obj.get("seconds", usage.get("seconds"))
        if auto is None:
            auto = obj.get("duration", response.get("duration"))
        seconds = _number(pick("seconds", auto))
        if seconds is None:
            seconds = 0 if has_tokens else Skip("missing_quantity")
        return seconds if isinstance(seconds, Skip) else (Usage(seconds=seconds), None)
    if family == "code_interpreter_sessions":
        sessions = _quantity(pick("sessions", obj.get("sessions")), 1)
        return sessions if isinstance(sessions, Skip) else (Usage(sessions=sessions or 0), None)
    if family in ("file_search_calls", "web_search_calls"):
        calls = _quantity(pick("calls", obj.get("calls")), 1)
        return calls if isinstance(calls, Skip) else (Usage(calls=calls or 0), None)
    if family == "vector_stores":
        stored = _quantity(pick("usage_bytes", obj.get("usage_bytes", obj.get("bytes"))), None)
        if stored is None:
            return Skip("missing_quantity")
        return stored if isinstance(stored, Skip) else (Usage(usage_bytes=stored), None)
    return Usage(), None


def _variant(size: Any, quality: Any) -> str | None:
    """``SIZE/QUALITY`` in lower case (``1024x1024/hd``), the size alone, or None."""
    if type(size) is not str or not size.strip():
        return None
    name = size.strip().lower()
    if type(quality) is str and quality.strip():
        name += "/" + quality.strip().lower()
    return name
