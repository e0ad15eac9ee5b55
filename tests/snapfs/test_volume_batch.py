"""Batch mode (the mount daemon's): calls share one commit, each still all-or-nothing."""

from __future__ import annotations

import errno
import sqlite3

import pytest
from volume_fixtures import vol, voldir  # noqa: F401 (fixtures)

from snapfs import ROOT_INO, SnapfsError, Volume, fsck

LIVE_DEATH = 1 << 62


def committed_names(voldir) -> set[bytes]:
    """The live names of the root as another connection sees them (only committed rows)."""
    db = sqlite3.connect(voldir / "snapfs.db")
    try:
        return {r[0] for r in db.execute("SELECT name FROM dirents WHERE parent = 1 AND death = ?", (1 << 62,))}
    finally:
        db.close()


def test_calls_in_a_batch_are_seen_at_once_and_committed_together(vol: Volume, voldir):
    vol.set_batch(True)
    vol.create_file(ROOT_INO, "a")
    vol.mkdir(ROOT_INO, "d")
    assert [e.name for e in vol.readdir(ROOT_INO)] == [b"a", b"d"]
    assert committed_names(voldir) == set()
    assert vol.commit() is True
    assert committed_names(voldir) == {b"a", b"d"}
    assert vol.commit() is False


def test_a_failed_call_in_a_batch_undoes_only_itself(vol: Volume):
    vol.set_batch(True)
    a = vol.create_file(ROOT_INO, "a")
    vol.write(a.ino, 0, b"x" * 10000)
    used = vol.statfs().free_blocks
    with pytest.raises(SnapfsError) as ei:
        vol.rmdir(ROOT_INO, "a")  # not a directory
    assert ei.value.errno == errno.ENOTDIR
    with pytest.raises(SnapfsError):
        vol.write(a.ino, 1 << 45, b"y")  # past the size limit
    assert vol.read(a.ino, 0, 20000) == b"x" * 10000
    assert vol.statfs().free_blocks == used
    vol.commit()
    assert fsck(vol).clean


def test_blocks_freed_in_a_batch_are_not_reused_before_its_commit(vol: Volume):
    """A crash rolls back to the last commit: the blocks that commit references must be untouched."""
    vol.set_batch(True)
    a = vol.create_file(ROOT_INO, "a")
    vol.write(a.ino, 0, b"1" * 8192)
    vol.commit()
    old = {r[0] for r in vol.db.execute("SELECT block FROM blockmap WHERE ino = ?", (a.ino,))}
    vol.unlink(ROOT_INO, "a")
    b = vol.create_file(ROOT_INO, "b")
    vol.write(b.ino, 0, b"2" * 8192)
    new = {r[0] for r in vol.db.execute("SELECT block FROM blockmap WHERE ino = ?", (b.ino,))}
    assert not old & new
    vol.commit()
    assert fsck(vol).clean


def test_close_commits_the_batch(voldir):
    v = Volume.create(voldir, 1 << 20, 50, block_size=4096)
    v.set_batch(True)
    v.create_file(ROOT_INO, "kept")
    v.close()
    with Volume.open(voldir) as v:
        assert v.lookup(ROOT_INO, "kept").size == 0


def test_rows_made_in_a_batch_reach_the_table_at_commit_even_if_changed_or_removed(voldir):
    v = Volume.create(voldir, 1 << 20, 4, block_size=4096)
    try:
        v.set_batch(True)
        a = v.create_file(ROOT_INO, "a")
        v.write(a.ino, 100, b"z" * 50)  # a hole before the data
        gone = v.create_file(ROOT_INO, "gone")
        v.write(gone.ino, 0, b"g")
        v.unlink(ROOT_INO, "gone")
        d = v.mkdir(ROOT_INO, "d")
        with pytest.raises(SnapfsError) as ei:
            v.create_file(d.ino, "a")
            v.create_file(d.ino, "b")  # the inode limit: 4 with the root
        assert ei.value.errno == errno.ENOSPC
        with pytest.raises(SnapfsError) as ei:
            v.create_file(ROOT_INO, "a")
        assert ei.value.errno == errno.EEXIST
        assert [e.name for e in v.readdir(d.ino)] == [b"a"]
        v.commit()
        rows = {r[0]: r[1] for r in v.db.execute("SELECT ino, size FROM inodes WHERE death = ?", (1 << 62,))}
        assert rows == {ROOT_INO: 0, a.ino: 150, d.ino: 0, v.lookup(d.ino, "a").ino: 0}
        assert v.read(a.ino, 0, 200) == bytes(100) + b"z" * 50
        assert fsck(v).clean
    finally:
        v.close()


def test_files_removed_in_a_batch_free_their_rows_at_commit_and_snapshots_keep_theirs(vol: Volume):
    vol.set_batch(True)
    old = vol.create_file(ROOT_INO, "old")
    vol.write(old.ino, 0, b"o" * 9000)
    vol.setxattr(old.ino, b"user.k", b"v")
    vol.snapshot_create("s")
    snap = vol.snapshot_id("s")
    new = vol.create_file(ROOT_INO, "new")
    vol.write(new.ino, 0, b"n" * 9000)
    free = vol.statfs().free_blocks
    vol.unlink(ROOT_INO, "old")
    vol.unlink(ROOT_INO, "new")
    with pytest.raises(SnapfsError) as ei:
        vol.getattr(new.ino)
    assert ei.value.errno == errno.ENOENT
    with pytest.raises(SnapfsError):
        vol.unlink(ROOT_INO, "new")  # a failed call keeps what the batch did before it
    vol.commit()
    live = LIVE_DEATH
    assert vol.db.execute("SELECT count(*) FROM blockmap WHERE ino IN (?, ?) AND death = ?",
                          (old.ino, new.ino, live)).fetchone()[0] == 0
    assert vol.db.execute("SELECT count(*) FROM inodes WHERE ino IN (?, ?) AND death = ?",
                          (old.ino, new.ino, live)).fetchone()[0] == 0
    assert vol.statfs().free_blocks > free  # the new file's blocks (the old one's are the snapshot's)
    assert vol.read(old.ino, 0, 9000, snap) == b"o" * 9000
    assert vol.getxattr(old.ino, b"user.k", snap) == b"v"
    assert fsck(vol).clean


def test_a_small_file_reads_what_every_later_change_left(vol: Volume):
    """Reads of a small file skip the block map while nothing changed it since its first write."""
    vol.set_batch(True)
    a = vol.create_file(ROOT_INO, "a")
    vol.write(a.ino, 0, b"a" * 100)
    assert vol.read(a.ino, 10, 20) == b"a" * 20
    vol.write(a.ino, 50, b"b" * 10)
    assert vol.read(a.ino, 0, 200) == b"a" * 50 + b"b" * 10 + b"a" * 40
    vol.truncate(a.ino, 20)
    vol.truncate(a.ino, 30)
    assert vol.read(a.ino, 0, 200) == b"a" * 20 + bytes(10)
    vol.snapshot_create("s")
    vol.write(a.ino, 0, b"c" * 5)
    with pytest.raises(SnapfsError):
        vol.write(a.ino, 1 << 45, b"y")  # past the size limit: rolled back
    assert vol.read(a.ino, 0, 200) == b"c" * 5 + b"a" * 15 + bytes(10)
    assert vol.read(a.ino, 0, 200, vol.snapshot_id("s")) == b"a" * 20 + bytes(10)
    vol.commit()
    assert fsck(vol).clean
