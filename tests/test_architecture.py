"""The house keeps its shape: imports only point down, and no modules import each other in a circle.

Rooms, bottom to top (a room may import its own modules and the rooms below it):

    envs/                 adapters behind one VecEnv contract: import nothing from agents/
    agents/engine/        collectors, buffers, loops, the runner, config, checkpoints, logging, nets
    agents/robustness/    perturbations, attacks, the Lipschitz meter, evaluation conditions, plots
    families              agents/sac.py, dqn.py, erc.py, maddpg/, qarl/, marl/, prompt/, traffic/
    agents/registry.py    the registry (algorithm name -> family module)
    agents/experiments/   sweeps, Ray Tune, search, aggregation
    agents/__init__.py, agents/api.py, train.py, evaluate.py      the facade and the thin entry points

Every import counts, also those inside functions (a lazy import is still a dependency). The graph is
read from the source with ``ast``, so the test needs no optional dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LEVELS = ["envs", "engine", "robustness", "family", "registry", "experiments", "entry"]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def room(module: str) -> str:
    if module == "envs" or module.startswith("envs."):
        return "envs"
    if module == "agents.registry":
        return "registry"
    for name in ("engine", "robustness", "experiments"):
        if module == f"agents.{name}" or module.startswith(f"agents.{name}."):
            return name
    if module in ("agents", "agents.api", "train", "evaluate"):
        return "entry"
    return "family"


def source_modules() -> dict[str, Path]:
    files = [*ROOT.glob("agents/**/*.py"), *ROOT.glob("envs/**/*.py"), ROOT / "train.py", ROOT / "evaluate.py"]
    return {module_name(p): p for p in files}


def imports(path: Path, known: set[str]) -> set[str]:
    """The suite's modules ``path`` imports (``from agents import dqn`` is agents.dqn)."""
    found: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # agents.engine.run.train -> agents.engine.run
                target = target.rpartition(".")[0]
            if target:
                found.add(target)
    return found


GRAPH = {name: imports(path, set(source_modules())) - {name} for name, path in source_modules().items()}


def test_the_rooms_exist():
    assert {room(m) for m in GRAPH} >= {"envs", "engine", "robustness", "family", "registry", "experiments", "entry"}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_down(module):
    level = LEVELS.index(room(module))
    upward = sorted(t for t in GRAPH[module] if LEVELS.index(room(t)) > level)
    assert not upward, f"{module} ({room(module)}) imports upward: {upward}"


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module (the import circles)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return out


def package_parents(module: str) -> set[str]:
    """A module imports its packages' __init__ on the way: not a circle of the code's making."""
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def test_no_import_circles():
    graph = {m: {t for t in targets if t not in package_parents(m)} for m, targets in GRAPH.items()}
    assert strongly_connected(graph) == []


def test_the_checker_sees_an_upward_import_and_a_circle():
    """The rules bite: an engine module importing a family, and two modules importing each other."""
    assert LEVELS.index(room("agents.sac")) > LEVELS.index(room("agents.engine.loops"))
    assert strongly_connected({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
