"""Logging: JSON lines on stderr, and no secret in any line, field, message or traceback."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys

import pytest
import structlog

from recon_job.logconfig import MASK, configure_logging, secret_parts

SECRET = "sk-admin-CANARY.canary.0123456789"


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_it_writes_one_json_object_per_line_when_not_on_a_terminal() -> None:
    out = io.StringIO()
    configure_logging(fmt="auto", stream=out)
    structlog.get_logger("t").info("recon.test.event", answer=42)
    (line,) = _lines(out)
    assert line["event"] == "recon.test.event"
    assert line["answer"] == 42
    assert line["level"] == "info"
    assert str(line["timestamp"]).endswith("Z")


def test_secrets_are_masked_by_key_and_by_value_even_in_tracebacks() -> None:
    out = io.StringIO()
    configure_logging(fmt="json", secrets=[SECRET], stream=out)
    logger = structlog.get_logger("t")
    logger.info("recon.test.fields", api_key=SECRET, authorization=f"Bearer {SECRET}")
    logger.info("recon.test.value", note=f"the key is {SECRET}", nested={"x": [SECRET]})

    def leaky(headers: dict[str, str]) -> None:
        raise RuntimeError(f"failed with {headers['Authorization']}")

    try:
        leaky({"Authorization": f"Bearer {SECRET}"})
    except RuntimeError:
        logger.exception("recon.test.crash")
    logging.getLogger("urllib3.connectionpool").error("retrying with key %s", SECRET)
    text = out.getvalue()
    assert SECRET not in text
    assert SECRET[-8:] not in text
    assert MASK in text
    stdlib = [line for line in _lines(out) if "retrying with key" in str(line["event"])]
    assert len(stdlib) == 1  # stdlib loggers go through the same redacting chain
    crash = next(line for line in _lines(out) if line["event"] == "recon.test.crash")
    assert "exception" in crash
    assert "locals" not in json.dumps(crash["exception"])


def test_token_counts_are_not_mistaken_for_secrets() -> None:
    out = io.StringIO()
    configure_logging(fmt="json", stream=out)
    structlog.get_logger("t").info("recon.test.counts", input_tokens=12, tokens_pct="1.5")
    (line,) = _lines(out)
    assert line["input_tokens"] == 12
    assert line["tokens_pct"] == "1.5"


def test_anything_shaped_like_an_openai_key_is_masked_even_if_unregistered() -> None:
    out = io.StringIO()
    configure_logging(fmt="json", stream=out)
    structlog.get_logger("t").warning("recon.test.shape", detail="got sk-proj-abcdefgh12345678")
    assert "abcdefgh12345678" not in out.getvalue()


WEBHOOK = (
    "https://hooks.example.com/services/T0ABC123/B0DEF456/abcdefSECRETtoken?sig=Zq9xW2vY7u&v=json"
)


def test_a_urls_credential_parts_are_secrets_and_route_words_are_not() -> None:
    parts = secret_parts(WEBHOOK)
    assert parts[0] == WEBHOOK
    assert list(parts) == sorted(parts, key=len, reverse=True)
    for piece in (
        "/services/T0ABC123/B0DEF456/abcdefSECRETtoken?sig=Zq9xW2vY7u&v=json",
        "/services/T0ABC123/B0DEF456/abcdefSECRETtoken",
        "sig=Zq9xW2vY7u&v=json",
        "T0ABC123",
        "B0DEF456",
        "abcdefSECRETtoken",
        "Zq9xW2vY7u",
    ):
        assert piece in parts
    assert "services" not in parts  # a route word: masking it would garble every log line
    assert secret_parts(None) == ()
    assert secret_parts("short") == ()


LEAK_SCRIPT = """
import io, structlog
from recon_job.logconfig import configure_logging
out = io.StringIO()
configure_logging(level="debug", fmt="json", secrets=[{url!r}], stream=out)
log = structlog.get_logger("t")
path = "/services/T0ABC123/B0DEF456/abcdefSECRETtoken"
log.debug("recon.test.leak", a="POST " + path + "?sig=Zq9xW2vY7u&v=json")
log.debug("recon.test.leak", b="no_such_hook: token abcdefSECRETtoken", c="sig=Zq9xW2vY7u&v=json")
log.debug("recon.test.leak", d="url: " + path + " failed")
print(out.getvalue())
"""


@pytest.mark.parametrize("seed", ["0", "1", "2", "3", "42", "12345"])
def test_no_piece_of_a_webhook_url_survives_debug_logging_whatever_the_hash_seed(
    seed: str,
) -> None:
    run = subprocess.run(
        [sys.executable, "-c", LEAK_SCRIPT.format(url=WEBHOOK)],
        env={**os.environ, "PYTHONHASHSEED": seed},
        capture_output=True,
        text=True,
        check=True,
    )
    for piece in ("T0ABC123", "B0DEF456", "abcdefSECRETtoken", "Zq9xW2vY7u", "/services/"):
        assert piece not in run.stdout, (seed, piece, run.stdout)
    assert run.stdout.count(MASK) >= 4


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:1/hooks/%41PATHSECRETabc123",
        "http://127.0.0.1:1/hooks/P%C3%84THSECRETabc123",
        "http://127.0.0.1:1/hooks/PATH SECRETabc123?t=1",
    ],
)
def test_a_secret_url_is_masked_as_requests_sends_and_logs_it(url: str) -> None:
    # urllib3 logged '"POST /hooks/APATHSECRETabc123 HTTP/1.1" 200' at debug level: requests
    # had re-encoded the path, so the configured form no longer matched.
    import requests

    sent = requests.Request("POST", url).prepare().path_url
    assert sent in secret_parts(url)
