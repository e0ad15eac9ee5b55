"""Turning a device name (``-f``, ``$TAPE``) into an open drive.

A name is one of:

* ``host:device`` or ``user@host:device``: a drive on another machine, reached
  through rmt over ``$RSH`` (default ``ssh``), unless a local file of that
  name exists;
* a character device: a Linux st drive such as ``/dev/nst0``;
* a shelf device file: ``SHELF/nst0`` (non-rewinding) or ``SHELF/st0``.

Anything else is not a tape device.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .drive import TapeDrive
from .errors import NoSuchDevice
from .devicefile import read_device_marker

DEFAULT_TAPE_ENV = "TAPE"


def resolve_device_name(name: str | None) -> str:
    """``name``, else ``$TAPE``; a clear error when neither is given."""
    if name:
        return name
    env = os.environ.get(DEFAULT_TAPE_ENV)
    if env:
        return env
    raise NoSuchDevice("no tape device given: use -f DEVICE or set TAPE (e.g. TAPE=SHELF/nst0)")


def is_remote(name: str) -> bool:
    """True for ``[user@]host:path`` names, as dump and GNU tar decide: a colon
    before any slash, and no local file by that name."""
    colon = name.find(":")
    if colon <= 0:
        return False
    slash = name.find("/")
    if 0 <= slash < colon:
        return False
    return not os.path.exists(name)


def is_tape_device(name: str) -> bool:
    """Whether :func:`open_device` would treat ``name`` as a tape drive
    (rather than, say, a plain image file the caller should write itself)."""
    if is_remote(name):
        return True
    try:
        st = os.stat(name)
    except OSError:
        return False
    if stat.S_ISCHR(st.st_mode):
        return True
    return stat.S_ISREG(st.st_mode) and read_device_marker(Path(name)) is not None


def open_device(name: str | None, writable: bool = False) -> TapeDrive:
    """Open the drive ``name`` names (or ``$TAPE``)."""
    name = resolve_device_name(name)
    if is_remote(name):
        from .rmt.client import RemoteDrive

        return RemoteDrive(name, writable=writable)
    try:
        st = os.stat(name)
    except FileNotFoundError:
        raise NoSuchDevice(f"{name}: no such tape device") from None
    except OSError as exc:
        raise NoSuchDevice(f"{name}: {exc.strerror}") from None
    if stat.S_ISCHR(st.st_mode):
        from .linux_st import LinuxStDrive

        return LinuxStDrive(name, writable=writable)
    marker = read_device_marker(Path(name)) if stat.S_ISREG(st.st_mode) else None
    if marker is None:
        raise NoSuchDevice(
            f"{name}: not a tape device (expected a shelf drive such as SHELF/nst0, "
            "a /dev/nst* device or host:device)")
    from .shelf import Shelf

    drive, rewind = marker
    shelf = Shelf(Path(name).parent)
    return shelf.open_drive(drive, rewind=rewind, writable=writable)
