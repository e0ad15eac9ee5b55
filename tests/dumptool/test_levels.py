"""Dump levels as Linux dump 0.4b47 parses them, and ``-h``, its nodump level.

dump's getopt takes every digit flag as one more digit of the level: ``-15``
and ``-1 -5`` are level 15, ``-10`` level 10 (not a level 0 that starts a
new chain).  ``-h LEVEL`` is the level from which the nodump flag
(``chattr +d``) is honoured (default 1): a file with it, and a directory with
it with everything under, are left out.
"""

from __future__ import annotations

import fcntl
import os
import re
import struct
import subprocess
import time
from pathlib import Path

import pytest

from dumptool.dumpdates import DumpDates
from dumptool.format import ByteOrder, Header
from dumptool.livetree import FS_IOC_GETFLAGS
from samples import DUMP, ext4_volume, listing, real_restore
from test_pydump import pydump

FS_IOC_SETFLAGS = 0x40086602
FS_NODUMP_FL = 0x40  # chattr +d


def next_second() -> None:
    now = time.time()
    time.sleep(int(now) + 1 - now + 0.02)


def header(image: Path) -> Header:
    return Header.unpack(image.read_bytes()[:1024], ByteOrder.LITTLE)


def levels(dates: Path) -> list[int]:
    return [int(line.split()[1]) for line in dates.read_text().splitlines()]


