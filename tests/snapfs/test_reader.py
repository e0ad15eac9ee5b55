"""snapfs.reader: a held snapshot read from another process while the mount daemon writes.

The daemon runs in its own process (``snapfs mount``); this test process reads the
volume's files with :func:`snapfs.reader.open_snapshot` while it writes, deletes,
and takes and deletes other snapshots through the mount, and compares every inode
with what ``.snapshot/NAME/`` showed right after the snapshot was taken.
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
from pathlib import Path

import pytest
from fuse_fixtures import Mounted, mounted, snapfs  # noqa: F401 (fixtures)

from snapfs import SnapfsError, Volume, client
from snapfs.fuse_ops import snap_node
from snapfs.reader import open_snapshot
from snapfs.volume import DB_FILE

BS = 4096


def build_every_kind(mnt: Path) -> None:
    """A tree with every kind of inode, xattrs, ACLs, hard links and holes."""
    (mnt / "d" / "sub").mkdir(parents=True)
    (mnt / "small").write_bytes(b"hello\n")
    (mnt / "d" / "multi").write_bytes(os.urandom(3 * BS + 100))
    with open(mnt / "d" / "holey", "wb") as f:  # data, a hole of two blocks, data, a hole to the end
        f.write(b"a" * 10)
        f.seek(3 * BS)
        f.write(b"b" * BS)
        f.truncate(8 * BS + 5)
    (mnt / "sparse").touch()
    os.truncate(mnt / "sparse", 1 << 20)  # all hole
    os.link(mnt / "small", mnt / "d" / "sub" / "hard")
    os.symlink("../small", mnt / "d" / "link")
    os.mkfifo(mnt / "fifo")
    os.mknod(mnt / "d" / "cdev", stat.S_IFCHR | 0o640, os.makedev(4, 5))
    os.setxattr(mnt / "d" / "multi", "user.colour", b"blue")
    os.setxattr(mnt / "d", "trusted.t", b"\x00\x01")
    os.chown(mnt / "d" / "holey", 123, 456)
    os.utime(mnt / "small", ns=(1_000_000_001, 2_000_000_002))
    subprocess.run(["setfacl", "-m", "u:65534:rw", str(mnt / "small")], check=True)
    subprocess.run(["setfacl", "-d", "-m", "g:65534:rx", str(mnt / "d")], check=True)
    (mnt / "d" / "inherits").write_bytes(b"x" * 5000)  # a default ACL made its access ACL
    for i in range(40):
        (mnt / "d" / "sub" / f"f{i:02}").write_bytes(b"%d" % i * (i * 97))


def _seen_through_mount(root: Path) -> dict[str, dict]:
    """path -> what the mount shows: lstat fields, xattrs, symlink target, bytes."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames + ([] if dirpath != str(root) else ["."]):
            p = Path(dirpath) / n if n != "." else root
            st = os.lstat(p)
            d = {"ino": st.st_ino, "mode": st.st_mode, "nlink": st.st_nlink, "uid": st.st_uid, "gid": st.st_gid,
                 "rdev": st.st_rdev, "size": st.st_size, "blocks": st.st_blocks, "atime_ns": st.st_atime_ns,
                 "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns,
                 "xattrs": {os.fsencode(x): os.getxattr(p, x, follow_symlinks=False)
                            for x in os.listxattr(p, follow_symlinks=False)}}
            if stat.S_ISLNK(st.st_mode):
                d["target"] = os.fsencode(os.readlink(p))
            if stat.S_ISREG(st.st_mode):
                d["data"] = p.read_bytes()
            out["/" if n == "." else "/" + str(p.relative_to(root))] = d
    return out


