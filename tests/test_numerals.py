"""Whole numbers are ASCII digits (snapdump.numerals.is_decimal) wherever text
is checked before ``int()``: "²" passed ``str.isdigit()`` and then raised in
``int()``, a traceback where a one-line error was meant."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import console_script, one_line
from dumptool.errors import FormatError
from dumptool.filer import dead_dump
from dumptool.format import QFA_MAGIC, QFA_VERSION, parse_qfa
from dumptool.sessions import read_mem_total
from ndmp.data import _acl_start
from ndmp.errors import IllegalArgs
from snapdump.numerals import is_decimal
from tapelib import Shelf


@pytest.mark.parametrize(("text", "answer"), [
    ("0", True), ("0123", True), ("", False), ("²", False), ("١٢", False), ("12²", False), ("-1", False),
    (" 1", False), ("1_000", False),
])
def test_is_decimal_is_ascii_digits_only(text: str, answer: bool) -> None:
    assert is_decimal(text) is answer


def run(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([console_script(argv[0]), *argv[1:]], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, cwd=cwd)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    tree = tmp_path / "src"
    tree.mkdir()
    (tree / "a").write_text("a\n")
    return tree


@pytest.mark.parametrize(("flags", "said"), [
    (["-e", "²"], "-e: '²' is not an inode number"),
    (["-T", "@²"], "-T '@²': not a date"),
    (["-z²"], "illegal compress level -- ²"),
])
def test_pydump_refuses_unicode_digits_in_one_line(tmp_path: Path, src: Path, flags: list[str], said: str) -> None:
    one_line(run("pydump", "-0", "-D", str(tmp_path / "dd"), *flags, "-f", str(tmp_path / "img"), str(src)), said)


def test_pyrestore_by_inode_refuses_unicode_digits(tmp_path: Path, src: Path) -> None:
    image = tmp_path / "img"
    assert run("pydump", "-0", "--quiet", "-f", str(image), str(src)).returncode == 0
    target = tmp_path / "target"
    target.mkdir()
    one_line(run("pyrestore", "-x", "-m", "-f", str(image), "²", cwd=target), "pyrestore: inode ²: not found")


def test_pyndmpd_refuses_a_unicode_digit_port(tmp_path: Path, shelf: Shelf) -> None:
    one_line(run("pyndmpd", "--foreground", "--pid-file", str(tmp_path / "pid"), "--shelf", str(shelf.path),
                 "--listen", "127.0.0.1:²"), "the port must be a number from 0 to 65535")


def test_files_and_env_with_unicode_digits_are_refused_as_not_numbers(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="is not a number"):
        parse_qfa("\n".join([QFA_MAGIC, QFA_VERSION, "²", "", "", ""]))
    with pytest.raises(IllegalArgs, match="not a byte offset"):
        _acl_start({"ACL_START": "²"})
    assert dead_dump("pydump-²") is False
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  ² kB\n")
    assert read_mem_total(meminfo) is None
