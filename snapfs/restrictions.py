"""Client I/O restrictions: files that only their owner may open, while a restore works on them.

:class:`RestrictionOps` is one of the parts :class:`snapfs.volume.Volume` is
made of.  A restriction (``restrictions`` table, schema version 3: live state,
not history, so snapshots do not carry it and it persists across remounts)
names a live inode and an owner ID (it goes with the file).  While it lasts, the mount answers EBUSY to
every open (and truncate) of that file by anyone who is not the owner.  The
check on the request path is a dict look-up (:attr:`RestrictionOps.restricted`,
kept in memory), paid in full only for the restricted files.

Who is the owner.  A process names itself owner ID over the volume's control
channel: :meth:`snapfs.client.Client.act_as` (``snapfs restrict exec`` from a
shell).  The daemon takes the caller's pid from the socket itself
(SO_PEERCRED, not from anything the caller says) and keeps it for as long as
that connection stays open; the process and its descendants (found through
``/proc/PID/stat``'s parent pid, and only for restricted files) count as the
owner.  Closing the connection, or the process's exit, ends it: nothing to
clean up, and no environment variable to forge or forget.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Callable

from . import volpaths
from .errors import SnapfsError, err
from .limits import check_label
from .store import StoreCalls

#: The most parent pids followed up from a requester (a loop guard).
_MAX_DEPTH = 64


@dataclass(frozen=True, slots=True)
class Restriction:
    path: str
    owner: str
    ino: int


def parent_pid(pid: int) -> int:
    """The parent of ``pid`` (0 when it is gone or unreadable)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return 0
    return int(data[data.rindex(b")") + 2:].split()[1])


def check_owner(owner: str) -> None:
    """EINVAL for an owner ID (of restrictions and locks) that is not one line of visible
    text of at most 255 bytes (:func:`check_label`)."""
    check_label(owner, "owner ID")


class Owners:
    """Which processes act as which restriction owner (the mount daemon's, in memory).
    A process registered with ``restore`` also bypasses every lock (see :mod:`snapfs.locks`)."""

    def __init__(self) -> None:
        self.by_pid: dict[int, str] = {}
        #: the registered pids that act as a restoring owner
        self.restoring: set[int] = set()

    def register(self, pid: int, owner: str, restore: bool = False) -> None:
        self.by_pid[pid] = owner
        if restore:
            self.restoring.add(pid)
        else:
            self.restoring.discard(pid)

    def unregister(self, pid: int) -> None:
        self.by_pid.pop(pid, None)
        self.restoring.discard(pid)

    def owner_of(self, pid: int) -> str | None:
        """The owner ``pid`` acts as: its own registration, or its nearest ancestor's."""
        return self.session_of(pid)[0]

    def session_of(self, pid: int) -> tuple[str | None, bool]:
        """(the owner ``pid`` acts as or None, whether it acts as a restoring owner)."""
        for _ in range(_MAX_DEPTH):
            if pid <= 1:
                return None, False
            o = self.by_pid.get(pid)
            if o is not None:
                return o, pid in self.restoring
            pid = parent_pid(pid)
        return None, False


class RestrictionOps(StoreCalls):
    """restrict, unrestrict, restriction_list, may_open (a Volume part)."""

    #: restricted live inode -> owner (changed in place: the FUSE adapter keeps a reference)
    restricted: dict[int, str]
    #: the processes that act as an owner (registered over the control channel)
    owners: Owners
    path_of: Callable[..., str]

    def _load_restrictions(self) -> None:
        self.restricted = dict(self._db.execute("SELECT ino, owner FROM restrictions"))
        self.owners = Owners()
        destroy = self._destroy

        def destroy_and_lift(ino: int) -> None:
            """A restriction goes with its file, in the same transaction."""
            destroy(ino)
            if ino in self.restricted:
                self._db.execute("DELETE FROM restrictions WHERE ino = ?", (ino,))
                del self.restricted[ino]

        self._destroy = destroy_and_lift

    def restrict(self, path: str, owner: str) -> Restriction:
        """Restrict the file at ``path`` to ``owner`` (EBUSY if another owner holds it)."""
        check_owner(owner)
        ino = volpaths.resolve(self, path)
        cur = self.restricted.get(ino)
        if cur is not None and cur != owner:
            raise err(errno.EBUSY, f"{path!r} is already restricted to owner {cur!r}")
        with self._txn():
            self._db.execute("INSERT OR REPLACE INTO restrictions (ino, owner) VALUES (?, ?)", (ino, owner))
        self.restricted[ino] = owner
        return Restriction(self.path_of(ino), owner, ino)

    def unrestrict(self, path: str, owner: str) -> None:
        """Lift the restriction ``owner`` set on ``path`` (EPERM for another owner's)."""
        ino = volpaths.resolve(self, path)
        cur = self.restricted.get(ino)
        if cur is None:
            raise err(errno.ENOENT, f"{path!r} is not restricted")
        if cur != owner:
            raise err(errno.EPERM, f"{path!r} is restricted to owner {cur!r}, not {owner!r}")
        with self._txn():
            self._db.execute("DELETE FROM restrictions WHERE ino = ?", (ino,))
        del self.restricted[ino]

    def unrestrict_inodes(self, inos: list[int], owner: str) -> int:
        """Lift the restrictions ``owner`` set on live inodes ``inos``, in one transaction (a
        restore lifting the files it held, wherever they are now); one removed since, or not
        restricted to ``owner``, is left as it is.  How many were lifted."""
        lift = [ino for ino in dict.fromkeys(inos) if self.restricted.get(ino) == owner]
        if lift:
            with self._txn():
                self._db.executemany("DELETE FROM restrictions WHERE ino = ?", [(ino,) for ino in lift])
            for ino in lift:
                del self.restricted[ino]
        return len(lift)

    def restriction_list(self) -> list[Restriction]:
        out = []
        for ino, owner in sorted(self.restricted.items()):
            try:
                path = self.path_of(ino)
            except SnapfsError:  # a removed file keeps its restriction until lifted
                path = f"(removed inode {ino})"
            out.append(Restriction(path, owner, ino))
        return out

    def may_open(self, ino: int, pid: int) -> bool:
        """May process ``pid`` open live inode ``ino``?  (Ask only for restricted inodes.)"""
        owner = self.restricted.get(ino)
        return owner is None or self.owners.owner_of(pid) == owner
