"""Dependencies point one way (DESIGN): cli -> serve -> facade -> evaluate -> exporters ->
providers -> core, each layer read from the module's path. Every import is read from the source, those inside functions included (the
lazy ones are exactly where a wrong edge hides), and no two modules import each other
through any chain."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("gateway", "providers", "exporters", "cli")
# The layer of a module is read from its path, most specific prefix first (DESIGN):
# cli -> serve -> facade -> evaluate -> exporters -> providers -> core. `gateway/__init__.py`
# is the facade's public face (`import gateway as tg`); every other gateway/ room is the core.
LAYERS = (
    ("cli", "cli"),
    ("gateway.serve", "serve"),
    ("gateway.facade", "facade"),
    ("gateway.evaluate", "evaluate"),
    ("exporters", "exporters"),
    ("providers", "providers"),
    ("gateway", "core"),
)
RANK = {"core": 0, "providers": 1, "exporters": 2, "evaluate": 3, "facade": 4, "serve": 5, "cli": 6}


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
    if module == "gateway":
        return "facade"
    for prefix, name in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return name
    raise AssertionError(f"{module} is in no layer")


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
    assert (
        "providers" in GRAPH["gateway.facade.plan"]
    )  # `from providers import all_planners` in plan()
    assert layer("gateway.journal") == "core" and layer("gateway.facade.launch") == "facade"
    assert layer("gateway.serve.dashboard.views") == "serve"
    assert layer("gateway.evaluate.task") == "evaluate" and layer("gateway.cost.serving") == "core"
    assert len(MODULES) > 80


def test_core_rooms_are_the_only_loose_entries():
    """gateway/ shows its layers: besides the public face and the error tree, every entry is
    a room (a package), so a new module has to be put in one."""
    loose = sorted(
        p.name
        for p in (ROOT / "gateway").iterdir()
        if p.suffix == ".py" and p.name not in ("__init__.py", "errors.py")
    )
    assert not loose, loose


def test_nothing_outside_providers_imports_a_private_provider_module():
    """`providers._*` are a backend's own helpers; everything else goes through the registry,
    the protocols (`providers.base`, `providers.runners.base`) and the public modules."""
    private = [
        f"{m} imports {t}"
        for m, targets in GRAPH.items()
        if not m.startswith("providers")
        for t in sorted(targets)
        if t.startswith("providers.") and any(p.startswith("_") for p in t.split(".")[1:])
    ]
    assert not private, "\n".join(private)
