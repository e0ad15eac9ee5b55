"""A shelf's device files (``SHELF/nst0``, ``SHELF/st0``): small JSON markers
that name a drive and whether closing it rewinds.

Kept apart from :mod:`tapelib.shelf` so that deciding whether a name is a
tape device costs one small read and no import of the shelf machinery.
"""

from __future__ import annotations

import json
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
