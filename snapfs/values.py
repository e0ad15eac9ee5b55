"""The values a Volume hands out (attributes, directory entries, snapshot and space figures) and the
volume's ``meta`` row: plain data, no behaviour."""

from __future__ import annotations

import operator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Attrs:
    """One inode's attributes as a stat(2) caller sees them.

    ``ino`` is the file's identity: the same in the live tree and in every
    snapshot.  ``mode`` includes the file type bits.  ``blocks`` is in 512-byte
    units, counting only mapped data blocks (holes take no space).
    """

    ino: int
    mode: int
    nlink: int
    uid: int
    gid: int
    rdev: int
    size: int
    blocks: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    blksize: int


@dataclass(frozen=True, slots=True)
class DirEntry:
    """A readdir entry; pass ``offset`` back to readdir to continue after it."""

    name: bytes
    attrs: Attrs
    offset: int


@dataclass(frozen=True, slots=True)
class SnapshotInode:
    """One inode of a snapshot as :mod:`snapfs.reader` reads it: its stat(2) ``attrs``
    (times in nanoseconds, ``blocks`` in 512-byte units of mapped data), the symbolic
    link's ``target`` (None for others) and every xattr, POSIX ACLs included, name -> value."""

    attrs: Attrs
    target: bytes | None
    xattrs: dict[bytes, bytes]

    @property
    def ino(self) -> int:
        return self.attrs.ino

    @property
    def mode(self) -> int:
        return self.attrs.mode


@dataclass(frozen=True, slots=True)
class SnapshotEntry:
    """A directory entry of a snapshot: ``name`` names inode ``ino``."""

    name: bytes
    ino: int


@dataclass(frozen=True, slots=True)
class StatFS:
    """statfs(2) figures, in ``block_size`` units."""

    block_size: int
    total_blocks: int
    free_blocks: int
    total_inodes: int
    free_inodes: int
    name_max: int


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """A snapshot: ``id`` is its epoch, stable for its lifetime (rename keeps it)."""

    id: int
    name: str
    created_ns: int
    holders: tuple[str, ...]
    exclusive_bytes: int = 0


@dataclass(frozen=True, slots=True)
class SpaceInfo:
    """Space figures of a volume, in bytes (data blocks; metadata is not counted)."""

    size: int
    used: int
    available: int
    live: int
    snapshots: int
    inodes_used: int
    inodes_total: int


@dataclass(slots=True)
class Meta:
    """The single ``meta`` row, kept in memory while the volume is open."""

    name: str
    block_size: int
    total_blocks: int
    max_inodes: int
    created_ns: int
    epoch: int
    next_ino: int
    next_cookie: int
    high_water: int
    used_blocks: int
    live_inodes: int
    #: bytes all of a file's extended attributes may take (ext4's accounting)
    xattr_room: int

    COLUMNS = (
        "name", "block_size", "total_blocks", "max_inodes", "created_ns", "epoch",
        "next_ino", "next_cookie", "high_water", "used_blocks", "live_inodes", "xattr_room",
    )

    def values(self) -> tuple:
        return _meta_values(self)


_meta_values = operator.attrgetter(*Meta.COLUMNS)
