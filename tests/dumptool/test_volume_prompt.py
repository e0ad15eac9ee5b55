"""pydump at the end of a tape nothing can change by itself: it asks the operator.

With a terminal and no ``--no-prompt`` pydump says ``Change Volumes: Mount volume #2``
on /dev/tty and waits for "yes"; without a terminal, or under ``--no-prompt``, it
fails with one clear line.  The terminal here is a pty whose "operator" (the
test) loads the next cartridge with the Shelf API before answering.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import console_script
from tapelib import Shelf
from samples import restore_both_cartridges
from test_pydump import RESTORE, assert_same_tree, env


def big_tree(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "big").write_bytes(os.urandom(6 * 1024 * 1024))  # more than the 4 MiB cartridge
    (src / "after").write_bytes(b"after\n")
    return src


def test_without_a_terminal_end_of_tape_fails_clearly(tmp_path: Path, nst0: str) -> None:
    src = big_tree(tmp_path)
    result = subprocess.run([console_script("pydump"), "-0", "--quiet", "-f", nst0, str(src)], env=env(),
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120,
                            start_new_session=True)  # no controlling terminal
    assert result.returncode == 1
    err = result.stderr.strip().splitlines()
    assert len(err) == 1, err
    assert "no other cartridge" in err[0] and "no terminal to ask for volume 2" in err[0]


def test_no_prompt_never_asks(tmp_path: Path, nst0: str) -> None:
    src = big_tree(tmp_path)
    result = subprocess.run([console_script("pydump"), "-0", "--quiet", "--no-prompt", "-f", nst0, str(src)], env=env(),
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert result.returncode == 1
    assert "--no-prompt forbids asking for volume 2" in result.stderr and "Traceback" not in result.stderr


def converse(fd: int, pid: int, answers: dict[bytes, Callable[[int], str]]) -> tuple[str, int]:
    """Read pydump's terminal until it ends; each time a question ending in
    one of ``answers``' keys appears, answer what ``answers[key](n)`` says
    (``n``: how many times that question was asked).  The text seen and the exit status."""
    seen = b""
    asked = dict.fromkeys(answers, 0)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
        for question, answer in answers.items():
            if seen.count(question) > asked[question]:
                asked[question] += 1
                os.write(fd, answer(asked[question]).encode() + b"\n")
    _, status = os.waitpid(pid, 0)
    return seen.decode(errors="replace"), os.waitstatus_to_exitcode(status)


READY = b"ready to go?"


def pydump_on_a_pty(*args: str) -> tuple[int, int]:
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its controlling terminal
        try:
            os.execve(console_script("pydump"), ["pydump", *args], env())
        finally:
            os._exit(127)
    return pid, fd


@pytest.mark.skipif(not os.access(RESTORE, os.X_OK), reason="real /sbin/restore not installed")
def test_on_a_terminal_pydump_asks_for_the_next_volume_and_goes_on(tmp_path: Path, shelf: Shelf,
                                                                   nst0: str) -> None:
    src = big_tree(tmp_path)
    pid, fd = pydump_on_a_pty("-0", "-f", nst0, str(src))

    def operator(n: int) -> str:
        if n == 1:
            return "maybe"  # not an answer: asked again
        if n == 2:
            assert shelf.status().drives[0].barcode is None  # the full cartridge was put back
            shelf.new_cartridge("TEST02", capacity=8 * 1024 * 1024)
            shelf.load("TEST02", 0)
        return "yes"

    seen, code = converse(fd, pid, {READY: operator})
    os.close(fd)
    assert code == 0, seen
    assert "Change Volumes: Mount volume #2" in seen and "DUMP IS DONE" in seen
    assert_same_tree(src, restore_both_cartridges(shelf, nst0, tmp_path))


def test_on_a_terminal_no_aborts_the_dump(tmp_path: Path, nst0: str) -> None:
    src = big_tree(tmp_path)
    pid, fd = pydump_on_a_pty("-0", "--quiet", "-f", nst0, str(src))
    seen, code = converse(fd, pid, {READY: lambda n: "no"})
    os.close(fd)
    assert code == 1
    assert "Mount volume #2" in seen and "the ENTIRE dump is aborted" in seen and "Traceback" not in seen
