"""dumptool.snaptree: a held snapshot read straight from the store gives a dump the same
tree as walking ``MOUNT/.snapshot/NAME`` through FUSE: names, types, sizes, modes,
owners, times, hard links, xattrs and ACLs, symlink targets, and the same bytes and
holes, for the whole volume, a qtree and a subdirectory."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from fuse_fixtures import Mounted, mounted, snapfs  # noqa: F401 (fixtures)

from dumptool.errors import DumpError
from dumptool.format import TP_BSIZE
from dumptool.livetree import LiveTree
from dumptool.snaptree import SnapshotTree
from dumptool.traverse import FreshNumbering
from snapfs import client
from snapfs.reader import open_snapshot
from test_reader import build_every_kind

pytestmark = pytest.mark.fuse

BS = 4096


def build(mnt: Path) -> None:
    """Every kind of inode, xattrs, ACLs, hard links, holes (test_reader's tree), and a qtree,
    zeros stored as data and a file of many blocks."""
    snapfs("qtree", "create", mnt, "qt")
    build_every_kind(mnt)
    with open(mnt / "d" / "zeros", "wb") as f:  # mapped blocks holding zeros (a hole in the image)
        f.write(b"z" * 100 + bytes(3 * BS) + b"y" * 10)
    (mnt / "big").write_bytes(os.urandom(200 * 1024 + 7))
    (mnt / "qt" / "in").mkdir()
    (mnt / "qt" / "in" / "f").write_bytes(b"in the qtree\n" * 300)
    os.link(mnt / "qt" / "in" / "f", mnt / "qt" / "f2")


def take(m: Mounted, name: str = "s1", holder: str = "test") -> None:
    with client.open_volume(m.mnt) as c:
        c.snapshot_create(name)
        c.snapshot_hold(name, holder)


def slices_of(slices) -> list:
    """1 KiB slices, None for a hole."""
    out = []
    for s in slices:
        if s is None:
            out.append(None)
        else:
            out.extend(s[i:i + TP_BSIZE] for i in range(0, len(s), TP_BSIZE))
    return out


def view(nodes: dict, root: bytes, xattrs, data) -> dict:
    """relative path -> what a dump takes of it."""
    out = {}
    for node in nodes.values():
        rel = os.path.relpath(node.path, root)
        d = {"mode": node.st_mode, "uid": node.st_uid, "gid": node.st_gid, "nlink": node.st_nlink,
             "mtime": node.st_mtime_ns, "atime": node.st_atime_ns, "ctime": node.st_ctime_ns, "rdev": node.st_rdev,
             "blocks": node.st_blocks, "xattrs": xattrs(node),
             "names": sorted(os.path.relpath(os.path.join(nodes[p].path, b""), root) for p in node.parents)}
        if not stat.S_ISDIR(node.st_mode):
            d["size"] = node.st_size
        else:
            d["entries"] = [(e.name, e.type, os.path.relpath(nodes[e.ino].path, root)) for e in node.entries]
        if stat.S_ISREG(node.st_mode):
            d["slices"] = data(node)
        out[rel] = d
    return out


def tree_view(tree, nodes: dict) -> dict:
    """What a dump reads of every node through ``tree`` (the Tree protocol)."""
    def data(node):
        with tree.open(node) as f:
            got = slices_of(f.slices(node.st_size))
            whole = f.read(0, node.st_size + 5)
            # read() agrees with the slices, zero past the end
            flat = b"".join(s or bytes(TP_BSIZE) for s in got)[:node.st_size] + bytes(5)
            assert whole == flat, node.path
            assert f.xattrs() == tree.xattrs(node)
            return got

    root = os.fsencode(tree.root)
    v = view(nodes, root, tree.xattrs, data)
    for node in nodes.values():
        if stat.S_ISLNK(node.st_mode):
            v[os.path.relpath(node.path, root)]["target"] = tree.readlink(node)
    return v


@pytest.mark.parametrize("scope", ["", "qt", "d"])
def test_snapshot_tree_walks_and_reads_as_the_mount_shows_the_snapshot(mounted: Mounted, scope):
    m = mounted.mnt
    build(m)
    take(mounted)
    (m / "small").write_bytes(b"changed after the snapshot")  # neither view may see it
    (m / "d" / "new").write_bytes(b"new")
    live_root = mounted.snap("s1") / scope if scope else mounted.snap("s1")
    live_tree = LiveTree(str(live_root))
    try:
        live = tree_view(live_tree, live_tree.walk(FreshNumbering()))
    finally:
        live_tree.close()
    scope_path = m / scope if scope else m
    with SnapshotTree(m, "s1", scope_path, holder="test") as tree:
        assert tree.root == str(scope_path)
        nodes = tree.walk(FreshNumbering())
        assert nodes[2].path == os.fsencode(scope_path)  # dump's root inode is the scope's directory
        got = tree_view(tree, nodes)
    for rel in live:  # the FUSE view's own virtual xattrs are not the file's
        for x in ("trusted.snapfs.qtree_id",):
            live[rel]["xattrs"].pop(x, None)
    assert got.keys() == live.keys()
    for rel in live:
        assert got[rel] == live[rel], rel
    if not scope:
        assert got[b"small"]["slices"] == [b"hello\n".ljust(TP_BSIZE, b"\0")]
        assert got[b"d/holey"]["slices"][1] is None and got[b"sparse"]["slices"] == [None] * 1024
        assert got[b"d/zeros"]["slices"][1] is None and "system.posix_acl_access" in got[b"small"]["xattrs"]
        assert got[b"small"]["names"] == [b".", b"d/sub"] and b"d/sub/hard" not in got  # one node per inode


def test_snapshot_tree_numbers_files_by_their_snapfs_inode_and_refuses_a_bad_scope(mounted: Mounted):
    m = mounted.mnt
    build(m)
    take(mounted)
    with SnapshotTree(mounted.voldir, "s1") as tree:  # the volume's folder works as well
        nodes = tree.walk(FreshNumbering())
        stable = {n.st_ino: n.ino for n in nodes.values()}
        assert [stable[k] for k in sorted(stable)] == sorted(stable.values())  # dump order = inode order
        assert {n.st_ino for n in nodes.values() if n.path.endswith(b"/small")} == \
            {int(os.getxattr(m / "small", "user.snapfs.ino"))}
        assert len({n.st_dev for n in nodes.values()}) == 1
    with open_snapshot(m, "s1") as r:  # the reader's runs, fetched for many inodes at once, are its block maps
        runs = r.block_runs(1, 1 << 40)
        files = [i.ino for i in r.inodes() if stat.S_ISREG(i.mode)]
        for ino in files:
            blocks = [(i + k, b + k) for i, b, n in runs.get(ino, []) for k in range(n)]
            assert [i for i, _ in blocks] == r.block_map(ino), ino
            assert b"".join(r.read_blocks(b, 1) for _, b in blocks) == b"".join(
                r.read(ino, i * BS, BS).ljust(BS, b"\0") for i, _ in blocks), ino
        assert any(len(v) > 1 for v in runs.values()) and any(n > 1 for v in runs.values() for _, _, n in v)
    for bad, why in ((m / "nope", "not in snapshot s1"), (m / "small", "not a directory"),
                     (m.parent, "not under the volume")):
        with pytest.raises(DumpError, match=why):
            SnapshotTree(m, "s1", bad)
    with pytest.raises(DumpError, match="not held"):
        with client.open_volume(m) as c:
            c.snapshot_create("loose")
        SnapshotTree(m, "loose")
