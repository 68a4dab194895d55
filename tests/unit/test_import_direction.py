"""Dependencies point one way (DESIGN): cli -> gateway facade -> exporters -> providers ->
gateway core. Every import is read from the source, those inside functions included (the
lazy ones are exactly where a wrong edge hides), and no two modules import each other
through any chain."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("gateway", "providers", "exporters", "cli")
# the facade: what users call; it may import exporters and providers. Everything else in
# gateway/ is the core that every layer may import.
FACADE = {
    "gateway",
    "gateway.router",
    "gateway.launch",
    "gateway.jobs",
    "gateway.deploy",
    "gateway.export",
    "gateway.sources",
    "gateway.waiting",
    "gateway.doctor",
    "gateway.migrate",
}
# whole packages at the facade's level (DESIGN: cli -> facade, gateway/serve -> exporters)
FACADE_PACKAGES = ("gateway.serve", "gateway.evaluate")
RANK = {"core": 0, "providers": 1, "exporters": 2, "facade": 3, "cli": 4}


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The project module an import names (`gateway.data.load` -> `gateway.data`)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import mod` is an edge to pkg.mod; `from mod import name`, to mod
            names = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names
            ]
        else:
            continue
        for name in names:
            target = _resolve(name)
            if target and target != module:
                found.add(target)
    return found


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def layer(module: str) -> str:
    top = module.split(".")[0]
    if top == "gateway":
        facade = module in FACADE or module.startswith(FACADE_PACKAGES)
        return "facade" if facade else "core"
    return top


def test_every_edge_points_down():
    wrong = [
        f"{m} ({layer(m)}) imports {t} ({layer(t)})"
        for m, targets in GRAPH.items()
        for t in sorted(targets)
        if RANK[layer(t)] > RANK[layer(m)]
    ]
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_itself_back():
    """No cycle through any chain of imports (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_the_check_sees_lazy_imports():
    """The checker itself: an import inside a function is an edge (so it cannot pass vacuously)."""
    assert "providers" in GRAPH["gateway.router"]  # `from providers import all_planners` in plan()
    assert layer("gateway.journal") == "core" and layer("gateway.launch") == "facade"
    assert len(MODULES) > 80
