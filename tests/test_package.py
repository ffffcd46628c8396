"""Packaging: installed import names, no generic top-level packages, imports point down only."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Source folder -> installed package, and which of our packages each may import.
FOLDERS = {
    "protocols": "kkt.protocols",
    "emulator": "kkt.emulator",
    "kkt": "kkt",
    "tools": "kkt.tools",
}
ALLOWED = {
    "kkt.protocols": {"kkt.protocols"},
    "kkt.emulator": {"kkt.emulator", "kkt.protocols"},
    "kkt": {
        "kkt",
        "kkt.protocols",
    },  # the in-process transport may reach kkt.emulator (the one bridge)
    "kkt.tools": {"kkt", "kkt.protocols", "kkt.emulator", "kkt.tools"},
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
        "import kkt, kkt.protocols, kkt.emulator, kkt.tools, kkt.protocols.shtrih;"
        "print(kkt.__version__, kkt.protocols.shtrih.ShtrihHostLink.__name__)",
        tmp_path,
    )
    assert out.endswith("ShtrihHostLink")


def test_no_generic_top_level_packages(tmp_path: Path) -> None:
    out = _run(
        "import importlib.util as u;"
        "print([n for n in ('protocols', 'emulator', 'tools') if u.find_spec(n) is not None])",
        tmp_path,
    )
    assert out == "[]"


def test_py_typed_is_shipped(tmp_path: Path) -> None:
    out = _run(
        "import kkt, pathlib; print((pathlib.Path(kkt.__file__).parent / 'py.typed').exists())",
        tmp_path,
    )
    assert out == "True"


def _our_imports(path: Path, package: str) -> set[str]:
    """Our packages imported by one module, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    module_parts = [
        *package.split("."),
        *path.relative_to(ROOT / _folder(package)).with_suffix("").parts,
    ]
    if module_parts[-1] == "__init__":
        module_parts.pop()
    else:
        module_parts.pop()  # the module's own package
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module_parts[: len(module_parts) - node.level + 1]
                names = [".".join([*base, node.module] if node.module else base)]
            elif node.module:
                names = [node.module]
        for name in names:
            if name == "kkt" or name.startswith("kkt."):
                found.add(_top_package(name))
            elif name.split(".")[0] in FOLDERS and name.split(".")[0] != "kkt":
                found.add("<source folder " + name.split(".")[0] + ">")
    return found


def _folder(package: str) -> str:
    return next(folder for folder, pkg in FOLDERS.items() if pkg == package)


def _top_package(name: str) -> str:
    for candidate in ("kkt.protocols", "kkt.emulator", "kkt.tools"):
        if name == candidate or name.startswith(candidate + "."):
            return candidate
    return "kkt"


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


def test_import_walker_sees_relative_imports() -> None:
    # The walker must resolve "from ..errors import X" inside protocols/shtrih to kkt.protocols.
    found = _our_imports(ROOT / "protocols" / "shtrih" / "link.py", "kkt.protocols")
    assert found == {"kkt.protocols"}
