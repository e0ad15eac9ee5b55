"""Running out of space or inodes, and failures mid-call: nothing half-written."""

from __future__ import annotations

import errno
import fcntl
import os

import pytest
from volume_fixtures import vol, voldir  # noqa: F401 (fixtures)

from snapfs import ROOT_INO, NoSpace, Volume, fsck

BS = 4096


@pytest.fixture
def tiny(tmp_path):
    v = Volume.create(tmp_path / "tiny", 8 * BS, 5, block_size=BS)
    yield v
    if not v.closed:
        r = fsck(v)
        v.close()
        assert r.clean, r.problems


def test_enospc_for_bytes_leaves_the_file_as_it_was(tiny):
    f = tiny.create_file(ROOT_INO, "f")
    tiny.write(f.ino, 0, b"a" * 6 * BS)
    with pytest.raises(NoSpace) as ei:
        tiny.write(f.ino, 6 * BS, b"b" * 3 * BS)
    assert ei.value.errno == errno.ENOSPC
    assert tiny.getattr(f.ino).size == 6 * BS
    assert tiny.read(f.ino, 0, 10 * BS) == b"a" * 6 * BS
    assert tiny.statfs().free_blocks == 2
    tiny.write(f.ino, 6 * BS, b"b" * 2 * BS)
    assert tiny.statfs().free_blocks == 0


def test_a_full_volume_can_still_shrink_files_to_any_size(tiny):
    """Shrinking writes nothing (the last block's bytes past the new end become
    undefined), so it needs no free block; growing again reads zeros there."""
    f = tiny.create_file(ROOT_INO, "f")
    tiny.write(f.ino, 0, b"a" * 5 * BS)
    tiny.snapshot_create("s")
    g = tiny.create_file(ROOT_INO, "g")
    tiny.write(g.ino, 0, b"c" * 3 * BS)
    assert tiny.statfs().free_blocks == 0
    tiny.truncate(f.ino, 2 * BS + 100)  # its blocks are the snapshot's too: nothing freed
    tiny.truncate(g.ino, BS + 7)  # frees one block
    assert tiny.statfs().free_blocks == 1
    assert tiny.read(g.ino, 0, 4 * BS) == b"c" * (BS + 7)
    tiny.truncate(g.ino, 2 * BS)  # grows over the old bytes: zeros (a copy of the block, CoW)
    assert tiny.read(g.ino, 0, 4 * BS) == b"c" * (BS + 7) + bytes(BS - 7)
    tiny.truncate(f.ino, 3 * BS)
    assert tiny.read(f.ino, 0, 5 * BS) == b"a" * (2 * BS + 100) + bytes(BS - 100)
    assert tiny.read(f.ino, 0, 6 * BS, tiny.snapshot_id("s")) == b"a" * 5 * BS


def test_snapshots_hold_space_until_deleted(tiny):
    f = tiny.create_file(ROOT_INO, "f")
    tiny.write(f.ino, 0, b"a" * 4 * BS)
    tiny.snapshot_create("s")
    tiny.unlink(ROOT_INO, "f")
    g = tiny.create_file(ROOT_INO, "g")
    with pytest.raises(NoSpace):
        tiny.write(g.ino, 0, b"b" * 5 * BS)
    tiny.snapshot_delete("s")
    tiny.write(g.ino, 0, b"b" * 5 * BS)


def test_enospc_for_inodes(tiny):
    for i in range(4):
        tiny.create_file(ROOT_INO, f"f{i}")
    with pytest.raises(NoSpace, match="inodes"):
        tiny.mkdir(ROOT_INO, "one-too-many")
    assert tiny.statfs().free_inodes == 0
    tiny.unlink(ROOT_INO, "f0")
    tiny.mkdir(ROOT_INO, "now-fits")


