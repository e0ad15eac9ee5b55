"""Persistent locks, as a filer keeps them: advisory and mandatory byte-range locks and share modes.

:class:`LockOps` is one of the parts :class:`snapfs.volume.Volume` is made of.
A lock (``locks`` table, schema version 4: live state, not history, so it
persists across remounts and snapshots do not carry it, as a filer's locks are
not in its snapshots) names a live file, an owner ID, a type, a byte range
(``start``, ``length``; length 0 = to the end of any file) and a share mode.

What the mount enforces, for every owner but the lock's own (Linux dropped
mandatory locking in 5.15; the file system does it here):

* a **mandatory** lock: reads and writes overlapping its range get EAGAIN, and
  so does ``truncate``; ``unlink`` gets EACCES.
* share mode **deny-read**: opens for reading and reads get EACCES;
  **deny-write**: opens for writing, writes, ``truncate`` and ``unlink`` get
  EACCES (any type of lock; ``deny-none`` denies nothing).
* an **advisory** lock without a deny mode is only listed (NFS/NLM locks are
  advisory).

A session acting as the *restoring* owner bypasses every lock (a restore
ignores locks on its destination): a process named with
:meth:`snapfs.client.Client.act_as` ``(owner, restore=True)`` (``snapfs
restrict exec MOUNT --owner ID --restore -- CMD``), or acting as the owner of
the file's client I/O restriction (what a restore sets).  Who a process is
comes from :mod:`snapfs.restrictions` (SO_PEERCRED on the control socket).

The checks on the request path are dict look-ups (:attr:`LockOps.locked`,
kept in memory: only files with an enforced lock are in it).  POSIX
``fcntl``/``flock`` locks through the mount are the kernel's own, as on any
FUSE mount, and independent of these.
"""

from __future__ import annotations

import errno
import stat
from dataclasses import dataclass
from typing import Callable

from . import volpaths
from .errors import SnapfsError, err
from .limits import INT_MAX, check_int
from .restrictions import check_owner
from .store import StoreCalls

LOCK_TYPES = ("advisory", "mandatory")
SHARES = ("deny-none", "deny-read", "deny-write")
#: Virtual, read-only xattr of a live file with locks: one line per lock.
LOCKS_XATTR = b"trusted.snapfs.locks"
#: The operations the mount checks.
READ, WRITE, OPEN_READ, OPEN_WRITE, TRUNCATE, UNLINK = "read", "write", "open-read", "open-write", "truncate", "unlink"
_DENIED_BY = {"deny-read": (READ, OPEN_READ), "deny-write": (WRITE, OPEN_WRITE, TRUNCATE, UNLINK), "deny-none": ()}


@dataclass(frozen=True, slots=True)
class Lock:
    id: int
    path: str
    type: str
    owner: str
    start: int
    length: int
    share: str
    ino: int

    def overlaps(self, off: int, length: int) -> bool:
        """Does the range ``off``/``length`` (0: to the end) meet this lock's?"""
        end = self.start + self.length if self.length else None
        oend = off + length if length else None
        return (oend is None or oend > self.start) and (end is None or end > off)

    @property
    def range(self) -> str:
        return f"{self.start}:{self.length}" if self.length else f"{self.start}:eof"

    def line(self) -> str:
        return f"{self.id} {self.type} owner={self.owner} range={self.range} share={self.share}"


def parse_range(text: str) -> tuple[int, int]:
    """``OFF:LEN`` (LEN 0 or ``eof``: to the end) as numbers; EINVAL otherwise (the range must
    end by the largest file offset, :data:`~snapfs.limits.INT_MAX`)."""
    try:
        off, _, ln = text.partition(":")
        start, length = int(off), (0 if ln in ("", "eof") else int(ln))
    except ValueError:
        raise err(errno.EINVAL, f"bad lock range {text!r} (use OFF:LEN, e.g. 0:4096)") from None
    if start < 0 or length < 0:
        raise err(errno.EINVAL, f"bad lock range {text!r}: negative")
    if start + length > INT_MAX:
        raise err(errno.EINVAL, f"bad lock range {text!r}: it ends past the largest file offset ({INT_MAX})")
    return start, length


