"""Running ``recon-job`` in tests: in-process with click's CliRunner, or as a real process.

:func:`cli` invokes the command in this process (fast: no interpreter start, no imports), with
the environment and working directory a real run would have; it is what exit-code, flag and
configuration tests use. :func:`cli_process` starts ``python -m recon_job`` for real: only for
tests whose point is the process itself (signals, crashes at fault points, races, the daemon),
which carry the ``e2e`` marker.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import structlog
from click.testing import CliRunner

from recon_job.logconfig import library_defaults
from tests.fakeopenai import DEFAULT_ADMIN_KEY, FakeOpenAI, fake_openai_fixture  # noqa: F401

D1 = date(2026, 8, 1)
D2 = date(2026, 8, 2)


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str

    def doc(self) -> dict[str, Any]:
        value = json.loads(self.stdout)  # exactly one JSON document, nothing else
        assert isinstance(value, dict)
        return value

    def logs(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stderr.splitlines() if line.startswith("{")]


@pytest.fixture(name="workdir")
def workdir_fixture(tmp_path: Path) -> Path:
    logs = tmp_path / "logs"
    logs.mkdir()
    return tmp_path


def environment(workdir: Path, fake: FakeOpenAI, env: Mapping[str, str]) -> dict[str, str]:
    """The environment of a test run: this one, minus recon-job's own variables, plus the fake's."""
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RECON_", "OPENAI_")) or k.startswith("RECON_TEST_")
    }
    environ.update(
        {
            "OPENAI_ADMIN_KEY": fake.admin_key,
            "OPENAI_BASE_URL": fake.base_url,
            "RECON_LOG_PATHS": str(workdir / "logs" / "*.ndjson*"),
            "RECON_DATABASE_URL": f"sqlite:///{workdir / 'history.db'}",
            "RECON_LOG_FORMAT": "json",
            "RECON_OPENAI__MAX_RETRIES": "1",
            "RECON_OPENAI__READ_TIMEOUT_SECONDS": "5",
        }
    )
    environ.update(env)
    return environ


def _no_key(fake: FakeOpenAI, *streams: str) -> None:
    for stream in streams:
        assert fake.admin_key not in stream
        assert fake.admin_key[-8:] not in stream


def cli(workdir: Path, fake: FakeOpenAI, *args: str, **env: str) -> Ran:
    """``recon-job ARGS`` in this process, in ``workdir``, with the test environment."""
    from recon_job.cli import main

    environ = environment(workdir, fake, env)
    # CliRunner sets the variables given and unsets those mapped to None, for the call only.
    changes: dict[str, str | None] = {k: None for k in os.environ if k not in environ}
    changes.update(environ)
    runner = CliRunner()
    try:
        with contextlib.chdir(workdir):
            result = runner.invoke(main, list(args), env=changes, catch_exceptions=False)
    finally:
        # The command pointed structlog and the root logger at the runner's streams, which are
        # closed now: back to the library defaults before anything else logs.
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
        library_defaults()
    _no_key(fake, result.stdout, result.stderr)
    return Ran(result.exit_code, result.stdout, result.stderr)


def cli_process(workdir: Path, fake: FakeOpenAI, *args: str, **env: str) -> Ran:
    """``python -m recon_job ARGS`` as a real process (signals, crashes, races)."""
    environ = environment(workdir, fake, env)
    proc = subprocess.run(
        [sys.executable, "-m", "recon_job", *args],
        cwd=workdir,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    _no_key(fake, proc.stdout, proc.stderr)
    return Ran(proc.returncode, proc.stdout, proc.stderr)


def write_logs(workdir: Path, lines: list[str]) -> None:
    (workdir / "logs" / "usage_tracking.ndjson").write_text("\n".join(lines) + "\n", "utf-8")


def rec(day: date, model: str, hour: int, **fields: Any) -> str:
    return json.dumps(
        {"timestamp": f"{day.isoformat()}T{hour:02d}:00:00Z", "model": model, **fields}
    )


def drifting_world(fake: FakeOpenAI, workdir: Path) -> None:
    """gpt-4o agrees on 2026-08-01; gpt-4o-mini misses 4 of 40 requests locally (-10%)."""
    fake.add_usage(
        D1,
        "gpt-4o-2024-08-06",
        input_tokens=59200,
        cached_tokens=5760,
        output_tokens=10646,
        requests=10,
    )
    fake.add_cost(D1, "gpt-4o-2024-08-06, input", Decimal("0.1336"))
    fake.add_cost(D1, "gpt-4o-2024-08-06, cached input", "0.007200000000000000000000000000000000")
    fake.add_cost(D1, "gpt-4o-2024-08-06, output", Decimal("0.10646"))
    fake.add_usage(
        D1, "gpt-4o-mini-2024-07-18", input_tokens=120000, output_tokens=30000, requests=40
    )
    fake.add_cost(D1, "gpt-4o-mini-2024-07-18, input", Decimal("0.018"))
    fake.add_cost(D1, "gpt-4o-mini-2024-07-18, output", Decimal("0.018"))
    fake.add_cost(D1, "web search tool calls", Decimal("0.02"))
    lines = [
        # 10 gpt-4o requests: 59,200 input (5,760 cached), 10,646 output; priced from the table.
        *[
            rec(D1, "gpt-4o", 9, prompt_tokens=5920, completion_tokens=1064, cached_tokens=576)
            for _ in range(9)
        ],
        rec(D1, "gpt-4o", 10, prompt_tokens=5920, completion_tokens=1070, cached_tokens=576),
        # 36 of the 40 gpt-4o-mini requests, in the nested Chat Completions shape.
        *[
            json.dumps(
                {
                    "timestamp": f"{D1.isoformat()}T12:00:00+00:00",
                    "model": "gpt-4o-mini",
                    "usage": {"prompt_tokens": 3000, "completion_tokens": 750},
                }
            )
            for _ in range(36)
        ],
        # A model with no price and no logged cost.
        rec(D2, "my-private-model", 8, input_tokens=100, output_tokens=10),
        "",
        "{not json",
        rec(D1, "gpt-4o", 11, prompt_tokens=-5, completion_tokens=1),
    ]
    write_logs(workdir, lines)
