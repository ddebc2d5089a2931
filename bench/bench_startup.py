"""Time a whole ``recon-job run`` that has nothing to read: start-up is all it costs.

Target (issue 13): the run path imports only what it uses; ``recon-job run`` over an empty log
directory against the fake OpenAI server finishes in under 0.6 s. The fake OpenAI organization
API (``tests/fakeopenai.py``, real HTTP on 127.0.0.1) serves empty pages; the logs directory
holds one empty file (a directory with no log file at all is a configuration error); no
channel is configured; the history is a fresh SQLite file, created by one untimed run (its wall
time is printed too: it also creates the schema and writes the bytecode cache, as a pip install
would have). Then ``recon-job run --date D --force`` runs N times as a real process through the
console script (``.venv/bin/recon-job``): median, min and max wall time, and the median CPU time
(the load of a shared machine moves it less). Last comes one more run under
``python -X importtime``: how many modules it imports, their total time, and the imports with
the largest cumulative time. ``--against DIR`` times another version's ``recon_job`` package
too (first on ``PYTHONPATH``), each of its runs right after one of this checkout's.

The *floor* is a process that imports every module the run imports except recon-job's own
(the libraries it stands on and the standard library), in the run's order, with the collector
off as in the run, and does nothing else: no recon-job run can start faster. Its runs are
interleaved with the others, so that the difference (recon-job's own imports and its work) is
measured under the same load.

    python bench/bench_startup.py                 # 10 runs, top 15 imports
    python bench/bench_startup.py --runs 30 --top 25
    git archive HEAD recon_job | tar -x -C /tmp/before
    python bench/bench_startup.py --runs 15 --against /tmp/before
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.fakeopenai import FakeOpenAI  # noqa: E402

DAY = "2026-08-03"
IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")


def console_script() -> str:
    """``recon-job`` next to this interpreter (the venv's), else the one on PATH."""
    beside = Path(sys.executable).with_name("recon-job")
    found = str(beside) if beside.exists() else shutil.which("recon-job")
    if found is None:
        raise SystemExit("no recon-job console script: pip install -e . first")
    return found


def environment(fake: FakeOpenAI, tmp: Path) -> dict[str, str]:
    """No channel, a logs directory holding one empty file, a SQLite history in ``tmp``, the
    fake's URL."""
    logs = tmp / "logs"
    logs.mkdir()
    # An empty directory is a configuration error (no log files); an empty file is no records.
    (logs / "app.ndjson").touch()
    return {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("RECON_", "OPENAI_")) and k != "PYTHONDONTWRITEBYTECODE"
        },
        # Bytecode cached as after a pip install (the untimed first run writes it), in ``tmp``.
        "PYTHONPYCACHEPREFIX": str(tmp / "pycache"),
        "OPENAI_ADMIN_KEY": fake.admin_key,
        "OPENAI_BASE_URL": fake.base_url,
        "RECON_LOG_PATHS": str(logs),
        "RECON_DATABASE_URL": f"sqlite:///{tmp / 'history.db'}",
        "RECON_LOG_FORMAT": "json",
    }


