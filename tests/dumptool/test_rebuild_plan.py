"""``-r`` as restore.c's named passes: a pure planner that emits operations
and one executor, where ``-N`` is asked once (issue 11, item 3).

The planner is given the old symbol table and the image's front, never a
folder: what it plans is checked op by op, then the executor carries the
plan out (``-N``: nothing on disk changes; else the tree ends as the source).
"""

from __future__ import annotations

import time
from pathlib import Path

from dumptool.directories import ImageTree
from dumptool.extraction import Extractor
from dumptool.image_reader import ImageReader
from dumptool.rebuild import Rebuild
from dumptool.rebuild_plan import (
    ExtractLeaves,
    MakeDir,
    MakeTmp,
    MoveBack,
    ParkChanged,
    ParkDir,
    RemoveLeaf,
    RemoveNode,
    SaveTable,
    plan_rebuild,
)
from dumptool.restore import Options, Restore, VolumeInput
from dumptool.restore_report import Report
from dumptool.symtab import SymbolTable
from test_pydump import assert_same_tree, pydump


def _chain(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A level 0 and a level 1 of a tree in which a directory moved, one
    went, one came and a file changed."""
    src = tmp_path / "src"
    for d in ("a/b", "c", "gone"):
        (src / d).mkdir(parents=True)
    for name in ("a/f1", "a/f2", "a/b/g", "c/h", "gone/k1", "gone/k2"):
        (src / name).write_text(name)
    dates = tmp_path / "dumpdates"
    pydump("-0", "-u", "--quiet", "-D", str(dates), "-f", str(tmp_path / "l0"), str(src))
    now = time.time()
    time.sleep(int(now) + 1 - now + 0.02)
    (src / "a" / "b").rename(src / "c" / "b2")
    (src / "new").mkdir()  # (made before "gone" goes: no inode number of it reused)
    (src / "new" / "x").write_text("x")
    (src / "a" / "f2").write_text("changed")
    for name in ("k1", "k2"):
        (src / "gone" / name).unlink()
    (src / "gone").rmdir()
    pydump("-1", "-u", "--quiet", "-D", str(dates), "-f", str(tmp_path / "l1"), str(src))
    return src, tmp_path / "l0", tmp_path / "l1"


def _front(image: Path) -> ImageReader:
    reader = ImageReader(VolumeInput(str(image)), Report())
    reader.read_front()
    return reader


def _snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    return {str(p.relative_to(root)): (p.lstat().st_ino, p.lstat().st_mtime_ns, p.lstat().st_mode)
            for p in root.rglob("*")}


def test_the_plan_lists_restores_passes_in_order_and_reads_no_folder(tmp_path: Path, monkeypatch) -> None:
    src, l0, l1 = _chain(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    Restore(VolumeInput(str(l0))).rebuild(str(out))
    old = SymbolTable.load(out / "restoresymtable")
    image = _front(l1)
    assert isinstance(image.tree, ImageTree)
    monkeypatch.chdir(tmp_path)  # no folder is given: the plan names paths only
    plan = plan_rebuild(old, image.header, image.in_use, image.tree)
    kinds = [type(op) for op in plan.ops]
    ops = {type(op): op for op in plan.ops}
    # remove old leaves, remove old nodes, node updates, then the leaves, the table last
    assert kinds[0] is MakeTmp and kinds[-1] is SaveTable
    assert ops[ParkDir].rel == b"./a/b"
    assert b"./a/f2" in {op.rel for op in plan.ops if isinstance(op, ParkChanged)}
    assert sorted(op.rel for op in plan.ops if isinstance(op, RemoveLeaf)) == [b"./gone/k1", b"./gone/k2"]
    assert ops[RemoveNode].rel == b"./gone" and ops[RemoveNode].line == "Remove node gone"
    assert ops[MakeDir].rel == b"./new" and ops[MoveBack].rel == b"./c/b2"
    last = {k: max(i for i, kind in enumerate(kinds) if kind is k) for k in set(kinds)}
    first = {k: kinds.index(k) for k in set(kinds)}
    assert max(last[ParkDir], last[ParkChanged], last[RemoveLeaf]) < first[RemoveNode]
    assert last[RemoveNode] < min(first[MakeDir], first[MoveBack])
    assert max(last[MakeDir], last[MoveBack]) < first[ExtractLeaves]
    leaves = {p for paths in ops[ExtractLeaves].leaves.values() for p in paths}
    assert {b"./a/f2", b"./new/x"} <= leaves and not any(p.startswith(b"./gone") for p in leaves)
    assert sorted(plan.table.paths()[ino][0] for ino in plan.table.dirs) == [b".", b"./a", b"./c", b"./c/b2",
                                                                            b"./new"]
    # a -N run keeps no old copy aside: the changed file's old name is only removed
    dry = plan_rebuild(old, image.header, image.in_use, image.tree, park_changed=False)
    assert not any(isinstance(op, ParkChanged) for op in dry.ops)
    assert b"./a/f2" in {op.rel for op in dry.ops if isinstance(op, RemoveLeaf)}
    image.input.close()


def test_the_executor_skips_every_writing_op_under_n_and_applies_the_plan_else(tmp_path: Path) -> None:
    src, l0, l1 = _chain(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    Restore(VolumeInput(str(l0))).rebuild(str(out))
    before = _snapshot(out)
    for dry in (True, False):
        old = SymbolTable.load(out / "restoresymtable")
        image = _front(l1)
        lines: list[str] = []
        report = Report(say=lines.append, verbose=lambda: True)
        plan = plan_rebuild(old, image.header, image.in_use, image.tree, park_changed=not dry)
        opts = Options(dry_run=dry, verbose=True)
        h = image.header
        extractor = Extractor(image, report, opts)
        Rebuild(image, extractor, report, opts, str(out), plan.table, (h.c_date, h.c_ddate, h.c_level)).run(plan.ops)
        extractor.close_tree()
        image.input.close()
        assert report.error_count == 0
        assert "Remove node gone" in lines and "Make node ./new" in lines and "Extract new leaves." in lines
        if dry:
            assert _snapshot(out) == before  # -N: not one name, inode or time changed
    assert_same_tree(src, out)
    assert SymbolTable.load(out / "restoresymtable").dump_date == _front(l1).header.c_date
