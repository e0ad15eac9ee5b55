"""The data of a Volume's files: reading, writing, truncating, and the attributes setattr changes.

:class:`FileData` is one of the parts :class:`snapfs.volume.Volume` is made of;
it works through the Volume's store (see :mod:`snapfs.store`).  Data blocks are
never overwritten: a write goes to fresh blocks (:mod:`snapfs.blockstore`), so
a failed call leaves every committed byte as it was.  A block is written only
as far as the file reaches; what lies past the end of file in the last block
is undefined and made zero when the file grows over it.  Reads do not update
atime (noatime).
"""

from __future__ import annotations

import errno
import stat
import time
from typing import Callable

from .errors import SnapfsError, err
from .schema import LIVE
from .store import CACHE_MAX, Row, StoreCalls
from .values import Attrs

MAX_FILE_SIZE = 1 << 44
#: the rows of blocks idx ?1..?2 of inode ?3, alive (?4) from epoch ?5, at data blocks idx + ?6
_INSERT_RUN = ("WITH RECURSIVE run(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM run WHERE i < ?2)"
               " INSERT INTO blockmap (ino, idx, death, birth, block) SELECT ?3, i, ?4, ?5, i + ?6 FROM run")


class FileData(StoreCalls):
    """read, write, setattr/truncate, open/release, fsync (a Volume part)."""

    # what else the Volume gives this part
    _attrs: Callable[[int, Row], Attrs]
    _maybe_destroy: Callable[[int], None]
    _chmod_acl: Callable[[int, int], None]
    _open: dict[int, int]
    #: write every block through :meth:`_put_block` (set when a hook wraps it: LUN reservations)
    _per_block = False

    def read(self, ino: int, offset: int, size: int, snap: int | None = None) -> bytes:
        """Up to ``size`` bytes at ``offset``; holes read as zeros, short at end of file."""
        return bytes(self.read_buffer(ino, offset, size, snap))

    def read_buffer(self, ino: int, offset: int, size: int, snap: int | None = None) -> bytearray:
        """:meth:`read` into a fresh buffer, without the final copy (for the FUSE adapter).

        Blocks that follow each other in the data file are read with one system call."""
        row = self._row(ino, snap)
        if stat.S_ISDIR(row.mode):
            raise err(errno.EISDIR, f"inode {ino} is a directory")
        if offset < 0 or size < 0:
            raise err(errno.EINVAL, "negative offset or size")
        end = min(row.size, offset + size)
        if end <= offset:
            return bytearray()
        out = bytearray(end - offset)  # zeros: what no block covers is a hole
        if not row.nblocks:
            return out
        bs = self._bs
        if snap is None:
            small = self._small.get(ino)
            if small is not None and small[0] is row:
                self.store.read_at(small[1] * bs + offset, memoryview(out))
                return out
        first, last = offset // bs, (end - 1) // bs
        where, params = self._view(snap)
        view = memoryview(out)
        # first the blocks' extent in SQLite: one run that follows itself in the data file
        # (a file written sequentially) is read at once, with no row brought into Python
        count, i0, i1, d0, d1 = self._db.execute(
            f"SELECT count(*), min(idx), max(idx), min(block - idx), max(block - idx) FROM blockmap"
            f" WHERE ino = ? AND idx >= ? AND idx <= ? AND {where}", (ino, first, last, *params)).fetchone()
        if not count:
            return out
        if count == i1 - i0 + 1 and d0 == d1:
            lo = max(offset, i0 * bs)
            hi = min(end, (i1 + 1) * bs)
            self.store.read_at(d0 * bs + lo, view[lo - offset:hi - offset])
            return out
        rows = self._db.execute(
            f"SELECT idx, block FROM blockmap WHERE ino = ? AND idx >= ? AND idx <= ? AND {where}"
            " ORDER BY idx", (ino, first, last, *params)).fetchall()
        i, n = 0, len(rows)
        while i < n:  # one read per run of blocks that follow each other in the file and the data file
            idx0, block0 = rows[i]
            j = i + 1
            while j < n and rows[j][0] == idx0 + j - i and rows[j][1] == block0 + j - i:
                j += 1
            lo = max(offset, idx0 * bs)
            hi = min(end, (idx0 + j - i) * bs)
            self.store.read_at(block0 * bs + lo - idx0 * bs, view[lo - offset:hi - offset])
            i = j
        return out


    def setattr(self, ino: int, *, mode: int | None = None, uid: int | None = None, gid: int | None = None,
                size: int | None = None, atime_ns: int | None = None, mtime_ns: int | None = None,
                ctime_ns: int | None = None, acl: bool = False) -> Attrs:
        """chmod/chown/truncate/utimens in one call; ctime becomes now unless given.

        With ``acl``, a chmod also sets the access ACL's owner, mask (or group) and
        other entries from the new mode, in the same transaction (POSIX.1e)."""
        with self._txn():
            row = self._row(ino)
            now = time.time_ns()
            ch: dict = {"ctime_ns": now if ctime_ns is None else ctime_ns}
            if mode is not None:
                ch["mode"] = stat.S_IFMT(row.mode) | (mode & 0o7777)
            if uid is not None:
                ch["uid"] = uid
            if gid is not None:
                ch["gid"] = gid
            if atime_ns is not None:
                ch["atime_ns"] = atime_ns
            if mtime_ns is not None:
                ch["mtime_ns"] = mtime_ns
            if size is not None:
                if stat.S_ISDIR(row.mode):
                    raise err(errno.EISDIR, f"inode {ino} is a directory")
                if not stat.S_ISREG(row.mode):
                    raise err(errno.EINVAL, f"inode {ino} is not a regular file")
                if size < 0:
                    raise err(errno.EINVAL, "negative size")
                if size > MAX_FILE_SIZE:
                    raise err(errno.EFBIG, "file size limit exceeded")
                ch["nblocks"] = self._truncate(ino, row, size)
                ch["size"] = size
                if mtime_ns is None:
                    ch["mtime_ns"] = now
            new = self._set(ino, **ch)
            if acl and mode is not None:
                self._chmod_acl(ino, new.mode)
                new = self._row(ino)
            return self._attrs(ino, new)

    def truncate(self, ino: int, size: int) -> Attrs:
        return self.setattr(ino, size=size)

    def _zero_past_eof(self, ino: int, row: Row, size: int) -> None:
        """Before the file grows to ``size``: zeros where its last block held bytes past
        the old end of file (undefined until now: blocks are written only as far as the
        file reaches, see :meth:`write`)."""
        bs = self._bs
        tail = row.size % bs
        if not tail or size <= row.size or not row.nblocks:
            return
        idx = row.size // bs
        r = self._db.execute("SELECT block, birth FROM blockmap WHERE ino = ? AND idx = ? AND death = ?",
                             (ino, idx, LIVE)).fetchone()
        if r is None:
            return
        data = self.store.read(r[0])
        valid = min(bs, size - idx * bs)
        if any(data[tail:valid]):  # (already zeros, as in a fresh block: nothing to write)
            self._put_block(ino, idx, r, data[:tail] + bytes(valid - tail))

    def _truncate(self, ino: int, row: Row, size: int) -> int:
        """Drop blocks past ``size`` (or zero what growing brings into the file); returns the new nblocks.

        Shrinking never writes: what the last block holds past the new end of file
        becomes undefined (see :meth:`write`), so a full volume can still shrink files."""
        bs = self._bs
        if size >= row.size:
            self._zero_past_eof(ino, row, size)
            return row.nblocks
        keep = -(-size // bs)
        gone = self._db.execute("SELECT count(*) FROM blockmap WHERE ino = ? AND idx >= ? AND death = ?",
                                (ino, keep, LIVE)).fetchone()[0]
        if gone:
            self._kill("blockmap", "ino = ? AND idx >= ?", (ino, keep))
        return row.nblocks - gone

    def _put_block(self, ino: int, idx: int, old: tuple | None, data: bytes) -> int:
        """Write ``data`` as block ``idx`` of ``ino`` into a fresh block (never in place); returns it."""
        block = self.store.allocate()
        self.store.write(block, data)
        self._map_block(ino, idx, old, block)
        return block

    def _map_block(self, ino: int, idx: int, old: tuple | None, block: int) -> None:
        """Make ``block`` (fresh, written) block ``idx`` of ``ino`` in place of ``old``
        (its (block, birth), or None); a block a snapshot holds stays with the snapshot."""
        E = self.meta.epoch
        if old is None:
            self._db.execute("INSERT INTO blockmap (ino, idx, death, birth, block) VALUES (?,?,?,?,?)",
                             (ino, idx, LIVE, E, block))
        elif old[1] > self._epochs.latest:
            self._db.execute("UPDATE blockmap SET block = ?, birth = ? WHERE ino = ? AND idx = ? AND death = ?",
                             (block, E, ino, idx, LIVE))
            self.store.free_later((old[0],))
        else:
            self._db.execute("UPDATE blockmap SET death = ? WHERE ino = ? AND idx = ? AND death = ?",
                             (E, ino, idx, LIVE))
            self._db.execute("INSERT INTO blockmap (ino, idx, death, birth, block) VALUES (?,?,?,?,?)",
                             (ino, idx, LIVE, E, block))

    def write(self, ino: int, offset: int, data: bytes, append: bool = False) -> int:
        """Write ``data`` at ``offset`` (at end of file when ``append``); returns bytes written.

        A block is written only as far as the file reaches (a 4 KiB file costs a
        4 KiB write, not a whole block); what lies past the end of file in the
        last block is undefined and made zero when the file grows over it."""
        with self._txn(light=True):
            row = self._row(ino)
            if stat.S_ISDIR(row.mode):
                raise err(errno.EISDIR, f"inode {ino} is a directory")
            if not stat.S_ISREG(row.mode):
                raise err(errno.EINVAL, f"inode {ino} is not a regular file")
            if append:
                offset = row.size
            if offset < 0:
                raise err(errno.EINVAL, "negative offset")
            n = len(data)
            if n == 0:
                return 0
            end = offset + n
            if end > MAX_FILE_SIZE:
                raise err(errno.EFBIG, "file size limit exceeded")
            bs = self._bs
            first, last = offset // bs, (end - 1) // bs
            size = max(row.size, end)
            if first * bs >= row.size and first == last and (not row.nblocks or not row.size % bs) \
                    and row.birth > self._epochs.latest:
                # one new block past the end of file, nothing to zero, the row changed in
                # place: a single statement (the usual write of a new small file)
                lo = offset - first * bs
                if lo:
                    buf = bytearray(lo + n)  # a hole before the data reads as zeros
                    buf[lo:] = data
                else:
                    buf = data
                block = self._put_block(ino, first, None, buf)
                now = time.time_ns()
                new = self._set(ino, size=size, nblocks=row.nblocks + 1, mtime_ns=now, ctime_ns=now)
                if first == 0:
                    if len(self._small) >= CACHE_MAX:
                        self._small.clear()
                    self._small[ino] = (new, block)
                return n
            self._full()
            if row.size // bs < first:  # the old last block is not rewritten below
                self._zero_past_eof(ino, row, size)
            existing = {idx: (block, birth) for idx, block, birth in self._db.execute(
                "SELECT idx, block, birth FROM blockmap WHERE ino = ? AND idx >= ? AND idx <= ? AND death = ?",
                (ino, first, last, LIVE))} if row.nblocks else {}
            view = memoryview(data)
            # the whole new blocks inside a big write (no block there yet) need no look at each
            whole = not existing and last - first > 1
            idxs = [first, last] if whole else list(range(first, last + 1))
            olds, bufs = [], []
            for idx in idxs:
                base = idx * bs
                lo = max(offset, base)
                hi = min(end, base + bs)
                chunk = view[lo - offset:hi - offset]
                old = existing.get(idx)
                valid = min(bs, size - base)  # the part of the block inside the file
                if lo == base and hi - base == valid:
                    buf = chunk
                else:
                    if old:
                        b = bytearray(self.store.read(old[0])[:valid])
                        keep = max(0, row.size - base)  # past the old end of file: undefined
                        if keep < valid:
                            b[keep:] = bytes(valid - keep)
                    else:
                        b = bytearray(valid)  # a hole reads as zeros
                    b[lo - base:hi - base] = chunk
                    buf = b
                olds.append(old)
                bufs.append(buf)
            blocks = None
            if whole and not self._per_block:
                # every block first (NoSpace before any byte is written)
                k = last - first + 1
                blocks = self.store.allocate_many(k)
                if blocks[-1] - blocks[0] == k - 1:
                    # the blocks follow each other in the data file (a sequential write): the
                    # data in one system call, straight from the request, and the rows made
                    # inside SQLite (one statement, no tuple bound per row)
                    mid = view[(first + 1) * bs - offset:last * bs - offset]
                    self.store.write_run(blocks[0], [bufs[0], mid, bufs[1]])
                    self._db.execute(_INSERT_RUN, (first, last, ino, LIVE, self.meta.epoch, blocks[0] - first))
                    now = time.time_ns()
                    self._set(ino, size=size, nblocks=row.nblocks + k, mtime_ns=now, ctime_ns=now)
                    return n
            if whole:
                mid = range(first + 1, last)
                idxs[1:1] = mid
                olds[1:1] = [None] * len(mid)
                bufs[1:1] = [view[b - offset:b - offset + bs] for b in range((first + 1) * bs, last * bs, bs)]
            if self._per_block:  # a hook counts block by block (space-reserved LUNs)
                for idx, old, buf in zip(idxs, olds, bufs):
                    self._put_block(ino, idx, old, buf)
                added = olds.count(None)
                now = time.time_ns()
                self._set(ino, size=size, nblocks=row.nblocks + added, mtime_ns=now, ctime_ns=now)
                return n
            # every block first (NoSpace before any byte is written), then the data in
            # one system call per run of blocks that follow each other in the data file,
            # then the block map: new blocks in one statement
            if blocks is None:
                blocks = self.store.allocate_many(len(bufs))
            self.store.write_blocks(blocks, bufs)
            E = self.meta.epoch
            fresh = [(ino, idx, LIVE, E, block) for idx, old, block in zip(idxs, olds, blocks) if old is None]
            if fresh:
                self._db.executemany("INSERT INTO blockmap (ino, idx, death, birth, block) VALUES (?,?,?,?,?)",
                                     fresh)
            if len(fresh) < len(blocks):
                for idx, old, block in zip(idxs, olds, blocks):
                    if old is not None:
                        self._map_block(ino, idx, old, block)
            added = len(fresh)
            now = time.time_ns()
            self._set(ino, size=size, nblocks=row.nblocks + added, mtime_ns=now, ctime_ns=now)
            return n

    def open_file(self, ino: int, snap: int | None = None) -> None:
        """Note an opener: an unlinked file lives on until its last :meth:`release_file`."""
        self._row(ino, snap)
        if snap is None:
            self._open[ino] = self._open.get(ino, 0) + 1

    def release_file(self, ino: int, snap: int | None = None) -> None:
        if snap is not None:
            return
        n = self._open.get(ino, 0) - 1
        if n > 0:
            self._open[ino] = n
            return
        self._open.pop(ino, None)
        try:
            if self._row(ino).nlink:
                return  # still linked: nothing to free (and no transaction to pay for)
        except SnapfsError:
            return
        with self._txn():
            self._maybe_destroy(ino)

    def fsync(self, ino: int | None = None) -> None:
        """Make every call so far durable (data file first, then the metadata WAL)."""
        self.tables.sync()

