"""The dump engine's error family.

Every failure a user can cause (a damaged or foreign image, a value the dump
format cannot hold, ...) is a :class:`DumpError` whose message names the
thing and says what to do, so that a CLI can print it as one line on stderr.
Programming mistakes (wrong types, impossible arguments from our own code)
stay ``TypeError``/``ValueError``.
"""

from __future__ import annotations


class DumpError(Exception):
    """A dump or restore failed for a reason the user can act on."""

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class FormatError(DumpError):
    """Bytes are not a valid dump record: not a dump image, or damaged."""


class ChecksumError(FormatError):
    """A header block has the dump magic but a wrong checksum (a damaged block)."""


class UnsupportedFormatError(FormatError):
    """A recognised but unsupported image variant (old 4.3BSD or FreeBSD UFS2 headers)."""


class FormatLimitError(DumpError):
    """A value cannot be written in the dump format (too long, too large, out of range).

    Raised by the writer side of :mod:`dumptool.format`; the dump engine decides
    whether to skip the file, truncate, or stop.
    """


class MediumError(DumpError):
    """Reading or writing the dump medium (tape, file, pipe) failed.

    The message names the device; ``errno`` is the system's (or Linux st's)
    error number when one is known, else ``None``.
    """

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class DumpDatesError(DumpError):
    """The dumpdates file (or its inode-map sidecar) cannot be read or written."""


class NoBaseDumpError(DumpDatesError):
    """An incremental dump was asked for but no lower-level dump is recorded."""


class SessionError(DumpError):
    """A dump or restore session cannot start: its state folder is unusable or the limit is set wrong."""


class SessionLimitError(SessionError):
    """All session slots are held: ``running`` sessions run, ``limit`` may."""

    def __init__(self, message: str, running: int, limit: int) -> None:
        super().__init__(message)
        self.running = running
        self.limit = limit


class RestartError(DumpError):
    """An interrupted dump cannot be restarted (the message says which condition fails)."""
