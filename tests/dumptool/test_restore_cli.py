"""pyrestore as restore 0.4b47's users know it, judged side by side with the
real restore on the same image: ``-C`` output and exit codes, ``-t NAME`` of
a name not on the image."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conftest import console_script
from samples import real_restore


def pyrestore(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([console_script("pyrestore"), *args], cwd=cwd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)


def both(tmp: Path, *args: str, cwd: Path) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    """(the real restore's run, ours) of the same arguments."""
    return real_restore(*args, cwd=cwd, tmp=tmp, check=False), pyrestore(*args, cwd=cwd)


def lines(err: str) -> list[str]:
    """stderr's lines, the program's name taken off."""
    return [line.removeprefix("/sbin/restore: ").removeprefix("pyrestore: ") for line in err.splitlines()]


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("cli")
    src = tmp / "src"
    (src / "d" / "sub").mkdir(parents=True)
    (src / "e").mkdir()
    for name, data in {"a.txt": b"hello\n", "grow": b"grow\n", "shrink": b"shrink me\n", "mode": b"m\n",
                       "owner": b"o\n", "gone": b"gone\n", "attr": b"x\n", "d/b.py": b"print()\n",
                       "d/sub/deep": b"deep\n", "big": bytes(range(256)) * 64}.items():
        (src / name).write_bytes(data)
    os.setxattr(src / "attr", "user.k", b"v1")
    os.symlink("a.txt", src / "link")
    subprocess.run([console_script("pydump"), "-0", "-f", str(tmp / "img"), str(src)], check=True,
                   capture_output=True)
    return src, tmp / "img"


def test_compare_of_the_same_tree_says_what_restore_says(image, tmp_path):
    src, img = image
    real, ours = both(tmp_path, "-C", "-f", str(img), cwd=tmp_path)
    assert real.returncode == ours.returncode == 0, real.stderr + ours.stderr
    assert ours.stdout == real.stdout and "filesys = " + str(src) in ours.stdout
    assert ours.stderr == real.stderr == ""


def test_compare_of_a_changed_tree_has_restores_lines_summary_and_exit_2(image, tmp_path):
    src, img = image
    tree = tmp_path / "tree"
    subprocess.run(["cp", "-a", str(src), str(tree)], check=True)
    (tree / "a.txt").write_bytes(b"HELLO\n")       # same size, other bytes
    (tree / "grow").write_bytes(b"grow\nmore\n")   # longer
    (tree / "shrink").write_bytes(b"shr")          # shorter
    (tree / "big").write_bytes(bytes(range(256)) * 63 + b"x" * 256)  # differs in its last block
    os.chmod(tree / "mode", 0o600)
    os.chown(tree / "owner", 5, 6)
    (tree / "gone").unlink()
    os.setxattr(tree / "attr", "user.k", b"v2")
    os.unlink(tree / "link")
    os.symlink("elsewhere", tree / "link")
    os.chmod(tree / "d", 0o700)
    (tree / "e").rmdir()
    real, ours = both(tmp_path, "-C", "-D", str(tree), "-f", str(img), cwd=tmp_path)
    assert real.returncode == ours.returncode == 2, real.stderr + ours.stderr
    assert ours.stdout == real.stdout
    assert "Some files were modified!  12 compare errors" in ours.stdout
    assert lines(ours.stderr) == lines(real.stderr)


def test_compare_verbose_lines_are_restores(image, tmp_path):
    src, img = image
    real, ours = both(tmp_path, "-C", "-v", "-f", str(img), cwd=tmp_path)
    assert real.returncode == ours.returncode == 0
    wanted = [line for line in real.stdout.splitlines() if line.startswith("comparing")]
    assert [line for line in ours.stdout.splitlines() if line.startswith("comparing")] == wanted
    assert len(wanted) > 10


def test_listing_a_name_not_on_the_image_says_so_and_exits_0(image, tmp_path):
    _, img = image
    real, ours = both(tmp_path, "-t", "-f", str(img), "nothere", "./d/zz", "d", cwd=tmp_path)
    assert real.returncode == ours.returncode == 0
    assert ours.stderr == real.stderr == \
        "./nothere is not on the tape\n./d/zz is not on the tape\n"
    assert ours.stdout == real.stdout


def test_rebuild_verbose_lines_are_restores_in_its_order(image, tmp_path):
    """-r -v: restore's line set, its phases in its order (its "Input is
    from ..."/"Input block size" lines are not ours: see the README)."""
    _, img = image
    real_dir, ours_dir = tmp_path / "real", tmp_path / "ours"
    real_dir.mkdir()
    ours_dir.mkdir()
    real = real_restore("-r", "-v", "-f", str(img), cwd=real_dir, tmp=tmp_path, check=False)
    ours = pyrestore("-r", "-v", "-f", str(img), cwd=ours_dir)
    assert real.returncode == ours.returncode == 0, real.stderr + ours.stderr
    wanted = [line for line in real.stdout.splitlines() if not line.startswith("Input ")]
    got = ours.stdout.splitlines()
    assert sorted(got) == sorted(wanted)
    phases = [line for line in wanted if line[0].isupper() and not line.startswith("Make node ")]
    assert [line for line in got if line in phases] == phases
    assert "Extract new leaves." in wanted and "extract file ./d/b.py" in wanted
