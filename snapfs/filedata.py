"""The data of a Volume's files: reading, writing, truncating, and the attributes setattr changes.

:class:`FileData` is one of the parts :class:`snapfs.volume.Volume` is made of;
it works through the Volume's store (see :mod:`snapfs.store`).  Data blocks are
never overwritten: a write goes to fresh blocks (:mod:`snapfs.blockstore`), so
a failed call leaves every committed byte as it was.  A block is written only
as far as the file reaches; what lies past the end of file in the last block
is undefined and made zero when the file grows over it.  Reads do not update
atime (noatime).

The block map holds extents (see :mod:`snapfs.schema`): a write maps its new
blocks with a row per run of up to ``MAX_SPAN`` blocks that follow each other
in the data file.  A write, truncate or zeroing that covers part of an extent
cuts it: a row only the live tree sees is cut in place (the blocks cut out are
freed at commit); a row a snapshot holds is split into rows of the same epochs
(which changes no view), and the piece cut out ends, so the snapshot keeps it.
Either way a data block belongs to one row only, and nothing is copied.
"""

from __future__ import annotations

import errno
import stat
import time
from typing import Callable

from .errors import SnapfsError, err
from .schema import LIVE, MAX_SPAN
from .store import CACHE_MAX, Row, StoreCalls
from .values import Attrs

MAX_FILE_SIZE = 1 << 44
_INSERT = "INSERT INTO blockmap (ino, idx, death, birth, block, span) VALUES (?,?,?,?,?,?)"
#: the rows (extents) of inode ?1 mapping any of its blocks ?2..?3 in the view ``{where}``, by idx
_RUNS = ("SELECT idx, span, block, birth FROM blockmap WHERE ino = ?1 AND idx > ?2 - {max} AND idx <= ?3"
         " AND idx + span > ?2 AND {where} ORDER BY idx")
