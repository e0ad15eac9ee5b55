"""``ndmp`` sits on top: it imports dumptool (snapfs through it), tapelib and snapdump
(and the standard library and trio), and none of them imports it."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BELOW = ("snapdump", "tapelib", "dumptool", "snapfs")


def _imported(package: str) -> dict[str, set[str]]:
    """{top-level module imported: the files of ``package`` importing it} (absolute imports)."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def test_no_package_below_imports_ndmp() -> None:
    for package in BELOW:
        imported = _imported(package)
        assert "ndmp" not in imported, (package, imported["ndmp"])


def test_ndmp_imports_only_the_packages_below_trio_and_the_standard_library() -> None:
    imported = _imported("ndmp")
    assert {"dumptool", "tapelib", "snapdump", "trio"} <= set(imported), sorted(imported)  # snapfs: through dumptool
    others = set(imported) - set(BELOW) - {"trio", "ndmp"} - set(sys.stdlib_module_names)
    assert not others, {name: imported[name] for name in others}
    assert "xdrlib" not in imported  # our own XDR: xdrlib is gone in 3.13
