"""The bases of the project's error families.

Each package has one error family (:class:`~tapelib.TapeError`,
:class:`~snapfs.SnapfsError`, :class:`~dumptool.errors.DumpError`,
:class:`~ndmp.errors.NdmpError`): a failure a user can cause, whose message
names the thing and can be printed as one line.  They derive from
:class:`SnapdumpError`, so :func:`snapdump.exits.run` maps any of them to
one line and an exit status.  Tapes and volumes answer as the kernel would
(Linux st, a Linux file system): their families carry an errno and derive
from :class:`ErrnoError`, so the rmt server and the FUSE adapter hand the
number on unchanged.

This module is here, not in one of the packages, so that none of them has to
import another's concept to share it.
"""

from __future__ import annotations

import errno as _errno


class SnapdumpError(Exception):
    """A failure the user can act on; :attr:`message` is its one line."""

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ErrnoError(SnapdumpError):
    """A failure the kernel would report with ``errno`` (the class's, or the one given)."""

    errno: int = _errno.EIO

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        if errno is not None:
            self.errno = errno


def os_error_text(exc: OSError) -> str:
    """``FILE: reason`` (or the reason alone) of an ``OSError``, as a C program says it."""
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}"
