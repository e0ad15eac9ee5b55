"""pyrestore on a shelf drive loads each next volume's cartridge itself.

A 3-volume dump across shelf cartridges (:mod:`spanning`), all put back in
the slots and the first loaded: at each volume's end pyrestore finds the
cartridge that starts with the next volume's header of the same dump and
offers it in its "Mount volume N" question; "yes" puts the drive's
cartridge back and loads it (``-a``: without asking), a path is taken as
before (the operator mounted one).  A cartridge of another dump, even one
that holds a volume 2, is not taken.  The operator (the test) answers on a pty.
"""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import console_script
from dumptool.volume_input import ShelfVolumes
from spanning import Layout, build_tree, dump_across
from tapelib import Shelf
from tapelib.cartridge import metadata_path
from test_pydump import assert_same_tree, env
from test_volume_prompt import converse

LAYOUT = Layout(capacity=879405, ntrec=10, files=28, data=2012116, seed=247094926, middle=956137)
ASKED = b"enter its path ('none' if there is none): "


@pytest.fixture
def spanned(tmp_path: Path) -> tuple[Shelf, str, Path]:
    """(shelf, its drive 0, the tree) after a dump onto FIRST, MIDDLE, LAST;
    every cartridge back in a slot, FIRST then loaded."""
    tree = build_tree(tmp_path / "src", LAYOUT)
    shelf, nst0, volumes = dump_across(tmp_path, LAYOUT, tree)
    assert volumes == ["FIRST", "MIDDLE", "LAST"]
    shelf.unload(0)
    shelf.load("FIRST", 0)
    return shelf, nst0, tree


def pyrestore_on_a_pty(cwd: Path, *args: str) -> tuple[int, int]:
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its terminal, standard input included
        try:
            os.chdir(cwd)
            os.execve(console_script("pyrestore"), ["pyrestore", *args], env())
        finally:
            os._exit(127)
    return pid, fd


def test_pyrestore_r_loads_each_next_cartridge_once_the_operator_says_yes(
        tmp_path: Path, spanned: tuple[Shelf, str, Path]) -> None:
    shelf, nst0, tree = spanned
    out = tmp_path / "out"
    out.mkdir()
    pid, fd = pyrestore_on_a_pty(out, "-r", "-f", nst0)
    in_drive = []

    def operator(n: int) -> str:
        in_drive.append(shelf.status().drives[0].barcode)  # nothing moved before the answer
        return "yes"

    seen, code = converse(fd, pid, {ASKED: operator})
    os.close(fd)
    assert code == 0, seen
    assert in_drive == ["FIRST", "MIDDLE"]
    assert "Mount volume 2 (on MIDDLE in slot 2: 'yes' loads it into drive 0)" in seen
    assert "Mount volume 3 (on LAST in slot 3: 'yes' loads it into drive 0)" in seen
    assert "loaded MIDDLE from slot 2" in seen and "loaded LAST from slot 3" in seen
    assert seen.count("Mount volume") == 2
    assert shelf.status().drives[0].barcode == "LAST"
    assert_same_tree(tree, out)


def test_a_path_is_the_cartridge_the_operator_mounted(
        tmp_path: Path, spanned: tuple[Shelf, str, Path]) -> None:
    shelf, nst0, tree = spanned
    out = tmp_path / "out"
    out.mkdir()
    pid, fd = pyrestore_on_a_pty(out, "-r", "-f", nst0)

    def operator(n: int) -> str:
        if n == 1:  # the operator changes the cartridge by hand
            shelf.unload(0)
            shelf.load("MIDDLE", 0)
            return nst0
        return "y"

    seen, code = converse(fd, pid, {ASKED: operator})
    os.close(fd)
    assert code == 0, seen
    assert seen.count("Mount volume") == 2
    assert "loaded MIDDLE" not in seen and "loaded LAST from slot 3" in seen
    assert_same_tree(tree, out)


@pytest.mark.parametrize("flag", ["-a", "-y"])
def test_with_a_or_y_it_loads_without_asking(tmp_path: Path, spanned: tuple[Shelf, str, Path], flag: str) -> None:
    shelf, nst0, tree = spanned
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run([console_script("pyrestore"), "-r", flag, "-f", nst0], cwd=out, env=env(),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Mount volume" not in done.stderr
    assert "loaded MIDDLE from slot" in done.stderr and "loaded LAST from slot" in done.stderr
    assert_same_tree(tree, out)


def test_a_cartridge_of_another_dump_is_not_taken(tmp_path: Path, spanned: tuple[Shelf, str, Path]) -> None:
    shelf, nst0, tree = spanned
    # another dump's volume 2, made on a shelf of its own, copied into this one's slot 2 (looked at
    # first after FIRST's slot 1); MIDDLE moved to slot 4
    other_tree = tmp_path / "other"
    other_tree.mkdir()
    (other_tree / "big").write_bytes(os.urandom(1200 * 1024))
    other = Shelf.create(tmp_path / "other-shelf", drives=1, slots=2)
    other.new_cartridge("OTHER1", capacity=700 * 1024)
    other.new_cartridge("OTHER2", capacity=4 << 20)
    other.load("OTHER1", 0)
    # dated a day back: started in the same second as the first dump, with both paths cut alike
    # at c_filesys's 63 bytes, it would be the same dump to every header field
    done = subprocess.run([console_script("pydump"), "-0", "--no-prompt", "--snapshot-date",
                           f"@{int(time.time()) - 86400}", "-f",
                           str(other.device_path(0, rewind=False)), str(other_tree)], env=env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and other.status().drives[0].barcode == "OTHER2", done.stderr
    other.unload(0)
    assert shelf.status().slots == [None, "MIDDLE", "LAST", None]
    shelf.transfer(2, 4)
    shelf.new_cartridge("OTHER2")
    shelf.transfer(1, 2)
    for name in (other.cartridge_path, lambda b: metadata_path(other.cartridge_path(b))):
        shutil.copyfile(name("OTHER2"), str(name("OTHER2")).replace(str(other.path), str(shelf.path)))
    head = ShelfVolumes(shelf, 0, nst0)._first_header("OTHER2")
    assert head is not None and head.c_volume == 2  # a volume 2, of another dump
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run([console_script("pyrestore"), "-r", "-a", "-f", nst0], cwd=out, env=env(),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "loaded MIDDLE from slot 4" in done.stderr and "OTHER" not in done.stderr
    assert_same_tree(tree, out)
