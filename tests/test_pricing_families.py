"""Pricing of every usage family and token class (recon_job.pricing), exact to the last digit.

Each test prices a usage a family logs with the bundled table (or a small table made for the
rule at hand) and checks the figure worked out by hand from the rates in
``recon_job/data/pricing.toml``.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from recon_job.config.prices import load_price_table, price_table_from
from recon_job.models import Usage
from recon_job.pricing import LongContext, PriceTable, Rates

D = Decimal
DAY = date(2026, 1, 15)
M = 1_000_000


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return load_price_table()


# --- token classes ------------------------------------------------------------------------------


def test_gpt_realtime_prices_each_token_class_at_its_own_rate(table: PriceTable) -> None:
    usage = Usage(
        input_tokens=10 * M,
        cached_tokens=3 * M,
        input_audio_tokens=2 * M,
        cached_audio_tokens=1 * M,
        input_image_tokens=1 * M,
        cached_image_tokens=1 * M,
        output_tokens=4 * M,
        output_audio_tokens=3 * M,
    )
    # text in: 10 - 3 cached - 2 audio - 1 image = 4M × 4.00; cached text 1M × 0.40;
    # audio 2M × 32.00, cached audio 1M × 0.40; image 1M × 5.00, cached image 1M × 0.50;
    # text out 1M × 16.00; audio out 3M × 64.00.
    expected = D("16.00") + D("0.40") + D("64.00") + D("0.40") + D("5.00") + D("0.50")
    expected += D("16.00") + D("192.00")

    assert table.cost("gpt-realtime-2025-08-28", DAY, "standard", usage) == expected


def test_cache_writes_are_priced_apart_and_unpriced_without_a_rate() -> None:
    rates = Rates(input=D("3"), cached_input=D("0.30"), cache_write=D("3.75"), output=D(15))
    usage = Usage(input_tokens=1_000, cached_tokens=200, cache_write_tokens=300, output_tokens=10)

    # 500 uncached × 3 + 200 × 0.30 + 300 × 3.75 + 10 × 15, per 1M.
    assert rates.cost(usage) == D("0.002835")
    assert Rates(input=D(3), cached_input=D("0.3"), output=D(15)).cost(usage) is None


def test_a_chat_model_without_audio_rates_leaves_audio_usage_unpriced(table: PriceTable) -> None:
    usage = Usage(input_tokens=100, input_audio_tokens=40, output_tokens=10)

    assert table.cost("gpt-4o", DAY, "standard", usage) is None
    assert table.cost("gpt-4o-audio-preview", DAY, "standard", usage) == (
        D(60) * D("2.50") + D(40) * D("40.00") + D(10) * D("10.00")
    ) / D(M)


def test_the_first_audio_preview_snapshot_keeps_its_launch_audio_price(table: PriceTable) -> None:
    usage = Usage(input_tokens=M, input_audio_tokens=M, output_tokens=M, output_audio_tokens=M)

    assert table.cost("gpt-4o-audio-preview-2024-10-01", DAY, "standard", usage) == D("300.00")
    assert table.cost("gpt-4o-audio-preview-2024-12-17", DAY, "standard", usage) == D("120.00")


def test_free_moderation_is_priced_at_zero_not_unpriced(table: PriceTable) -> None:
    usage = Usage(input_tokens=12_345, requests=3)

    assert table.cost("omni-moderation-latest", DAY, "standard", usage) == 0
    assert table.cost("omni-moderation-2024-09-26", DAY, "standard", usage) == 0


def test_embeddings_are_priced_per_1m_input_tokens(table: PriceTable) -> None:
    usage = Usage(input_tokens=2_500_000, requests=9)

    assert table.cost("text-embedding-ada-002", DAY, "standard", usage) == D("0.25")
    assert table.cost("text-embedding-3-small", DAY, "batch", usage) == D("0.025")


# --- long context -------------------------------------------------------------------------------

LONG = Rates(
    input=D("2.50"),
    cached_input=D("0.25"),
    output=D(15),
    long_context=LongContext(272_000, Rates(input=D(5), output=D("22.50"))),
)


def test_a_request_above_the_threshold_is_priced_at_the_long_context_rates() -> None:
    short = Usage(input_tokens=272_000, output_tokens=1_000, requests=1)
    long = Usage(input_tokens=272_001, cached_tokens=1, output_tokens=1_000, requests=1)

    assert LONG.cost(short) == (272_000 * D("2.50") + 1_000 * D(15)) / M
    # Cached input keeps its normal rate: the long-context table leaves it out.
    assert LONG.cost(long) == (272_000 * D(5) + 1 * D("0.25") + 1_000 * D("22.50")) / M


def test_a_sum_of_requests_above_the_threshold_is_unpriced_unless_the_caller_says() -> None:
    two = Usage(input_tokens=400_000, output_tokens=0, requests=2)
    many_short = Usage(input_tokens=200_000, requests=50)

    assert LONG.cost(two) is None
    assert LONG.cost(Usage(input_tokens=400_000)) is None  # requests unknown
    assert LONG.cost(two, long_context=False) == D(1)
    assert LONG.cost(two, long_context=True) == D(2)
    assert LONG.cost(many_short) == D("0.5")  # below the threshold: every request was short


def test_long_context_rates_are_read_from_the_file_and_halved_for_batch() -> None:
    data = {
        "models": {
            "m": [
                {
                    "effective": date(2025, 1, 1),
                    "input": "2.50",
                    "output": "15",
                    "long_context": {"threshold": 272000, "input": "5", "output": "22.50"},
                }
            ]
        }
    }
    table = price_table_from(data, "t.toml")
    usage = Usage(input_tokens=300_000, output_tokens=100_000, requests=1)

    assert table.cost("m", DAY, "standard", usage) == D("1.5") + D("2.25")
    assert table.cost("m", DAY, "batch", usage) == D("0.75") + D("1.125")
    assert table.cost("m", DAY, "standard", usage, long_context=False) == D("0.75") + D("1.5")


# --- images -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "variant", "each"),
    [
        ("dall-e-3", "1024x1024/standard", "0.040"),
        ("dall-e-3", "1792x1024/hd", "0.120"),
        ("dall-e-3", "1024X1792/HD", "0.120"),
        ("dall-e-2", "512x512", "0.018"),
        ("dall-e-2", "256x256/standard", "0.016"),
        ("gpt-image-1", "1024x1536/high", "0.25"),
        ("gpt-image-1-mini", "1024x1024/low", "0.005"),
    ],
)
def test_images_are_priced_per_image_by_size_and_quality(
    table: PriceTable, model: str, variant: str, each: str
) -> None:
    usage = Usage(images=7, requests=2)

    assert table.cost(model, DAY, "standard", usage, variant=variant) == 7 * D(each)


@pytest.mark.parametrize("variant", [None, "1024x1024", "2048x2048/hd", "1024x1024/ultra"])
def test_an_image_of_unknown_variant_is_unpriced(table: PriceTable, variant: str | None) -> None:
    assert table.cost("dall-e-3", DAY, "standard", Usage(images=1), variant=variant) is None


def test_a_model_with_one_image_price_needs_no_variant() -> None:
    rates = Rates(per_image=(("1024x1024", D("0.02")),))

    assert rates.cost(Usage(images=3)) == D("0.06")


def test_gpt_image_tokens_price_the_images_and_the_count_is_not_priced_again(
    table: PriceTable,
) -> None:
    usage = Usage(
        input_tokens=1_000,
        input_image_tokens=600,
        output_tokens=4_160,
        output_image_tokens=4_160,
        images=1,
    )
    # 400 text × 5.00 + 600 image × 10.00 + 4160 image out × 40.00, per 1M.
    expected = (400 * D(5) + 600 * D(10) + 4_160 * D(40)) / M

    assert table.cost("gpt-image-1", DAY, "standard", usage, variant="1024x1536/high") == expected


# --- speech, transcription, tools, storage --------------------------------------------------------


def test_speech_is_priced_per_1m_characters(table: PriceTable) -> None:
    usage = Usage(characters=123_456, requests=4)

    assert table.cost("tts-1", DAY, "standard", usage) == D("1.85184")
    assert table.cost("tts-1-hd", DAY, "standard", usage) == D("3.70368")


def test_transcription_is_priced_per_minute_from_whole_seconds(table: PriceTable) -> None:
    # 0.006 per minute is 0.0001 per second: 61 seconds cost 0.0061 exactly.
    assert table.cost("whisper-1", DAY, "standard", Usage(seconds=61)) == D("0.0061")
    assert table.cost("whisper-1", DAY, "standard", Usage(seconds=3_600)) == D("0.36")


def test_a_per_minute_rate_not_divisible_by_60_keeps_60_digits() -> None:
    cost = Rates(per_minute=D("0.017")).cost(Usage(seconds=1))

    assert cost is not None
    assert abs(cost * 60 - D("0.017")) < D("1e-55")


def test_token_billed_audio_models_count_seconds_and_characters_without_pricing_them(
    table: PriceTable,
) -> None:
    heard = Usage(input_tokens=1_000, input_audio_tokens=900, output_tokens=50, seconds=60)
    spoken = Usage(input_tokens=20, output_tokens=1_000, output_audio_tokens=1_000, characters=80)

    assert (
        table.cost("gpt-4o-transcribe", DAY, "standard", heard)
        == (100 * D("2.50") + 900 * D(6) + 50 * D(10)) / M
    )
    assert (
        table.cost("gpt-4o-mini-tts", DAY, "standard", spoken)
        == (20 * D("0.60") + 1_000 * D(12)) / M
    )


def test_seconds_alone_of_a_token_billed_model_are_unpriced_not_free(table: PriceTable) -> None:
    assert table.cost("gpt-4o-transcribe", DAY, "standard", Usage(seconds=60)) is None
    assert table.cost("gpt-4o-mini-tts", DAY, "standard", Usage(characters=500)) is None


def test_tool_calls_are_priced_per_1k(table: PriceTable) -> None:
    assert table.cost("web-search", DAY, "standard", Usage(calls=250, requests=250)) == D("2.5")
    assert table.cost("file-search", DAY, "standard", Usage(calls=3)) == D("0.0075")


def test_code_interpreter_is_priced_per_session(table: PriceTable) -> None:
    assert table.cost("code-interpreter", DAY, "standard", Usage(sessions=7)) == D("0.21")


def test_vector_storage_is_priced_per_gb_day_of_one_days_level(table: PriceTable) -> None:
    # 2.5 GB held on the day: 2.5 × 0.10.
    usage = Usage(usage_bytes=2_500_000_000)

    assert table.cost("vector-storage", DAY, "standard", usage) == D("0.25")
    assert table.cost("vector-storage", DAY, "standard", Usage(usage_bytes=1)) == D("1E-10")


@pytest.mark.parametrize(
    ("model", "usage"),
    [
        ("whisper-1", Usage(input_tokens=10)),
        ("tts-1", Usage(seconds=10)),
        ("web-search", Usage(sessions=1)),
        ("vector-storage", Usage(calls=1)),
        ("code-interpreter", Usage(usage_bytes=10)),
        ("dall-e-2", Usage(characters=10, images=1)),
        ("text-embedding-3-small", Usage(input_tokens=10, images=1)),
    ],
)
def test_a_class_without_a_rate_makes_the_usage_unpriced(
    table: PriceTable, model: str, usage: Usage
) -> None:
    assert table.cost(model, DAY, "standard", usage, variant="1024x1024") is None


def test_batch_halves_every_rate_of_every_class(table: PriceTable) -> None:
    assert table.cost("dall-e-3", DAY, "batch", Usage(images=2), "1024x1024/hd") == D("0.08")
    assert table.cost("whisper-1", DAY, "batch", Usage(seconds=60)) == D("0.003")
    assert table.cost("tts-1", DAY, "batch", Usage(characters=M)) == D("7.5")


def test_no_usage_costs_zero_for_every_model(table: PriceTable) -> None:
    for model in table.models():
        if table.rates(model, DAY, "standard") is not None:
            assert table.cost(model, DAY, "standard", Usage(requests=1)) == 0, model


def test_negative_counts_are_unpriced() -> None:
    rates = Rates(input=D(1), per_minute=D(1), per_image=(("1x1", D(1)),))

    assert rates.cost(Usage(seconds=-1)) is None
    assert rates.cost(Usage(images=-1)) is None
    assert rates.cost(Usage(input_tokens=-5)) is None


# --- the file shape -----------------------------------------------------------------------------


def small(**period: Any) -> PriceTable:
    return price_table_from(
        {"models": {"m": [{"effective": date(2025, 1, 1), **period}]}}, "t.toml"
    )


def test_every_unit_rate_is_read_from_the_file() -> None:
    table = small(
        per_1m_characters="15",
        per_minute="0.006",
        per_1k_calls="10",
        per_gb_day="0.10",
        per_session="0.03",
        per_image={"1024x1024/HD": "0.08"},
        unbilled=["images"],
    )
    rates = table.rates("m", DAY, "standard")

    assert rates == Rates(
        per_1m_characters=D(15),
        per_minute=D("0.006"),
        per_1k_calls=D(10),
        per_gb_day=D("0.10"),
        per_session=D("0.03"),
        per_image=(("1024x1024/hd", D("0.08")),),
        unbilled=frozenset({"images"}),
    )


def test_pieces_name_every_rate_for_the_check() -> None:
    rates = Rates(
        input=D(1),
        per_image=(("1024x1024/hd", D("0.08")),),
        long_context=LongContext(128_000, Rates(input=D(2))),
    )

    assert rates.pieces() == {
        "input": D(1),
        "per_image.1024x1024/hd": D("0.08"),
        "long_context.threshold": D(128_000),
        "long_context.input": D(2),
    }
