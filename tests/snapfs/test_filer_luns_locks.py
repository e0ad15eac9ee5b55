"""LUNs, LUN clones and persistent locks on a real mount (issue 12, part C).  Each is made
with the snapfs command, seen with ordinary tools, kept in a snapshot (LUN records) or
across a remount and fsck (both), and its bad input refused with one line; mandatory
locks and deny modes are enforced across processes acting as different owners."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from fuse_fixtures import Mounted, force_unmount, make_mount, mounted, snapfs  # noqa: F401 (a fixture)

from snapfs import SnapfsError, Volume, client, fsck_path
from snapfs.luns import write_pad_blocks
from snapfs.reader import open_snapshot

pytestmark = pytest.mark.fuse
MiB = 1 << 20


def _run(*cmd: str | os.PathLike, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(map(str, cmd)), capture_output=True, text=True, timeout=60, input=input)


def _xattrs(path: Path) -> str:
    r = _run("getfattr", "-d", "-m", "-", "--absolute-names", path)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _one_line_error(r: subprocess.CompletedProcess, code: int, *words: str, prefix: str = "snapfs: ") -> None:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), r.stderr
    for w in words:
        assert w in lines[0], lines[0]


def _remount(m: Mounted) -> None:
    snapfs("unmount", m.mnt)
    report = fsck_path(m.voldir)
    assert report.clean, report.problems
    snapfs("mount", m.voldir, m.mnt, "-o", "allow_other")


def _dd(dst: Path, mib: int, seek_mib: int = 0, src: str = "/dev/urandom") -> None:
    r = _run("dd", f"if={src}", f"of={dst}", "bs=1M", f"count={mib}", f"seek={seek_mib}", "conv=notrunc,fsync")
    assert r.returncode == 0, r.stderr


def _as(mnt: Path, owner: str, *cmd: str | os.PathLike, restore: bool = False) -> subprocess.CompletedProcess:
    flag = ["--restore"] if restore else []
    return snapfs("restrict", "exec", mnt, "--owner", owner, *flag, "--", *map(str, cmd), check=False)


# ---------------------------------------------------------------------- LUNs

def test_lun_made_seen_kept_in_a_snapshot_and_refused_when_bad(mounted):
    mnt = mounted.mnt
    snapfs("qtree", "create", mnt, "q1")
    (mnt / "d").mkdir()
    out = snapfs("lun", "create", mnt, "lun0", "--size", "4M", "--ostype", "linux").stdout
    assert out.startswith("created LUN lun0: 4194304 bytes, linux, serial ") and "space reserve enabled" in out
    snapfs("lun", "create", mnt, "q1/lun1", "--size", "2M", "--ostype", "windows_gpt", "--space-reserve", "disabled")
    # ordinary tools: a regular file of the LUN's size, its record an xattr
    assert _run("ls", "-l", mnt / "lun0").stdout.split()[4] == "4194304"
    assert _run("stat", "-c", "%F %s", mnt / "q1" / "lun1").stdout.strip() == "regular file 2097152"
    x = _xattrs(mnt / "lun0")
    assert 'trusted.snapfs.lun="serial=' in x and "ostype=linux;size=4194304;space-reserve=enabled;state=online" in x
    rows = snapfs("lun", "list", mnt).stdout.splitlines()[1:]
    assert [r.split()[:3] for r in rows] == [["lun0", "4194304", "linux"], ["q1/lun1", "2097152", "windows_gpt"]]
    show = dict(line.split(":", 1) for line in snapfs("lun", "show", mnt, "lun0").stdout.splitlines())
    serial = show["serial"].strip()
    assert len(serial) == 12 and show["naa id"].strip() == "naa.60a98000" + serial.encode().hex()
    _dd(mnt / "lun0", 1)
    data = (mnt / "lun0").read_bytes()
    # bad input: one line each
    _one_line_error(snapfs("lun", "create", mnt, "d/x", "--size", "1M", "--ostype", "linux", check=False), 1,
                    "at the root of the volume or of a qtree")
    _one_line_error(snapfs("lun", "create", mnt, "x", "--size", "1M", "--ostype", "dos", check=False), 1,
                    "unknown LUN ostype 'dos'")
    _one_line_error(snapfs("lun", "create", mnt, "_x", "--size", "1M", "--ostype", "linux", check=False), 1,
                    "bad LUN name '_x'")
    _one_line_error(snapfs("lun", "create", mnt, "y", "--ostype", "linux", check=False), 2, "--size")
    _one_line_error(snapfs("lun", "resize", mnt, "d", "--size", "1M", check=False), 1, "'d' is not a LUN")
    _one_line_error(_run("truncate", "-s", "1M", mnt / "lun0"), 1, "Operation not permitted", prefix="truncate: ")
    r = _run("dd", "if=/dev/zero", f"of={mnt / 'lun0'}", "bs=1M", "count=1", "seek=4", "conv=notrunc")
    assert r.returncode == 1 and "File too large" in r.stderr  # past the LUN's end
    assert (mnt / "lun0").stat().st_size == 4 * MiB
    # a snapshot keeps the record and the data as they were
    snapfs("snapshot", "create", mnt, "s1")
    snapfs("lun", "resize", mnt, "lun0", "--size", "8M")
    snapfs("lun", "modify", mnt, "lun0", "--state", "inconsistent")
    _dd(mnt / "lun0", 1)
    assert (mnt / "lun0").stat().st_size == 8 * MiB
    assert "size=8388608;space-reserve=enabled;state=inconsistent" in _xattrs(mnt / "lun0")
    old = mounted.snap("s1") / "lun0"
    assert old.stat().st_size == 4 * MiB and old.read_bytes() == data
    assert "size=4194304;space-reserve=enabled;state=online" in _xattrs(old)
    snapfs("snapshot", "create", mnt, "s2")
    with client.open_volume(mnt) as c:
        for s in ("s1", "s2"):
            c.snapshot_hold(s, "test")
        ino = (mnt / "lun0").stat().st_ino
        with open_snapshot(mnt, "s1") as r1, open_snapshot(mnt, "s2") as r2:
            assert r1.lun(ino).state == "online" and r2.lun(ino).state == "inconsistent"
            assert r1.lun(ino).serial == serial and r1.read(ino, 0, 4 * MiB) == data
            assert r1.lun(1) is None
        for s in ("s1", "s2"):
            c.snapshot_release(s, "test")
    _remount(mounted)
    assert [r.split()[0] for r in snapfs("lun", "list", mnt).stdout.splitlines()[1:]] == ["lun0", "q1/lun1"]
    _one_line_error(_run("truncate", "-s", "0", mnt / "lun0"), 1, "Operation not permitted", prefix="truncate: ")
    r = _run("mv", mnt / "lun0", mnt / "d" / "lun0")
    assert r.returncode == 1 and "Operation not permitted" in r.stderr  # a LUN stays at a root
    r = _run("ln", mnt / "lun0", mnt / "d" / "lun0")
    assert r.returncode == 1 and "Operation not permitted" in r.stderr
    assert snapfs("lun", "delete", mnt, "lun0").stdout.strip() == "deleted LUN lun0"
    assert not (mnt / "lun0").exists() and (mounted.snap("s1") / "lun0").exists()


def test_lun_clone_reads_its_snapshot_occupies_only_what_changed_and_splits(mounted):
    mnt = mounted.mnt
    snapfs("lun", "create", mnt, "lun0", "--size", "16M", "--ostype", "vmware", "--space-reserve", "disabled")
    _dd(mnt / "lun0", 16)
    base = (mnt / "lun0").read_bytes()
    snapfs("snapshot", "create", mnt, "base")
    with client.open_volume(mnt) as c:
        used0 = c.info().used
        clone = c.lun_clone("base", "lun0", "clone0")
        assert c.info().used == used0  # the clone shares the snapshot's blocks
        assert clone.used == 0 and clone.backing_snapshot == "base" and clone.backing_path == "lun0"
        assert (mnt / "clone0").read_bytes() == base
        # 4 MiB written to the parent: the snapshot alone now holds those 4 MiB
        _dd(mnt / "lun0", 4, seek_mib=2)
        snap = {s.name: s for s in c.snapshot_list()}["base"]
        assert snap.exclusive_bytes == 4 * MiB and snap.holders == (f"lun-clone:{clone.serial}",)
        assert (mnt / "clone0").read_bytes() == base
        # 1 MiB written to the clone, half a block at an odd offset too: it holds only those blocks
        _dd(mnt / "clone0", 1, seek_mib=8)
        with open(mnt / "clone0", "r+b") as f:
            f.seek(100)
            f.write(b"hello")
        expect = bytearray(base)
        expect[100:105] = b"hello"
        expect[8 * MiB:9 * MiB] = (mnt / "clone0").read_bytes()[8 * MiB:9 * MiB]
        assert (mnt / "clone0").read_bytes() == bytes(expect)
        assert c.lun_show("clone0").used == MiB + 4096
        assert c.info().used == used0 + 4 * MiB + MiB + 4096
    listing = snapfs("snapshot", "list", mnt).stdout
    assert f"lun-clone:{clone.serial}" in listing and "4.0 MiB" in listing
    _one_line_error(snapfs("snapshot", "delete", mnt, "base", check=False), 1,
                    f"held by lun-clone:{clone.serial}")
    # a snapshot of the clone reads through to the base snapshot too
    snapfs("snapshot", "create", mnt, "later")
    assert (mounted.snap("later") / "clone0").read_bytes() == bytes(expect)
    snapfs("snapshot", "delete", mnt, "later")
    _remount(mounted)
    assert (mnt / "clone0").read_bytes() == bytes(expect)
    out = snapfs("lun", "split", mnt, "clone0").stdout
    assert out.startswith("split LUN clone0 from its snapshot (16777216 bytes its own)")
    assert f"lun-clone:{clone.serial}" not in snapfs("snapshot", "list", mnt).stdout
    snapfs("snapshot", "delete", mnt, "base")
    assert (mnt / "clone0").read_bytes() == bytes(expect)
    _one_line_error(snapfs("lun", "split", mnt, "clone0", check=False), 1, "is not a clone")
    _one_line_error(snapfs("lun", "clone", mnt, "nope", "lun0", "c2", check=False), 1, "no snapshot named 'nope'")


def test_reserved_lun_keeps_its_blocks_from_other_files(tmp_path):
    m = make_mount(tmp_path, size="20M")
    try:
        mnt = m.mnt
        free0 = os.statvfs(mnt).f_bavail
        snapfs("lun", "create", mnt, "lun0", "--size", "8M", "--ostype", "linux")
        # taken at create, with room for one write in flight (blocks are never overwritten in place)
        assert free0 - os.statvfs(mnt).f_bavail == 8 * MiB // 4096 + write_pad_blocks(4096)
        r = _run("dd", "if=/dev/zero", f"of={mnt / 'fill'}", "bs=1M", "count=20", "conv=fsync")
        assert r.returncode == 1 and "No space left on device" in r.stderr
        _dd(mnt / "lun0", 8, src="/dev/zero")  # the LUN still gets every block
        _dd(mnt / "lun0", 8)  # and overwrites them all
        _one_line_error(snapfs("lun", "create", mnt, "lun1", "--size", "4M", "--ostype", "linux", check=False), 1,
                        "cannot reserve 4194304 bytes")
        _one_line_error(snapfs("snapshot", "create", mnt, "s1", check=False), 1,
                        f"space-reserved LUNs would need {8 * MiB + write_pad_blocks(4096) * 4096} bytes free")
        (mnt / "fill").unlink()
        snapfs("snapshot", "create", mnt, "s1")
        _dd(mnt / "lun0", 8)  # after the snapshot, overwriting every block still fits
    finally:
        force_unmount(m.mnt)
    assert fsck_path(m.voldir).clean


# ---------------------------------------------------------------------- locks

def test_locks_enforced_across_owners_bypassed_by_the_restorer_and_kept(mounted):
    mnt = mounted.mnt
    for name in ("f", "g", "h"):
        (mnt / name).write_text(f"data of {name}\n" * 20)
    out = snapfs("lock", "add", mnt, "f", "--type", "mandatory", "--owner", "alice", "--range", "0:100").stdout
    assert out.strip() == "lock 1 on f: mandatory, owner alice, range 0:100, deny-none"
    snapfs("lock", "add", mnt, "g", "--type", "advisory", "--owner", "alice", "--share", "deny-write")
    snapfs("lock", "add", mnt, "h", "--type", "advisory", "--owner", "carol", "--share", "deny-read")
    snapfs("lock", "add", mnt, "h", "--type", "advisory", "--owner", "dave")  # only listed
    rows = [r.split() for r in snapfs("lock", "list", mnt).stdout.splitlines()[1:]]
    assert [r[1:5] for r in rows] == [["f", "mandatory", "alice", "0:100"], ["g", "advisory", "alice", "0:eof"],
                                      ["h", "advisory", "carol", "0:eof"], ["h", "advisory", "dave", "0:eof"]]
    assert 'trusted.snapfs.locks="1 mandatory owner=alice range=0:100 share=deny-none"' in _xattrs(mnt / "f")
    # the owner reads and writes while another process, as bob, is refused
    holder = subprocess.Popen([sys.executable, "-m", "snapfs.cli.main", "restrict", "exec", str(mnt), "--owner",
                               "alice", "--", sys.executable, "-c",
                               "import sys; f = open(sys.argv[1], 'r+'); f.write('ALICE'); f.flush();"
                               " print(f.read(10), flush=True); sys.stdin.readline()", str(mnt / "f")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "of f"
        r = _as(mnt, "bob", "cat", mnt / "f")
        assert r.returncode == 1 and "Resource temporarily unavailable" in r.stderr
        r = subprocess.run([sys.executable, "-m", "snapfs.cli.main", "restrict", "exec", str(mnt), "--owner", "bob",
                            "--", "dd", f"of={mnt / 'f'}", "bs=1", "seek=200", "conv=notrunc"], input="xyz",
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr  # a write outside the locked range is let through
        _one_line_error(_as(mnt, "bob", "truncate", "-s", "0", mnt / "f"), 1, "Resource temporarily unavailable",
                        prefix="truncate: ")
        r = _as(mnt, "bob", "rm", "-f", mnt / "f")
        assert r.returncode == 1 and "Permission denied" in r.stderr
        assert _run("cat", mnt / "f").returncode == 1  # nobody's process is another owner too
    finally:
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(timeout=30)
    assert holder.returncode == 0
    # deny modes: deny-write lets bob read g, not write it; deny-read keeps him from reading h
    assert _as(mnt, "bob", "cat", mnt / "g").returncode == 0
    r = _as(mnt, "bob", "sh", "-c", f"echo x >> {mnt / 'g'}")
    assert r.returncode != 0 and "Permission denied" in r.stderr
    assert _as(mnt, "bob", "cat", mnt / "h").returncode == 1
    assert _as(mnt, "carol", "cat", mnt / "h").returncode == 0
    # the restoring owner ignores every lock
    assert _as(mnt, "restore-1", "cat", mnt / "f", restore=True).stdout.startswith("ALICE")
    assert _as(mnt, "restore-1", "cat", mnt / "h", restore=True).returncode == 0
    assert _as(mnt, "restore-1", "sh", "-c", f"echo restored > {mnt / 'g'}", restore=True).returncode == 0
    # a conflicting lock is refused; bad input too
    _one_line_error(snapfs("lock", "add", mnt, "f", "--type", "mandatory", "--owner", "bob", "--range", "50:10",
                           check=False), 1, "lock conflict: 'f' bytes 0:100 are locked (mandatory) by owner 'alice'")
    _one_line_error(snapfs("lock", "add", mnt, "f", "--type", "advisory", "--owner", "bob", "--range", "x",
                           check=False), 1, "bad lock range 'x'")
    _one_line_error(snapfs("lock", "add", mnt, "f", "--type", "mandatory", check=False), 2, "--owner")
    # locks are live state: the snapshot's file is free to read; they persist across a remount
    snapfs("snapshot", "create", mnt, "s1")
    assert (mounted.snap("s1") / "h").read_text().startswith("data of h")
    _remount(mounted)
    assert len(snapfs("lock", "list", mnt).stdout.splitlines()) == 5
    assert _run("cat", mnt / "f").returncode == 1
    (mnt / "x").write_text("x")
    r = _run("mv", mnt / "x", mnt / "f")  # replacing a locked file is unlinking it
    assert r.returncode == 1 and "Permission denied" in r.stderr
    assert snapfs("lock", "break", mnt, "f", "--owner", "alice").stdout.strip() == "broke 1 lock"
    assert _run("cat", mnt / "f").stdout.startswith("ALICE")
    _one_line_error(snapfs("lock", "break", mnt, "f", check=False), 1, "no such lock on 'f'")
    (mnt / "h").unlink()  # carol's deny-read does not stop an unlink; the locks go with the file
    assert [r.split()[1] for r in snapfs("lock", "list", mnt).stdout.splitlines()[1:]] == ["g"]


def test_posix_fcntl_and_flock_locks_work_through_the_mount(mounted):
    f = mounted.mnt / "f"
    f.write_text("x" * 100)
    code = ("import fcntl, sys, time; f = open(sys.argv[1], 'r+'); fcntl.{}; print('held', flush=True);"
            " sys.stdin.readline()")
    try_code = ("import fcntl, sys; f = open(sys.argv[1], 'r+')\ntry:\n fcntl.{}\n print('got')\n"
                "except BlockingIOError:\n print('busy')")
    for lock, attempt in (("flock(f, fcntl.LOCK_EX)", "flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)"),
                          ("lockf(f, fcntl.LOCK_EX, 10, 0)", "lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 5)")):
        p = subprocess.Popen([sys.executable, "-c", code.format(lock), str(f)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        try:
            assert p.stdout.readline().strip() == "held"
            assert _run(sys.executable, "-c", try_code.format(attempt), f).stdout.strip() == "busy"
        finally:
            p.stdin.write("\n")
            p.stdin.close()
            p.wait(timeout=30)
        assert _run(sys.executable, "-c", try_code.format(attempt), f).stdout.strip() == "got"


# ---------------------------------------------------------------------- fsck and the schema

def test_fsck_checks_luns_clone_holds_and_locks(tmp_path):
    voldir = tmp_path / "v"
    with Volume.create(voldir, 1 << 24, 100, block_size=4096) as v:
        a = v.lun_create("a", MiB, "linux", "disabled")
        b = v.lun_create("b", MiB, "xen", "disabled")
        v.write(a.ino, 0, b"a" * 8192)
        v.snapshot_create("s")
        c = v.lun_clone("s", "a", "c")
        f = v.create_file(1, "f")
        v.lock_add("f", "mandatory", "alice")
        v.lock_add("a", "advisory", "bob", 0, 10, "deny-write")
        v.unlink(1, "f")  # its lock goes with it
        assert [lk.path for lk in v.lock_list()] == ["a"]
        with v.tables.txn():  # damage: a duplicate serial, a wrong size, a lost hold, a lock of no file
            v.db.execute("UPDATE xattrs SET value = replace(CAST(value AS TEXT), ?, ?) WHERE ino = ? AND name = ?",
                         (b.serial, a.serial, b.ino, b"trusted.snapfs.lun"))
            v.db.execute("UPDATE xattrs SET value = CAST(replace(CAST(value AS TEXT), 'size=1048576', 'size=7')"
                         " AS BLOB) WHERE ino = ? AND name = ?", (b.ino, b"trusted.snapfs.lun"))
            v.db.execute("DELETE FROM holds")
            v.db.execute("INSERT INTO locks (ino, owner, type, start, length, share) VALUES (?, 'x', 'mandatory',"
                         " 0, 0, 'deny-none')", (f.ino,))
    rep = fsck_path(voldir)
    text = "\n".join(rep.problems)
    assert f"LUN serial {a.serial} is used by inodes {a.ino} and {b.ino}" in text
    assert "is 1048576 bytes, its record says 7" in text
    assert f"not held for LUN clone {c.serial}" in text
    assert f"names inode {f.ino}, which is no live file" in text
    assert len(rep.problems) == 4 and rep.status == 4
    assert len(fsck_path(voldir, repair=True).repaired) == 4
    assert fsck_path(voldir).clean
    with Volume.open(voldir) as v:
        assert len({x.serial for x in v.lun_list()}) == 3 and v.lun_show("b").size == MiB
        assert v.snapshot_info("s").holders == (f"lun-clone:{c.serial}",)
        assert v.read(c.ino, 0, 4) == b"aaaa" and [lk.path for lk in v.lock_list()] == ["a"]


def test_a_version_4_volume_gets_the_locks_table_at_open(tmp_path):
    """Schema version 5 (issue 12, part C) adds the locks; an older volume gets them."""
    voldir = tmp_path / "v"
    Volume.create(voldir, 1 << 22, 10, block_size=4096).close()
    db = sqlite3.connect(voldir / "snapfs.db")
    db.executescript("DROP TABLE locks; PRAGMA user_version = 4;")
    db.close()
    with Volume.open(voldir) as v:
        v.create_file(1, "f")
        assert v.lock_add("f", "advisory", "o").id == 1
        assert v.db.execute("PRAGMA user_version").fetchone()[0] == 7  # (the current version)


def test_a_clone_holds_its_snapshot_while_any_version_of_it_reads_from_it(tmp_path):
    with Volume.create(tmp_path / "v", 1 << 24, 100, block_size=4096) as v:
        a = v.lun_create("a", MiB, "linux", "disabled")
        v.write(a.ino, 0, b"a" * MiB)
        v.snapshot_create("s")
        v.lun_clone("s", "a", "c1")
        c2 = v.lun_clone("s", "a", "c2")
        v.lun_delete("c1")  # no snapshot saw c1: its hold goes with it
        assert len(v.snapshot_info("s").holders) == 1
        v.write(c2.ino, 0, b"b" * 4096)
        v.snapshot_create("t")  # t sees c2 reading from s
        v.lun_delete("c2")
        assert v.snapshot_info("s").holders == (f"lun-clone:{c2.serial}",)
        with pytest.raises(SnapfsError) as e:
            v.snapshot_delete("s")
        assert "held by lun-clone:" in str(e.value)
        t = v.snapshot_id("t")
        assert v.read(c2.ino, 0, 4096, t) == b"b" * 4096 and v.read(c2.ino, 4096, 4, t) == b"aaaa"
        with pytest.raises(SnapfsError):
            v.lun_resize("c3", MiB)  # no such LUN yet
        v.lun_clone("s", "a", "c3")
        with pytest.raises(SnapfsError) as e:
            v.lun_resize("c3", MiB // 2)
        assert "split it" in str(e.value)
        v.lun_delete("c3")
        v.snapshot_delete("t")  # the last version of c2 goes: s is free
        assert v.snapshot_info("s").holders == ()
        v.snapshot_delete("s")
        assert v.read(a.ino, 0, 4) == b"aaaa"