def test_exception_mid_write_leaves_nothing_half_written(vol, monkeypatch):
    f = vol.create_file(ROOT_INO, "f")
    vol.write(f.ino, 0, b"old!" * 3 * BS)
    before = (vol.getattr(f.ino), vol.space(), vol.read(f.ino, 0, 20 * BS))
    real_write, real_run = vol.store.write_blocks, vol.store.write_run

    def failing_write(blocks, bufs):  # the disk fails after two of the blocks are written
        real_write(blocks[:2], bufs[:2])
        raise OSError(errno.EIO, "disk on fire")

    def failing_run(first, bufs):  # (blocks that follow each other: written with one call)
        real_run(first, bufs[:1])
        raise OSError(errno.EIO, "disk on fire")

    monkeypatch.setattr(vol.store, "write_blocks", failing_write)
    monkeypatch.setattr(vol.store, "write_run", failing_run)
    with pytest.raises(OSError):
        vol.write(f.ino, 100, b"new!" * 5 * BS)
    monkeypatch.undo()
    assert (vol.getattr(f.ino), vol.space(), vol.read(f.ino, 0, 20 * BS)) == before
    assert fsck(vol).clean
    vol.write(f.ino, 0, b"z" * 5 * BS)
    assert vol.read(f.ino, 0, 5 * BS) == b"z" * 5 * BS


def test_exception_mid_rename_rolls_back(vol, monkeypatch):
    vol.create_file(ROOT_INO, "a")
    b = vol.create_file(ROOT_INO, "b")
    vol.write(b.ino, 0, b"keep me")

    def boom(*a, **k):
        raise RuntimeError("crash")

    monkeypatch.setattr(vol, "_add_dirent", boom)
    with pytest.raises(RuntimeError):
        vol.rename(ROOT_INO, "a", ROOT_INO, "b")
    monkeypatch.undo()
    assert vol.read(vol.lookup(ROOT_INO, "b").ino, 0, 100) == b"keep me"
    assert sorted(e.name for e in vol.readdir(ROOT_INO)) == [b"a", b"b"]
    assert fsck(vol).clean


def test_failed_snapshot_delete_rolls_back(vol, monkeypatch):
    f = vol.create_file(ROOT_INO, "f")
    vol.write(f.ino, 0, b"x" * BS)
    sid = vol.snapshot_create("s").id
    vol.write(f.ino, 0, b"y" * BS)
    monkeypatch.setattr(vol.store, "commit_frees", lambda: (_ for _ in ()).throw(RuntimeError("crash")))
    with pytest.raises(RuntimeError):
        vol.snapshot_delete("s")
    monkeypatch.undo()
    assert vol.read(f.ino, 0, BS, sid) == b"x" * BS
    assert fsck(vol).clean


def test_reopen_after_unclean_close_is_consistent(vol, voldir):
    f = vol.create_file(ROOT_INO, "f")
    vol.write(f.ino, 0, b"x" * 3 * BS)
    vol.open_file(f.ino)
    vol.unlink(ROOT_INO, "f")          # an orphan, as after a crash with the file open
    vol.db.close()                       # no clean close: the lock goes with the process in real life
    vol.store.close()
    fcntl.flock(vol.tables.lock_fd, fcntl.LOCK_UN)
    os.close(vol.tables.lock_fd)
    vol.closed = True
    with Volume.open(voldir) as v2:
        r = fsck(v2)
        assert any("orphan" in p for p in r.problems)
        fsck(v2, repair=True)
        assert fsck(v2).clean and v2.space().used == 0


def test_fsck_finds_and_repairs_damage(vol):
    f = vol.create_file(ROOT_INO, "f")
    vol.write(f.ino, 0, b"x" * 3 * BS)
    with vol.tables.txn():
        vol.db.execute("UPDATE inodes SET nlink = 5 WHERE ino = ?", (f.ino,))
        vol.db.execute("UPDATE blockmap SET span = 2 WHERE ino = ? AND idx = 0", (f.ino,))  # drops block 2
        vol.tables.forget_rows()
    r = fsck(vol)
    assert not r.clean
    assert any("nlink 5" in p for p in r.problems)
    assert any("neither referenced nor free" in p for p in r.problems)
    fsck(vol, repair=True)
    assert fsck(vol).clean
    assert vol.getattr(f.ino).nlink == 1 and vol.space().used == 2 * BS


