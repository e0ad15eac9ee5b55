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
import io
import time
from typing import BinaryIO, Callable

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

    def stream_read(self, ino: int, name: bytes | str, snap: int | None = None,
                    offset: int = 0, size: int | None = None) -> bytes:
        """The bytes of stream ``name`` (ENOENT if ``ino`` has none of that name); with
        ``offset``/``size`` only that part (only the chunks holding it are read)."""
        name = bname(name)
        _check_name(name)
        end = None if size is None else offset + size
        v = self.xattr(ino, stream_xattr(name), snap)
        if v is not None:
            return (v[:-1] if v.endswith(b"\0") else v)[offset:end]
        where, params = self._view(snap)
        first = offset // CHUNK
        last = (1 << 62) if end is None else -(-end // CHUNK)
        rows = self._db.execute(f"SELECT idx, data FROM streams WHERE ino = ? AND name = ? AND idx >= ? AND idx < ? "
                                f"AND {where} ORDER BY idx", (ino, name, first, last, *params)).fetchall()
        if not rows:
            if offset and self._db.execute(f"SELECT 1 FROM streams WHERE ino = ? AND name = ? AND {where} LIMIT 1",
                                           (ino, name, *params)).fetchone() is not None:
                return b""  # past its end
            raise err(errno.ENOENT, f"inode {ino} has no stream {name.decode(errors='replace')!r}")
        skip = offset - first * CHUNK
        data = b"".join(r[1] for r in rows)
        return data[skip:None if size is None else skip + size]

    def stream_write(self, ino: int, name: bytes | str, data: bytes | BinaryIO) -> bool:
        """Make stream ``name`` hold ``data`` (bytes, or a file read to its end a chunk at a
        time: never whole in memory), in one transaction; True if it went into an xattr (it
        fits), False if it is stored as data."""
        name = bname(name)
        _check_name(name)
        if isinstance(data, (bytes, bytearray, memoryview)):
            whole = bytes(data)
            reader: Callable[[int], bytes] = io.BytesIO(whole).read
        else:
            reader = data.read
        head = reader(XATTR_STREAM_MAX + 1)
        with self._txn():
            self._row(ino)
            if len(head) <= XATTR_STREAM_MAX:
                try:  # refused before it changes anything when the room is short
                    self._put_xattr(ino, stream_xattr(name), head + b"\0")
                    self._kill("streams", "ino = ? AND name = ?", (ino, name))
                    return True
                except NoSpace:
                    pass  # no room among the file's xattrs: as data
            if name in (n for n, _, x in self.stream_list(ino) if x):
                self._drop_xattr(ino, stream_xattr(name))
            have = {r[0] for r in self._db.execute("SELECT idx FROM streams WHERE ino = ? AND name = ? AND death = ?",
                                                   (ino, name, LIVE))}
            idx, pending = 0, bytearray(head)
            while True:
                while len(pending) < CHUNK:
                    more = reader(CHUNK)
                    if not more:
                        break
                    pending += more
                if not pending and idx:
                    break
                chunk = bytes(pending[:CHUNK])
                del pending[:CHUNK]
                if idx in have:
                    old = self._db.execute("SELECT data FROM streams WHERE ino = ? AND name = ? AND idx = ? "
                                           "AND death = ?", (ino, name, idx, LIVE)).fetchone()
                    if old is not None and old[0] == chunk:
                        idx += 1
                        continue  # unchanged: the row (and every snapshot's view of it) stays
                    self._kill("streams", "ino = ? AND name = ? AND idx = ?", (ino, name, idx))
                self._db.execute("INSERT INTO streams (ino, name, idx, death, birth, data) VALUES (?,?,?,?,?,?)",
                                 (ino, name, idx, LIVE, self.meta.epoch, chunk))
                idx += 1
            if any(i >= idx for i in have):
                self._kill("streams", "ino = ? AND name = ? AND idx >= ?", (ino, name, idx))
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
