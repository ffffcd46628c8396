"""Packaging: installed import names, no generic top-level packages; imports point down only,
the vendors' emulators stay apart, and no two modules import each other (no import cycle)."""

from __future__ import annotations

import ast
import itertools
import subprocess
import sys
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Source folder -> installed package, and which of our packages each may import.
FOLDERS = {
    "protocols": "kkt.protocols",
    "emulator": "kkt.emulator",
    "kkt": "kkt",
    "tools": "kkt.tools",
    "render": "kkt.render",
    "cloud": "kkt.cloud",
}
ALLOWED = {
    "kkt.protocols": {"kkt.protocols"},
    "kkt.emulator": {"kkt.emulator", "kkt.protocols"},
    "kkt": {
        "kkt",
        "kkt.protocols",
    },  # the in-process transport may reach kkt.emulator (the one bridge)
    # kkt.tools reaches kkt.cloud only lazily, in tools/cloud_cli.py (the `cloud` extra)
    "kkt.tools": {"kkt", "kkt.protocols", "kkt.emulator", "kkt.tools", "kkt.render", "kkt.cloud"},
    # receipts drawn from FFD documents: the driver's tools, the emulator and the cloud alike
    "kkt.render": {"kkt.render", "kkt.protocols"},
    # the cloud service: the driver, the emulator (--emulated), receipts drawn, itself
    "kkt.cloud": {"kkt.cloud", "kkt", "kkt.protocols", "kkt.emulator", "kkt.render"},
}


# The driver's in-process transport is the one module allowed to reach the emulator.
_BRIDGES = {"inprocess.py": {"kkt.emulator"}, "__main__.py": {"kkt.tools"}}


def _run(code: str, tmp_path: Path) -> str:
    # Run outside the checkout so the source folders are not importable by accident.
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def test_installed_import_names(tmp_path: Path) -> None:
    out = _run(
        "import kkt, kkt.protocols, kkt.emulator, kkt.tools, kkt.render;"
        "import kkt.protocols.shtrih;"
        "print(kkt.__version__, kkt.protocols.shtrih.ShtrihHostLink.__name__)",
        tmp_path,
    )
    assert out.endswith("ShtrihHostLink")


def test_no_generic_top_level_packages(tmp_path: Path) -> None:
    out = _run(
        "import importlib.util as u;"
        "names = ('protocols', 'emulator', 'tools', 'render', 'cloud');"
        "print([n for n in names if u.find_spec(n) is not None])",
        tmp_path,
    )
    assert out == "[]"


def test_py_typed_is_shipped(tmp_path: Path) -> None:
    out = _run(
        "import kkt, pathlib; print((pathlib.Path(kkt.__file__).parent / 'py.typed').exists())",
        tmp_path,
    )
    assert out == "True"


# -- the import graph ---------------------------------------------------------------------------
#
# One walk over the source folders gives every module's imports of ours, each with its line and
# where it sits: at module level (run when the module is imported -- the top of the module, and
# inside top-level `if`/`try`/`with`/class bodies), under `if TYPE_CHECKING:` at module level, or
# inside a function (run only when called).
#
# Arrows (`test_imports_point_down`, `test_vendor_emulators_stay_apart`) count every import,
# wherever it sits: a lazy import is still an arrow.
#
# Cycles (`test_no_import_cycle`) count every import between two of our modules, wherever it
# sits, and say on each arrow of a reported cycle where it sits:
# * TYPE_CHECKING imports count.  One cannot fail at run time, but it is a dependency all the
#   same: the module needs the other's type to be read and type-checked, so two modules that
#   import each other that way are still one tangle; the guard only keeps it from crashing at
#   import.
# * Imports inside a function count for the same reason: run after both modules are loaded, they
#   are the other usual way of hiding a cycle ("here: atol_json imports this module").
# A cycle is broken by moving what both ends need one level down, not by hiding an arrow behind a
# guard or in a function, so every such cycle is reported.  The one-import-per-arrow paths show
# which arrow to remove.  A cycle of module-level imports only is the kind that can fail at
# import time; the arrows' marks tell it apart.