def test_exception_mid_sequential_write_leaves_nothing_half_written(vol, monkeypatch):
    """A big write past the end of file (its blocks taken as one run, written with one
    system call) that fails midway leaves the file, the space and the free list as they were."""
    f = vol.create_file(ROOT_INO, "f")
    vol.write(f.ino, 0, b"old!" * BS)
    before = (vol.getattr(f.ino), vol.space(), vol.read(f.ino, 0, 20 * BS))
    real_write = vol.store.write_run

    def failing_write(first, bufs):  # the disk fails after the first block is written
        real_write(first, bufs[:1])
        raise OSError(errno.EIO, "disk on fire")

    monkeypatch.setattr(vol.store, "write_run", failing_write)
    with pytest.raises(OSError):
        vol.write(f.ino, 4 * BS, b"new!" * 6 * BS)
    monkeypatch.undo()
    assert (vol.getattr(f.ino), vol.space(), vol.read(f.ino, 0, 20 * BS)) == before
    assert fsck(vol).clean
    vol.write(f.ino, 4 * BS, b"new!" * 6 * BS)
    assert vol.read(f.ino, 0, 40 * BS) == b"old!" * BS + b"new!" * 6 * BS
    assert vol.getattr(f.ino).blocks * 512 == 28 * BS
    assert fsck(vol).clean


def test_blocks_are_written_only_as_far_as_the_file_reaches(vol, monkeypatch):
    """A reused block keeps old bytes past the end of file; growing the file zeroes them."""
    vol.set_batch(True)
    old = vol.create_file(ROOT_INO, "old")
    vol.write(old.ino, 0, b"x" * 4 * BS)
    vol.unlink(ROOT_INO, "old")
    vol.commit()  # its blocks are free now, full of x
    real_write, sizes = vol.store.write, []
    monkeypatch.setattr(vol.store, "write", lambda block, data: (sizes.append(len(data)), real_write(block, data)))
    f = vol.create_file(ROOT_INO, "f")
    vol.write(f.ino, 0, b"abc")
    assert sizes == [3]
    vol.truncate(f.ino, 100)  # grown by truncate
    assert vol.read(f.ino, 0, 200) == b"abc" + bytes(97)
    vol.write(f.ino, 2 * BS + 10, b"end")  # grown by a write past a hole
    assert vol.read(f.ino, 0, 3 * BS) == b"abc" + bytes(2 * BS + 7) + b"end"
    vol.write(f.ino, 2 * BS + 1000, b"!")  # within the last block, past its end
    assert vol.read(f.ino, 2 * BS, BS) == bytes(10) + b"end" + bytes(987) + b"!"
    g = vol.create_file(ROOT_INO, "g")
    vol.write(g.ino, 0, b"g")
    vol.write(g.ino, 1, b"h")  # appended within the same block
    assert vol.read(g.ino, 0, BS) == b"gh"
    vol.truncate(g.ino, BS + 5)
    assert vol.read(g.ino, 0, 2 * BS) == b"gh" + bytes(BS + 3)
    vol.commit()


def test_batched_row_changes_reach_the_table_at_commit(vol, voldir):
    import sqlite3

    vol.set_batch(True)
    f = vol.create_file(ROOT_INO, "f")
    vol.write(f.ino, 0, b"y" * 5000)
    vol.commit()
    db = sqlite3.connect(voldir / "snapfs.db")
    try:
        size, nblocks = db.execute("SELECT size, nblocks FROM inodes WHERE ino = ? AND death = ?",
                                   (f.ino, 1 << 62)).fetchone()
    finally:
        db.close()
    assert (size, nblocks) == (5000, 2)


def test_a_big_file_freed_puts_each_of_its_blocks_on_the_free_list_once(vol):
    """A deleted file's blocks go back as runs (one statement each) and single rows alike."""
    a = vol.create_file(ROOT_INO, "a")
    b = vol.create_file(ROOT_INO, "b")
    vol.write(a.ino, 0, b"a" * 40 * BS)  # one run of 40
    for i in range(5):  # interleaved: runs of one
        vol.write(a.ino, (40 + i) * BS, b"A" * BS)
        vol.write(b.ino, i * BS, b"b" * BS)
    high, free = vol.meta.high_water, vol.statfs().free_blocks
    vol.unlink(ROOT_INO, "a")
    assert vol.statfs().free_blocks == free + 45
    rows = [r[0] for r in vol.db.execute("SELECT block FROM free_blocks ORDER BY block")]
    assert len(rows) == len(set(rows)) == 45
    assert fsck(vol).clean
    vol.write(b.ino, 5 * BS, b"c" * 45 * BS)  # the freed blocks are used again
    assert vol.meta.high_water == high and vol.statfs().free_blocks == free
    assert vol.read(b.ino, 0, 50 * BS) == b"b" * 5 * BS + b"c" * 45 * BS


