"""The Volume: a POSIX file system with snapshots, as plain synchronous calls.

Every mutating call is one transaction of the volume's store
(:class:`snapfs.store.Store`): one SQLite transaction, or in batch mode
(:meth:`Volume.set_batch`, the mount daemon's) a savepoint in a transaction
that :meth:`Volume.commit` ends: either way it happens entirely or not at all.
Inodes are addressed by number (``ROOT_INO`` is 1, as FUSE expects); an inode
number is never reused, and a file keeps the same number in the live tree and
in every snapshot.  Reading calls take ``snap`` (a snapshot id from
:meth:`Volume.snapshot_create` or :meth:`Volume.snapshot_list`); ``None``
means the live tree.  Writing calls act on the live tree only; the FUSE
adapter answers EROFS for snapshot inodes.

The calls are grouped by concept in the parts the class is made of:
names (:mod:`snapfs.namespace`), file data (:mod:`snapfs.filedata`),
xattrs and POSIX ACLs (:mod:`snapfs.xattrs`), snapshots
(:mod:`snapfs.snapshots`), Windows metadata (:mod:`snapfs.winmeta`), named
streams (:mod:`snapfs.streams`), and the filer's objects: identity and
access type (:mod:`snapfs.identity`), qtrees (:mod:`snapfs.qtrees`),
junctions (:mod:`snapfs.junctions`), client I/O restrictions
(:mod:`snapfs.restrictions`), room on a full volume (:mod:`snapfs.room`),
LUNs and their clones (:mod:`snapfs.luns`) and persistent locks
(:mod:`snapfs.locks`); this module opens and closes volumes and ties the
parts to the store.

Not thread-safe: one caller at a time (the FUSE adapter's single trio thread).

For the FUSE adapter: errors are :class:`SnapfsError` with ``errno``; names
are bytes (str accepted); times are integer nanoseconds; ``Volume.create`` and
``Volume.open`` manage volumes, so FUSE's create/open/release map to
:meth:`create_file`, :meth:`open_file` and :meth:`release_file`.  readdir
offsets are opaque cookies ('.' and '..' are the adapter's).  Reads do not
update atime (noatime).  A snapshot's inodes keep their live numbers, so the
adapter must give the kernel a distinct node id per (snapshot, ino) and keep
the map.  With ``umask`` (creating) and ``acl`` (setattr), and through
:meth:`set_acl`, the Volume applies the POSIX ACL rules a kernel mounted with
ACLs expects of the file system.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from . import snapshots as _snap
from .filedata import MAX_FILE_SIZE, FileData
from .identity import IdentityOps
from .junctions import JunctionOps
from .locks import LockOps
from .luns import LunOps
from .namespace import (PATH_MAX, RENAME_EXCHANGE, RENAME_NOREPLACE, RENAME_WHITEOUT, WHITEOUT_MODE,
                        NamespaceOps)
from .qtrees import QtreeOps
from .restoring import RestoringOps
from .restrictions import RestrictionOps
from .room import RoomOps
from .schema import NAME_MAX
from .snapshots import BACKUP_SNAPSHOT_PREFIX, SnapshotOps
from .store import DB_FILE, LOCK_FILE, ROOT_INO, Row, Store, check_header, create_files
from .streams import StreamOps
from .values import Attrs, SpaceInfo, StatFS
from .winmeta import WindowsOps
from .xattrs import (XATTR_BLOCK_MAX, XATTR_CREATE, XATTR_NAME_MAX, XATTR_REPLACE, XATTR_SIZE_MAX, XattrOps,
                     xattr_space, xattr_suffix)

#: the block size of a new volume (WAFL's); volumes made before keep theirs (meta.block_size)
DEFAULT_BLOCK_SIZE = 4096

__all__ = [
    "BACKUP_SNAPSHOT_PREFIX", "DB_FILE", "DEFAULT_BLOCK_SIZE", "LOCK_FILE", "MAX_FILE_SIZE", "NAME_MAX",
    "PATH_MAX", "RENAME_EXCHANGE", "RENAME_NOREPLACE", "RENAME_WHITEOUT", "ROOT_INO", "WHITEOUT_MODE",
    "XATTR_BLOCK_MAX", "XATTR_CREATE", "XATTR_NAME_MAX", "XATTR_REPLACE", "XATTR_SIZE_MAX", "Volume",
    "check_header", "xattr_space", "xattr_suffix",
]


class Volume(LunOps, LockOps, NamespaceOps, FileData, XattrOps, SnapshotOps, WindowsOps, StreamOps,
             IdentityOps, QtreeOps, JunctionOps, RestrictionOps, RoomOps, RestoringOps):
    """An open snapfs volume.  Use :meth:`create` or :meth:`open`; close when done."""

    # ------------------------------------------------------------------ life cycle

    @classmethod
    def create(
        cls,
        voldir: str | os.PathLike,
        size_bytes: int,
        max_inodes: int,
        name: str = "vol1",
        block_size: int | None = None,
    ) -> "Volume":
        """Make a new volume in ``voldir`` (absent or empty) and return it open.

        ``block_size`` defaults to :data:`DEFAULT_BLOCK_SIZE` (4 KiB, as a filer's: a
        tree of small files costs about what it does on ext4).  A file's extended
        attributes get the room of ext4's xattr block: the block size given, up to
        64 KiB; 64 KiB with the default (as volumes had when it was 64 KiB)."""
        path = Path(voldir)
        if block_size is None:
            block_size, xattr_room = DEFAULT_BLOCK_SIZE, XATTR_BLOCK_MAX
        else:
            xattr_room = min(block_size, XATTR_BLOCK_MAX)
        create_files(path, size_bytes, max_inodes, name, block_size, xattr_room)
        return cls.open(path)

    @classmethod
    def open(cls, voldir: str | os.PathLike) -> "Volume":
        """Open the volume in ``voldir``; only one opener at a time (EBUSY otherwise)."""
        return cls(Path(voldir))

    def __init__(self, path: Path) -> None:
        self.path = path
        self._bind(Store(path))  # the store's calls the parts make (StoreCalls)
        #: openers of live inodes (an unlinked file lives on until its last release)
        self._open: dict[int, int] = {}
        self._backup_counter = 0
        self.closed = False
        # the filer's objects (issue 12): identity and type, qtrees, restrictions
        self._load_identity()
        self._load_qtrees()
        self._load_restrictions()
        self._load_room()
        self._load_luns()  # (filerC) after the parts whose calls it wraps
        self._load_locks()

    def __enter__(self) -> "Volume":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Free unlinked files still open, make everything durable, release the volume."""
        if self.closed:
            return
        self.set_batch(False)
        orphans = [ino for ino, n in self._open.items() if n > 0]
        self._open.clear()
        for ino in orphans:
            with self._txn():
                self._maybe_destroy(ino)
        self.tables.close()
        self.closed = True

    def relocate(self, dest: Path, move: Callable[[], None]) -> None:
        """Go on from the volume's folder at ``dest`` once ``move`` has moved it
        there (a volume move, :mod:`snapfs.moving`): the files are let go and
        taken again, everything else stays as it is (open files, owners,
        restrictions); when ``move`` fails the volume stays where it was."""
        try:
            self.tables.relocate(dest, move)
        finally:
            self._db = self.tables.db  # the files taken again, at dest or where they were
        self.path = dest

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def block_size(self) -> int:
        return self._bs

    @property
    def db(self) -> sqlite3.Connection:
        """The metadata connection (fsck and tests; write only inside ``tables.txn()``)."""
        return self._db

    # ------------------------------------------------------------------ batches

    def set_batch(self, on: bool) -> None:
        """Batch mode: calls commit together at :meth:`commit` (the mount daemon commits
        every few tens of milliseconds and on fsync), saving a commit per call.  A
        crash loses only what was not yet committed, and the volume stays consistent."""
        self.tables.set_batch(on)

    def commit(self) -> bool:
        """Commit the calls made in batch mode since the last commit; False if there were none."""
        return self.tables.commit()

    # ------------------------------------------------------------------ attributes and figures

    def _attrs(self, ino: int, row: Row, snap: int | None = None) -> Attrs:
        mode = row.mode
        if not mode & 0o7777:  # no unix permissions: the security style may show some
            mode = self.unix_mode_shown(ino, mode, snap)
        return Attrs(ino, mode, row.nlink, row.uid, row.gid, row.rdev, row.size,
                     row.nblocks * (self._bs // 512), row.atime_ns, row.mtime_ns, row.ctime_ns, self._bs)

    def getattr(self, ino: int, snap: int | None = None) -> Attrs:
        return self._attrs(ino, self._row(ino, snap), snap)

    def statfs(self) -> StatFS:
        m = self.meta
        free = m.total_blocks - m.used_blocks - self.lun_outstanding  # reserved for LUNs: not free
        return StatFS(self._bs, m.total_blocks, max(0, free),
                      m.max_inodes, max(0, m.max_inodes - m.live_inodes), NAME_MAX)

    def space(self) -> SpaceInfo:
        m, bs = self.meta, self._bs
        snap = _snap.snapshot_blocks(self._db)
        res = self.lun_outstanding  # blocks reserved for space-reserved LUNs count as used
        return SpaceInfo(m.total_blocks * bs, (m.used_blocks + res) * bs,
                         max(0, m.total_blocks - m.used_blocks - res) * bs,
                         (m.used_blocks + res - snap) * bs, snap * bs, m.live_inodes, m.max_inodes)
