"""The Volume API as a POSIX file system: every operation and its edge cases."""

from __future__ import annotations

import errno
import stat

import pytest
from volume_fixtures import vol, voldir  # noqa: F401 (fixtures)

from snapfs import (
    RENAME_EXCHANGE, RENAME_NOREPLACE, RENAME_WHITEOUT, ROOT_INO, XATTR_CREATE, XATTR_REPLACE, NotAVolume,
    SnapfsError, Volume, VolumeBusy, fsck,
)
from snapfs.schema import SCHEMA_VERSION


def errno_of(fn, *a, **kw) -> int:
    with pytest.raises(SnapfsError) as ei:
        fn(*a, **kw)
    return ei.value.errno


def names(vol, ino, snap=None):
    return sorted(e.name for e in vol.readdir(ino, snap=snap))


# ---------------------------------------------------------------- volumes

def test_create_then_reopen_keeps_the_tree(vol, voldir):
    f = vol.create_file(ROOT_INO, "a")
    vol.write(f.ino, 0, b"hello")
    vol.close()
    with Volume.open(voldir) as v2:
        assert v2.read(v2.lookup(ROOT_INO, "a").ino, 0, 100) == b"hello"
        assert v2.name == "testvol"


def test_open_refuses_a_folder_that_is_not_a_volume(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(NotAVolume, match="not a snapfs volume"):
        Volume.open(tmp_path / "x")
    with pytest.raises(NotAVolume):
        Volume.open(tmp_path / "missing")


def _folder_with_db(tmp_path, content: bytes | None):
    d = tmp_path / "x"
    d.mkdir()
    if content is None:  # an SQLite database of something else
        import sqlite3
        db = sqlite3.connect(d / "snapfs.db")
        db.execute("CREATE TABLE t (x)")
        db.commit()
        db.close()
    else:
        (d / "snapfs.db").write_bytes(content)
    (d / "data").write_bytes(b"")
    return d


@pytest.mark.parametrize("content, reason", [
    (b"", "its snapfs.db is empty"),
    (b"not sqlite at all" * 100, "its snapfs.db is not an SQLite database"),
    (None, "its snapfs.db is an SQLite database of something else"),
])
def test_open_says_why_a_database_is_not_a_volume_and_changes_nothing(tmp_path, content, reason):
    d = _folder_with_db(tmp_path, content)
    before = {f.name: f.read_bytes() for f in d.iterdir()}
    with pytest.raises(NotAVolume, match=reason):
        Volume.open(d)
    assert {f.name: f.read_bytes() for f in d.iterdir()} == before  # not migrated, no lock file left


def test_open_names_a_missing_data_file(vol, voldir):
    vol.close()
    (voldir / "data").unlink()
    with pytest.raises(NotAVolume, match=r"data file \(data\) is missing"):
        Volume.open(voldir)


def test_second_opener_gets_ebusy(vol, voldir):
    with pytest.raises(VolumeBusy, match="already mounted/open") as ei:
        Volume.open(voldir)
    assert ei.value.errno == errno.EBUSY


def test_create_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "junk").write_text("x")
    assert errno_of(Volume.create, tmp_path / "v", 1 << 20, 10) == errno.EEXIST


def test_statfs_reports_size_and_inode_limits(vol):
    s = vol.statfs()
    assert (s.block_size, s.total_blocks, s.free_blocks) == (4096, 1024, 1024)
    assert (s.total_inodes, s.free_inodes, s.name_max) == (200, 199, 255)


# ---------------------------------------------------------------- names

def test_mknod_makes_every_file_type(vol):
    for name, mode in [("reg", stat.S_IFREG), ("chr", stat.S_IFCHR), ("blk", stat.S_IFBLK),
                       ("fifo", stat.S_IFIFO), ("sock", stat.S_IFSOCK)]:
        a = vol.mknod(ROOT_INO, name, mode | 0o640, rdev=0x0801, uid=5, gid=6)
        assert stat.S_IFMT(a.mode) == mode and a.mode & 0o7777 == 0o640
        assert (a.uid, a.gid, a.nlink, a.rdev) == (5, 6, 1, 0x0801)
        assert vol.lookup(ROOT_INO, name) == a


