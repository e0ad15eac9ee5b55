"""Dumping a snapfs volume from its snapshots: a level 0 from ``.snapshot/s0``
and a level 1 from ``.snapshot/s1`` make one chain of the live path (dumpdates
and c_filesys name ``MNT``, not the snapshot) with one inode number per file
(``trusted.snapfs.ino``), so the real ``restore -r`` of both gives the tree of s1."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fuse_fixtures import mounted, snapfs  # noqa: F401 (fixtures)

from dumptool.format import TP_BSIZE
from dumptool.format.header import header_byte_order, unpack_header
from scripts.demo import compare_attributes, same_tree

pytestmark = pytest.mark.fuse

PYDUMP = str(Path(sys.executable).parent / "pydump")
RESTORE = "/sbin/restore"


def pydump(*args: str | Path) -> None:
    r = subprocess.run([PYDUMP, *map(str, args)], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                       timeout=120)
    assert r.returncode == 0, r.stderr


def restore(image: Path, cwd: Path, tmp: Path) -> None:
    scratch = tmp / f"rtmp-{time.monotonic_ns()}"
    scratch.mkdir()
    r = subprocess.run([RESTORE, "-r", "-y", "-f", str(image)], cwd=cwd, env=dict(os.environ, TMPDIR=str(scratch)),
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def filesys(image: Path) -> bytes:
    block = image.read_bytes()[:TP_BSIZE]
    return unpack_header(block, header_byte_order(block)).c_filesys


@pytest.mark.skipif(not os.access(RESTORE, os.X_OK), reason="real /sbin/restore not installed")
def test_levels_0_and_1_from_snapshots_restore_to_the_live_tree_of_the_second(mounted, tmp_path):
    m = mounted.mnt
    (m / "docs" / "deep").mkdir(parents=True)
    (m / "docs" / "a.txt").write_text("alpha\n" * 100)
    (m / "docs" / "deep" / "b.bin").write_bytes(os.urandom(20000))
    (m / "draft.txt").write_text("to be renamed\n")
    (m / "old.log").write_text("to be deleted\n")
    (m / "keep.txt").write_text("unchanged\n")
    os.link(m / "docs" / "a.txt", m / "a-link.txt")
    os.symlink("docs/a.txt", m / "sym")
    dumpdates = tmp_path / "dumpdates"
    time.sleep(1 - time.time() % 1)  # the level 0's date is a later second than the tree's

    snapfs("snapshot", "create", m, "s0")
    pydump("-0", "--quiet", "-u", "-D", dumpdates, "-f", tmp_path / "l0.dump", m / ".snapshot" / "s0")
    # the live tree changes; s0 does not
    with open(m / "docs" / "a.txt", "a") as f:
        f.write("a second thought\n")
    (m / "new").mkdir()
    (m / "new" / "c.txt").write_text("added\n")
    os.rename(m / "draft.txt", m / "docs" / "final.txt")
    os.unlink(m / "old.log")
    os.link(m / "keep.txt", m / "new" / "keep-link.txt")
    snapfs("snapshot", "create", m, "s1")
    pydump("-1", "--quiet", "-u", "-D", dumpdates, "-f", tmp_path / "l1.dump", m / ".snapshot" / "s1")

    lines = dumpdates.read_text().splitlines()
    assert [line.split()[:2] for line in lines] == [[str(m), "0"], [str(m), "1"]]
    fs0, fs1 = filesys(tmp_path / "l0.dump"), filesys(tmp_path / "l1.dump")
    assert fs0 == fs1 and len(fs0) >= 40 and os.fsencode(str(m)).startswith(fs0)  # c_filesys holds 63 bytes

    out = tmp_path / "out"
    out.mkdir()
    restore(tmp_path / "l0.dump", out, tmp_path)
    restore(tmp_path / "l1.dump", out, tmp_path)
    assert same_tree(m / ".snapshot" / "s1", out, ["restoresymtable"])
    assert compare_attributes(m / ".snapshot" / "s1", out) == []
    assert not (out / "old.log").exists() and not (out / "draft.txt").exists()
    assert os.stat(out / "keep.txt").st_ino == os.stat(out / "new" / "keep-link.txt").st_ino
    snapfs("snapshot", "delete", m, "s0")
    snapfs("snapshot", "delete", m, "s1")


def _next_second() -> None:
    time.sleep(1.02 - time.time() % 1)


def test_an_incremental_of_a_snapshot_is_based_on_when_the_last_one_was_taken(mounted, tmp_path):
    """Snapshot s1; change a file; dump s1 at level 0 (-u) a second later; snapshot s2; level 1 of s2.
    The level 0's date is s1's creation time (its data froze then), not when the dump ran, so the
    level 1 takes the change, and pyrestore -r of both gives s2's tree."""
    m = mounted.mnt
    (m / "docs").mkdir()
    (m / "docs" / "report.txt").write_text("first draft\n")
    (m / "other.txt").write_text("other\n")
    dumpdates = tmp_path / "dumpdates"
    snapfs("snapshot", "create", m, "s1")
    (m / "docs" / "report.txt").write_text("second draft, after s1\n")
    _next_second()  # the level 0 runs a later second than the change
    pydump("-0", "--quiet", "-u", "-D", dumpdates, "-f", tmp_path / "l0.dump", m / ".snapshot" / "s1")
    snapfs("snapshot", "create", m, "s2")
    pydump("-1", "--quiet", "-u", "-D", dumpdates, "-f", tmp_path / "l1.dump", m / ".snapshot" / "s2")

    pyrestore = str(Path(sys.executable).parent / "pyrestore")
    listed = subprocess.run([pyrestore, "-t", "-f", str(tmp_path / "l1.dump")], capture_output=True, text=True,
                            timeout=60)
    assert "./docs/report.txt" in listed.stdout, listed.stdout + listed.stderr
    out = tmp_path / "out"
    out.mkdir()
    for image in ("l0.dump", "l1.dump"):
        r = subprocess.run([pyrestore, "-r", "-f", str(tmp_path / image)], cwd=out, capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=60)
        assert r.returncode == 0, r.stderr
    assert (out / "docs" / "report.txt").read_text() == "second draft, after s1\n"
    assert same_tree(m / ".snapshot" / "s2", out, ["restoresymtable"])
    # the level 0's date, in the image and dumpdates, is when s1 was taken
    taken = int(os.getxattr(m / ".snapshot" / "s1", "user.snapfs.snapshot_created_ns")) // 10**9
    block = (tmp_path / "l0.dump").read_bytes()[:TP_BSIZE]
    assert unpack_header(block, header_byte_order(block)).c_date == taken
    with pytest.raises(OSError):  # the live tree has no creation time, and none can be set on it
        os.getxattr(m, "user.snapfs.snapshot_created_ns")
    with pytest.raises(PermissionError):
        os.setxattr(m / "other.txt", "user.snapfs.snapshot_created_ns", b"1")
    from dumptool.dumpdates import DumpDates
    assert [(r.level, r.date) for r in DumpDates(dumpdates).records()][0] == (0, taken)
    snapfs("snapshot", "delete", m, "s1")
    snapfs("snapshot", "delete", m, "s2")
