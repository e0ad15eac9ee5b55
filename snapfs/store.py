"""The Store: a volume's SQLite tables and data file, wrapped once.

Everything beneath the POSIX semantics lives here: opening and creating the
files (the lock, the header check, the pragmas, the schema), the in-memory
``meta`` row, the cache of live inode rows and xattrs, and the machinery that
makes each Volume call all-or-nothing: :meth:`Store.txn` (one SQLite
transaction, or in batch mode a savepoint in a transaction :meth:`Store.commit`
ends), the undo log that restores the caches when a call fails, and the rows
batch mode keeps in memory until the commit (changed in place, made, or
ended).  :class:`snapfs.volume.Volume` builds files, directories and
snapshots on top; :mod:`snapfs.fsck` checks and repairs through the same calls.

Rows are versioned (see :mod:`snapfs.snapshots`): :meth:`Store.set` changes a
live inode row in place when no snapshot sees it and copies it otherwise, and
:meth:`Store.kill` ends the live rows of a table the same way.  ``view(snap)``
is the SQL condition of the rows the live tree (``None``) or a snapshot sees.

Not thread-safe: one caller at a time.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sqlite3
import stat
import time
from collections import namedtuple
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Callable, ContextManager, Iterator

from . import privacy, shortnames
from .blockstore import DATA_FILE, BlockStore
from .errors import NotAVolume, VolumeBusy, err
from .limits import INT_MAX, check_int, check_label
from .schema import LIVE, MAGIC, migrate
from .snapshots import Epochs
from .values import Meta

DB_FILE = "snapfs.db"
LOCK_FILE = "lock"
ROOT_INO = 1

#: A live or snapshot inode row, as the ``inodes`` table holds it (without ``ino`` and ``death``).
Row = namedtuple("Row", "birth mode nlink uid gid rdev size nblocks atime_ns mtime_ns ctime_ns target")
_ICOLS = ", ".join(Row._fields)
_INSERT_ROW = f"INSERT INTO inodes (ino, death, {_ICOLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
_UPDATE_ROW = f"UPDATE inodes SET {', '.join(f'{f} = ?' for f in Row._fields[1:])} WHERE ino = ? AND death = ?"
_LIVE_DIRENT = "SELECT ino FROM dirents WHERE parent = ? AND name = ? AND death = ?"
#: Rows kept in the caches at most (then they start over).
CACHE_MAX = 50_000
#: The largest block size a volume is made with (ZFS's largest record).
MAX_BLOCK_SIZE = 16 << 20
_SQLITE_HEADER = b"SQLite format 3\0"


def check_header(path: Path) -> None:
    """NotAVolume, with the reason, when ``path``'s database file is empty or not SQLite
    (read before anything opens it: SQLite would take an empty file as a new database)."""
    with open(path / DB_FILE, "rb") as f:
        head = f.read(len(_SQLITE_HEADER))
    if not head:
        raise NotAVolume(f"{path} is not a snapfs volume: its {DB_FILE} is empty")
    if head != _SQLITE_HEADER:
        raise NotAVolume(f"{path} is not a snapfs volume: its {DB_FILE} is not an SQLite database")


def check_new_volume(size_bytes: int, max_inodes: int, name: str, block_size: int) -> None:
    """EINVAL, naming the figure, for what makes no volume: checked before anything is made."""
    check_label(name, "volume name")
    check_int(block_size, "block size", 512, MAX_BLOCK_SIZE)
    if block_size & (block_size - 1):
        raise err(errno.EINVAL, f"block size {block_size} is not a power of two >= 512")
    if check_int(size_bytes, "volume size", 0, INT_MAX) < block_size or check_int(max_inodes, "inode count", 0) < 1:
        raise err(errno.EINVAL, "volume size must hold at least one block and one inode")


def create_files(path: Path, size_bytes: int, max_inodes: int, name: str, block_size: int,
                 xattr_room: int) -> None:
    """Make a volume's files in ``path`` (absent or empty): the database with the meta
    row and an empty root directory, the data file and the lock file, all private.
    The figures are checked first (:func:`check_new_volume`); when making them fails
    all the same, what was made is removed: ``path`` is left as it was (absent, or empty
    with its mode)."""
    check_new_volume(size_bytes, max_inodes, name, block_size)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise err(errno.EEXIST, f"{path} exists and is not an empty folder; choose a new folder")
    made = [p for p in (path, *path.parents) if not p.exists()]  # deepest first
    mode = None if made else stat.S_IMODE(path.stat().st_mode)
    try:
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, privacy.FOLDER_MODE)
        privacy.create_private(path / DB_FILE)  # SQLite gives its -wal and -shm files this mode too
        db = sqlite3.connect(path / DB_FILE, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            migrate(db)
            now = time.time_ns()
            db.execute("BEGIN")
            db.execute(
                "INSERT INTO meta (id, magic, name, block_size, total_blocks, max_inodes, created_ns,"
                " epoch, next_ino, next_cookie, high_water, used_blocks, live_inodes, xattr_room)"
                " VALUES (1, ?, ?, ?, ?, ?, ?, 1, ?, 1, 0, 0, 1, ?)",
                (MAGIC, name, block_size, size_bytes // block_size, max_inodes, now, ROOT_INO + 1, xattr_room),
            )
            db.execute(_INSERT_ROW, (ROOT_INO, LIVE, 1, stat.S_IFDIR | 0o755, 2, 0, 0, 0, 0, 0, now, now, now, None))
            db.execute("COMMIT")
        finally:
            db.close()
        privacy.create_private(path / DATA_FILE)
        privacy.create_private(path / LOCK_FILE)
    except BaseException:
        _unmake(path, made, mode)
        raise


def _unmake(path: Path, made: list[Path], mode: int | None) -> None:
    """Undo a failed :func:`create_files`: remove the files it makes in ``path`` (empty
    before it), then the folders it made (``made``, deepest first; one that is not empty
    stays), or give ``path`` back its ``mode``."""
    for f in (DB_FILE, f"{DB_FILE}-wal", f"{DB_FILE}-shm", f"{DB_FILE}-journal", DATA_FILE, LOCK_FILE):
        with suppress(OSError):
            (path / f).unlink(missing_ok=True)
    for folder in made:
        try:
            folder.rmdir()
        except OSError:
            break
    if mode is not None:
        with suppress(OSError):
            os.chmod(path, mode)


def _set_pragmas(db: sqlite3.Connection) -> None:
    """The pragmas every connection of an open volume runs with."""
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")


class Store:
    """One open volume's tables, caches and data file; only one opener at a time (EBUSY)."""

    def __init__(self, path: Path) -> None:
        dbpath = path / DB_FILE
        if not path.is_dir() or not dbpath.is_file():
            raise NotAVolume(f"{path} is not a snapfs volume (no {DB_FILE}); create one with 'snapfs create'")
        check_header(path)
        if not (path / DATA_FILE).is_file():
            raise NotAVolume(f"{path} is a damaged snapfs volume: its {DB_FILE} is there but its data file"
                             f" ({DATA_FILE}) is missing")
        made_lock = not (path / LOCK_FILE).exists()
        #: the volume's lock, held (flock) while it is open
        self.lock_fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.lock_fd)
            raise VolumeBusy(f"volume {path} is already mounted/open by another process") from None
        db = None
        try:
            db = sqlite3.connect(dbpath, isolation_level=None, check_same_thread=False, cached_statements=256)
            try:
                # nothing is written before the database is known to be a volume's
                if not db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone():
                    raise NotAVolume(f"{path} is not a snapfs volume: its {DB_FILE} is an SQLite database"
                                     " of something else (no volume metadata)")
                _set_pragmas(db)
                migrate(db)
                row = db.execute(f"SELECT magic, {', '.join(Meta.COLUMNS)} FROM meta").fetchone()
            except sqlite3.DatabaseError as e:
                raise NotAVolume(f"{path} is not a snapfs volume: its {DB_FILE} cannot be read ({e})") from None
            if row is None or row[0] != MAGIC:
                raise NotAVolume(f"{path} is not a snapfs volume: its {DB_FILE} is an SQLite database"
                                 " of something else (no volume magic)")
        except BaseException as e:
            if db is not None:
                db.close()
            if made_lock and isinstance(e, NotAVolume):
                (path / LOCK_FILE).unlink(missing_ok=True)  # leave a folder that is no volume as it was
            fcntl.flock(self.lock_fd, fcntl.LOCK_UN)
            os.close(self.lock_fd)
            raise
        #: the metadata connection: read freely; write only inside :meth:`txn`
        self.db = db
        #: the meta row, changed in memory and written when the call (or batch) commits
        self.meta = Meta(*row[1:])
        #: the data blocks and their free list
        self.blocks = BlockStore(str(path / DATA_FILE), db, self.meta)
        #: the snapshot epochs (reloaded in place when a call rolls back)
        self.epochs = Epochs(db)
        self._icache: dict[int, Row] = {}
        #: live rows changed in place in batch mode and not yet written (see :meth:`_flush_rows`)
        self._dirty: set[int] = set()
        #: the dirty rows of inodes made in this batch: not in the table yet (a subset of _dirty)
        self._new: set[int] = set()
        #: inodes destroyed in this batch whose rows are ended at commit (see :meth:`destroy`):
        #: ino -> (may have xattrs, has an inodes row)
        self._doomed: dict[int, tuple[bool, bool]] = {}
        #: (cached row, dirty, new) of each inode before the current call touched it, to undo it
        self._undo: dict[int, tuple[Row | None, bool, bool]] | None = None
        #: all live xattrs of recently used inodes, name -> value
        self._xcache: dict[int, dict[bytes, bytes]] = {}
        #: the one block of small live files written by the Volume's fast path, with the
        #: cached row it was written with: valid while that very row object is cached
        #: (every change of a file's blocks replaces its row; a rollback restores both)
        self.small: dict[int, tuple[Row, int]] = {}
        self._in_txn = False
        #: whether the current call in batch mode has its savepoint (see :meth:`txn`)
        self._sp = False
        self._batch = False
        self._batch_open = False
        self.closed = False

    def close(self) -> None:
        """Commit, make everything durable, release the volume."""
        if self.closed:
            return
        self.set_batch(False)
        self.blocks.sync()
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.db.close()
        self.blocks.close()
        fcntl.flock(self.lock_fd, fcntl.LOCK_UN)
        os.close(self.lock_fd)
        self.closed = True

    def relocate(self, dest: Path, move: Callable[[], None]) -> None:
        """Let go of the files (everything committed and durable, the lock
        kept), run ``move`` (which moves the volume's folder to ``dest``), and
        take them again there: the same Store, its caches still true (nothing
        changed meanwhile).  When ``move`` fails the files are taken again
        where they were and its error raised."""
        if self._in_txn:
            raise err(errno.EBUSY, "a volume call is running")
        self.commit()
        self.blocks.sync()
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.db.close()
        self.blocks.close()
        src = Path(self.blocks.path).parent
        try:
            move()
        except BaseException:
            self._take_files(src)
            raise
        self._take_files(dest)

    def _take_files(self, path: Path) -> None:
        """Open the database and the data file in ``path``, and hold its lock (see :meth:`relocate`)."""
        lock = path / LOCK_FILE
        held = os.fstat(self.lock_fd)
        try:
            now = os.stat(lock)
            same = (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)
        except FileNotFoundError:
            same = False
        if not same:  # copied to another file system: lock the copy, then let the old one go
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise VolumeBusy(f"volume {path} is already mounted/open by another process") from None
            fcntl.flock(self.lock_fd, fcntl.LOCK_UN)
            os.close(self.lock_fd)
            self.lock_fd = fd
        db = sqlite3.connect(path / DB_FILE, isolation_level=None, check_same_thread=False, cached_statements=256)
        _set_pragmas(db)
        self.db = db
        self.blocks.reopen(str(path / DATA_FILE), db)

    def sync(self) -> None:
        """Make every call so far durable (data file first, then the metadata WAL)."""
        self.commit()
        self.blocks.sync()
        self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    # ------------------------------------------------------------------ transactions

    @contextmanager
    def txn(self, light: bool = False) -> Iterator[None]:
        """One call's changes; on any exception nothing of them remains.

        Normally its own SQLite transaction.  In batch mode (:meth:`set_batch`) a
        savepoint inside one transaction that :meth:`commit` ends: the call is
        still all-or-nothing, and blocks it frees stay unusable until that commit
        (a crash rolls back to the last commit, whose blocks must be untouched).

        ``light``: the call opens no savepoint unless it calls :meth:`full` before
        its first change; without one it may make at most one change to the tables,
        as its last step that can fail (a single statement is all-or-nothing itself).
        """
        if self.closed:
            raise err(errno.EBADF, "volume is closed")
        assert not self._in_txn, "nested volume transaction"
        db = self.db
        saved = self.meta.values()
        mark = self.blocks.pending_mark()
        doomed = len(self._doomed)
        self._in_txn = True
        self._undo = {}
        self._sp = False
        if self._batch:
            if not self._batch_open:
                db.execute("BEGIN IMMEDIATE")
                self._batch_open = True
            if not light:
                db.execute("SAVEPOINT call")
                self._sp = True
        else:
            db.execute("BEGIN IMMEDIATE")
        try:
            yield
            if self._batch:
                if self._sp:
                    db.execute("RELEASE call")  # meta and dirty rows are written at commit
            else:
                self.blocks.commit_frees()
                if self.meta.values() != saved:
                    self._write_meta()
                db.execute("COMMIT")
        except BaseException:
            if self._batch:
                if self._sp:
                    db.execute("ROLLBACK TO call")
                    db.execute("RELEASE call")
            else:
                db.execute("ROLLBACK")
            for c, v in zip(Meta.COLUMNS, saved):
                setattr(self.meta, c, v)
            self.blocks.abort_frees(mark)
            while len(self._doomed) > doomed:
                self._doomed.popitem()
            for ino, (row, dirty, new) in self._undo.items():
                if row is None:
                    self._icache.pop(ino, None)
                else:
                    self._icache[ino] = row
                if dirty:
                    self._dirty.add(ino)
                else:
                    self._dirty.discard(ino)
                if new:
                    self._new.add(ino)
                else:
                    self._new.discard(ino)
            self._xcache.clear()
            self.epochs.reload(db)
            raise
        finally:
            self._in_txn = False
            self._undo = None
            self._sp = False

    def full(self) -> None:
        """In a ``light`` call (see :meth:`txn`): it will make more than one change, so
        open its savepoint now, before the first."""
        if self._batch and not self._sp:
            self.db.execute("SAVEPOINT call")
            self._sp = True

    def _write_meta(self) -> None:
        cols = ", ".join(f"{c} = ?" for c in Meta.COLUMNS)
        self.db.execute(f"UPDATE meta SET {cols} WHERE id = 1", self.meta.values())

    def set_batch(self, on: bool) -> None:
        """Batch mode: calls commit together at :meth:`commit` (the mount daemon commits
        every few tens of milliseconds and on fsync), saving a commit per call.  A
        crash loses only what was not yet committed, and the volume stays consistent.
        New inode rows, in-place row changes and the rows of destroyed inodes are
        written at the commit, many a statement (see :meth:`_flush_rows`)."""
        if not on:
            self.commit()
        self._batch = on

    def commit(self) -> bool:
        """Commit the calls made in batch mode since the last commit; False if there were none."""
        if not self._batch_open:
            return False
        self._batch_open = False
        try:
            self._flush_rows()
            self._flush_doomed()
            self.blocks.commit_frees()
            self._write_meta()
            self.db.execute("COMMIT")
        except BaseException:
            # the batch is lost (a full disk, say): forget it in memory too
            try:
                self.db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            row = self.db.execute(f"SELECT {', '.join(Meta.COLUMNS)} FROM meta").fetchone()
            for c, v in zip(Meta.COLUMNS, row):
                setattr(self.meta, c, v)
            self.blocks.abort_frees()
            self._icache.clear()
            self._dirty.clear()
            self._new.clear()
            self._doomed.clear()
            self._xcache.clear()
            self.epochs.reload(self.db)
            raise
        return True

    def flush_new(self) -> None:
        """Write the inode rows made in this batch (a query joining ``inodes`` needs them)."""
        if self._new:
            self._flush_rows()

    def _flush_rows(self) -> None:
        """Write the live inode rows batch mode made or changed in place only in memory."""
        if self._new:
            self.db.executemany(_INSERT_ROW, [(i, LIVE, *self._icache[i]) for i in self._new])
            self._dirty -= self._new
            self._new.clear()
        if self._dirty:
            self.db.executemany(_UPDATE_ROW, [(*self._icache[i][1:], i, LIVE) for i in self._dirty])
            self._dirty.clear()

    def _flush_doomed(self, chunk: int = 500) -> None:
        """End the rows of the inodes destroyed in this batch, many inodes a statement."""
        doomed, self._doomed = self._doomed, {}
        for table, inos in (("blockmap", list(doomed)), ("streams", list(doomed)),
                            ("xattrs", [i for i, (x, _) in doomed.items() if x]),
                            ("inodes", [i for i, (_, r) in doomed.items() if r])):
            for k in range(0, len(inos), chunk):
                part = tuple(inos[k:k + chunk])
                self.kill(table, f"ino IN ({','.join('?' * len(part))})", part)

    # ------------------------------------------------------------------ inode rows

    def view(self, snap: int | None) -> tuple[str, tuple]:
        """The SQL condition (and its parameters) of the rows the live tree
        (``snap`` None) or snapshot ``snap`` sees; ENOENT for no such snapshot."""
        if snap is None:
            return "death = ?", (LIVE,)
        if snap not in self.epochs.epochs:
            raise err(errno.ENOENT, f"no snapshot with id {snap}")
        return "death > ? AND birth <= ?", (snap, snap)

    def row(self, ino: int, snap: int | None = None) -> Row:
        """Inode ``ino``'s row in the live tree or snapshot ``snap`` (ENOENT if it has none)."""
        if snap is None:
            row = self._icache.get(ino)
            if row is not None:
                return row
            if ino in self._doomed:
                raise err(errno.ENOENT, f"no inode {ino}")
        where, params = self.view(snap)
        r = self.db.execute(f"SELECT {_ICOLS} FROM inodes WHERE ino = ? AND {where}", (ino, *params)).fetchone()
        if r is None:
            raise err(errno.ENOENT, f"no inode {ino}" + (f" in snapshot {snap}" if snap else ""))
        row = Row(*r)
        if snap is None:
            if len(self._icache) >= CACHE_MAX:
                self._icache = {i: self._icache[i] for i in self._dirty}
            self._icache[ino] = row
        return row

    @property
    def cached_rows(self) -> dict[int, Row]:
        """The live rows in the cache now, by inode (read only; newer than the table's in batch mode)."""
        return self._icache

    def forget_rows(self) -> None:
        """Drop the cached rows already written (after changing the tables behind the cache)."""
        self._icache = {i: self._icache[i] for i in self._dirty}
        self.small.clear()

    def set(self, ino: int, **changes) -> Row:
        """Change the live inode row, copying it first if a snapshot can see it."""
        old = self.row(ino)
        new = old._replace(**changes)
        self._note(ino)
        if old.birth > self.epochs.latest:
            # in place; in batch mode only in memory until the commit (a row is
            # often changed many times in a batch: a directory by every create)
            if self._batch:
                self._dirty.add(ino)
            else:
                self.db.execute(_UPDATE_ROW, (*new[1:], ino, LIVE))
        else:
            E = self.meta.epoch
            new = new._replace(birth=E)
            self.db.execute("UPDATE inodes SET death = ? WHERE ino = ? AND death = ?", (E, ino, LIVE))
            self.db.execute(_INSERT_ROW, (ino, LIVE, *new))
        self._icache[ino] = new
        return new

    def add_inode(self, ino: int, row: Row, xattrs: dict[bytes, bytes]) -> None:
        """Make live inode ``ino`` with ``row`` (born now) and ``xattrs``; the counters are the caller's."""
        self._note(ino)
        if self._batch:  # written with the batch's other rows at the commit
            self._new.add(ino)
            self._dirty.add(ino)
        else:
            self.db.execute(_INSERT_ROW, (ino, LIVE, *row))
        self._icache[ino] = row
        for xname, xvalue in xattrs.items():
            self.db.execute("INSERT INTO xattrs (ino, name, death, birth, value) VALUES (?,?,?,?,?)",
                            (ino, xname, LIVE, self.meta.epoch, xvalue))
        self._xcache[ino] = xattrs

    def _note(self, ino: int) -> None:
        """Remember how the current call found ``ino``'s cached row, to undo the call."""
        u = self._undo
        if u is not None and ino not in u:
            u[ino] = (self._icache.get(ino), ino in self._dirty, ino in self._new)

    def kill(self, table: str, where: str, params: tuple) -> None:
        """End the live rows of ``table`` matching ``where``: drop them, or keep them for snapshots.

        ``+death``/``+birth`` keep SQLite on the key's index (the ``*_dead``
        indexes hold no live rows)."""
        L, E = self.epochs.latest, self.meta.epoch
        if table == "blockmap":
            self.blocks.free_runs_later(self.db.execute(
                f"DELETE FROM blockmap WHERE {where} AND +death = ? AND +birth > ? RETURNING block, span",
                (*params, LIVE, L)).fetchall())
        else:
            self.db.execute(f"DELETE FROM {table} WHERE {where} AND +death = ? AND +birth > ?", (*params, LIVE, L))
        if L:  # without snapshots every row was born after L = 0: nothing to keep
            self.db.execute(f"UPDATE {table} SET death = ? WHERE {where} AND +death = ?", (E, *params, LIVE))

    def destroy(self, ino: int) -> None:
        """Remove a live inode with its data and xattrs (snapshots keep their versions).

        In batch mode its rows are ended at the commit, with those of the other
        inodes the batch destroyed (their blocks could not be reused before it anyway)."""
        xattrs = self._xcache.pop(ino, None) != {}
        self._note(ino)
        in_table = ino not in self._new  # a row made in this batch never reached the table
        self._new.discard(ino)
        if self._batch:
            self._doomed[ino] = (xattrs, in_table)
        else:
            self.kill("blockmap", "ino = ?", (ino,))
            self.kill("streams", "ino = ?", (ino,))
            if xattrs:
                self.kill("xattrs", "ino = ?", (ino,))
            if in_table:
                self.kill("inodes", "ino = ?", (ino,))
        self._icache.pop(ino, None)
        self.small.pop(ino, None)
        self._dirty.discard(ino)
        self.meta.live_inodes -= 1

    # ------------------------------------------------------------------ xattrs

    def xattrs(self, ino: int) -> dict[bytes, bytes]:
        """All live xattrs of ``ino`` (cached; callers change the dict with the table)."""
        d = self._xcache.get(ino)
        if d is None:
            if len(self._xcache) >= CACHE_MAX:
                self._xcache.clear()
            d = self._xcache[ino] = dict(self.db.execute(
                "SELECT name, value FROM xattrs WHERE ino = ? AND death = ?", (ino, LIVE)))
        return d

    # ------------------------------------------------------------------ directory entries

    def dirent(self, parent: int, name: bytes, snap: int | None = None) -> int | None:
        """The inode ``name`` in ``parent`` names, or None."""
        if snap is None:
            r = self.db.execute(_LIVE_DIRENT, (parent, name, LIVE)).fetchone()
            return None if r is None else r[0]
        where, params = self.view(snap)
        r = self.db.execute(f"SELECT ino FROM dirents WHERE parent = ? AND name = ? AND {where}",
                            (parent, name, *params)).fetchone()
        return None if r is None else r[0]

    def parent_of(self, ino: int, snap: int | None = None) -> int:
        """The directory whose entry names directory ``ino`` (the root's is the root)."""
        if ino == ROOT_INO:
            return ROOT_INO
        where, params = self.view(snap)
        r = self.db.execute(f"SELECT parent FROM dirents WHERE ino = ? AND {where}", (ino, *params)).fetchone()
        if r is None:
            raise err(errno.ENOENT, f"directory {ino} has no parent")
        return r[0]

    def add_dirent(self, parent: int, name: bytes, ino: int, keep_dosname: bytes | None = None) -> None:
        """A live entry ``name`` in ``parent`` for ``ino`` (sqlite3.IntegrityError if the name is taken),
        with its DOS 8.3 name (``keep_dosname`` if still free: a rename; see :mod:`snapfs.shortnames`)."""
        dosname = shortnames.assign(self.db, parent, name, keep_dosname)
        cookie = self.meta.next_cookie
        self.meta.next_cookie += 1
        self.db.execute("INSERT INTO dirents (parent, name, death, birth, ino, cookie, dosname)"
                        " VALUES (?,?,?,?,?,?,?)", (parent, name, LIVE, self.meta.epoch, ino, cookie, dosname))

    def dosname(self, parent: int, name: bytes, snap: int | None = None) -> bytes | None:
        """The DOS 8.3 name of entry ``name`` in ``parent``, or None if there is no such entry."""
        where, params = self.view(snap)
        r = self.db.execute(f"SELECT dosname FROM dirents WHERE parent = ? AND name = ? AND {where}",
                            (parent, name, *params)).fetchone()
        return None if r is None else shortnames.short_name(name, r[0])

    def dosname_of(self, ino: int, snap: int | None = None) -> bytes | None:
        """The DOS 8.3 name of an entry naming ``ino`` (its first, for a file with hard links)."""
        where, params = self.view(snap)
        r = self.db.execute(f"SELECT name, dosname FROM dirents WHERE ino = ? AND {where} ORDER BY cookie LIMIT 1",
                            (ino, *params)).fetchone()
        return None if r is None else shortnames.short_name(r[0], r[1])

    def take_dirent(self, parent: int, name: bytes) -> int | None:
        """End the live entry ``name`` in ``parent`` as :meth:`del_dirent` does, in one
        statement instead of a look-up and a removal; its inode, or None if there is none."""
        L = self.epochs.latest
        r = self.db.execute("DELETE FROM dirents WHERE parent = ? AND name = ? AND death = ? AND +birth > ?"
                            " RETURNING ino", (parent, name, LIVE, L)).fetchall()
        if not r and L:
            r = self.db.execute("UPDATE dirents SET death = ? WHERE parent = ? AND name = ? AND death = ?"
                                " RETURNING ino", (self.meta.epoch, parent, name, LIVE)).fetchall()
        return r[0][0] if r else None

    def del_dirent(self, parent: int, name: bytes) -> None:
        self.kill("dirents", "parent = ? AND name = ?", (parent, name))

    def has_entries(self, ino: int) -> bool:
        """Does live directory ``ino`` name anything?"""
        return self.db.execute("SELECT 1 FROM dirents WHERE parent = ? AND death = ? LIMIT 1",
                               (ino, LIVE)).fetchone() is not None