def test_mkdir_symlink_and_readlink(vol):
    d = vol.mkdir(ROOT_INO, "d", 0o700)
    assert stat.S_ISDIR(d.mode) and d.nlink == 2
    assert vol.getattr(ROOT_INO).nlink == 3
    s = vol.symlink(d.ino, "l", b"../target")
    assert stat.S_ISLNK(s.mode) and s.size == 9
    assert vol.readlink(s.ino) == b"../target"
    assert errno_of(vol.readlink, d.ino) == errno.EINVAL


def test_lookup_dot_and_dotdot(vol):
    d = vol.mkdir(ROOT_INO, "d")
    assert vol.lookup(d.ino, ".").ino == d.ino
    assert vol.lookup(d.ino, "..").ino == ROOT_INO
    assert vol.lookup(ROOT_INO, "..").ino == ROOT_INO


def test_bad_names_are_refused(vol):
    assert errno_of(vol.create_file, ROOT_INO, "a/b") == errno.EINVAL
    assert errno_of(vol.create_file, ROOT_INO, "") == errno.EINVAL
    assert errno_of(vol.create_file, ROOT_INO, "x" * 256) == errno.ENAMETOOLONG
    vol.create_file(ROOT_INO, "x" * 255)
    assert errno_of(vol.create_file, ROOT_INO, "x" * 255) == errno.EEXIST
    assert errno_of(vol.lookup, ROOT_INO, "nope") == errno.ENOENT
    f = vol.create_file(ROOT_INO, "f")
    assert errno_of(vol.create_file, f.ino, "g") == errno.ENOTDIR


def test_hard_links_count_and_survive_unlink(vol):
    f = vol.create_file(ROOT_INO, "f")
    vol.write(f.ino, 0, b"data")
    d = vol.mkdir(ROOT_INO, "d")
    assert vol.link(f.ino, d.ino, "g").nlink == 2
    vol.unlink(ROOT_INO, "f")
    assert vol.getattr(f.ino).nlink == 1
    assert vol.read(vol.lookup(d.ino, "g").ino, 0, 10) == b"data"
    assert errno_of(vol.link, d.ino, ROOT_INO, "dd") == errno.EPERM
    vol.unlink(d.ino, "g")
    assert errno_of(vol.getattr, f.ino) == errno.ENOENT


def test_unlinked_open_file_lives_until_release(vol):
    f = vol.create_file(ROOT_INO, "f")
    vol.write(f.ino, 0, b"still here")
    vol.open_file(f.ino)
    vol.unlink(ROOT_INO, "f")
    assert vol.read(f.ino, 0, 100) == b"still here"
    assert vol.getattr(f.ino).nlink == 0
    vol.release_file(f.ino)
    assert errno_of(vol.getattr, f.ino) == errno.ENOENT
    assert vol.statfs().free_blocks == vol.statfs().total_blocks


def test_unlink_and_rmdir_errors(vol):
    d = vol.mkdir(ROOT_INO, "d")
    vol.create_file(d.ino, "f")
    assert errno_of(vol.unlink, ROOT_INO, "d") == errno.EISDIR
    assert errno_of(vol.rmdir, ROOT_INO, "d") == errno.ENOTEMPTY
    assert errno_of(vol.rmdir, d.ino, "f") == errno.ENOTDIR
    assert errno_of(vol.unlink, ROOT_INO, "missing") == errno.ENOENT
    vol.unlink(d.ino, "f")
    vol.rmdir(ROOT_INO, "d")
    assert vol.getattr(ROOT_INO).nlink == 2
    assert names(vol, ROOT_INO) == []


# ---------------------------------------------------------------- rename

