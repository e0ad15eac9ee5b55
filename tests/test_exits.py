"""Every CLI ends the same way: one stderr line and an exit status (snapdump.exits),
whatever package's error family it meets."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from conftest import console_script
from dumptool.errors import DumpError
from ndmp.errors import IllegalArgs
from snapdump.errors import ErrnoError
from snapdump.exits import EXIT_BROKEN_PIPE, CommandFailed, run
from snapfs.errors import SnapfsError
from tapelib import DriveBusy, TapeError


def raising(exc: BaseException):
    def body() -> int:
        raise exc
    return body


def test_success_is_the_bodys_status_or_0() -> None:
    assert run("prog", lambda: None) == 0
    assert run("prog", lambda: 4) == 4


def test_tape_error_is_prog_colon_message_and_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("prog", raising(DriveBusy("dev: device busy"))) == 1
    assert capsys.readouterr().err == "prog: dev: device busy\n"


def test_command_failed_names_its_subject_and_adds_its_epilog(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("prog", raising(CommandFailed("Input/output error", 2, subject="/dev/nst0"))) == 2
    assert capsys.readouterr().err == "/dev/nst0: Input/output error\n"
    assert run("prog", raising(CommandFailed('unknown command "x"', epilog="usage: prog"))) == 1
    assert capsys.readouterr().err == 'prog: unknown command "x"\nusage: prog\n'


def test_other_os_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("prog", raising(PermissionError(13, "Permission denied", "/x"))) == 1
    assert capsys.readouterr().err == "prog: /x: Permission denied\n"


def test_interrupt_is_130_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("prog", raising(KeyboardInterrupt())) == 130
    assert "Traceback" not in capsys.readouterr().err


# -- one convention for every package's errors and every command --------------------


@pytest.mark.parametrize("error", [
    DumpError("img: not a dump image"),
    SnapfsError("vol: no such snapshot", errno.ENOENT),
    IllegalArgs("img: not a dump image"),
])
def test_every_packages_error_is_prog_colon_message_and_1(error, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("prog", raising(error)) == 1
    assert capsys.readouterr().err == f"prog: {error.message}\n"


def test_errno_families_share_one_base() -> None:
    assert issubclass(TapeError, ErrnoError) and issubclass(SnapfsError, ErrnoError)
    assert DriveBusy("x").errno == errno.EBUSY and SnapfsError("x").errno == errno.EIO
    assert SnapfsError("x", errno.ENOSPC).errno == errno.ENOSPC


def test_a_command_may_say_its_errors_and_interrupt_its_own_way(capsys: pytest.CaptureFixture[str]) -> None:
    """pydump's errors read as dump's (``  DUMP: ...``) and an interrupt exits 3 with a line."""
    assert run("pydump", raising(DumpError("full")), prefix="  DUMP: ") == 1
    assert capsys.readouterr().err == "  DUMP: full\n"
    assert run("pydump", raising(KeyboardInterrupt()), prefix="  DUMP: ", interrupted=3,
               interrupted_message="interrupted") == 3
    assert capsys.readouterr().err == "  DUMP: interrupted\n"


COMMANDS = ["pydump", "pyrestore", "snapfs", "pymt", "pytape", "pyrmt", "pyndmpd"]


def _to_a_closed_pipe(argv: list[str]) -> subprocess.CompletedProcess:
    """Run *argv* with its stdout a pipe nobody reads any more (``... | head -0``),
    its output buffered as a shell would run it (PYTHONUNBUFFERED unset)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=60, env=env)
    finally:
        os.close(write_end)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_keeps_quiet_on_a_closed_stdout(command: str) -> None:
    """--version into ``| head -0``: status 141 (SIGPIPE) and nothing on stderr, no traceback."""
    result = _to_a_closed_pipe([console_script(command), "--version"])
    assert (result.returncode, result.stderr) == (EXIT_BROKEN_PIPE, "")


def test_a_listing_cut_short_is_not_an_error(tmp_path: Path) -> None:
    """``pyrestore -t | head``: the reader went away; pyrestore stops quietly (141)."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(200):
        (src / f"file{i:03d}").write_text("x")
    image = tmp_path / "img"
    dumped = subprocess.run([console_script("pydump"), "-0", "--quiet", "-f", str(image), str(src)],
                            capture_output=True, text=True, timeout=60)
    assert dumped.returncode == 0, dumped.stderr
    result = _to_a_closed_pipe([console_script("pyrestore"), "-t", "-f", str(image)])
    assert (result.returncode, result.stderr) == (EXIT_BROKEN_PIPE, "")
