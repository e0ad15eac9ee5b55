"""pyrestore's rules for the target: what exists, --rename, free space and --force."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from test_pydump import pydump, pyrestore

MiB = 1 << 20


@pytest.fixture
def image(tmp_path: Path) -> tuple[Path, Path]:
    src = tmp_path / "src"
    (src / "dir" / "sub").mkdir(parents=True)
    (src / "dir" / "a").write_bytes(b"new a\n")
    (src / "dir" / "sub" / "b").write_bytes(b"new b\n")
    for i in range(6):
        (src / f"big{i}").write_bytes(os.urandom(3 * MiB))
    out = tmp_path / "img"
    pydump("-0", "-q", "-f", str(out), str(src))
    return src, out


def test_an_existing_file_is_overwritten_and_a_directory_keeps_its_other_files(tmp_path: Path, image) -> None:
    src, img = image
    for mode in ("-x", "-r"):
        target = tmp_path / f"t{mode}"
        (target / "dir").mkdir(parents=True)
        (target / "dir" / "a").write_bytes(b"old a, longer than the new one\n")
        (target / "dir" / "mine").write_bytes(b"stays\n")
        done = pyrestore(mode, "-f", str(img), *(["./dir"] if mode == "-x" else []), cwd=target)
        assert done.returncode == 0, done.stderr
        assert (target / "dir" / "a").read_bytes() == b"new a\n"
        assert (target / "dir" / "mine").read_bytes() == b"stays\n"
        assert (target / "dir" / "sub" / "b").read_bytes() == b"new b\n"


def test_rename_puts_an_extracted_name_elsewhere(tmp_path: Path, image) -> None:
    src, img = image
    target = tmp_path / "t"
    target.mkdir()
    done = pyrestore("-x", "--rename", "dir/sub=moved/here", "--rename", "./big0=b0", "-f", str(img),
                     "./dir", "./big0", cwd=target)
    assert done.returncode == 0, done.stderr
    assert (target / "moved" / "here" / "b").read_bytes() == b"new b\n"
    assert (target / "dir" / "a").read_bytes() == b"new a\n"
    assert (target / "b0").read_bytes() == (src / "big0").read_bytes()
    assert not (target / "dir" / "sub").exists() and not (target / "big0").exists()
    unused = pyrestore("-x", "--rename", "./nowhere=x", "-f", str(img), "./dir/a", cwd=target)
    assert unused.returncode == 0 and "nothing extracted is at or under ./nowhere" in unused.stderr
    bad = pyrestore("-x", "--rename", "nothing", "-f", str(img), cwd=target)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    # a '..' is refused before anything is made (a folder x was left behind by the old check)
    out = pyrestore("-x", "--rename", "./big0=x/../../outside/b0", "-f", str(img), "./big0", cwd=target)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "a name with '..'" in out.stderr, out.stderr
    assert not (target / "x").exists() and not (tmp_path / "outside").exists()


def tmpfs(mount: Path, options: str):
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


@pytest.fixture
def small_fs(tmp_path: Path):
    """8 MiB of room (a tmpfs limit: nothing is taken until written)."""
    yield from tmpfs(tmp_path / "small", "size=8m")


@pytest.fixture
def few_inodes(tmp_path: Path):
    """Room enough, 50 inodes."""
    yield from tmpfs(tmp_path / "few", "size=300m,nr_inodes=50")


def test_too_little_room_is_refused_and_force_stops_cleanly_at_a_full_target(small_fs: Path, image) -> None:
    src, img = image
    done = pyrestore("-x", "-f", str(img), cwd=small_fs)
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "MiB free, the restore needs" in done.stderr and "--force" in done.stderr
    assert os.listdir(small_fs) == []  # nothing written
    rebuild = pyrestore("-r", "-f", str(img), cwd=small_fs)
    assert rebuild.returncode == 1 and rebuild.stderr.count("\n") == 1 and "MiB free" in rebuild.stderr
    assert os.listdir(small_fs) == []
    forced = pyrestore("-x", "--force", "-f", str(img), cwd=small_fs)
    assert forced.returncode == 1
    assert "no space left on the target: the restore stopped" in forced.stderr
    not_restored = [ln.split(": ", 1)[1] for ln in forced.stderr.splitlines() if ln.startswith("not restored: ")]
    assert 0 < len([n for n in not_restored if "big" in n]) < 6
    for name in (f"./big{i}" for i in range(6)):
        there = small_fs / name
        if name in not_restored:
            assert not there.exists(), name  # no file cut short left behind
        else:
            assert there.read_bytes() == (src / name).read_bytes(), name


def test_too_few_inodes_is_refused(few_inodes: Path, tmp_path: Path) -> None:
    src = tmp_path / "many"
    src.mkdir()
    for i in range(100):
        (src / f"f{i}").write_bytes(b"x")
    img = tmp_path / "many.img"
    pydump("-0", "-q", "-f", str(img), str(src))
    done = pyrestore("-x", "-f", str(img), cwd=few_inodes)
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "free inodes, the restore makes 101" in done.stderr, done.stderr
    assert os.listdir(few_inodes) == []
    # the names asked for fit: no refusal
    fits = pyrestore("-x", "-f", str(img), "./f1", "./f2", cwd=few_inodes)
    assert fits.returncode == 0, fits.stderr
    assert (few_inodes / "f1").read_bytes() == b"x"


def test_renames_tell_where_a_name_lands_and_where_it_came_from() -> None:
    from dumptool.restore_rules import Renames

    r = Renames([("qn/a", "qu/a"), ("qu", "qn/old-qu"), ("x/f", "x/g")])
    assert r.moved(b"./qn/a/f") == b"./qu/a/f" and r.moved(b"./qu/b") == b"./qn/old-qu/b"
    assert r.moved(b"./qn/ab") == b"./qn/ab"  # (not under qn/a)
    assert r.origin(b"./qu/a/f") == b"./qn/a/f" and r.origin(b"qn/old-qu/b") == b"./qu/b"
    assert r.origin(b"./x/g") == b"./x/f" and r.origin(b"./x/h") == b"./x/h"
    assert r.origin(b"./qu/a") == b"./qn/a"
    assert r.used == {b"./qn/a", b"./qu"}  # (those moved() was asked for: origin() marks none)
    # a name under NEW whose OLD lands elsewhere (an earlier OLD takes it): not from that OLD
    r = Renames([("a/x", "c/x"), ("a", "b")])
    assert r.moved(b"./a/x", mark=False) == b"./c/x" and r.origin(b"./b/x") == b"./b/x"
