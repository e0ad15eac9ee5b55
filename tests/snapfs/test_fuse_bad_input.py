"""Bad input to the snapfs commands: one clear stderr line, non-zero exit, no damage."""

from __future__ import annotations

import os
import sqlite3

import pytest
from fuse_fixtures import Mounted, mounted, snapfs  # noqa: F401 (fixtures)

from snapfs import Volume

pytestmark = pytest.mark.fuse


def refused(*args, match: str) -> str:
    r = snapfs(*args, check=False)
    assert r.returncode != 0, r.stdout
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert match in r.stderr, r.stderr
    return r.stderr


def test_mounting_a_folder_that_is_not_a_volume(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "mnt").mkdir()
    refused("mount", tmp_path / "junk", tmp_path / "mnt", match="not a snapfs volume")
    assert not os.path.ismount(tmp_path / "mnt")


def test_second_mount_of_the_same_volume(mounted: Mounted, tmp_path):
    (tmp_path / "other").mkdir()
    refused("mount", mounted.voldir, tmp_path / "other", match="already mounted")
    assert not os.path.ismount(tmp_path / "other")
    refused("mount", mounted.voldir, mounted.mnt, match="already a mount point")
    (mounted.mnt / "still").write_bytes(b"works")


def test_snapshot_commands_with_bad_names(mounted: Mounted, tmp_path):
    refused("snapshot", "delete", mounted.mnt, "missing", match="no snapshot named 'missing'")
    snapfs("snapshot", "create", mounted.mnt, "s")
    refused("snapshot", "create", mounted.mnt, "s", match="already exists")
    refused("snapshot", "rename", mounted.mnt, "nope", "x", match="no snapshot named 'nope'")
    refused("snapshot", "list", tmp_path, match="neither a snapfs volume folder nor a snapfs mount point")
    refused("snapshot", "delete", mounted.mnt, match="needs a snapshot NAME")


def test_fsck_refuses_a_mounted_volume(mounted: Mounted):
    refused("fsck", mounted.voldir, match="already mounted")


def test_fsck_reports_damage_and_repairs_it(tmp_path):
    v = Volume.create(tmp_path / "v", 1 << 20, 50, block_size=4096)
    a = v.create_file(1, "a")
    v.write(a.ino, 0, b"x" * 5000)
    v.close()
    db = sqlite3.connect(tmp_path / "v" / "snapfs.db")
    db.execute("UPDATE inodes SET nlink = 5 WHERE ino = ?", (a.ino,))
    db.commit()
    db.close()
    r = snapfs("fsck", tmp_path / "v", check=False)
    assert r.returncode == 4 and "link" in r.stdout  # e2fsck: errors left uncorrected
    r = snapfs("fsck", tmp_path / "v", "--repair", check=False)
    assert r.returncode == 1 and "repaired" in r.stdout
    snapfs("fsck", tmp_path / "v")


def test_create_refuses_a_non_empty_folder_and_bad_sizes(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_bytes(b"")
    refused("create", tmp_path / "full", match="not an empty folder")
    r = snapfs("create", tmp_path / "v", "--size", "lots", check=False)
    assert r.returncode == 2 and "bad size" in r.stderr


def test_unmount_of_something_not_mounted(tmp_path):
    refused("unmount", tmp_path, match="not a mount point")
