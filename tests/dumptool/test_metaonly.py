"""``pydump -m``: inodes changed but not modified since the base dump go on
the image as metadata only (``DR_METAONLY``), as Linux dump 0.4b47 writes them.

One tree, one set of changes: a chmod, a chown, an added xattr, a chmod of a
file with two names, a rename (ctime moves, mtime does not), a symlink's
lchown, a fifo's chmod and a device's chown (all metadata only), a file whose
data grew and a directory's chmod (both whole).  The real ``restore`` and
pyrestore rebuild the chain; the real ``dump -m`` of the same change on an
ext4 image marks the same names.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from pathlib import Path

import pytest

from dumptool.format import RecordType, walk_image
from dumptool.format.constants import DR_EXTATTRIBUTES, DR_METAONLY
from samples import DATE, DUMP, RESTORE, Loop, listing, mkfs
from samples import real_restore as restore
from test_chain import next_second, pyrestore
from test_pydump import assert_same_tree, pydump

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0 or not os.access(RESTORE, os.X_OK),
                       reason="needs root (owners, mknod) and the real restore"),
]

#: The names the changes leave with new attributes and old data.
METADATA_ONLY = {"./plain", "./owned", "./tagged", "./linked", "./d/link2", "./d/moved", "./sl", "./fifo", "./dev"}
#: Changed and dumped whole: new data, and a directory (always whole).
WHOLE = {"./grown", "./d"}


def _tree(src: Path) -> None:
    (src / "d").mkdir(parents=True)
    for name in ("plain", "owned", "tagged", "grown", "untouched", "linked", "moved", "d/inner"):
        (src / name).write_bytes(f"{name}: the level 0 data\n".encode() * 50)
    os.link(src / "linked", src / "d" / "link2")
    os.symlink("plain", src / "sl")
    os.mkfifo(src / "fifo")
    os.mknod(src / "dev", 0o600 | stat.S_IFCHR, os.makedev(4, 5))
    for p in [*src.rglob("*"), src]:
        os.utime(p, (DATE, DATE), follow_symlinks=False)


def _change(root: Path) -> None:
    os.chmod(root / "plain", 0o600)
    os.chown(root / "owned", 1234, 5678)
    os.setxattr(root / "tagged", "user.note", b"added after the level 0")
    os.chmod(root / "linked", 0o640)
    os.rename(root / "moved", root / "d" / "moved")
    os.chown(root / "sl", 77, 88, follow_symlinks=False)
    os.chmod(root / "fifo", 0o640)
    os.chown(root / "dev", 5, 6)
    os.chmod(root / "d", 0o750)
    with open(root / "grown", "ab") as f:
        f.write(b"and more data at level 1\n")


def _headers(image: Path, names: dict[str, int]) -> dict[str, tuple[bool, int, int]]:
    """``./name -> (metadata only, di_size, c_count)`` of each inode header on *image*."""
    heads = {}
    for rec in walk_image(image.read_bytes()):
        h = rec.head
        if h.c_type == RecordType.TS_INODE and not h.c_flags & DR_EXTATTRIBUTES:
            heads[h.c_inumber] = (bool(h.c_flags & DR_METAONLY), h.size, h.c_count)
    return {name: heads[ino] for name, ino in names.items()}


def _metaonly(heads: dict[str, tuple[bool, int, int]]) -> set[str]:
    return {name for name, (meta, _, _) in heads.items() if meta}


@pytest.fixture
def chain(tmp_path: Path) -> tuple[Path, Path, Path]:
    """The changed source tree and pydump's level 0 (before) and level 1 -m (after the changes)."""
    src = tmp_path / "src"
    _tree(src)
    next_second()  # the tree's ctimes fall before the level 0's date
    dumpdates = tmp_path / "dumpdates"
    l0, l1 = tmp_path / "l0", tmp_path / "l1"
    pydump("-0", "-m", "--quiet", "-u", "-D", str(dumpdates), "-f", str(l0), str(src))
    _change(src)
    pydump("-1", "-m", "--quiet", "-u", "-D", str(dumpdates), "-f", str(l1), str(src))
    return src, l0, l1


