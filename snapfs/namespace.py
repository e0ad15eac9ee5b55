"""The names of a Volume: looking up, listing, making, linking, removing and renaming.

:class:`NamespaceOps` is one of the parts :class:`snapfs.volume.Volume` is made
of; it works through the Volume's store (see :mod:`snapfs.store`).  A new
inode takes ``meta.next_ino`` (never reused) and inherits the set-group-ID
directory's group, and with ``umask`` given, its parent's default POSIX ACL.
"""

from __future__ import annotations

import errno
import sqlite3
import stat
import time
from typing import Callable

from .errors import NoSpace, SnapfsError, err
from .schema import NAME_MAX
from .store import ROOT_INO, Row, StoreCalls
from .values import Attrs, DirEntry
from .xattrs import bname

PATH_MAX = 4096
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
#: renameat2's RENAME_WHITEOUT: a whiteout (character device 0/0, mode 0) takes the old name
RENAME_WHITEOUT = 4
WHITEOUT_MODE = stat.S_IFCHR


def check_new_name(name: bytes) -> None:
    """EINVAL, EEXIST or ENAMETOOLONG for a name no new entry can have."""
    if not name or b"/" in name or b"\0" in name:
        raise err(errno.EINVAL, f"invalid file name {name!r}")
    if name in (b".", b".."):
        raise err(errno.EEXIST, f"{name!r} always exists")
    if len(name) > NAME_MAX:
        raise err(errno.ENAMETOOLONG, f"file name longer than {NAME_MAX} bytes")


