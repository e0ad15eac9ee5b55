"""Fixtures for the FUSE tests: a volume mounted for real under tmp_path.

The mount always goes away in teardown, even when the test failed: ``snapfs
unmount`` first, ``fusermount3 -u -z`` as the last resort.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from snapfs import Volume, fsck_path
from snapfs.cli.main import parse_size
from snapfs.volume import LOCK_FILE

SNAPFS = str(Path(sys.executable).parent / "snapfs")
NOBODY = 65534


def snapfs(*args: str | os.PathLike, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run the snapfs command; with ``check``, fail the test on a non-zero exit."""
    r = subprocess.run([SNAPFS, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    if check:
        assert r.returncode == 0, f"snapfs {' '.join(map(str, args))}: {r.stderr}"
    return r


def refused(*args: str | os.PathLike, match: str) -> str:
    """Run the snapfs command, which must fail in one stderr line (no traceback) saying ``match``."""
    r = snapfs(*args, check=False)
    assert r.returncode != 0, r.stdout
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert match in r.stderr, r.stderr
    return r.stderr


def as_nobody(cwd: Path, *cmd: str, check: bool = False) -> subprocess.CompletedProcess:
    """Run ``cmd`` in ``cwd`` as uid/gid 65534 with no supplementary groups.

    Use paths relative to ``cwd``: tmp_path's parents are not searchable by nobody.
    """
    return subprocess.run(["setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups", *cmd],
                          capture_output=True, text=True, timeout=30, check=check, cwd=cwd)


def drop_kernel_caches(page_cache: bool = True) -> bool:
    """Make the kernel forget its unused dentries and inodes, and its page cache unless
    told not to (root only): it sends FORGET for them, and later looks them up, asks for
    their attributes and reads their bytes afresh from the daemon.  Without the page
    cache it costs far less (the rest of the machine keeps its cached files).  False
    where that is not allowed."""
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3" if page_cache else "2")
    except OSError:
        return False
    return True


def wait_released(voldir: Path, timeout: float = 20) -> bool:
    """Wait until no process (a mount daemon) holds the volume's lock; False on timeout."""
    deadline = time.monotonic() + timeout
    with open(voldir / LOCK_FILE, "rb") as f:
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.02)
                continue
            fcntl.flock(f, fcntl.LOCK_UN)
            return True


@dataclass
class Mounted:
    voldir: Path
    mnt: Path

    def snap(self, name: str) -> Path:
        return self.mnt / ".snapshot" / name


def force_unmount(mnt: Path) -> None:
    if os.path.ismount(mnt):
        r = snapfs("unmount", mnt, check=False)
        if r.returncode != 0 and os.path.ismount(mnt):
            subprocess.run(["fusermount3", "-u", "-z", str(mnt)], capture_output=True)


def make_mount(tmp_path: Path, size: str = "64M", inodes: int = 1000, name: str = "vol") -> Mounted:
    voldir, mnt = tmp_path / name, tmp_path / f"{name}-mnt"
    mnt.mkdir()
    Volume.create(voldir, parse_size(size), inodes, name="testvol", block_size=4096).close()
    snapfs("mount", voldir, mnt, "-o", "allow_other")
    return Mounted(voldir, mnt)


def unmount_and_check(mounts: Iterable[Mounted], checked: Iterable[Mounted]) -> None:
    """Unmount every one of *mounts*; then fsck must find each volume of *checked* clean."""
    for m in mounts:
        force_unmount(m.mnt)
    for m in checked:
        report = fsck_path(m.voldir)
        assert report.clean, report.problems


@contextlib.contextmanager
def fsck_clean_after(m: Mounted) -> Iterator[Mounted]:
    """``m`` for the test; then it is unmounted (also when the test fails)
    and fsck must find the volume clean."""
    try:
        yield m
    finally:
        force_unmount(m.mnt)
    report = fsck_path(m.voldir)
    assert report.clean, report.problems


@pytest.fixture
def mounted(tmp_path: Path):
    """A 64 MiB volume with 4 KiB blocks and 1000 inodes, mounted with allow_other; fsck clean after unmount."""
    m = make_mount(tmp_path)
    os.chmod(m.mnt, 0o755)
    with fsck_clean_after(m):
        yield m


@pytest.fixture
def small_mount(tmp_path: Path):
    """A 1 MiB volume with 4 KiB blocks and 20 inodes, for running out of space; fsck clean after unmount."""
    with fsck_clean_after(make_mount(tmp_path, size="1M", inodes=20, name="small")) as m:
        yield m