def test_rename_moves_and_keeps_identity(vol):
    f = vol.create_file(ROOT_INO, "a")
    d = vol.mkdir(ROOT_INO, "d")
    vol.rename(ROOT_INO, "a", d.ino, "b")
    assert vol.lookup(d.ino, "b").ino == f.ino
    assert names(vol, ROOT_INO) == [b"d"]


def test_rename_over_a_file_frees_the_old_one(vol):
    a = vol.create_file(ROOT_INO, "a")
    b = vol.create_file(ROOT_INO, "b")
    vol.write(b.ino, 0, b"x" * 10000)
    vol.rename(ROOT_INO, "a", ROOT_INO, "b")
    assert vol.lookup(ROOT_INO, "b").ino == a.ino
    assert errno_of(vol.getattr, b.ino) == errno.ENOENT
    assert vol.space().used == 0


def test_rename_directories_over_empty_and_non_empty_dirs(vol):
    a = vol.mkdir(ROOT_INO, "a")
    vol.mkdir(ROOT_INO, "b")
    c = vol.mkdir(ROOT_INO, "c")
    vol.create_file(c.ino, "f")
    assert vol.getattr(ROOT_INO).nlink == 5
    vol.rename(ROOT_INO, "a", ROOT_INO, "b")
    assert vol.lookup(ROOT_INO, "b").ino == a.ino
    assert vol.getattr(ROOT_INO).nlink == 4
    assert errno_of(vol.rename, ROOT_INO, "b", ROOT_INO, "c") == errno.ENOTEMPTY
    vol.create_file(ROOT_INO, "file")
    assert errno_of(vol.rename, ROOT_INO, "b", ROOT_INO, "file") == errno.ENOTDIR
    assert errno_of(vol.rename, ROOT_INO, "file", ROOT_INO, "b") == errno.EISDIR


def test_rename_into_own_subtree_is_einval(vol):
    a = vol.mkdir(ROOT_INO, "a")
    b = vol.mkdir(a.ino, "b")
    assert errno_of(vol.rename, ROOT_INO, "a", b.ino, "x") == errno.EINVAL
    assert errno_of(vol.rename, ROOT_INO, "a", a.ino, "x") == errno.EINVAL


def test_rename_moving_a_dir_fixes_both_parents_link_counts(vol):
    a = vol.mkdir(ROOT_INO, "a")
    b = vol.mkdir(ROOT_INO, "b")
    vol.mkdir(a.ino, "sub")
    vol.rename(a.ino, "sub", b.ino, "sub")
    assert vol.getattr(a.ino).nlink == 2 and vol.getattr(b.ino).nlink == 3


def test_rename_noreplace_and_exchange(vol):
    a = vol.create_file(ROOT_INO, "a")
    d = vol.mkdir(ROOT_INO, "d")
    assert errno_of(vol.rename, ROOT_INO, "a", ROOT_INO, "d", RENAME_NOREPLACE) == errno.EEXIST
    vol.rename(ROOT_INO, "a", ROOT_INO, "d", RENAME_EXCHANGE)
    assert vol.lookup(ROOT_INO, "d").ino == a.ino and vol.lookup(ROOT_INO, "a").ino == d.ino
    assert errno_of(vol.rename, ROOT_INO, "a", ROOT_INO, "zz", RENAME_EXCHANGE) == errno.ENOENT
    vol.rename(ROOT_INO, "a", ROOT_INO, "new", RENAME_NOREPLACE)
    assert errno_of(vol.rename, ROOT_INO, "a", ROOT_INO, "b", 3) == errno.EINVAL


def test_exchange_across_directories_moves_link_counts(vol):
    p = vol.mkdir(ROOT_INO, "p")
    q = vol.mkdir(ROOT_INO, "q")
    vol.mkdir(p.ino, "dir")
    vol.create_file(q.ino, "file")
    vol.rename(p.ino, "dir", q.ino, "file", RENAME_EXCHANGE)
    assert vol.getattr(p.ino).nlink == 2 and vol.getattr(q.ino).nlink == 3
    assert vol.lookup(q.ino, "file").ino != vol.lookup(p.ino, "dir").ino