def test_digits_run_together_into_one_level_and_the_chain_follows(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("0")
    dates = tmp_path / "dumpdates"
    pydump("-0", "-u", "--quiet", "-D", str(dates), "-f", str(tmp_path / "l0"), str(src))
    pydump("-15", "-u", "--quiet", "-D", str(dates), "-f", str(tmp_path / "l15"), str(src))
    assert header(tmp_path / "l15").c_level == 15
    assert levels(dates) == [0, 15]
    next_second()
    # -10 is level 10, based on the level 0 (the newest lower one), not a new level 0
    pydump("-10", "-u", "--quiet", "-D", str(dates), "-f", str(tmp_path / "l10"), str(src))
    l0, l15, l10 = header(tmp_path / "l0"), header(tmp_path / "l15"), header(tmp_path / "l10")
    assert (l10.c_level, l10.c_ddate) == (10, l0.c_date)
    assert levels(dates) == [0, 15, 10]
    # dump's rule: digit flags anywhere add digits (-1 -u -6 is level 16), based on the newest lower: 10
    pydump("-1", "-u", "-6", "--quiet", "-D", str(dates), "-f", str(tmp_path / "l16"), str(src))
    l16 = header(tmp_path / "l16")
    assert (l16.c_level, l16.c_ddate) == (16, l10.c_date)
    assert levels(dates) == [0, 15, 10, 16]
    assert l15.c_ddate == l0.c_date
    assert DumpDates(dates).base_for(str(src), 11).level == 10
    bad = pydump("-32", "-D", str(dates), "-f", str(tmp_path / "x"), str(src), check=False)
    assert bad.returncode == 1 and bad.stderr.decode().strip() == "pydump: dump level 32 is out of range 0 to 31"


def test_the_real_dump_writes_and_reads_multi_digit_lines_as_pydump_does(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    real_dates = tmp_path / "real-dates"
    real_dates.touch()
    with ext4_volume(src, tmp_path / "fs.img", "4M") as loop:
        loop.dump(0, tmp_path / "r0", "-u", "-D", str(real_dates))
        next_second()
        loop.dump(15, tmp_path / "r15", "-u", "-D", str(real_dates))
        real_lines = real_dates.read_text().splitlines()
        assert [line.split()[1] for line in real_lines] == ["0", "15"]
        # pydump reads the real dump's file: its level 16 is based on the level 15
        ours = DumpDates(real_dates)
        assert ours.base_for(loop.dev, 16).level == 15 and ours.base_for(loop.dev, 15).level == 0
        # pydump's lines, under the loop device's name, are what the real dump reads
        py_dates = tmp_path / "py-dates"
        pydump("-0", "-u", "--quiet", "-D", str(py_dates), "-f", str(tmp_path / "p0"), str(src))
        pydump("-15", "-u", "--quiet", "-D", str(py_dates), "-f", str(tmp_path / "p15"), str(src))
        py_lines = py_dates.read_text().replace(str(src), loop.dev).splitlines()
        shape = re.compile(r"\S+ \d+ \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4} [+-]\d{4}")
        assert all(shape.fullmatch(line) for line in real_lines + py_lines)
        (tmp_path / "py-dates-dev").write_text("\n".join(py_lines) + "\n")
        done = subprocess.run([DUMP, "-5", "-D", str(tmp_path / "py-dates-dev"), "-f", str(tmp_path / "r5"),
                               loop.dev], capture_output=True, text=True, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr
        # the real dump takes our level 0 as the base of a level 5 (not our 15 misread as 1)
        p0 = header(tmp_path / "p0")
        assert f"Date of last level 0 dump: {time.ctime(p0.c_date)}" in done.stderr


def _set_nodump(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        flags = bytearray(8)
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, flags, True)
        value = struct.unpack("=i", flags[:4])[0] | FS_NODUMP_FL
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("=i", value) + bytes(4))
    finally:
        os.close(fd)


def _names(image: Path, tmp_path: Path) -> set[str]:
    return set(listing(real_restore("-t", "-f", str(image), cwd=tmp_path, tmp=tmp_path).stdout))


def test_dash_h_is_the_nodump_level(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "skipdir" / "sub").mkdir(parents=True)
    (src / "keep").write_text("keep")
    (src / "secret").write_text("secret")
    (src / "skipdir" / "inner").write_text("inner")
    (src / "skipdir" / "sub" / "deep").write_text("deep")
    _set_nodump(src / "secret")
    _set_nodump(src / "skipdir")
    dates = tmp_path / "dumpdates"
    everything = {".", "./keep", "./secret", "./skipdir", "./skipdir/inner", "./skipdir/sub", "./skipdir/sub/deep"}
    # level 0 under the default -h 1: the flag is not honoured
    pydump("-0", "-u", "--quiet", "-D", str(dates), "-f", str(tmp_path / "l0"), str(src))
    assert _names(tmp_path / "l0", tmp_path) == everything
    # -h 0: honoured at level 0 as well
    pydump("-0", "-h", "0", "--quiet", "-D", str(dates), "-f", str(tmp_path / "h0"), str(src))
    assert _names(tmp_path / "h0", tmp_path) == {".", "./keep"}
    for name in ("keep", "secret", "skipdir/inner", "skipdir/sub/deep"):
        (src / name).write_text("changed")
    # level 1, default -h 1: honoured; -h 2: not
    pydump("-1", "--quiet", "-D", str(dates), "-f", str(tmp_path / "l1"), str(src))
    assert _names(tmp_path / "l1", tmp_path) == {".", "./keep"}
    pydump("-1", "-h2", "--quiet", "-D", str(dates), "-f", str(tmp_path / "l1h2"), str(src))
    assert _names(tmp_path / "l1h2", tmp_path) == everything
    bad = pydump("-0", "-h", "11", "-f", str(tmp_path / "x"), str(src), check=False)
    assert bad.returncode == 1 and bad.stderr.decode().strip() == "pydump: honor level must be between 0 and 10"


def test_dash_h_leaves_out_what_the_real_dump_leaves_out(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "skipdir" / "sub").mkdir(parents=True)
    for name in ("keep", "secret", "skipdir/inner", "skipdir/sub/deep"):
        (src / name).write_text(name)
    with ext4_volume(src, tmp_path / "fs.img", "4M") as loop:
        mnt = loop.mount(tmp_path / "mnt")
        _set_nodump(mnt / "secret")
        _set_nodump(mnt / "skipdir")
        pydump("-0", "-h", "0", "--quiet", "-f", str(tmp_path / "ours"), str(mnt))
        loop.umount()
        loop.dump(0, tmp_path / "real", "-h", "0")
    ours, real = _names(tmp_path / "ours", tmp_path), _names(tmp_path / "real", tmp_path)
    assert ours == real == {".", "./lost+found", "./keep"}