def timed(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, str]:
    """Wall time and CPU time (user + system) of ``command`` as a process, and its stderr;
    exits when it fails. The CPU time hardly moves with the machine's load; the wall time
    does."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-4000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"{' '.join(command)} exited {proc.returncode}")
    return wall, cpu, proc.stderr


def imports(stderr: str) -> list[tuple[int, int, str]]:
    """Every import of an ``-X importtime`` report: (cumulative us, self us, name indented by
    its depth)."""
    rows = []
    for line in stderr.splitlines():
        match = IMPORT_LINE.match(line)
        if match:
            own, cumulative, indent, name = match.groups()
            rows.append((int(cumulative), int(own), (len(indent) - 1) // 2 * "  " + name))
    return rows


def floor_script(rows: list[tuple[int, int, str]]) -> str:
    """A program importing every module of ``rows`` (an importtime report of a run) that is not
    recon-job's, in order, with rich hidden from structlog and the collector off, as the CLI
    does (``recon_job.cli.common``, ``recon_job.__main__``)."""
    names = [name.strip() for _, _, name in rows]
    wanted = [n for n in names if n.split(".")[0] not in ("recon_job", "__main__")]
    lines = ["import gc, sys", "gc.disable()", "sys.modules['rich'] = None", "import structlog"]
    lines += ["del sys.modules['rich']", "import importlib"]
    # Some are tried and missing (``_winapi`` on Linux): the run tried them too.
    lines += [f"for name in {wanted!r}:", "    try:", "        importlib.import_module(name)"]
    lines += ["    except ImportError:", "        pass", "gc.freeze()"]
    return "\n".join(lines)


def summary(label: str, runs: list[tuple[float, float, str]]) -> str:
    """Median, min and max wall time and the median CPU time of ``runs``."""
    walls, cpus = [wall for wall, _, _ in runs], [cpu for _, cpu, _ in runs]
    return (
        f"{label}{len(runs)} runs: median {statistics.median(walls):.3f} s, "
        f"min {min(walls):.3f} s, max {max(walls):.3f} s; "
        f"CPU (user + system) median {statistics.median(cpus):.3f} s"
    )


def main() -> None:
    """Start the fake, make the history, time N runs, then show where the import time goes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="timed runs (default 10)")
    parser.add_argument("--top", type=int, default=15, help="imports listed (default 15)")
    parser.add_argument(
        "--against",
        metavar="DIR",
        help="also time the recon_job package found in DIR (put first on PYTHONPATH; e.g. "
        "`git archive HEAD~1 recon_job | tar -x -C DIR`), its runs interleaved with this "
        "checkout's, so that both see the same load",
    )
    args = parser.parse_args()
    script = console_script()
    argv = ["run", "--date", DAY, "--force", "--format", "json"]
    with (
        FakeOpenAI() as fake,
        tempfile.TemporaryDirectory() as name,
        tempfile.TemporaryDirectory() as other,
    ):
        tmp = Path(name)
        env = environment(fake, tmp)
        first, _, _ = timed([script, *argv], env, tmp)
        *_, stderr = timed([sys.executable, "-X", "importtime", "-m", "recon_job", *argv], env, tmp)
        rows = imports(stderr)
        commands = [([script, *argv], env, tmp)]
        if args.against:
            against = {**environment(fake, Path(other)), "PYTHONPATH": args.against}
            timed([script, *argv], against, Path(other))
            commands.append(([script, *argv], against, Path(other)))
        floor = tmp / "floor.py"
        floor.write_text(floor_script(rows))
        commands.append(([sys.executable, str(floor)], env, tmp))
        runs: list[list[tuple[float, float, str]]] = [[] for _ in commands]
        for _ in range(args.runs):
            for side, (command, side_env, cwd) in zip(runs, commands, strict=True):
                side.append(timed(command, side_env, cwd))
    print(
        f"command: recon-job {' '.join(argv)}  (a logs dir holding one empty file, fake OpenAI, "
        "no channel)"
    )
    print(f"first run (creates the SQLite history): {first:.3f} s")
    print(summary("", runs[0]))
    if args.against:
        print(summary(f"{args.against}: ", runs[1]))
    print(
        summary(
            "floor (the libraries and stdlib modules the run imports, nothing else): ", runs[-1]
        )
    )
    own = [run[0] - low[0] for run, low in zip(runs[0], runs[-1], strict=True)]
    print(
        f"recon-job's own imports and work (each run minus the floor run after it): median "
        f"{statistics.median(own):.3f} s"
    )
    print(
        f"imports: {len(rows)} modules, {sum(own for _, own, _ in rows) / 1e6:.3f} s; "
        f"top {args.top} by cumulative time (python -X importtime -m recon_job ...):"
    )
    print(f"  {'cumul ms':>9} {'self ms':>8}  module")
    for cumulative, own, module in sorted(rows, reverse=True)[: args.top]:
        print(f"  {cumulative / 1000:9.1f} {own / 1000:8.1f}  {module}")


if __name__ == "__main__":
    main()
