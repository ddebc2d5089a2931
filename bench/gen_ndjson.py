"""Write a deterministic N-record NDJSON usage log for the local-log benchmark.

The mix resembles a real application log for one month (March 2026): mostly flat Chat
Completions records, some Responses-style and nested ``usage`` records, timestamps with ``Z``,
``+02:00`` offsets and epoch milliseconds, cached tokens, a share of records with their own cost,
a few records outside the month and a few bad lines of every kind.

    python bench/gen_ndjson.py --records 1000000 --out /tmp/usage.ndjson [--gzip]
"""

from __future__ import annotations

import argparse
import gzip
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "o4-mini-2025-04-16", "gpt-5-mini")
PROJECTS = ("proj_app", "proj_batch", "proj_other")
MONTH_START = datetime(2026, 3, 1, tzinfo=UTC)
MONTH_SECONDS = 31 * 86400
BAD_LINES = (
    b"",
    b"{not json",
    b"[1, 2, 3]",
    b'{"timestamp": "2026-03-05T10:00:00Z", "prompt_tokens": 5, "completion_tokens": 1}',
    b'{"timestamp": "2026-03-05T10:00:00Z", "model": "gpt-4o", "prompt_tokens": -5}',
    b'{"timestamp": "yesterday", "model": "gpt-4o", "prompt_tokens": 5}',
)


def record(rng: random.Random, index: int) -> dict[str, Any]:
    """One usage record of a randomly chosen shape."""
    if rng.random() < 0.002:
        at = MONTH_START - timedelta(seconds=rng.randrange(1, 86400 * 5))
    else:
        at = MONTH_START + timedelta(seconds=rng.randrange(MONTH_SECONDS))
    inp = rng.randrange(50, 20_000)
    cached = rng.choice((0, 0, inp // 2, inp // 4 * 2))
    out = rng.randrange(1, 2_000)
    shape = rng.random()
    when = rng.random()
    ts: Any
    if when < 0.9:
        ts = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    elif when < 0.92:
        ts = at.isoformat()
    elif when < 0.95:
        ts = (at + timedelta(hours=2)).replace(tzinfo=None).isoformat() + "+02:00"
    else:
        ts = int(at.timestamp() * 1000)
    rec: dict[str, Any] = {
        "timestamp": ts,
        "model": rng.choice(MODELS),
        "request_id": f"req_{index:012x}",
        "project_id": rng.choice(PROJECTS),
    }
    if shape < 0.6:
        rec.update(prompt_tokens=inp, completion_tokens=out, total_tokens=inp + out)
        if cached:
            rec["cached_tokens"] = cached
    elif shape < 0.75:
        rec.update(input_tokens=inp, output_tokens=out, cached_tokens=cached)
    elif shape < 0.9:
        rec["usage"] = {
            "prompt_tokens": inp,
            "completion_tokens": out,
            "total_tokens": inp + out,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }
    else:
        rec["usage"] = {
            "input_tokens": inp,
            "output_tokens": out,
            "total_tokens": inp + out,
            "input_tokens_details": {"cached_tokens": cached},
            "output_tokens_details": {"reasoning_tokens": out // 3},
        }
    if rng.random() < 0.2:
        rec["cost_usd"] = round((inp * 0.15 + out * 0.6) / 1e6, 8)
    if rng.random() < 0.03:
        rec["service_tier"] = "flex"
    elif rng.random() < 0.02:
        rec["batch"] = True
    return rec


def generate(records: int, out: str, *, compress: bool = False, seed: int = 20260301) -> None:
    """Write ``records`` lines (about 0.3% of them bad) to ``out``."""
    rng = random.Random(seed)
    opener = gzip.open if compress else open
    with opener(out, "wb") as f:
        batch: list[bytes] = []
        for index in range(records):
            if rng.random() < 0.003:
                batch.append(rng.choice(BAD_LINES))
            else:
                batch.append(orjson.dumps(record(rng, index)))
            if len(batch) >= 10_000:
                f.write(b"\n".join(batch) + b"\n")
                batch.clear()
        if batch:
            f.write(b"\n".join(batch) + b"\n")


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--out", required=True)
    parser.add_argument("--gzip", action="store_true", help="write a gzip-compressed file")
    parser.add_argument("--seed", type=int, default=20260301)
    args = parser.parse_args()
    generate(args.records, args.out, compress=args.gzip, seed=args.seed)


if __name__ == "__main__":
    main()
