"""The pyfuse3 adapter: kernel requests mapped onto :class:`~snapfs.Volume` calls.

Node ids.  A live file's kernel node id *is* its Volume ino, so ``st_ino``
seen through the mount is the file's stable identity.  Snapshot views need a
node id per (snapshot, ino) because the kernel caches by node id; it is
computed from the two (:func:`snap_node`, above :data:`SNAPDIR_NODE`), so a
file's ``st_ino`` under ``.snapshot/NAME/`` stays the same however often the
kernel drops and looks it up again, and hard links there share it, as tools
that group links by ``st_ino`` need.  A tool reading ``MOUNT/.snapshot/NAME/``
gets the stable identity from the virtual xattr :data:`INO_XATTR`
(``user.snapfs.ino``, decimal ASCII), which answers on live files too and is
never listed by listxattr (so ``cp -a``/``getfattr -d`` do not copy it).

``.snapshot`` is reachable by name from the root and never listed; the
snapshot trees are read-only (EROFS for every change).  Everything else is
one Volume call, with :class:`SnapfsError` turned into its errno.

Commits: the daemon runs the Volume in batch mode (see :meth:`Volume.set_batch`
and :mod:`snapfs.mount`), so a request costs a savepoint, not a commit.

Caching: every change of the live tree goes through this adapter, so the
kernel may keep entries and attributes for :data:`LIVE_TIMEOUT` and page
cache across opens (``keep_cache``); snapshot trees never change while they
exist.  Snapshot create/rename/delete, done behind the kernel's back through
the control channel, call :meth:`SnapfsOperations.snapshots_changed`, which
invalidates the affected ``.snapshot`` entries.  No writeback cache: a write
is in the daemon when write(2) returns, so a snapshot taken after it has its
bytes; a write-only open gets direct I/O (see :func:`_write_only`).

POSIX ACLs: ``enable_acl`` makes the kernel enforce them (it also forces
``default_permissions``); inheritance and mode/ACL coupling are the Volume's
(``umask`` on create, ``acl=True`` on setattr, :meth:`Volume.set_acl`).
"""

from __future__ import annotations

import errno
import functools
import os
import stat
from pathlib import Path

import pyfuse3

from snapdump.snapfs_names import INO_XATTR, SNAPDIR_NAME, SNAPSHOT_CREATED_XATTR, SNAPSHOT_XATTR
from snapdump.snapfs_names import TRUSTED_INO_XATTR, VOLUME_XATTR

from . import acl as _acl
from . import locks as _locks
from . import qtrees as _qtrees
from .errors import SnapfsError
from .values import Attrs
from .volume import ROOT_INO, Volume, xattr_suffix

#: Node id of ``.snapshot``; snapshot nodes are numbered above it, live inos stay below.
SNAPDIR_NODE = 1 << 62
#: Snapshot node ids: SNAPDIR_NODE + (snapshot id << _SNAP_SHIFT) + ino, all below 2**64
#: (inode numbers below 2**40, snapshot ids -- epochs, never reused -- below 3 * 2**22).
_SNAP_SHIFT = 40
_INO_MASK = (1 << _SNAP_SHIFT) - 1
_MAX_SNAP = ((1 << 64) - 1 - SNAPDIR_NODE) >> _SNAP_SHIFT
#: Virtual xattr on every node: its qtree id (0: in no qtree), decimal ASCII.
QTREE_ID_XATTR = _qtrees.QTREE_ID_XATTR
#: The filer's records (``trusted.snapfs.qtree``, ``trusted.snapfs.junction``): shown, never
#: changed through the mount (the snapfs commands change them).
FILER_XATTR_PREFIX = b"trusted.snapfs."
#: Virtual, listed on a live file with persistent locks (see snapfs.locks).
LOCKS_XATTR = _locks.LOCKS_XATTR
_VIRTUAL = (LOCKS_XATTR, QTREE_ID_XATTR, INO_XATTR, TRUSTED_INO_XATTR, VOLUME_XATTR, SNAPSHOT_XATTR, SNAPSHOT_CREATED_XATTR)
LIVE_TIMEOUT = 3600.0
SNAP_TIMEOUT = 3600.0
_READDIR_BATCH = 256
#: setattr's fields taken as they come: pyfuse3's flag, :meth:`Volume.setattr`'s
#: keyword and the ``EntryAttributes`` field (the size is checked first).
_SETATTR_FIELDS = (("update_mode", "mode", "st_mode"), ("update_uid", "uid", "st_uid"),
                   ("update_gid", "gid", "st_gid"), ("update_atime", "atime_ns", "st_atime_ns"),
                   ("update_mtime", "mtime_ns", "st_mtime_ns"), ("update_ctime", "ctime_ns", "st_ctime_ns"))
