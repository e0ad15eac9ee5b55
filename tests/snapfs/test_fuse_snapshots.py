"""``.snapshot``: hidden, read-only, isolated; snapshot commands on a mounted volume."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest
from fuse_fixtures import Mounted, drop_kernel_caches, mounted, snapfs  # noqa: F401 (fixtures)

from snapfs import client

pytestmark = pytest.mark.fuse


def tree_state(root) -> dict:
    """Every byte and attribute a dump would capture, by path."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            xattrs = {x: os.getxattr(p, x, follow_symlinks=False) for x in sorted(os.listxattr(p, follow_symlinks=False))}
            data = None
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    data = f.read()
            elif os.path.islink(p):
                data = os.readlink(p)
            out[os.path.relpath(p, root)] = (st.st_mode, st.st_nlink, st.st_uid, st.st_gid, st.st_size,
                                              st.st_mtime_ns, st.st_ctime_ns, st.st_rdev, xattrs, data,
                                              int(os.getxattr(p, "trusted.snapfs.ino", follow_symlinks=False)))
    return out


def populate(m) -> None:
    (m / "d").mkdir()
    (m / "d" / "f").write_bytes(b"content" * 3000)
    (m / "g").write_bytes(b"gggg")
    (m / "t").write_bytes(b"t" * 10000)
    os.link(m / "g", m / "d" / "hard")
    os.symlink("d/f", m / "l")
    os.setxattr(m / "g", "user.k", b"v")


#: Every kind of live change, in an order where each still finds its target.
CHANGES = [
    ("write", lambda m: (m / "d" / "f").open("r+b").write(b"XXXX")),
    ("truncate", lambda m: os.truncate(m / "t", 3)),
    ("chmod", lambda m: os.chmod(m / "g", 0o600)),
    ("chown", lambda m: os.chown(m / "d" / "f", 7, 7)),
    ("utime", lambda m: os.utime(m / "t", ns=(1, 1))),
    ("setxattr", lambda m: os.setxattr(m / "g", "user.k", b"changed")),
    ("setfacl", lambda m: subprocess.run(["setfacl", "-m", "u:65534:rwx", str(m / "t")], check=True)),
    ("link", lambda m: os.link(m / "t", m / "d" / "t2")),
    ("removexattr", lambda m: os.removexattr(m / "g", "user.k")),
    ("rename", lambda m: os.rename(m / "d" / "f", m / "moved")),
    ("unlink", lambda m: os.unlink(m / "g")),
    ("rmtree", lambda m: subprocess.run(["rm", "-rf", str(m / "d")], check=True)),
]


def test_snapshot_stays_identical_after_every_kind_of_live_change(mounted: Mounted):
    m = mounted.mnt
    populate(m)
    before = tree_state(m)
    snapfs("snapshot", "create", m, "S")
    snap = mounted.snap("S")
    assert tree_state(snap) == before
    for name, change in CHANGES:
        live_before = tree_state(m)
        change(m)
        assert tree_state(m) != live_before, name
        assert tree_state(snap) == before, f"snapshot changed after a live {name}"


def test_snapshot_dir_is_hidden_but_reachable(mounted: Mounted):
    m = mounted.mnt
    (m / "f").write_bytes(b"1")
    snapfs("snapshot", "create", m, "s1")
    assert ".snapshot" not in os.listdir(m)
    assert os.listdir(m / ".snapshot") == ["s1"]
    assert os.listdir(mounted.snap("s1")) == ["f"]
    found = subprocess.run(["find", str(m)], capture_output=True, text=True, check=True).stdout
    assert ".snapshot" not in found
    with pytest.raises(OSError) as ei:
        (m / ".snapshot").mkdir()
    assert ei.value.errno == errno.EEXIST


READ_ONLY_OPS = {
    "write": lambda s: (s / "f").write_bytes(b"2"),
    "truncate": lambda s: os.truncate(s / "f", 0),
    "unlink": lambda s: os.unlink(s / "f"),
    "mkdir": lambda s: os.mkdir(s / "new"),
    "chmod": lambda s: os.chmod(s / "f", 0o777),
    "utime": lambda s: os.utime(s / "f", ns=(1, 1)),
    "setxattr": lambda s: os.setxattr(s / "f", "user.x", b"1"),
    "rename": lambda s: os.rename(s / "f", s / "g"),
    "symlink": lambda s: os.symlink("x", s / "sl"),
    "link": lambda s: os.link(s / "f", s / "h"),
    "rmdir-snapshot": lambda s: os.rmdir(s),
}


def test_snapshot_is_read_only(mounted: Mounted):
    (mounted.mnt / "f").write_bytes(b"1")
    snapfs("snapshot", "create", mounted.mnt, "ro")
    for name, op in READ_ONLY_OPS.items():
        with pytest.raises(OSError) as ei:
            op(mounted.snap("ro"))
        assert ei.value.errno == errno.EROFS, name
    assert (mounted.snap("ro") / "f").read_bytes() == b"1"


