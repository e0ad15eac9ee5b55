"""Fixed-size data blocks in one data file, with a free list.

A block is referenced by exactly one ``blockmap`` row (there is no sharing
yet; LUN clones will need a refcount column here).  Writes never overwrite a
block a committed row points to: every write goes to a freshly allocated
block, and the block it replaces is freed only when the transaction commits.
So a failed transaction leaves every committed byte untouched, and blocks it
allocated simply stay on (or return to) the free list with the rollback.

Free blocks are handed out from runs read ahead from ``free_blocks`` (in
block order, so a file written sequentially gets contiguous blocks, and a run
of them costs one row in Python, not one per block); the blocks handed out
leave the table just before the transaction commits (:meth:`commit_frees`),
a run of them in one range DELETE.  Once the table has no more, blocks come
from the high-water mark without asking it again until that commit (frees
reach the table only then).  Frees are kept as runs too, and a run reaches
the table in one statement.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Callable, Iterable

from .errors import NoSpace
from .values import Meta

DATA_FILE = "data"
#: the most buffers one pwritev takes (Linux's IOV_MAX)
_IOV_MAX = 1024
#: freed blocks ?1..?2 onto the free list in one statement
_FREE_RUN = ("WITH RECURSIVE run(b) AS (SELECT ?1 UNION ALL SELECT b + 1 FROM run WHERE b < ?2)"
             " INSERT INTO free_blocks (block) SELECT b FROM run")
#: the shortest run of freed blocks inserted with :data:`_FREE_RUN`
_RUN_MIN = 16
#: free blocks looked at a time: the first, last and count of the next ``?2`` blocks of
#: the free list after block ?1 (one run when last - first + 1 = count: a big file's)
_READ_AHEAD = 4096
_NEXT_FREE = ("SELECT min(block), max(block), count(*) FROM"
              " (SELECT block FROM free_blocks WHERE block > ?1 ORDER BY block LIMIT ?2)")
#: blocks read ahead one by one where the free list is not one run
_READ_SCATTERED = 256

#: a read of the data file at least this long has the next ``_PREFETCH_AHEAD`` times as
#: many bytes read ahead (a sequential reader's: the mount's readahead asks for 1 MiB)
_PREFETCH_MIN = 256 * 1024
_PREFETCH_AHEAD = 2

#: a run of blocks that follow each other in the data file: (first, count)
Run = tuple[int, int]


def _coalesce(runs: list[Run]) -> list[Run]:
    """``runs`` in block order, those that touch merged."""
    out: list[Run] = []
    for first, n in sorted(runs):
        if out and out[-1][0] + out[-1][1] == first:
            out[-1] = (out[-1][0], out[-1][1] + n)
        else:
            out.append((first, n))
    return out


class BlockStore:
    """Allocation and I/O of data blocks; the caller owns the transaction."""

    def __init__(self, path: str, db: sqlite3.Connection, meta: Meta) -> None:
        #: the data file
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._db = db
        self.meta = meta
        self.bs = meta.block_size
        #: runs to free when the transaction commits
        self._pending_free: list[Run] = []
        #: free runs read ahead from the table (last = next to hand out), and the
        #: highest block read so far: the next read starts after it (None: the table has
        #: no more until the next commit, so no query is made until then)
        self._runs: list[Run] = []
        self._cursor: int | None = -1
        #: runs handed out from the table since the last commit
        self._taken: list[Run] = []
        #: what would make room, for the ENOSPC message (the Volume's :meth:`room_advice`)
        self.advice: Callable[[], str] = lambda: "delete snapshots or files"

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def reopen(self, path: str, db: sqlite3.Connection) -> None:
        """Take the data file again at ``path`` (a volume move), with the new connection ``db``."""
        self.close()
        self._fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        self.path, self._db = path, db

    def allocate(self) -> int:
        """A free block number, or NoSpace when the volume is full."""
        m = self.meta
        if m.used_blocks >= m.total_blocks:
            raise NoSpace(f"no space left on volume {m.name}: all {m.total_blocks} data blocks are in use;"
                          f" {self.advice()}")
        if not self._runs and self._cursor is not None:
            self._read_ahead()
        if self._runs:
            block, n = self._runs[-1]
            if n == 1:
                self._runs.pop()
            else:
                self._runs[-1] = (block + 1, n - 1)
            self._taken.append((block, 1))
        else:
            block = m.high_water
            m.high_water += 1
        m.used_blocks += 1
        return block

    def _read_ahead(self) -> None:
        """The next free runs from the table (or note that it has no more)."""
        first, last, n = self._db.execute(_NEXT_FREE, (self._cursor, _READ_AHEAD)).fetchone()
        if not n:
            self._cursor = None
            return
        if last - first + 1 == n:  # one run, found without bringing its rows into Python
            self._runs = [(first, n)]
            self._cursor = last
            return
        runs: list[Run] = []
        for (b,) in self._db.execute("SELECT block FROM free_blocks WHERE block > ? ORDER BY block LIMIT ?",
                                     (self._cursor, _READ_SCATTERED)):
            if runs and runs[-1][0] + runs[-1][1] == b:
                runs[-1] = (runs[-1][0], runs[-1][1] + 1)
            else:
                runs.append((b, 1))
        self._cursor = runs[-1][0] + runs[-1][1] - 1
        runs.reverse()
        self._runs = runs

    def allocate_many(self, n: int) -> list[int]:
        """``n`` free blocks, the ones :meth:`allocate` would hand out one by one."""
        m = self.meta
        if m.used_blocks + n > m.total_blocks:
            return [self.allocate() for _ in range(n)]  # (NoSpace where the volume is full)
        out: list[int] = []
        need = n
        while need:
            if not self._runs and self._cursor is not None:
                self._read_ahead()
            if self._runs:
                first, have = self._runs[-1]
                k = min(need, have)
                if k == have:
                    self._runs.pop()
                else:
                    self._runs[-1] = (first + k, have - k)
                self._taken.append((first, k))
            else:
                first, k = m.high_water, need
                m.high_water += k
            out.extend(range(first, first + k))
            need -= k
        m.used_blocks += n
        return out

    def free_runs_later(self, runs: Iterable[Run]) -> None:
        """Free the blocks of ``runs`` (``(first, count)`` each) when the current transaction
        commits (see :meth:`commit_frees`)."""
        self._pending_free.extend(runs)

    def commit_frees(self) -> None:
        """Take the blocks handed out off the free list and put the pending frees on it;
        call inside the transaction, just before COMMIT."""
        if self._taken:
            runs = _coalesce(self._taken)
            self._taken.clear()
            ranges = [(b, b + n - 1) for b, n in runs if n > 1]
            if ranges:
                self._db.executemany("DELETE FROM free_blocks WHERE block BETWEEN ? AND ?", ranges)
            if len(ranges) < len(runs):
                self._db.executemany("DELETE FROM free_blocks WHERE block = ?", [(b,) for b, n in runs if n == 1])
        self._runs.clear()
        self._cursor = -1
        if self._pending_free:
            self._insert_free(self._pending_free)
            self.meta.used_blocks -= sum(n for _, n in self._pending_free)
            self._pending_free.clear()

    def _insert_free(self, runs: list[Run]) -> None:
        """Put the blocks of ``runs`` on the free list: a long run (a big file's) in one
        statement made inside SQLite, the others one row each."""
        single: list[tuple[int]] = []
        for first, n in _coalesce(runs):
            if n >= _RUN_MIN:
                self._db.execute(_FREE_RUN, (first, first + n - 1))
            else:
                single.extend((b,) for b in range(first, first + n))
        if single:
            self._db.executemany("INSERT INTO free_blocks (block) VALUES (?)", single)

    def pending_mark(self) -> tuple[int, int]:
        """A mark to undo later frees and allocations with :meth:`abort_frees` (one call in a batch)."""
        return len(self._pending_free), len(self._taken)

    def abort_frees(self, mark: tuple[int, int] = (0, 0)) -> None:
        """Forget the frees and allocations since ``mark`` (the call's transaction rolled back)."""
        del self._pending_free[mark[0]:]
        back = self._taken[mark[1]:]
        del self._taken[mark[1]:]
        self._runs.extend(reversed(back))

    def read(self, block: int) -> bytes:
        data = os.pread(self._fd, self.bs, block * self.bs)
        if len(data) < self.bs:
            data += bytes(self.bs - len(data))
        return data

    def read_at(self, off: int, view: memoryview) -> None:
        """The data file's bytes at ``off`` straight into ``view``, which may span
        blocks (no copies; a part past the data file's end is left as it is, zeros
        in a fresh buffer).  After a long read (a sequential reader's), the data file's
        next bytes are read ahead, without waiting: the disk works on them meanwhile."""
        if len(view) >= _PREFETCH_MIN:
            os.posix_fadvise(self._fd, off + len(view), _PREFETCH_AHEAD * len(view), os.POSIX_FADV_WILLNEED)
        while view:
            n = os.preadv(self._fd, [view], off)
            if n <= 0:
                return
            view = view[n:]
            off += n

    def write(self, block: int, data: bytes) -> None:
        """Write ``data`` (at most a block) at the start of ``block``; the rest of the
        block keeps whatever it held (the Volume never reads past a file's end)."""
        view = memoryview(data)
        off = block * self.bs
        while view:
            n = os.pwrite(self._fd, view, off)
            view = view[n:]
            off += n

    def write_blocks(self, blocks: list[int], bufs: list) -> None:
        """Write each of ``bufs`` (at most a block) at the start of its block in ``blocks``,
        with one ``pwritev`` per run of blocks that follow each other in the data file
        where every buffer but the run's last fills its block."""
        bs, i, n = self.bs, 0, len(blocks)
        while i < n:
            j = i + 1
            while j < n and j - i < _IOV_MAX and blocks[j] == blocks[j - 1] + 1 and len(bufs[j - 1]) == bs:
                j += 1
            if j - i == 1:
                self.write(blocks[i], bufs[i])
            else:
                self._writev(blocks[i] * bs, bufs[i:j])
            i = j

    def write_run(self, first: int, bufs: list) -> None:
        """Write ``bufs`` one after the other from the start of block ``first`` (blocks
        ``first`` on, allocated together): all of them but the last end on a block boundary."""
        self._writev(first * self.bs, bufs)

    def _writev(self, off: int, bufs: list) -> None:
        total = sum(len(b) for b in bufs)
        n = os.pwritev(self._fd, bufs, off)
        if n < total:  # a short write (rare): the rest one buffer at a time
            rest = memoryview(b"".join(bytes(b) for b in bufs))[n:]
            off += n
            while rest:
                k = os.pwrite(self._fd, rest, off)
                rest = rest[k:]
                off += k

    def sync(self) -> None:
        os.fsync(self._fd)
