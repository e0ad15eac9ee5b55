"""Tape drives that behave like tape.

The public surface: :class:`TapeDrive` and :class:`TapeStatus` (the one
drive interface), :func:`open_device` (a device name to an open drive),
:class:`Shelf` (a folder of cartridges and drives), :class:`Cartridge`, and
the :class:`TapeError` family.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import (
    BufferTooSmall,
    DriveBusy,
    EndOfMedium,
    InvalidArgument,
    MediumError,
    NoMedium,
    NoSuchDevice,
    NotACartridge,
    ShelfError,
    TapeError,
    TapeIOError,
    WriteProtected,
)

# The rest is imported on first use: a tool that only asks whether a name is
# a tape device should not pay for the cartridge and shelf machinery.
_LAZY = {
    "Cartridge": "cartridge",
    "is_tape_device": "device",
    "open_device": "device",
    "resolve_device_name": "device",
    "TapeDrive": "drive",
    "TapeStatus": "drive",
    "LoopbackDrive": "loopback",
    "Position": "position",
    "MtOp": "mtio",
    "Shelf": "shelf",
    "ShelfStatus": "shelf",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tapelib' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "BufferTooSmall", "Cartridge", "DriveBusy", "EndOfMedium", "InvalidArgument",
    "LoopbackDrive", "MediumError", "MtOp", "NoMedium", "NoSuchDevice", "NotACartridge", "Position",
    "Shelf", "ShelfError", "ShelfStatus", "TapeDrive", "TapeError", "TapeIOError",
    "TapeStatus", "WriteProtected", "is_tape_device", "open_device", "resolve_device_name",
]
