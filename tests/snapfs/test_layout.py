"""The shape of the snapfs package: no module reaches into another's private names,
and no room grows past its size (issue 11: modules <= 800 lines, classes <= 700,
the Volume < 400)."""

from __future__ import annotations

import ast
from pathlib import Path

import snapfs

PACKAGE = Path(snapfs.__file__).parent
#: Private-looking names that are public API: namedtuple's methods, os._exit (after fork).
ALLOWED = {"_replace", "_fields", "_asdict", "_make", "_exit"}


def _sources() -> list[Path]:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 10
    return files


def test_no_private_name_of_another_object_is_used():
    """``x._name`` only on ``self`` or ``cls``: a module uses its own private names only."""
    found = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Attribute):
                continue
            a = node.attr
            if not a.startswith("_") or a.startswith("__") or a in ALLOWED:
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {ast.unparse(node)}")
    assert not found, "private names used from outside:\n" + "\n".join(found)


def test_the_checker_sees_a_private_access(tmp_path):
    """The test above would see ``self.vol._txn`` (what fsck used to do)."""
    tree = ast.parse("def f(self):\n    with self.vol._txn():\n        pass\n")
    hits = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "_txn"
            and not (isinstance(n.value, ast.Name) and n.value.id in ("self", "cls"))]
    assert len(hits) == 1


def test_modules_and_classes_stay_small():
    sizes = {}
    for path in _sources():
        text = path.read_text()
        name = str(path.relative_to(PACKAGE.parent))
        assert text.count("\n") <= 800, f"{name} has {text.count(chr(10))} lines (at most 800)"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                n = node.end_lineno - node.lineno + 1
                sizes[node.name] = n
                assert n <= 700, f"class {node.name} in {name} has {n} lines (at most 700)"
    assert sizes["Volume"] < 400