class NamespaceOps(StoreCalls):
    """lookup, readdir, mknod, mkdir, symlink, link, unlink, rmdir, rename (a Volume part)."""

    # what else the Volume gives this part
    _attrs: Callable[..., Attrs]
    _inherit: Callable[[int, int, int], tuple[int, dict[bytes, bytes]]]
    _open: dict[int, int]

    # ------------------------------------------------------------------ reading

    def _dir_row(self, ino: int, snap: int | None = None) -> Row:
        row = self._row(ino, snap)
        if not stat.S_ISDIR(row.mode):
            raise err(errno.ENOTDIR, f"inode {ino} is not a directory")
        return row

    def lookup(self, parent: int, name: bytes | str, snap: int | None = None) -> Attrs:
        """The attributes of ``name`` in directory ``parent`` (ENOENT if absent)."""
        a = self.find(parent, name, snap)
        if a is None:
            raise err(errno.ENOENT, f"no entry {bname(name)!r} in directory {parent}")
        return a

    def find(self, parent: int, name: bytes | str, snap: int | None = None) -> Attrs | None:
        """:meth:`lookup`, but None for a name that does not exist (no exception)."""
        name = bname(name)
        self._dir_row(parent, snap)
        if name == b".":
            ino = parent
        elif name == b"..":
            ino = self._parent_of(parent, snap)
        else:
            if len(name) > NAME_MAX:
                raise err(errno.ENAMETOOLONG, f"file name longer than {NAME_MAX} bytes")
            ino = self._dirent(parent, name, snap)
            if ino is None:
                return None
        return self._attrs(ino, self._row(ino, snap), snap)

    def readdir(self, ino: int, offset: int = 0, snap: int | None = None,
                limit: int | None = None) -> list[DirEntry]:
        """Entries of directory ``ino`` after ``offset`` (0: from the start), in a stable order.

        Offsets are per-entry cookies, so entries added or removed meanwhile
        never make a continued listing skip or repeat the others.  '.' and '..'
        are not included.
        """
        self._dir_row(ino, snap)
        if snap is None:
            self.tables.flush_new()  # the join below needs the rows made in this batch
        where, params = self._view(snap)
        dv, iv = "d." + where.replace(" AND ", " AND d."), "i." + where.replace(" AND ", " AND i.")
        sql = (f"SELECT d.name, d.cookie, d.ino, {', '.join('i.' + f for f in Row._fields)}"
               f" FROM dirents d JOIN inodes i ON i.ino = d.ino AND {iv}"
               f" WHERE d.parent = ? AND {dv} AND d.cookie > ? ORDER BY d.cookie")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        out = []
        # the live tree's cached rows may be newer than the table's (batch mode)
        cache = self.tables.cached_rows if snap is None else {}
        for r in self._db.execute(sql, (*params, ino, *params, offset)):
            row = cache.get(r[2]) or Row(*r[3:])
            out.append(DirEntry(r[0], self._attrs(r[2], row, snap), r[1]))
        return out

    def readlink(self, ino: int, snap: int | None = None) -> bytes:
        row = self._row(ino, snap)
        if not stat.S_ISLNK(row.mode):
            raise err(errno.EINVAL, f"inode {ino} is not a symbolic link")
        return row.target

    # ------------------------------------------------------------------ making names

    def _make(self, parent: int, name: bytes | str, mode: int, uid: int, gid: int, rdev: int = 0,
              target: bytes | None = None, xattrs: dict | None = None, umask: int | None = None) -> Attrs:
        name = bname(name)
        check_new_name(name)
        with self._txn(light=True):
            prow = self._dir_row(parent)
            if umask is not None:
                mode, inherited = self._inherit(parent, mode, umask)
                if inherited:
                    xattrs = {**(xattrs or {}), **inherited}
            if xattrs or prow.birth <= self._epochs.latest or self.meta.live_inodes >= self.meta.max_inodes:
                self._full()
            ino = self.meta.next_ino
            try:  # the key of the live entry: a name in use fails here (saves a query first)
                self._add_dirent(parent, name, ino)
            except sqlite3.IntegrityError:
                raise err(errno.EEXIST, f"{name!r} already exists in directory {parent}") from None
            now = time.time_ns()
            row = self._new_inode(ino, prow, mode, uid, gid, rdev, target, xattrs, now)
            self._touch_dir(parent, now, 1 if stat.S_ISDIR(mode) else 0)
            return self._attrs(ino, row)

    def _new_inode(self, ino: int, prow: Row, mode: int, uid: int, gid: int, rdev: int,
                   target: bytes | None, xattrs: dict | None, now: int) -> Row:
        """Make inode ``ino`` (``meta.next_ino``; its entry is the caller's) in a directory
        whose row is ``prow``, with ``xattrs``; ENOSPC when no inode is free."""
        if self.meta.live_inodes >= self.meta.max_inodes:
            raise NoSpace(f"no free inodes on volume (limit {self.meta.max_inodes})")
        isdir = stat.S_ISDIR(mode)
        if prow.mode & stat.S_ISGID:
            gid = prow.gid
            if isdir:
                mode |= stat.S_ISGID
        self.meta.next_ino += 1
        self.meta.live_inodes += 1
        row = Row(self.meta.epoch, mode, 2 if isdir else 1, uid, gid, rdev,
                  len(target) if target is not None else 0, 0, now, now, now, target)
        self.tables.add_inode(ino, row, {bname(k): bytes(v) for k, v in (xattrs or {}).items()})
        return row

    def mknod(self, parent: int, name: bytes | str, mode: int, rdev: int = 0,
              uid: int = 0, gid: int = 0, xattrs: dict | None = None, umask: int | None = None) -> Attrs:
        """A regular file, device, fifo or socket (``mode`` carries the type; 0 type = regular).

        ``xattrs`` are set in the same transaction.  With ``umask``, the new inode
        inherits ``parent``'s default POSIX ACL (its access ACL, and the mode it
        implies), or without one gets ``mode & ~umask``, as the kernel asks of a
        file system that enforces ACLs.
        """
        if stat.S_IFMT(mode) == 0:
            mode |= stat.S_IFREG
        if stat.S_IFMT(mode) not in (stat.S_IFREG, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK):
            raise err(errno.EINVAL, f"mknod cannot make file type {stat.S_IFMT(mode):o}")
        return self._make(parent, name, mode, uid, gid, rdev, xattrs=xattrs, umask=umask)

    def create_file(self, parent: int, name: bytes | str, mode: int = 0o644, uid: int = 0, gid: int = 0,
                    xattrs: dict | None = None, umask: int | None = None) -> Attrs:
        """A new empty regular file (FUSE's create; ``Volume.create`` makes volumes)."""
        return self.mknod(parent, name, stat.S_IFREG | (mode & 0o7777), 0, uid, gid, xattrs, umask)

    def mkdir(self, parent: int, name: bytes | str, mode: int = 0o755, uid: int = 0, gid: int = 0,
              xattrs: dict | None = None, umask: int | None = None) -> Attrs:
        """A new directory (``umask``: as :meth:`mknod`; a default ACL is inherited as one too)."""
        return self._make(parent, name, stat.S_IFDIR | (mode & 0o7777), uid, gid, xattrs=xattrs, umask=umask)

    def symlink(self, parent: int, name: bytes | str, target: bytes | str, uid: int = 0, gid: int = 0) -> Attrs:
        target = bname(target)
        if not target:
            raise err(errno.ENOENT, "empty symbolic link target")
        if len(target) >= PATH_MAX:
            raise err(errno.ENAMETOOLONG, f"symbolic link target longer than {PATH_MAX - 1} bytes")
        return self._make(parent, name, stat.S_IFLNK | 0o777, uid, gid, target=target)

    def link(self, ino: int, new_parent: int, new_name: bytes | str) -> Attrs:
        """A new hard link to ``ino`` (not a directory)."""
        new_name = bname(new_name)
        check_new_name(new_name)
        with self._txn():
            row = self._row(ino)
            if stat.S_ISDIR(row.mode):
                raise err(errno.EPERM, "hard links to directories are not allowed")
            if row.nlink == 0:
                raise err(errno.ENOENT, f"inode {ino} has been removed")
            self._dir_row(new_parent)
            if self._dirent(new_parent, new_name) is not None:
                raise err(errno.EEXIST, f"{new_name!r} already exists in directory {new_parent}")
            now = time.time_ns()
            self._add_dirent(new_parent, new_name, ino)
            row = self._set(ino, nlink=row.nlink + 1, ctime_ns=now)
            self._touch_dir(new_parent, now)
            return self._attrs(ino, row)

    # ------------------------------------------------------------------ removing names

    def _touch_dir(self, ino: int, now: int, dnlink: int = 0) -> None:
        row = self._row(ino)
        self._set(ino, mtime_ns=now, ctime_ns=now, nlink=row.nlink + dnlink)

    def _maybe_destroy(self, ino: int) -> None:
        try:
            row = self._row(ino)
        except SnapfsError:
            return
        if row.nlink == 0 and not self._open.get(ino):
            self._destroy(ino)

    def _drop_link(self, ino: int, now: int) -> None:
        row = self._row(ino)
        if stat.S_ISDIR(row.mode) or (row.nlink <= 1 and not self._open.get(ino)):
            self._destroy(ino)  # its last name: the row goes (snapshots keep theirs), no need to update it
        else:
            self._set(ino, nlink=row.nlink - 1, ctime_ns=now)
            self._maybe_destroy(ino)

    def _check_empty(self, ino: int) -> None:
        if self.tables.has_entries(ino):
            raise err(errno.ENOTEMPTY, f"directory {ino} is not empty")

    def unlink(self, parent: int, name: bytes | str) -> None:
        """Remove a name of a non-directory; the file goes when its last link and opener do."""
        name = bname(name)
        with self._txn():
            self._dir_row(parent)
            ino = self._take_dirent(parent, name)
            if ino is None:
                raise err(errno.ENOENT, f"no entry {name!r} in directory {parent}")
            if stat.S_ISDIR(self._row(ino).mode):
                raise err(errno.EISDIR, f"{name!r} is a directory (use rmdir)")  # the call rolls back
            now = time.time_ns()
            self._drop_link(ino, now)
            self._touch_dir(parent, now)

    def rmdir(self, parent: int, name: bytes | str) -> None:
        name = bname(name)
        if name == b".":
            raise err(errno.EINVAL, "cannot remove '.'")
        if name == b"..":
            raise err(errno.ENOTEMPTY, "cannot remove '..'")
        with self._txn():
            self._dir_row(parent)
            ino = self._dirent(parent, name)
            if ino is None:
                raise err(errno.ENOENT, f"no entry {name!r} in directory {parent}")
            self._dir_row(ino)
            self._check_empty(ino)
            now = time.time_ns()
            self._del_dirent(parent, name)
            self._drop_link(ino, now)
            self._touch_dir(parent, now, -1)

    # ------------------------------------------------------------------ renaming

    def _is_ancestor(self, anc: int, ino: int) -> bool:
        while True:
            if ino == anc:
                return True
            if ino == ROOT_INO:
                return False
            ino = self._parent_of(ino)

    def rename(self, old_parent: int, old_name: bytes | str, new_parent: int, new_name: bytes | str,
               flags: int = 0, uid: int = 0, gid: int = 0, xattrs: dict | None = None,
               inherit_acl: bool = False) -> None:
        """rename(2)/renameat2(2) with RENAME_NOREPLACE, RENAME_EXCHANGE or RENAME_WHITEOUT.

        With RENAME_WHITEOUT (which may go with RENAME_NOREPLACE) the old name is left
        to a new whiteout, a character device 0/0 with mode 0 owned by ``uid``/``gid``
        with ``xattrs`` (and with ``inherit_acl`` the ACLs ``old_parent``'s default ACL
        gives it), in the same transaction, as ext4 does (which, since Linux 5.8, asks
        no privilege for it)."""
        old_name, new_name = bname(old_name), bname(new_name)
        if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT) or (
                flags & RENAME_EXCHANGE and flags & (RENAME_NOREPLACE | RENAME_WHITEOUT)):
            raise err(errno.EINVAL, f"unsupported rename flags {flags:#x}")
        for n in (old_name, new_name):
            if n in (b".", b"..") or not n:
                raise err(errno.EBUSY if n else errno.ENOENT, f"cannot rename {n!r}")
        check_new_name(new_name)
        with self._txn():
            self._dir_row(old_parent)
            self._dir_row(new_parent)
            src = self._dirent(old_parent, old_name)
            if src is None:
                raise err(errno.ENOENT, f"no entry {old_name!r} in directory {old_parent}")
            dst = self._dirent(new_parent, new_name)
            srow = self._row(src)
            sdir = stat.S_ISDIR(srow.mode)
            now = time.time_ns()
            if flags & RENAME_EXCHANGE:
                if dst is None:
                    raise err(errno.ENOENT, f"no entry {new_name!r} in directory {new_parent}")
                if src == dst:
                    return
                ddir = stat.S_ISDIR(self._row(dst).mode)
                if (sdir and self._is_ancestor(src, new_parent)) or (ddir and self._is_ancestor(dst, old_parent)):
                    raise err(errno.EINVAL, "cannot move a directory into itself")
                sdos, ddos = self.tables.dosname(old_parent, old_name), self.tables.dosname(new_parent, new_name)
                self._del_dirent(old_parent, old_name)
                self._del_dirent(new_parent, new_name)
                self._add_dirent(new_parent, new_name, src, sdos)
                self._add_dirent(old_parent, old_name, dst, ddos)
                self._set(src, ctime_ns=now)
                self._set(dst, ctime_ns=now)
                if old_parent != new_parent:
                    self._touch_dir(old_parent, now, int(ddir) - int(sdir))
                    self._touch_dir(new_parent, now, int(sdir) - int(ddir))
                else:
                    self._touch_dir(old_parent, now)
                return
            if dst is not None:
                if flags & RENAME_NOREPLACE:
                    raise err(errno.EEXIST, f"{new_name!r} already exists in directory {new_parent}")
                if src == dst:
                    return
                drow = self._row(dst)
                if sdir and not stat.S_ISDIR(drow.mode):
                    raise err(errno.ENOTDIR, f"cannot rename a directory over non-directory {new_name!r}")
                if not sdir and stat.S_ISDIR(drow.mode):
                    raise err(errno.EISDIR, f"cannot rename a non-directory over directory {new_name!r}")
                if stat.S_ISDIR(drow.mode):
                    self._check_empty(dst)
            if sdir and self._is_ancestor(src, new_parent):
                raise err(errno.EINVAL, "cannot move a directory into itself")
            if dst is not None:
                self._del_dirent(new_parent, new_name)
                self._drop_link(dst, now)
                if stat.S_ISDIR(drow.mode):
                    self._touch_dir(new_parent, now, -1)
            sdos = self.tables.dosname(old_parent, old_name)  # the short name goes with the entry
            self._del_dirent(old_parent, old_name)
            self._add_dirent(new_parent, new_name, src, sdos)
            self._set(src, ctime_ns=now)
            if flags & RENAME_WHITEOUT:
                if inherit_acl:  # the whiteout inherits a default ACL as any new inode does
                    xattrs = {**(xattrs or {}), **self._inherit(old_parent, WHITEOUT_MODE, 0)[1]}
                wino = self.meta.next_ino
                self._add_dirent(old_parent, old_name, wino)
                self._new_inode(wino, self._row(old_parent), WHITEOUT_MODE, uid, gid, 0, None, xattrs, now)
            if old_parent != new_parent:
                self._touch_dir(old_parent, now, -1 if sdir else 0)
                self._touch_dir(new_parent, now, 1 if sdir else 0)
            else:
                self._touch_dir(old_parent, now)
