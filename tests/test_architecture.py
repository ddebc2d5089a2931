"""The package's shape, checked: layers, no import cycles, a pure core, public surfaces only.

Every ``import`` in ``recon_job/`` is read from the source (module top, ``TYPE_CHECKING`` blocks
and imports inside functions alike — a cycle of types is a cycle of design) and checked against
the layer order of ARCHITECTURE.md: a module may import its own layer or lower ones, never a higher
one, and the module graph has no cycle at all.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import ROOT

PACKAGE = ROOT / "recon_job"

#: Layer of each top-level module or package of ``recon_job`` (ARCHITECTURE.md).
LAYERS: Mapping[str, int] = {
    # 0: the pure core: data, rules and arithmetic.
    **dict.fromkeys(
        (
            "models",
            "errors",
            "windows",
            "compare",
            "pricing",
            "alerts",
            "causes",
            "modelnames",
            "families",
            "findings",
            "diagnosis",
            "version",
        ),
        0,
    ),
    # 1: plumbing every adapter shares.
    **dict.fromkeys(("http", "logconfig", "faults", "database"), 1),
    # 2: adapters to data: usage sources, the history store, the per-request billing match.
    **dict.fromkeys(("sources", "store", "per_request"), 2),
    # 3: output forms, and the notification channels that send them.
    **dict.fromkeys(("report", "notify"), 3),
    # 4: every rule about settings.
    "config": 4,
    # 5: the stages of a run.
    **dict.fromkeys(("job", "delivery", "investigate"), 5),
    # 6: settings -> components.
    "wiring": 6,
    # 7: the one run loop.
    "runtime": 7,
    # 8: what people and schedulers call.
    **dict.fromkeys(("daemon", "web", "cli", "api"), 8),
    # 9: the package itself and ``python -m recon_job``.
    **dict.fromkeys(("", "__main__"), 9),
}
#: The core does no I/O: none of these may be imported by a layer-0 module.
IO_LIBRARIES = frozenset(
    {
        "requests",
        "urllib3",
        "sqlalchemy",
        "alembic",
        "jinja2",
        "structlog",
        "logging",
        "apscheduler",
        "prometheus_client",
        "click",
        "rich",
        "socket",
        "smtplib",
        "subprocess",
    }
)


@dataclass(frozen=True)
class Import:
    """One import statement's target, as read from the source."""

    importer: str
    target: str
    line: int
    #: Names imported with ``from target import ...`` (empty for ``import target``).
    names: tuple[str, ...] = ()
    #: Names imported as themselves (``import x as x``): a re-export shim.
    shims: tuple[str, ...] = ()


def module_name(path: Path) -> str:
    """``recon_job/sources/ndjson/files.py`` -> ``recon_job.sources.ndjson.files``."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    """Every module of the package (Alembic's migration scripts are not part of the graph)."""
    return {
        module_name(path): path
        for path in sorted(PACKAGE.rglob("*.py"))
        if "migrations" not in path.parts
    }


def imports_of(name: str, path: Path, known: Mapping[str, Path]) -> Iterator[Import]:
    """Every import in ``path``, relative ones resolved, ``from a import b`` to ``a.b`` when
    ``b`` is a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                shim = (alias.name,) if alias.asname == alias.name.rpartition(".")[2] else ()
                yield Import(name, alias.name, node.lineno, shims=shim)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            shims = tuple(a.name for a in node.names if a.asname == a.name)
            names = tuple(a.name for a in node.names)
            submodules = [f"{base}.{n}" for n in names if f"{base}.{n}" in known]
            for target in submodules or [base]:
                yield Import(name, target, node.lineno, names, shims)


def graph() -> list[Import]:
    """Every import between modules of the package, and every third-party one."""
    known = modules()
    return [i for name, path in known.items() for i in imports_of(name, path, known)]


def top(module: str) -> str:
    """The top-level module or package of ``recon_job.x.y`` (``x``), ``""`` for the package."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def internal(edges: list[Import]) -> list[Import]:
    return [e for e in edges if e.target == "recon_job" or e.target.startswith("recon_job.")]


def find_cycle(edges: Mapping[str, set[str]]) -> list[str] | None:
    """One cycle of the graph (as a path that ends where it starts), or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_the_cycle_finder_finds_a_cycle_and_only_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_every_top_level_module_has_a_layer() -> None:
    unknown = sorted({top(m) for m in modules()} - set(LAYERS))
    assert not unknown, f"give these a layer in LAYERS and ARCHITECTURE.md: {unknown}"


def test_no_module_imports_a_higher_layer() -> None:
    upward = [
        f"{e.importer} (layer {LAYERS[top(e.importer)]}) imports {e.target} "
        f"(layer {LAYERS[top(e.target)]}) at line {e.line}"
        for e in internal(graph())
        if LAYERS[top(e.target)] > LAYERS[top(e.importer)]
    ]
    assert not upward, "\n".join(upward)


def test_there_is_no_import_cycle() -> None:
    edges: dict[str, set[str]] = {}
    for e in internal(graph()):
        if e.target != e.importer:
            edges.setdefault(e.importer, set()).add(e.target)
    cycle = find_cycle(edges)
    assert cycle is None, " -> ".join(cycle or ())


def test_the_core_does_no_io() -> None:
    io = [
        f"{e.importer} imports {e.target} (line {e.line})"
        for e in graph()
        if LAYERS.get(top(e.importer)) == 0 and e.target.split(".")[0] in IO_LIBRARIES
    ]
    assert not io, "\n".join(io)


def test_no_private_name_is_imported_from_another_package() -> None:
    crossing = [
        f"{e.importer} imports {name} from {e.target} (line {e.line})"
        for e in internal(graph())
        for name in e.names
        if name.startswith("_")
        and not name.startswith("__")
        and e.importer.rpartition(".")[0] != e.target.rpartition(".")[0]
        and e.importer.rpartition(".")[0] != e.target
    ]
    assert not crossing, "\n".join(crossing)


def test_there_are_no_re_export_shims() -> None:
    shims = [
        f"{e.importer} line {e.line}: {', '.join(e.shims)} imported as itself"
        for e in graph()
        if e.shims
    ]
    assert not shims, "\n".join(shims)


@pytest.mark.parametrize("package", sorted(p.parent for p in PACKAGE.rglob("__init__.py")))
def test_every_package_says_what_it_owns_and_lists_its_public_surface(package: Path) -> None:
    if "migrations" in package.parts:
        pytest.skip("Alembic's migration scripts")
    tree = ast.parse((package / "__init__.py").read_text(encoding="utf-8"))
    assert ast.get_docstring(tree), f"{package} needs a docstring saying what it owns"
    exported = [
        node
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
    ]
    assert exported or package == PACKAGE / "store" / "migrations", f"{package}: no __all__"
