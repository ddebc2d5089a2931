"""Count the requests a monthly run makes with every usage family enabled, and time it.

Target (issue 10): a month with every family enabled costs one request per family endpoint
plus one Costs request — eleven in all, whatever the number of models, projects and days.

A fake OpenAI organization API (``tests/fakeopenai.py``: spec-shaped pages over real HTTP on
127.0.0.1) is filled with a busy month: every day, every family, several models, projects and
API keys, and the Costs API's line items for all of it. Then ``recon-job run --window monthly``
runs as a real process against it (the console entry point, ``python -m recon_job``), grouped by
model, project and API key, with an NDJSON log of the completions side. The request log the fake
recorded is printed: one line per request with its path, ``group_by[]`` and ``limit``, then the
count per endpoint and the run's wall time, status and groups.

    python bench/bench_families.py                      # August 2026, 12 models x 4 projects
    python bench/bench_families.py --month 2026-07 --models 30 --projects 10
    python bench/bench_families.py --families completions,embeddings   # RECON_FAMILIES
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.fakeopenai import ENDPOINTS, FakeOpenAI  # noqa: E402

CHAT = ("gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "gpt-5-2025-08-07", "o3-2025-04-16")
OTHERS = {
    "embeddings": "text-embedding-3-small",
    "moderations": "omni-moderation-latest",
    "images": "gpt-image-1",
    "audio_speeches": "tts-1",
    "audio_transcriptions": "whisper-1",
    "web_search_calls": "gpt-4o-2024-08-06",
}


def fill(fake: FakeOpenAI, first: date, days: int, models: int, projects: int) -> int:
    """A busy month in every family; returns the NDJSON lines written for completions."""
    chat = [CHAT[i % len(CHAT)] + ("" if i < len(CHAT) else f"-ft{i}") for i in range(models)]
    lines = 0
    for offset in range(days):
        day = first + timedelta(days=offset)
        for p in range(projects):
            project, key = f"proj_{p}", f"key_{p}"
            for model in chat:
                fake.add_usage(
                    day,
                    model,
                    input_tokens=50_000,
                    cached_tokens=10_000,
                    output_tokens=8_000,
                    input_audio_tokens=500,
                    output_audio_tokens=200,
                    requests=1,
                    project_id=project,
                    api_key_id=key,
                )
                for piece, usd in (
                    ("input", "0.1"),
                    ("cached input", "0.0125"),
                    ("output", "0.08"),
                ):
                    fake.add_cost(day, f"{model}, {piece}", usd, project_id=project, api_key_id=key)
                lines += 1
            ids = {"project_id": project, "api_key_id": key}
            fake.add_family_usage(
                "embeddings",
                day,
                OTHERS["embeddings"],
                input_tokens=10**6,
                num_model_requests=3,
                **ids,
            )
            fake.add_family_usage(
                "moderations",
                day,
                OTHERS["moderations"],
                input_tokens=900,
                num_model_requests=9,
                **ids,
            )
            fake.add_family_usage(
                "images",
                day,
                OTHERS["images"],
                images=4,
                num_model_requests=2,
                size="1024x1024",
                **ids,
            )
            fake.add_family_usage(
                "audio_speeches",
                day,
                OTHERS["audio_speeches"],
                characters=9000,
                num_model_requests=3,
                **ids,
            )
            fake.add_family_usage(
                "audio_transcriptions",
                day,
                OTHERS["audio_transcriptions"],
                seconds=600,
                num_model_requests=2,
                **ids,
            )
            fake.add_family_usage("vector_stores", day, usage_bytes=2 * 10**9, project_id=project)
            fake.add_family_usage(
                "code_interpreter_sessions", day, num_sessions=3, project_id=project
            )
            fake.add_family_usage("file_search_calls", day, num_requests=40, **ids)
            fake.add_family_usage(
                "web_search_calls",
                day,
                OTHERS["web_search_calls"],
                num_requests=30,
                num_model_requests=12,
                **ids,
            )
            for item, usd in (
                ("text-embedding-3-small, input", "0.02"),
                ("gpt-image-1 image, output", "0.16"),
                ("tts-1, characters", "0.135"),
                ("whisper-1, audio", "0.06"),
                ("Vector storage", "0.2"),
                ("code interpreter sessions", "0.09"),
                ("file search tool calls", "0.1"),
                ("web search tool calls", "0.3"),
            ):
                fake.add_cost(day, item, usd, project_id=project, api_key_id=key)
    return lines


def write_log(path: Path, first: date, days: int, models: int, projects: int) -> None:
    """The app's completions log: one record per day, model and project (what it called)."""
    chat = [CHAT[i % len(CHAT)] + ("" if i < len(CHAT) else f"-ft{i}") for i in range(models)]
    with path.open("w", encoding="utf-8") as out:
        for offset in range(days):
            day = first + timedelta(days=offset)
            for p in range(projects):
                for model in chat:
                    record = {
                        "timestamp": f"{day.isoformat()}T12:00:00Z",
                        "model": model,
                        "project_id": f"proj_{p}",
                        "api_key_id": f"key_{p}",
                        "input_tokens": 50_000,
                        "cached_tokens": 10_000,
                        "output_tokens": 8_000,
                        "cost": str(Decimal("0.1925")),
                    }
                    out.write(json.dumps(record) + "\n")