def test_rename_of_hard_links_to_the_same_file_does_nothing(vol):
    f = vol.create_file(ROOT_INO, "a")
    vol.link(f.ino, ROOT_INO, "b")
    vol.rename(ROOT_INO, "a", ROOT_INO, "b")
    assert names(vol, ROOT_INO) == [b"a", b"b"] and vol.getattr(f.ino).nlink == 2


def test_rename_whiteout_leaves_a_whiteout_in_the_same_call(vol):
    d = vol.mkdir(ROOT_INO, "d", mode=0o2775, gid=7)  # setgid: the whiteout takes the group
    f = vol.create_file(d.ino, "a")
    vol.create_file(ROOT_INO, "over")
    used = vol.statfs().free_inodes
    vol.rename(d.ino, "a", ROOT_INO, "over", RENAME_WHITEOUT, uid=5, gid=6)
    assert vol.lookup(ROOT_INO, "over").ino == f.ino
    w = vol.lookup(d.ino, "a")
    assert (w.mode, w.rdev, w.nlink, w.uid, w.gid) == (stat.S_IFCHR, 0, 1, 5, 7)
    assert vol.statfs().free_inodes == used  # the file replaced went, the whiteout came
    # a directory too; with RENAME_NOREPLACE; the parents' link counts as for a plain rename
    vol.mkdir(d.ino, "sub")
    vol.rename(d.ino, "sub", ROOT_INO, "sub", RENAME_WHITEOUT | RENAME_NOREPLACE)
    assert stat.S_ISCHR(vol.lookup(d.ino, "sub").mode)
    assert vol.getattr(d.ino).nlink == 2 and vol.getattr(ROOT_INO).nlink == 4
    assert errno_of(vol.rename, ROOT_INO, "sub", ROOT_INO, "over", RENAME_WHITEOUT | RENAME_NOREPLACE) \
        == errno.EEXIST
    assert errno_of(vol.rename, ROOT_INO, "sub", ROOT_INO, "over", RENAME_WHITEOUT | RENAME_EXCHANGE) \
        == errno.EINVAL
    assert errno_of(vol.rename, ROOT_INO, "sub", ROOT_INO, "x", 8) == errno.EINVAL
    # the same file under both names: nothing happens, no whiteout
    vol.link(f.ino, ROOT_INO, "twin")
    vol.rename(ROOT_INO, "over", ROOT_INO, "twin", RENAME_WHITEOUT)
    assert vol.lookup(ROOT_INO, "over").ino == f.ino


@pytest.mark.parametrize("batch", [False, True])
def test_rename_whiteout_without_a_free_inode_changes_nothing(tmp_path, batch):
    with Volume.create(tmp_path / "v", 1 << 20, 2, block_size=4096) as v:
        v.set_batch(batch)
        v.create_file(ROOT_INO, "a")
        assert errno_of(v.rename, ROOT_INO, "a", ROOT_INO, "b", RENAME_WHITEOUT) == errno.ENOSPC
        assert names(v, ROOT_INO) == [b"a"] and v.statfs().free_inodes == 0
        v.rename(ROOT_INO, "a", ROOT_INO, "b")
        v.commit()
        assert names(v, ROOT_INO) == [b"b"]
        assert fsck(v).clean


# ---------------------------------------------------------------- readdir

def test_readdir_offsets_are_stable_under_changes(vol):
    for i in range(10):
        vol.create_file(ROOT_INO, f"f{i}")
    first = vol.readdir(ROOT_INO, 0, limit=4)
    assert [e.name for e in first] == [b"f0", b"f1", b"f2", b"f3"]
    vol.unlink(ROOT_INO, "f1")
    vol.unlink(ROOT_INO, "f5")
    vol.create_file(ROOT_INO, "new")
    rest = vol.readdir(ROOT_INO, first[-1].offset)
    assert [e.name for e in rest] == [b"f4", b"f6", b"f7", b"f8", b"f9", b"new"]
    assert all(e.attrs == vol.getattr(e.attrs.ino) for e in rest)