def test_level_1_m_writes_changed_but_unmodified_inodes_as_metadata_only(chain: tuple[Path, Path, Path],
                                                                         tmp_path: Path) -> None:
    src, l0, l1 = chain
    names = listing(pyrestore("-t", "-f", str(l1), cwd=tmp_path).stdout)
    assert names == listing(restore("-t", "-f", str(l1), cwd=tmp_path, tmp=tmp_path).stdout)
    heads = _headers(l1, names)
    assert set(heads) == {".", *METADATA_ONLY, *WHOLE}  # the untouched files are not on the image
    assert _metaonly(heads) == METADATA_ONLY
    for name in METADATA_ONLY:
        assert heads[name][1:] == (0, 0), name  # di_size 0, no data blocks
    assert heads["./grown"][1] == (src / "grown").stat().st_size and heads["./grown"][2] > 0
    assert heads["./d"][2] > 0
    # -m at level 0 (no base date) changes nothing: everything whole, as Linux dump
    assert not _metaonly(_headers(l0, listing(pyrestore("-t", "-f", str(l0), cwd=tmp_path).stdout)))
    # ... but -T gives a level 0 a base date, and dump -m then honours it
    base = next(walk_image(l0.read_bytes())).header.c_date
    l0t = tmp_path / "l0t"
    pydump("-0", "-m", "--quiet", "-T", f"@{base}", "-f", str(l0t), str(src))
    assert _metaonly(_headers(l0t, listing(pyrestore("-t", "-f", str(l0t), cwd=tmp_path).stdout))) == METADATA_ONLY


def test_real_restore_and_pyrestore_rebuild_the_chain_keeping_the_data(chain: tuple[Path, Path, Path],
                                                                        tmp_path: Path) -> None:
    src, l0, l1 = chain
    real, ours = tmp_path / "real", tmp_path / "ours"
    real.mkdir()
    ours.mkdir()
    for image in (l0, l1):
        done = restore("-r", "-y", "-f", str(image), cwd=real, tmp=tmp_path)
        pyrestore("-r", "-f", str(image), cwd=ours)
    # restore 0.4b47 tests DR_METAONLY of a fifo or device after skipfile() has
    # read the next header: a metadata-only fifo followed by a whole inode
    # ("grown") is made anew, which fails, and its new mode is lost (exit 0).
    assert "./fifo: cannot create fifo: File exists" in done.stderr
    assert stat.S_IMODE(os.lstat(real / "fifo").st_mode) == 0o644
    os.chmod(real / "fifo", 0o640)  # what it meant to do; everything else must match
    for out in (real, ours):
        assert_same_tree(src, out)  # data, modes, owners, xattrs, times, hard links, devices
        assert (out / "plain").read_bytes() == (src / "plain").read_bytes() != b""
        assert not list(out.glob("RSTTMP*"))
    assert (ours / "linked").stat().st_ino == (ours / "d" / "link2").stat().st_ino
    # a metadata-only record compares by its attributes only (pyrestore asserts exit status 0)
    pyrestore("-C", "-D", str(src), "-f", str(l1), cwd=tmp_path)
    # extracted alone, it has no earlier copy to apply its attributes to: nothing is made
    alone = tmp_path / "alone"
    alone.mkdir()
    pyrestore("-x", "-f", str(l1), cwd=alone)
    assert sorted(p.name for p in alone.rglob("*")) == ["d", "grown"]


@pytest.mark.skipif(not os.access(DUMP, os.X_OK) or not shutil.which("mke2fs") or not shutil.which("losetup"),
                    reason="needs the real dump, mke2fs and losetup")
def test_real_dump_m_marks_the_same_inodes_and_pyrestore_reads_its_chain(chain: tuple[Path, Path, Path],
                                                                          tmp_path: Path) -> None:
    src, _, l1 = chain
    ours = _metaonly(_headers(l1, listing(pyrestore("-t", "-f", str(l1), cwd=tmp_path).stdout)))
    before = tmp_path / "before"
    _tree(before)
    fs = tmp_path / "fs.img"
    mkfs(before, fs, "8M")
    loop = Loop(fs)
    try:
        next_second()
        rl0 = loop.dump(0, tmp_path / "rl0")
        base = next(walk_image(rl0.read_bytes())).header.c_date
        mnt = loop.mount(tmp_path / "mnt")
        _change(mnt)
        loop.umount()
        rl1 = loop.dump(1, tmp_path / "rl1", "-m", "-T", time.ctime(base))
        mnt = loop.mount(tmp_path / "mnt")
        names = listing(restore("-t", "-f", str(rl1), cwd=tmp_path, tmp=tmp_path).stdout)
        assert _metaonly(_headers(rl1, names)) == ours == METADATA_ONLY
        out = tmp_path / "from-real"
        out.mkdir()
        for image in (rl0, rl1):
            pyrestore("-r", "-f", str(image), cwd=out)
        assert_same_tree(mnt, out, times=False)  # the real dump keeps whole seconds only
        for name in METADATA_ONLY:
            assert os.lstat(out / name).st_mtime == DATE, name
    finally:
        loop.close()
