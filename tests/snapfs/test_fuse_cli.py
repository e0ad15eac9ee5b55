"""The snapfs commands run for real: a volume made by ``snapfs create``, mounted in the
background and in the foreground, and every figure ``df``, ``volume show`` and
``snapshot list`` print checked exactly against statfs and the bytes written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fuse_fixtures import SNAPFS, force_unmount, snapfs, wait_released

from snapfs import client, fsck_path

pytestmark = pytest.mark.fuse

MiB = 1 << 20
BS = 4096  # snapfs create's default block size


def _numbers(show: str) -> dict[str, str]:
    """``volume show`` as {label: value}, the exact figure where one is in parentheses."""
    out = {}
    for line in show.splitlines():
        label, _, value = line.partition(":")
        value = value.strip()
        if value.endswith(")") and "(" in value and "pid" not in value:
            value = value[value.rindex("(") + 1:-1]
        out[label] = value
    return out


def test_created_volume_mounts_with_exact_figures_everywhere(tmp_path: Path):
    voldir, mnt = tmp_path / "vd", tmp_path / "mnt"
    mnt.mkdir()
    r = snapfs("create", voldir, "--size", "100M", "--inodes", "500", "--name", "v1")
    assert r.stdout == f"created volume v1 in {voldir}: 100.0 MiB, 500 inodes\n"
    snapfs("mount", voldir, mnt)
    try:
        s = os.statvfs(mnt)
        assert (s.f_frsize, s.f_blocks * s.f_frsize, s.f_bfree, s.f_bavail) == (BS, 100 * MiB, s.f_blocks, s.f_blocks)
        assert (s.f_files, s.f_ffree, s.f_favail) == (500, 499, 499)  # the root is an inode
        (mnt / "d").mkdir()
        a = os.urandom(10 * BS)
        (mnt / "a").write_bytes(a)
        (mnt / "d" / "b").write_bytes(b"1")
        os.symlink("a", mnt / "l")
        s = os.statvfs(mnt)
        assert (s.f_bfree, s.f_ffree) == (s.f_blocks - 11, 500 - 5)

        t0 = time.time()
        snapfs("snapshot", "create", mnt, "s1")
        t1 = time.time()
        with open(mnt / "a", "r+b") as f:  # three whole blocks rewritten: the snapshot alone keeps the old ones
            f.seek(2 * BS)
            f.write(b"z" * 3 * BS)
        s = os.statvfs(mnt)
        assert s.f_bfree == s.f_blocks - 14
        used, avail = (s.f_blocks - s.f_bfree) * BS, s.f_bavail * BS

        header, row = snapfs("snapshot", "list", mnt).stdout.splitlines()
        assert header.split() == ["NAME", "CREATED", "EXCLUSIVE", "HOLDERS"]
        name, day, clock, excl, unit = row.split()
        assert (name, excl, unit) == ("s1", "12.0", "KiB")
        created = time.mktime(time.strptime(f"{day} {clock}", "%Y-%m-%d %H:%M:%S"))
        assert int(t0) - 1 <= created <= t1 + 1
        snapfs("snapshot", "hold", mnt, "s1", "dump-1")
        assert snapfs("snapshot", "list", voldir).stdout.splitlines()[1].split()[3:] == ["12.0", "KiB", "dump-1"]
        snapfs("snapshot", "release", mnt, "s1", "dump-1")

        header, row = snapfs("df", mnt).stdout.splitlines()
        assert header.split() == ["Volume", "Size", "Used", "Avail", "Use%", "Snapshots", "Inodes", "IUsed", "IFree"]
        assert used == 56 * 1024 and avail == 100 * MiB - used
        assert row.split() == ["v1", "100.0", "MiB", "56.0", "KiB", "99.9", "MiB", "1%", "12.0", "KiB",
                               "500", "5", "495"]
        pcent = subprocess.run(["df", "--output=pcent", str(mnt)], capture_output=True, text=True, check=True)
        assert pcent.stdout.split()[-1] == "1%"  # df(1) rounds up too
        assert snapfs("df", voldir).stdout == snapfs("df", mnt).stdout

        with client.open_volume(mnt) as c:
            pid = c.info().pid
            uuid = c.volume_identity().uuid
        show = _numbers(snapfs("volume", "show", mnt).stdout)
        assert show == {
            "name": "v1", "path": str(voldir), "mounted on": f"{mnt} (pid {pid})", "block size": str(BS),
            "size": str(s.f_blocks * BS), "used": str(used), "available": str(avail),
            "live data": str(11 * BS), "snapshot space": str(3 * BS), "snapshots": "1",
            "inodes used": str(s.f_files - s.f_ffree), "inodes free": str(s.f_ffree),
            "uuid": uuid, "type": "rw", "generation": "1", "security style": "unix", "aggregate": "aggr0",
        }
        assert (mnt / "a").read_bytes() == a[:2 * BS] + b"z" * 3 * BS + a[5 * BS:]
        assert (mnt / ".snapshot" / "s1" / "a").read_bytes() == a
    finally:
        force_unmount(mnt)
    assert fsck_path(voldir).clean


def _popen_foreground(voldir: Path, mnt: Path) -> subprocess.Popen:
    proc = subprocess.Popen([SNAPFS, "mount", "--foreground", str(voldir), str(mnt)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not os.path.ismount(mnt):
        assert proc.poll() is None, f"snapfs mount --foreground exited {proc.returncode}: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "the foreground mount never became usable"
        time.sleep(0.02)
    return proc


@pytest.mark.parametrize("stop", ["unmount", "SIGTERM"])
def test_foreground_mount_serves_until_unmounted_or_terminated(tmp_path: Path, stop: str):
    """The foreground process is the daemon; ``snapfs unmount`` or SIGTERM ends it with status 0,
    the volume closed and consistent."""
    voldir, mnt = tmp_path / "vd", tmp_path / "mnt"
    mnt.mkdir()
    snapfs("create", voldir, "--size", "10M", "--inodes", "50")
    proc = _popen_foreground(voldir, mnt)
    try:
        with client.open_volume(mnt) as c:
            assert c.info().pid == proc.pid
        (mnt / "f").write_bytes(b"served in the foreground")
        if stop == "unmount":
            snapfs("unmount", mnt)
        else:
            proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        assert (proc.returncode, out, err) == (0, "", "")
        assert not os.path.ismount(mnt)
        assert wait_released(voldir)
        assert fsck_path(voldir).clean
        proc = _popen_foreground(voldir, mnt)
        assert (mnt / "f").read_bytes() == b"served in the foreground"
    finally:
        force_unmount(mnt)
        proc.wait(timeout=20)


RACER = r"""
import sys
from snapfs import client
with client.open_volume(sys.argv[1]) as c:
    print("ready", flush=True)
    sys.stdin.readline()
    print(c.snapshot_create().name)
"""


def test_backup_snapshots_from_four_processes_at_once_get_distinct_numbers(tmp_path: Path):
    voldir, mnt = tmp_path / "vd", tmp_path / "mnt"
    mnt.mkdir()
    snapfs("create", voldir, "--size", "10M")
    snapfs("mount", voldir, mnt)
    try:
        racers = [subprocess.Popen([sys.executable, "-c", RACER, str(mnt)], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True) for _ in range(4)]
        assert [p.stdout.readline() for p in racers] == ["ready\n"] * 4  # all connected
        for p in racers:
            p.stdin.write("go\n")
            p.stdin.flush()
        names = [p.communicate(timeout=30)[0].strip() for p in racers]
        assert [p.returncode for p in racers] == [0] * 4
        assert sorted(names) == [f"snapshot_for_backup.{n}" for n in range(4)]
        assert sorted(os.listdir(mnt / ".snapshot")) == sorted(names)
    finally:
        force_unmount(mnt)