# ---------------------------------------------------------------- attributes

def test_setattr_mode_owner_and_nanosecond_times(vol):
    f = vol.create_file(ROOT_INO, "f", 0o644)
    a = vol.setattr(f.ino, mode=0o4755, uid=1000, gid=100, atime_ns=1_000_000_001,
                    mtime_ns=2_000_000_002, ctime_ns=3_000_000_003)
    assert stat.S_ISREG(a.mode) and a.mode & 0o7777 == 0o4755
    assert (a.uid, a.gid, a.atime_ns, a.mtime_ns, a.ctime_ns) == (1000, 100, 1_000_000_001, 2_000_000_002,
                                                                  3_000_000_003)
    assert vol.getattr(f.ino) == a


def test_setgid_directory_passes_its_group_on(vol):
    d = vol.mkdir(ROOT_INO, "d", 0o2775, gid=50)
    assert vol.create_file(d.ino, "f", gid=7).gid == 50
    sub = vol.mkdir(d.ino, "sub", 0o755, gid=7)
    assert sub.gid == 50 and sub.mode & 0o2000


# ---------------------------------------------------------------- data

def test_write_read_across_blocks(vol):
    f = vol.create_file(ROOT_INO, "f")
    data = bytes(range(256)) * 100
    assert vol.write(f.ino, 1000, data) == len(data)
    assert vol.read(f.ino, 1000, len(data)) == data
    assert vol.read(f.ino, 0, 1000) == bytes(1000)
    assert vol.getattr(f.ino).size == 1000 + len(data)
    assert vol.read(f.ino, 1000 + len(data), 10) == b""
    vol.write(f.ino, 0, b"abc", append=True)
    assert vol.read(f.ino, 1000 + len(data), 10) == b"abc"


def test_sparse_file_reads_zeros_and_takes_no_space(vol):
    f = vol.create_file(ROOT_INO, "f")
    vol.write(f.ino, 1_000_000, b"end")
    a = vol.getattr(f.ino)
    assert a.size == 1_000_003 and a.blocks == 4096 // 512
    assert vol.read(f.ino, 500_000, 8192) == bytes(8192)
    assert vol.space().used == 4096
    assert vol.truncate(f.ino, 3_000_000).blocks == 8
    assert vol.read(f.ino, 2_000_000, 5) == bytes(5)


def test_truncate_down_then_up_reads_zeros(vol):
    f = vol.create_file(ROOT_INO, "f")
    vol.write(f.ino, 0, b"x" * 10000)
    a = vol.truncate(f.ino, 5000)
    assert a.size == 5000 and a.blocks == 2 * 8
    vol.truncate(f.ino, 12000)
    assert vol.read(f.ino, 0, 20000) == b"x" * 5000 + bytes(7000)
    vol.truncate(f.ino, 0)
    assert vol.getattr(f.ino).blocks == 0 and vol.space().used == 0
    assert errno_of(vol.truncate, ROOT_INO, 0) == errno.EISDIR


def test_overwrite_keeps_block_count(vol):
    f = vol.create_file(ROOT_INO, "f")
    vol.write(f.ino, 0, b"a" * 8192)
    vol.write(f.ino, 100, b"b" * 100)
    assert vol.getattr(f.ino).blocks == 16 and vol.space().used == 8192
    assert vol.read(f.ino, 0, 300) == b"a" * 100 + b"b" * 100 + b"a" * 100


def test_fsync_is_accepted(vol):
    f = vol.create_file(ROOT_INO, "f")
    vol.write(f.ino, 0, b"x")
    vol.fsync(f.ino)
    vol.fsync()


# ---------------------------------------------------------------- xattrs

