"""Snapshots: isolation, exact freeing, O(1) creation, holds, names."""

from __future__ import annotations

import errno

import pytest
from volume_fixtures import vol, voldir  # noqa: F401 (fixtures)

from snapfs import ROOT_INO, SnapfsError, SnapshotBusy, Volume, fsck, snapshots
from snapfs.schema import VERSIONED

BS = 4096


def tree(vol, snap=None, ino=ROOT_INO, path=b""):
    """Everything visible from ``ino``: path -> (attrs, content or link target, xattrs)."""
    out = {}
    for e in vol.readdir(ino, snap=snap):
        p = path + b"/" + e.name
        a = e.attrs
        if a.mode & 0o170000 == 0o040000:
            body = None
            out.update(tree(vol, snap, a.ino, p))
        elif a.mode & 0o170000 == 0o120000:
            body = vol.readlink(a.ino, snap)
        else:
            body = vol.read(a.ino, 0, a.size + 10, snap)
        xs = {n: vol.getxattr(a.ino, n, snap) for n in vol.listxattr(a.ino, snap)}
        out[p] = (a, body, xs)
    out[path or b"/"] = (vol.getattr(ino, snap), None,
                         {n: vol.getxattr(ino, n, snap) for n in vol.listxattr(ino, snap)})
    return out


def populate(vol):
    d = vol.mkdir(ROOT_INO, "d")
    f = vol.create_file(d.ino, "f")
    vol.write(f.ino, 0, b"A" * 10000)
    g = vol.create_file(ROOT_INO, "g")
    vol.write(g.ino, 0, b"G" * 5000)
    vol.symlink(ROOT_INO, "l", "d/f")
    vol.link(f.ino, ROOT_INO, "hard")
    vol.setxattr(f.ino, "user.k", b"v")
    vol.mkdir(d.ino, "empty")
    return d, f, g


