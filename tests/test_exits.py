"""Every CLI ends the same way: one stderr line and an exit status."""

from __future__ import annotations

import pytest

from tapelib import DriveBusy
from snapdump.exits import CommandFailed, run


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