def test_snapshot_files_keep_their_stable_inode_number(mounted: Mounted):
    m = mounted.mnt
    (m / "f").write_bytes(b"1")
    snapfs("snapshot", "create", m, "a")
    live = os.stat(m / "f").st_ino
    assert int(os.getxattr(mounted.snap("a") / "f", "user.snapfs.ino")) == live
    assert os.getxattr(mounted.snap("a") / "f", "user.snapfs.snapshot") == b"a"
    assert os.stat(mounted.snap("a") / "f").st_ino != live  # kernel node ids differ per view


def test_snapshot_st_ino_survives_the_kernel_forgetting_and_a_remount(mounted: Mounted):
    """Hard links in a snapshot share one st_ino however the kernel's cache comes and goes
    (tar, rsync and dump group links by it), and a file's st_ino there does not change."""
    m = mounted.mnt
    (m / "a").write_bytes(b"1")
    os.link(m / "a", m / "b")
    (m / "c").write_bytes(b"2")
    snapfs("snapshot", "create", m, "s")
    snap = mounted.snap("s")
    first = {n: os.lstat(snap / n).st_ino for n in "abc"}
    assert first["a"] == first["b"] != first["c"]
    dropped = drop_kernel_caches()
    assert {n: os.lstat(snap / n).st_ino for n in "cba"} == first
    snapfs("unmount", m)
    snapfs("mount", mounted.voldir, m)
    assert {n: os.lstat(snap / n).st_ino for n in "cb"} == {n: first[n] for n in "cb"}
    assert os.lstat(snap / "a").st_ino == first["a"]
    assert dropped or os.geteuid() != 0, "root could not drop the kernel's caches"


def test_cli_create_list_rename_delete_on_a_mounted_volume(mounted: Mounted):
    m = mounted.mnt
    (m / "f").write_bytes(b"x" * 100_000)
    assert snapfs("snapshot", "create", m, "one").stdout.strip() == "one"
    os.unlink(m / "f")
    listing = snapfs("snapshot", "list", m).stdout
    assert "one" in listing and "KiB" in listing
    assert (mounted.snap("one") / "f").stat().st_size == 100_000
    snapfs("snapshot", "rename", m, "one", "two")
    assert not mounted.snap("one").exists()
    assert (mounted.snap("two") / "f").stat().st_size == 100_000
    used = os.statvfs(m).f_bfree
    snapfs("snapshot", "delete", m, "two")
    assert not mounted.snap("two").exists()
    assert os.listdir(m / ".snapshot") == []
    assert os.statvfs(m).f_bfree > used
    assert "live data" in snapfs("volume", "show", m).stdout
    assert "testvol" in snapfs("df", mounted.voldir).stdout


def test_busy_snapshot_delete_is_refused_naming_the_holder(mounted: Mounted):
    m = mounted.mnt
    snapfs("snapshot", "create", m, "b")
    snapfs("snapshot", "hold", m, "b", "dump-7")
    r = snapfs("snapshot", "delete", m, "b", check=False)
    assert r.returncode != 0 and "dump-7" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert mounted.snap("b").is_dir()
    snapfs("snapshot", "release", m, "b", "dump-7")
    snapfs("snapshot", "delete", m, "b")


def test_client_api_from_another_process_and_backup_names(mounted: Mounted):
    code = (
        "import sys; from snapfs import client\n"
        "with client.open_volume(sys.argv[1]) as c:\n"
        "    assert c.mounted\n"
        "    a = c.snapshot_create(); b = c.snapshot_create()\n"
        "    print(a.name, b.name, c.info().snapshot_count, c.info().mountpoint)\n"
    )
    r = subprocess.run([sys.executable, "-c", code, str(mounted.mnt)], capture_output=True, text=True, check=True)
    a, b, n, mp = r.stdout.split()
    assert (a, b, n) == ("snapshot_for_backup.0", "snapshot_for_backup.1", "2")
    assert mp == str(mounted.mnt.resolve())
    with client.open_volume(mounted.voldir) as c:
        assert c.mounted
        assert [s.name for s in c.snapshot_list()] == [a, b]
        with pytest.raises(client.SnapfsError) as ei:
            c.snapshot_delete("missing")
        assert ei.value.errno == errno.ENOENT


def test_cli_works_on_an_unmounted_volume(mounted: Mounted):
    snapfs("snapshot", "create", mounted.mnt, "kept")
    snapfs("unmount", mounted.mnt)
    assert "kept" in snapfs("snapshot", "list", mounted.voldir).stdout
    snapfs("snapshot", "create", mounted.voldir, "offline")
    assert "snapshots:" in snapfs("volume", "show", mounted.voldir).stdout
    snapfs("mount", mounted.voldir, mounted.mnt)
    assert sorted(os.listdir(mounted.mnt / ".snapshot")) == ["kept", "offline"]