_LIVE_RUNS = _RUNS.format(max=MAX_SPAN, where="death = ?")


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
        # (a ? after ?3 is ?4, the next ?5: the view's parameters follow)
        rows = self._db.execute(_LIVE_RUNS if snap is None else _RUNS.format(max=MAX_SPAN, where=where),
                                (ino, first, last, *params)).fetchall()
        i, n = 0, len(rows)
        while i < n:  # one read per run of blocks that follow each other in the file and the data file
            idx0, stop, block0, _ = rows[i]
            stop += idx0
            j = i + 1
            while j < n and rows[j][0] == stop and rows[j][2] == block0 + stop - idx0:
                stop += rows[j][1]
                j += 1
            lo = max(offset, idx0 * bs)
            hi = min(end, stop * bs)
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
        runs = self._db.execute(_LIVE_RUNS, (ino, idx, idx, LIVE)).fetchall()
        if not runs:
            return
        idx0, _, block0, birth = runs[0]
        old = (block0 + idx - idx0, birth)
        data = self.store.read(old[0])
        valid = min(bs, size - idx * bs)
        if any(data[tail:valid]):  # (already zeros, as in a fresh block: nothing to write)
            self._put_block(ino, idx, old, data[:tail] + bytes(valid - tail))

    def _truncate(self, ino: int, row: Row, size: int) -> int:
        """Drop blocks past ``size`` (or zero what growing brings into the file); returns the new nblocks.

        Shrinking never writes: what the last block holds past the new end of file
        becomes undefined (see :meth:`write`), so a full volume can still shrink files."""
        bs = self._bs
        if size >= row.size:
            self._zero_past_eof(ino, row, size)
            return row.nblocks
        keep = -(-size // bs)
        gone = self._db.execute("SELECT coalesce(sum(span), 0) FROM blockmap WHERE ino = ? AND idx >= ? AND death = ?",
                                (ino, keep, LIVE)).fetchone()[0]
        if gone:
            self._kill("blockmap", "ino = ? AND idx >= ?", (ino, keep))
        if keep:  # an extent across the new end
            across = [r for r in self._db.execute(_LIVE_RUNS, (ino, keep - 1, keep - 1, LIVE)).fetchall()
                      if r[0] + r[1] > keep]
            if across:
                gone += self._unmap(ino, keep, across[0][0] + across[0][1] - 1, across)
        return row.nblocks - gone

    def _unmap(self, ino: int, first: int, last: int, runs: list[tuple]) -> int:
        """Take blocks ``first``..``last`` of ``ino`` out of the live map, where ``runs`` are
        the live rows mapping any of them (``_LIVE_RUNS``); what else those rows map stays
        mapped.  A row only the live tree sees is cut in place and the blocks cut out are
        freed at commit; a row a snapshot holds is split, its pieces keeping its epochs
        (no view changes), and the piece cut out ends (the snapshot keeps it).  Returns
        how many of the blocks were mapped."""
        L, E, db = self._epochs.latest, self.meta.epoch, self._db
        had = 0
        for idx, span, block, birth in runs:
            end = idx + span - 1
            lo, hi = max(idx, first), min(end, last)
            had += hi - lo + 1
            owned = birth > L
            if owned:
                self.store.free_runs_later([(block + lo - idx, hi - lo + 1)])
            if idx < lo:  # the piece before stays; the cut-out one goes (or ends: a snapshot's)
                db.execute("UPDATE blockmap SET span = ? WHERE ino = ? AND idx = ? AND death = ?",
                           (lo - idx, ino, idx, LIVE))
                if not owned:
                    db.execute(_INSERT, (ino, lo, E, birth, block + lo - idx, hi - lo + 1))
            elif owned:
                db.execute("DELETE FROM blockmap WHERE ino = ? AND idx = ? AND death = ?", (ino, idx, LIVE))
            else:
                db.execute("UPDATE blockmap SET death = ?, span = ? WHERE ino = ? AND idx = ? AND death = ?",
                           (E, hi - lo + 1, ino, idx, LIVE))
            if hi < end:  # the piece after stays, with the row's epochs
                db.execute(_INSERT, (ino, hi + 1, LIVE, birth, block + hi + 1 - idx, end - hi))
        return had

    def _map_new(self, ino: int, first: int, blocks: list[int]) -> None:
        """Map blocks ``first``.. of ``ino`` (unmapped) to the fresh data ``blocks``, born
        now: a row per run of up to ``MAX_SPAN`` that follow each other in the data file."""
        E, n = self.meta.epoch, len(blocks)
        if blocks[-1] - blocks[0] == n - 1:  # one run in the data file (a sequential write)
            b0 = blocks[0]
            rows = [(ino, first + i, LIVE, E, b0 + i, min(MAX_SPAN, n - i)) for i in range(0, n, MAX_SPAN)]
            if n <= MAX_SPAN:
                self._db.execute(_INSERT, rows[0])
            else:
                self._db.executemany(_INSERT, rows)
            return
        rows = []
        i = 0
        while i < n:
            j = i + 1
            while j < n and j - i < MAX_SPAN and blocks[j] == blocks[j - 1] + 1:
                j += 1
            rows.append((ino, first + i, LIVE, E, blocks[i], j - i))
            i = j
        if len(rows) == 1:
            self._db.execute(_INSERT, rows[0])
        else:
            self._db.executemany(_INSERT, rows)

    def _put_block(self, ino: int, idx: int, old: tuple | None, data: bytes) -> int:
        """Write ``data`` as block ``idx`` of ``ino`` into a fresh block (never in place); returns it."""
        block = self.store.allocate()
        self.store.write(block, data)
        self._map_block(ino, idx, old, block)
        return block

    def _map_block(self, ino: int, idx: int, old: tuple | None, block: int) -> None:
        """Make ``block`` (fresh, written) block ``idx`` of ``ino`` in place of ``old``
        (its (block, birth), or None: then the only change is one INSERT); a block a
        snapshot holds stays with the snapshot."""
        if old is not None:
            self._unmap(ino, idx, idx, self._db.execute(_LIVE_RUNS, (ino, idx, idx, LIVE)).fetchall())
        self._db.execute(_INSERT, (ino, idx, LIVE, self.meta.epoch, block, 1))

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
            runs = self._db.execute(_LIVE_RUNS, (ino, first, last, LIVE)).fetchall() if row.nblocks else []
            view = memoryview(data)

            def old_of(idx: int) -> tuple[int, int] | None:
                """(data block, birth) of block ``idx`` as the file has it, or None (a hole)."""
                for idx0, span, block0, birth in runs:
                    if idx0 <= idx < idx0 + span:
                        return block0 + idx - idx0, birth
                return None

            def content(idx: int):
                """Block ``idx`` as the write leaves it (its part inside the file)."""
                base = idx * bs
                lo = max(offset, base)
                hi = min(end, base + bs)
                chunk = view[lo - offset:hi - offset]
                valid = min(bs, size - base)  # the part of the block inside the file
                if lo == base and hi - base == valid:
                    return chunk
                old = old_of(idx)
                if old:
                    b = bytearray(self.store.read(old[0])[:valid])
                    keep = max(0, row.size - base)  # past the old end of file: undefined
                    if keep < valid:
                        b[keep:] = bytes(valid - keep)
                else:
                    b = bytearray(valid)  # a hole reads as zeros
                b[lo - base:hi - base] = chunk
                return b

            k = last - first + 1
            if self._per_block:  # a hook counts block by block (space-reserved LUNs)
                bufs = [content(idx) for idx in range(first, last + 1)]  # (old data read before any change)
                olds = [old_of(idx) for idx in range(first, last + 1)]
                for idx, old, buf in zip(range(first, last + 1), olds, bufs):
                    self._put_block(ino, idx, old, buf)
                added = olds.count(None)
                now = time.time_ns()
                self._set(ino, size=size, nblocks=row.nblocks + added, mtime_ns=now, ctime_ns=now)
                return n
            # the first and last blocks may keep old bytes; those between are the request's
            head = content(first)
            parts = [head] if k == 1 else [head, view[(first + 1) * bs - offset:last * bs - offset], content(last)]
            # every block first (NoSpace before any byte is written), then the data: one
            # system call when the blocks follow each other in the data file (a sequential
            # write), straight from the request; then the old rows cut, the new ones made
            blocks = self.store.allocate_many(k)
            if blocks[-1] - blocks[0] == k - 1:
                self.store.write_run(blocks[0], parts)
            else:
                bufs = [head] + [view[b - offset:b - offset + bs] for b in range((first + 1) * bs, last * bs, bs)]
                if k > 1:
                    bufs.append(parts[2])
                self.store.write_blocks(blocks, bufs)
            had = self._unmap(ino, first, last, runs) if runs else 0
            self._map_new(ino, first, blocks)
            now = time.time_ns()
            self._set(ino, size=size, nblocks=row.nblocks + k - had, mtime_ns=now, ctime_ns=now)
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

