"""The import contract: the computing core never imports widgets, Qt, magicgui or napari."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "napari_bvdm"
CORE = ["io", "shapes", "texture", "flow", "synthesis", "evaluate", "runtime", "commands", "cli", "preview"]
FORBIDDEN = ("qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "napari", "magicgui", "napari_bvdm.widgets")


def _core_files():
    for name in CORE:
        path = PKG / name
        yield from (sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")])


def _imports(path: Path):
    rel = path.relative_to(PKG.parent).with_suffix("")
    here = list(rel.parts[:-1]) if path.name != "__init__.py" else list(rel.parts[:-1])
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                yield mod
                yield from (f"{mod}.{a.name}" for a in node.names)
            else:
                yield node.module or ""


def _bad(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def test_no_core_module_imports_gui_code():
    found = [(str(p.relative_to(PKG)), m) for p in _core_files() for m in _imports(p) if _bad(m)]
    assert found == []


def test_importing_the_core_loads_no_gui_module():
    code = ("import sys\n" + "".join(f"import napari_bvdm.{n}\n" for n in CORE)
            + "import napari_bvdm.synthesis.recipe, napari_bvdm.evaluate.experiment\n"
            + f"bad = [m for m in sys.modules if any(m == f or m.startswith(f + '.') for f in {FORBIDDEN!r})]\n"
            + "print(bad)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