@dataclass(frozen=True)
class Import:
    target: str  # the module imported, e.g. "kkt.protocols.shtrih.link"
    line: int
    where: str  # "module", "type" (under TYPE_CHECKING at module level) or "function"


def _module_name(path: Path) -> str:
    folder = path.relative_to(ROOT).parts[0]
    parts = [*FOLDERS[folder].split("."), *path.relative_to(ROOT / folder).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _source_modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for folder in FOLDERS
        for path in sorted((ROOT / folder).rglob("*.py"))
    }


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, known: Collection[str] = ()) -> list[Import]:
    """Every import in one module, relative imports resolved.  ``from a.b import c`` imports the
    module ``a.b.c`` when ``known`` holds it, else ``a.b`` (a name from its ``__init__``)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    return _parse_imports(path.read_text(encoding="utf-8"), package, known)


def _parse_imports(source: str, package: str, known: Collection[str]) -> list[Import]:
    found: list[Import] = []

    def visit(node: ast.AST, where: str) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            where = "function"
        elif isinstance(node, ast.If) and _is_type_checking(node.test) and where == "module":
            for child in node.body:
                visit(child, "type")
            for child in node.orelse:
                visit(child, where)
            return
        if isinstance(node, ast.Import):
            found.extend(Import(alias.name, node.lineno, where) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            for alias in node.names:
                target = f"{module}.{alias.name}"
                found.append(Import(target if target in known else module, node.lineno, where))
        for child in ast.iter_child_nodes(node):
            visit(child, where)

    visit(ast.parse(source), "module")
    return found


def _our_imports(path: Path, package: str) -> set[str]:
    """Our top packages (or source folders imported by their own names) one module imports."""
    found: set[str] = set()
    for item in _imports(path):
        name = item.target
        if name == "kkt" or name.startswith("kkt."):
            found.add(_top_package(name))
        elif name.split(".")[0] in FOLDERS and name.split(".")[0] != "kkt":
            found.add("<source folder " + name.split(".")[0] + ">")
    return found


def _top_package(name: str) -> str:
    for candidate in ("kkt.protocols", "kkt.emulator", "kkt.tools", "kkt.render", "kkt.cloud"):
        if name == candidate or name.startswith(candidate + "."):
            return candidate
    return "kkt"


def _under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@pytest.mark.parametrize("folder", sorted(FOLDERS))
def test_imports_point_down(folder: str) -> None:
    package = FOLDERS[folder]
    files = sorted((ROOT / folder).rglob("*.py"))
    assert files, f"{folder}/ has no modules"
    wrong = {
        str(path.relative_to(ROOT)): bad
        for path in files
        if (bad := _our_imports(path, package) - ALLOWED[package] - _BRIDGES.get(path.name, set()))
    }
    assert wrong == {}


# (importer's package, a package it may never import): the vendors' emulators share only what
# sits below them in kkt.emulator.
FORBIDDEN = (("kkt.emulator.atol", "kkt.emulator.shtrih"),)


def test_vendor_emulators_stay_apart() -> None:
    modules = _source_modules()
    wrong = [
        f"{path.relative_to(ROOT)}:{item.line} imports {item.target}"
        for name, path in modules.items()
        for importer, forbidden in FORBIDDEN
        if _under(name, importer)
        for item in _imports(path, modules)
        if _under(item.target, forbidden)
    ]
    assert not wrong, "a vendor's emulator reaches into another's:\n" + "\n".join(wrong)


STRENGTH = {"module": 2, "type": 1, "function": 0}


def _import_graph() -> dict[str, dict[str, Import]]:
    """module -> {module it imports (anywhere in it: see above) -> the import shown for that
    arrow: a module-level one if there is one, then a TYPE_CHECKING one}."""
    modules = _source_modules()
    graph: dict[str, dict[str, Import]] = {name: {} for name in modules}
    for name, path in modules.items():
        for item in _imports(path, modules):
            if item.target in modules and item.target != name:
                known = graph[name].get(item.target)
                if known is None or STRENGTH[item.where] > STRENGTH[known.where]:
                    graph[name][item.target] = item
    return graph


def _strongly_connected(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Tarjan's components with more than one module (iterative: no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
    return components


def _shortest_cycle(graph: Mapping[str, Iterable[str]], start: str, within: set[str]) -> list[str]:
    """The shortest path from ``start`` back to itself inside one component."""
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node]):
                if target not in within:
                    continue
                if target == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if target not in came_from:
                    came_from[target] = node
                    following.append(target)
        frontier = following
    raise AssertionError(f"{start} is on no cycle")  # cannot happen inside a component


def _import_cycles(graph: dict[str, dict[str, Import]]) -> list[str]:
    """Each component's cycles, one shortest cycle through each of its modules (the same cycle
    found from two of its modules once), with each arrow's line."""
    reports: list[str] = []
    for component in _strongly_connected(graph):
        within = set(component)
        seen: set[tuple[str, ...]] = set()
        reports.append(f"{len(component)} modules import each other: {', '.join(component)}")
        for start in component:
            cycle = _shortest_cycle(graph, start, within)
            turn = cycle.index(min(cycle[:-1]))
            key = tuple(cycle[turn:-1] + cycle[:turn])
            if key in seen:
                continue
            seen.add(key)
            steps = [cycle[0]]
            for here, there in itertools.pairwise(cycle):
                item = graph[here][there]
                guard = {"module": "", "type": ", TYPE_CHECKING", "function": ", in a function"}[
                    item.where
                ]
                steps.append(f"-({_module_path(here)}:{item.line}{guard})-> {there}")
            reports.append("  " + " ".join(steps))
    return reports


