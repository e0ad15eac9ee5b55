"""The dump engine's fast reads of a held snapshot give what the plain reads give.

snapfs.reader reads small in-order block reads ahead (one system call for many small
files) and lists a whole volume's entries in one query.  Each is checked here against
the slower way it replaces, on a volume with many small files, a file stored in several stretches,
holes, partial last blocks and empty files (the Volume API, no mount needed).
"""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path

import pytest

from dumptool.snaptree import SnapshotTree
from dumptool.traverse import FreshNumbering
from snapfs import Volume
from snapfs import reader as snapfs_reader
from snapfs.reader import open_snapshot

BS = 4096


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    """A volume whose snapshot ``s`` (held by ``t``) has 300 small files in 3 folders,
    files stored in several stretches, holes, partial blocks and empty files."""
    rng = random.Random(7)
    vol = Volume.create(tmp_path / "v", 64 << 20, 2000, block_size=BS)
    folders = [vol.mkdir(1, f"d{i}").ino for i in range(3)]
    for n in range(300):
        ino = vol.create_file(folders[n % 3], f"f{n:03}").ino
        vol.write(ino, 0, rng.randbytes(rng.choice((1, 1000, BS, BS + 1, 3 * BS - 7))))
    a, b = vol.create_file(1, "fragmented").ino, vol.create_file(1, "other").ino
    for k in range(6):  # interleaved writes: each file's blocks lie in several stretches
        vol.write(a, k * BS, rng.randbytes(BS))
        vol.write(b, k * BS, rng.randbytes(BS))
    holey = vol.create_file(1, "holey").ino
    vol.write(holey, 0, b"a" * 10)
    vol.write(holey, 3 * BS, b"b" * 100)
    vol.truncate(holey, 5 * BS + 3)
    vol.create_file(1, "empty")
    zeros = vol.create_file(folders[0], "zeros").ino
    vol.write(zeros, 0, bytes(2 * BS))
    vol.snapshot_create("s")
    vol.snapshot_hold("s", "t")
    vol.close()
    return tmp_path / "v"


def test_read_ahead_gives_the_bytes_a_plain_read_gives(volume: Path):
    with open_snapshot(volume, "s") as r:
        runs = r.block_runs(1, 10_000)
        pieces = [(b, n) for ino in sorted(runs) for _idx, b, n in runs[ino]]
        assert len(pieces) > 300 and any(n > 1 for _b, n in pieces)
        fd = os.open(volume / "data", os.O_RDONLY)
        try:
            def plain(block: int, count: int) -> bytes:
                return os.pread(fd, count * BS, block * BS).ljust(count * BS, b"\0")

            # in store order (read ahead), backwards (never), and past the data file's end
            for order in (pieces, pieces[::-1], pieces):
                for block, count in order:
                    assert r.read_blocks(block, count) == plain(block, count), (block, count)
            end = os.fstat(fd).st_size // BS
            assert r.read_blocks(end - 1, 2) == plain(end - 1, 2)
            assert r.read_blocks(end + 3, 1) == bytes(BS)
        finally:
            os.close(fd)


def test_all_entry_rows_are_every_folders_entries_by_parent_then_name(volume: Path):
    with open_snapshot(volume, "s") as r:
        rows = r.all_entry_rows()
        per_folder = []
        todo = [r.root]
        while todo:
            d = todo.pop()
            for name, ino in r.entry_rows(d):
                per_folder.append((d, name, ino))
                if stat.S_ISDIR(r.inode(ino).mode):
                    todo.append(ino)
        assert len(rows) == 300 + 3 + 5
        assert rows == sorted(per_folder)


def test_the_one_query_walk_gives_what_the_folder_queries_give(volume: Path, monkeypatch: pytest.MonkeyPatch):
    with SnapshotTree(volume, "s") as tree:
        nodes = tree.walk(FreshNumbering())
        assert len([n for n in nodes.values() if stat.S_ISREG(n.st_mode)]) == 300 + 5
        whole = {n.path: (n.ino, n.parents, n.entries, n.st_size) for n in nodes.values()}
    # the same walk with one query per folder (as for a qtree or a directory scope)
    with SnapshotTree(volume, "s") as tree:
        monkeypatch.setattr(snapfs_reader.SnapshotReader, "all_entry_rows", None)
        monkeypatch.setattr(snapfs_reader.SnapshotReader, "root", property(lambda self: -1))  # the scope is "not" it
        nodes = tree.walk(FreshNumbering())
        assert {n.path: (n.ino, n.parents, n.entries, n.st_size) for n in nodes.values()} == whole
