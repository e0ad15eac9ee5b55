"""``pyrestore -i``: setmodes, and extract more than once per session."""

from __future__ import annotations

import os
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import console_script
from samples import DATE

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (owners)")


def pydump(*args: str) -> None:
    done = subprocess.run([console_script("pydump"), *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=300)
    assert done.returncode == 0, done.stderr


def pyrestore_i(image: str, cwd: Path, commands: str) -> subprocess.CompletedProcess:
    return subprocess.run([console_script("pyrestore"), "-i", "-f", image], cwd=cwd, capture_output=True,
                          text=True, input=commands, timeout=300)


#: what the source gives each node: mode, owner, mtime
ATTRS = {
    "d": (0o750, 42, 43, DATE - 100),
    "d/sub": (0o705, 44, 45, DATE - 200),
    "d/f": (0o640, 1234, 5678, DATE - 300),
    "d/sub/g": (0o604, 11, 12, DATE - 400),
    "e": (0o711, 7, 8, DATE - 500),
    "e/h": (0o600, 9, 10, DATE - 600),
}


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("interactive")
    src = base / "src"
    (src / "d" / "sub").mkdir(parents=True)
    (src / "e").mkdir()
    for name in ("d/f", "d/sub/g", "e/h"):
        (src / name).write_bytes(name.encode() + b"\n")
    os.setxattr(src / "d", "user.note", b"dir note")
    os.setxattr(src / "d" / "f", "user.note", b"file note")
    for name, (mode, uid, gid, mtime) in sorted(ATTRS.items(), key=lambda kv: -kv[0].count("/")):
        os.chown(src / name, uid, gid)
        os.chmod(src / name, mode)
        os.utime(src / name, (mtime, mtime))
    pydump("-0", "--quiet", "-f", str(base / "l0.dump"), str(src))
    return base / "l0.dump"


def assert_attrs(root: Path, *names: str) -> None:
    for name in names:
        st = (root / name).lstat()
        mode, uid, gid, mtime = ATTRS[name]
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime)) == (mode, uid, gid, mtime), name


def test_setmodes_sets_the_directories_left_by_an_aborted_restore(image, tmp_path):
    for name in ("d", "d/sub", "e"):
        (tmp_path / name).mkdir(0o700)
    done = pyrestore_i(str(image), tmp_path, "add d\nsetmodes\nquit\n")
    assert done.returncode == 0, done.stderr
    assert_attrs(tmp_path, "d", "d/sub")
    assert os.getxattr(tmp_path / "d", "user.note") == b"dir note"
    assert stat.S_IMODE((tmp_path / "e").stat().st_mode) == 0o700  # not on the list
    assert not (tmp_path / "d" / "f").exists()  # setmodes extracts nothing


