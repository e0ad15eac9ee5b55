"""A mount whose daemon was killed ("Transport endpoint is not connected"):
``snapfs unmount`` clears it as ``fusermount3 -u`` does, and ``snapfs mount``
clears it before mounting; both say so."""

from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path

import pytest
from fuse_fixtures import Mounted, force_unmount, make_mount, snapfs, wait_released

from snapfs import client

pytestmark = pytest.mark.fuse


def _kill_daemon(m: Mounted) -> None:
    (m.mnt / "kept").write_bytes(b"committed before the kill")
    with client.open_volume(m.mnt) as c:
        pid = c.info().pid
    os.sync()
    time.sleep(0.2)  # past the daemon's commit interval
    os.kill(pid, signal.SIGKILL)
    assert wait_released(m.voldir)
    with pytest.raises(OSError) as e:
        os.listdir(m.mnt)
    assert e.value.errno == errno.ENOTCONN


def test_unmount_clears_a_stale_mount_and_says_so(tmp_path: Path):
    m = make_mount(tmp_path)
    try:
        _kill_daemon(m)
        r = snapfs("unmount", m.mnt)
        assert r.stdout.strip().startswith(f"{m.mnt}: cleared a stale mount of {m.voldir}"), r.stdout
        assert not os.path.ismount(m.mnt) and os.listdir(m.mnt) == []
        r = snapfs("unmount", m.mnt, check=False)  # nothing there any more
        assert r.returncode == 1 and "is not a mount point" in r.stderr
        snapfs("mount", m.voldir, m.mnt)
        assert (m.mnt / "kept").read_bytes() == b"committed before the kill"
    finally:
        force_unmount(m.mnt)


def test_mount_over_a_stale_mount_clears_it_first(tmp_path: Path):
    m = make_mount(tmp_path)
    try:
        _kill_daemon(m)
        r = snapfs("mount", m.voldir, m.mnt)
        assert r.stderr.strip() == (f"snapfs: {m.mnt}: cleared a stale mount of {m.voldir} first"
                                    " (its daemon had died)"), r.stderr
        assert (m.mnt / "kept").read_bytes() == b"committed before the kill"
        snapfs("unmount", m.mnt)
        assert not os.path.ismount(m.mnt)
    finally:
        force_unmount(m.mnt)


def test_an_empty_snapshot_name_is_refused(tmp_path: Path):
    m = make_mount(tmp_path)
    try:
        r = snapfs("snapshot", "create", m.mnt, "", check=False)
        assert r.returncode == 2 and r.stderr.strip() == (
            "snapfs: snapshot create: a snapshot name may not be empty"
            " (leave NAME out for the next snapshot_for_backup.N)"), r.stderr
        assert snapfs("snapshot", "list", m.mnt).stdout.splitlines()[1:] == []
        assert snapfs("snapshot", "create", m.mnt).stdout.strip() == "snapshot_for_backup.0"
    finally:
        force_unmount(m.mnt)


def test_create_names_the_volume_after_its_folder_and_every_command_has_a_version(tmp_path: Path):
    r = snapfs("create", tmp_path / "projects", "--size", "1M")
    assert r.stdout.startswith(f"created volume projects in {tmp_path / 'projects'}:"), r.stdout
    assert "name:           projects" in snapfs("volume", "show", tmp_path / "projects").stdout
    assert snapfs("--version").stdout.strip() == "snapfs 0.1.0"