CHANGES = {
    "write": lambda v, d, f, g: v.write(f.ino, 100, b"changed"),
    "append": lambda v, d, f, g: v.write(f.ino, 0, b"more", append=True),
    "truncate_down": lambda v, d, f, g: v.truncate(f.ino, 10),
    "truncate_up": lambda v, d, f, g: v.truncate(g.ino, 100000),
    "unlink": lambda v, d, f, g: v.unlink(ROOT_INO, "g"),
    "unlink_last_link": lambda v, d, f, g: (v.unlink(d.ino, "f"), v.unlink(ROOT_INO, "hard")),
    "rename": lambda v, d, f, g: v.rename(d.ino, "f", ROOT_INO, "moved"),
    "rename_over": lambda v, d, f, g: v.rename(ROOT_INO, "g", ROOT_INO, "hard"),
    "rmdir": lambda v, d, f, g: v.rmdir(d.ino, "empty"),
    "chmod": lambda v, d, f, g: v.setattr(f.ino, mode=0o600),
    "chown": lambda v, d, f, g: v.setattr(d.ino, uid=7, gid=8),
    "utimens": lambda v, d, f, g: v.setattr(g.ino, atime_ns=1, mtime_ns=2),
    "setxattr": lambda v, d, f, g: v.setxattr(f.ino, "user.k", b"new"),
    "addxattr": lambda v, d, f, g: v.setxattr(d.ino, "system.posix_acl_default", b"\2\0\0\0"),
    "removexattr": lambda v, d, f, g: v.removexattr(f.ino, "user.k"),
    "create": lambda v, d, f, g: v.create_file(d.ino, "new"),
    "mkdir": lambda v, d, f, g: v.mkdir(ROOT_INO, "newdir"),
    "symlink": lambda v, d, f, g: v.symlink(d.ino, "s", "x"),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_snapshot_view_is_unchanged_by_live_changes(vol, voldir, change):
    d, f, g = populate(vol)
    before = tree(vol)
    s = vol.snapshot_create("s").id
    assert tree(vol, s) == before
    CHANGES[change](vol, d, f, g)
    CHANGES[change](vol, d, f, g) if change in ("write", "setxattr", "chmod") else None
    assert tree(vol, s) == before
    assert tree(vol) != before
    vol.close()
    with Volume.open(voldir) as v2:
        assert tree(v2, v2.snapshot_id("s")) == before
        assert fsck(v2).clean


def test_file_identity_is_the_same_in_every_snapshot(vol):
    d, f, g = populate(vol)
    s1 = vol.snapshot_create("s1").id
    vol.rename(d.ino, "f", ROOT_INO, "renamed")
    s2 = vol.snapshot_create("s2").id
    assert vol.lookup(d.ino, "f", s1).ino == f.ino == vol.lookup(ROOT_INO, "renamed", s2).ino
    assert vol.lookup(ROOT_INO, "renamed").ino == f.ino


def test_snapshot_reads_of_missing_things(vol):
    s = vol.snapshot_create("s").id
    f = vol.create_file(ROOT_INO, "later")
    assert pytest.raises(SnapfsError, vol.getattr, f.ino, s).value.errno == errno.ENOENT
    assert pytest.raises(SnapfsError, vol.lookup, ROOT_INO, "later", s).value.errno == errno.ENOENT
    assert pytest.raises(SnapfsError, vol.getattr, ROOT_INO, 999).value.errno == errno.ENOENT


def test_delete_frees_exactly_what_only_that_snapshot_held(vol):
    f = vol.create_file(ROOT_INO, "f")
    vol.write(f.ino, 0, b"1" * 4 * BS)           # blocks 0-3, born before s1
    s1 = vol.snapshot_create("s1")
    vol.write(f.ino, 0, b"2" * BS)               # block 0 rewritten: old one held by s1 only
    s2 = vol.snapshot_create("s2")
    vol.write(f.ino, BS, b"3" * BS)              # block 1 rewritten: old (born < s1) held by s1 and s2
    vol.write(f.ino, 0, b"4" * BS)               # block 0 (born between s1 and s2) held by s2 only
    assert vol.space().used == 7 * BS
    info = {s.name: s.exclusive_bytes for s in vol.snapshot_list()}
    assert info == {"s1": BS, "s2": BS}
    assert vol.space().snapshots == 3 * BS
    assert vol.snapshot_delete("s1") == BS
    assert vol.space().used == 6 * BS
    assert {s.name: s.exclusive_bytes for s in vol.snapshot_list()} == {"s2": 2 * BS}
    assert vol.read(f.ino, 0, 2 * BS, s2.id) == b"2" * BS + b"1" * BS
    assert vol.snapshot_delete("s2") == 2 * BS
    assert vol.space().used == 4 * BS and vol.space().snapshots == 0
    assert vol.read(f.ino, 0, 4 * BS) == b"4" * BS + b"3" * BS + b"1" * 2 * BS
    assert fsck(vol).clean


def test_deleting_the_middle_snapshot_keeps_its_neighbours_views(vol):
    f = vol.create_file(ROOT_INO, "f")
    views = {}
    for i in range(4):
        vol.write(f.ino, 0, bytes([65 + i]) * (BS + 10))
        vol.setattr(f.ino, mode=0o600 + i)
        views[f"s{i}"] = (vol.snapshot_create(f"s{i}").id, tree(vol))
    vol.unlink(ROOT_INO, "f")
    vol.snapshot_delete("s1")
    vol.snapshot_delete("s2")
    for name in ("s0", "s3"):
        sid, before = views[name]
        assert tree(vol, sid) == before
    assert fsck(vol).clean
    vol.snapshot_delete("s3")
    vol.snapshot_delete("s0")
    assert vol.space().used == 0
    assert fsck(vol).clean


def test_deleted_file_space_returns_when_its_last_snapshot_goes(vol):
    f = vol.create_file(ROOT_INO, "f")
    vol.write(f.ino, 0, b"x" * 10 * BS)
    vol.snapshot_create("s")
    vol.unlink(ROOT_INO, "f")
    assert vol.space().used == 10 * BS and vol.space().live == 0
    assert vol.snapshot_list()[0].exclusive_bytes == 10 * BS
    vol.snapshot_delete("s")
    assert vol.space().used == 0
    assert vol.db.execute("SELECT count(*) FROM inodes").fetchone()[0] == 1


def _count_statements(vol, fn):
    stmts = []
    vol.db.set_trace_callback(stmts.append)
    try:
        fn()
    finally:
        vol.db.set_trace_callback(None)
    return stmts


def test_snapshot_create_is_constant_in_volume_size(vol):
    small = _count_statements(vol, lambda: vol.snapshot_create("small"))
    d = vol.mkdir(ROOT_INO, "many")
    for i in range(150):
        f = vol.create_file(d.ino, f"f{i}")
        vol.write(f.ino, 0, b"z" * 5000)
    big = _count_statements(vol, lambda: vol.snapshot_create("big"))
    assert len(big) == len(small) <= 5


def test_snapshot_delete_touches_only_what_changed(vol):
    d = vol.mkdir(ROOT_INO, "many")
    for i in range(100):
        f = vol.create_file(d.ino, f"f{i}")
        vol.write(f.ino, 0, b"z" * 5000)
    vol.snapshot_create("s")
    vol.write(f.ino, 0, b"q")
    stmts = _count_statements(vol, lambda: vol.snapshot_delete("s"))
    plans = [r[-1] for r in vol.db.execute(
        f"EXPLAIN QUERY PLAN DELETE FROM blockmap WHERE {snapshots._ONLY}", (1, 2, 0, 1))]
    assert any("blockmap_dead" in p for p in plans), plans
    assert len(stmts) <= 10 + len(VERSIONED)  # a fixed few, and one DELETE per versioned table


def test_busy_snapshot_cannot_be_deleted(vol):
    vol.snapshot_create("s")
    vol.snapshot_hold("s", "pydump session 3")
    with pytest.raises(SnapshotBusy, match="pydump session 3") as ei:
        vol.snapshot_delete("s")
    assert ei.value.errno == errno.EBUSY
    assert vol.snapshot_list()[0].holders == ("pydump session 3",)
    vol.snapshot_release("s", "pydump session 3")
    assert pytest.raises(SnapfsError, vol.snapshot_release, "s", "x").value.errno == errno.ENOENT
    vol.snapshot_delete("s")
    assert pytest.raises(SnapfsError, vol.snapshot_delete, "s").value.errno == errno.ENOENT


def test_snapshot_names_rename_and_duplicates(vol):
    s = vol.snapshot_create("nightly.0")
    assert pytest.raises(SnapfsError, vol.snapshot_create, "nightly.0").value.errno == errno.EEXIST
    assert pytest.raises(SnapfsError, vol.snapshot_create, "a/b").value.errno == errno.EINVAL
    vol.snapshot_create("other")
    vol.snapshot_rename("nightly.0", "nightly.1")
    assert vol.snapshot_id("nightly.1") == s.id
    assert pytest.raises(SnapfsError, vol.snapshot_rename, "nightly.1", "other").value.errno == errno.EEXIST
    assert [i.name for i in vol.snapshot_list()] == ["nightly.1", "other"]


def test_backup_snapshot_names_count_from_zero_per_open(vol, voldir):
    a, b = vol.next_backup_snapshot_name(), vol.next_backup_snapshot_name()
    assert (a, b) == ("snapshot_for_backup.0", "snapshot_for_backup.1")
    vol.snapshot_create(a)
    vol.close()
    with Volume.open(voldir) as v2:
        assert v2.next_backup_snapshot_name() == "snapshot_for_backup.1"  # .0 still exists
        assert v2.next_backup_snapshot_name() == "snapshot_for_backup.2"


def test_snapshot_of_an_unlinked_open_file_stays_consistent(vol):
    f = vol.create_file(ROOT_INO, "f")
    vol.write(f.ino, 0, b"x" * 2 * BS)
    vol.open_file(f.ino)
    vol.unlink(ROOT_INO, "f")
    sid = vol.snapshot_create("s").id
    vol.release_file(f.ino)
    assert vol.read(f.ino, 0, 10, sid) == b"x" * 10
    assert pytest.raises(SnapfsError, vol.getattr, f.ino).value.errno == errno.ENOENT
    assert fsck(vol).clean
    vol.snapshot_delete("s")
    assert vol.space().used == 0
