"""Snapshots as epochs, and how deleting one frees exactly what it alone held.

The model (the birth-time scheme of WAFL and ZFS, on rows instead of block
pointers):

* The volume has a current epoch E.  Every versioned row carries ``birth``
  (the epoch it was written in) and ``death`` (the epoch it was replaced or
  removed in; ``LIVE`` while the head still sees it).  Snapshot S sees a row
  when ``birth <= S < death``.
* Creating a snapshot records S = E and makes E+1 current: two statements,
  whatever the volume holds.
* Changing a live row born after the newest *existing* snapshot L
  (``birth > L``) may happen in place (or the row is dropped and its block
  freed): no snapshot can see it.  A row born at or before L is kept for the
  snapshots (``death = E``) and a new version born in E is inserted.  Data
  blocks are never overwritten, even in place, so a failed call leaves no
  half-written block behind (see blockstore).
* Deleting snapshot S with previous snapshot P (0 if none) and next snapshot
  N (or, if S is the newest, the current epoch E, since dead rows all have
  ``death <= E``): a row only S can see is one with ``P < birth <= S`` and
  ``S < death <= N``.  Any row P or N can also see fails one of the bounds;
  any other snapshot lies outside (P, N).  Those rows are deleted and their
  blocks freed; everything else stays.  The query walks the ``(death, birth)``
  index over the rows that died in (S, N] -- what ZFS calls N's deadlist --
  so the cost is proportional to what changed between S and N, not to the
  volume's size.
* The same bounds give a snapshot's exclusive space (blocks freed if it
  were deleted now).
"""

from __future__ import annotations

import bisect
import errno
import sqlite3
import time
from typing import Callable

from .blockstore import BlockStore
from .errors import SnapshotBusy, err
from .limits import check_label
from .schema import DEAD, NAME_MAX, VERSIONED
from .values import Meta, SnapshotInfo


class Epochs:
    """The sorted set of snapshot epochs, kept in memory for cheap CoW decisions."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.epochs: list[int] = []
        self.reload(db)

    def reload(self, db: sqlite3.Connection) -> None:
        """Read the epochs again (after a rollback), in place."""
        self.epochs[:] = [r[0] for r in db.execute("SELECT epoch FROM snapshots ORDER BY epoch")]

    @property
    def latest(self) -> int:
        """The newest existing snapshot's epoch, 0 when there is none."""
        return self.epochs[-1] if self.epochs else 0

    def neighbours(self, s: int, current: int) -> tuple[int, int]:
        """(previous epoch or 0, next epoch or the current epoch) around snapshot ``s``."""
        i = bisect.bisect_left(self.epochs, s)
        prev = self.epochs[i - 1] if i > 0 else 0
        nxt = self.epochs[i + 1] if i + 1 < len(self.epochs) else current
        return prev, nxt

    def add(self, s: int) -> None:
        bisect.insort(self.epochs, s)

    def remove(self, s: int) -> None:
        self.epochs.remove(s)

    def visible_to_any(self, birth: int, death: int) -> bool:
        """Does an existing snapshot see a row with these epochs?"""
        i = bisect.bisect_left(self.epochs, birth)
        return i < len(self.epochs) and self.epochs[i] < death


_ONLY = f"death > ? AND death <= ? AND birth > ? AND birth <= ? AND {DEAD}"


def exclusive_blocks(db: sqlite3.Connection, prev: int, s: int, nxt: int) -> int:
    """Blocks that only snapshot ``s`` sees (between neighbours ``prev`` and ``nxt``)."""
    return db.execute(f"SELECT coalesce(sum(span), 0) FROM blockmap WHERE {_ONLY}", (s, nxt, prev, s)).fetchone()[0]


def reclaim(db: sqlite3.Connection, store: BlockStore, prev: int, s: int, nxt: int) -> int:
    """Delete the rows only snapshot ``s`` sees and free their blocks; returns blocks freed."""
    params = (s, nxt, prev, s)
    runs = db.execute(f"SELECT block, span FROM blockmap WHERE {_ONLY}", params).fetchall()
    store.free_runs_later(runs)
    for table in VERSIONED:
        db.execute(f"DELETE FROM {table} WHERE {_ONLY}", params)
    return sum(n for _, n in runs)


def snapshot_blocks(db: sqlite3.Connection) -> int:
    """Blocks held only by snapshots (rows the live head no longer sees)."""
    return db.execute(f"SELECT coalesce(sum(span), 0) FROM blockmap WHERE {DEAD}").fetchone()[0]


BACKUP_SNAPSHOT_PREFIX = "snapshot_for_backup."


