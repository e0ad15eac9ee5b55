"""Fixed-size data blocks in one data file, with a free list.

A block is referenced by exactly one ``blockmap`` row (there is no sharing
yet; LUN clones will need a refcount column here).  Writes never overwrite a
block a committed row points to: every write goes to a freshly allocated
block, and the block it replaces is freed only when the transaction commits.
So a failed transaction leaves every committed byte untouched, and blocks it
allocated simply stay on (or return to) the free list with the rollback.
"""

from __future__ import annotations

import os
import sqlite3

from .errors import NoSpace
from .records import Meta

DATA_FILE = "data"


class BlockStore:
    """Allocation and I/O of data blocks; the caller owns the transaction."""

    def __init__(self, path: str, db: sqlite3.Connection, meta: Meta) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._db = db
        self.meta = meta
        self.bs = meta.block_size
        self._pending_free: list[int] = []

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def allocate(self) -> int:
        """A free block number, or NoSpace when the volume is full."""
        m = self.meta
        if m.used_blocks >= m.total_blocks:
            raise NoSpace("no space left on volume: all data blocks are in use (delete snapshots or files)")
        row = self._db.execute("SELECT block FROM free_blocks LIMIT 1").fetchone()
        if row is not None:
            block = row[0]
            self._db.execute("DELETE FROM free_blocks WHERE block = ?", (block,))
        else:
            block = m.high_water
            m.high_water += 1
        m.used_blocks += 1
        return block

    def free_later(self, blocks) -> None:
        """Free ``blocks`` when the current transaction commits (see :meth:`commit_frees`)."""
        self._pending_free.extend(blocks)

    def commit_frees(self) -> None:
        """Put the pending frees on the free list; call inside the transaction, just before COMMIT."""
        if self._pending_free:
            self._db.executemany(
                "INSERT INTO free_blocks (block) VALUES (?)", ((b,) for b in self._pending_free)
            )
            self.meta.used_blocks -= len(self._pending_free)
            self._pending_free.clear()

    def pending_mark(self) -> int:
        """A mark to undo later frees with :meth:`abort_frees` (one call in a batch)."""
        return len(self._pending_free)

    def abort_frees(self, mark: int = 0) -> None:
        del self._pending_free[mark:]

    def read(self, block: int) -> bytes:
        data = os.pread(self._fd, self.bs, block * self.bs)
        if len(data) < self.bs:
            data += bytes(self.bs - len(data))
        return data

    def read_into(self, block: int, start: int, view: memoryview) -> None:
        """Bytes ``start``.. of ``block`` straight into ``view`` (no copies; a part
        past the data file's end is left as it is, zeros in a fresh buffer)."""
        off = block * self.bs + start
        while view:
            n = os.preadv(self._fd, [view], off)
            if n <= 0:
                return
            view = view[n:]
            off += n

    def write(self, block: int, data: bytes) -> None:
        """Write one whole block (``data`` shorter than a block is padded with zeros)."""
        if len(data) < self.bs:
            data = bytes(data) + bytes(self.bs - len(data))
        view = memoryview(data)
        off = block * self.bs
        while view:
            n = os.pwrite(self._fd, view, off)
            view = view[n:]
            off += n

    def sync(self) -> None:
        os.fsync(self._fd)
