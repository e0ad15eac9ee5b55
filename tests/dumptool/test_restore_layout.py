"""The shape of restore's rooms (issue 11, item 3): split by concept as
FreeBSD's restore, none past its size, none reaching into another's private
names, and an engine that prints nothing of its own (it reports through the
callbacks its caller gives, as Dump does)."""

from __future__ import annotations

import ast
from pathlib import Path

import dumptool

PACKAGE = Path(dumptool.__file__).parent
#: restore's modules, and the callers that hand the engine its callbacks
ROOMS = ("restore.py", "restore_report.py", "restore_options.py", "volume_input.py", "image_reader.py",
         "directories.py", "extraction.py", "rebuild_plan.py", "rebuild.py", "compare.py", "symtab.py",
         "interactive.py", "cli/pyrestore.py")
ENGINE = ROOMS[:11]
#: Private-looking names that are public API (namedtuple's).
ALLOWED = {"_replace", "_fields", "_asdict", "_make"}


def _tree(name: str) -> ast.Module:
    return ast.parse((PACKAGE / name).read_text(), name)


def test_no_room_uses_another_ones_private_names() -> None:
    found = []
    for name in ROOMS:
        for node in ast.walk(_tree(name)):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__") \
                    and node.attr not in ALLOWED \
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
            if isinstance(node, ast.ImportFrom) and any(a.name.startswith("_") for a in node.names) \
                    and node.module != "__future__":
                found.append(f"{name}:{node.lineno}: imports a private name from {node.module}")
    assert not found, "private names used from outside:\n" + "\n".join(found)


def test_rooms_stay_small() -> None:
    sizes = {}
    for name in ROOMS:
        text = (PACKAGE / name).read_text()
        assert text.count("\n") <= 800, f"{name} has {text.count(chr(10))} lines (at most 800)"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                sizes[node.name] = n = node.end_lineno - node.lineno + 1
                assert n <= 700, f"class {node.name} in {name} has {n} lines (at most 700)"
    assert sizes["Restore"] < 400


def test_the_engine_prints_nothing_of_its_own() -> None:
    found = [f"{name}:{node.lineno}" for name in ENGINE for node in ast.walk(_tree(name))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
             or isinstance(node, ast.Attribute) and node.attr in ("stdout", "stderr")]
    assert not found, "the engine prints: " + ", ".join(found)
