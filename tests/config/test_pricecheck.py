"""The price checks of ``recon-job prices check`` (recon_job.config.pricecheck): a LiteLLM price
map read exactly and compared figure by figure, and the unpriced models of past runs."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from recon_job.config.pricecheck import (
    Difference,
    compare,
    read_price_map,
    unpriced_models,
)
from recon_job.config.prices import load_price_table, price_table_from
from recon_job.errors import ConfigError
from recon_job.models import UnpricedKey, Usage
from recon_job.pricing import PriceTable
from tests.helpers import FIXTURES

D = Decimal
DAY = date(2026, 12, 4)
LITELLM = FIXTURES / "litellm" / "model_prices.json"


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return load_price_table()


def test_the_real_shaped_map_differs_only_where_it_really_does(table: PriceTable) -> None:
    found = compare(table, read_price_map(LITELLM), DAY)

    assert found.differences == (
        Difference("gpt-5.2", "flex.input", None, D("0.875")),
        Difference("o1-mini", "cached_input", D("0.55"), D("1.5")),
        Difference("o1-mini", "input", D("1.10"), D(3)),
        Difference("o1-mini", "output", D("4.40"), D(12)),
    )
    # gpt-4o (with batch and priority), gpt-4o-mini, gpt-5.2, gpt-realtime (audio), the
    # embedding, whisper-1, tts-1, dall-e-3 (two variants), gpt-image-1, o1-mini.
    assert found.compared == 10
    # Other providers and fine-tuned models are not OpenAI list prices: never compared.
    assert found.not_in_table == ("gpt-9-preview",)


def test_per_token_floats_are_read_from_their_text_and_scaled_exactly(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(
        '{"m": {"input_cost_per_token": 1.1e-07, "output_cost_per_token": 0.0000044,'
        ' "cache_read_input_token_cost": 2.75e-08, "litellm_provider": "openai"}}'
    )
    table = price_table_from(
        {
            "models": {
                "m": [
                    {
                        "effective": date(2025, 1, 1),
                        "input": "0.11",
                        "cached_input": "0.0275",
                        "output": "4.4",
                    }
                ]
            }
        },
        "t.toml",
    )

    entries = read_price_map(path)

    assert entries["m"]["input_cost_per_token"] == D("1.1e-07")
    assert compare(table, entries, DAY).differences == ()


def test_every_kind_of_piece_is_converted_to_the_tables_unit() -> None:
    table = price_table_from(
        {
            "models": {
                "m": [
                    {
                        "effective": date(2025, 1, 1),
                        "input": "2",
                        "cache_write": "2.5",
                        "image_input": "10",
                        "image_output": "40",
                        "per_1m_characters": "15",
                        "per_minute": "0.006",
                        "long_context": {"threshold": 272000, "input": "4"},
                        "priority": {"input": "4"},
                    }
                ]
            }
        },
        "t.toml",
    )
    entry: dict[str, Any] = {
        "input_cost_per_token": D("2e-06"),
        "cache_creation_input_token_cost": D("3e-06"),
        "input_cost_per_image_token": D("1e-05"),
        "output_cost_per_image_token": D("4e-05"),
        "input_cost_per_character": D("1.5e-05"),
        "input_cost_per_second": D("0.0002"),
        "input_cost_per_token_above_128k_tokens": D("4e-06"),
        "input_cost_per_token_priority": D("4e-06"),
        "input_cost_per_token_flex": D("1e-06"),
    }

    found = compare(table, {"m": entry}, DAY)

    assert found.differences == (
        Difference("m", "cache_write", D("2.5"), D(3)),
        Difference("m", "flex.input", None, D(1)),
        Difference("m", "long_context.threshold", D(272000), D(128000)),
        Difference("m", "per_minute", D("0.006"), D("0.012")),
    )


def test_per_pixel_image_prices_become_per_image_prices(table: PriceTable) -> None:
    entries = {
        "standard/1024-x-1024/dall-e-3": {"input_cost_per_pixel": D("3.81469e-08")},
        "hd/1792-x-1024/dall-e-3": {"input_cost_per_pixel": D("1e-07")},
        "256-x-256/dall-e-2": {"input_cost_per_pixel": D("2.44140625e-07")},
        "512-x-512/dall-e-2": {"output_cost_per_image": D("0.018")},
    }

    found = compare(table, entries, DAY)

    # 2.44140625e-07 × 256 × 256 = 0.016 agrees; 1e-07 × 1792 × 1024 = 0.1835 -> 0.184 does not.
    assert found.differences == (
        Difference("dall-e-3", "per_image.1792x1024/hd", D("0.120"), D("0.184")),
    )
    assert found.compared == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "expected a JSON object of model name -> prices"),
        ('{"gpt-4o": 3}', "no entry is an object of prices"),
        ('{"gpt-4o": {"input_cost_per_token": "cheap"}}', "gpt-4o.input_cost_per_token: 'cheap'"),
        ('{"gpt-4o": {"output_cost_per_token": true}}', "gpt-4o.output_cost_per_token: True"),
    ],
)
def test_a_bad_price_map_is_a_config_error_naming_the_file(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "prices.json"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(ConfigError) as info:
        read_price_map(path)

    assert info.value.permanent
    [problem] = info.value.problems
    assert problem.startswith(f"{path}: ")
    assert message in problem


def test_a_missing_price_map_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the price map"):
        read_price_map(tmp_path / "absent.json")


def test_an_empty_object_compares_nothing(tmp_path: Path, table: PriceTable) -> None:
    path = tmp_path / "empty.json"
    path.write_text(json.dumps({}), encoding="utf-8")

    assert compare(table, read_price_map(path), DAY).compared == 0


def test_unpriced_models_of_past_runs_are_kept_only_while_still_unpriced(
    table: PriceTable,
) -> None:
    runs = [
        (
            7,
            date(2026, 8, 2),
            {
                UnpricedKey("my-private-model", "standard"): Usage(100, 0, 10, 1),
                UnpricedKey("gpt-4o", "flex"): Usage(100, 0, 10, 1),
                UnpricedKey("gpt-4o", "standard"): Usage(100, 0, 10, 1, input_audio_tokens=50),
            },
        ),
        (5, date(2026, 8, 1), {UnpricedKey("my-private-model", "standard"): Usage(1, 0, 0, 1)}),
        # A run stored before the tier was recorded, of a model the table prices today.
        (2, date(2026, 7, 1), {UnpricedKey("gpt-5.2", None): Usage(1, 0, 0, 1)}),
    ]

    found = {(u.key.model, u.key.tier): u for u in unpriced_models(table, runs)}

    assert found[("my-private-model", "standard")].runs == (7, 5)
    assert found[("my-private-model", "standard")].usage == Usage(101, 0, 10, 2)
    assert not found[("my-private-model", "standard")].priced_now
    assert not found[("gpt-4o", "flex")].priced_now
    assert not found[("gpt-4o", "standard")].priced_now  # audio tokens: no audio rate
    assert found[("gpt-5.2", None)].priced_now