class LockOps(StoreCalls):
    """lock_add, lock_list, lock_break, lock_check, lock_xattr (a Volume part)."""

    #: live inode -> its locks the mount enforces (mandatory or with a deny mode), changed in place
    locked: dict[int, list[Lock]]
    #: live inode -> all its locks (advisory ones too)
    locks_on: dict[int, list[Lock]]
    restricted: dict[int, str]
    path_of: Callable[..., str]

    def _load_locks(self) -> None:
        self.locked, self.locks_on = {}, {}
        self._index_locks()
        destroy = self._destroy

        def destroy_and_unlock(ino: int) -> None:
            """A file's locks go with it, in the same transaction."""
            destroy(ino)
            if ino in self.locks_on:
                self._db.execute("DELETE FROM locks WHERE ino = ?", (ino,))
                self.locks_on.pop(ino)
                self.locked.pop(ino, None)

        self._destroy = destroy_and_unlock

    def _index_locks(self) -> None:
        rows = self._db.execute("SELECT id, ino, type, owner, start, length, share FROM locks ORDER BY id").fetchall()
        self.locked.clear()
        self.locks_on.clear()
        for i, ino, typ, owner, start, length, share in rows:
            lk = Lock(i, "", typ, owner, start, length, share, ino)
            self.locks_on.setdefault(ino, []).append(lk)
            if typ == "mandatory" or share != "deny-none":
                self.locked.setdefault(ino, []).append(lk)

    def lock_reload(self) -> None:
        """Read the locks again (after fsck changed the table)."""
        self._index_locks()

    def _named(self, lk: Lock) -> Lock:
        try:
            path = self.path_of(lk.ino)
        except SnapfsError:
            path = f"(removed inode {lk.ino})"
        return Lock(lk.id, path, lk.type, lk.owner, lk.start, lk.length, lk.share, lk.ino)

    def lock_add(self, path: str, type: str, owner: str, start: int = 0, length: int = 0,
                 share: str = "deny-none") -> Lock:
        """A lock on the file at ``path``; EAGAIN when another owner's lock conflicts."""
        check_owner(owner)
        if type not in LOCK_TYPES:
            raise err(errno.EINVAL, f"unknown lock type {type!r} (advisory or mandatory)")
        if share not in SHARES:
            raise err(errno.EINVAL, f"unknown share mode {share!r} (one of: {', '.join(SHARES)})")
        check_int(start, "lock range start")
        check_int(length, "lock range length", 0, INT_MAX - start)
        ino = volpaths.resolve(self, path)
        if not stat.S_ISREG(self.getattr(ino).mode):
            raise err(errno.EINVAL, f"{path!r} is not a regular file: only files are locked")
        for lk in self.locks_on.get(ino, ()):
            if lk.owner == owner:
                continue
            if (lk.type == "mandatory" or type == "mandatory") and lk.overlaps(start, length):
                raise err(errno.EAGAIN, f"lock conflict: {path!r} bytes {lk.range} are locked"
                          f" ({lk.type}) by owner {lk.owner!r}")
            if lk.share != "deny-none" and share != "deny-none":
                raise err(errno.EAGAIN, f"lock conflict: {path!r} is held with {lk.share} by owner {lk.owner!r}")
        with self._txn():
            cur = self._db.execute("INSERT INTO locks (ino, owner, type, start, length, share) VALUES (?,?,?,?,?,?)",
                                   (ino, owner, type, start, length, share))
        self._index_locks()
        return self._named(Lock(cur.lastrowid or 0, path, type, owner, start, length, share, ino))

    def lock_list(self) -> list[Lock]:
        return [self._named(lk) for locks in self.locks_on.values() for lk in locks]

    def lock_break(self, path: str | None = None, owner: str | None = None, lock_id: int | None = None) -> int:
        """Remove the locks on ``path`` (of ``owner`` only, when given), or lock ``lock_id``; how many."""
        if path is None and lock_id is None:
            raise err(errno.EINVAL, "name the locks to break: a PATH or --id N")
        ino = volpaths.resolve(self, path) if path is not None else None
        gone = [lk.id for lk in self.lock_list() if (ino is None or lk.ino == ino)
                and (owner is None or lk.owner == owner) and (lock_id is None or lk.id == lock_id)]
        if not gone:
            raise err(errno.ENOENT, "no such lock" + (f" on {path!r}" if path else f" with id {lock_id}"))
        with self._txn():
            self._db.executemany("DELETE FROM locks WHERE id = ?", [(i,) for i in gone])
        self._index_locks()
        return len(gone)

    def lock_check(self, ino: int, owner: str | None, restoring: bool, op: str, off: int = 0, size: int = 0) -> None:
        """EAGAIN/EACCES when another owner's lock forbids ``op`` (ask only for ``ino in locked``)."""
        if restoring or (owner is not None and self.restricted.get(ino) == owner):
            return
        for lk in self.locked.get(ino, ()):
            if lk.owner == owner:
                continue
            if op in _DENIED_BY[lk.share]:
                raise err(errno.EACCES, f"{op} refused: the file is held {lk.share} by owner {lk.owner!r}")
            if lk.type == "mandatory":
                if op == UNLINK:
                    raise err(errno.EACCES, f"unlink refused: mandatory lock of owner {lk.owner!r}")
                if op == TRUNCATE or (op in (READ, WRITE) and lk.overlaps(off, size)):
                    raise err(errno.EAGAIN, f"{op} refused: mandatory lock of owner {lk.owner!r}")

    def lock_xattr(self, ino: int) -> bytes | None:
        """The value of :data:`LOCKS_XATTR` for live ``ino`` (None without locks)."""
        locks = self.locks_on.get(ino)
        return None if not locks else "\n".join(lk.line() for lk in locks).encode()