def _module_path(name: str) -> str:
    return str(_source_modules()[name].relative_to(ROOT))


def test_no_import_cycle() -> None:
    cycles = _import_cycles(_import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_cycle_finder_reports_a_cycle_with_its_path() -> None:
    def arrow(target: str, where: str = "module") -> Import:
        return Import(target, 1, where)

    graph = {
        "kkt.a": {"kkt.b": arrow("kkt.b")},
        "kkt.b": {"kkt.c": arrow("kkt.c", "type")},
        "kkt.c": {"kkt.a": arrow("kkt.a")},
        "kkt.d": {"kkt.a": arrow("kkt.a")},
    }
    assert [sorted(c) for c in _strongly_connected(graph)] == [["kkt.a", "kkt.b", "kkt.c"]]
    assert _shortest_cycle(graph, "kkt.b", {"kkt.a", "kkt.b", "kkt.c"}) == [
        "kkt.b",
        "kkt.c",
        "kkt.a",
        "kkt.b",
    ]


def test_import_walker_sees_relative_imports() -> None:
    # The walker must resolve "from ..errors import X" inside protocols/shtrih to kkt.protocols.
    found = _our_imports(ROOT / "protocols" / "shtrih" / "link.py", "kkt.protocols")
    assert found == {"kkt.protocols"}


def test_import_walker_tells_where_an_import_sits() -> None:
    source = """
from typing import TYPE_CHECKING
from . import sibling, helper_name
from ..errors import Error
if TYPE_CHECKING:
    from .model import Model
else:
    import kkt.other
try:
    from kkt.fast import speedup
except ImportError:
    pass
class Holder:
    from kkt.inner import value
def later():
    from kkt.lazy import thing
"""
    known = {"kkt.pkg.sibling", "kkt.pkg.model", "kkt.errors"}
    found = [
        (item.target, item.line, item.where) for item in _parse_imports(source, "kkt.pkg", known)
    ]
    assert [f for f in found if f[0] != "typing"] == [
        ("kkt.pkg.sibling", 3, "module"),
        ("kkt.pkg", 3, "module"),
        ("kkt.errors", 4, "module"),
        ("kkt.pkg.model", 6, "type"),
        ("kkt.other", 8, "module"),
        ("kkt.fast", 10, "module"),
        ("kkt.inner", 14, "module"),
        ("kkt.lazy", 16, "function"),
    ]
