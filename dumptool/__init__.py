"""dumptool: the dump engine of snapdump.

It writes and reads BSD dump-format images exactly as Linux dump/restore
0.4b47 do, so that images made by ``pydump`` restore with the real
``/sbin/restore`` and images made by the real ``/sbin/dump`` restore with
``pyrestore``.

The public surface: :class:`Dump` with its :class:`DumpOptions` (a dump, as
a run or as steps), :class:`Restore` with its :class:`RestoreOptions` over a
:class:`VolumeInput` (list, extract, rebuild, resume, compare),
:class:`DumpDates` (the levels and dates of earlier dumps), and the
:class:`DumpError` family, which is all the engine lets out of its entry
points.  The byte layout lives in :mod:`dumptool.format` (pure functions
over bytes, no I/O); ``pydump`` and ``pyrestore`` are :mod:`dumptool.cli`.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import (
    ChecksumError,
    DumpDatesError,
    DumpError,
    FormatError,
    FormatLimitError,
    MediumError,
    NoBaseDumpError,
    SessionError,
    SessionLimitError,
    UnsupportedFormatError,
)

# The engine is imported on first use: a program that only reads an image's
# bytes (dumptool.format) or catches DumpError does not pay for it.
_LAZY = {
    "Dump": ("dump", "Dump"),
    "DumpOptions": ("dump", "DumpOptions"),
    "DumpDates": ("dumpdates", "DumpDates"),
    "Restore": ("restore", "Restore"),
    "RestoreOptions": ("restore_options", "Options"),
    "RestoreError": ("restore_report", "RestoreError"),
    "VolumeInput": ("volume_input", "VolumeInput"),
}


def __getattr__(name: str) -> Any:
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'dumptool' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{where[0]}", __name__), where[1])
    globals()[name] = value
    return value


__all__ = [
    "ChecksumError", "Dump", "DumpDates", "DumpDatesError", "DumpError", "DumpOptions", "FormatError",
    "FormatLimitError", "MediumError", "NoBaseDumpError", "Restore", "RestoreError", "RestoreOptions",
    "SessionError", "SessionLimitError", "UnsupportedFormatError", "VolumeInput",
]
