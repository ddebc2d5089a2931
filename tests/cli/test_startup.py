"""``recon-job run`` imports only what it uses (issue 13 item 3).

The command runs in a fresh interpreter (``recon_job.__main__.main``, as the console script
calls it) against the fake OpenAI server, with a logs directory holding one empty file and no
channel configured; after it, the interpreter lists the modules it imported. A run with no
channel renders no message (no Jinja2), a process that serves no ``/metrics`` and pushes nothing
keeps no Prometheus registry, a SQLite history never loads the PostgreSQL dialect, logs on a
pipe need no rich, no channel means no channel's module (nor smtplib), and a history already at
the newest schema is opened without Alembic — which the first run, creating the schema, does
import.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakeopenai import FakeOpenAI, fake_openai_fixture  # noqa: F401

#: Runs the CLI in-process, then writes the names of every imported module to $MODULES_OUT,
#: and whether the garbage collector was on when the command finished.
PROBE = """
import gc, json, os, sys
from recon_job.__main__ import main
try:
    main()
finally:
    with open(os.environ["MODULES_OUT"], "w", encoding="utf-8") as out:
        json.dump({"modules": sorted(sys.modules), "collecting": gc.isenabled()}, out)
"""
#: What a run with no channel, no Pushgateway and a SQLite history at head, its stderr a pipe,
#: never uses (rich: structlog would import it for tracebacks recon-job renders itself; the
#: channels' modules and smtplib: no channel is configured).
UNUSED = (
    "alembic",
    "jinja2",
    "prometheus_client",
    "sqlalchemy.dialects.postgresql",
    "sqlalchemy.orm",
    "rich",
    "smtplib",
    "recon_job.notify.email",
    "recon_job.notify.slack",
    "recon_job.notify.webhook",
)
ARGV = ("run", "--date", "2026-08-03", "--force", "--format", "json")


def run_and_list_modules(fake: FakeOpenAI, tmp: Path) -> tuple[dict[str, object], set[str]]:
    """One ``recon-job run`` in a fresh interpreter: its JSON document and every module (and
    the garbage collector was back on by the end: off only while the process started)."""
    logs = tmp / "logs"
    logs.mkdir(exist_ok=True)
    (logs / "app.ndjson").touch()
    listed = tmp / "modules.json"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RECON_", "OPENAI_"))},
        "OPENAI_ADMIN_KEY": fake.admin_key,
        "OPENAI_BASE_URL": fake.base_url,
        "RECON_LOG_PATHS": str(logs),
        "RECON_DATABASE_URL": f"sqlite:///{tmp / 'history.db'}",
        "MODULES_OUT": str(listed),
    }
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *ARGV],
        env=env,
        cwd=tmp,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = json.loads(listed.read_text(encoding="utf-8"))
    assert after["collecting"] is True
    return json.loads(proc.stdout), set(after["modules"])


def imported(modules: set[str], package: str) -> bool:
    """True when ``package`` or any of its submodules was imported."""
    return any(m == package or m.startswith(package + ".") for m in modules)


@pytest.mark.e2e
def test_a_run_with_no_channel_over_a_current_history_imports_nothing_it_does_not_use(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    first, first_modules = run_and_list_modules(fake_openai, tmp_path)
    again, modules = run_and_list_modules(fake_openai, tmp_path)

    assert (first["status"], again["status"]) == ("reconciled", "reconciled")
    # The first run created the schema, through Alembic; the second found it at head.
    assert imported(first_modules, "alembic")
    assert [name for name in UNUSED if imported(modules, name)] == []
    # What it does use is there: the history, OpenAI's APIs, the log source.
    assert {"sqlalchemy.dialects.sqlite", "requests", "recon_job.sources.ndjson"} <= modules


def test_start_up_runs_without_the_collector_and_the_command_turns_it_back_on() -> None:
    # A fresh interpreter: freezing objects here would keep them out of pytest's collections.
    probe = (
        "import gc\n"
        "from recon_job.cli.common import started\n"
        "gc.disable()\n"
        "started()\n"
        "print(gc.isenabled(), gc.get_freeze_count() > 0)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert proc.stdout.split() == ["True", "True"]


def test_with_the_collector_already_on_started_changes_nothing() -> None:
    from recon_job.cli.common import started

    frozen = gc.get_freeze_count()
    started()
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen


def test_opening_the_history_imports_no_http_client() -> None:
    # The store's types come from the core: a process that only reads or writes the history
    # (the dashboard, `history`, a run answered from the cache) pays for no requests/urllib3.
    probe = (
        "import sys\n"
        "import recon_job.store\n"
        "print(sorted(m for m in ('requests', 'urllib3', 'sqlalchemy.orm') if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert proc.stdout.strip() == "[]"