def _seen_by_reader(r, mutate) -> dict[str, dict]:
    """The same through the reader, calling ``mutate`` between inodes."""
    inodes = {}
    for i in r.inodes():
        inodes[i.ino] = i
        mutate()
    paths = {"/": 1}
    todo = [1]
    while todo:
        parent = todo.pop()
        for e in r.entries(parent):
            path = ("" if parent == 1 else _path_of(paths, parent)) + "/" + os.fsdecode(e.name)
            paths[path] = e.ino
            if stat.S_ISDIR(inodes[e.ino].mode):
                todo.append(e.ino)
        mutate()
    out = {}
    for path, ino in paths.items():
        i, a = inodes[ino], inodes[ino].attrs
        d = {"ino": snap_node(r.id, ino), "mode": a.mode, "nlink": a.nlink, "uid": a.uid, "gid": a.gid,
             "rdev": a.rdev, "size": a.size, "blocks": a.blocks, "atime_ns": a.atime_ns, "mtime_ns": a.mtime_ns,
             "ctime_ns": a.ctime_ns, "xattrs": i.xattrs}
        if stat.S_ISLNK(i.mode):
            d["target"] = r.readlink(ino)
        if stat.S_ISREG(i.mode):
            d["data"] = r.read(ino, 0, a.size + 10)
            # the sparse map agrees with the bytes: outside the extents only zeros
            covered = bytearray(a.size)
            for off, n in r.extents(ino):
                covered[off:off + n] = b"\1" * n
                assert r.read(ino, off, n) == d["data"][off:off + n]
            assert not any(b for b, c in zip(d["data"], covered) if not c), path
            assert len(r.block_map(ino)) * (BS // 512) == a.blocks
        out[path] = d
        mutate()
    return out


def _path_of(paths: dict[str, int], ino: int) -> str:
    return next(p for p, i in paths.items() if i == ino)


def test_reader_reads_exactly_the_held_snapshot_while_the_daemon_writes(mounted: Mounted):
    m = mounted.mnt
    build_every_kind(m)
    with client.open_volume(mounted.voldir) as c:
        c.snapshot_create("s")
        c.snapshot_hold("s", "dump-1")
    expected = _seen_through_mount(mounted.snap("s"))
    assert expected["/d/holey"]["blocks"] == 2 * (BS // 512) and expected["/sparse"]["blocks"] == 0
    assert b"system.posix_acl_access" in expected["/d/inherits"]["xattrs"]

    steps = iter(range(10_000))

    def mutate() -> None:
        """One change through the mount, different each time, committed by fsync."""
        k = next(steps)
        with client.open_volume(mounted.voldir) as c:
            if k % 7 == 0:
                c.snapshot_create(f"other{k}")
                if k >= 7:
                    c.snapshot_delete(f"other{k - 7}")
                return
        targets = [m / "small", m / "d" / "multi", m / "d" / "holey", m / "sparse"]
        p = targets[k % len(targets)]
        with open(p, "r+b") as f:
            f.seek((k * 1237) % (4 * BS))
            f.write(os.urandom(BS + k))
            os.fsync(f.fileno())
        os.chmod(p, 0o600 + k % 8)
        os.setxattr(p, "user.colour", b"red%d" % k)
        sub = m / "d" / "sub" / f"f{k % 40:02}"
        if sub.exists():
            sub.unlink()
        (m / "d" / f"new{k}").write_bytes(b"n" * (k * 31))
        os.sync()

    with open_snapshot(mounted.mnt, "s") as r:  # the mount point finds the volume folder
        got = _seen_by_reader(r, mutate)
    assert next(steps) > 40  # the daemon really changed things while the reader read
    assert got == expected
    with client.open_volume(mounted.voldir) as c:
        c.snapshot_release("s", "dump-1")


def test_reader_refuses_a_snapshot_not_held(tmp_path: Path):
    vol = Volume.create(tmp_path / "v", 16 << 20, 100, block_size=BS)
    vol.write(vol.create_file(1, "f").ino, 0, b"data")
    vol.snapshot_create("loose")
    vol.snapshot_create("held")
    vol.snapshot_hold("held", "dump-2")
    vol.close()
    with pytest.raises(SnapfsError, match="'loose' of volume vol1 is not held") as e:
        open_snapshot(tmp_path / "v", "loose")
    assert e.value.errno == errno.EPERM
    with pytest.raises(SnapfsError, match="not held by 'dump-3'"):
        open_snapshot(tmp_path / "v", "held", holder="dump-3")
    with pytest.raises(SnapfsError, match="no snapshot named 'gone'") as e:
        open_snapshot(tmp_path / "v", "gone")
    assert e.value.errno == errno.ENOENT
    before = (tmp_path / "v" / DB_FILE).stat()
    with open_snapshot(tmp_path / "v", "held", holder="dump-2") as r:
        f = next(e for e in r.entries(1) if e.name == b"f")
        assert r.read(f.ino, 0, 100) == b"data"
        assert [i.ino for i in r.inodes()] == [1, f.ino]
    after = (tmp_path / "v" / DB_FILE).stat()
    assert (after.st_mtime_ns, after.st_size) == (before.st_mtime_ns, before.st_size)  # nothing written
