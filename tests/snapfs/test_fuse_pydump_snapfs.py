"""pydump on a snapfs mount (issue 13, backup side): it dumps snapshot_for_backup.N, made for
the dump (two dumps at once get two), held while it is read straight from the store and
deleted after, also when the dump fails or is killed by SIGTERM; --snapshot NAME dumps an
existing snapshot and makes none; the dump's date is the snapshot's creation time; a full
volume is refused with the volume's room advice; a directory not on snapfs is dumped live,
said once, and that works without snapfs installed."""

from __future__ import annotations

import filecmp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fuse_fixtures import Mounted, mounted, small_mount, snapfs  # noqa: F401 (fixtures)

from dumptool.format import TP_BSIZE
from dumptool.format.header import header_byte_order, unpack_header
from snapfs import client

pytestmark = pytest.mark.fuse

BIN = Path(sys.executable).parent
PYDUMP, PYRESTORE, RESTORE = str(BIN / "pydump"), str(BIN / "pyrestore"), "/sbin/restore"


def run(*cmd, cwd: Path | None = None, ok: bool = True, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([*map(str, cmd)], capture_output=True, cwd=cwd, stdin=subprocess.DEVNULL, timeout=120, **kw)
    if ok:
        assert r.returncode == 0, r.stderr.decode(errors="replace")
    return r


def build(m: Path) -> None:
    snapfs("qtree", "create", m, "qt")
    (m / "docs" / "deep").mkdir(parents=True)
    (m / "docs" / "a.txt").write_text("alpha\n" * 100)
    (m / "docs" / "deep" / "b.bin").write_bytes(os.urandom(300_000))  # bigger than a pipe's buffer
    with open(m / "docs" / "holey", "wb") as f:
        f.write(b"x" * 10)
        f.truncate(100_000)
    os.link(m / "docs" / "a.txt", m / "a-link.txt")
    os.symlink("docs/a.txt", m / "sym")
    os.setxattr(m / "docs" / "a.txt", "user.colour", b"blue")
    (m / "qt" / "q.txt").write_text("in the qtree\n")
    (m / "qt" / "sub").mkdir()
    (m / "qt" / "sub" / "r.txt").write_text("deeper\n")


def snapshots(m: Path) -> dict[str, tuple[str, ...]]:
    with client.open_volume(m) as c:
        return {s.name: s.holders for s in c.snapshot_list()}


def same_tree(a: Path, b: Path) -> None:
    """Same names, bytes, modes, mtimes and xattrs (restoresymtable aside)."""
    cmp = filecmp.dircmp(a, b, ignore=["restoresymtable"])
    assert not cmp.left_only and not cmp.right_only, (a, cmp.left_only, cmp.right_only)
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    assert not mismatch and not errors, (a, mismatch, errors)
    for name in cmp.common_files + cmp.common_dirs:
        sa, sb = os.lstat(a / name), os.lstat(b / name)
        assert (sa.st_mode, sa.st_mtime_ns // 1000) == (sb.st_mode, sb.st_mtime_ns // 1000), a / name
    for d in cmp.common_dirs:
        same_tree(a / d, b / d)


def header_date(image: Path) -> int:
    block = image.read_bytes()[:TP_BSIZE]
    return unpack_header(block, header_byte_order(block)).c_date


def restore_r(image: Path, out: Path, tmp: Path, real: bool = False) -> None:
    out.mkdir(exist_ok=True)
    scratch = tmp / f"rtmp-{time.monotonic_ns()}"
    scratch.mkdir()
    cmd = [RESTORE, "-r", "-y", "-f", image] if real else [PYRESTORE, "-r", "-y", "-f", image]
    run(*cmd, cwd=out, env=dict(os.environ, TMPDIR=str(scratch)))


def test_two_dumps_at_once_each_hold_their_own_snapshot_for_backup_gone_after(mounted: Mounted, tmp_path):
    m = mounted.mnt
    build(m)
    snapfs("snapshot", "create", m, "ref")
    # Output to a pipe nobody reads yet: each dump stops, holding its snapshot, at the pipe's end.
    dumps = [subprocess.Popen([PYDUMP, "-0", "-f", "-", str(m)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL) for _ in range(2)]
    try:
        deadline = time.monotonic() + 30
        while len([n for n in snapshots(m) if n.startswith("snapshot_for_backup.")]) < 2:
            assert time.monotonic() < deadline, snapshots(m)
            time.sleep(0.05)
        # the live tree changes; the dumps read their snapshots
        (m / "docs" / "a.txt").write_text("changed after the dumps began\n")
        (m / "late").write_text("too late\n")
        held = snapshots(m)
        assert held == {"ref": (), "snapshot_for_backup.0": held["snapshot_for_backup.0"],
                        "snapshot_for_backup.1": held["snapshot_for_backup.1"]}
        assert sorted(held["snapshot_for_backup.0"] + held["snapshot_for_backup.1"]) == \
            sorted(f"pydump-{d.pid}" for d in dumps)
        images = []
        for d in dumps:
            out, err = d.communicate(timeout=60)
            assert d.returncode == 0, err
            images.append(out)
    finally:
        for d in dumps:
            if d.poll() is None:
                d.kill()
                d.wait()
    assert snapshots(m) == {"ref": ()}  # released and deleted
    assert b"dumping snapshot snapshot_for_backup." in err and b"dumping a live file system" not in err
    for k, data in enumerate(images):
        (tmp_path / f"{k}.dump").write_bytes(data)
        restore_r(tmp_path / f"{k}.dump", tmp_path / f"out{k}", tmp_path, real=k == 1)
        same_tree(mounted.snap("ref"), tmp_path / f"out{k}")
    r = run(RESTORE, "-C", "-f", tmp_path / "0.dump", "-D", ".", cwd=mounted.snap("ref"), ok=False)
    assert r.returncode == 0, r.stdout + r.stderr


def test_dash_snapshot_dumps_that_snapshot_makes_none_and_dates_the_dump_by_it(mounted: Mounted, tmp_path):
    m = mounted.mnt
    build(m)
    snapfs("snapshot", "create", m, "nightly")
    created = next(s.created_ns for s in client.open_volume(m).snapshot_list() if s.name == "nightly")
    (m / "docs" / "a.txt").write_text("after nightly\n")
    time.sleep(1.05)
    image = tmp_path / "n.dump"
    r = run(PYDUMP, "-0", "--snapshot", "nightly", "-f", image, m / "qt")
    assert snapshots(m) == {"nightly": ()}  # nothing made, our hold gone, nightly kept
    assert header_date(image) == created // 1_000_000_000
    assert b"Dumping " + os.fsencode(m / "qt") in r.stderr
    restore_r(image, tmp_path / "out", tmp_path, real=True)
    same_tree(mounted.snap("nightly") / "qt", tmp_path / "out")


@pytest.mark.parametrize("scope", ["", "qt"])
def test_level_0_then_1_of_a_volume_and_a_qtree_restore_to_the_second_snapshot(mounted: Mounted, tmp_path, scope):
    m = mounted.mnt
    build(m)
    source = m / scope if scope else m
    dd = tmp_path / "dumpdates"
    run(PYDUMP, "-0", "-u", "-D", dd, "-f", tmp_path / "l0", source)
    time.sleep(1.05)
    (m / "qt" / "q.txt").write_text("second version\n")
    os.unlink(m / "qt" / "sub" / "r.txt")
    (m / "qt" / "new.txt").write_text("new\n")
    os.rename(m / "docs" / "a.txt", m / "docs" / "renamed.txt")
    snapfs("snapshot", "create", m, "ref")  # what the level 1 will see
    r = run(PYDUMP, "-1", "-u", "-D", dd, "-f", tmp_path / "l1", source)
    assert snapshots(m) == {"ref": ()}
    passes = [line for line in r.stderr.decode().splitlines() if "(Pass " in line]
    assert passes[0].endswith("mapping (Pass I+II) [regular files and directories]"), passes
    assert [line.split()[:2] for line in dd.read_text().splitlines()] == [[str(source), "0"], [str(source), "1"]]
    for real in (False, True):
        out = tmp_path / f"out-{real}"
        restore_r(tmp_path / "l0", out, tmp_path, real)
        restore_r(tmp_path / "l1", out, tmp_path, real)
        same_tree(mounted.snap("ref") / scope if scope else mounted.snap("ref"), out)


def test_an_inconsistent_lun_is_left_out_with_a_line_naming_it(mounted: Mounted, tmp_path):
    m = mounted.mnt
    snapfs("qtree", "create", m, "q")
    snapfs("lun", "create", m, "q/good", "--size", "1M", "--ostype", "linux")
    snapfs("lun", "create", m, "q/bad", "--size", "1M", "--ostype", "linux")
    snapfs("lun", "modify", m, "q/bad", "--state", "inconsistent")
    with open(m / "q" / "good", "r+b") as f:
        f.write(b"lun data")
    r = run(PYDUMP, "-0", "-f", tmp_path / "q.dump", m / "q")
    assert r.stderr.count(b"is inconsistent: not dumped") == 1
    assert f"warning: LUN {m}/q/bad is inconsistent: not dumped".encode() in r.stderr
    listing = run(RESTORE, "-t", "-f", tmp_path / "q.dump").stdout.decode()
    assert "./good" in listing and "bad" not in listing
    restore_r(tmp_path / "q.dump", tmp_path / "out", tmp_path, real=True)
    assert (tmp_path / "out" / "good").read_bytes()[:8] == b"lun data"


def test_a_full_volume_refuses_the_snapshot_with_its_room_advice(small_mount: Mounted, tmp_path):
    m = small_mount.mnt
    with open(m / "fill", "wb") as f:
        try:
            while True:
                f.write(os.urandom(64 * 1024))
                f.flush()
        except OSError:
            pass
    snapfs("snapshot", "create", m, "old")
    r = run(PYDUMP, "-0", "-f", tmp_path / "x.dump", m, ok=False)
    lines = r.stderr.decode().splitlines()
    assert r.returncode == 1 and len(lines) == 1, lines
    assert "the volume is full" in lines[0] and "to make room: grow the volume" in lines[0], lines[0]
    assert snapshots(m) == {"old": ()}


def test_sigterm_mid_dump_gives_the_snapshot_back(mounted: Mounted, tmp_path):
    m = mounted.mnt
    build(m)
    d = subprocess.Popen([PYDUMP, "-0", "-f", "-", str(m / "docs")], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while "snapshot_for_backup.0" not in snapshots(m):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.3)  # blocked on the pipe
        d.send_signal(signal.SIGTERM)
        d.stdout.close()
        err = d.stderr.read()
        assert d.wait(timeout=30) == 3, err
    finally:
        if d.poll() is None:
            d.kill()
            d.wait()
    assert snapshots(m) == {}
    assert b"Traceback" not in err


def test_a_snapshot_left_held_by_a_killed_dump_is_given_back_by_the_next(mounted: Mounted, tmp_path):
    m = mounted.mnt
    build(m)
    d = subprocess.Popen([PYDUMP, "-0", "-f", "-", str(m)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while "snapshot_for_backup.0" not in snapshots(m):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        d.kill()  # SIGKILL: nothing can give the snapshot back
        d.communicate()
    snapfs("snapshot", "create", m, "snapshot_for_backup.7")
    snapfs("snapshot", "hold", m, "snapshot_for_backup.7", "operator")  # not a dump's: kept
    assert snapshots(m) == {"snapshot_for_backup.0": (f"pydump-{d.pid}",), "snapshot_for_backup.7": ("operator",)}
    r = run(PYDUMP, "-0", "-f", tmp_path / "next.dump", m / "docs")
    assert f"deleted snapshot snapshot_for_backup.0 of {m}: pydump-{d.pid} held it and is gone".encode() in r.stderr
    assert snapshots(m) == {"snapshot_for_backup.7": ("operator",)}


def test_a_plain_directory_is_dumped_live_and_said_once_even_without_snapfs(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("plain\n")
    r = run(PYDUMP, "-0", "-f", tmp_path / "a.dump", src)
    assert r.stderr.decode().count("dumping a live file system: ") == 1
    hide = ("import sys; sys.modules['snapfs'] = None; from dumptool.cli.pydump import main; "
            f"sys.exit(main(['-0', '-f', {str(tmp_path / 'b.dump')!r}, {str(src)!r}]))")
    r = run(sys.executable, "-c", hide)
    assert b"dumping a live file system: " in r.stderr
    r = run(PYDUMP, "-0", "--snapshot", "x", "-f", tmp_path / "c.dump", src, ok=False)
    assert r.returncode == 1 and b"is not on a snapfs mount" in r.stderr


def test_a_mount_whose_daemon_died_is_refused_not_dumped_empty(tmp_path):
    """A stale mount (its daemon killed) still answers stat from the kernel's cache, but
    reading it fails: pydump must fail with one line and record no date (an empty level 0
    on record would make every later incremental miss the whole tree)."""
    from fuse_fixtures import force_unmount, make_mount

    m = make_mount(tmp_path)
    try:
        (m.mnt / "kept.txt").write_text("not to be lost\n")
        with client.open_volume(m.mnt) as c:
            pid = c.info().pid
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while True:  # the mount point stays, its daemon gone
            try:
                os.listdir(m.mnt)
            except OSError:
                break
            assert time.monotonic() < deadline, "the killed daemon's mount still answers"
            time.sleep(0.05)
        dates = tmp_path / "dumpdates"
        r = run(PYDUMP, "-0", "-u", "-D", dates, "-f", tmp_path / "stale.dump", m.mnt, ok=False)
        err = r.stderr.decode()
        assert r.returncode == 1, err
        assert f"cannot dump {m.mnt}: cannot read directory {m.mnt}: " in err, err
        assert "Traceback" not in err and "DUMP IS DONE" not in err
        assert not dates.exists() or not dates.read_text().strip()
    finally:
        subprocess.run(["fusermount3", "-u", "-z", str(m.mnt)], capture_output=True)
        force_unmount(m.mnt)
