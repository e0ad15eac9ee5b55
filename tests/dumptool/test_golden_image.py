"""The dump engine's bytes do not drift: a fixed snapfs tree (fixed inode times, snapshot
date, host and volume path) dumped through :class:`~dumptool.snaptree.SnapshotTree` gives
an image, a ``-A`` archive, a ``-Q`` map and an offset map whose SHA-256 digests were taken
with the engine before its speed work (issue 13's bench).  A change that alters them is a
format change and must be meant: check it with the real restore, then update the digests."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest

from dumptool.dump import Dump, DumpOptions
from dumptool.offsetmap import history_dir
from dumptool.snaptree import SnapshotTree
from snapfs.store import DB_FILE
from snapfs.volume import Volume

#: 2001-09-09 01:46:40 UTC and a few seconds on: every inode's times, the snapshot's creation.
T = 1_000_000_000
GOLDEN = {
    "image": "9bbba603a9419e4020c4d5b0a2ae3cf063cb52367cc6165cc51c0424b15e424b",
    "toc": "1186b2278dc7fc4fc75900adcf358bb1c6850d4d9d2bc2985e418f51a145e0b6",
    # (its fourth line says where Pass V starts: "pass5\t202\t1\t1392640"; empty, the digest was 06b72e3d...)
    "qfa": "923cfa153685c47c7b64d8d8d562f692b52e9d84a0be9ffef04a0d3f305b412e",
    "history": "5c3888b891ba4525016b98da61df46a08996c3ec739f5575166f431620c30f23",
}


def _build(voldir: Path) -> None:
    vol = Volume.create(voldir, 64 << 20, 2000, name="golden", block_size=4096)
    try:
        root = vol.getattr(1).ino
        d = vol.mkdir(root, "d", 0o750, 1000, 100).ino
        for i in range(40):  # small files of varied sizes (one header each), some with xattrs
            f = vol.create_file(d, f"f{i:02d}", 0o644, 1000 + i % 3, 100).ino
            vol.write(f, 0, bytes([65 + i % 26]) * (i * 97 + 1))
            if i % 7 == 0:
                vol.setxattr(f, b"user.note", b"n%d" % i)
        many = vol.mkdir(root, "many").ino  # a directory of several blocks
        for i in range(150):
            vol.create_file(many, f"entry-with-a-longish-name-{i:04d}")
        big = vol.create_file(root, "big").ino  # several TS_ADDR headers, a hole, zeros as data
        vol.write(big, 0, bytes(range(256)) * 4096)          # 1 MiB
        vol.write(big, 3 << 20, b"tail" * 1000 + b"!")         # after a 2 MiB hole, partial tail
        zeros = vol.create_file(root, "zeros").ino
        vol.write(zeros, 0, b"z" * 100 + bytes(3 * 4096) + b"y" * 10)
        vol.create_file(root, "empty")
        vol.symlink(root, "link", "d/f01")
        vol.symlink(root, "longlink", "x" * 300)
        vol.link(vol.lookup(d, "f03").ino, root, "hard")
        vol.mknod(root, "fifo", stat.S_IFIFO | 0o600)
        vol.mknod(root, "dev", stat.S_IFCHR | 0o600, os.makedev(1, 3))
        s = vol.create_file(root, "streamed").ino
        vol.write(s, 0, b"with streams")
        vol.stream_write(s, "small", b"ten bytes!")
        vol.stream_write(s, "large", bytes(range(251)) * 400)  # ~100 KiB: kept as data (Pass V)
        vol.snapshot_create("gold")
        vol.snapshot_hold("gold", "test")
        vol.commit()
    finally:
        vol.close()
    db = sqlite3.connect(voldir / DB_FILE)
    with db:
        db.execute("UPDATE inodes SET atime_ns = ? + ino * 3, mtime_ns = ? + ino * 2, ctime_ns = ? + ino",
                   (T * 10**9, T * 10**9, T * 10**9))
        db.execute("UPDATE snapshots SET created_ns = ?", ((T + 100_000) * 10**9,))
    db.close()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_image_of_a_fixed_tree_is_byte_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    voldir = tmp_path / "vol"
    _build(voldir)
    uname = os.uname()
    monkeypatch.setattr(os, "uname", lambda: os.uname_result(("Linux", "goldenhost", *uname[2:])))
    tree = SnapshotTree(voldir, "gold", holder="test")
    tree.root = "/golden/vol"  # the image names it (c_filesys, c_dev): not the test's temporary path
    image, toc, qfa = tmp_path / "image", tmp_path / "toc", tmp_path / "qfa"
    before = set(history_dir().glob("*.fh")) if history_dir().exists() else set()
    try:
        Dump(DumpOptions(source="/golden/vol", output=str(image), tree=tree, frozen_at=T + 100_000,
                         toc=str(toc), qfa=str(qfa), quiet=True)).run()
    finally:
        tree.close()
    made = sorted(set(history_dir().glob("*.fh")) - before)
    assert len(made) == 1
    got = {"image": _digest(image), "toc": _digest(toc), "qfa": _digest(qfa), "history": _digest(made[0])}
    made[0].unlink()
    listed = subprocess.run(["restore", "-t", "-f", str(image)], capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert "./d/f39" in listed.stdout and "./many/entry-with-a-longish-name-0149" in listed.stdout
    assert got == GOLDEN
