"""Bad input to the snapfs commands: one clear stderr line, non-zero exit, no damage."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess

import pytest
from fuse_fixtures import Mounted, mounted, refused, small_mount, snapfs  # noqa: F401 (fixtures)

from snapfs import Volume

pytestmark = pytest.mark.fuse


def test_mounting_a_folder_that_is_not_a_volume(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "mnt").mkdir()
    refused("mount", tmp_path / "junk", tmp_path / "mnt", match="not a snapfs volume")
    assert not os.path.ismount(tmp_path / "mnt")


def test_second_mount_of_the_same_volume(mounted: Mounted, tmp_path):
    (tmp_path / "other").mkdir()
    refused("mount", mounted.voldir, tmp_path / "other", match="already mounted")
    assert not os.path.ismount(tmp_path / "other")
    refused("mount", mounted.voldir, mounted.mnt, match="already a mount point")
    (mounted.mnt / "still").write_bytes(b"works")


def test_snapshot_commands_with_bad_names(mounted: Mounted, tmp_path):
    refused("snapshot", "delete", mounted.mnt, "missing", match="no snapshot named 'missing'")
    snapfs("snapshot", "create", mounted.mnt, "s")
    refused("snapshot", "create", mounted.mnt, "s", match="already exists")
    refused("snapshot", "rename", mounted.mnt, "nope", "x", match="no snapshot named 'nope'")
    refused("snapshot", "list", tmp_path, match="neither a snapfs volume folder nor a snapfs mount point")
    refused("snapshot", "delete", mounted.mnt, match="needs a snapshot NAME")


def test_fsck_refuses_a_mounted_volume(mounted: Mounted):
    refused("fsck", mounted.voldir, match="already mounted")


def test_fsck_reports_damage_and_repairs_it(tmp_path):
    v = Volume.create(tmp_path / "v", 1 << 20, 50, block_size=4096)
    a = v.create_file(1, "a")
    v.write(a.ino, 0, b"x" * 5000)
    v.close()
    db = sqlite3.connect(tmp_path / "v" / "snapfs.db")
    db.execute("UPDATE inodes SET nlink = 5 WHERE ino = ?", (a.ino,))
    db.commit()
    db.close()
    r = snapfs("fsck", tmp_path / "v", check=False)
    assert r.returncode == 4 and "link" in r.stdout  # e2fsck: errors left uncorrected
    r = snapfs("fsck", tmp_path / "v", "--repair", check=False)
    assert r.returncode == 1 and "repaired" in r.stdout
    snapfs("fsck", tmp_path / "v")


def test_create_refuses_a_non_empty_folder_and_bad_sizes(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_bytes(b"")
    refused("create", tmp_path / "full", match="not an empty folder")
    r = snapfs("create", tmp_path / "v", "--size", "lots", check=False)
    assert r.returncode == 2 and "bad size" in r.stderr


def test_unmount_of_something_not_mounted(tmp_path):
    refused("unmount", tmp_path, match="not a mount point")


def _fill(path, chunk: int) -> tuple[bytes, int]:
    """Write ``chunk``-byte pieces to a new file until a write fails; (what the writes
    reported written, errno).  A write may come back short: without a writeback cache the
    kernel sends the part up to the end of a page it does not hold as a request of its
    own, and snapfs stores or refuses each request whole."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    accepted = bytearray()
    try:
        for i in range(10_000):
            piece = bytes([65 + i % 26]) * chunk
            try:
                n = os.write(fd, piece)
            except OSError as e:
                return bytes(accepted), e.errno
            accepted += piece[:n]
    finally:
        os.close(fd)
    raise AssertionError("the volume never filled up")


def test_full_volume_refuses_whole_writes_and_creates_and_stays_consistent(small_mount: Mounted, tmp_path):
    """ENOSPC for bytes and for inodes: the write that does not fit stores nothing, the
    create that does not fit leaves no name; df shows the volume full, cp fails with the
    kernel's message; after unmount, fsck is clean and a remount shows what was accepted."""
    m = small_mount.mnt
    (m / "keep").write_bytes(b"k" * 1000)
    free = os.statvfs(m).f_bfree
    assert free == 255
    # 10,000-byte writes straddle 4 KiB blocks: the one that needs 3 blocks with 1 free fails whole
    data, code = _fill(m / "big", 10_000)
    assert code == errno.ENOSPC
    fits = max(k for k in range(200) if -(-k * 10_000 // 4096) <= free)
    assert fits * 10_000 <= len(data) < (fits + 1) * 10_000
    assert os.stat(m / "big").st_size == len(data)
    left = free - -(-len(data) // 4096)
    assert os.statvfs(m).f_bfree == left < 4  # a 10,000-byte request needs at most 4 blocks
    row = snapfs("df", m).stdout.splitlines()[1].split()
    pct = -(-100 * (256 - left) // 256)  # rounded up, as df(1)
    assert row[5:8] == (["0", "B"] if left == 0 else [f"{4 * left}.0", "KiB"]) + [f"{pct}%"]
    (tmp_path / "src").write_bytes(b"s" * 20_000)
    r = subprocess.run(["cp", str(tmp_path / "src"), str(m / "copy")], capture_output=True, text=True)
    assert r.returncode != 0 and "No space left on device" in r.stderr
    os.unlink(m / "copy")  # cp leaves the name it made, with what fitted
    snapfs("unmount", m)
    assert snapfs("fsck", small_mount.voldir).stdout.endswith("clean\n")
    snapfs("mount", small_mount.voldir, m)
    assert (m / "big").read_bytes() == data
    assert (m / "keep").read_bytes() == b"k" * 1000

    os.unlink(m / "big")
    made = []
    with pytest.raises(OSError) as ei:
        for i in range(100):
            (m / f"n{i}").write_bytes(b"")
            made.append(f"n{i}")
    assert ei.value.errno == errno.ENOSPC
    assert len(made) == 20 - 2  # the root and keep hold the others
    for op in (lambda: os.mkdir(m / "dir"), lambda: os.symlink("x", m / "sl"), lambda: os.mkfifo(m / "fifo")):
        with pytest.raises(OSError) as ei:
            op()
        assert ei.value.errno == errno.ENOSPC
    assert sorted(os.listdir(m)) == sorted(made + ["keep"])
    s = os.statvfs(m)
    assert (s.f_files, s.f_ffree) == (20, 0)
    assert snapfs("df", m).stdout.splitlines()[1].split()[-3:] == ["20", "20", "0"]
    os.link(m / "keep", m / "keep2")  # a hard link takes no inode
    snapfs("unmount", m)
    assert snapfs("fsck", small_mount.voldir).stdout.endswith("clean\n")
    snapfs("mount", small_mount.voldir, m)
    assert sorted(os.listdir(m)) == sorted(made + ["keep", "keep2"])


def test_unmount_while_a_file_is_open_is_refused_and_the_mount_keeps_serving(mounted: Mounted):
    with open(mounted.mnt / "f", "wb") as fh:
        fh.write(b"open")
        refused("unmount", mounted.mnt, match="busy")
        assert os.path.ismount(mounted.mnt)
        fh.write(b" still")
    assert (mounted.mnt / "f").read_bytes() == b"open still"
