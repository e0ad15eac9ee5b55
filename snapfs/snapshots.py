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
import sqlite3

from .blockstore import BlockStore
from .schema import DEAD, VERSIONED


class Epochs:
    """The sorted set of snapshot epochs, kept in memory for cheap CoW decisions."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.epochs: list[int] = [r[0] for r in db.execute("SELECT epoch FROM snapshots ORDER BY epoch")]

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
    return db.execute(f"SELECT count(*) FROM blockmap WHERE {_ONLY}", (s, nxt, prev, s)).fetchone()[0]


def reclaim(db: sqlite3.Connection, store: BlockStore, prev: int, s: int, nxt: int) -> int:
    """Delete the rows only snapshot ``s`` sees and free their blocks; returns blocks freed."""
    params = (s, nxt, prev, s)
    blocks = [r[0] for r in db.execute(f"SELECT block FROM blockmap WHERE {_ONLY}", params)]
    store.free_later(blocks)
    for table in VERSIONED:
        db.execute(f"DELETE FROM {table} WHERE {_ONLY}", params)
    return len(blocks)


def snapshot_blocks(db: sqlite3.Connection) -> int:
    """Blocks held only by snapshots (rows the live head no longer sees)."""
    return db.execute(f"SELECT count(*) FROM blockmap WHERE {DEAD}").fetchone()[0]
