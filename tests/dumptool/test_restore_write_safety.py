"""pyrestore writes every byte it says it restored, and only into its target:

- a write the target cuts short (a full tmpfs returns fewer bytes than
  asked, with no error) is never left as a file padded with zeros: the
  file is removed and named with the others not restored, by ``-x`` and
  ``-r`` alike (the real restore: "write error extracting inode 5");
- a FIFO, a device node, a symbolic link or a file hard-linked elsewhere
  standing at a regular file's name is replaced by the restored file,
  never opened and written through (no hang on a FIFO, nothing written
  into a device or into the copy outside the target).
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import console_script, tmpfs_at
from test_pydump import env, pydump

# five files of 700,000 bytes: on a 2 MiB tmpfs the third one's last write comes back short
SIZE = 700_000


def run_pyrestore(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """pyrestore in *cwd*; 30 seconds at most (a restore hanging on a FIFO fails the test)."""
    try:
        return subprocess.run([console_script("pyrestore"), *args], cwd=cwd, capture_output=True, text=True,
                              env=env(), stdin=subprocess.DEVNULL, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"pyrestore {' '.join(args)} hung")


@pytest.fixture(scope="module")
def five_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("short")
    src = root / "src"
    (src / "sub").mkdir(parents=True)
    for i in range(1, 6):
        (src / f"f{i}").write_bytes(os.urandom(SIZE))
    (src / "sub" / "s").write_bytes(b"s\n")
    img = root / "img"
    pydump("-0", "-q", "-f", str(img), str(src))
    return src, img


@pytest.mark.parametrize("mode", ["-x", "-r"])
def test_a_write_cut_short_by_a_full_target_is_never_left_padded(five_files, tmp_path, mode) -> None:
    src, img = five_files
    with tmpfs_at(tmp_path / "tm", "size=2m") as target:
        done = run_pyrestore(mode, "--force", "-f", str(img), cwd=target)
        assert done.returncode == 1, done.stderr
        stopped = "the restore stopped" if mode == "-x" else "the rebuild stopped and the target is incomplete"
        assert f"no space left on the target: {stopped}" in done.stderr, done.stderr
        not_restored = {ln.split(": ", 1)[1] for ln in done.stderr.splitlines() if ln.startswith("not restored: ")}
        assert "./sub/s" in not_restored and "./f5" in not_restored
        assert "./f3" in not_restored  # the one whose last write came back short
        for i in range(1, 6):
            name = f"./f{i}"
            there = target / name
            if name in not_restored:
                assert not there.exists(), f"{name}: a file cut short is left behind"
            else:
                assert there.read_bytes() == (src / name).read_bytes(), f"{name} differs and is not named"
        assert not (target / "sub" / "s").exists()


def test_write_all_goes_on_after_a_short_count(tmp_path, monkeypatch) -> None:
    from dumptool import restored_file

    real = os.pwrite
    calls = []

    def short(fd: int, data, offset: int) -> int:
        calls.append(len(data))
        return real(fd, bytes(data)[:max(1, len(data) // 3)], offset)

    path = tmp_path / "f"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        monkeypatch.setattr(restored_file.os, "pwrite", short)
        assert restored_file.write_all(fd, b"0123456789" * 10, 5) == 105
        monkeypatch.setattr(restored_file.os, "pwrite", lambda fd, data, offset: 0)
        with pytest.raises(OSError) as full:
            restored_file.write_all(fd, b"more", 105)
        assert full.value.errno == 28  # ENOSPC: no progress is a full target
    finally:
        os.close(fd)
    assert len(calls) > 1
    assert path.read_bytes() == b"\0" * 5 + b"0123456789" * 10


@pytest.fixture(scope="module")
def small_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("nodes")
    src = root / "src"
    src.mkdir()
    for name in ("fifo", "hard", "dev", "link", "plain"):
        (src / name).write_bytes(f"restored {name}\n".encode())
    img = root / "img"
    pydump("-0", "-q", "-f", str(img), str(src))
    return img


@pytest.mark.parametrize("mode", ["-x", "-r"])
def test_a_fifo_at_a_files_name_is_replaced_and_no_restore_waits_on_it(small_image, tmp_path, mode) -> None:
    target = tmp_path / "t"
    target.mkdir()
    os.mkfifo(target / "fifo")  # opened for writing, it would wait for a reader for ever
    done = run_pyrestore(mode, "-f", str(small_image), cwd=target)
    assert done.returncode == 0, done.stderr
    assert stat.S_ISREG(os.lstat(target / "fifo").st_mode)
    assert (target / "fifo").read_bytes() == b"restored fifo\n"


@pytest.mark.parametrize("mode", ["-x", "-r"])
def test_a_node_at_a_files_name_is_replaced_never_written_through(small_image, tmp_path, mode) -> None:
    target, outside = tmp_path / "t", tmp_path / "outside"
    target.mkdir()
    outside.mkdir()
    (outside / "kept").write_bytes(b"outside, never to change\n")
    os.link(outside / "kept", target / "hard")  # a cp -al / rsnapshot clone of a file outside
    (outside / "aimed").write_bytes(b"a link's target, never to change\n")
    os.symlink(outside / "aimed", target / "link")
    (target / "plain").write_bytes(b"an old copy, longer than the restored one\n")
    plain_ino = (target / "plain").stat().st_ino
    null = os.stat("/dev/null")
    os.mknod(target / "dev", stat.S_IFCHR | 0o666, null.st_rdev)  # /dev/null's numbers: safe to write to
    done = run_pyrestore(mode, "-f", str(small_image), cwd=target)
    assert (outside / "kept").read_bytes() == b"outside, never to change\n"
    assert os.stat(outside / "kept").st_nlink == 1
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == null.st_rdev
    assert (outside / "aimed").read_bytes() == b"a link's target, never to change\n"
    for name in ("hard", "dev", "plain", "link", "fifo"):
        st = os.lstat(target / name)
        assert stat.S_ISREG(st.st_mode) and st.st_nlink == 1, name
        assert (target / name).read_bytes() == f"restored {name}\n".encode(), name
    assert (target / "plain").stat().st_ino == plain_ino  # a file of its own is still overwritten in place
    assert done.returncode == 0, done.stderr


def test_a_directory_at_a_files_name_stays(small_image, tmp_path) -> None:
    target = tmp_path / "t"
    (target / "plain").mkdir(parents=True)
    (target / "plain" / "mine").write_bytes(b"mine\n")
    done = run_pyrestore("-x", "-f", str(small_image), cwd=target)
    assert done.returncode == 1
    assert "./plain: cannot create" in done.stderr
    assert (target / "plain" / "mine").read_bytes() == b"mine\n"
    assert (target / "fifo").read_bytes() == b"restored fifo\n"


def test_extracting_again_over_a_restored_hard_link_replaces_both_names(tmp_path) -> None:
    src, target = tmp_path / "src", tmp_path / "t"
    src.mkdir()
    target.mkdir()
    (src / "a").write_bytes(b"first\n")
    os.link(src / "a", src / "h")
    pydump("-0", "-q", "-f", str(tmp_path / "one"), str(src))
    (src / "a").write_bytes(b"second, longer\n")
    pydump("-0", "-q", "-f", str(tmp_path / "two"), str(src))
    for img in ("one", "two"):
        done = run_pyrestore("-x", "-f", str(tmp_path / img), cwd=target)
        assert done.returncode == 0, done.stderr
    a, h = os.stat(target / "a"), os.stat(target / "h")
    assert (a.st_ino, a.st_nlink) == (h.st_ino, 2)
    assert (target / "h").read_bytes() == b"second, longer\n"
