"""Increment chains: which files each level holds, and restoring a chain in order.

Dump selects a file when its mtime or ctime is at or after the base dump's
date (whole seconds).  ctime cannot be set, so each dump waits for the next
second after the last change (:func:`next_second`): every change before a
dump then falls in an earlier second than the dump's date, every change after
it in the same second or later.  mtimes are set explicitly and distinctly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from test_pydump import RESTORE, assert_same_tree, listing, pydump, restore
from test_pydump import pyrestore as _pyrestore

DATE = 1_700_000_000

pytestmark = pytest.mark.skipif(not os.access(RESTORE, os.X_OK), reason="real /sbin/restore not installed")


def next_second() -> None:
    """Sleep until the clock is in a later whole second than now."""
    now = time.time()
    time.sleep(int(now) + 1 - now + 0.02)


def touch(path: Path, data: bytes, mtime: int) -> None:
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))



def pyrestore(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return _pyrestore(*args, cwd=cwd, check=True)


class Chain:
    """A source tree dumped with ``-u`` into a private dumpdates file."""

    def __init__(self, tmp: Path, src: Path) -> None:
        self.tmp, self.src = tmp, src
        self.dumpdates = tmp / "dumpdates"

    def dump(self, level: int, name: str) -> Path:
        next_second()
        image = self.tmp / name
        pydump(f"-{level}", "--quiet", "-u", "-D", str(self.dumpdates), "-f", str(image), str(self.src))
        return image

    def listed(self, image: Path) -> set[str]:
        """The names on *image* per pyrestore -t, checked equal to the real restore -t."""
        ours = listing(pyrestore("-t", "-f", str(image), cwd=self.tmp).stdout)
        real = listing(restore("-t", "-f", str(image), cwd=self.tmp, tmp=self.tmp).stdout)
        assert ours == real
        return set(ours)


def test_chain_0_2_3_1_4_each_image_holds_exactly_the_changes_since_its_base(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "dir").mkdir(parents=True)
    for n, name in enumerate(["a", "b", "c", "untouched", "dir/d"]):
        touch(src / name, f"{name} v0\n".encode(), DATE + n)
    os.utime(src / "dir", (DATE, DATE))
    chain = Chain(tmp_path, src)

    l0 = chain.dump(0, "l0")
    assert chain.listed(l0) == {".", "./a", "./b", "./c", "./untouched", "./dir", "./dir/d"}

    touch(src / "a", b"a v2\n", DATE + 100)
    l2 = chain.dump(2, "l2")                       # base: the level 0
    assert chain.listed(l2) == {".", "./a"}

    touch(src / "b", b"b v3\n", DATE + 200)
    l3 = chain.dump(3, "l3")                       # base: the level 2
    assert chain.listed(l3) == {".", "./b"}

    touch(src / "c", b"c v1\n", DATE + 300)
    l1 = chain.dump(1, "l1")                       # base: the level 0 again
    assert chain.listed(l1) == {".", "./a", "./b", "./c"}

    touch(src / "dir" / "d", b"d v4\n", DATE + 400)
    l4 = chain.dump(4, "l4")                       # base: the level 1
    assert chain.listed(l4) == {".", "./dir", "./dir/d"}

    levels = [line.split()[1] for line in chain.dumpdates.read_text().splitlines()]
    assert sorted(levels) == ["0", "1", "2", "3", "4"]

    out = tmp_path / "out"
    out.mkdir()
    for image in (l0, l1, l4):
        pyrestore("-r", "-f", str(image), cwd=out)
    assert_same_tree(src, out)


def _level0_tree(src: Path) -> None:
    (src / "keep" / "deep").mkdir(parents=True)
    (src / "olddir" / "inner").mkdir(parents=True)
    (src / "gone-dir").mkdir()
    touch(src / "keep" / "deep" / "f", b"deep\n", DATE + 1)
    touch(src / "to-rename", b"rename me\n", DATE + 2)
    touch(src / "to-delete", b"delete me\n", DATE + 3)
    touch(src / "becomes-dir", b"I am a file\n", DATE + 4)
    touch(src / "olddir" / "inner" / "x", b"x\n", DATE + 5)
    touch(src / "gone-dir" / "y", b"y\n", DATE + 6)
    touch(src / "linked", b"linked\n", DATE + 7)
    os.link(src / "linked", src / "keep" / "hardlink")
    os.symlink("keep/deep/f", src / "symlink")
    os.chown(src / "linked", 1001, 2002)
    os.chmod(src / "to-rename", 0o640)
    os.setxattr(src / "to-rename", "user.tag", b"renamed but unchanged")
    os.setxattr(src / "keep", "user.dir", b"a directory xattr")


def _level1_changes(src: Path) -> None:
    os.rename(src / "to-rename", src / "keep" / "renamed")               # a rename across directories
    os.unlink(src / "to-delete")                                          # a deletion
    shutil.rmtree(src / "gone-dir")                                       # a directory deletion
    os.unlink(src / "becomes-dir")                                        # a file replaced by a directory
    (src / "becomes-dir").mkdir()
    touch(src / "becomes-dir" / "inside", b"inside\n", DATE + 50)
    shutil.rmtree(src / "olddir")                                         # a directory replaced by a file
    touch(src / "olddir", b"now a file\n", DATE + 51)
    os.rename(src / "keep" / "deep", src / "moved-deep")                  # a directory moves
    touch(src / "new-file", b"new\n", DATE + 52)
    os.chmod(src / "new-file", 0o4711)
    os.setxattr(src / "new-file", "user.new", b"fresh")


def _level2_changes(src: Path) -> None:
    os.rename(src / "moved-deep", src / "becomes-dir" / "deeper")        # moved again, into the new dir
    touch(src / "moved-deep", b"a file where the directory was\n", DATE + 90)
    os.unlink(src / "keep" / "hardlink")                                  # one name of a hard link goes
    touch(src / "linked", b"linked, changed\n", DATE + 91)
    os.unlink(src / "symlink")
    os.symlink("new-file", src / "symlink")


def _fix_dir_times(src: Path) -> None:
    for n, d in enumerate(sorted(p for p in src.rglob("*") if p.is_dir() and not p.is_symlink())):
        os.utime(d, (DATE + 1000 + n, DATE + 1000 + n))


def test_renames_deletions_and_type_changes_restore_in_order_with_both_restores(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _level0_tree(src)
    _fix_dir_times(src)
    chain = Chain(tmp_path, src)
    images = [chain.dump(0, "l0")]
    _level1_changes(src)
    _fix_dir_times(src)
    images.append(chain.dump(1, "l1"))
    _level2_changes(src)
    _fix_dir_times(src)
    images.append(chain.dump(2, "l2"))

    ours, real = tmp_path / "ours", tmp_path / "real"
    ours.mkdir()
    real.mkdir()
    for image in images:
        pyrestore("-r", "-f", str(image), cwd=ours)
        restore("-r", "-y", "-f", str(image), cwd=real, tmp=tmp_path)
    assert_same_tree(src, ours)
    assert_same_tree(src, real)
    assert (ours / "moved-deep").read_bytes() == b"a file where the directory was\n"
    assert (ours / "becomes-dir" / "deeper" / "f").read_bytes() == b"deep\n"


def test_files_moved_in_with_old_times_are_dumped_whole_by_every_incremental_whose_chain_lacks_them(
        tmp_path: Path) -> None:
    # A directory moved in from outside the dumped path changes its own ctime, not its files':
    # picked by their times alone, they were on no image of the chain (the real restore of
    # L0+L1 said "not found on tape"), and no later incremental took them either.
    src, outside = tmp_path / "src", tmp_path / "outside"
    (outside / "proj" / "src").mkdir(parents=True)
    src.mkdir()
    touch(src / "kept", b"kept\n", DATE)
    touch(outside / "proj" / "README", b"read me\n", DATE)
    touch(outside / "proj" / "src" / "main.c", b"int main;\n", DATE)
    chain = Chain(tmp_path, src)
    l0 = chain.dump(0, "l0")
    (outside / "proj").rename(src / "proj")
    moved = {"./proj", "./proj/README", "./proj/src", "./proj/src/main.c"}
    assert moved <= chain.listed(chain.dump(1, "l1"))
    # a second level 1 is based on the level 0 too, which never held them
    l1b = chain.dump(1, "l1b")
    assert moved <= chain.listed(l1b)
    # a level 2 is based on that level 1, which holds them: only what changed since
    (src / "kept").write_bytes(b"changed\n")
    l2 = chain.dump(2, "l2")
    assert chain.listed(l2) == {".", "./kept"}
    ours, real = tmp_path / "ours", tmp_path / "real"
    ours.mkdir()
    real.mkdir()
    for image in (l0, l1b, l2):
        pyrestore("-r", "-f", str(image), cwd=ours)
        restore("-r", "-y", "-f", str(image), cwd=real, tmp=tmp_path)
    assert_same_tree(src, ours, times=False)
    assert_same_tree(src, real, times=False)


def test_a_file_new_to_the_chain_is_never_metadata_only(tmp_path: Path) -> None:
    # -m dumps a file whose mtime is older than the base as metadata only: right for a chmod,
    # but a file copied in with its old mtime (cp -a, tar x) would lose its data
    src = tmp_path / "src"
    src.mkdir()
    touch(src / "old", b"old\n", DATE)
    dates = tmp_path / "dumpdates"
    next_second()
    pydump("-0", "-m", "--quiet", "-u", "-D", str(dates), "-f", str(tmp_path / "l0"), str(src))
    touch(src / "copied-in", b"precious\n", DATE)
    os.chmod(src / "old", 0o600)
    next_second()
    pydump("-1", "-m", "--quiet", "-u", "-D", str(dates), "-f", str(tmp_path / "l1"), str(src))
    out = tmp_path / "out"
    out.mkdir()
    for image in ("l0", "l1"):
        pyrestore("-r", "-f", str(tmp_path / image), cwd=out)
    assert (out / "copied-in").read_bytes() == b"precious\n"
    assert (out / "old").read_bytes() == b"old\n" and os.stat(out / "old").st_mode & 0o777 == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a tmpfs")
def test_an_incremental_of_a_path_now_on_another_file_system_is_refused(tmp_path: Path) -> None:
    # the volume unmounted: its empty mount point dumped as a level 1 was "DUMP IS DONE" and
    # recorded, an image whose restore deletes every file of the chain
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], check=True)
    try:
        (mnt / "data").write_bytes(b"data\n")
        chain = Chain(tmp_path, mnt)
        chain.dump(0, "l0")
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
    next_second()
    result = pydump("-1", "--quiet", "-u", "-D", str(chain.dumpdates), "-f", str(tmp_path / "l1"), str(mnt),
                    check=False)
    err = result.stderr.decode()
    assert result.returncode == 1, err
    assert "is on another file system than at its base dump" in err and "run a level 0" in err, err
    assert [line.split()[1] for line in chain.dumpdates.read_text().splitlines()] == ["0"]