def test_setmodes_after_extract_puts_back_files_and_directories(image, tmp_path):
    proc = subprocess.Popen([console_script("pyrestore"), "-i", "-f", str(image)], cwd=tmp_path, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        proc.stdin.write("add d\nextract\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 60
        while True:  # extract is done when d has its times (directories come last)
            d = tmp_path / "d"
            if d.exists() and int(d.stat().st_mtime) == ATTRS["d"][3]:
                break
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        for name in ("d", "d/f"):
            os.chmod(tmp_path / name, 0o777)
            os.chown(tmp_path / name, 0, 0)
        (tmp_path / "d" / "scratch").write_bytes(b"")  # touches d's mtime
        (tmp_path / "d" / "scratch").unlink()
        os.utime(tmp_path / "d" / "f")
        out, err = proc.communicate("setmodes\nquit\n", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert_attrs(tmp_path, "d", "d/sub", "d/f", "d/sub/g")
    assert os.getxattr(tmp_path / "d" / "f", "user.note") == b"file note"


def test_extract_twice_reads_an_image_file_again(image, tmp_path):
    done = pyrestore_i(str(image), tmp_path, "add d/f\nextract\nadd e\ncd d\nadd sub\nextract\nquit\n")
    assert done.returncode == 0, done.stdout + done.stderr
    got = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert got == ["d", "d/f", "d/sub", "d/sub/g", "e", "e/h"]
    for name in ("d/f", "d/sub/g", "e/h"):
        assert (tmp_path / name).read_bytes() == name.encode() + b"\n"
    assert_attrs(tmp_path, *ATTRS)


def test_second_extract_from_a_pipe_says_it_is_impossible(image, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    out = tmp_path / "out"
    out.mkdir()

    def feed() -> None:
        try:
            with open(fifo, "wb") as f:
                f.write(image.read_bytes())
        except BrokenPipeError:
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    done = pyrestore_i(str(fifo), out, "add d/f\nextract\nadd e\nextract\nquit\n")
    writer.join(timeout=10)
    assert done.returncode == 0, done.stderr
    assert "pipe" in done.stdout and "impossible" in done.stdout and "Traceback" not in done.stderr
    assert (out / "d" / "f").read_bytes() == b"d/f\n"
    assert not (out / "e").exists()


def test_second_extract_from_a_tape_rewinds_to_the_dump(image, nst0, tmp_path):
    """The dump is the tape's second file (-s 2): a second extract rewinds
    the drive and spaces to it again, as the operator would."""
    from tapelib import open_device

    data = image.read_bytes()
    with open_device(nst0, writable=True) as drive:
        drive.write(b"another file".ljust(10 * 1024, b"\0"))
        drive.write_filemarks(1)
        for i in range(0, len(data), 10 * 1024):
            drive.write(data[i:i + 10 * 1024].ljust(10 * 1024, b"\0"))
        drive.write_filemarks(1)
        drive.rewind()
    done = subprocess.run([console_script("pyrestore"), "-i", "-s", "2", "-f", nst0], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          input="add d/f\nextract\nadd e\ndelete d\nextract\nquit\n")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert (tmp_path / "d" / "f").read_bytes() == b"d/f\n"
    assert (tmp_path / "e" / "h").read_bytes() == b"e/h\n"


def test_a_script_runs_before_volume_1_at_each_later_extract_as_for_the_real_restore(image, nst0, tmp_path):
    """-F on a one-volume tape: restore 0.4b47 runs the script before volume 1
    when it starts and again at each later extract (after one, it forgets the
    volume it holds and asks for volume 1); pyrestore too."""
    from samples import RESTORE, fake_rsh
    from tapelib import open_device

    data = image.read_bytes()
    with open_device(nst0, writable=True) as drive:
        for i in range(0, len(data), 10 * 1024):
            drive.write(data[i:i + 10 * 1024].ljust(10 * 1024, b"\0"))
        drive.write_filemarks(1)
        drive.rewind()
    log = tmp_path / "script.log"
    logger = tmp_path / "logger"
    logger.write_text(f'#!/bin/sh\necho "$1 $2" >> {log}\n{console_script("pymt")} -f "$1" rewind\n')
    logger.chmod(0o755)
    rsh = fake_rsh(tmp_path, console_script("pyrmt"))
    calls = {}
    for tool, program, device in (("real", RESTORE, f"localhost:{nst0}"), ("ours", console_script("pyrestore"), nst0)):
        folder = tmp_path / tool
        folder.mkdir()
        done = subprocess.run([program, "-i", "-a", "-o", "-u", "-F", str(logger), "-f", device], cwd=folder,
                              input="add d/f\nextract\nadd e\nextract\nquit\n", capture_output=True, text=True,
                              timeout=120, env=dict(os.environ, RSH=str(rsh), RMT=console_script("pyrmt"),
                                                    TMPDIR=str(tmp_path)))
        assert done.returncode == 0, (tool, done.stderr)
        assert "Mount" not in done.stderr, (tool, done.stderr)
        assert (folder / "d" / "f").read_bytes() == b"d/f\n" and (folder / "e" / "h").read_bytes() == b"e/h\n"
        calls[tool] = log.read_text().splitlines()
        log.unlink()
    assert calls["ours"] == calls["real"] == [f"{nst0} 1", f"{nst0} 1"]