class SnapshotOps:
    """Creating, listing, renaming, holding and deleting snapshots (a Volume part).

    Reading a snapshot goes through the Volume's reading calls with ``snap`` (its id)."""

    # what the Volume gives its parts (see Volume.__init__)
    _bs: int
    _txn: Callable
    _db: sqlite3.Connection
    _epochs: Epochs
    _backup_counter: int
    store: BlockStore
    meta: Meta
    commit: Callable[[], bool]
    _record_identity: Callable[[int], None]

    def is_snapshot(self, snap: int) -> bool:
        """Is ``snap`` the id of an existing snapshot?"""
        return snap in self._epochs.epochs

    def snapshot_count(self) -> int:
        return len(self._epochs.epochs)

    def _snapshot_epoch(self, name: str) -> int:
        r = self._db.execute("SELECT epoch FROM snapshots WHERE name = ?", (name,)).fetchone()
        if r is None:
            raise err(errno.ENOENT, f"no snapshot named {name!r} on volume {self.meta.name}")
        return r[0]

    @staticmethod
    def _check_snapshot_name(name: str) -> None:
        """EINVAL with the rule ``name`` breaks: one line of visible text (:func:`check_label`) of
        at most NAME_MAX bytes, a file name under ``.snapshot`` (no ``/``, not ``.`` or ``..``) that
        no command line takes for an option (no leading ``-``)."""
        check_label(name, "snapshot name", NAME_MAX)
        if "/" in name or name in (".", ".."):
            raise err(errno.EINVAL, f"invalid snapshot name {name!r} (a name under .snapshot: no '/', not . or ..)")
        if name.startswith("-"):
            raise err(errno.EINVAL, f"snapshot name {name!r} may not start with '-'")

    def snapshot_create(self, name: str) -> SnapshotInfo:
        """Freeze the live tree as ``name``: O(1), it records the epoch and starts a new one."""
        self._check_snapshot_name(name)
        self.commit()  # rows changed only in memory must be in the table the snapshot freezes
        with self._txn():
            s = self.meta.epoch
            now = time.time_ns()
            try:
                self._db.execute("INSERT INTO snapshots (epoch, name, created_ns) VALUES (?,?,?)", (s, name, now))
            except sqlite3.IntegrityError:
                raise err(errno.EEXIST, f"snapshot {name!r} already exists") from None
            self._record_identity(s)  # the generation and type it was taken with (snapfs.identity)
            self.meta.epoch = s + 1
            self._epochs.add(s)
        return SnapshotInfo(s, name, now, (), 0)

    def snapshot_id(self, name: str) -> int:
        """The id (epoch) of snapshot ``name``: pass it as ``snap`` to the reading calls."""
        return self._snapshot_epoch(name)

    def snapshot_info(self, name: str) -> SnapshotInfo:
        s = self._snapshot_epoch(name)
        return self._info(s)

    def _info(self, s: int) -> SnapshotInfo:
        name, created = self._db.execute("SELECT name, created_ns FROM snapshots WHERE epoch = ?", (s,)).fetchone()
        holders = tuple(r[0] for r in self._db.execute(
            "SELECT holder FROM holds WHERE epoch = ? ORDER BY holder", (s,)))
        prev, nxt = self._epochs.neighbours(s, self.meta.epoch)
        excl = exclusive_blocks(self._db, prev, s, nxt) * self._bs
        return SnapshotInfo(s, name, created, holders, excl)

    def snapshot_created_ns(self, snap: int) -> int:
        """When snapshot ``snap`` (an id) was taken, in nanoseconds since the epoch: cheap."""
        row = self._db.execute("SELECT created_ns FROM snapshots WHERE epoch = ?", (snap,)).fetchone()
        if row is None:
            raise err(errno.ENOENT, f"no snapshot with id {snap}")
        return row[0]

    def snapshot_names(self) -> list[tuple[int, str]]:
        """(id, name) of every snapshot, oldest first: cheap, without space figures."""
        return list(self._db.execute("SELECT epoch, name FROM snapshots ORDER BY epoch"))

    def snapshot_list(self) -> list[SnapshotInfo]:
        """Snapshots oldest first, with the space each alone holds."""
        return [self._info(s) for s in list(self._epochs.epochs)]

    def snapshot_delete(self, name: str) -> int:
        """Delete ``name`` and free what only it held; returns the bytes freed.  EBUSY if held."""
        with self._txn():
            s = self._snapshot_epoch(name)
            holders = [r[0] for r in self._db.execute("SELECT holder FROM holds WHERE epoch = ?", (s,))]
            if holders:
                raise SnapshotBusy(f"snapshot {name!r} is busy: held by {', '.join(sorted(holders))}")
            prev, nxt = self._epochs.neighbours(s, self.meta.epoch)
            freed = reclaim(self._db, self.store, prev, s, nxt)
            self._db.execute("DELETE FROM snapshots WHERE epoch = ?", (s,))
            self._epochs.remove(s)
        return freed * self._bs

    def snapshot_rename(self, old: str, new: str) -> None:
        self._check_snapshot_name(new)
        with self._txn():
            s = self._snapshot_epoch(old)
            try:
                self._db.execute("UPDATE snapshots SET name = ? WHERE epoch = ?", (new, s))
            except sqlite3.IntegrityError:
                raise err(errno.EEXIST, f"snapshot {new!r} already exists") from None

    def snapshot_hold(self, name: str, holder: str) -> None:
        """Mark ``name`` busy for ``holder`` (e.g. a backup; one line of visible text, see
        :func:`check_label`); it cannot be deleted until released."""
        check_label(holder, "snapshot holder")
        with self._txn():
            s = self._snapshot_epoch(name)
            self._db.execute("INSERT OR IGNORE INTO holds (epoch, holder) VALUES (?, ?)", (s, holder))

    def snapshot_release(self, name: str, holder: str) -> None:
        with self._txn():
            s = self._snapshot_epoch(name)
            if not self._db.execute("DELETE FROM holds WHERE epoch = ? AND holder = ?", (s, holder)).rowcount:
                raise err(errno.ENOENT, f"snapshot {name!r} is not held by {holder!r}")

    def next_backup_snapshot_name(self) -> str:
        """``snapshot_for_backup.N`` with N from a counter starting at 0 on each open, skipping names in use."""
        while True:
            name = f"{BACKUP_SNAPSHOT_PREFIX}{self._backup_counter}"
            self._backup_counter += 1
            if not self._db.execute("SELECT 1 FROM snapshots WHERE name = ?", (name,)).fetchone():
                return name
