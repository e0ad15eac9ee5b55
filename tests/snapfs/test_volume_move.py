"""A volume move's last step on an open Volume (snapfs.moving, issue 14): the folder
renamed on one file system, copied across file systems (catching up what the
transfer copied, whatever a crash left in its staging folder), and a move that fails
leaving the volume where and as it was."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
from conftest import tmpfs_at

from snapfs import ROOT_INO, Volume, fsck_path
from snapfs.errors import SnapfsError
from snapfs.moving import move_volume, precopy, staging_of


def _volume(folder: Path) -> tuple[Volume, dict[str, bytes]]:
    folder.mkdir()
    vol = Volume.create(folder / "vol", 8 * 1024 * 1024, 200, name="testvol", block_size=4096)
    files = {f"f{i}": os.urandom(5000 * (i + 1)) for i in range(8)}
    for name, data in files.items():
        vol.write(vol.create_file(ROOT_INO, name).ino, 0, data)
    vol.snapshot_create("s1")
    return vol, files


@contextlib.contextmanager
def _closing(vol: Volume):
    """Closed at the end, also when the test fails (before its tmpfs is unmounted)."""
    try:
        yield vol
    finally:
        vol.close()


def _check(vol: Volume, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        assert vol.read(vol.lookup(ROOT_INO, name).ino, 0, len(data) + 10) == data


def test_on_one_file_system_the_folder_is_renamed_and_the_volume_goes_on(tmp_path: Path) -> None:
    vol, files = _volume(tmp_path / "aggr1")
    (tmp_path / "aggr2").mkdir()
    dest = tmp_path / "aggr2" / "vol"
    assert not precopy(vol.path, dest)  # nothing to transfer: a rename
    ident = move_volume(vol, str(dest))
    assert (ident.aggregate, ident.generation) == (str(tmp_path / "aggr2"), 2)
    assert vol.path == dest and not (tmp_path / "aggr1" / "vol").exists()
    _check(vol, files)
    vol.write(vol.create_file(ROOT_INO, "after").ino, 0, b"written there")
    vol.close()
    assert fsck_path(dest).clean
    with Volume.open(dest) as again:
        _check(again, {**files, "after": b"written there"})
        assert again.volume_identity().generation == 2 and [n for _, n in again.snapshot_names()] == ["s1"]


def test_across_file_systems_the_transfer_is_caught_up_whatever_its_staging_holds(tmp_path: Path) -> None:
    vol, files = _volume(tmp_path / "aggr1")
    with tmpfs_at(tmp_path / "aggr9", "size=64m") as aggr, _closing(vol):
        dest = aggr / "vol"
        assert precopy(vol.path, dest)
        # changed after the transfer copied the data file: the last step catches it up
        files["f3"] = b"changed since the transfer" * 300
        f3 = vol.lookup(ROOT_INO, "f3").ino
        vol.truncate(f3, 0)
        vol.write(f3, 0, files["f3"])
        vol.commit()
        staged = staging_of(dest)
        with open(staged / "data", "r+b") as f:  # and bytes that were never the volume's
            f.write(os.urandom(4096))
            f.seek(0, os.SEEK_END)
            f.write(os.urandom(70000))
        (staged / "snapfs.db-wal").write_bytes(os.urandom(9000))  # what a crash might leave
        (staged / "junk").mkdir()
        move_volume(vol, str(dest), keep_identity=True)
        assert vol.path == dest and not (tmp_path / "aggr1" / "vol").exists() and not staged.exists()
        assert set(os.listdir(dest)) <= {"data", "lock", "snapfs.db", "snapfs.db-wal", "snapfs.db-shm"}
        _check(vol, files)
        assert vol.volume_identity().generation == 1 and vol.volume_identity().aggregate == str(aggr)
        vol.close()
        assert fsck_path(dest).clean
        with Volume.open(dest) as again:
            _check(again, files)
            assert [n for _, n in again.snapshot_names()] == ["s1"]


def test_a_move_that_fails_leaves_the_volume_where_and_as_it_was(tmp_path: Path) -> None:
    vol, files = _volume(tmp_path / "aggr1")
    src = vol.path
    with tmpfs_at(tmp_path / "tiny", "size=64k") as tiny, _closing(vol):
        with pytest.raises(SnapfsError, match="No space left on device; it stays in"):
            move_volume(vol, str(tiny / "vol"))
        assert os.listdir(tiny) == []
        assert vol.path == src and vol.volume_identity().generation == 1
        assert vol.volume_identity().aggregate == "aggr0"
        _check(vol, files)
        vol.write(vol.create_file(ROOT_INO, "after").ino, 0, b"still here")
    assert fsck_path(src).clean
