"""The tape error family.

Every failure a tape operation can report is a :class:`TapeError` carrying the
errno that Linux st would give for the same situation, so that the rmt server
can hand it to a remote client unchanged and a CLI can map it to one line.
"""

from __future__ import annotations

import errno as _errno

from snapdump.errors import ErrnoError


class TapeError(ErrnoError):
    """A tape operation failed; ``errno`` is what Linux st would return (EIO by default)."""


class TapeIOError(TapeError):
    """A medium or positioning error (EIO): past end of data, at BOT, etc."""

    errno = _errno.EIO


class MediumError(TapeIOError):
    """The cartridge is damaged where the head went (EIO, st's MEDIUM ERROR).

    A drive that meets one no longer trusts its place for writing: it refuses
    writes until the operator positions it explicitly (see
    :class:`tapelib.loopback.LoopbackDrive`)."""


class EndOfMedium(TapeError):
    """No room left on the cartridge (ENOSPC); nothing of the record was written."""

    errno = _errno.ENOSPC


class WriteProtected(TapeError):
    """The cartridge's write-protect tab is set (EROFS on a writable open, EACCES on a write)."""

    errno = _errno.EROFS


class DriveBusy(TapeError):
    """Another process holds the drive (EBUSY)."""

    errno = _errno.EBUSY


class NoMedium(TapeError):
    """The drive has no cartridge loaded, or it is offline (ENOMEDIUM)."""

    errno = _errno.ENOMEDIUM


class NoSuchDevice(TapeError):
    """The device name names no drive, cartridge or shelf (ENOENT)."""

    errno = _errno.ENOENT


class NotACartridge(TapeError):
    """A file is not a loopback cartridge, or is damaged beyond its first record."""

    errno = _errno.EMEDIUMTYPE


class BufferTooSmall(TapeError):
    """A read buffer is shorter than the next record (ENOMEM, as Linux st)."""

    errno = _errno.ENOMEM


class InvalidArgument(TapeError):
    """A bad count, block size or operation (EINVAL)."""

    errno = _errno.EINVAL


class ShelfError(TapeError):
    """A shelf or changer request that cannot be carried out (EINVAL)."""

    errno = _errno.EINVAL


# The subclass for each errno a drive (local or remote) may report.
_ERRNO_CLASSES: dict[int, type[TapeError]] = {
    _errno.EIO: TapeIOError,
    _errno.ENOSPC: EndOfMedium,
    _errno.EROFS: WriteProtected,
    _errno.EACCES: WriteProtected,
    _errno.EBUSY: DriveBusy,
    _errno.ENOMEDIUM: NoMedium,
    _errno.ENOMEM: BufferTooSmall,
    _errno.EINVAL: InvalidArgument,
    _errno.ENOENT: NoSuchDevice,
    _errno.ENXIO: NoSuchDevice,
    _errno.ENODEV: NoSuchDevice,
}


def error_for_errno(code: int, message: str) -> TapeError:
    """The :class:`TapeError` subclass for ``code`` (plain TapeError for an
    errno without one), carrying ``message`` and that same errno."""
    return _ERRNO_CLASSES.get(code, TapeError)(message, errno=code)
