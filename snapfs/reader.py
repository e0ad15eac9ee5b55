"""Read one held snapshot of a volume from another process, while the mount runs.

    with open_snapshot("/srv/vol1", "snapshot_for_backup.0") as snap:
        for inode in snap.inodes():                # inode order: .attrs, .target, .xattrs
            if stat.S_ISDIR(inode.mode):
                names = snap.entries(inode.ino)    # (name, ino), in a stable order
                short = snap.dosnames(inode.ino)   # name -> DOS 8.3 name
            elif stat.S_ISREG(inode.mode):
                for off, n in snap.extents(inode.ino):   # the data; the rest are holes
                    data = snap.read(inode.ino, off, n)

The guarantee: **a held snapshot never changes, and its blocks are not reused
while it is held.**  A snapshot is a set of rows with ``birth <= S < death``
(see :mod:`snapfs.snapshots`); the live tree only ends rows (setting
``death`` to the current epoch, above S), splits a block map extent into rows
with its epochs and its blocks (what every view sees stays the same, in one
transaction), or changes and drops rows born after the newest snapshot, and
deleting another snapshot drops only rows no other snapshot sees.  A row S
sees goes only when S itself is deleted (or is split so), and a data
block is freed (and so may be rewritten) only with its row.  A held snapshot
cannot be deleted (``snapshot_delete`` answers EBUSY naming the holder), so
as long as the hold lasts, every row and byte this reader reads is the one
the snapshot froze, whatever the mount daemon writes, deletes, snapshots or
commits meanwhile.  No lock is taken and none is needed beyond the hold:
the metadata is read through SQLite's WAL, where readers and the one writer
never wait for each other.

So: hold the snapshot first (``snapfs hold`` or :meth:`snapfs.client.Client.snapshot_hold`),
open the reader, and release the hold only after :meth:`SnapshotReader.close`.
A snapshot that is not held (or not by ``holder``, when given) is refused
with a :class:`SnapfsError`; releasing the hold while reading voids the
guarantee (a later deletion frees the blocks being read).

The reader never writes: the database is opened read-only (``mode=ro``, and
``query_only``), so it never checkpoints the WAL, and the data file is opened
``O_RDONLY``; each query is its own short read transaction, so the daemon's
checkpoints are not held back for the length of a walk.  It does not take the
volume's lock, so it works while the volume is mounted (or open by nobody:
then SQLite may leave empty ``-wal`` and ``-shm`` files in the folder, as any
reader of a WAL database does).  ``fsck --repair`` needs the volume unmounted
and may change a damaged snapshot's rows; do not read during one.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
import urllib.parse
from pathlib import Path
from typing import Iterator

from . import shortnames
from .blockstore import DATA_FILE
from .client import find_volume
from .errors import NotAVolume, err
from .schema import MAGIC, MAX_SPAN, SCHEMA_VERSION
from .store import DB_FILE, ROOT_INO, check_header
from . import junctions as _junctions
from . import luns as _luns
from .luns import LunRecord
from . import qtrees as _qtrees
from .identity import VolumeIdentity, identity_of, read_props, snapshot_identity_of
from .qtrees import Qtree
from .values import Attrs, SnapshotEntry, SnapshotInode

#: The rows snapshot S sees (``birth <= S < death``), for parameters (S, S).
_SEES = "death > ? AND birth <= ?"
_INODE_COLS = "ino, mode, nlink, uid, gid, rdev, size, nblocks, atime_ns, mtime_ns, ctime_ns, target"
_CHUNK = 512
#: Bytes :meth:`SnapshotReader.read_blocks` reads at once for small reads in order.
_READ_AHEAD = 256 * 1024


def open_snapshot(volume: str | os.PathLike, name: str, holder: str | None = None) -> "SnapshotReader":
    """Open snapshot ``name`` of ``volume`` (its folder or its mount point) for reading
    (see the module's guarantee).

    SnapfsError (ENOENT) if there is no such snapshot, (EPERM) if it is not held
    (by ``holder``, when given); NotAVolume if ``volume`` is no volume."""
    return SnapshotReader(find_volume(volume), name, holder)


def _runs(mapping: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """(index, block) pairs, by index, as (index, block, count) runs."""
    runs: list[tuple[int, int, int]] = []
    for idx, block in mapping:
        if runs:
            i, b, n = runs[-1]
            if idx == i + n and block == b + n:
                runs[-1] = (i, b, n + 1)
                continue
        runs.append((idx, block, 1))
    return runs


class SnapshotReader:
    """One held snapshot, read-only.  Not thread-safe; close when done."""

    def __init__(self, voldir: Path, name: str, holder: str | None = None) -> None:
        if not (voldir / DB_FILE).is_file():
            raise NotAVolume(f"{voldir} is not a snapfs volume (no {DB_FILE})")
        check_header(voldir)
        uri = "file:" + urllib.parse.quote(str((voldir / DB_FILE).resolve())) + "?mode=ro"
        try:
            self._db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as e:
            raise NotAVolume(f"{voldir} is not a readable snapfs volume ({e})") from None
        self._fd = -1
        self._ahead: bytes | None = None  # read_blocks' read-ahead: its bytes, from block _ahead_block
        self._ahead_block = 0
        self._next_block = 0  # the block after the last read (read ahead only when reads go on from there)
        try:
            self._db.execute("PRAGMA query_only = ON")
            try:
                version = self._db.execute("PRAGMA user_version").fetchone()[0]
                row = self._db.execute("SELECT magic, name, block_size FROM meta").fetchone()
            except sqlite3.Error as e:
                raise NotAVolume(f"{voldir} is not a snapfs volume: its {DB_FILE} cannot be read ({e})") from None
            if row is None or row[0] != MAGIC:
                raise NotAVolume(f"{voldir} is not a snapfs volume (no volume magic)")
            if version != SCHEMA_VERSION:
                raise NotAVolume(f"volume {row[1]} has schema version {version}, this reader reads"
                                 f" {SCHEMA_VERSION}; mount it once with this snapfs first")
            self.volume: str = row[1]
            self.block_size: int = row[2]
            snap = self._db.execute("SELECT epoch, created_ns FROM snapshots WHERE name = ?", (name,)).fetchone()
            if snap is None:
                raise err(errno.ENOENT, f"no snapshot named {name!r} on volume {self.volume}")
            self.name = name
            self.id: int = snap[0]
            #: when the snapshot was taken, nanoseconds since the epoch
            self.created_ns: int = snap[1]
            self.holders: tuple[str, ...] = tuple(r[0] for r in self._db.execute(
                "SELECT holder FROM holds WHERE epoch = ? ORDER BY holder", (self.id,)))
            if not self.holders or (holder is not None and holder not in self.holders):
                by = f" by {holder!r}" if holder is not None else ""
                raise err(errno.EPERM, f"snapshot {name!r} of volume {self.volume} is not held{by}: hold it"
                                       " (snapfs hold) before reading it, so it cannot change or go meanwhile")
            #: the volume's uuid, and the generation and type this snapshot was taken with
            #: (security style and aggregate: the volume's now); ``volume_identity``: all of it now
            self.volume_identity: VolumeIdentity = identity_of(read_props(self._db))
            self.identity: VolumeIdentity = snapshot_identity_of(self._db, self.id, read_props(self._db))
            self._qtrees: dict[int, Qtree] | None = None
            self._fd = os.open(voldir / DATA_FILE, os.O_RDONLY | os.O_CLOEXEC)
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            self._ahead = None
            self._db.close()

    def __enter__(self) -> "SnapshotReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _rows(self, sql: str, params: tuple) -> list[tuple]:
        """One query, read whole: a read transaction of its own, ended at once."""
        if self._fd < 0:
            raise err(errno.EBADF, "snapshot reader is closed")
        return self._db.execute(sql, params).fetchall()

    # ------------------------------------------------------------------ inodes

    def inodes(self, start: int = 0) -> Iterator[SnapshotInode]:
        """Every inode of the snapshot with number >= ``start``, in inode order."""
        for rows, xattrs in self.inode_rows(start):
            for r in rows:
                yield self._inode(r, xattrs.get(r[0], {}))

    def inode_rows(self, start: int = 0,
                   chunk: int = _CHUNK) -> Iterator[tuple[list[tuple], dict[int, dict[bytes, bytes]]]]:
        """:meth:`inodes` as the rows they are made of, ``chunk`` inodes at a time, for a reader of
        every inode that keeps what it needs (a dump's walk): ``(rows, xattrs)``, each row ``(ino,
        mode, nlink, uid, gid, rdev, size, nblocks, atime_ns, mtime_ns, ctime_ns, target)``
        (``nblocks`` in blocks of :attr:`block_size`), in inode order, and ``xattrs``: ino -> name
        -> value for those of the chunk that have any."""
        s = self.id
        after = start - 1
        while True:
            rows = self._rows(f"SELECT {_INODE_COLS} FROM inodes WHERE ino > ? AND {_SEES}"
                              " ORDER BY ino LIMIT ?", (after, s, s, chunk))
            if not rows:
                return
            xattrs: dict[int, dict[bytes, bytes]] = {}
            for ino, name, value in self._rows(
                    f"SELECT ino, name, value FROM xattrs WHERE ino >= ? AND ino <= ? AND {_SEES}"
                    " ORDER BY ino, name", (rows[0][0], rows[-1][0], s, s)):
                x = xattrs.get(ino)
                if x is None:
                    x = xattrs[ino] = {}
                x[name] = value
            yield rows, xattrs
            after = rows[-1][0]

    def inode(self, ino: int) -> SnapshotInode:
        """Inode ``ino`` as the snapshot has it (ENOENT if it has none)."""
        s = self.id
        r = self._rows(f"SELECT {_INODE_COLS} FROM inodes WHERE ino = ? AND {_SEES}", (ino, s, s))
        if not r:
            raise err(errno.ENOENT, f"no inode {ino} in snapshot {self.name!r}")
        x = dict(self._rows(f"SELECT name, value FROM xattrs WHERE ino = ? AND {_SEES} ORDER BY name", (ino, s, s)))
        return self._inode(r[0], x)

    def _inode(self, r: tuple, xattrs: dict[bytes, bytes]) -> SnapshotInode:
        ino, mode, nlink, uid, gid, rdev, size, nblocks, atime, mtime, ctime, target = r
        bs = self.block_size
        return SnapshotInode(Attrs(ino, mode, nlink, uid, gid, rdev, size, nblocks * (bs // 512),
                                   atime, mtime, ctime, bs), target, xattrs)

    @property
    def root(self) -> int:
        return ROOT_INO

    # ------------------------------------------------------------------ directories

    def entries(self, ino: int) -> list[SnapshotEntry]:
        """The entries of directory ``ino`` (without '.' and '..'), in creation order."""
        s = self.id
        return [SnapshotEntry(name, child) for name, child in self._rows(
            f"SELECT name, ino FROM dirents WHERE parent = ? AND {_SEES} ORDER BY cookie", (ino, s, s))]

    def all_entry_rows(self) -> list[tuple[int, bytes, int]]:
        """Every entry of every directory of the snapshot as ``(parent, name, ino)``, in one
        query, by parent then name (bytewise): what a walk of the whole volume asks instead
        of one :meth:`entry_rows` per directory (each entry of those is looked up by its key
        from the index that orders it by cookie; here the table is read in its own order)."""
        s = self.id
        return self._rows(f"SELECT parent, name, ino FROM dirents WHERE {_SEES} ORDER BY parent, name", (s, s))

    def entry_rows(self, ino: int) -> list[tuple[bytes, int]]:
        """:meth:`entries` as ``(name, ino)`` tuples (a walk of many directories)."""
        s = self.id
        return self._rows(f"SELECT name, ino FROM dirents WHERE parent = ? AND {_SEES} ORDER BY cookie", (ino, s, s))

    def dosnames(self, ino: int) -> dict[bytes, bytes]:
        """The DOS 8.3 name of each entry of directory ``ino`` (see :mod:`snapfs.shortnames`)."""
        s = self.id
        return {name: shortnames.short_name(name, dos) for name, dos in self._rows(
            f"SELECT name, dosname FROM dirents WHERE parent = ? AND {_SEES} ORDER BY cookie", (ino, s, s))}

    def large_streams(self, ino: int) -> dict[bytes, bytes]:
        """The named streams of ``ino`` kept as data (too large for an xattr): name -> bytes.
        The others are ``user.DosStream.NAME:$DATA`` among the inode's xattrs."""
        return {name: b"".join(self.stream_chunks(ino, name)) for name in self.stream_sizes(ino)}

    def stream_sizes(self, ino: int) -> dict[bytes, int]:
        """The named streams of ``ino`` kept as data: name -> size, by name (nothing read)."""
        s = self.id
        return dict(self._rows(f"SELECT name, sum(length(data)) FROM streams WHERE ino = ? AND {_SEES} "
                               "GROUP BY name ORDER BY name", (ino, s, s)))

    def stream_chunks(self, ino: int, name: bytes, batch: int = 16) -> Iterator[bytes]:
        """The bytes of stream ``name`` of ``ino`` kept as data, a stored chunk at a time
        (*batch* chunks per query: never the whole stream in memory)."""
        s, after = self.id, -1
        while True:
            rows = self._rows(f"SELECT idx, data FROM streams WHERE ino = ? AND name = ? AND idx > ? AND {_SEES} "
                              "ORDER BY idx LIMIT ?", (ino, name, after, s, s, batch))
            for after, data in rows:
                yield data
            if len(rows) < batch:
                return

    def stream_inodes(self) -> set[int]:
        """The inodes that have named streams kept as data (:meth:`large_streams`), in one query."""
        s = self.id
        return {r[0] for r in self._rows(f"SELECT DISTINCT ino FROM streams WHERE {_SEES}", (s, s))}

    def stored_dosnames(self) -> dict[tuple[int, bytes], bytes]:
        """(directory, name) -> DOS 8.3 name of every entry whose short name is stored (generated:
        not the name itself in upper case), in one query."""
        s = self.id
        return {(p, n): d for p, n, d in self._rows(
            f"SELECT parent, name, dosname FROM dirents WHERE dosname IS NOT NULL AND {_SEES}", (s, s))}

    def parent(self, ino: int) -> int:
        """The directory holding directory ``ino`` (the root's is the root)."""
        if ino == ROOT_INO:
            return ROOT_INO
        s = self.id
        r = self._rows(f"SELECT parent FROM dirents WHERE ino = ? AND {_SEES}", (ino, s, s))
        if not r:
            raise err(errno.ENOENT, f"inode {ino} has no name in snapshot {self.name!r}")
        return r[0][0]

    # ------------------------------------------------------------------ data

    def _map(self, ino: int, first: int = 0, last: int | None = None, s: int | None = None) -> list[tuple[int, int]]:
        """(index, block) of ``ino``'s blocks in snapshot ``s`` (this one by default); a LUN
        clone's include those it still reads from its backing snapshot (see :mod:`snapfs.luns`)."""
        s = self.id if s is None else s
        hi = (1 << 62) if last is None else last
        rows = [(idx0 + i, block0 + i) for idx0, span, block0 in self._rows(
            f"SELECT idx, span, block FROM blockmap WHERE ino = ? AND idx > ? AND idx <= ? AND idx + span > ?"
            f" AND {_SEES} ORDER BY idx", (ino, first - MAX_SPAN, hi, first, s, s))
            for i in range(max(0, first - idx0), min(span, hi - idx0 + 1))]
        b = self._backing(ino, s)
        if b is None:
            return rows
        merged = dict(rows)
        for idx, block in self._map(b[1], first, last, b[0]):
            merged.setdefault(idx, block)
        return sorted(merged.items())

    def _backing(self, ino: int, s: int) -> tuple[int, int] | None:
        r = self._rows(f"SELECT value FROM xattrs WHERE ino = ? AND name = ? AND {_SEES}",
                       (ino, _luns.LUN_XATTR, s, s))
        try:
            return _luns.decode(r[0][0]).backing if r else None
        except (ValueError, KeyError, IndexError, UnicodeDecodeError):
            return None  # an unreadable record (fsck reports it): the file's own blocks only

    def block_runs(self, first: int, last: int) -> dict[int, list[tuple[int, int, int]]]:
        """The data of every inode numbered ``first`` to ``last`` that has any, in one query:
        ``(index, block, count)`` runs of ``count`` blocks stored one after the other from
        ``block`` for the file's blocks ``index`` on, by index (a LUN clone's as
        :meth:`_map` gives them).  What a reader of many files asks instead of one
        :meth:`extents` per file; read the blocks with :meth:`read_blocks`."""
        s, out = self.id, {}
        # Extents (idx, span, block) in order, joined where one goes on where the last ended.
        last_ino = None
        runs: list[tuple[int, int, int]] = []
        for ino, idx, span, block in self._rows(
                f"SELECT ino, idx, span, block FROM blockmap WHERE ino >= ? AND ino <= ? AND {_SEES}"
                " ORDER BY ino, idx", (first, last, s, s)):
            if ino != last_ino:
                runs = out[ino] = []
                last_ino = ino
            if runs:
                pidx, pblock, pcount = runs[-1]
                if pidx + pcount == idx and pblock + pcount == block:
                    runs[-1] = (pidx, pblock, pcount + span)
                    continue
            runs.append((idx, block, span))
        for ino, value in self._rows(f"SELECT ino, value FROM xattrs WHERE ino >= ? AND ino <= ? AND name = ?"
                                     f" AND {_SEES}", (first, last, _luns.LUN_XATTR, s, s)):
            try:
                backed = _luns.decode(value).backing is not None
            except (ValueError, KeyError, IndexError, UnicodeDecodeError):
                backed = False
            if backed:
                out[ino] = _runs(self._map(ino))
        return out

    def read_blocks(self, block: int, count: int) -> bytes:
        """The bytes of ``count`` data blocks stored one after the other from ``block`` (as
        :meth:`block_runs` names them); zeros past the data file's end, as in a fresh block.

        Small reads that go on where the last ones were (a dump's files, read in inode
        order, whose blocks the store mostly keeps in that order) are served from one
        read of :data:`_READ_AHEAD` bytes: one system call for many small files.  That
        is safe because a held snapshot's blocks never change: a block read ahead is the
        one a later read of it would get (the window's other blocks are never handed out)."""
        if self._fd < 0:
            raise err(errno.EBADF, "snapshot reader is closed")
        bs = self.block_size
        want = count * bs
        ahead = self._ahead
        if ahead is not None:
            start = (block - self._ahead_block) * bs
            if 0 <= start and start + want <= len(ahead):
                return ahead[start:start + want]
        if want < _READ_AHEAD // 4 and 0 <= block - self._next_block < _READ_AHEAD // bs:
            ahead = os.pread(self._fd, _READ_AHEAD, block * bs)
            self._ahead, self._ahead_block = ahead, block
            self._next_block = block + len(ahead) // bs
            if len(ahead) >= want:
                return ahead[:want]
            data = ahead
        else:
            data = os.pread(self._fd, want, block * bs)
            self._next_block = block + count
        return data if len(data) == want else data.ljust(want, b"\0")

    def block_map(self, ino: int) -> list[int]:
        """The indexes (in ``block_size`` units) of the blocks ``ino`` has; the others are holes."""
        return [idx for idx, _ in self._map(ino)]

    def extents(self, ino: int) -> list[tuple[int, int]]:
        """(offset, length) of each run of data in ``ino``, within its size; the rest reads as zeros."""
        size = self.inode(ino).attrs.size
        bs, out = self.block_size, []
        for idx in self.block_map(ino):
            lo, hi = idx * bs, min(size, (idx + 1) * bs)
            if hi <= lo:
                continue
            if out and out[-1][0] + out[-1][1] == lo:
                out[-1] = (out[-1][0], hi - out[-1][0])
            else:
                out.append((lo, hi - lo))
        return out

    def readlink(self, ino: int) -> bytes:
        i = self.inode(ino)
        if not stat.S_ISLNK(i.mode):
            raise err(errno.EINVAL, f"inode {ino} is not a symbolic link")
        return i.target

    def read(self, ino: int, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes of ``ino`` at ``offset``; holes read as zeros, short at end of file."""
        if offset < 0 or size < 0:
            raise err(errno.EINVAL, "negative offset or size")
        i = self.inode(ino)
        if not stat.S_ISREG(i.mode):
            raise err(errno.EINVAL, f"inode {ino} is not a regular file")
        end = min(i.attrs.size, offset + size)
        if end <= offset:
            return b""
        bs = self.block_size
        out = bytearray(end - offset)
        view = memoryview(out)
        for idx, block in self._map(ino, offset // bs, (end - 1) // bs):
            lo, hi = max(offset, idx * bs), min(end, (idx + 1) * bs)
            dst = view[lo - offset:hi - offset]
            pos = block * bs + lo - idx * bs
            while dst:
                n = os.preadv(self._fd, [dst], pos)
                if n <= 0:
                    break  # past the data file's end: zeros, as in a fresh block
                dst, pos = dst[n:], pos + n
        return bytes(out)

    # ------------------------------------------------------------------ the filer's objects (issue 12)

    def qtrees(self) -> list[Qtree]:
        """The snapshot's qtrees (as they were when it was taken), by id."""
        if self._qtrees is None:
            s = self.id
            rows = self._rows("SELECT d.name, d.ino, x.value FROM dirents d JOIN xattrs x ON x.ino = d.ino"
                              f" AND x.name = ? AND x.death > ? AND x.birth <= ?"
                              f" WHERE d.parent = ? AND d.death > ? AND d.birth <= ?",
                              (_qtrees.QTREE_XATTR, s, s, ROOT_INO, s, s))
            self._qtrees = {i: _qtrees.decode(v, n.decode(errors="surrogateescape"), i) for n, i, v in rows}
        return sorted(self._qtrees.values(), key=lambda q: q.id)

    def qtree_of(self, ino: int) -> Qtree:
        """The qtree inode ``ino`` is in (id 0, with the volume's style, for none)."""
        self.qtrees()
        top, s = ino, self.id
        while top != ROOT_INO:
            r = self._rows(f"SELECT parent FROM dirents WHERE ino = ? AND {_SEES} LIMIT 1", (top, s, s))
            if not r:
                raise err(errno.ENOENT, f"inode {ino} has no name in snapshot {self.name!r}")
            if r[0][0] == ROOT_INO:
                break
            top = r[0][0]
        q = self._qtrees.get(top) if self._qtrees is not None else None
        return q or Qtree(0, "", self.identity.security_style, "enable", 0)

    def qtree_ids(self) -> dict[int, int]:
        """Every named inode of the snapshot -> its qtree id (0: none), in one query."""
        s = self.id
        self.qtrees()
        tops = {ino: q.id for ino, q in (self._qtrees or {}).items()}
        out: dict[int, int] = {ROOT_INO: 0}
        for ino, top in self._rows(
                f"WITH RECURSIVE t(ino, top) AS (SELECT ino, ino FROM dirents WHERE parent = ? AND {_SEES}"
                f" UNION SELECT d.ino, t.top FROM dirents d JOIN t ON d.parent = t.ino"
                f" WHERE d.death > ? AND d.birth <= ?) SELECT ino, top FROM t", (ROOT_INO, s, s, s, s)):
            out[ino] = tops.get(top, 0)
        return out

    def lun(self, ino: int) -> LunRecord | None:
        """The LUN record of ``ino`` (serial, ostype, size, space reservation, state --
        ``inconsistent`` ones the dump engine skips -- and the snapshot a clone reads
        from), or None for a file that is no LUN."""
        v = self.inode(ino).xattrs.get(_luns.LUN_XATTR)
        return None if v is None else _luns.decode(v)

    def junction(self, ino: int) -> dict[str, str] | None:
        """The junction record of symbolic link ``ino`` (uuid, name, path of the other
        volume), or None for a link that is no junction."""
        v = self.inode(ino).xattrs.get(_junctions.JUNCTION_XATTR)
        return None if v is None else _junctions.decode(v)
