"""The driver's modules import downwards only: transport <- vendors <- settle/register <- connect.

Every import counts -- at module level, inside a function, under ``TYPE_CHECKING``: a cycle
deferred into a function is still a cycle in the design.
"""

from __future__ import annotations

import ast
from pathlib import Path

KKT = Path(__file__).resolve().parents[2] / "kkt"

# Lower layers first; a module may import its own layer and the layers below.
LAYERS = [
    {"errors", "results"},
    {"receipt", "correction", "journal", "ofd", "printform", "marking"},
    {"formats", "formats.atol_json", "transport", "transport.session", "transport.tcp"},
    {"transport.usb", "transport.ports", "transport.inprocess"},
    {"vendors", "vendors.base"},
    {"vendors.shtrih", "vendors.atol"},
    {"settle", "cash", "discover", "verify"},
    {"register"},
    {"connect"},
    {"", "__main__"},  # the package: the public API
]


def _modules() -> dict[str, Path]:
    found = {}
    for path in KKT.rglob("*.py"):
        parts = path.relative_to(KKT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    package = [part for part in package if part]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = ".".join(
                [*package[: len(package) - node.level + 1], *filter(None, [node.module])]
            )
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kkt"):
            base = (node.module or "").removeprefix("kkt").removeprefix(".")
        else:
            continue
        # ``from .. import errors`` depends on the module kkt.errors, not on the package.
        submodules = {f"{base}.{alias.name}".lstrip(".") for alias in node.names} & set(modules)
        found |= submodules or {base}
    return {target for target in found if target in modules and target != name}


def test_every_module_has_a_layer() -> None:
    assert set(_modules()) == set().union(*LAYERS)


def test_imports_point_down_and_never_round() -> None:
    modules = _modules()
    layer = {name: rank for rank, names in enumerate(LAYERS) for name in names}
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    upward = {
        (name, target)
        for name, targets in graph.items()
        for target in targets
        if layer[target] > layer[name]
    }
    assert upward == set()
    # Within a layer: no cycle either.
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join((*path, name))}"
        if name not in done:
            for target in graph[name]:
                visit(target, (*path, name))
            done.add(name)

    for name in graph:
        visit(name, ())
