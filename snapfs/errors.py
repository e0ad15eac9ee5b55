"""The snapfs error family.

Every failure a Volume call can report is a :class:`SnapfsError` carrying the
errno a Linux file system would give for the same situation, so the FUSE
adapter can raise ``pyfuse3.FUSEError(e.errno)`` unchanged and a CLI can print
the message as one line.
"""

from __future__ import annotations

import errno as _errno

from snapdump.errors import ErrnoError


class SnapfsError(ErrnoError):
    """A volume operation failed; ``errno`` is what a Linux file system would return (EIO by default)."""


class NotAVolume(SnapfsError):
    """The folder holds no snapfs volume, or one of an unknown schema (EINVAL)."""

    errno = _errno.EINVAL


class VolumeBusy(SnapfsError):
    """Another process has the volume open or mounted (EBUSY)."""

    errno = _errno.EBUSY


class NoSpace(SnapfsError):
    """The volume's size or inode count is exhausted (ENOSPC); nothing was written."""

    errno = _errno.ENOSPC


class SnapshotBusy(SnapfsError):
    """The snapshot is held (by a backup) and cannot be deleted (EBUSY)."""

    errno = _errno.EBUSY


def err(code: int, message: str) -> SnapfsError:
    """A plain :class:`SnapfsError` with ``code`` (the common case for POSIX errors)."""
    return SnapfsError(message, code)
