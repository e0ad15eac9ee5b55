"""Crash safety: a mount daemon killed mid-write leaves a consistent volume."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time

import pytest
from fuse_fixtures import force_unmount, make_mount, snapfs, wait_released

from snapfs import client, fsck_path

pytestmark = pytest.mark.fuse

WRITER = r"""
import hashlib, os, sys
mnt, log = sys.argv[1], sys.argv[2]
os.mkdir(mnt)
tail, tail_hash, tail_len = os.path.join(mnt, "tail"), hashlib.sha256(), 0
with open(log, "a") as out:
    for i in range(100000):
        data = os.urandom(1000 + (i * 7919) % 60000)
        try:
            if i < 300:  # new files, every third fsync'ed
                path = os.path.join(mnt, f"f{i}")
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            else:  # then appends to one file
                path = tail
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.write(fd, data)
            if i % 3 == 0:
                os.fsync(fd)
                if path == tail:
                    tail_hash.update(data); tail_len += len(data)
                    out.write(f"{path} {tail_hash.hexdigest()} {tail_len}\n")
                else:
                    out.write(f"{path} {hashlib.sha256(data).hexdigest()} {len(data)}\n")
                out.flush()
            elif path == tail:
                tail_hash.update(data); tail_len += len(data)
            os.close(fd)
        except OSError:
            sys.exit(0)
"""


def test_sigkill_during_a_write_storm_leaves_a_consistent_volume(tmp_path):
    m = make_mount(tmp_path)
    try:
        with client.open_volume(m.mnt) as c:
            pid = c.info().pid
        log = tmp_path / "fsynced.log"
        writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(m.mnt / f"w{k}"), f"{log}{k}"])
                   for k in range(2)]
        time.sleep(1.5)
        os.kill(pid, signal.SIGKILL)
        for w in writers:
            w.wait(timeout=20)
        subprocess.run(["fusermount3", "-u", str(m.mnt)], check=True, capture_output=True)
        # the killed daemon's fds close as it exits: the FUSE one (the writers' EIO) can go before the lock's
        assert wait_released(m.voldir), "the killed daemon still holds the volume"
        report = fsck_path(m.voldir)
        assert report.clean, report.problems
        snapfs("mount", m.voldir, m.mnt)
        checked = 0
        for k in range(2):
            for line in open(f"{log}{k}"):
                path, digest, length = line.split()
                with open(path, "rb") as f:
                    data = f.read(int(length))
                assert hashlib.sha256(data).hexdigest() == digest, f"{path} lost fsync'ed data"
                checked += 1
        assert checked > 20, "the writers fsync'ed too little before the kill"
        snapfs("unmount", m.mnt)
        assert fsck_path(m.voldir).clean
    finally:
        force_unmount(m.mnt)


def test_fusermount_u_on_a_live_daemon_keeps_what_was_just_written(tmp_path):
    """``fusermount3 -u`` straight after writes that nobody fsync'ed (within the daemon's
    commit interval): the daemon notices, commits and closes the volume on its own."""
    m = make_mount(tmp_path)
    try:
        expected = {}
        (m.mnt / "d").mkdir()
        for i in range(30):
            data = os.urandom(1000 + i * 9973)
            path = m.mnt / "d" / f"f{i}"
            path.write_bytes(data)
            expected[f"d/f{i}"] = data
        os.rename(m.mnt / "d" / "f0", m.mnt / "renamed")
        expected["renamed"] = expected.pop("d/f0")
        os.unlink(m.mnt / "d" / "f1")
        del expected["d/f1"]
        os.setxattr(m.mnt / "renamed", "user.k", b"v")
        with open(m.mnt / "d" / "f2", "r+b") as f:
            f.write(b"overwritten")
        expected["d/f2"] = b"overwritten" + expected["d/f2"][11:]
        subprocess.run(["fusermount3", "-u", str(m.mnt)], check=True, capture_output=True)
        assert wait_released(m.voldir), "the daemon did not let go of the volume after fusermount3 -u"
        report = fsck_path(m.voldir)
        assert report.clean, report.problems
        snapfs("mount", m.voldir, m.mnt)
        got = {str(p.relative_to(m.mnt)): p.read_bytes() for p in m.mnt.rglob("*") if p.is_file()}
        assert got.keys() == expected.keys()
        assert [k for k in expected if got[k] != expected[k]] == []
        assert os.getxattr(m.mnt / "renamed", "user.k") == b"v"
    finally:
        force_unmount(m.mnt)
