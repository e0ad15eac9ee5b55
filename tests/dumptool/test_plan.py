"""Pass I/II's bulk steps give what their one-at-a-time forms give (dumptool.traverse)."""

from __future__ import annotations

import os
import random
import stat
import types

import pytest

from dumptool.format import TP_BSIZE, TP_NINDIR
from dumptool.traverse import (FreshNumbering, Node, changed_since, estimate_blocks, map_blocks, modified_since,
                               plan_dump)

FIELDS = ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_atime_ns", "st_mtime_ns", "st_ctime_ns",
          "st_rdev", "st_blocks", "st_dev", "st_ino")
BASE = 1_700_000_000
MODES = (0o100644, 0o040755, 0o120777, 0o010644, 0o020600)


def _stat(rng: random.Random, ino: int, mode: int) -> types.SimpleNamespace:
    def when() -> int:  # around the base date's second, its edges included
        return (BASE + rng.choice((-2, -1, 0, 1))) * 10**9 + rng.choice((0, 1, 500_000_000, 999_999_999))

    size = rng.choice((0, 1, 1023, 4096, 5000, 49152, 49153, 10**7))
    return types.SimpleNamespace(st_mode=mode, st_nlink=rng.randint(1, 3), st_uid=rng.choice((0, 1000, 70000)),
                                 st_gid=0, st_size=size, st_atime_ns=when(), st_mtime_ns=when(),
                                 st_ctime_ns=when(), st_rdev=0, st_blocks=rng.choice((0, 8, size // 512 + 8)),
                                 st_dev=7, st_ino=ino)


def _nodes(seed: int, count: int = 2000) -> dict[int, Node]:
    rng = random.Random(seed)
    nodes = {2: Node(2, b"/top", _stat(rng, 100, 0o040755))}
    folders = [2]
    for ino in range(3, count):
        mode = rng.choice(MODES)
        parent = rng.choice(folders)
        nodes[ino] = Node(ino, b"/top/%d" % ino, _stat(rng, 100 + ino, mode), (parent,))
        if stat.S_ISDIR(mode):
            folders.append(ino)
    return nodes


def _blockest(node: Node, fs_block: int) -> int:
    """dump's blockest of one inode, as the per-inode loop reckoned it."""
    fmt = node.st_mode & 0o170000
    if fmt not in (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK):
        return 1
    per_block = max(fs_block // TP_BSIZE, 1)
    blkest = min(-(-node.st_blocks * 512 // fs_block) * per_block, -(-node.st_size // fs_block) * per_block)
    sizeest = -(-node.st_size // fs_block) * per_block
    if fmt == stat.S_IFDIR:
        blkest //= 2
        sizeest //= 2
    if node.st_size > 12 * fs_block:
        blkest += -(-(sizeest - 12 * fs_block // TP_BSIZE) // TP_NINDIR)
    return blkest + 1


def _ancestors(nodes: dict[int, Node], ino: int) -> list[int]:
    """The folders from ``ino``'s up to the root (each node of _nodes has one parent)."""
    up = []
    while nodes[ino].parents:
        ino = nodes[ino].parents[0]
        up.append(ino)
    return up


def test_number_all_numbers_as_number_does() -> None:
    inos = [5, 9, 11, 1 << 40, 3, 17]
    one = FreshNumbering()
    want = {1: one.number(7, 1, root=True)}
    for ino in inos:
        want[ino] = one.number(7, ino)
    bulk = FreshNumbering()
    assert bulk.number_all(7, 1, inos) == want
    assert bulk.maxino == one.maxino
    # afterwards, a known inode, the root, one of another device: as number does
    for numbering in (one, bulk):
        assert numbering.number(7, 9) == want[9] and numbering.number(7, 1) == 2
        assert numbering.number(8, 9) == len(inos) + 3
    again = FreshNumbering()
    assert again.number_all(7, 1, iter([4, 1, 6])) == {1: 2, 4: 3, 6: 4}
    assert again.number_all(7, 1, [4, 8]) == {1: 2, 4: 3, 8: 5}


def test_child_of_row_is_child() -> None:
    row = (4711, 0o100644, 2, 1000, 100, 0, 5000, 3, 11 * 10**18, 12 * 10**18, 12 * 10**18, None)
    a = Node.child_of_row(9, b"/v/d", b"f", 4, row, 77, 8)
    st = os.stat_result((row[1], row[0], 77, row[2], row[3], row[4], row[6], 0, 0, 0, row[8] / 1e9, row[9] / 1e9,
                         row[10] / 1e9, row[8], row[9], row[10], 4096, row[7] * 8, row[5]))
    b = Node.child(9, b"/v/d", b"f", st, 4)
    assert [getattr(a, f) for f in FIELDS] == [getattr(b, f) for f in FIELDS]
    assert (a.ino, a.path, a.location, a.parents, a.entries) == (b.ino, b.path, b.location, b.parents, b.entries)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("base_date", [0, BASE])
def test_plan_and_estimate_are_the_per_inode_ones(seed: int, base_date: int) -> None:
    nodes = _nodes(seed)
    plan = plan_dump(nodes, max(nodes), base_date, metaonly=True)
    chosen = set(nodes) if not base_date else {i for i, n in nodes.items() if changed_since(n, base_date)} | {2}
    dumped = chosen | {a for i in chosen for a in _ancestors(nodes, i)}  # each with its path to the root
    order = sorted(dumped)
    assert plan.dumped == dumped and plan.in_use == set(nodes)
    assert plan.directories == [i for i in order if stat.S_ISDIR(nodes[i].st_mode)]
    assert plan.files == [i for i in order if not stat.S_ISDIR(nodes[i].st_mode)]
    assert plan.metaonly == ({i for i in plan.files if not modified_since(nodes[i], base_date)} if base_date else set())
    for fs_block in (1024, 4096, 65536):
        want = 2 * (map_blocks(plan) + 1) + sum(_blockest(nodes[i], fs_block) for i in order)
        assert estimate_blocks(plan, fs_block) == want
