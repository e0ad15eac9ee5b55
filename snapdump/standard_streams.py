"""The standard streams a command starts with, and those the shell closed.

A shell's ``>&-`` or ``<&-`` starts a command with file descriptor 1 or 0
closed.  The next file the command opens would then get that number: a state
file would take fd 1, and an image written to "standard output" would land
in it.  :func:`reopen_closed` (called by :func:`snapdump.exits.run` before a
command's body, so for every command) puts ``/dev/null`` on each of fds 0, 1
and 2 that is closed, so no later file can take those numbers, and makes
``sys.stdin``, ``sys.stdout`` and ``sys.stderr`` usable again (Python leaves
them ``None``).  What was closed is remembered: a command that *needs* one of
them (an image on standard output, names read from standard input) calls
:func:`require` before it does anything, and is refused in one line.
"""

from __future__ import annotations

import os
import sys

from .errors import SnapdumpError

STDIN, STDOUT, STDERR = 0, 1, 2

_NAMES = {STDIN: "standard input", STDOUT: "standard output", STDERR: "standard error"}
_STREAMS = {STDIN: "stdin", STDOUT: "stdout", STDERR: "stderr"}

#: the standard fds found closed (by any call of reopen_closed in this process)
_closed: set[int] = set()


class StreamClosed(SnapdumpError):
    """A command needs a standard stream its caller closed."""


def reopen_closed() -> frozenset[int]:
    """Open ``/dev/null`` on each of fds 0, 1, 2 that is closed and give the
    ``sys`` stream of each a file on it; the fds found closed so far."""
    for fd in (STDIN, STDOUT, STDERR):
        if _is_open(fd):
            continue
        null = os.open(os.devnull, os.O_RDONLY if fd == STDIN else os.O_WRONLY)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
        _closed.add(fd)
    for fd in _closed:
        name = _STREAMS[fd]
        if getattr(sys, name) is None:
            stream = open(fd, "r" if fd == STDIN else "w", encoding="utf-8",  # noqa: SIM115 (lives as long as sys)
                          errors="surrogateescape" if fd == STDIN else "backslashreplace", closefd=False)
            setattr(sys, name, stream)
            if getattr(sys, f"__{name}__") is None:
                setattr(sys, f"__{name}__", stream)
    return frozenset(_closed)


def is_closed(fd: int) -> bool:
    """Whether standard fd *fd* was closed when the command started (it reads or writes /dev/null now)."""
    return fd in _closed


def require(fd: int, use: str) -> None:
    """Refuse (:class:`StreamClosed`, one line) when standard fd *fd* was closed
    at the start: ``standard output is closed: USE``."""
    if fd in _closed:
        raise StreamClosed(f"{_NAMES[fd]} is closed: {use}")


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True