def main() -> None:
    """Fill the fake, run one monthly window as a real process, print the request log."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--month", default="2026-08", help="YYYY-MM (default 2026-08)")
    parser.add_argument("--models", type=int, default=12, help="chat models per project")
    parser.add_argument("--projects", type=int, default=4, help="projects (one API key each)")
    parser.add_argument("--families", default="all", help="RECON_FAMILIES (default all)")
    args = parser.parse_args()
    first = date.fromisoformat(f"{args.month}-01")
    days = ((first + timedelta(days=32)).replace(day=1) - first).days
    with FakeOpenAI() as fake, tempfile.TemporaryDirectory() as tmp:
        fill(fake, first, days, args.models, args.projects)
        log = Path(tmp) / "usage.ndjson"
        write_log(log, first, days, args.models, args.projects)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("RECON_", "OPENAI_"))},
            "OPENAI_ADMIN_KEY": fake.admin_key,
            "OPENAI_BASE_URL": fake.base_url,
            "RECON_LOG_PATHS": str(log),
            "RECON_DATABASE_URL": f"sqlite:///{Path(tmp) / 'history.db'}",
            "RECON_GROUP_BY": "model,project_id,api_key_id",
            "RECON_FAMILIES": args.families,
            "RECON_LOG_FORMAT": "json",
        }
        started = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "recon_job",
                "run",
                "--window",
                "monthly",
                "--month",
                args.month,
                "--format",
                "json",
                "--no-alerts",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            cwd=tmp,
        )
        wall = time.perf_counter() - started
        paths = {e.path: name for name, e in ENDPOINTS.items()}
        print(
            f"request log of a monthly run ({args.month}, {days} days, {args.models} models x "
            f"{args.projects} projects, RECON_FAMILIES={args.families}):"
        )
        for n, request in enumerate(fake.requests, 1):
            print(
                f"  {n:2d} {request.method} {request.path}"
                f"  group_by[]={','.join(request.query.get('group_by[]', []))}"
                f"  limit={request.param('limit')}"
                + (f"  page={request.param('page')}" if request.param("page") else "")
            )
        per_endpoint = Counter(paths.get(r.path, r.path) for r in fake.requests)
        print("requests per endpoint:", dict(per_endpoint))
        print(f"total requests: {len(fake.requests)}")
        if proc.returncode not in (0, 1):
            print(proc.stderr[-2000:], file=sys.stderr)
            raise SystemExit(f"recon-job exited {proc.returncode}")
        doc = json.loads(proc.stdout)
        statuses = Counter(row["status"] for row in doc["breakdown"])
        print(
            f"run: exit {proc.returncode}, status {doc['status']}, {len(doc['breakdown'])} groups "
            f"{dict(statuses)}, wall {wall:.2f} s (process start included)"
        )


if __name__ == "__main__":
    main()
