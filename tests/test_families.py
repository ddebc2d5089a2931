"""The families table, local family detection, and judging groups of every family (issue 10)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from recon_job.causes import likely_causes
from recon_job.compare import Rules, compare_usage, reconcile
from recon_job.families import (
    FAMILIES,
    PRODUCT_MODELS,
    SPECS,
    deciding,
    detect_family,
    family_of_endpoint,
    family_of_model,
    parse_families,
)
from recon_job.models import (
    Status,
    Tolerance,
    Usage,
    UsageKey,
    UsageTotals,
    Window,
    group_order,
    window_total,
)

DAY = date(2026, 11, 2)
WINDOW = Window("daily", DAY, date(2026, 11, 3))


def totals(groups: dict[UsageKey, Usage]) -> UsageTotals:
    return UsageTotals(groups=groups)


def test_every_family_has_its_endpoint_and_only_the_group_by_values_the_spec_lists() -> None:
    assert tuple(SPECS) == FAMILIES
    assert SPECS["vector_stores"].group_by == ("project_id",)
    assert SPECS["code_interpreter_sessions"].group_by == ("project_id",)
    assert "model" not in SPECS["file_search_calls"].group_by
    assert SPECS["file_search_calls"].result_object == "organization.usage.file_searches.result"
    assert SPECS["web_search_calls"].path == "/organization/usage/web_search_calls"
    assert {f for f in FAMILIES if not SPECS[f].by_model} == set(PRODUCT_MODELS)
    assert [f for f in FAMILIES if SPECS[f].counts_tokens] == [
        "completions",
        "embeddings",
        "moderations",
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("all", FAMILIES),
        ("images, completions", ("completions", "images")),
        (["Embeddings", "web_search_calls"], ("embeddings", "web_search_calls")),
    ],
)
def test_families_are_parsed_in_report_order(
    value: str | list[str], expected: tuple[str, ...]
) -> None:
    assert parse_families(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("completions,imagez,speech", "unknown families imagez, speech; known: completions"),
        ("", "no family named"),
    ],
)
def test_a_bad_family_name_is_named_with_the_known_ones(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_families(value)


@pytest.mark.parametrize(
    ("endpoint", "family"),
    [
        ("/v1/embeddings", "embeddings"),
        ("https://api.openai.com/v1/audio/speech", "audio_speeches"),
        ("/v1/audio/transcriptions?x=1", "audio_transcriptions"),
        ("/v1/audio/translations", "audio_transcriptions"),
        ("/v1/images/generations", "images"),
        ("/v1/images/edits", "images"),
        ("/v1/moderations", "moderations"),
        ("/v1/responses/resp_123", "completions"),
        ("/v1/chat/completions", "completions"),
        ("v1/embeddings/", "embeddings"),
        ("/v1/files", None),
    ],
)
def test_an_endpoint_names_its_family(endpoint: str, family: str | None) -> None:
    assert family_of_endpoint(endpoint) == family


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("text-embedding-3-small", "embeddings"),
        ("text-embedding-ada-002", "embeddings"),
        ("omni-moderation-latest", "moderations"),
        ("text-moderation-007", "moderations"),
        ("whisper-1", "audio_transcriptions"),
        ("gpt-4o-mini-transcribe", "audio_transcriptions"),
        ("tts-1-hd", "audio_speeches"),
        ("gpt-4o-mini-tts-2025-03-20", "audio_speeches"),
        ("dall-e-3", "images"),
        ("gpt-image-1", "images"),
        ("gpt-4o-audio-preview", "completions"),
        ("gpt-realtime", "completions"),
        ("gpt-5", "completions"),
    ],
)
def test_a_model_name_implies_its_family(model: str, family: str) -> None:
    assert family_of_model(model) == family


def test_detection_order_is_family_then_endpoint_then_model() -> None:
    assert detect_family(family="speech", endpoint="/v1/embeddings", model="gpt-4o") == (
        "audio_speeches"
    )
    assert detect_family(family=None, endpoint="/v1/embeddings", model="gpt-4o") == "embeddings"
    assert detect_family(family="", endpoint=" ", model="whisper-1") == "audio_transcriptions"
    # A field that names nothing known is never silently counted as completions.
    assert detect_family(family="telepathy", endpoint=None, model="gpt-4o") is None
    assert detect_family(family=None, endpoint="/v1/files", model="gpt-4o") is None


def test_groups_sort_by_day_then_family_in_report_order() -> None:
    keys = [
        UsageKey(DAY, "a", family="web_search_calls"),
        UsageKey(DAY, "z", family="completions"),
        UsageKey(DAY, "b", family="other"),
        UsageKey(DAY, "c", family="embeddings"),
    ]
    assert [k.family for k in sorted(keys, key=group_order)] == [
        "completions",
        "embeddings",
        "web_search_calls",
        "other",
    ]


def test_each_family_is_judged_by_its_own_quantity() -> None:
    tolerance = Tolerance()
    # Two images instead of ten: a mismatch though no token is involved.
    images = compare_usage(
        Usage(images=2, requests=1), Usage(images=10, requests=1), tolerance, family="images"
    )
    assert images.deciding == deciding("images") == ("images", "requests", "cost")
    assert images.metric("images") is not None
    assert images.exceeds
    # 30 seconds of transcription is under the 60 s floor: noise.
    seconds = compare_usage(
        Usage(seconds=630, requests=3),
        Usage(seconds=600, requests=3),
        tolerance,
        family="audio_transcriptions",
    )
    assert not seconds.exceeds
    assert seconds.extra["seconds"].difference == 30
    # Token classes are shown only where some exist, and never decide.
    audio = compare_usage(
        Usage(input_tokens=5000, input_audio_tokens=5000, requests=1),
        Usage(input_tokens=5000, input_audio_tokens=0, requests=1),
        tolerance,
    )
    assert set(audio.extra) == {"input_audio_tokens"}
    assert audio.extra["input_audio_tokens"].exceeds
    assert not audio.exceeds


def test_the_token_classes_follow_openais_identities() -> None:
    usage = Usage(
        input_tokens=1000,
        cached_tokens=400,
        cache_write_tokens=100,
        input_audio_tokens=50,
        cached_audio_tokens=50,
        input_image_tokens=50,
        cached_image_tokens=50,
        output_tokens=500,
        output_audio_tokens=50,
        output_image_tokens=50,
    )
    # The spec's own example (reference §1.6): uncached 500, text 400, cached text 300.
    assert usage.uncached_input_tokens == 500
    assert usage.input_text_tokens == 400
    assert usage.cached_text_tokens == 300
    assert usage.output_text_tokens == 400


def test_stored_bytes_are_a_level_never_summed_over_days() -> None:
    day2 = date(2026, 11, 3)
    groups = [
        (UsageKey(DAY, "vector-storage", "proj_a", family="vector_stores"), Usage(usage_bytes=5)),
        (UsageKey(DAY, "vector-storage", "proj_b", family="vector_stores"), Usage(usage_bytes=1)),
        (UsageKey(day2, "vector-storage", "proj_a", family="vector_stores"), Usage(usage_bytes=7)),
        (UsageKey(day2, "vector-storage", "proj_b", family="vector_stores"), Usage(usage_bytes=2)),
        (UsageKey(day2, "gpt-4o"), Usage(input_tokens=3, cost=Decimal("0.5"))),
    ]
    total = window_total(groups)
    assert total.usage_bytes == 9  # the last day, both projects
    assert total.input_tokens == 3
    assert total.cost == Decimal("0.5")


def test_a_family_the_app_does_not_log_is_untracked_not_a_drift() -> None:
    chat = UsageKey(DAY, "gpt-4o")
    embed = UsageKey(DAY, "text-embedding-3-small", family="embeddings")
    local = totals({chat: Usage(1000, 0, 100, 1, Decimal("0.0035"))})
    official = totals(
        {
            chat: Usage(1000, 0, 100, 1, Decimal("0.0035")),
            embed: Usage(input_tokens=1_000_000, requests=1, cost=Decimal("0.02")),
        }
    )
    result = reconcile(local, official, window=WINDOW, tolerance=Tolerance())
    assert result.status is Status.RECONCILED
    assert [g.status for g in result.groups] == [Status.RECONCILED, Status.UNTRACKED]
    assert result.untracked["embeddings"].cost == Decimal("0.02")
    assert result.openai.cost == Decimal("0.0035")  # untracked stays out of the totals
    assert not result.mismatches

    strict = reconcile(
        local, official, window=WINDOW, tolerance=Tolerance(), rules=Rules(untracked="mismatch")
    )
    assert strict.status is Status.MISMATCH


def test_no_local_record_at_all_is_a_logging_gap_judged_as_a_mismatch_not_untracked() -> None:
    # A logging outage made every family untracked: "reconciled", exit 0, all clear.
    chat = UsageKey(DAY, "gpt-4o")
    odd = UsageKey(DAY, "Mystery surcharge", family="other")
    official = totals(
        {chat: Usage(59_200, 0, 10_646, 10, Decimal("0.92")), odd: Usage(cost=Decimal("3"))}
    )
    result = reconcile(totals({}), official, window=WINDOW, tolerance=Tolerance())
    assert result.status is Status.MISMATCH
    assert [(g.key.family, g.status) for g in result.groups] == [
        ("completions", Status.MISMATCH),
        ("other", Status.UNTRACKED),  # line items of no family are never compared
    ]
    assert result.openai.cost == Decimal("0.92")
    assert list(result.untracked) == ["other"]
    assert likely_causes(result)[0].startswith(
        "Your side has no record at all in this window while OpenAI counted 10 requests"
    )
    # Only OpenAI's "requests missing" and "models only at OpenAI" would say it less clearly.
    assert len(likely_causes(result)) == 1
    # Nothing on either side is nothing to say.
    assert reconcile(totals({}), totals({}), window=WINDOW, tolerance=Tolerance()).status is (
        Status.RECONCILED
    )


def test_a_tracked_family_that_drifts_is_still_a_mismatch() -> None:
    embed = UsageKey(DAY, "text-embedding-3-small", family="embeddings")
    local = totals({embed: Usage(input_tokens=1_000_000, requests=1, cost=Decimal("0.02"))})
    official = totals({embed: Usage(input_tokens=500_000, requests=1, cost=Decimal("0.01"))})
    result = reconcile(local, official, window=WINDOW, tolerance=Tolerance())
    assert result.status is Status.MISMATCH
    assert result.untracked == {}


def test_unmapped_line_items_are_listed_apart_and_never_dropped() -> None:
    chat = UsageKey(DAY, "gpt-4o")
    odd = UsageKey(DAY, "Mystery surcharge", family="other")
    local = totals({chat: Usage(10, 0, 1, 1, Decimal("1"))})
    official = totals({chat: Usage(10, 0, 1, 1, Decimal("1")), odd: Usage(cost=Decimal("3"))})
    result = reconcile(local, official, window=WINDOW, tolerance=Tolerance())
    assert result.untracked["other"].cost == Decimal("3")
    assert [g.key.model for g in result.groups if g.status is Status.UNTRACKED] == [
        "Mystery surcharge"
    ]


def test_only_the_listed_families_are_compared() -> None:
    chat = UsageKey(DAY, "gpt-4o")
    image = UsageKey(DAY, "dall-e-3", family="images")
    local = totals({chat: Usage(10, 0, 1, 1, Decimal("1")), image: Usage(images=1)})
    official = totals({chat: Usage(10, 0, 1, 1, Decimal("1")), image: Usage(images=9)})
    rules = Rules(families=frozenset({"completions"}))
    result = reconcile(local, official, window=WINDOW, tolerance=Tolerance(), rules=rules)
    assert result.status is Status.RECONCILED
    assert [g.key.family for g in result.groups] == ["completions"]


def test_unavailable_families_of_either_side_are_reported() -> None:
    official = UsageTotals(unavailable_families=("web_search_calls", "file_search_calls"))
    result = reconcile(UsageTotals(), official, window=WINDOW, tolerance=Tolerance())
    assert result.unavailable_families == ("file_search_calls", "web_search_calls")


def test_a_family_openai_could_not_count_is_judged_by_its_dollars_alone() -> None:
    chat = UsageKey(DAY, "gpt-4o")
    search = UsageKey(DAY, "gpt-4o", family="web_search_calls")
    local = totals(
        {
            chat: Usage(1000, 0, 100, 1, Decimal("1")),
            search: Usage(calls=40, requests=40, cost=Decimal("0.40")),
        }
    )
    # The endpoint answered 404: the Costs API still bills the calls, with no quantities.
    official = UsageTotals(
        groups={chat: Usage(1000, 0, 100, 1, Decimal("1")), search: Usage(cost=Decimal("0.40"))},
        unavailable_families=("web_search_calls",),
    )
    result = reconcile(local, official, window=WINDOW, tolerance=Tolerance())
    assert result.status is Status.RECONCILED
    assert [g.status for g in result.groups] == [Status.RECONCILED, Status.RECONCILED]
    assert result.groups[1].comparison.deciding == ("cost",)
    assert result.groups[1].local.calls == 40  # shown, not judged
    # Totals: every dollar, quantities only where both sides could count them.
    assert result.local.cost == result.openai.cost == Decimal("1.40")
    assert result.local.calls == 0
    assert result.local.requests == 1

    billed_more = replace_cost(official, search, Decimal("0.90"))
    drifted = reconcile(local, billed_more, window=WINDOW, tolerance=Tolerance())
    assert drifted.status is Status.MISMATCH
    assert [g.key.family for g in drifted.mismatches] == ["web_search_calls"]


@pytest.mark.parametrize(
    ("family", "model", "quantity", "counted"),
    [
        ("audio_transcriptions", "gpt-4o-transcribe", "seconds", 610),
        ("audio_speeches", "gpt-4o-mini-tts", "characters", 4500),
    ],
)
def test_a_token_billed_model_logged_by_its_tokens_is_judged_by_requests_and_dollars(
    family: str, model: str, quantity: str, counted: int
) -> None:
    # gpt-4o-transcribe answers with tokens and no duration (gpt-4o-mini-tts: no character
    # count); OpenAI's usage counts the seconds (characters) and bills the tokens.
    key = UsageKey(DAY, model, family=family)
    billed = Decimal("0.00112")
    logged = Usage(input_tokens=120, input_audio_tokens=120, output_tokens=40, requests=1)
    local = totals({key: replace(logged, cost=billed)})
    official = totals({key: Usage(requests=1, cost=billed, **{quantity: counted})})
    result = reconcile(local, official, window=WINDOW, tolerance=Tolerance())
    assert result.status is Status.RECONCILED
    [group] = result.groups
    assert group.comparison.deciding == ("requests", "cost")
    assert group.comparison.extra[quantity].difference == -counted  # shown, not judged
    assert result.local.quantity(quantity) == result.openai.quantity(quantity) == 0
    assert not result.comparison.exceeds

    # Its requests and dollars still decide.
    missed = totals({key: Usage(requests=3, cost=3 * billed, **{quantity: 3 * counted})})
    assert reconcile(local, missed, window=WINDOW, tolerance=Tolerance()).status is Status.MISMATCH
    # A log with the quantity and no tokens is judged by it, as before.
    measured = totals({key: Usage(requests=1, cost=billed, **{quantity: counted // 3})})
    drifted = reconcile(measured, official, window=WINDOW, tolerance=Tolerance())
    assert drifted.status is Status.MISMATCH
    assert drifted.groups[0].comparison.deciding == deciding(family)


def replace_cost(totals_: UsageTotals, key: UsageKey, cost: Decimal) -> UsageTotals:
    return UsageTotals(
        groups={**totals_.groups, key: Usage(cost=cost)},
        unavailable_families=totals_.unavailable_families,
    )


def test_a_completions_alert_keeps_its_identity_and_other_families_get_their_own() -> None:
    from recon_job.alerts import fingerprint, fingerprint_day

    chat = UsageKey(DAY, "gpt-4o", "proj_1")
    assert fingerprint(chat) == '["2026-11-02","gpt-4o","proj_1",null]'  # as before families
    search = UsageKey(DAY, "gpt-4o", "proj_1", family="web_search_calls")
    assert fingerprint(search) == '["2026-11-02","gpt-4o","proj_1",null,"web_search_calls"]'
    assert fingerprint_day(fingerprint(search)) == DAY
