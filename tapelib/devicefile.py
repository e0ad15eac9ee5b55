"""A shelf's device files (``SHELF/nst0``, ``SHELF/st0``): small JSON markers
that name a drive and whether closing it rewinds.

Kept apart from :mod:`tapelib.shelf` so that deciding whether a name is a
tape device costs one small read and no import of the shelf machinery.
:func:`shelf_file_refusal` tells the shelf's other files (cartridges, state)
from plain files, which a tool writing to a plain file must not take them for.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

DEVICE_FORMAT = "snapdump-tape-device"


def device_marker(drive: int, rewind: bool) -> str:
    """The text of a drive's device file."""
    return json.dumps({"format": DEVICE_FORMAT, "drive": drive, "rewind": rewind}) + "\n"


def read_device_marker(path: Path) -> tuple[int, bool] | None:
    """``(drive, rewind)`` if ``path`` is a shelf device file, else ``None``."""
    try:
        with open(path, "rb") as f:
            head = f.read(256)
        data = json.loads(head)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != DEVICE_FORMAT:
        return None
    drive, rewind = data.get("drive"), data.get("rewind")
    if not isinstance(drive, int) or not isinstance(rewind, bool):
        return None
    return drive, rewind


#: The files a shelf keeps for itself beside its device files (see :mod:`tapelib.shelf`).
_SHELF_OWN_FILES = re.compile(r"^(shelf\.json|state\.json|\.shelf\.lock|\.drive[0-9]+\.lock)$")


def _json_format(path: Path) -> object:
    """The ``format`` field of the small JSON file *path* (None: no such file, or not one)."""
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read(64 * 1024))
    except (OSError, ValueError):
        return None
    return data.get("format") if isinstance(data, dict) else None


def _shown(name: str, up: int, real: Path) -> str:
    """The folder *up* levels above *name* as the caller would write it (the
    real path *real* when links make it another)."""
    folder = os.path.normpath(os.path.join(os.path.dirname(name), *[".."] * (up - 1)))
    return folder if Path(os.path.realpath(folder)) == real else str(real)


def shelf_file_refusal(name: str) -> str | None:
    """Why the file *name* may not be opened as a plain file for writing
    (None: it may): it is a file a shelf keeps for itself, a cartridge's
    records (``B.awstape``, whose sidecar ``B.json`` is a snapdump
    cartridge's) or its sidecar, or a shelf's ``shelf.json``,
    ``state.json`` or lock files.  Written in place, a cartridge would be
    changed past its drive's checks (a write-protect tab, a drive another
    process holds, damage fences); the reason names the drive to write
    through instead (``SHELF/nstN``).  Reading them stays allowed."""
    real = Path(os.path.realpath(name))
    if real.suffix in (".awstape", ".json"):
        from .cartridge import CARTRIDGE_SUFFIX, METADATA_FORMAT, metadata_path
        from .shelf import SHELF_FORMAT

        records = real.with_suffix(CARTRIDGE_SUFFIX)
        if _json_format(metadata_path(records)) == METADATA_FORMAT:
            barcode = records.stem
            folder = records.parent.parent
            if _json_format(folder / "shelf.json") != SHELF_FORMAT:
                return (f"cartridge {barcode}'s own file, not a plain file: write to it through a shelf "
                        "drive (SHELF/nstN)")
            shelf = _shown(name, 2, folder)
            return (f"cartridge {barcode}'s own file, not a plain file: write to it through "
                    f"{_drive_for(folder, shelf, barcode)}")
    if _SHELF_OWN_FILES.match(real.name):
        from .shelf import SHELF_FORMAT

        if _json_format(real.parent / "shelf.json") == SHELF_FORMAT:
            shelf = _shown(name, 1, real.parent)
            drive = os.path.join(shelf, "nst0")
            return f"the shelf's own file, not a plain file: write to its cartridges through {drive}"
    return None


def _drive_for(folder: Path, shown: str, barcode: str) -> str:
    """The drive to write cartridge *barcode* of the shelf *folder* through:
    the one holding it, else drive 0 once it is loaded there."""
    from .errors import TapeError
    from .shelf import Shelf

    try:
        drives = Shelf(folder).status().drives
    except TapeError:
        drives = []
    for drive in drives:
        if drive.barcode == barcode:
            return os.path.join(shown, f"nst{drive.index}")
    return f"{os.path.join(shown, 'nst0')} once loaded (pytape load {shown} {barcode})"
