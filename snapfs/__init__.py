"""snapfs: a copy-on-write volume with O(1) named snapshots.

The public surface is the synchronous :class:`Volume` API (the FUSE adapter
and the CLI sit on it), the values it hands out (:mod:`snapfs.values`), :func:`fsck`, :mod:`snapfs.reader` (a
held snapshot read by another process while the mount runs) and the
:class:`SnapfsError` family.  See ``snapshots`` for the epoch algorithm and
``store`` for the tables beneath the Volume.
"""

import importlib
from typing import Any

from .errors import NoSpace, NotAVolume, SnapfsError, SnapshotBusy, VolumeBusy
from .fsck import FsckReport, fsck, fsck_path  # here, not lazily: the name ``fsck`` is also a module's
from .values import Attrs, DirEntry, SnapshotInfo, SpaceInfo, StatFS

# The Volume (and all it is made of) is imported on first use: a reader of a held
# snapshot (dumptool's engine) or a client of a mount does not pay for it.
_VOLUME_NAMES = ("BACKUP_SNAPSHOT_PREFIX", "DEFAULT_BLOCK_SIZE", "NAME_MAX", "RENAME_EXCHANGE", "RENAME_NOREPLACE",
                 "RENAME_WHITEOUT", "ROOT_INO", "XATTR_CREATE", "XATTR_NAME_MAX", "XATTR_REPLACE", "XATTR_SIZE_MAX",
                 "Volume")


def __getattr__(name: str) -> Any:
    if name not in _VOLUME_NAMES:
        raise AttributeError(f"module 'snapfs' has no attribute {name!r}")
    value = getattr(importlib.import_module(".volume", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "Attrs", "BACKUP_SNAPSHOT_PREFIX", "DEFAULT_BLOCK_SIZE", "DirEntry", "FsckReport", "NAME_MAX",
    "NoSpace", "NotAVolume", "RENAME_EXCHANGE", "RENAME_NOREPLACE", "RENAME_WHITEOUT",
    "ROOT_INO", "SnapfsError",
    "SnapshotBusy", "SnapshotInfo", "SpaceInfo", "StatFS", "Volume", "VolumeBusy", "XATTR_CREATE",
    "XATTR_NAME_MAX", "XATTR_REPLACE", "XATTR_SIZE_MAX", "fsck", "fsck_path",
]