def test_xattr_set_get_list_remove(vol):
    f = vol.create_file(ROOT_INO, "f")
    vol.setxattr(f.ino, "user.a", b"1")
    vol.setxattr(f.ino, b"trusted.b", b"")
    vol.setxattr(f.ino, "security.c", b"\0\1")
    assert vol.listxattr(f.ino) == [b"security.c", b"trusted.b", b"user.a"]
    assert vol.getxattr(f.ino, "user.a") == b"1"
    vol.setxattr(f.ino, "user.a", b"2")
    assert vol.getxattr(f.ino, "user.a") == b"2"
    vol.removexattr(f.ino, "user.a")
    assert errno_of(vol.getxattr, f.ino, "user.a") == errno.ENODATA
    assert errno_of(vol.removexattr, f.ino, "user.a") == errno.ENODATA


def test_xattr_flags(vol):
    f = vol.create_file(ROOT_INO, "f")
    assert errno_of(vol.setxattr, f.ino, "user.a", b"1", XATTR_REPLACE) == errno.ENODATA
    vol.setxattr(f.ino, "user.a", b"1", XATTR_CREATE)
    assert errno_of(vol.setxattr, f.ino, "user.a", b"1", XATTR_CREATE) == errno.EEXIST
    vol.setxattr(f.ino, "user.a", b"3", XATTR_REPLACE)
    assert vol.getxattr(f.ino, "user.a") == b"3"


@pytest.mark.parametrize("name, code", [
    ("foo.bar", errno.EOPNOTSUPP), ("user", errno.EOPNOTSUPP), ("system.foo", errno.EOPNOTSUPP),
    ("system.", errno.EOPNOTSUPP), ("user.", errno.EINVAL), ("trusted.", errno.EINVAL),
    ("security.", errno.EINVAL), ("", errno.ERANGE),
])
def test_xattr_names_outside_the_namespaces_are_refused_as_ext4_does(vol, name, code):
    f = vol.create_file(ROOT_INO, "f")
    assert errno_of(vol.setxattr, f.ino, name, b"v") == code
    assert errno_of(vol.getxattr, f.ino, name) == code
    assert errno_of(vol.xattr, f.ino, name) == code
    assert errno_of(vol.removexattr, f.ino, name) == code
    assert vol.listxattr(f.ino) == []
    if name:  # the kernel's order: the name's length, the value's size, then the namespace
        assert errno_of(vol.setxattr, f.ino, name, b"v" * 65537) == errno.E2BIG
    assert errno_of(vol.setxattr, f.ino, "n" * 256, b"v" * 65537) == errno.ERANGE


def test_xattr_limits_like_ext4(vol):
    """ext4 with 4 KiB blocks (checked on a real one): a header of 36 bytes, then per xattr
    16 bytes + name suffix + value, each rounded up to 4; this volume has 4 KiB blocks."""
    f = vol.create_file(ROOT_INO, "f")
    vol.setxattr(f.ino, "user." + "n" * 250, b"v")
    assert errno_of(vol.setxattr, f.ino, "user." + "n" * 251, b"v") == errno.ERANGE
    assert errno_of(vol.setxattr, f.ino, "user.big", b"v" * 65537) == errno.E2BIG
    assert errno_of(vol.setxattr, f.ino, "user.big", b"v" * 65536) == errno.ENOSPC
    g = vol.create_file(ROOT_INO, "g")
    vol.setxattr(g.ino, "user.a", b"v" * 4040)  # 36 + 16 + 4 + 4040 = 4096
    assert errno_of(vol.setxattr, g.ino, "user.b", b"") == errno.ENOSPC
    assert errno_of(vol.setxattr, g.ino, "user.a", b"v" * 4041) == errno.ENOSPC
    assert vol.getxattr(g.ino, "user.a") == b"v" * 4040  # a refused replacement keeps the old value
    vol.setxattr(g.ino, "user.a", b"w" * 4037)  # rounded up to 4040: still fits
    h = vol.create_file(ROOT_INO, "h")
    for c in "abc":
        vol.setxattr(h.ino, f"trusted.{c}", b"v" * 1000)
    assert errno_of(vol.setxattr, h.ino, "user.d", b"v" * 1000) == errno.ENOSPC
    vol.removexattr(h.ino, "trusted.a")
    vol.setxattr(h.ino, "user.d", b"v" * 1000)  # room again
    # ACLs count too, named by their index as ext4 does (no suffix)
    vol.setxattr(h.ino, "system.posix_acl_access", b"v" * (4096 - 36 - 3 * 1020 - 16))
    assert errno_of(vol.setxattr, h.ino, "user.e", b"") == errno.ENOSPC


