"""The Volume: a POSIX file system as plain synchronous calls over SQLite.

Every mutating call is one SQLite transaction (``BEGIN IMMEDIATE`` .. ``COMMIT``),
or in batch mode (:meth:`Volume.set_batch`, the mount daemon's) a savepoint in a
transaction that :meth:`Volume.commit` ends: either way it happens entirely or
not at all.  Inodes are addressed by number
(``ROOT_INO`` is 1, as FUSE expects); an inode number is never reused, and a
file keeps the same number in the live tree and in every snapshot.  Reading
calls take ``snap`` (a snapshot id from :meth:`Volume.snapshot_create` or
:meth:`Volume.snapshot_list`); ``None`` means the live tree.  Writing calls act
on the live tree only; the FUSE adapter answers EROFS for snapshot inodes.

Not thread-safe: one caller at a time (the FUSE adapter's single trio thread).

For the FUSE adapter: errors are :class:`SnapfsError` with ``errno``; names
are bytes (str accepted); times are integer nanoseconds; ``Volume.create`` and
``Volume.open`` manage volumes, so FUSE's create/open/release map to
:meth:`create_file`, :meth:`open_file` and :meth:`release_file`.  readdir
offsets are opaque cookies ('.' and '..' are the adapter's).  Reads do not
update atime (noatime).  A snapshot's inodes keep their live numbers, so the
adapter must give the kernel a distinct node id per (snapshot, ino) and keep
the map.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sqlite3
import stat
import time
from collections import namedtuple
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from . import privacy
from . import snapshots as _snap
from .blockstore import DATA_FILE, BlockStore
from .errors import NoSpace, NotAVolume, SnapfsError, SnapshotBusy, VolumeBusy, err
from .records import Attrs, DirEntry, Meta, SnapshotInfo, SpaceInfo, StatFS
from .schema import LIVE, MAGIC, migrate

DB_FILE = "snapfs.db"
LOCK_FILE = "lock"
ROOT_INO = 1
DEFAULT_BLOCK_SIZE = 64 * 1024
NAME_MAX = 255
PATH_MAX = 4096
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
_SYSTEM_XATTRS = (b"system.posix_acl_access", b"system.posix_acl_default")
XATTR_CREATE = 1
XATTR_REPLACE = 2
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
#: renameat2's RENAME_WHITEOUT: a whiteout (character device 0/0, mode 0) takes the old name
RENAME_WHITEOUT = 4
WHITEOUT_MODE = stat.S_IFCHR
MAX_FILE_SIZE = 1 << 44
BACKUP_SNAPSHOT_PREFIX = "snapshot_for_backup."

_Row = namedtuple(
    "_Row", "birth mode nlink uid gid rdev size nblocks atime_ns mtime_ns ctime_ns target"
)
_ICOLS = ", ".join(_Row._fields)
_ICACHE_MAX = 50_000
_LIVE_DIRENT = "SELECT ino FROM dirents WHERE parent = ? AND name = ? AND death = ?"
_UPDATE_ROW = f"UPDATE inodes SET {', '.join(f'{f} = ?' for f in _Row._fields[1:])} WHERE ino = ? AND death = ?"


def _bname(name: bytes | str) -> bytes:
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


def _check_new_name(name: bytes) -> None:
    if not name or b"/" in name or b"\0" in name:
        raise err(errno.EINVAL, f"invalid file name {name!r}")
    if name in (b".", b".."):
        raise err(errno.EEXIST, f"{name!r} always exists")
    if len(name) > NAME_MAX:
        raise err(errno.ENAMETOOLONG, f"file name longer than {NAME_MAX} bytes")


class Volume:
    """An open snapfs volume.  Use :meth:`create` or :meth:`open`; close when done."""

    # ------------------------------------------------------------------ life cycle

    @classmethod
    def create(
        cls,
        voldir: str | os.PathLike,
        size_bytes: int,
        max_inodes: int,
        name: str = "vol1",
        block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> "Volume":
        """Make a new volume in ``voldir`` (absent or empty) and return it open."""
        path = Path(voldir)
        if block_size < 512 or block_size & (block_size - 1):
            raise err(errno.EINVAL, f"block size {block_size} is not a power of two >= 512")
        if size_bytes < block_size or max_inodes < 1:
            raise err(errno.EINVAL, "volume size must hold at least one block and one inode")
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise err(errno.EEXIST, f"{path} exists and is not an empty folder; choose a new folder")
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
                " epoch, next_ino, next_cookie, high_water, used_blocks, live_inodes)"
                " VALUES (1, ?, ?, ?, ?, ?, ?, 1, ?, 1, 0, 0, 1)",
                (MAGIC, name, block_size, size_bytes // block_size, max_inodes, now, ROOT_INO + 1),
            )
            db.execute(
                f"INSERT INTO inodes (ino, death, {_ICOLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (ROOT_INO, LIVE, 1, stat.S_IFDIR | 0o755, 2, 0, 0, 0, 0, 0, now, now, now, None),
            )
            db.execute("COMMIT")
        finally:
            db.close()
        privacy.create_private(path / DATA_FILE)
        privacy.create_private(path / LOCK_FILE)
        return cls.open(path)

    @classmethod
    def open(cls, voldir: str | os.PathLike) -> "Volume":
        """Open the volume in ``voldir``; only one opener at a time (EBUSY otherwise)."""
        return cls(Path(voldir))

    def __init__(self, path: Path) -> None:
        self.path = path
        dbpath = path / DB_FILE
        if not path.is_dir() or not dbpath.is_file():
            raise NotAVolume(f"{path} is not a snapfs volume (no {DB_FILE}); create one with 'snapfs create'")
        check_header(path)
        if not (path / DATA_FILE).is_file():
            raise NotAVolume(f"{path} is a damaged snapfs volume: its {DB_FILE} is there but its data file"
                             f" ({DATA_FILE}) is missing")
        made_lock = not (path / LOCK_FILE).exists()
        self._lockfd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._lockfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lockfd)
            raise VolumeBusy(f"volume {path} is already mounted/open by another process") from None
        self._db = None
        try:
            self._db = sqlite3.connect(dbpath, isolation_level=None, check_same_thread=False,
                                       cached_statements=256)
            try:
                # nothing is written before the database is known to be a volume's
                if not self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
                                        ).fetchone():
                    raise NotAVolume(f"{path} is not a snapfs volume: its {DB_FILE} is an SQLite database"
                                     " of something else (no volume metadata)")
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("PRAGMA foreign_keys=ON")
                migrate(self._db)
                row = self._db.execute(f"SELECT magic, {', '.join(Meta.COLUMNS)} FROM meta").fetchone()
            except sqlite3.DatabaseError as e:
                raise NotAVolume(f"{path} is not a snapfs volume: its {DB_FILE} cannot be read ({e})") from None
            if row is None or row[0] != MAGIC:
                raise NotAVolume(f"{path} is not a snapfs volume: its {DB_FILE} is an SQLite database"
                                 " of something else (no volume magic)")
        except BaseException as e:
            if self._db is not None:
                self._db.close()
            if made_lock and isinstance(e, NotAVolume):
                (path / LOCK_FILE).unlink(missing_ok=True)  # leave a folder that is no volume as it was
            fcntl.flock(self._lockfd, fcntl.LOCK_UN)
            os.close(self._lockfd)
            raise
        self.meta = Meta(*row[1:])
        self.store = BlockStore(str(path / DATA_FILE), self._db, self.meta)
        self.epochs = _snap.Epochs(self._db)
        self._bs = self.meta.block_size
        self._icache: dict[int, _Row] = {}
        #: live rows changed in place in batch mode and not yet written (see :meth:`_flush_rows`)
        self._dirty: set[int] = set()
        #: the dirty rows of inodes made in this batch: not in the table yet (a subset of _dirty)
        self._new: set[int] = set()
        #: inodes destroyed in this batch whose rows are ended at commit (see :meth:`_destroy`):
        #: ino -> (may have xattrs, has an inodes row)
        self._doomed: dict[int, tuple[bool, bool]] = {}
        #: (cached row, dirty, new) of each inode before the current call touched it, to undo it
        self._undo: dict[int, tuple[_Row | None, bool, bool]] | None = None
        #: all live xattrs of recently used inodes, name -> value
        self._xcache: dict[int, dict[bytes, bytes]] = {}
        #: the one block of small live files written by :meth:`write`'s fast path, with the
        #: cached row it was written with: valid while that very row object is in _icache
        #: (every change of a file's blocks replaces its row; a rollback restores both)
        self._small: dict[int, tuple[_Row, int]] = {}
        self._open: dict[int, int] = {}
        self._in_txn = False
        #: whether the current call in batch mode has its savepoint (see :meth:`_txn`)
        self._sp = False
        self._batch = False
        self._batch_open = False
        self._backup_counter = 0
        self.closed = False

    def close(self) -> None:
        """Free unlinked files still open, make everything durable, release the volume."""
        if self.closed:
            return
        self.set_batch(False)
        orphans = [ino for ino, n in self._open.items() if n > 0]
        self._open.clear()
        for ino in orphans:
            with self._txn():
                self._maybe_destroy(ino)
        self.store.sync()
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()
        self.store.close()
        fcntl.flock(self._lockfd, fcntl.LOCK_UN)
        os.close(self._lockfd)
        self.closed = True

    def __enter__(self) -> "Volume":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def block_size(self) -> int:
        return self._bs

    # ------------------------------------------------------------------ transactions

    @contextmanager
    def _txn(self, light: bool = False) -> Iterator[None]:
        """One call's changes; on any exception nothing of them remains.

        Normally its own SQLite transaction.  In batch mode (:meth:`set_batch`) a
        savepoint inside one transaction that :meth:`commit` ends: the call is
        still all-or-nothing, and blocks it frees stay unusable until that commit
        (a crash rolls back to the last commit, whose blocks must be untouched).

        ``light``: the call opens no savepoint unless it calls :meth:`_full` before
        its first change; without one it may make at most one change to the tables,
        as its last step that can fail (a single statement is all-or-nothing itself).
        """
        if self.closed:
            raise err(errno.EBADF, "volume is closed")
        assert not self._in_txn, "nested volume transaction"
        saved = self.meta.values()
        mark = self.store.pending_mark()
        doomed = len(self._doomed)
        self._in_txn = True
        self._undo = {}
        self._sp = False
        if self._batch:
            if not self._batch_open:
                self._db.execute("BEGIN IMMEDIATE")
                self._batch_open = True
            if not light:
                self._db.execute("SAVEPOINT call")
                self._sp = True
        else:
            self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            if self._batch:
                if self._sp:
                    self._db.execute("RELEASE call")  # meta and dirty rows are written at commit
            else:
                self.store.commit_frees()
                if self.meta.values() != saved:
                    self._write_meta()
                self._db.execute("COMMIT")
        except BaseException:
            if self._batch:
                if self._sp:
                    self._db.execute("ROLLBACK TO call")
                    self._db.execute("RELEASE call")
            else:
                self._db.execute("ROLLBACK")
            for c, v in zip(Meta.COLUMNS, saved):
                setattr(self.meta, c, v)
            self.store.abort_frees(mark)
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
            self.epochs = _snap.Epochs(self._db)
            raise
        finally:
            self._in_txn = False
            self._undo = None
            self._sp = False

    def _full(self) -> None:
        """In a ``light`` call (see :meth:`_txn`): it will make more than one change, so
        open its savepoint now, before the first."""
        if self._batch and not self._sp:
            self._db.execute("SAVEPOINT call")
            self._sp = True

    def _write_meta(self) -> None:
        cols = ", ".join(f"{c} = ?" for c in Meta.COLUMNS)
        self._db.execute(f"UPDATE meta SET {cols} WHERE id = 1", self.meta.values())

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
            self.store.commit_frees()
            self._write_meta()
            self._db.execute("COMMIT")
        except BaseException:
            # the batch is lost (a full disk, say): forget it in memory too
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            row = self._db.execute(f"SELECT {', '.join(Meta.COLUMNS)} FROM meta").fetchone()
            for c, v in zip(Meta.COLUMNS, row):
                setattr(self.meta, c, v)
            self.store.abort_frees()
            self._icache.clear()
            self._dirty.clear()
            self._new.clear()
            self._doomed.clear()
            self._xcache.clear()
            self.epochs = _snap.Epochs(self._db)
            raise
        return True

    def _flush_rows(self) -> None:
        """Write the live inode rows batch mode made or changed in place only in memory."""
        if self._new:
            self._db.executemany(f"INSERT INTO inodes (ino, death, {_ICOLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                                 [(i, LIVE, *self._icache[i]) for i in self._new])
            self._dirty -= self._new
            self._new.clear()
        if self._dirty:
            self._db.executemany(_UPDATE_ROW, [(*self._icache[i][1:], i, LIVE) for i in self._dirty])
            self._dirty.clear()

    def _flush_doomed(self, chunk: int = 500) -> None:
        """End the rows of the inodes destroyed in this batch, many inodes a statement."""
        doomed, self._doomed = self._doomed, {}
        for table, inos in (("blockmap", list(doomed)),
                            ("xattrs", [i for i, (x, _) in doomed.items() if x]),
                            ("inodes", [i for i, (_, r) in doomed.items() if r])):
            for k in range(0, len(inos), chunk):
                part = tuple(inos[k:k + chunk])
                self._kill(table, f"ino IN ({','.join('?' * len(part))})", part)

    # ------------------------------------------------------------------ rows

    def _view(self, snap: int | None) -> tuple[str, tuple]:
        if snap is None:
            return "death = ?", (LIVE,)
        if snap not in self.epochs.epochs:
            raise err(errno.ENOENT, f"no snapshot with id {snap}")
        return "death > ? AND birth <= ?", (snap, snap)

    def _row(self, ino: int, snap: int | None = None) -> _Row:
        if snap is None:
            row = self._icache.get(ino)
            if row is not None:
                return row
            if ino in self._doomed:
                raise err(errno.ENOENT, f"no inode {ino}")
        where, params = self._view(snap)
        r = self._db.execute(f"SELECT {_ICOLS} FROM inodes WHERE ino = ? AND {where}", (ino, *params)).fetchone()
        if r is None:
            raise err(errno.ENOENT, f"no inode {ino}" + (f" in snapshot {snap}" if snap else ""))
        row = _Row(*r)
        if snap is None:
            if len(self._icache) >= _ICACHE_MAX:
                self._icache = {i: self._icache[i] for i in self._dirty}
            self._icache[ino] = row
        return row

    def _attrs(self, ino: int, row: _Row) -> Attrs:
        return Attrs(ino, row.mode, row.nlink, row.uid, row.gid, row.rdev, row.size,
                     row.nblocks * (self._bs // 512), row.atime_ns, row.mtime_ns, row.ctime_ns, self._bs)

    def _set(self, ino: int, **changes) -> _Row:
        """Change the live inode row, copying it first if a snapshot can see it."""
        old = self._row(ino)
        new = old._replace(**changes)
        self._note(ino)
        if old.birth > self.epochs.latest:
            # in place; in batch mode only in memory until the commit (a row is
            # often changed many times in a batch: a directory by every create)
            if self._batch:
                self._dirty.add(ino)
            else:
                self._db.execute(_UPDATE_ROW, (*new[1:], ino, LIVE))
        else:
            E = self.meta.epoch
            new = new._replace(birth=E)
            self._db.execute("UPDATE inodes SET death = ? WHERE ino = ? AND death = ?", (E, ino, LIVE))
            self._db.execute(f"INSERT INTO inodes (ino, death, {_ICOLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                             (ino, LIVE, *new))
        self._icache[ino] = new
        return new

    def _note(self, ino: int) -> None:
        """Remember how the current call found ``ino``'s cached row, to undo the call."""
        u = self._undo
        if u is not None and ino not in u:
            u[ino] = (self._icache.get(ino), ino in self._dirty, ino in self._new)

    def _kill(self, table: str, where: str, params: tuple) -> None:
        """End the live rows of ``table`` matching ``where``: drop them, or keep them for snapshots.

        ``+death``/``+birth`` keep SQLite on the key's index (the ``*_dead``
        indexes hold no live rows)."""
        L, E = self.epochs.latest, self.meta.epoch
        if table == "blockmap":
            self.store.free_later([r[0] for r in self._db.execute(
                f"DELETE FROM blockmap WHERE {where} AND +death = ? AND +birth > ? RETURNING block",
                (*params, LIVE, L)).fetchall()])
        else:
            self._db.execute(f"DELETE FROM {table} WHERE {where} AND +death = ? AND +birth > ?", (*params, LIVE, L))
        if L:  # without snapshots every row was born after L = 0: nothing to keep
            self._db.execute(f"UPDATE {table} SET death = ? WHERE {where} AND +death = ?", (E, *params, LIVE))

    def _dirent(self, parent: int, name: bytes, snap: int | None = None) -> int | None:
        if snap is None:
            r = self._db.execute(_LIVE_DIRENT, (parent, name, LIVE)).fetchone()
            return None if r is None else r[0]
        where, params = self._view(snap)
        r = self._db.execute(f"SELECT ino FROM dirents WHERE parent = ? AND name = ? AND {where}",
                             (parent, name, *params)).fetchone()
        return None if r is None else r[0]

    def _dir_row(self, ino: int, snap: int | None = None) -> _Row:
        row = self._row(ino, snap)
        if not stat.S_ISDIR(row.mode):
            raise err(errno.ENOTDIR, f"inode {ino} is not a directory")
        return row

    def _parent_of(self, ino: int, snap: int | None = None) -> int:
        if ino == ROOT_INO:
            return ROOT_INO
        where, params = self._view(snap)
        r = self._db.execute(f"SELECT parent FROM dirents WHERE ino = ? AND {where}", (ino, *params)).fetchone()
        if r is None:
            raise err(errno.ENOENT, f"directory {ino} has no parent")
        return r[0]

    def _add_dirent(self, parent: int, name: bytes, ino: int) -> None:
        cookie = self.meta.next_cookie
        self.meta.next_cookie += 1
        self._db.execute("INSERT INTO dirents (parent, name, death, birth, ino, cookie) VALUES (?,?,?,?,?,?)",
                         (parent, name, LIVE, self.meta.epoch, ino, cookie))

    def _take_dirent(self, parent: int, name: bytes) -> int | None:
        """End the live entry ``name`` in ``parent`` as :meth:`_del_dirent` does, in one
        statement instead of a look-up and a removal; its inode, or None if there is none."""
        L = self.epochs.latest
        r = self._db.execute("DELETE FROM dirents WHERE parent = ? AND name = ? AND death = ? AND +birth > ?"
                             " RETURNING ino", (parent, name, LIVE, L)).fetchall()
        if not r and L:
            r = self._db.execute("UPDATE dirents SET death = ? WHERE parent = ? AND name = ? AND death = ?"
                                 " RETURNING ino", (self.meta.epoch, parent, name, LIVE)).fetchall()
        return r[0][0] if r else None

    def _del_dirent(self, parent: int, name: bytes) -> None:
        self._kill("dirents", "parent = ? AND name = ?", (parent, name))

    def _touch_dir(self, ino: int, now: int, dnlink: int = 0) -> None:
        row = self._row(ino)
        self._set(ino, mtime_ns=now, ctime_ns=now, nlink=row.nlink + dnlink)

    def _destroy(self, ino: int) -> None:
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
            self._kill("blockmap", "ino = ?", (ino,))
            if xattrs:
                self._kill("xattrs", "ino = ?", (ino,))
            if in_table:
                self._kill("inodes", "ino = ?", (ino,))
        self._icache.pop(ino, None)
        self._small.pop(ino, None)
        self._dirty.discard(ino)
        self.meta.live_inodes -= 1

    def _maybe_destroy(self, ino: int) -> None:
        try:
            row = self._row(ino)
        except SnapfsError:
            return
        if row.nlink == 0 and not self._open.get(ino):
            self._destroy(ino)

    # ------------------------------------------------------------------ reading

    def getattr(self, ino: int, snap: int | None = None) -> Attrs:
        return self._attrs(ino, self._row(ino, snap))

    def lookup(self, parent: int, name: bytes | str, snap: int | None = None) -> Attrs:
        """The attributes of ``name`` in directory ``parent`` (ENOENT if absent)."""
        a = self.find(parent, name, snap)
        if a is None:
            raise err(errno.ENOENT, f"no entry {_bname(name)!r} in directory {parent}")
        return a

    def find(self, parent: int, name: bytes | str, snap: int | None = None) -> Attrs | None:
        """:meth:`lookup`, but None for a name that does not exist (no exception)."""
        name = _bname(name)
        self._dir_row(parent, snap)
        if name == b".":
            ino = parent
        elif name == b"..":
            ino = self._parent_of(parent, snap)
        else:
            if len(name) > NAME_MAX:
                raise err(errno.ENAMETOOLONG, f"file name longer than {NAME_MAX} bytes")
            ino = self._dirent(parent, name, snap)
            if ino is None:
                return None
        return self._attrs(ino, self._row(ino, snap))

    def readdir(self, ino: int, offset: int = 0, snap: int | None = None,
                limit: int | None = None) -> list[DirEntry]:
        """Entries of directory ``ino`` after ``offset`` (0: from the start), in a stable order.

        Offsets are per-entry cookies, so entries added or removed meanwhile
        never make a continued listing skip or repeat the others.  '.' and '..'
        are not included.
        """
        self._dir_row(ino, snap)
        if self._new and snap is None:
            self._flush_rows()  # the join below needs the rows made in this batch
        where, params = self._view(snap)
        dv, iv = "d." + where.replace(" AND ", " AND d."), "i." + where.replace(" AND ", " AND i.")
        sql = (f"SELECT d.name, d.cookie, d.ino, {', '.join('i.' + f for f in _Row._fields)}"
               f" FROM dirents d JOIN inodes i ON i.ino = d.ino AND {iv}"
               f" WHERE d.parent = ? AND {dv} AND d.cookie > ? ORDER BY d.cookie")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        out = []
        cache = self._icache if snap is None else {}
        for r in self._db.execute(sql, (*params, ino, *params, offset)):
            row = cache.get(r[2]) or _Row(*r[3:])
            out.append(DirEntry(r[0], self._attrs(r[2], row), r[1]))
        return out

    def readlink(self, ino: int, snap: int | None = None) -> bytes:
        row = self._row(ino, snap)
        if not stat.S_ISLNK(row.mode):
            raise err(errno.EINVAL, f"inode {ino} is not a symbolic link")
        return row.target

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
        run_src = run_dst = run_len = 0
        for idx, block in self._db.execute(
                f"SELECT idx, block FROM blockmap WHERE ino = ? AND idx >= ? AND idx <= ? AND {where}"
                " ORDER BY idx", (ino, first, last, *params)):
            lo = max(offset, idx * bs)
            hi = min(end, (idx + 1) * bs)
            src = block * bs + lo - idx * bs
            if run_len and src == run_src + run_len and lo - offset == run_dst + run_len:
                run_len += hi - lo
                continue
            if run_len:
                self.store.read_at(run_src, view[run_dst:run_dst + run_len])
            run_src, run_dst, run_len = src, lo - offset, hi - lo
        if run_len:
            self.store.read_at(run_src, view[run_dst:run_dst + run_len])
        return out

    def _xattrs(self, ino: int) -> dict[bytes, bytes]:
        """All live xattrs of ``ino`` (cached; callers change the dict with the table)."""
        d = self._xcache.get(ino)
        if d is None:
            if len(self._xcache) >= _ICACHE_MAX:
                self._xcache.clear()
            d = self._xcache[ino] = dict(self._db.execute(
                "SELECT name, value FROM xattrs WHERE ino = ? AND death = ?", (ino, LIVE)))
        return d

    def xattr(self, ino: int, name: bytes | str, snap: int | None = None) -> bytes | None:
        """The value of xattr ``name`` or None: :meth:`getxattr` without the ENODATA exception."""
        if snap is None:
            name = _bname(name)
            xattr_suffix(name)
            self._row(ino)
            return self._xattrs(ino).get(name)
        try:
            return self.getxattr(ino, name, snap)
        except SnapfsError as e:
            if e.errno == errno.ENODATA:
                return None
            raise

    def getxattr(self, ino: int, name: bytes | str, snap: int | None = None) -> bytes:
        """The value of xattr ``name``: ENODATA if it is not set, EOPNOTSUPP (or ERANGE,
        EINVAL) for a name :meth:`setxattr` would refuse."""
        name = _bname(name)
        xattr_suffix(name)
        self._row(ino, snap)
        if snap is None:
            v = self._xattrs(ino).get(name)
            if v is None:
                raise err(errno.ENODATA, f"no extended attribute {name!r} on inode {ino}")
            return v
        where, params = self._view(snap)
        r = self._db.execute(f"SELECT value FROM xattrs WHERE ino = ? AND name = ? AND {where}",
                             (ino, name, *params)).fetchone()
        if r is None:
            raise err(errno.ENODATA, f"no extended attribute {name!r} on inode {ino}")
        return r[0]

    def listxattr(self, ino: int, snap: int | None = None) -> list[bytes]:
        self._row(ino, snap)
        if snap is None:
            return sorted(self._xattrs(ino))
        where, params = self._view(snap)
        return [r[0] for r in self._db.execute(
            f"SELECT name FROM xattrs WHERE ino = ? AND {where} ORDER BY name", (ino, *params))]

    # ------------------------------------------------------------------ making and removing names

    def _make(self, parent: int, name: bytes | str, mode: int, uid: int, gid: int,
              rdev: int = 0, target: bytes | None = None, xattrs: dict | None = None) -> Attrs:
        name = _bname(name)
        _check_new_name(name)
        with self._txn(light=True):
            prow = self._dir_row(parent)
            if xattrs or prow.birth <= self.epochs.latest or self.meta.live_inodes >= self.meta.max_inodes:
                self._full()
            ino = self.meta.next_ino
            try:  # the key of the live entry: a name in use fails here (saves a query first)
                self._add_dirent(parent, name, ino)
            except sqlite3.IntegrityError:
                raise err(errno.EEXIST, f"{name!r} already exists in directory {parent}") from None
            now = time.time_ns()
            row = self._new_inode(ino, prow, mode, uid, gid, rdev, target, xattrs, now)
            self._touch_dir(parent, now, 1 if stat.S_ISDIR(mode) else 0)
            return self._attrs(ino, row)

    def _new_inode(self, ino: int, prow: _Row, mode: int, uid: int, gid: int, rdev: int,
                   target: bytes | None, xattrs: dict | None, now: int) -> _Row:
        """Make inode ``ino`` (``meta.next_ino``; its entry is the caller's) in a directory
        whose row is ``prow``, with ``xattrs``; ENOSPC when no inode is free."""
        if self.meta.live_inodes >= self.meta.max_inodes:
            raise NoSpace(f"no free inodes on volume (limit {self.meta.max_inodes})")
        isdir = stat.S_ISDIR(mode)
        if prow.mode & stat.S_ISGID:
            gid = prow.gid
            if isdir:
                mode |= stat.S_ISGID
        self.meta.next_ino += 1
        self.meta.live_inodes += 1
        row = _Row(self.meta.epoch, mode, 2 if isdir else 1, uid, gid, rdev,
                   len(target) if target is not None else 0, 0, now, now, now, target)
        self._note(ino)
        if self._batch:  # written with the batch's other rows at the commit
            self._new.add(ino)
            self._dirty.add(ino)
        else:
            self._db.execute(f"INSERT INTO inodes (ino, death, {_ICOLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                             (ino, LIVE, *row))
        self._icache[ino] = row
        xd = {_bname(k): bytes(v) for k, v in (xattrs or {}).items()}
        for xname, xvalue in xd.items():
            self._db.execute("INSERT INTO xattrs (ino, name, death, birth, value) VALUES (?,?,?,?,?)",
                             (ino, xname, LIVE, self.meta.epoch, xvalue))
        self._xcache[ino] = xd
        return row

    def mknod(self, parent: int, name: bytes | str, mode: int, rdev: int = 0,
              uid: int = 0, gid: int = 0, xattrs: dict | None = None) -> Attrs:
        """A regular file, device, fifo or socket (``mode`` carries the type; 0 type = regular).

        ``xattrs`` are set in the same transaction (inherited ACLs).
        """
        if stat.S_IFMT(mode) == 0:
            mode |= stat.S_IFREG
        if stat.S_IFMT(mode) not in (stat.S_IFREG, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK):
            raise err(errno.EINVAL, f"mknod cannot make file type {stat.S_IFMT(mode):o}")
        return self._make(parent, name, mode, uid, gid, rdev, xattrs=xattrs)

    def create_file(self, parent: int, name: bytes | str, mode: int = 0o644, uid: int = 0, gid: int = 0,
                    xattrs: dict | None = None) -> Attrs:
        """A new empty regular file (FUSE's create; ``Volume.create`` makes volumes)."""
        return self.mknod(parent, name, stat.S_IFREG | (mode & 0o7777), 0, uid, gid, xattrs)

    def mkdir(self, parent: int, name: bytes | str, mode: int = 0o755, uid: int = 0, gid: int = 0,
              xattrs: dict | None = None) -> Attrs:
        return self._make(parent, name, stat.S_IFDIR | (mode & 0o7777), uid, gid, xattrs=xattrs)

    def symlink(self, parent: int, name: bytes | str, target: bytes | str, uid: int = 0, gid: int = 0) -> Attrs:
        target = _bname(target)
        if not target:
            raise err(errno.ENOENT, "empty symbolic link target")
        if len(target) >= PATH_MAX:
            raise err(errno.ENAMETOOLONG, f"symbolic link target longer than {PATH_MAX - 1} bytes")
        return self._make(parent, name, stat.S_IFLNK | 0o777, uid, gid, target=target)

    def link(self, ino: int, new_parent: int, new_name: bytes | str) -> Attrs:
        """A new hard link to ``ino`` (not a directory)."""
        new_name = _bname(new_name)
        _check_new_name(new_name)
        with self._txn():
            row = self._row(ino)
            if stat.S_ISDIR(row.mode):
                raise err(errno.EPERM, "hard links to directories are not allowed")
            if row.nlink == 0:
                raise err(errno.ENOENT, f"inode {ino} has been removed")
            self._dir_row(new_parent)
            if self._dirent(new_parent, new_name) is not None:
                raise err(errno.EEXIST, f"{new_name!r} already exists in directory {new_parent}")
            now = time.time_ns()
            self._add_dirent(new_parent, new_name, ino)
            row = self._set(ino, nlink=row.nlink + 1, ctime_ns=now)
            self._touch_dir(new_parent, now)
            return self._attrs(ino, row)

    def _drop_link(self, ino: int, now: int) -> None:
        row = self._row(ino)
        if stat.S_ISDIR(row.mode) or (row.nlink <= 1 and not self._open.get(ino)):
            self._destroy(ino)  # its last name: the row goes (snapshots keep theirs), no need to update it
        else:
            self._set(ino, nlink=row.nlink - 1, ctime_ns=now)
            self._maybe_destroy(ino)

    def _check_empty(self, ino: int) -> None:
        if self._db.execute("SELECT 1 FROM dirents WHERE parent = ? AND death = ? LIMIT 1",
                            (ino, LIVE)).fetchone():
            raise err(errno.ENOTEMPTY, f"directory {ino} is not empty")

    def unlink(self, parent: int, name: bytes | str) -> None:
        """Remove a name of a non-directory; the file goes when its last link and opener do."""
        name = _bname(name)
        with self._txn():
            self._dir_row(parent)
            ino = self._take_dirent(parent, name)
            if ino is None:
                raise err(errno.ENOENT, f"no entry {name!r} in directory {parent}")
            if stat.S_ISDIR(self._row(ino).mode):
                raise err(errno.EISDIR, f"{name!r} is a directory (use rmdir)")  # the call rolls back
            now = time.time_ns()
            self._drop_link(ino, now)
            self._touch_dir(parent, now)

    def rmdir(self, parent: int, name: bytes | str) -> None:
        name = _bname(name)
        if name == b".":
            raise err(errno.EINVAL, "cannot remove '.'")
        if name == b"..":
            raise err(errno.ENOTEMPTY, "cannot remove '..'")
        with self._txn():
            self._dir_row(parent)
            ino = self._dirent(parent, name)
            if ino is None:
                raise err(errno.ENOENT, f"no entry {name!r} in directory {parent}")
            self._dir_row(ino)
            self._check_empty(ino)
            now = time.time_ns()
            self._del_dirent(parent, name)
            self._drop_link(ino, now)
            self._touch_dir(parent, now, -1)

    def _is_ancestor(self, anc: int, ino: int) -> bool:
        while True:
            if ino == anc:
                return True
            if ino == ROOT_INO:
                return False
            ino = self._parent_of(ino)

    def rename(self, old_parent: int, old_name: bytes | str, new_parent: int, new_name: bytes | str,
               flags: int = 0, uid: int = 0, gid: int = 0, xattrs: dict | None = None) -> None:
        """rename(2)/renameat2(2) with RENAME_NOREPLACE, RENAME_EXCHANGE or RENAME_WHITEOUT.

        With RENAME_WHITEOUT (which may go with RENAME_NOREPLACE) the old name is left
        to a new whiteout, a character device 0/0 with mode 0 owned by ``uid``/``gid``
        with ``xattrs`` (inherited ACLs), in the same transaction, as ext4 does (which,
        since Linux 5.8, asks no privilege for it)."""
        old_name, new_name = _bname(old_name), _bname(new_name)
        if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT) or (
                flags & RENAME_EXCHANGE and flags & (RENAME_NOREPLACE | RENAME_WHITEOUT)):
            raise err(errno.EINVAL, f"unsupported rename flags {flags:#x}")
        for n in (old_name, new_name):
            if n in (b".", b"..") or not n:
                raise err(errno.EBUSY if n else errno.ENOENT, f"cannot rename {n!r}")
        _check_new_name(new_name)
        with self._txn():
            self._dir_row(old_parent)
            self._dir_row(new_parent)
            src = self._dirent(old_parent, old_name)
            if src is None:
                raise err(errno.ENOENT, f"no entry {old_name!r} in directory {old_parent}")
            dst = self._dirent(new_parent, new_name)
            srow = self._row(src)
            sdir = stat.S_ISDIR(srow.mode)
            now = time.time_ns()
            if flags & RENAME_EXCHANGE:
                if dst is None:
                    raise err(errno.ENOENT, f"no entry {new_name!r} in directory {new_parent}")
                if src == dst:
                    return
                ddir = stat.S_ISDIR(self._row(dst).mode)
                if (sdir and self._is_ancestor(src, new_parent)) or (ddir and self._is_ancestor(dst, old_parent)):
                    raise err(errno.EINVAL, "cannot move a directory into itself")
                self._del_dirent(old_parent, old_name)
                self._del_dirent(new_parent, new_name)
                self._add_dirent(new_parent, new_name, src)
                self._add_dirent(old_parent, old_name, dst)
                self._set(src, ctime_ns=now)
                self._set(dst, ctime_ns=now)
                if old_parent != new_parent:
                    self._touch_dir(old_parent, now, int(ddir) - int(sdir))
                    self._touch_dir(new_parent, now, int(sdir) - int(ddir))
                else:
                    self._touch_dir(old_parent, now)
                return
            if dst is not None:
                if flags & RENAME_NOREPLACE:
                    raise err(errno.EEXIST, f"{new_name!r} already exists in directory {new_parent}")
                if src == dst:
                    return
                drow = self._row(dst)
                if sdir and not stat.S_ISDIR(drow.mode):
                    raise err(errno.ENOTDIR, f"cannot rename a directory over non-directory {new_name!r}")
                if not sdir and stat.S_ISDIR(drow.mode):
                    raise err(errno.EISDIR, f"cannot rename a non-directory over directory {new_name!r}")
                if stat.S_ISDIR(drow.mode):
                    self._check_empty(dst)
            if sdir and self._is_ancestor(src, new_parent):
                raise err(errno.EINVAL, "cannot move a directory into itself")
            if dst is not None:
                self._del_dirent(new_parent, new_name)
                self._drop_link(dst, now)
                if stat.S_ISDIR(drow.mode):
                    self._touch_dir(new_parent, now, -1)
            self._del_dirent(old_parent, old_name)
            self._add_dirent(new_parent, new_name, src)
            self._set(src, ctime_ns=now)
            if flags & RENAME_WHITEOUT:
                wino = self.meta.next_ino
                self._add_dirent(old_parent, old_name, wino)
                self._new_inode(wino, self._row(old_parent), WHITEOUT_MODE, uid, gid, 0, None, xattrs, now)
            if old_parent != new_parent:
                self._touch_dir(old_parent, now, -1 if sdir else 0)
                self._touch_dir(new_parent, now, 1 if sdir else 0)
            else:
                self._touch_dir(old_parent, now)

    # ------------------------------------------------------------------ attributes and data

    def setattr(self, ino: int, *, mode: int | None = None, uid: int | None = None, gid: int | None = None,
                size: int | None = None, atime_ns: int | None = None, mtime_ns: int | None = None,
                ctime_ns: int | None = None) -> Attrs:
        """chmod/chown/truncate/utimens in one call; ctime becomes now unless given."""
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
            return self._attrs(ino, self._set(ino, **ch))

    def truncate(self, ino: int, size: int) -> Attrs:
        return self.setattr(ino, size=size)

    def _zero_past_eof(self, ino: int, row: _Row, size: int) -> None:
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

    def _truncate(self, ino: int, row: _Row, size: int) -> int:
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
        E = self.meta.epoch
        if old is None:
            self._db.execute("INSERT INTO blockmap (ino, idx, death, birth, block) VALUES (?,?,?,?,?)",
                             (ino, idx, LIVE, E, block))
        elif old[1] > self.epochs.latest:
            self._db.execute("UPDATE blockmap SET block = ?, birth = ? WHERE ino = ? AND idx = ? AND death = ?",
                             (block, E, ino, idx, LIVE))
            self.store.free_later((old[0],))
        else:
            self._db.execute("UPDATE blockmap SET death = ? WHERE ino = ? AND idx = ? AND death = ?",
                             (E, ino, idx, LIVE))
            self._db.execute("INSERT INTO blockmap (ino, idx, death, birth, block) VALUES (?,?,?,?,?)",
                             (ino, idx, LIVE, E, block))
        return block

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
                    and row.birth > self.epochs.latest:
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
                    if len(self._small) >= _ICACHE_MAX:
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
            added = 0
            for idx in range(first, last + 1):
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
                self._put_block(ino, idx, old, buf)
                if old is None:
                    added += 1
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
        self.commit()
        self.store.sync()
        self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def setxattr(self, ino: int, name: bytes | str, value: bytes, flags: int = 0) -> None:
        """Set an extended attribute, with ext4's rules: names in the user, trusted and
        security namespaces or a POSIX ACL (else EOPNOTSUPP), at most 255 bytes (ERANGE);
        a value at most 64 KiB (E2BIG); and all of the inode's xattrs in one block of
        the volume, at most 64 KiB, laid out as ext4's (ENOSPC, see :func:`xattr_space`)."""
        name = _bname(name)
        value = bytes(value)
        if len(value) > XATTR_SIZE_MAX and 0 < len(name) <= XATTR_NAME_MAX:  # before the namespace, as Linux
            raise err(errno.E2BIG, f"extended attribute value larger than {XATTR_SIZE_MAX} bytes")
        xattr_suffix(name)
        with self._txn():
            self._row(ino)
            d = self._xattrs(ino)
            cur = name in d
            if cur and flags & XATTR_CREATE:
                raise err(errno.EEXIST, f"extended attribute {name!r} exists")
            if not cur and flags & XATTR_REPLACE:
                raise err(errno.ENODATA, f"no extended attribute {name!r} on inode {ino}")
            room = min(self._bs, XATTR_BLOCK_MAX)
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
        name = _bname(name)
        xattr_suffix(name)
        with self._txn():
            self._row(ino)
            d = self._xattrs(ino)
            if name not in d:
                raise err(errno.ENODATA, f"no extended attribute {name!r} on inode {ino}")
            self._kill("xattrs", "ino = ? AND name = ?", (ino, name))
            del d[name]
            self._set(ino, ctime_ns=time.time_ns())

    # ------------------------------------------------------------------ volume figures

    def statfs(self) -> StatFS:
        m = self.meta
        return StatFS(self._bs, m.total_blocks, max(0, m.total_blocks - m.used_blocks),
                      m.max_inodes, max(0, m.max_inodes - m.live_inodes), NAME_MAX)

    def space(self) -> SpaceInfo:
        m, bs = self.meta, self._bs
        snap = _snap.snapshot_blocks(self._db)
        return SpaceInfo(m.total_blocks * bs, m.used_blocks * bs, max(0, m.total_blocks - m.used_blocks) * bs,
                         (m.used_blocks - snap) * bs, snap * bs, m.live_inodes, m.max_inodes)

    # ------------------------------------------------------------------ snapshots

    def _snapshot_epoch(self, name: str) -> int:
        r = self._db.execute("SELECT epoch FROM snapshots WHERE name = ?", (name,)).fetchone()
        if r is None:
            raise err(errno.ENOENT, f"no snapshot named {name!r} on volume {self.meta.name}")
        return r[0]

    @staticmethod
    def _check_snapshot_name(name: str) -> None:
        if not name or "/" in name or "\0" in name or name in (".", "..") or len(name.encode()) > NAME_MAX:
            raise err(errno.EINVAL, f"invalid snapshot name {name!r}")

    def snapshot_create(self, name: str) -> SnapshotInfo:
        """Freeze the live tree as ``name``: O(1), it records the epoch and starts a new one."""
        self._check_snapshot_name(name)
        self.commit()  # rows changed only in memory must be in the table the snapshot freezes
        with self._txn():
            s = self.meta.epoch
            now = time.time_ns()
            try:
                self._db.execute("INSERT INTO snapshots (epoch, name, created_ns) VALUES (?,?,?)", (s, name, now))
            except sqlite3.IntegrityError:
                raise err(errno.EEXIST, f"snapshot {name!r} already exists") from None
            self.meta.epoch = s + 1
            self.epochs.add(s)
        return SnapshotInfo(s, name, now, (), 0)

    def snapshot_id(self, name: str) -> int:
        """The id (epoch) of snapshot ``name``: pass it as ``snap`` to the reading calls."""
        return self._snapshot_epoch(name)

    def snapshot_info(self, name: str) -> SnapshotInfo:
        s = self._snapshot_epoch(name)
        return self._info(s)

    def _info(self, s: int) -> SnapshotInfo:
        name, created = self._db.execute("SELECT name, created_ns FROM snapshots WHERE epoch = ?", (s,)).fetchone()
        holders = tuple(r[0] for r in self._db.execute(
            "SELECT holder FROM holds WHERE epoch = ? ORDER BY holder", (s,)))
        prev, nxt = self.epochs.neighbours(s, self.meta.epoch)
        excl = _snap.exclusive_blocks(self._db, prev, s, nxt) * self._bs
        return SnapshotInfo(s, name, created, holders, excl)

    def snapshot_names(self) -> list[tuple[int, str]]:
        """(id, name) of every snapshot, oldest first: cheap, without space figures."""
        return list(self._db.execute("SELECT epoch, name FROM snapshots ORDER BY epoch"))

    def snapshot_list(self) -> list[SnapshotInfo]:
        """Snapshots oldest first, with the space each alone holds."""
        return [self._info(s) for s in list(self.epochs.epochs)]

    def snapshot_delete(self, name: str) -> int:
        """Delete ``name`` and free what only it held; returns the bytes freed.  EBUSY if held."""
        with self._txn():
            s = self._snapshot_epoch(name)
            holders = [r[0] for r in self._db.execute("SELECT holder FROM holds WHERE epoch = ?", (s,))]
            if holders:
                raise SnapshotBusy(f"snapshot {name!r} is busy: held by {', '.join(sorted(holders))}")
            prev, nxt = self.epochs.neighbours(s, self.meta.epoch)
            freed = _snap.reclaim(self._db, self.store, prev, s, nxt)
            self._db.execute("DELETE FROM snapshots WHERE epoch = ?", (s,))
            self.epochs.remove(s)
        return freed * self._bs

    def snapshot_rename(self, old: str, new: str) -> None:
        self._check_snapshot_name(new)
        with self._txn():
            s = self._snapshot_epoch(old)
            try:
                self._db.execute("UPDATE snapshots SET name = ? WHERE epoch = ?", (new, s))
            except sqlite3.IntegrityError:
                raise err(errno.EEXIST, f"snapshot {new!r} already exists") from None

    def snapshot_hold(self, name: str, holder: str) -> None:
        """Mark ``name`` busy for ``holder`` (e.g. a backup); it cannot be deleted until released."""
        with self._txn():
            s = self._snapshot_epoch(name)
            self._db.execute("INSERT OR IGNORE INTO holds (epoch, holder) VALUES (?, ?)", (s, holder))

    def snapshot_release(self, name: str, holder: str) -> None:
        with self._txn():
            s = self._snapshot_epoch(name)
            if not self._db.execute("DELETE FROM holds WHERE epoch = ? AND holder = ?", (s, holder)).rowcount:
                raise err(errno.ENOENT, f"snapshot {name!r} is not held by {holder!r}")

    def next_backup_snapshot_name(self) -> str:
        """``snapshot_for_backup.N`` with N from a counter starting at 0 on each open, skipping names in use."""
        while True:
            name = f"{BACKUP_SNAPSHOT_PREFIX}{self._backup_counter}"
            self._backup_counter += 1
            if not self._db.execute("SELECT 1 FROM snapshots WHERE name = ?", (name,)).fetchone():
                return name

    # ------------------------------------------------------------------ for fsck and tests

    @property
    def db(self) -> sqlite3.Connection:
        """The metadata connection (fsck and tests only; callers must not write outside :meth:`_txn`)."""
        return self._db
