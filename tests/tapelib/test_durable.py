"""State files are replaced atomically and durably: the old file or the new one, never half of one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tapelib import Shelf
from tapelib.durable import replace_file


def test_replace_file_writes_fsyncs_and_leaves_no_temporary_file(tmp_path: Path, monkeypatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    target = tmp_path / "state.json"
    target.write_text("old")
    replace_file(target, b"new", 0o640)
    assert target.read_bytes() == b"new" and target.stat().st_mode & 0o777 == 0o640
    assert len(synced) == 2  # the file, then the folder holding the rename
    assert os.listdir(tmp_path) == ["state.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary_one(tmp_path: Path) -> None:
    target = tmp_path / "dumpdates"
    target.write_text("the old record\n")

    def half(out) -> None:
        out.write(b"half of the new")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        replace_file(target, half)
    assert target.read_text() == "the old record\n"
    assert os.listdir(tmp_path) == ["dumpdates"]


def test_a_planted_symlink_is_replaced_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text("keep me")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "restoresymtable").symlink_to(outside)
    replace_file(tmp_path / "d" / "restoresymtable", b"table")
    assert outside.read_text() == "keep me"
    assert (tmp_path / "d" / "restoresymtable").read_bytes() == b"table"


def test_cartridge_and_shelf_state_go_through_it(tmp_path: Path, monkeypatch) -> None:
    written: list[str] = []
    import tapelib.cartridge as cartridge

    real = cartridge.replace_file
    monkeypatch.setattr(cartridge, "replace_file", lambda p, *a, **k: (written.append(Path(p).name), real(p, *a, **k)))
    shelf = Shelf.create(tmp_path / "shelf", drives=1, slots=2)
    shelf.new_cartridge("T1", capacity=1 << 20)
    shelf.load("T1", drive=0)
    assert {"state.json", "shelf.json", "T1.json"} <= set(written)
