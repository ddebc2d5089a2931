"""End to end over every family an app logs (issue 10's test): a real NDJSON log with one line per
request in the record shapes of each API, no logged cost (the local side is priced from the
bundled price table), against the fake OpenAI (real HTTP on 127.0.0.1) serving the same usage per
family and the Costs line items OpenAI would bill for it, through ``recon-job run``.

Every amount below is worked out from the published prices the bundled table lists, as exact
Decimals: the run must agree to the last digit, not within a tolerance.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.e2e import D1, cli, workdir_fixture, write_logs  # noqa: F401
from tests.fakeopenai import FakeOpenAI, fake_openai_fixture  # noqa: F401

ARGS = ("run", "--date", D1.isoformat(), "--force", "--format", "json", "--fail-on-mismatch")
M = Decimal(1_000_000)
#: tts-1 input: 84 characters.
SPEECH_TEXT = "Your order has shipped and will arrive on Tuesday. Reply STOP to end these messages."


def line(hour: int, minute: int, **fields: Any) -> str:
    stamp = f"{D1.isoformat()}T{hour:02d}:{minute:02d}:07Z"
    return json.dumps({"timestamp": stamp, **fields})


#: One line per request, in each API's response shape; no cost anywhere.
LOG = {
    "completions": [
        # Chat Completions with audio in and out (gpt-4o-audio-preview has no prompt caching).
        line(
            9,
            1,
            model="gpt-4o-audio-preview",
            endpoint="/v1/chat/completions",
            usage={
                "prompt_tokens": 1000,
                "completion_tokens": 300,
                "total_tokens": 1300,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 600},
                "completion_tokens_details": {"audio_tokens": 200, "reasoning_tokens": 0},
            },
        ),
        line(
            9,
            2,
            model="gpt-audio",
            usage={
                "prompt_tokens": 500,
                "completion_tokens": 120,
                "total_tokens": 620,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 450},
                "completion_tokens_details": {"audio_tokens": 100, "reasoning_tokens": 0},
            },
        ),
        # Text chat with a prompt cache hit.
        line(
            10,
            15,
            model="gpt-4o",
            endpoint="/v1/chat/completions",
            usage={
                "prompt_tokens": 2000,
                "completion_tokens": 500,
                "total_tokens": 2500,
                "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
                "completion_tokens_details": {"audio_tokens": 0, "reasoning_tokens": 0},
            },
        ),
        # The Responses API.
        line(
            11,
            30,
            model="gpt-4.1-mini",
            endpoint="/v1/responses",
            usage={
                "input_tokens": 3000,
                "input_tokens_details": {"cached_tokens": 2048},
                "output_tokens": 400,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": 3400,
            },
        ),
    ],
    "embeddings": [
        line(
            12,
            0,
            model="text-embedding-3-small",
            endpoint="/v1/embeddings",
            usage={"prompt_tokens": 12000, "total_tokens": 12000},
        ),
        line(
            12,
            1,
            model="text-embedding-3-small",
            endpoint="/v1/embeddings",
            usage={"prompt_tokens": 3500, "total_tokens": 3500},
        ),
    ],
    "images": [
        line(
            13,
            5,
            model="dall-e-3",
            endpoint="/v1/images/generations",
            n=1,
            size="1024x1024",
            quality="hd",
        ),
        line(
            13,
            6,
            model="dall-e-3",
            endpoint="/v1/images/generations",
            n=1,
            size="1792x1024",
            quality="standard",
        ),
    ],
    "audio_speeches": [
        line(14, 20, model="tts-1", endpoint="/v1/audio/speech", input=SPEECH_TEXT, voice="alloy"),
    ],
    "audio_transcriptions": [
        # whisper-1 verbose_json: 12.5 s rounds half up to 13 s.
        line(
            15,
            45,
            model="whisper-1",
            endpoint="/v1/audio/transcriptions",
            duration=12.5,
            language="english",
        ),
        # whisper-1's newer usage object.
        line(
            15,
            46,
            model="whisper-1",
            endpoint="/v1/audio/transcriptions",
            usage={"type": "duration", "seconds": 8},
        ),
        # gpt-4o-transcribe answers with tokens and no duration; OpenAI counts its seconds.
        line(
            15,
            50,
            model="gpt-4o-transcribe",
            endpoint="/v1/audio/transcriptions",
            usage={
                "type": "tokens",
                "input_tokens": 120,
                "input_token_details": {"text_tokens": 0, "audio_tokens": 120},
                "output_tokens": 40,
                "total_tokens": 160,
            },
        ),
    ],
}

# What OpenAI bills for that workload, per line item, from the published prices.
AUDIO_PREVIEW = {
    "gpt-4o-audio-preview-2024-12-17, input": 400 * Decimal("2.50") / M,
    "gpt-4o-audio-preview-2024-12-17 audio, input": 600 * Decimal("40.00") / M,
    "gpt-4o-audio-preview-2024-12-17, output": 100 * Decimal("10.00") / M,
    "gpt-4o-audio-preview-2024-12-17 audio, output": 200 * Decimal("80.00") / M,
}
GPT_AUDIO = {
    "gpt-audio-2025-08-28, input": 50 * Decimal("2.50") / M,
    "gpt-audio-2025-08-28 audio, input": 450 * Decimal("32.00") / M,
    "gpt-audio-2025-08-28, output": 20 * Decimal("10.00") / M,
    "gpt-audio-2025-08-28 audio, output": 100 * Decimal("64.00") / M,
}
GPT_4O = {
    "gpt-4o-2024-08-06, input": 976 * Decimal("2.50") / M,
    "gpt-4o-2024-08-06, cached input": 1024 * Decimal("1.25") / M,
    "gpt-4o-2024-08-06, output": 500 * Decimal("10.00") / M,
}
GPT_41_MINI = {
    "gpt-4.1-mini-2025-04-14, input": 952 * Decimal("0.40") / M,
    "gpt-4.1-mini-2025-04-14, cached input": 2048 * Decimal("0.10") / M,
    "gpt-4.1-mini-2025-04-14, output": 400 * Decimal("1.60") / M,
}
BILLED = {
    "completions": {**AUDIO_PREVIEW, **GPT_AUDIO, **GPT_4O, **GPT_41_MINI},
    "embeddings": {"text-embedding-3-small, input": 15500 * Decimal("0.02") / M},
    "images": {"dall-e-3, images": Decimal("0.080") + Decimal("0.080")},
    "audio_speeches": {"tts-1, characters": len(SPEECH_TEXT) * Decimal("15.00") / M},
    "audio_transcriptions": {
        "whisper-1, audio": 21 * Decimal("0.006") / 60,
        "gpt-4o-transcribe audio, input": 120 * Decimal("6.00") / M,
        "gpt-4o-transcribe, output": 40 * Decimal("10.00") / M,
    },
}
COSTS = {family: sum(items.values(), Decimal(0)) for family, items in BILLED.items()}


def organisation(fake: FakeOpenAI) -> None:
    """The Usage API counts what the log has, under the dated snapshots OpenAI reports."""
    fake.add_usage(
        D1,
        "gpt-4o-audio-preview-2024-12-17",
        input_tokens=1000,
        output_tokens=300,
        input_audio_tokens=600,
        output_audio_tokens=200,
        requests=1,
    )
    fake.add_usage(
        D1,
        "gpt-audio-2025-08-28",
        input_tokens=500,
        output_tokens=120,
        input_audio_tokens=450,
        output_audio_tokens=100,
        requests=1,
    )
    fake.add_usage(
        D1,
        "gpt-4o-2024-08-06",
        input_tokens=2000,
        cached_tokens=1024,
        output_tokens=500,
        requests=1,
    )
    fake.add_usage(
        D1,
        "gpt-4.1-mini-2025-04-14",
        input_tokens=3000,
        cached_tokens=2048,
        output_tokens=400,
        requests=1,
    )
    fake.add_family_usage(
        "embeddings", D1, "text-embedding-3-small", input_tokens=15500, num_model_requests=2
    )
    for size in ("1024x1024", "1792x1024"):
        fake.add_family_usage(
            "images",
            D1,
            "dall-e-3",
            images=1,
            num_model_requests=1,
            size=size,
            source="image.generation",
        )
    fake.add_family_usage(
        "audio_speeches", D1, "tts-1", characters=len(SPEECH_TEXT), num_model_requests=1
    )
    fake.add_family_usage("audio_transcriptions", D1, "whisper-1", seconds=21, num_model_requests=2)
    fake.add_family_usage(
        "audio_transcriptions", D1, "gpt-4o-transcribe", seconds=610, num_model_requests=1
    )
    for items in BILLED.values():
        for item, amount in items.items():
            fake.add_cost(D1, item, str(amount))


def rows(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["family"], r["model"]): r for r in doc["breakdown"]}


def assert_exact(row: dict[str, Any]) -> None:
    """Both sides of a row carry the same quantities and the same dollars, to the last digit."""
    local, openai = row["local"], row["openai"]
    assert set(local) == set(openai), row
    for name in local:
        if name == "cost":
            assert Decimal(local[name]) == Decimal(openai[name]), (name, row)
        else:
            assert local[name] == openai[name], (name, row)
    difference = row["difference"]
    assert difference["exceeds"] == [], row
    for name, value in difference.items():
        if name not in ("exceeds", "deciding") and value is not None:
            assert Decimal(str(value)) == 0, (name, row)


def test_every_logged_family_reconciles_exactly(fake_openai: FakeOpenAI, workdir: Path) -> None:
    organisation(fake_openai)
    write_logs(workdir, [record for records in LOG.values() for record in records])

    ran = cli(workdir, fake_openai, *ARGS)

    assert ran.code == 0, ran.stderr + ran.stdout
    doc = ran.doc()
    assert doc["status"] == "reconciled", json.dumps(doc["breakdown"], indent=1)
    assert doc["untracked"] == []
    by_key = rows(doc)
    assert [r["family"] for r in doc["breakdown"]] == sorted(
        (r["family"] for r in doc["breakdown"]), key=list(LOG).index
    )
    assert {family for family, _ in by_key} == set(LOG)
    for (_, model), row in by_key.items():
        assert row["status"] == "reconciled", row
        if model != "gpt-4o-transcribe":
            assert_exact(row)
    # Each family with its own quantities.
    audio = by_key["completions", "gpt-4o-audio-preview"]["openai"]
    assert (audio["input_audio_tokens"], audio["output_audio_tokens"]) == (600, 200)
    assert Decimal(audio["cost"]) == sum(AUDIO_PREVIEW.values())
    gpt4o = by_key["completions", "gpt-4o"]["local"]
    assert (gpt4o["input_tokens"], gpt4o["cached_tokens"], gpt4o["output_tokens"]) == (
        2000,
        1024,
        500,
    )
    responses = by_key["completions", "gpt-4.1-mini"]["local"]
    assert (responses["input_tokens"], responses["cached_tokens"]) == (3000, 2048)
    embeddings = by_key["embeddings", "text-embedding-3-small"]["local"]
    assert (embeddings["input_tokens"], embeddings["requests"]) == (15500, 2)
    assert Decimal(embeddings["cost"]) == COSTS["embeddings"]
    images = by_key["images", "dall-e-3"]["local"]
    assert (images["images"], Decimal(images["cost"])) == (2, COSTS["images"])
    speech = by_key["audio_speeches", "tts-1"]["local"]
    assert (speech["characters"], Decimal(speech["cost"])) == (84, COSTS["audio_speeches"])
    whisper = by_key["audio_transcriptions", "whisper-1"]["local"]
    assert (whisper["seconds"], whisper["requests"]) == (21, 2)
    assert Decimal(whisper["cost"]) == BILLED["audio_transcriptions"]["whisper-1, audio"]
    # A token-billed transcription: its dollars and requests agree to the digit; the seconds
    # it cannot log are shown, decide nothing and stay out of the totals.
    tokens_billed = by_key["audio_transcriptions", "gpt-4o-transcribe"]
    assert tokens_billed["local"]["requests"] == tokens_billed["openai"]["requests"] == 1
    assert Decimal(tokens_billed["local"]["cost"]) == Decimal(tokens_billed["openai"]["cost"])
    assert Decimal(tokens_billed["difference"]["cost"]) == 0
    assert (tokens_billed["local"]["seconds"], tokens_billed["openai"]["seconds"]) == (0, 610)
    assert tokens_billed["difference"]["deciding"] == ["requests", "cost"]
    assert doc["local"]["seconds"] == doc["openai"]["seconds"] == 21
    total = sum(COSTS.values(), Decimal(0))
    assert Decimal(doc["local"]["cost"]) == Decimal(doc["openai"]["cost"]) == total
    assert doc["difference"]["exceeds"] == []


def test_a_family_missing_from_the_log_is_untracked_and_the_rest_still_reconcile(
    fake_openai: FakeOpenAI, workdir: Path
) -> None:
    organisation(fake_openai)
    write_logs(
        workdir,
        [r for family, records in LOG.items() if family != "audio_speeches" for r in records],
    )

    ran = cli(workdir, fake_openai, *ARGS)

    assert ran.code == 0, ran.stderr + ran.stdout
    doc = ran.doc()
    assert doc["status"] == "reconciled", json.dumps(doc["breakdown"], indent=1)
    statuses = {(r["family"], r["model"]): r["status"] for r in doc["breakdown"]}
    assert statuses["audio_speeches", "tts-1"] == "untracked"
    for row in doc["breakdown"]:
        if row["family"] != "audio_speeches":
            assert row["status"] == "reconciled", row
            if row["model"] == "gpt-4o-transcribe":  # token-billed: dollars and requests
                assert Decimal(row["difference"]["cost"]) == row["difference"]["requests"] == 0
            else:
                assert_exact(row)
    [untracked] = doc["untracked"]
    assert untracked["family"] == "audio_speeches"
    assert untracked["characters"] == 84
    assert Decimal(untracked["cost"]) == COSTS["audio_speeches"].quantize(Decimal("0.000001"))
    # The untracked family stays out of the totals: both sides are the tracked dollars.
    tracked = sum((c for f, c in COSTS.items() if f != "audio_speeches"), Decimal(0))
    assert Decimal(doc["local"]["cost"]) == Decimal(doc["openai"]["cost"]) == tracked

    failing = cli(workdir, fake_openai, *ARGS, RECON_RECONCILE__UNTRACKED="mismatch")
    assert failing.code == 1, failing.stderr
    assert failing.doc()["status"] == "mismatch"
    assert failing.doc()["mismatches"] == 0
