"""snapfs: a copy-on-write volume with O(1) named snapshots.

The public surface is the synchronous :class:`Volume` API (the FUSE adapter
and the CLI sit on it), the values it hands out (:mod:`snapfs.values`), :func:`fsck`, :mod:`snapfs.reader` (a
held snapshot read by another process while the mount runs) and the
:class:`SnapfsError` family.  See ``snapshots`` for the epoch algorithm and
``store`` for the tables beneath the Volume.
"""

from .errors import NoSpace, NotAVolume, SnapfsError, SnapshotBusy, VolumeBusy
from .fsck import FsckReport, fsck, fsck_path
from .values import Attrs, DirEntry, SnapshotInfo, SpaceInfo, StatFS
from .volume import (
    BACKUP_SNAPSHOT_PREFIX,
    DEFAULT_BLOCK_SIZE,
    NAME_MAX,
    RENAME_EXCHANGE,
    RENAME_NOREPLACE,
    RENAME_WHITEOUT,
    ROOT_INO,
    XATTR_CREATE,
    XATTR_NAME_MAX,
    XATTR_REPLACE,
    XATTR_SIZE_MAX,
    Volume,
)

__all__ = [
    "Attrs", "BACKUP_SNAPSHOT_PREFIX", "DEFAULT_BLOCK_SIZE", "DirEntry", "FsckReport", "NAME_MAX",
    "NoSpace", "NotAVolume", "RENAME_EXCHANGE", "RENAME_NOREPLACE", "RENAME_WHITEOUT",
    "ROOT_INO", "SnapfsError",
    "SnapshotBusy", "SnapshotInfo", "SpaceInfo", "StatFS", "Volume", "VolumeBusy", "XATTR_CREATE",
    "XATTR_NAME_MAX", "XATTR_REPLACE", "XATTR_SIZE_MAX", "fsck", "fsck_path",
]
