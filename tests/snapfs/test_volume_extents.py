"""Block map rows as extents (schema 7, issue 10): a sequential write maps a run of up
to MAX_SPAN blocks with one row; cutting an extent keeps every view as it was."""

from __future__ import annotations

import os
import random
import sqlite3
from pathlib import Path

import pytest

from fuse_fixtures import force_unmount, snapfs
from volume_fixtures import vol, voldir  # noqa: F401 (fixtures)

from snapfs import Volume
from snapfs.fsck import fsck, fsck_path
from snapfs.reader import open_snapshot
from snapfs.schema import LIVE, MAX_SPAN, SCHEMA_VERSION
from snapfs.volume import ROOT_INO

BS = 4096


def pattern(nblocks: int, seed: int = 0) -> bytes:
    """Every block different (a block map mix-up shows)."""
    return b"".join(bytes([(i * 7 + seed) % 251]) * 17 + os.urandom(BS - 17) for i in range(nblocks))


def live_rows(v: Volume, ino: int) -> list[tuple[int, int]]:
    return v.db.execute("SELECT idx, span FROM blockmap WHERE ino = ? AND death = ? ORDER BY idx",
                        (ino, LIVE)).fetchall()


def test_a_sequential_write_maps_a_row_per_max_span_blocks(vol):
    f = vol.create_file(ROOT_INO, "f").ino
    data = pattern(2 * MAX_SPAN + 8)
    vol.write(f, 0, data)
    assert live_rows(vol, f) == [(0, MAX_SPAN), (MAX_SPAN, MAX_SPAN), (2 * MAX_SPAN, 8)]
    assert vol.getattr(f).blocks == len(data) // 512
    assert vol.read(f, 0, len(data) + BS) == data
    assert vol.read(f, MAX_SPAN * BS - 100, 200) == data[MAX_SPAN * BS - 100:MAX_SPAN * BS + 100]


def test_overwriting_part_of_an_extent_a_snapshot_holds_copies_nothing(vol):
    """The held row is split with its own epochs and the piece cut out ends: the snapshot
    keeps every byte, the live tree pays only for the blocks written."""
    f = vol.create_file(ROOT_INO, "f").ino
    old = pattern(40)
    vol.write(f, 0, old)
    sid = vol.snapshot_create("s").id
    used = vol.space().used
    new = pattern(2, seed=99)
    vol.write(f, 5 * BS + 100, new)
    want = old[:5 * BS + 100] + new + old[7 * BS + 100:]
    assert vol.read(f, 0, 41 * BS) == want
    assert vol.read(f, 0, 41 * BS, sid) == old
    assert vol.space().used == used + 3 * BS  # blocks 5..7 anew, nothing else copied
    assert fsck(vol).clean
    vol.snapshot_hold("s", "test")
    with open_snapshot(vol.path, "s") as r:
        assert r.read(f, 0, 41 * BS) == old
        assert r.extents(f) == [(0, 40 * BS)]
        assert r.block_map(f) == list(range(40))
    vol.snapshot_release("s", "test")
    vol.truncate(f, 20 * BS + 1)  # into a held extent: shrinking needs no block
    assert vol.read(f, 0, 41 * BS, sid) == old
    assert vol.snapshot_delete("s") == 3 * BS + 19 * BS  # the pieces only it still saw
    assert vol.read(f, 0, 41 * BS) == want[:20 * BS + 1]
    assert fsck(vol).clean


def test_overwriting_part_of_an_extent_only_the_live_tree_has_cuts_it_in_place(vol):
    f = vol.create_file(ROOT_INO, "f").ino
    old = pattern(MAX_SPAN)
    vol.write(f, 0, old)
    used = vol.space().used
    vol.write(f, 3 * BS, b"n" * BS)
    assert live_rows(vol, f) == [(0, 3), (3, 1), (4, MAX_SPAN - 4)]
    assert vol.space().used == used  # the old block 3 is free again
    assert vol.read(f, 0, MAX_SPAN * BS) == old[:3 * BS] + b"n" * BS + old[4 * BS:]
    vol.truncate(f, 2 * BS)
    assert live_rows(vol, f) == [(0, 2)] and vol.space().used == 2 * BS
    assert fsck(vol).clean


def test_fsck_checks_the_extents_shape(vol):
    f = vol.create_file(ROOT_INO, "f").ino
    vol.write(f, 0, pattern(8))
    g = vol.create_file(ROOT_INO, "g").ino
    vol.write(g, 0, pattern(2))
    with vol.tables.txn():  # a row of 0 blocks and one of more than MAX_SPAN (g's own blocks)
        vol.db.execute("INSERT INTO blockmap (ino, idx, death, birth, block, span) VALUES (?, 50, ?, 1, 60, 0)",
                       (f, LIVE))
        vol.db.execute("UPDATE inodes SET size = ? WHERE ino = ?", ((MAX_SPAN + 4) * BS, g))
        vol.db.execute("UPDATE blockmap SET span = ? WHERE ino = ?", (MAX_SPAN + 4, g))
        vol.tables.forget_rows()
    r = fsck(vol)
    assert any(f"inode {f} block map row at block 50 maps 0 blocks" in p for p in r.problems), r.problems
    assert any(f"inode {g} block map row at block 0 maps {MAX_SPAN + 4} blocks" in p for p in r.problems)
    fsck(vol, repair=True)
    assert fsck(vol).clean
    assert live_rows(vol, g) == [(0, MAX_SPAN), (MAX_SPAN, 4)]
    with vol.tables.txn():  # rows of one view that overlap: reported
        vol.db.execute("UPDATE blockmap SET idx = 5, span = 4 WHERE ino = ? AND idx = ?", (g, MAX_SPAN))
        vol.tables.forget_rows()
    assert any(f"inode {g}: block map rows overlap at block 5" in p for p in fsck(vol).problems)
    with vol.tables.txn():
        vol.db.execute("UPDATE blockmap SET idx = ? WHERE ino = ? AND idx = 5", (MAX_SPAN, g))


