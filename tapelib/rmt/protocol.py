"""What both ends of the rmt protocol agree on: command letters, the open-mode
line, and the operation numbers of the extended (version 1) protocol.

The numbers in an ``O`` mode line and in ``I`` are the *client's* native
ones; every client worth serving (GNU tar, Linux dump and restore, mt-st
over rmt) runs on Linux, so these are Linux numbers, defined here once rather
than taken from the ``os`` module of whatever machine the server runs on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import InvalidArgument
from ..mtio import MtOp

# -- command letters ---------------------------------------------------------
CMD_OPEN = b"O"
CMD_CLOSE = b"C"
CMD_LSEEK = b"L"
CMD_WRITE = b"W"
CMD_READ = b"R"
CMD_IOCTL = b"I"
CMD_EXT_IOCTL = b"i"
CMD_STATUS = b"S"
CMD_EXT_STATUS = b"s"
CMD_VERSION = b"V"

REPLY_OK = b"A"
REPLY_ERROR = b"E"
REPLY_FATAL = b"F"

#: Longest argument line either end accepts (a path plus slack).
MAX_LINE = 4096 + 64
#: Longest reply status line a client accepts (GNU's rtapelib allows 64).
MAX_REPLY_LINE = 64
#: Longest error message line a server sends.
MAX_MESSAGE = 200

#: The answer to ``V`` (FreeBSD's and dump's rmt say 2).
RMT_VERSION_REPLY = 2

#: ``I`` with this op is the extended protocol's version probe (RMTIVERSION).
RMTIVERSION = -1
#: The protocol version the probe reports; from then on ``I`` ops 0-10 are BSD numbers.
RMT_EXTENDED_VERSION = 1

#: BSD ``mt_op`` numbers, as a version-1 client sends them in ``I``: the
#: list's order (0-7 from 4.4BSD, 8-10 as dump's rmt adds them).
BSD_MTOPS: dict[int, MtOp] = dict(enumerate([
    MtOp.MTWEOF, MtOp.MTFSF, MtOp.MTBSF, MtOp.MTFSR, MtOp.MTBSR, MtOp.MTREW, MtOp.MTOFFL, MtOp.MTNOP,
    MtOp.MTRETEN, MtOp.MTERASE, MtOp.MTEOM,
]))

# ``i`` (extended ioctl) ops, RMTI_* in Solaris' and Schilling's rmt.
RMTI_CACHE = 0
RMTI_NOCACHE = 1
RMTI_RETEN = 2
RMTI_ERASE = 3
RMTI_EOM = 4
RMTI_NBSF = 5

# -- open modes --------------------------------------------------------------
# Linux <fcntl.h> values (x86, x86-64, arm, arm64, riscv: the asm-generic ones).
O_ACCMODE = 0o3
O_RDONLY = 0o0
O_WRONLY = 0o1
O_RDWR = 0o2
O_CREAT = 0o100
O_EXCL = 0o200
O_TRUNC = 0o1000
O_APPEND = 0o2000

_ACCESS_NAMES = {"RDONLY": O_RDONLY, "WRONLY": O_WRONLY, "RDWR": O_RDWR}
_FLAG_NAMES = {"CREAT": O_CREAT, "EXCL": O_EXCL, "TRUNC": O_TRUNC, "APPEND": O_APPEND}
# Flags clients send that change nothing for a tape or for where bytes land.
_IGNORED_NAMES = frozenset({
    "NOCTTY", "NONBLOCK", "NDELAY", "SYNC", "FSYNC", "DSYNC", "RSYNC", "ASYNC",
    "LARGEFILE", "TEXT", "BINARY", "PRIV", "CLOEXEC", "NOATIME",
})


@dataclass(frozen=True)
class OpenMode:
    """The open flags an ``O`` command asks for, reduced to what matters."""

    access: int = O_RDONLY
    create: bool = False
    exclusive: bool = False
    truncate: bool = False
    append: bool = False

    @property
    def writable(self) -> bool:
        return self.access != O_RDONLY

    @property
    def linux_flags(self) -> int:
        flags = self.access
        for on, bit in ((self.create, O_CREAT), (self.exclusive, O_EXCL),
                        (self.truncate, O_TRUNC), (self.append, O_APPEND)):
            if on:
                flags |= bit
        return flags

    def os_flags(self) -> int:
        """The same request in this machine's ``os.O_*`` numbers."""
        flags = {O_RDONLY: os.O_RDONLY, O_WRONLY: os.O_WRONLY, O_RDWR: os.O_RDWR}[self.access]
        for on, bit in ((self.create, os.O_CREAT), (self.exclusive, os.O_EXCL),
                        (self.truncate, os.O_TRUNC), (self.append, os.O_APPEND)):
            if on:
                flags |= bit
        return flags

    def line(self) -> str:
        """The mode line GNU tar would send: ``"66 O_RDWR|O_CREAT"``."""
        names = [next(n for n, v in _ACCESS_NAMES.items() if v == self.access)]
        names += [n for n, v in _FLAG_NAMES.items() if self.linux_flags & v]
        return f"{self.linux_flags} " + "|".join(f"O_{n}" for n in names)

    @classmethod
    def from_linux_flags(cls, flags: int) -> "OpenMode":
        access = flags & O_ACCMODE
        if access == O_ACCMODE:
            raise InvalidArgument(f"open mode {flags}: O_WRONLY and O_RDWR together")
        return cls(access, bool(flags & O_CREAT), bool(flags & O_EXCL),
                   bool(flags & O_TRUNC), bool(flags & O_APPEND))

    @classmethod
    def parse(cls, line: str) -> "OpenMode":
        """Read a mode line in any form clients send: ``"65"`` (BSD),
        ``"65 O_WRONLY|O_CREAT"`` (GNU tar, dump), ``"O_WRONLY|O_CREAT"``,
        ``"WRONLY|CREAT"`` or ``"1|64"``.  When both a number and names are
        given, the names win, as in GNU's, dump's and Schilling's servers:
        dump sends only ``mode & O_ACCMODE`` as the number."""
        text = line.strip()
        number, _, symbols = text.partition(" ")
        symbols = symbols.strip()
        if _is_int(number):
            if not symbols:
                return cls.from_linux_flags(int(number))
        else:
            symbols = text
        if not symbols:
            raise InvalidArgument("empty open mode")
        flags = 0
        access: set[int] = set()
        for token in symbols.split("|"):
            name = token.strip()
            if _is_int(name):
                flags |= int(name)
                continue
            name = name.removeprefix("O_")
            if name in _ACCESS_NAMES:
                access.add(_ACCESS_NAMES[name])
            elif name in _FLAG_NAMES:
                flags |= _FLAG_NAMES[name]
            elif name not in _IGNORED_NAMES:
                raise InvalidArgument(f"unknown open flag {token.strip()!r}")
        if len(access) > 1:
            raise InvalidArgument(f"open mode {symbols!r} names more than one access mode")
        return cls.from_linux_flags(flags | (access.pop() if access else 0))


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True