class StoreCalls:
    """The store as the parts of a Volume see it (:mod:`snapfs.namespace`,
    :mod:`snapfs.filedata`, :mod:`snapfs.xattrs`): its calls bound once, as
    attributes, so a request pays no more lookups for them than for a method
    of the Volume's own."""

    tables: Store
    meta: Meta
    #: the data blocks
    store: BlockStore
    _bs: int
    _db: sqlite3.Connection
    _epochs: Epochs
    _small: dict[int, tuple[Row, int]]
    _txn: Callable[..., ContextManager[None]]
    _full: Callable[[], None]
    _row: Callable[..., Row]
    _set: Callable[..., Row]
    _kill: Callable[[str, str, tuple], None]
    _view: Callable[[int | None], tuple[str, tuple]]
    _destroy: Callable[[int], None]
    _xattrs: Callable[[int], dict[bytes, bytes]]
    _dirent: Callable[..., int | None]
    _parent_of: Callable[..., int]
    _add_dirent: Callable[..., None]
    _take_dirent: Callable[[int, bytes], int | None]
    _del_dirent: Callable[[int, bytes], None]

    def _bind(self, t: Store) -> None:
        self.tables, self.meta, self.store = t, t.meta, t.blocks
        self._bs = t.meta.block_size
        self._db, self._epochs, self._small = t.db, t.epochs, t.small
        self._txn, self._full = t.txn, t.full
        self._row, self._set, self._kill, self._view, self._destroy = t.row, t.set, t.kill, t.view, t.destroy
        self._xattrs = t.xattrs
        self._dirent, self._parent_of = t.dirent, t.parent_of
        self._add_dirent, self._take_dirent, self._del_dirent = t.add_dirent, t.take_dirent, t.del_dirent