def _as_version_6(voldir: Path) -> None:
    """The volume's database as snapfs wrote it before extents: a block map row per block."""
    db = sqlite3.connect(voldir / "snapfs.db")
    rows = db.execute("SELECT ino, idx, death, birth, block, span FROM blockmap").fetchall()
    db.execute("DELETE FROM blockmap")
    db.execute("ALTER TABLE blockmap DROP COLUMN span")
    db.executemany("INSERT INTO blockmap (ino, idx, death, birth, block) VALUES (?,?,?,?,?)",
                   [(i, x + k, d, b, blk + k) for i, x, d, b, blk, n in rows for k in range(n)])
    db.execute("PRAGMA user_version = 6")
    db.commit()
    db.close()


def test_a_version_6_volume_mounts_and_reads_back_identical(tmp_path):
    voldir, mnt = tmp_path / "v", tmp_path / "mnt"
    mnt.mkdir()
    big, small = pattern(3 * MAX_SPAN + 5), b"tiny file"
    with Volume.create(voldir, 8 << 20, 100, block_size=BS) as v:
        f = v.create_file(ROOT_INO, "big").ino
        v.write(f, 0, big)
        v.write(v.create_file(ROOT_INO, "small").ino, 0, small)
        v.write(v.create_file(ROOT_INO, "sparse").ino, 10 * BS, b"after a hole")
        v.snapshot_create("s")
        v.write(f, 7 * BS, b"live" * BS)
    live_big = big[:7 * BS] + b"live" * BS + big[11 * BS:]
    _as_version_6(voldir)
    snapfs("mount", voldir, mnt)
    try:
        assert (mnt / "big").read_bytes() == live_big
        assert (mnt / ".snapshot" / "s" / "big").read_bytes() == big
        assert (mnt / "small").read_bytes() == small
        assert (mnt / "sparse").read_bytes() == bytes(10 * BS) + b"after a hole"
        with open(mnt / "big", "r+b") as fh:  # old one-block rows beside new extents
            fh.seek(5 * BS + 1)
            fh.write(b"X" * (3 * BS))
    finally:
        force_unmount(mnt)
    live_big = live_big[:5 * BS + 1] + b"X" * (3 * BS) + live_big[8 * BS + 1:]
    assert fsck_path(voldir).clean
    with Volume.open(voldir) as v:
        assert v.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 7
        f = v.lookup(ROOT_INO, "big").ino
        assert v.read(f, 0, len(big) + BS) == live_big
        assert v.read(f, 0, len(big) + BS, v.snapshot_id("s")) == big
        v.snapshot_delete("s")
        assert fsck(v).clean


@pytest.mark.parametrize("seed", range(8))
def test_random_writes_truncates_and_snapshots_match_a_model(tmp_path, seed):
    """Writes of every shape over extents, truncates, snapshots taken and deleted, in batch
    mode or not: the live file and every snapshot read as a model says; at the end fsck is
    clean and, the file and snapshots gone, every block is free again."""
    rng = random.Random(seed)
    v = Volume.create(tmp_path / "v", 16 << 20, 50, block_size=BS)
    v.set_batch(seed % 2 == 0)
    f = v.create_file(ROOT_INO, "f").ino
    model, snaps = bytearray(), {}
    for step in range(150):
        op = rng.random()
        if op < 0.55:
            off, n = rng.randrange(0, 60 * BS), rng.choice([1, 100, BS, 3 * BS + 5, 20 * BS, 40 * BS + 17])
            data = bytes([rng.randrange(256)]) * n
            v.write(f, off, data)
            model[len(model):off] = bytes(max(0, off - len(model)))
            model[off:off + n] = data
        elif op < 0.7:
            size = rng.randrange(0, 80 * BS)
            v.truncate(f, size)
            model[size:] = b""
            model[len(model):size] = bytes(size - len(model))
        elif op < 0.8 and len(snaps) < 5:
            snaps[f"s{step}"] = (v.snapshot_create(f"s{step}").id, bytes(model))
        elif op < 0.9 and snaps:
            name = rng.choice(sorted(snaps))
            v.snapshot_delete(name)
            del snaps[name]
        elif op < 0.95:
            v.commit()
        assert v.read(f, 0, len(model) + BS) == model, step
        for name, (sid, m) in snaps.items():
            assert v.read(f, 0, len(m) + BS, sid) == m, (step, name)
    assert fsck(v).clean
    for name in snaps:
        v.snapshot_delete(name)
    v.unlink(ROOT_INO, "f")
    v.commit()
    assert fsck(v).clean and v.space().used == 0
    v.close()
