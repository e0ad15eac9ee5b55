"""``.snapshot``: hidden, read-only, isolated; snapshot commands on a mounted volume."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys

import pytest
from fuse_fixtures import Mounted, drop_kernel_caches, mounted, snapfs  # noqa: F401 (fixtures)

from snapfs import client

pytestmark = pytest.mark.fuse


ACL_XATTRS = ("system.posix_acl_access", "system.posix_acl_default")


def node_state(p: str) -> tuple:
    """Every attribute a dump captures of one node, and its bytes (or link target)."""
    st = os.lstat(p)
    xattrs = {x: os.getxattr(p, x, follow_symlinks=False) for x in sorted(os.listxattr(p, follow_symlinks=False))}
    acls = {}
    if not os.path.islink(p):
        for x in ACL_XATTRS:
            try:
                acls[x] = os.getxattr(p, x)
            except OSError as e:
                assert e.errno == errno.ENODATA, (p, x, e)
    data = None
    if os.path.islink(p):
        data = os.readlink(p)
    elif os.path.isfile(p):
        with open(p, "rb") as f:
            data = f.read()
    return dict(mode=st.st_mode, nlink=st.st_nlink, uid=st.st_uid, gid=st.st_gid, size=st.st_size,
                blocks=st.st_blocks, atime=st.st_atime_ns, mtime=st.st_mtime_ns, ctime=st.st_ctime_ns,
                rdev=st.st_rdev, xattrs=xattrs, acls=acls, data=data,
                ino=int(os.getxattr(p, "trusted.snapfs.ino", follow_symlinks=False)))


def tree_state(root) -> dict:
    """Every byte and attribute a dump would capture, by path (the root is "."), and
    what getfacl shows of the tree."""
    out = {".": node_state(str(root))}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            out[os.path.relpath(p, root)] = node_state(p)
    out["getfacl -R"] = subprocess.run(["getfacl", "-R", "-P", "."], cwd=root, capture_output=True,
                                       text=True, check=True).stdout
    return out


def differences(old: dict, new: dict) -> list[str]:
    """What differs between two tree_state results: 'path' or 'path: field'."""
    out = [p for p in old.keys() ^ new.keys()]
    for p in old.keys() & new.keys():
        if isinstance(old[p], dict):
            out += [f"{p}: {k}" for k in old[p] if old[p][k] != new[p][k]]
        elif old[p] != new[p]:
            out.append(p)
    return sorted(out)


def populate(m) -> None:
    """One target per kind of change (so a path that differs names the change), plus a
    directory, hard links, a symlink, an xattr, an access and a default ACL."""
    (m / "d").mkdir()
    (m / "d" / "f").write_bytes(os.urandom(21000))
    for name in ("t", "o", "mode", "own", "times", "xa", "xr", "acl", "lnk", "ren", "over", "victim", "gone",
                 "app"):
        (m / name).write_bytes(name.encode() * 3000)
    os.link(m / "own", m / "d" / "hard")
    os.symlink("d/f", m / "l")
    for name in ("xa", "xr"):
        os.setxattr(m / name, "user.k", b"v")
    (m / "tree" / "sub").mkdir(parents=True)
    (m / "tree" / "sub" / "leaf").write_bytes(b"leaf")
    (m / "dacl").mkdir()
    subprocess.run(["setfacl", "-m", "u:65534:r", str(m / "acl")], check=True)
    subprocess.run(["setfacl", "-d", "-m", "g:65534:rx", str(m / "dacl")], check=True)


def _write_in_place(p) -> None:
    with open(p, "r+b") as f:
        f.seek(5000)
        f.write(b"XXXX")


def _open_trunc(p) -> None:
    with open(p, "wb") as f:  # O_WRONLY | O_CREAT | O_TRUNC of an existing file
        f.write(b"new")


def _append(p) -> None:
    with open(p, "ab") as f:
        f.write(b"more" * 2000)


#: Every kind of live change: (name, path it changes in the live tree, change).
CHANGES = [
    ("write", "d/f", lambda m: _write_in_place(m / "d" / "f")),
    ("append", "app", lambda m: _append(m / "app")),
    ("truncate", "t", lambda m: os.truncate(m / "t", 3)),
    ("O_TRUNC open", "o", lambda m: _open_trunc(m / "o")),
    ("chmod", "mode", lambda m: os.chmod(m / "mode", 0o600)),
    ("chown", "own", lambda m: os.chown(m / "own", 7, 8)),
    ("utime", "times", lambda m: os.utime(m / "times", ns=(1_000_000_001, 2_000_000_002))),
    ("setxattr", "xa", lambda m: os.setxattr(m / "xa", "user.k", b"changed")),
    ("removexattr", "xr", lambda m: os.removexattr(m / "xr", "user.k")),
    ("setfacl", "acl", lambda m: subprocess.run(["setfacl", "-m", "u:65534:rwx", str(m / "acl")], check=True)),
    ("setfacl -d", "dacl", lambda m: subprocess.run(["setfacl", "-d", "-m", "u:7:rwx", str(m / "dacl")],
                                                    check=True)),
    ("link", "lnk", lambda m: os.link(m / "lnk", m / "d" / "lnk2")),
    ("rename", "ren", lambda m: os.rename(m / "ren", m / "d" / "moved")),
    ("rename over", "victim", lambda m: os.rename(m / "over", m / "victim")),
    ("unlink", "gone", lambda m: os.unlink(m / "gone")),
    ("rmtree", "tree", lambda m: subprocess.run(["rm", "-rf", str(m / "tree")], check=True)),
]


def test_snapshot_stays_identical_after_every_kind_of_live_change(mounted: Mounted):
    """Re-read after the kernel dropped its caches (page cache, attributes, entries), so
    the bytes and attributes compared come from the daemon, not from what the kernel
    kept of the first reading; and once more after a remount."""
    m = mounted.mnt
    populate(m)
    before = tree_state(m)
    snapfs("snapshot", "create", m, "S")
    snap = mounted.snap("S")
    assert differences(before, tree_state(snap)) == []
    for _, _, change in CHANGES:
        change(m)
    changed = {d.split(":")[0] for d in differences(before, tree_state(m))}
    assert [name for name, path, _ in CHANGES if path not in changed] == [], "live changes that changed nothing"
    assert drop_kernel_caches() or os.geteuid() != 0, "root could not drop the kernel's caches"
    diff = differences(before, tree_state(snap))
    assert not diff, f"the live changes changed the snapshot: {', '.join(diff)}"
    snapfs("unmount", m)
    snapfs("mount", mounted.voldir, m)
    diff = differences(before, tree_state(snap))
    assert not diff, f"after a remount, the snapshot differs: {', '.join(diff)}"


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
    assert drop_kernel_caches() or os.geteuid() != 0
    assert (mounted.snap("ro") / "f").read_bytes() == b"1"
    assert sorted(os.listdir(mounted.snap("ro"))) == ["f"]


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
    data = os.urandom(100_000)  # 25 blocks of 4 KiB
    (m / "f").write_bytes(data)
    assert snapfs("snapshot", "create", m, "one").stdout.strip() == "one"
    os.unlink(m / "f")
    listing = snapfs("snapshot", "list", m).stdout.splitlines()
    assert listing[1].split()[0] == "one" and listing[1].split()[3:5] == ["100.0", "KiB"]
    assert drop_kernel_caches() or os.geteuid() != 0
    assert (mounted.snap("one") / "f").read_bytes() == data
    snapfs("snapshot", "rename", m, "one", "two")
    assert not mounted.snap("one").exists()
    assert (mounted.snap("two") / "f").read_bytes() == data
    free = os.statvfs(m).f_bfree
    assert snapfs("snapshot", "delete", m, "two").stdout == "deleted snapshot two (100.0 KiB freed)\n"
    assert not mounted.snap("two").exists()
    assert os.listdir(m / ".snapshot") == []
    assert os.statvfs(m).f_bfree == free + 25
    assert "live data" in snapfs("volume", "show", m).stdout
    assert "testvol" in snapfs("df", mounted.voldir).stdout


def test_space_held_by_each_of_three_snapshots_is_exact_and_freed_exactly(mounted: Mounted):
    """Blocks shared by neighbouring snapshots count for neither until one goes; each delete
    frees exactly what the list said that snapshot alone held."""
    m, bs = mounted.mnt, 4096

    def exclusive() -> dict[str, int]:
        rows = [r.split() for r in snapfs("snapshot", "list", m).stdout.splitlines()[1:]]
        return {r[0]: round(float(r[3]) * {"KiB": 1024}[r[4]]) // bs for r in rows}

    def delete(name: str) -> int:
        free = os.statvfs(m).f_bfree
        snapfs("snapshot", "delete", m, name)
        return os.statvfs(m).f_bfree - free

    def contents_survive(*names: str) -> bool:
        """The remaining snapshots still read their own version of ``a`` (from the daemon)."""
        assert drop_kernel_caches() or os.geteuid() != 0
        return all((mounted.snap(n) / "a").read_bytes() == versions[n] for n in names)

    v1 = os.urandom(10 * bs)
    (m / "a").write_bytes(v1)
    snapfs("snapshot", "create", m, "s1")
    with open(m / "a", "r+b") as f:
        f.write(b"1" * 2 * bs)  # s1 alone keeps blocks 0-1 of the first version
    snapfs("snapshot", "create", m, "s2")
    with open(m / "a", "r+b") as f:
        f.write(b"2" * 3 * bs)  # s2 alone keeps 0-1 of the second; s1 and s2 share block 2
    snapfs("snapshot", "create", m, "s3")
    os.unlink(m / "a")  # s3 alone keeps 0-2 of the third; all three share 3-9
    versions = {"s1": v1, "s2": b"1" * 2 * bs + v1[2 * bs:], "s3": b"2" * 3 * bs + v1[3 * bs:]}
    assert exclusive() == {"s1": 2, "s2": 2, "s3": 3}
    s = os.statvfs(m)
    assert s.f_blocks - s.f_bfree == 2 + 2 + 1 + 3 + 7
    assert delete("s2") == 2
    assert exclusive() == {"s1": 3, "s3": 3}
    assert contents_survive("s1", "s3")
    assert delete("s3") == 3
    assert exclusive() == {"s1": 10}
    assert contents_survive("s1")
    assert delete("s1") == 10
    s = os.statvfs(m)
    assert s.f_bfree == s.f_blocks


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


def test_a_request_interrupted_before_its_answer_leaves_the_next_one_its_own(mounted: Mounted, monkeypatch):
    """^C between a request and its answer: the next request on the client (a dump's
    release and delete on its way out) gets its own answer, on a new channel."""
    from snapfs import control

    interrupts = [True]

    class Channel:  # the socket's file, interrupted once while the answer is awaited
        def __init__(self, file):
            self.file = file

        def write(self, data):
            return self.file.write(data)

        def flush(self):
            self.file.flush()

        def readline(self):
            if interrupts:
                interrupts.pop()
                raise KeyboardInterrupt
            return self.file.readline()

        def close(self):
            self.file.close()

    class Socket(socket.socket):
        def makefile(self, mode):
            return Channel(super().makefile(mode))

    connect = control.connect

    def interrupting(voldir, *args):
        sock = connect(voldir, *args)
        timeout = sock.gettimeout()
        sock = Socket(sock.family, sock.type, fileno=sock.detach())
        sock.settimeout(timeout)
        return sock

    monkeypatch.setattr(control, "connect", interrupting)
    with client.open_volume(mounted.mnt) as c:
        with pytest.raises(KeyboardInterrupt):
            c.snapshot_create("made")  # made by the daemon; its answer is never read
        assert [s.name for s in c.snapshot_list()] == ["made"]
        c.snapshot_hold("made", "dump-1")
        assert c.snapshot_list()[0].holders == ("dump-1",)
        c.snapshot_release("made", "dump-1")
        c.snapshot_delete("made")
        assert c.snapshot_list() == []
