"""pyrestore never creates, writes or follows anything outside its target
folder: a symbolic link already in the target where the image has a
directory is replaced by the directory (one line says so), in every mode
(issue 9: going beyond restore 0.4b47, which follows it)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import console_script


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``d/file`` setuid root, ``d/hard`` a hard link of it, ``d/sub/deep``."""
    root = tmp_path_factory.mktemp("beneath")
    src = root / "src"
    (src / "d" / "sub").mkdir(parents=True)
    (src / "d" / "file").write_text("setuid\n")
    os.chmod(src / "d" / "file", 0o4755)
    os.link(src / "d" / "file", src / "d" / "hard")
    (src / "d" / "sub" / "deep").write_text("deep\n")
    (src / "top").write_text("top\n")
    out = root / "img"
    subprocess.run([console_script("pydump"), "-0", "-q", "-f", str(out), str(src)], check=True,
                   stdin=subprocess.DEVNULL, timeout=60)
    return out


def pyrestore(*args: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([console_script("pyrestore"), *args], cwd=cwd, capture_output=True, text=True,
                          input=stdin, timeout=60)


def trap(tmp_path: Path) -> tuple[Path, Path]:
    """A target whose ``d`` is a symbolic link to a folder outside it."""
    target, outside = tmp_path / "target", tmp_path / "outside"
    target.mkdir()
    outside.mkdir()
    os.symlink(outside, target / "d")
    return target, outside


@pytest.mark.parametrize("how", [["-x"], ["-x", "d/file"], ["-r"], ["-i"]])
def test_a_symlink_in_the_target_is_replaced_never_followed(image, tmp_path, how):
    target, outside = trap(tmp_path)
    stdin = "add d\nextract\nq\n" if how == ["-i"] else ""
    done = pyrestore(*how, "-f", str(image), cwd=target, stdin=stdin)
    assert "Traceback" not in done.stderr
    assert list(outside.iterdir()) == []
    assert (target / "d").is_dir() and not (target / "d").is_symlink()
    assert (target / "d" / "file").read_text() == "setuid\n"
    assert stat.S_IMODE((target / "d" / "file").stat().st_mode) == 0o4755
    if how != ["-x", "d/file"]:
        assert os.path.samefile(target / "d" / "file", target / "d" / "hard")
    lines = [line for line in done.stderr.splitlines() if "symbolic link" in line]
    assert len(lines) == 1 and "d: " in lines[0] and "replaced" in lines[0], done.stderr
    assert done.returncode == 0, done.stderr


def test_a_symlink_deeper_down_is_replaced_too(image, tmp_path):
    target, outside = tmp_path / "target", tmp_path / "outside"
    (target / "d").mkdir(parents=True)
    outside.mkdir()
    os.symlink(outside, target / "d" / "sub")
    done = pyrestore("-x", "-f", str(image), cwd=target)
    assert done.returncode == 0 and list(outside.iterdir()) == []
    assert (target / "d" / "sub" / "deep").read_text() == "deep\n"


def test_compare_does_not_follow_a_symlink_out(image, tmp_path):
    target, outside = trap(tmp_path)
    (outside / "file").write_text("setuid\n")
    done = pyrestore("-C", "-D", str(target), "-f", str(image), cwd=tmp_path)
    assert done.returncode == 2  # files differ (restore -C's status)
    assert "./d: mode changed from 0755 to 0777." in done.stderr  # a link where a directory was
    assert "./d/file: a symbolic link is in its path (not followed)" in done.stderr


def test_the_symbol_table_is_not_written_through_a_planted_symlink(image, tmp_path):
    """-r writes ./restoresymtable through a temporary name: a symbolic link
    planted at that name is replaced, never written through."""
    target, outside = tmp_path / "target", tmp_path / "outside"
    target.mkdir()
    outside.mkdir()
    proc = subprocess.Popen([console_script("pyrestore"), "-r", "-f", str(image)], cwd=target,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.symlink(outside / "loot", target / f"restoresymtable.tmp{proc.pid}")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert not (outside / "loot").exists()
    assert (target / "restoresymtable").is_file() and not (target / "restoresymtable").is_symlink()
