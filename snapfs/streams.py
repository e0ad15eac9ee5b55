"""Named streams of a Volume (Windows ``file:NAME:$DATA``), of any size.

:class:`StreamOps` is one of the parts :class:`snapfs.volume.Volume` is made of.
A stream that fits one xattr is stored as Samba's ``vfs_streams_xattr`` stores
it, ``user.DosStream.NAME:$DATA`` holding its bytes and one NUL, so Samba
exporting the mount serves it.  A larger one (or one the file's xattr room
cannot take) is stored as data: chunks of :data:`CHUNK` bytes, each a
versioned row of the ``streams`` table, so a rewrite replaces only the chunks
that changed and snapshots keep the old ones (copy on write, as file data).
Such streams are not in the xattr view (Samba does not see them); the
``snapfs stream`` commands list, read, write and delete both kinds.  Their
bytes live in the volume's metadata database, not its data file: ``snapfs df``
does not count them.
"""

from __future__ import annotations

import errno
import time
from typing import Callable

from .errors import NoSpace, err
from .schema import LIVE
from .store import StoreCalls
from .windows import STREAM_PREFIX, STREAM_SUFFIX
from .xattrs import XATTR_NAME_MAX, XATTR_SIZE_MAX, bname

CHUNK = 64 * 1024
#: the largest stream kept in one xattr (its value carries a NUL more)
XATTR_STREAM_MAX = XATTR_SIZE_MAX - 1


def stream_xattr(name: bytes) -> bytes:
    """The xattr holding stream ``name`` in Samba's convention."""
    return STREAM_PREFIX + name + STREAM_SUFFIX


def _check_name(name: bytes) -> None:
    if not name or b"/" in name or b"\\" in name or b":" in name or b"\0" in name:
        raise err(errno.EINVAL, f"invalid stream name {name!r} (no '/', '\\\\', ':' or NUL; not empty)")
    if len(stream_xattr(name)) > XATTR_NAME_MAX:
        raise err(errno.ENAMETOOLONG, f"stream name {name!r} is too long")


class StreamOps(StoreCalls):
    """stream_list, stream_read, stream_write, stream_delete (a Volume part)."""

    # what else the Volume gives this part
    listxattr: Callable[..., list[bytes]]
    xattr: Callable[..., bytes | None]
    _put_xattr: Callable[..., None]
    _drop_xattr: Callable[[int, bytes], None]

    def stream_list(self, ino: int, snap: int | None = None) -> list[tuple[bytes, int, bool]]:
        """(name, size, kept as an xattr) of each named stream of ``ino``, by name."""
        out = {}
        for x in self.listxattr(ino, snap):
            if x.startswith(STREAM_PREFIX) and x.endswith(STREAM_SUFFIX):
                v = self.xattr(ino, x, snap) or b""
                out[x[len(STREAM_PREFIX):-len(STREAM_SUFFIX)]] = (max(0, len(v) - 1), True)
        where, params = self._view(snap)
        for name, size in self._db.execute(
                f"SELECT name, sum(length(data)) FROM streams WHERE ino = ? AND {where} GROUP BY name",
                (ino, *params)):
            out[name] = (size, False)
        return [(n, s, x) for n, (s, x) in sorted(out.items())]

    def stream_read(self, ino: int, name: bytes | str, snap: int | None = None) -> bytes:
        """The bytes of stream ``name`` (ENOENT if ``ino`` has none of that name)."""
        name = bname(name)
        _check_name(name)
        v = self.xattr(ino, stream_xattr(name), snap)
        if v is not None:
            return v[:-1] if v.endswith(b"\0") else v
        where, params = self._view(snap)
        rows = self._db.execute(f"SELECT data FROM streams WHERE ino = ? AND name = ? AND {where} ORDER BY idx",
                                (ino, name, *params)).fetchall()
        if not rows:
            raise err(errno.ENOENT, f"inode {ino} has no stream {name.decode(errors='replace')!r}")
        return b"".join(r[0] for r in rows)

    def stream_write(self, ino: int, name: bytes | str, data: bytes) -> bool:
        """Make stream ``name`` hold ``data``, in one transaction; True if it went into an
        xattr (it fits), False if it is stored as data."""
        name, data = bname(name), bytes(data)
        _check_name(name)
        with self._txn():
            self._row(ino)
            if len(data) <= XATTR_STREAM_MAX:
                try:  # refused before it changes anything when the room is short
                    self._put_xattr(ino, stream_xattr(name), data + b"\0")
                    self._kill("streams", "ino = ? AND name = ?", (ino, name))
                    return True
                except NoSpace:
                    pass  # no room among the file's xattrs: as data
            if name in (n for n, _, x in self.stream_list(ino) if x):
                self._drop_xattr(ino, stream_xattr(name))
            have = dict(self._db.execute("SELECT idx, data FROM streams WHERE ino = ? AND name = ? AND death = ?",
                                         (ino, name, LIVE)))
            chunks = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)] or [b""]
            for idx, chunk in enumerate(chunks):
                if have.get(idx) == chunk:
                    continue  # unchanged: the row (and every snapshot's view of it) stays
                if idx in have:
                    self._kill("streams", "ino = ? AND name = ? AND idx = ?", (ino, name, idx))
                self._db.execute("INSERT INTO streams (ino, name, idx, death, birth, data) VALUES (?,?,?,?,?,?)",
                                 (ino, name, idx, LIVE, self.meta.epoch, chunk))
            if len(have) > len(chunks):
                self._kill("streams", "ino = ? AND name = ? AND idx >= ?", (ino, name, len(chunks)))
            self._set(ino, ctime_ns=time.time_ns())
            return False

    def stream_delete(self, ino: int, name: bytes | str) -> None:
        """Remove stream ``name`` (ENOENT if there is none)."""
        name = bname(name)
        _check_name(name)
        with self._txn():
            self._row(ino)
            if self.xattr(ino, stream_xattr(name)) is not None:
                self._drop_xattr(ino, stream_xattr(name))
                return
            if self._db.execute("SELECT 1 FROM streams WHERE ino = ? AND name = ? AND death = ? LIMIT 1",
                                (ino, name, LIVE)).fetchone() is None:
                raise err(errno.ENOENT, f"inode {ino} has no stream {name.decode(errors='replace')!r}")
            self._kill("streams", "ino = ? AND name = ?", (ino, name))
            self._set(ino, ctime_ns=time.time_ns())