def test_freed_runs_are_used_again_with_a_statement_per_run(vol):
    """A sequential write into space a deleted file freed takes its blocks off the free
    list as runs: a few statements, not one per block (a GiB is 262,144 blocks)."""
    a = vol.create_file(ROOT_INO, "a")
    vol.write(a.ino, 0, b"a" * 600 * BS)
    vol.unlink(ROOT_INO, "a")
    high = vol.meta.high_water
    b = vol.create_file(ROOT_INO, "b")
    seen: list[str] = []
    vol.db.set_trace_callback(seen.append)
    try:
        vol.write(b.ino, 0, b"b" * 600 * BS)
    finally:
        vol.db.set_trace_callback(None)
    assert len([s for s in seen if "free_blocks" in s]) <= 3, seen[:10]
    assert vol.meta.high_water == high  # the freed blocks, not new ones
    assert vol.db.execute("SELECT count(*) FROM free_blocks").fetchone()[0] == 0
    assert vol.read(b.ino, 0, 600 * BS) == b"b" * 600 * BS


def test_a_long_read_has_the_data_files_next_bytes_read_ahead(vol, monkeypatch):
    """A sequential reader's long read (the mount's readahead asks for 1 MiB) leaves the
    disk reading the data file's next bytes while the reply goes out; a short one does not."""
    calls: list[tuple[int, int, int]] = []
    real = os.posix_fadvise

    def spy(fd: int, off: int, length: int, advice: int) -> None:
        calls.append((off, length, advice))
        real(fd, off, length, advice)

    f = vol.create_file(ROOT_INO, "f")
    data = os.urandom(3 << 20)
    vol.write(f.ino, 0, data)
    block0 = vol.db.execute("SELECT min(block) FROM blockmap WHERE ino = ?", (f.ino,)).fetchone()[0]
    monkeypatch.setattr(os, "posix_fadvise", spy)
    assert vol.read(f.ino, 0, 4096) == data[:4096]
    assert calls == []
    assert vol.read(f.ino, 1 << 20, 1 << 20) == data[1 << 20:2 << 20]
    assert calls == [(block0 * BS + (2 << 20), 2 << 20, os.POSIX_FADV_WILLNEED)]


def test_a_failed_write_in_a_batch_gives_back_the_part_of_a_free_run_it_took(vol, monkeypatch):
    """In batch mode (the mount's), a write that takes blocks from a free run and fails
    gives them back: the next write gets them, and the commit takes exactly those off."""
    a = vol.create_file(ROOT_INO, "a")
    vol.write(a.ino, 0, b"a" * 100 * BS)
    vol.unlink(ROOT_INO, "a")
    free, high = vol.statfs().free_blocks, vol.meta.high_water
    vol.set_batch(True)
    b = vol.create_file(ROOT_INO, "b")
    vol.write(b.ino, 0, b"b" * 10 * BS)  # 10 blocks of the run
    monkeypatch.setattr(vol.store, "write_run", lambda first, bufs: (_ for _ in ()).throw(OSError(errno.EIO, "x")))
    with pytest.raises(OSError):
        vol.write(b.ino, 10 * BS, b"c" * 50 * BS)
    monkeypatch.undo()
    vol.write(b.ino, 10 * BS, b"d" * 30 * BS)
    vol.commit()
    assert vol.statfs().free_blocks == free - 40 and vol.meta.high_water == high
    assert vol.db.execute("SELECT count(*) FROM free_blocks").fetchone()[0] == free - 40 - (
        vol.meta.total_blocks - vol.meta.high_water)
    assert vol.read(b.ino, 0, 40 * BS) == b"b" * 10 * BS + b"d" * 30 * BS
    assert fsck(vol).clean
