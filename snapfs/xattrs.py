"""Extended attributes of a Volume: ext4's rules for names, sizes and room, and the calls.

:class:`XattrOps` is one of the parts :class:`snapfs.volume.Volume` is made of;
it works through the Volume's store (see :mod:`snapfs.store`).  The POSIX ACL
rules a file system applies to ``system.posix_acl_*`` (the access ACL and the
mode follow each other) are :meth:`XattrOps.set_acl`'s.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from typing import Callable

from . import acl
from .errors import NoSpace, SnapfsError, err
from .schema import LIVE
from .store import StoreCalls
from .winmeta import READ_ONLY_XATTRS

XATTR_NAME_MAX = 255
XATTR_SIZE_MAX = 65536
#: All xattrs of one inode fit in one block, as on ext4 without ea_inode, counted as
#: ext4 lays out an xattr block (see :func:`xattr_space`); a block of at most 64 KiB.
XATTR_BLOCK_MAX = 65536
_XATTR_BLOCK_HEAD = 32 + 4  # ext4_xattr_header and the 4-byte end of the entry list
_XATTR_ENTRY = 16  # ext4_xattr_entry before its name
#: Namespaces with a suffix (ext4's user, trusted and security handlers), and the only
#: system.* names ext4 knows (POSIX ACLs); any other name is EOPNOTSUPP.
_XATTR_PREFIXES = (b"user.", b"trusted.", b"security.")
_SYSTEM_XATTRS = (acl.ACL_ACCESS, acl.ACL_DEFAULT)
XATTR_CREATE = 1
XATTR_REPLACE = 2


def bname(name: bytes | str) -> bytes:
    """A file or xattr name as bytes (str is encoded as the file system encodes it)."""
    return os.fsencode(name) if isinstance(name, str) else bytes(name)


def xattr_suffix(name: bytes) -> bytes:
    """The part of xattr ``name`` stored after its namespace (as ext4 stores it): ERANGE
    for an empty or too long name, EOPNOTSUPP outside the namespaces, EINVAL for a
    namespace prefix alone (errors as ext4 gives them)."""
    if not name or len(name) > XATTR_NAME_MAX:
        raise err(errno.ERANGE, f"extended attribute name must be 1..{XATTR_NAME_MAX} bytes")
    for prefix in _XATTR_PREFIXES:
        if name.startswith(prefix):
            if len(name) == len(prefix):
                raise err(errno.EINVAL, f"extended attribute name {name!r} has no name after its namespace")
            return name[len(prefix):]
    if name in _SYSTEM_XATTRS:
        return b""
    raise err(errno.EOPNOTSUPP, f"extended attribute {name!r} is in no namespace snapfs supports"
              " (user., trusted., security., system.posix_acl_*)")


def xattr_space(xattrs: dict[bytes, bytes]) -> int:
    """Bytes that ``xattrs`` (name -> value) take in an ext4 xattr block: a header, and
    for each a 16-byte entry with the name's suffix, and the value, each rounded up
    to 4 bytes (ext4's EXT4_XATTR_LEN and EXT4_XATTR_SIZE)."""
    return _XATTR_BLOCK_HEAD + sum(_XATTR_ENTRY + (_suffix_len(n) + 3 & ~3) + (len(v) + 3 & ~3)
                                   for n, v in xattrs.items())


def _suffix_len(name: bytes) -> int:
    try:
        return len(xattr_suffix(name))
    except SnapfsError:
        return len(name)  # a name stored before these rules: counted whole


class XattrOps(StoreCalls):
    """getxattr, setxattr, listxattr, removexattr and the POSIX ACL rules (a Volume part)."""

    # what the Volume gives this part (from snapfs.winmeta.WindowsOps)
    windows_xattr: Callable[[int, bytes, bytes | None, int | None], bytes | None]
    check_windows_xattr: Callable[[bytes, bytes], None]

    def xattr(self, ino: int, name: bytes | str, snap: int | None = None) -> bytes | None:
        """The value of xattr ``name`` or None: :meth:`getxattr` without the ENODATA exception."""
        name = bname(name)
        xattr_suffix(name)
        if snap is None:
            self._row(ino)
            return self.windows_xattr(ino, name, self._xattrs(ino).get(name), None)
        try:
            return self.getxattr(ino, name, snap)
        except SnapfsError as e:
            if e.errno == errno.ENODATA:
                return None
            raise

    def getxattr(self, ino: int, name: bytes | str, snap: int | None = None) -> bytes:
        """The value of xattr ``name``: ENODATA if it is not set, EOPNOTSUPP (or ERANGE,
        EINVAL) for a name :meth:`setxattr` would refuse."""
        name = bname(name)
        xattr_suffix(name)
        self._row(ino, snap)
        if snap is None:
            v = self._xattrs(ino).get(name)
        else:
            where, params = self._view(snap)
            r = self._db.execute(f"SELECT value FROM xattrs WHERE ino = ? AND name = ? AND {where}",
                                 (ino, name, *params)).fetchone()
            v = None if r is None else r[0]
        v = self.windows_xattr(ino, name, v, snap)
        if v is None:
            raise err(errno.ENODATA, f"no extended attribute {name!r} on inode {ino}")
        return v

    def listxattr(self, ino: int, snap: int | None = None) -> list[bytes]:
        self._row(ino, snap)
        if snap is None:
            return sorted(self._xattrs(ino))
        where, params = self._view(snap)
        return [r[0] for r in self._db.execute(
            f"SELECT name FROM xattrs WHERE ino = ? AND {where} ORDER BY name", (ino, *params))]

    def setxattr(self, ino: int, name: bytes | str, value: bytes, flags: int = 0) -> None:
        """Set an extended attribute, with ext4's rules: names in the user, trusted and
        security namespaces or a POSIX ACL (else EOPNOTSUPP), at most 255 bytes (ERANGE);
        a value at most 64 KiB (E2BIG); and all of the inode's xattrs in one block of
        the volume, at most 64 KiB, laid out as ext4's (ENOSPC, see :func:`xattr_space`).
        The value is stored as given (:meth:`set_acl` applies the ACL rules)."""
        name = bname(name)
        value = bytes(value)
        if len(value) > XATTR_SIZE_MAX and 0 < len(name) <= XATTR_NAME_MAX:  # before the namespace, as Linux
            raise err(errno.E2BIG, f"extended attribute value larger than {XATTR_SIZE_MAX} bytes")
        xattr_suffix(name)
        self.check_windows_xattr(name, value)
        with self._txn():
            self._put_xattr(ino, name, value, flags)

    def _put_xattr(self, ino: int, name: bytes, value: bytes, flags: int = 0) -> None:
        self._row(ino)
        d = self._xattrs(ino)
        cur = name in d
        if cur and flags & XATTR_CREATE:
            raise err(errno.EEXIST, f"extended attribute {name!r} exists")
        if not cur and flags & XATTR_REPLACE:
            raise err(errno.ENODATA, f"no extended attribute {name!r} on inode {ino}")
        room = self.meta.xattr_room
        if xattr_space({**d, name: value}) > room:
            raise NoSpace(f"no space for more extended attributes on inode {ino}"
                          f" (all of a file's must fit in {room} bytes)")
        if cur:
            self._kill("xattrs", "ino = ? AND name = ?", (ino, name))
        self._db.execute("INSERT INTO xattrs (ino, name, death, birth, value) VALUES (?,?,?,?,?)",
                         (ino, name, LIVE, self.meta.epoch, value))
        d[name] = value
        self._set(ino, ctime_ns=time.time_ns())

    def removexattr(self, ino: int, name: bytes | str) -> None:
        name = bname(name)
        xattr_suffix(name)
        if name in READ_ONLY_XATTRS:
            raise err(errno.EPERM, f"{name.decode()} is read-only (the volume keeps it)")
        with self._txn():
            self._drop_xattr(ino, name)

    def _drop_xattr(self, ino: int, name: bytes) -> None:
        self._row(ino)
        d = self._xattrs(ino)
        if name not in d:
            raise err(errno.ENODATA, f"no extended attribute {name!r} on inode {ino}")
        self._kill("xattrs", "ino = ? AND name = ?", (ino, name))
        del d[name]
        self._set(ino, ctime_ns=time.time_ns())

    def set_acl(self, ino: int, name: bytes, value: bytes, flags: int = 0) -> None:
        """setxattr of a POSIX ACL (``name`` is ``system.posix_acl_access`` or ``_default``)
        with the rules of a file system that enforces them, in one transaction: the
        access ACL sets the mode's permission bits, and is stored only when the mode
        cannot say it all (a minimal ACL is removed); a default ACL only on a
        directory (EACCES otherwise, as Linux)."""
        name = bname(name)
        value = bytes(value)
        if len(value) > XATTR_SIZE_MAX:
            raise err(errno.E2BIG, f"extended attribute value larger than {XATTR_SIZE_MAX} bytes")
        if name not in _SYSTEM_XATTRS:
            raise err(errno.EINVAL, f"{name!r} is not a POSIX ACL")
        with self._txn():
            row = self._row(ino)
            if name == acl.ACL_DEFAULT:
                if not stat.S_ISDIR(row.mode):
                    raise err(errno.EACCES, f"inode {ino} is not a directory: it can have no default ACL")
                self._put_xattr(ino, name, value, flags)
                return
            mode, keep = acl.mode_of(value, row.mode)
            self._set(ino, mode=mode, ctime_ns=time.time_ns())
            if keep:
                self._put_xattr(ino, name, value, flags)
            elif name in self._xattrs(ino):
                self._drop_xattr(ino, name)

    def _inherit(self, parent: int, mode: int, umask: int) -> tuple[int, dict[bytes, bytes]]:
        """Mode and ACL xattrs of a new inode in live directory ``parent`` (its default ACL)."""
        return acl.inherit(self._xattrs(parent).get(acl.ACL_DEFAULT), mode, umask, stat.S_ISDIR(mode))

    def _chmod_acl(self, ino: int, mode: int) -> None:
        """After chmod: the access ACL's owner, mask (or group) and other entries follow ``mode``."""
        access = self._xattrs(ino).get(acl.ACL_ACCESS)
        if access is not None:
            self._put_xattr(ino, acl.ACL_ACCESS, acl.chmod(access, mode))