def test_xattr_room_is_one_block_of_at_most_64_kib(tmp_path):
    with Volume.create(tmp_path / "v", 8 << 20, 10) as v:  # the default: 4 KiB blocks, 64 KiB of xattr room
        f = v.create_file(ROOT_INO, "f")
        v.setxattr(f.ino, "user.a", b"v" * (65536 - 56))
        assert errno_of(v.setxattr, f.ino, "user.b", b"") == errno.ENOSPC
    with Volume.create(tmp_path / "w", 8 << 20, 10, block_size=1 << 20) as v:
        f = v.create_file(ROOT_INO, "f")
        assert errno_of(v.setxattr, f.ino, "user.a", b"v" * (65536 - 55)) == errno.ENOSPC


@pytest.mark.parametrize("block_size, room", [(65536, 65536), (8192, 8192), (1 << 20, 65536)])
def test_a_version_5_volume_keeps_its_xattr_room_at_open(tmp_path, block_size, room):
    """Schema version 6 (issue 10) gives the xattr room its own column: an older volume
    keeps what its block size gave it."""
    import sqlite3

    Volume.create(tmp_path / "v", 8 << 20, 10, block_size=block_size).close()
    db = sqlite3.connect(tmp_path / "v" / "snapfs.db")
    db.execute("ALTER TABLE meta DROP COLUMN xattr_room")
    db.execute("PRAGMA user_version = 5")
    db.commit()
    db.close()
    with Volume.open(tmp_path / "v") as v:
        assert (v.block_size, v.meta.xattr_room) == (block_size, room)
        f = v.create_file(ROOT_INO, "f")
        v.setxattr(f.ino, "user.a", b"v" * (room - 56))
        assert errno_of(v.setxattr, f.ino, "user.b", b"") == errno.ENOSPC
        assert v.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 7
        assert fsck(v).clean


def test_everything_is_fsck_clean_after_a_mixed_workload(vol):
    d = vol.mkdir(ROOT_INO, "d")
    f = vol.create_file(d.ino, "f")
    vol.write(f.ino, 0, b"x" * 20000)
    vol.link(f.ino, ROOT_INO, "g")
    vol.rename(d.ino, "f", ROOT_INO, "h")
    vol.truncate(f.ino, 7000)
    vol.setxattr(f.ino, "user.x", b"y")
    report = fsck(vol)
    assert report.clean, report.problems


def test_a_version_1_volume_is_migrated_on_open(voldir):
    """Version 2 made the *_dead indexes partial (dead rows only); an old volume gets them at open."""
    import sqlite3

    with Volume.create(voldir, 1 << 20, 50, block_size=4096) as v:
        f = v.create_file(ROOT_INO, "f")
        v.write(f.ino, 0, b"kept")
    db = sqlite3.connect(voldir / "snapfs.db")
    for t in ("inodes", "dirents", "xattrs", "blockmap"):
        db.execute(f"DROP INDEX {t}_dead")
        db.execute(f"CREATE INDEX {t}_dead ON {t} (death, birth)")
    db.execute("DROP INDEX dirents_dosname")  # version 4's
    db.execute("ALTER TABLE dirents DROP COLUMN dosname")
    db.execute("DROP TABLE streams")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    with Volume.open(voldir) as v:
        assert v.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        sql = v.db.execute("SELECT sql FROM sqlite_master WHERE name = 'blockmap_dead'").fetchone()[0]
        assert "WHERE death <" in sql
        assert v.read(v.lookup(ROOT_INO, "f").ino, 0, 10) == b"kept"
        v.snapshot_create("s")
        v.unlink(ROOT_INO, "f")
        assert v.snapshot_delete("s") == 4096
        assert fsck(v).clean