#: readdir offsets 1 and 2 are '.' and '..'; Volume cookies (and snapshot ids) come after.
_DOT_OFFSETS = 2
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND
#: File handles of opens of locked files (one per open, to know its owner at read and
#: write): above every live inode number, below the snapshot nodes.
_OPEN_FH = 1 << 41


#: The requests an offline volume refuses (EIO): every read or change of a file
#: or folder; what finds and describes the mount itself (getattr, getxattr,
#: statfs, lookup) and closing what was open still answer.
_REFUSED_OFFLINE = frozenset({
    "readlink", "mknod", "mkdir", "symlink", "create", "link", "unlink", "rmdir", "rename", "setattr",
    "setxattr", "removexattr", "open", "read", "write", "opendir", "readdir", "fsync", "fsyncdir"})


def _errors(fn):
    """Answer a request with the errno of any :class:`SnapfsError` it raises.

    ENOSPC is tried once more after a commit: blocks freed by the calls not yet
    committed (batch mode) only become free then.  A failed Volume call leaves
    nothing behind, so the retry starts from the same state."""
    refuse_offline = fn.__name__ in _REFUSED_OFFLINE

    @functools.wraps(fn)
    async def wrapper(self, *a, **kw):
        if refuse_offline and self.vol.io_refused:  # offline, or in a failover event
            raise pyfuse3.FUSEError(errno.EIO)
        try:
            return await fn(self, *a, **kw)
        except SnapfsError as e:
            if e.errno != errno.ENOSPC or not self.vol.commit():
                raise pyfuse3.FUSEError(e.errno) from None
        try:
            return await fn(self, *a, **kw)
        except SnapfsError as e:
            raise pyfuse3.FUSEError(e.errno) from None
    return wrapper


def _is_snapdir(parent: int, name: bytes) -> bool:
    """Whether ``name`` in directory ``parent`` is the root's ``.snapshot``."""
    return parent == ROOT_INO and name == SNAPDIR_NAME


def _erofs() -> pyfuse3.FUSEError:
    return pyfuse3.FUSEError(errno.EROFS)


def _write_only(flags: int) -> bool:
    """Whether an open with ``flags`` gets direct I/O: a write-only one.  Its writes then go
    to the daemon straight from the writer's pages, not copied into the page cache first:
    a copy less per byte, and nothing lost, as the mount has no writeback cache, and the
    kernel drops pages a write made at the next read anyway (the file's mtime changed).
    Readers keep the page cache; the kernel drops what it holds of the written range."""
    return flags & os.O_ACCMODE == os.O_WRONLY


def snap_node(snap: int, ino: int) -> int:
    """The kernel node id (and ``st_ino``) of inode ``ino`` in snapshot ``snap``."""
    if ino > _INO_MASK or snap > _MAX_SNAP:
        raise pyfuse3.FUSEError(errno.EOVERFLOW)
    return SNAPDIR_NODE + (snap << _SNAP_SHIFT) + ino


def node_key(node: int) -> tuple[int, int]:
    """(snapshot id, ino) of a snapshot node id made by :func:`snap_node`."""
    off = node - SNAPDIR_NODE
    return off >> _SNAP_SHIFT, off & _INO_MASK


