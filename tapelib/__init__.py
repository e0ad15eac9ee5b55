"""Tape drives that behave like tape.

The public surface: :class:`TapeDrive` and :class:`TapeStatus` (the one
drive interface), :func:`open_device` (a device name to an open drive),
:class:`Shelf` (a folder of cartridges and drives), :class:`Cartridge`, and
the :class:`TapeError` family.
"""

from .cartridge import Cartridge
from .device import is_tape_device, open_device, resolve_device_name
from .drive import TapeDrive, TapeStatus
from .errors import (
    BufferTooSmall,
    DriveBusy,
    EndOfMedium,
    InvalidArgument,
    NoMedium,
    NoSuchDevice,
    NotACartridge,
    ShelfError,
    TapeError,
    TapeIOError,
    WriteProtected,
)
from .loopback import LoopbackDrive, Position
from .mtio import MtOp
from .shelf import Shelf, ShelfStatus

__all__ = [
    "BufferTooSmall", "Cartridge", "DriveBusy", "EndOfMedium", "InvalidArgument",
    "LoopbackDrive", "MtOp", "NoMedium", "NoSuchDevice", "NotACartridge", "Position",
    "Shelf", "ShelfError", "ShelfStatus", "TapeDrive", "TapeError", "TapeIOError",
    "TapeStatus", "WriteProtected", "is_tape_device", "open_device", "resolve_device_name",
]