class SnapfsOperations(pyfuse3.Operations):
    """pyfuse3 operations over one open :class:`Volume` (single trio thread)."""

    enable_acl = True
    enable_writeback_cache = False
    supports_dot_lookup = True

    def __init__(self, vol: Volume) -> None:
        super().__init__()
        self.vol = vol
        self.voldir = str(Path(vol.path).resolve())
        #: restricted inode -> owner: the Volume's own dict, changed in place (a look-up per open)
        self.restricted = vol.restricted
        #: inodes with enforced persistent locks, and live LUNs: the Volume's dicts (look-ups per I/O)
        self.locked = vol.locked
        self.luns = vol.luns
        #: per-open handles of locked files: fh -> (ino, owner, restoring)
        self.opens: dict[int, tuple[int, str | None, bool]] = {}
        self._next_fh = _OPEN_FH
        #: called once the kernel's INIT request has been answered (the mount daemon's hook)
        self.on_init = lambda: None

    # ------------------------------------------------------------------ helpers

    def _where(self, node: int) -> tuple[int | None, int]:
        """(snapshot id or None, Volume ino) of a kernel node."""
        if node < SNAPDIR_NODE:
            return None, node
        if node == SNAPDIR_NODE:
            raise pyfuse3.FUSEError(errno.EISDIR)
        snap, ino = node_key(node)
        if not self.vol.is_snapshot(snap):
            raise pyfuse3.FUSEError(errno.ESTALE)  # the snapshot was deleted
        return snap, ino

    def _live(self, node: int) -> int:
        """The Volume ino of a live node; EROFS for ``.snapshot`` and everything under it,
        and for everything on a volume of type ro (a mirror destination)."""
        if node >= SNAPDIR_NODE or self.vol.read_only:
            raise _erofs()
        return node

    def _entry(self, a: Attrs, snap: int | None) -> pyfuse3.EntryAttributes:
        e = pyfuse3.EntryAttributes()
        if snap is None:
            e.st_ino = a.ino
            e.entry_timeout = e.attr_timeout = LIVE_TIMEOUT
        else:
            e.st_ino = snap_node(snap, a.ino)
            e.entry_timeout = e.attr_timeout = SNAP_TIMEOUT
        e.generation = 0
        e.st_mode, e.st_nlink, e.st_uid, e.st_gid, e.st_rdev = a.mode, a.nlink, a.uid, a.gid, a.rdev
        e.st_size, e.st_blocks, e.st_blksize = a.size, a.blocks, a.blksize
        e.st_atime_ns, e.st_mtime_ns, e.st_ctime_ns = a.atime_ns, a.mtime_ns, a.ctime_ns
        return e

    def _snapdir_entry(self) -> pyfuse3.EntryAttributes:
        root = self.vol.getattr(ROOT_INO)
        e = pyfuse3.EntryAttributes()
        e.st_ino = SNAPDIR_NODE
        e.entry_timeout = e.attr_timeout = 0  # its link count follows snapshot create/delete
        e.st_mode = stat.S_IFDIR | 0o555
        e.st_nlink = 2 + self.vol.snapshot_count()
        e.st_uid = e.st_gid = 0
        e.st_size = 0
        e.st_blksize = self.vol.block_size
        e.st_atime_ns = e.st_mtime_ns = e.st_ctime_ns = root.ctime_ns
        return e

    def _snapshots(self) -> list[tuple[int, str]]:
        return self.vol.snapshot_names()

    def _new_name(self, parent: int, name: bytes) -> int:
        ino = self._live(parent)
        if _is_snapdir(ino, name):
            raise pyfuse3.FUSEError(errno.EEXIST)
        return ino

    def _removable(self, parent: int, name: bytes) -> int:
        """The live parent of a name to remove; ``.snapshot`` itself is read-only."""
        ino = self._live(parent)
        if _is_snapdir(ino, name):
            raise _erofs()
        return ino

    def init(self) -> None:
        self.on_init()

    # ------------------------------------------------------------------ control-channel hooks

    def snapshots_changed(self, gone: list[str]) -> None:
        """Drop the kernel's entries for snapshot names that were deleted or renamed away."""
        for name in gone:
            pyfuse3.invalidate_entry_async(SNAPDIR_NODE, os.fsencode(name), ignore_enoent=True)
        # and the live entries the filer's commands (qtrees, junctions) made or removed
        changed = self.vol.entries_changed
        while changed:
            parent, name = changed.pop()
            pyfuse3.invalidate_entry_async(parent, name, ignore_enoent=True)
        changed_inodes = self.vol.inodes_changed  # a LUN resized (snapfs.luns)
        while changed_inodes:
            try:
                pyfuse3.invalidate_inode(changed_inodes.pop(), attr_only=True)
            except FileNotFoundError:
                pass  # an inode the kernel does not hold: nothing to drop (not a reason to stop the mount)

    # ------------------------------------------------------------------ names

    @_errors
    async def lookup(self, parent_inode, name, ctx=None):
        if _is_snapdir(parent_inode, name):
            return self._snapdir_entry()
        if parent_inode == SNAPDIR_NODE:
            if name == b".":
                return self._snapdir_entry()
            if name == b"..":
                return self._entry(self.vol.getattr(ROOT_INO), None)
            try:
                snap = self.vol.snapshot_id(os.fsdecode(name))
            except SnapfsError:
                raise pyfuse3.FUSEError(errno.ENOENT) from None
            return self._entry(self.vol.getattr(ROOT_INO, snap), snap)
        snap, ino = self._where(parent_inode)
        if snap is not None and ino == ROOT_INO and name == b"..":
            return self._snapdir_entry()
        if snap is not None:
            return self._entry(self.vol.lookup(ino, name, snap), snap)
        a = self.vol.find(ino, name)
        if a is None:
            # a negative entry the kernel may keep: names appear only through this adapter
            neg = pyfuse3.EntryAttributes()
            neg.st_ino = 0
            neg.entry_timeout = LIVE_TIMEOUT
            return neg
        return self._entry(a, None)

    # No forget handler: node ids are computed, not handed out, so there is nothing to drop.

    @_errors
    async def getattr(self, inode, ctx=None):
        if inode == SNAPDIR_NODE:
            return self._snapdir_entry()
        snap, ino = self._where(inode)
        return self._entry(self.vol.getattr(ino, snap), snap)

    @_errors
    async def readlink(self, inode, ctx):
        snap, ino = self._where(inode)
        return self.vol.readlink(ino, snap)

    @_errors
    async def mknod(self, parent_inode, name, mode, rdev, ctx):
        parent = self._new_name(parent_inode, name)
        return self._entry(self.vol.mknod(parent, name, mode, rdev, ctx.uid, ctx.gid, umask=ctx.umask), None)

    @_errors
    async def mkdir(self, parent_inode, name, mode, ctx):
        parent = self._new_name(parent_inode, name)
        return self._entry(self.vol.mkdir(parent, name, mode, ctx.uid, ctx.gid, umask=ctx.umask), None)

    @_errors
    async def symlink(self, parent_inode, name, target, ctx):
        parent = self._new_name(parent_inode, name)
        return self._entry(self.vol.symlink(parent, name, target, ctx.uid, ctx.gid), None)

    @_errors
    async def create(self, parent_inode, name, mode, flags, ctx):
        parent = self._new_name(parent_inode, name)
        a = self.vol.create_file(parent, name, mode, ctx.uid, ctx.gid, umask=ctx.umask)
        self.vol.open_file(a.ino)
        return pyfuse3.FileInfo(fh=a.ino, keep_cache=True, direct_io=_write_only(flags)), self._entry(a, None)

    @_errors
    async def link(self, inode, new_parent_inode, new_name, ctx):
        parent = self._new_name(new_parent_inode, new_name)
        ino = self._live(inode)
        if ino in self.luns and parent != ROOT_INO and parent not in self.vol.qtrees:
            raise pyfuse3.FUSEError(errno.EPERM)  # a LUN stays at a volume or qtree root
        return self._entry(self.vol.link(ino, parent, new_name), None)

    @_errors
    async def unlink(self, parent_inode, name, ctx):
        parent = self._removable(parent_inode, name)
        if self.locked:
            a = self.vol.find(parent, name)
            if a is not None and a.ino in self.locked:
                self._lock_check(a.ino, ctx.pid, _locks.UNLINK)
        self.vol.unlink(parent, name)

    @_errors
    async def rmdir(self, parent_inode, name, ctx):
        parent = self._removable(parent_inode, name)
        if self.vol.qtree_root(parent, name):  # only 'snapfs qtree delete' removes a qtree
            raise pyfuse3.FUSEError(errno.EPERM)
        self.vol.rmdir(parent, name)

    @_errors
    async def rename(self, parent_inode_old, name_old, parent_inode_new, name_new, flags, ctx):
        old, new = self._live(parent_inode_old), self._live(parent_inode_new)
        if _is_snapdir(old, name_old) or _is_snapdir(new, name_new):
            raise pyfuse3.FUSEError(errno.EBUSY)
        if self.vol.qtree_root(old, name_old) or self.vol.qtree_root(new, name_new):
            raise pyfuse3.FUSEError(errno.EPERM)  # a qtree keeps its name (ONTAP renames it, not NFS)
        if old != new and self.vol.qtrees:
            src = self.vol.find(old, name_old)
            if src is not None and self.vol.moves_across_qtrees(src.ino, old, new):
                raise pyfuse3.FUSEError(errno.EXDEV)  # directories stay in their qtree (as on ONTAP)
        if self.luns and new != ROOT_INO and new not in self.vol.qtrees:
            src = self.vol.find(old, name_old)
            if src is not None and src.ino in self.luns:
                raise pyfuse3.FUSEError(errno.EPERM)  # a LUN stays at a volume or qtree root
        if self.locked:  # replacing a locked file unlinks it
            dst = self.vol.find(new, name_new)
            if dst is not None and dst.ino in self.locked:
                self._lock_check(dst.ino, ctx.pid, _locks.UNLINK)
        self.vol.rename(old, name_old, new, name_new, flags, ctx.uid, ctx.gid, inherit_acl=True)

    # ------------------------------------------------------------------ attributes

    @_errors
    async def setattr(self, inode, attr, fields, fh, ctx):
        ino = self._live(inode)
        kw: dict = {key: getattr(attr, name) for flag, key, name in _SETATTR_FIELDS if getattr(fields, flag)}
        if fields.update_size:
            if ino in self.restricted and not self.vol.may_open(ino, ctx.pid):
                raise pyfuse3.FUSEError(errno.EBUSY)  # client I/O restriction
            if ino in self.luns:
                raise pyfuse3.FUSEError(errno.EPERM)  # a LUN's size changes by 'snapfs lun resize'
            if ino in self.locked:
                self._lock_check(ino, ctx.pid, _locks.TRUNCATE)
            kw["size"] = attr.st_size
        a = self.vol.setattr(ino, acl=True, **kw)  # chmod follows into the access ACL
        return self._entry(a, None)

    @_errors
    async def setxattr(self, inode, name, value, ctx):
        ino = self._live(inode)
        if name in _VIRTUAL or name.startswith(FILER_XATTR_PREFIX):
            raise pyfuse3.FUSEError(errno.EPERM)
        if name in (_acl.ACL_ACCESS, _acl.ACL_DEFAULT):  # the mode and the ACL follow each other
            self.vol.set_acl(ino, name, value)
            return
        self.vol.setxattr(ino, name, value)

    @_errors
    async def getxattr(self, inode, name, ctx):
        if inode == SNAPDIR_NODE:
            if name in (INO_XATTR, TRUSTED_INO_XATTR):
                return str(SNAPDIR_NODE).encode()
            xattr_suffix(name)  # EOPNOTSUPP outside the namespaces, as everywhere
            raise pyfuse3.FUSEError(errno.ENODATA)
        snap, ino = self._where(inode)
        if name in (INO_XATTR, TRUSTED_INO_XATTR):
            self.vol.getattr(ino, snap)
            return str(ino).encode()
        if name == QTREE_ID_XATTR:
            return str(self.vol.qtree_of(ino, snap).id).encode()
        if name == LOCKS_XATTR:
            value = self.vol.lock_xattr(ino) if snap is None else None
            if value is None:
                raise pyfuse3.FUSEError(errno.ENODATA)
            return value
        if name == VOLUME_XATTR and snap is None and ino == ROOT_INO:
            return os.fsencode(self.voldir)
        if name == SNAPSHOT_XATTR:
            if snap is None:
                return b""
            return next((n.encode() for s, n in self._snapshots() if s == snap), b"")
        if name == SNAPSHOT_CREATED_XATTR:
            if snap is None:
                raise pyfuse3.FUSEError(errno.ENODATA)
            return str(self.vol.snapshot_created_ns(snap)).encode()
        value = self.vol.xattr(ino, name, snap)  # security.capability on every write: no exception
        if value is None:
            raise pyfuse3.FUSEError(errno.ENODATA)
        return value

    @_errors
    async def listxattr(self, inode, ctx):
        if inode == SNAPDIR_NODE:
            return []
        snap, ino = self._where(inode)
        names = self.vol.listxattr(ino, snap)
        if snap is None and ino in self.vol.locks_on:
            names.append(LOCKS_XATTR)
        return names

    @_errors
    async def removexattr(self, inode, name, ctx):
        ino = self._live(inode)
        if name in _VIRTUAL or name.startswith(FILER_XATTR_PREFIX):
            raise pyfuse3.FUSEError(errno.EPERM)
        self.vol.removexattr(ino, name)

    # ------------------------------------------------------------------ data

    @_errors
    async def open(self, inode, flags, ctx):
        snap, ino = self._where(inode)
        if flags & _WRITE_FLAGS and (snap is not None or self.vol.read_only):
            raise _erofs()
        if ino in self.restricted and snap is None and not self.vol.may_open(ino, ctx.pid):
            raise pyfuse3.FUSEError(errno.EBUSY)  # client I/O restriction (see snapfs.restrictions)
        fh = inode
        if ino in self.locked and snap is None:  # persistent locks (see snapfs.locks)
            owner, restoring = self.vol.owners.session_of(ctx.pid)
            acc = flags & os.O_ACCMODE
            try:
                if acc != os.O_WRONLY:
                    self.vol.lock_check(ino, owner, restoring, _locks.OPEN_READ)
                if acc != os.O_RDONLY or flags & os.O_TRUNC:
                    self.vol.lock_check(ino, owner, restoring, _locks.OPEN_WRITE)
                if flags & os.O_TRUNC:
                    self.vol.lock_check(ino, owner, restoring, _locks.TRUNCATE)
            except SnapfsError as e:
                raise pyfuse3.FUSEError(e.errno) from None
            fh = self._next_fh
            self._next_fh += 1
            self.opens[fh] = (ino, owner, restoring)
        keep = True
        if flags & os.O_TRUNC and stat.S_ISREG(self.vol.getattr(ino).mode):
            if ino in self.luns and snap is None:
                raise pyfuse3.FUSEError(errno.EPERM)  # a LUN's size changes by 'snapfs lun resize'
            # libfuse asks for atomic_o_trunc: the kernel leaves O_TRUNC to the open
            self.vol.truncate(ino, 0)
            keep = False
        self.vol.open_file(ino, snap)
        if fh != inode:  # a locked file: every read and write comes here, none from the page cache
            return pyfuse3.FileInfo(fh=fh, keep_cache=False, direct_io=True)
        return pyfuse3.FileInfo(fh=fh, keep_cache=keep, direct_io=_write_only(flags))

    def _lock_check(self, ino: int, pid: int, op: str) -> None:
        owner, restoring = self.vol.owners.session_of(pid)
        self.vol.lock_check(ino, owner, restoring, op)

    @_errors
    async def read(self, fh, off, size):
        if fh < _OPEN_FH:
            if fh in self.locked:  # an open from before the lock: nobody's
                self.vol.lock_check(fh, None, False, _locks.READ, off, size)
            return self.vol.read_buffer(fh, off, size)
        if fh < SNAPDIR_NODE:
            ino, owner, restoring = self.opens[fh]
            if ino in self.locked:
                self.vol.lock_check(ino, owner, restoring, _locks.READ, off, size)
            return self.vol.read_buffer(ino, off, size)
        snap, ino = self._where(fh)
        return self.vol.read_buffer(ino, off, size, snap)

    @_errors
    async def write(self, fh, off, buf):
        if _OPEN_FH <= fh < SNAPDIR_NODE:
            ino, owner, restoring = self.opens[fh]
        else:
            ino, owner, restoring = fh, None, False
        ino = self._live(ino)
        if ino in self.locked:
            self.vol.lock_check(ino, owner, restoring, _locks.WRITE, off, len(buf))
        if ino in self.luns:
            self.vol.lun_size_check(ino, off, len(buf))
        return self.vol.write(ino, off, buf)

    # No flush handler: pyfuse3's default answers ENOSYS, after which the kernel stops
    # sending FLUSH on every close (there is nothing to do at close; fsync is durable).

    @_errors
    async def release(self, fh):
        if _OPEN_FH <= fh < SNAPDIR_NODE:
            fh = self.opens.pop(fh)[0]
        if fh < SNAPDIR_NODE:  # snapshot files keep nothing open (and may be deleted by now)
            self.vol.release_file(fh)

    @_errors
    async def fsync(self, fh, datasync):
        self.vol.fsync()

    # ------------------------------------------------------------------ directories

    @_errors
    async def opendir(self, inode, ctx):
        if inode != SNAPDIR_NODE:
            snap, ino = self._where(inode)
            a = self.vol.getattr(ino, snap)
            if not stat.S_ISDIR(a.mode):
                raise pyfuse3.FUSEError(errno.ENOTDIR)
        return inode

    def _dot_entries(self, fh: int) -> tuple[pyfuse3.EntryAttributes, pyfuse3.EntryAttributes]:
        """Attributes for ``.`` and ``..`` of directory node ``fh``.

        Their st_ino is the node id the kernel knows for that directory (so it
        matches ``stat``): the root is its own parent, ``.snapshot``'s parent is
        the root and a snapshot root's parent is ``.snapshot``."""
        if fh == SNAPDIR_NODE:
            return self._snapdir_entry(), self._entry(self.vol.getattr(ROOT_INO), None)
        snap, ino = self._where(fh)
        dot = self._entry(self.vol.getattr(ino, snap), snap)
        if snap is not None and ino == ROOT_INO:
            return dot, self._snapdir_entry()
        return dot, self._entry(self.vol.lookup(ino, b"..", snap), snap)

    @_errors
    async def readdir(self, fh, start_id, token):
        # Kernel offsets: 1 after '.', 2 after '..', then _DOT_OFFSETS + a Volume cookie
        # (or + a snapshot id in .snapshot), so a continued listing never skips or repeats.
        if start_id < _DOT_OFFSETS:
            for off, (name, e) in enumerate(zip((b".", b".."), self._dot_entries(fh)), 1):
                if off > start_id and not pyfuse3.readdir_reply(token, name, e, off):
                    return
            start_id = _DOT_OFFSETS
        after = start_id - _DOT_OFFSETS
        if fh == SNAPDIR_NODE:
            for snap, name in self._snapshots():
                if snap <= after:
                    continue
                a = self.vol.getattr(ROOT_INO, snap)
                if not pyfuse3.readdir_reply(token, name.encode(), self._entry(a, snap), snap + _DOT_OFFSETS):
                    return
            return
        snap, ino = self._where(fh)
        while True:
            batch = self.vol.readdir(ino, after, snap, limit=_READDIR_BATCH)
            for ent in batch:
                if not pyfuse3.readdir_reply(token, ent.name, self._entry(ent.attrs, snap),
                                             ent.offset + _DOT_OFFSETS):
                    return
            if len(batch) < _READDIR_BATCH:
                return
            after = batch[-1].offset

    async def releasedir(self, fh):
        pass

    @_errors
    async def fsyncdir(self, fh, datasync):
        self.vol.fsync()

    @_errors
    async def statfs(self, ctx):
        self.vol.commit()  # blocks freed since the last commit count as free
        s = self.vol.statfs()
        r = pyfuse3.StatvfsData()
        r.f_bsize = r.f_frsize = s.block_size
        r.f_blocks, r.f_bfree, r.f_bavail = s.total_blocks, s.free_blocks, s.free_blocks
        r.f_files, r.f_ffree, r.f_favail = s.total_inodes, s.free_inodes, s.free_inodes
        r.f_namemax = s.name_max
        return r
