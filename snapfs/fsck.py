"""fsck: check every invariant of a volume, and repair what can be repaired safely.

The passes, in the order they run (each repair a transaction of its own):

* counters: snapshot epochs lie below the current epoch; the next inode
  number and the next readdir cookie lie above every one in use (numbers are
  never reused).  Repair raises the counter.
* extents: every ``blockmap`` row maps 1 to ``MAX_SPAN`` blocks.  Repair
  splits a longer row into rows of ``MAX_SPAN`` (same blocks, same epochs: no
  view changes) and drops a row that maps none.
* block references: every block a row references lies inside the volume, below
  the high-water mark, off the free list, and is referenced once.  Repair: a
  live row pointing outside the volume is dropped (the block reads as a hole,
  as e2fsck clears an illegal block); the high-water mark is raised over
  referenced blocks; referenced blocks leave the free list; a block referenced
  twice is copied so each row has its own (e2fsck's pass 1B), the oldest row
  keeping the original; free-list entries beyond the mark are dropped.
* epochs: every row has ``birth <= epoch`` and ``birth < death``, the versions
  of one key do not overlap, and a dead row died at or before the current
  epoch and is seen by some snapshot.  Repair: a live row born in the future is
  born now, a dead row that died in the future died now (no view changes);
  dead rows no view can see are dropped and their blocks freed.  Overlapping
  versions are history: reported only.
* the live tree, as e2fsck's passes 2 to 4: a root directory that is missing
  (or not a directory) is made anew, and the entries naming it as their
  parent fill it again.  Entries must sit in a directory, name an existing
  inode other than the root, carry a valid name (bytes; in the root not
  ``.snapshot``, which the mount shows instead), and a directory keeps one
  name, its oldest.  Bad entries are removed.  Then every inode must be
  reachable from the root: the top of each disconnected directory tree, and
  each disconnected file that still counts links, is reconnected in
  ``/lost+found`` as ``#INO``
  (``..`` follows, since a directory's parent is the entry naming it); a
  disconnected file with no links is an orphan a crash left behind and is
  freed.  ``/lost+found`` (mode 0700, root's, as mke2fs makes it) is created
  when first needed; a non-directory of that name is moved into it.  Then
  link counts (directories: 2 + subdirectories), block counts, sizes (a file
  mapping blocks past its size is extended over them, as e2fsck does), block
  maps (the extents one view sees of a file do not overlap: reported only), xattrs and
  large streams of missing inodes or of non-files, and the live inode counter.
* short names: every live entry whose name does not fit 8.3 has its DOS
  8.3 name (:mod:`snapfs.shortnames`); repair gives it one.
* every snapshot's tree: the same checks, reported only; an unlinked file a
  snapshot caught while it was open is not damage there.
* free space: every block below the high-water mark is referenced or free
  (leaked blocks are freed); the used-blocks counter matches.
* the filer's objects: the volume's identity, qtrees, junctions and client
  I/O restrictions (:mod:`snapfs.fsck_filer`).
* the folder (:func:`fsck_path` only): it is 0700 and its files 0600
  (:mod:`snapfs.privacy`); wider modes are tightened.

Repairs touch the live tree and the allocation state only: snapshots are
read-only history.  An inode only a snapshot still has is not disconnected.
Without ``repair`` nothing is written (the connection is ``query_only``).
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

from snapdump.snapfs_names import SNAPDIR_NAME, VOLUME_XATTR

from . import fsck_filer, fsck_luns, privacy, shortnames
from .errors import SnapfsError, VolumeBusy
from .schema import DEAD, LIVE, MAX_SPAN, VERSIONED
from .windows.dosname import is_short
from .volume import DB_FILE, NAME_MAX, ROOT_INO, Volume

#: Exit statuses of fsck(8) and e2fsck(8), which ``snapfs fsck`` returns.
FSCK_OK = 0
FSCK_NONDESTRUCT = 1  # errors corrected
FSCK_UNCORRECTED = 4  # errors left uncorrected
FSCK_ERROR = 8  # operational error
LOST_FOUND = b"lost+found"
LOST_FOUND_MODE = 0o700


@dataclass
class FsckReport:
    """What fsck found (``problems``) and which of those it repaired (``repaired``)."""

    problems: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.problems

    @property
    def uncorrected(self) -> list[str]:
        """The problems still there."""
        done = Counter(self.repaired)
        out = []
        for p in self.problems:
            if done[p]:
                done[p] -= 1
            else:
                out.append(p)
        return out

    @property
    def status(self) -> int:
        """e2fsck's exit status: FSCK_OK, FSCK_NONDESTRUCT (all repaired) or FSCK_UNCORRECTED."""
        if self.clean:
            return FSCK_OK
        return FSCK_UNCORRECTED if self.uncorrected else FSCK_NONDESTRUCT


def fsck_path(voldir: str | os.PathLike, repair: bool = False) -> FsckReport:
    """Open the volume in ``voldir`` (VolumeBusy if it is mounted or open elsewhere) and check it."""
    p = Path(voldir)
    if not (p / DB_FILE).is_file():
        try:
            vol = os.fsdecode(os.getxattr(p, VOLUME_XATTR))
        except OSError:
            pass
        else:
            raise VolumeBusy(f"{p} is where volume {vol} is mounted; unmount it, then fsck {vol}")
    with Volume.open(p) as vol:
        rep = fsck(vol, repair)
        _check_modes(p, rep, repair)
        return rep


def _check_modes(voldir: Path, rep: FsckReport, repair: bool) -> None:
    """The folder's and its files' modes (:mod:`snapfs.privacy`): wider ones reported, tightened on repair."""
    found = privacy.wide_modes(voldir)
    msgs = privacy.describe(found)
    rep.problems.extend(msgs)
    if repair and msgs:
        privacy.tighten(voldir)
        rep.repaired.extend(msgs)


def fsck(vol: Volume, repair: bool = False) -> FsckReport:
    """Check ``vol`` (no files may be open); with ``repair``, fix what is safe to fix.

    The passes of :data:`PASSES` run in order, as ``_Fsck.check_<name>``."""
    vol.commit()  # in batch mode the newest rows live only in memory until then
    ck = _Fsck(vol, repair)
    vol.tables.forget_rows()
    if not repair:
        vol.db.execute("PRAGMA query_only = ON")
    try:
        ck.check()
    finally:
        if not repair:
            vol.db.execute("PRAGMA query_only = OFF")
    return ck.rep


#: fsck's passes, in the order they run (see the module's description of each).
PASSES = ("counters", "extents", "block_refs", "epochs", "live_tree", "short_names", "snapshot_trees", "free_space", "filer")


class _Ino(NamedTuple):
    mode: int
    nlink: int
    size: int
    nblocks: int


class _Entry(NamedTuple):
    parent: int
    name: bytes
    ino: int


@dataclass
class _Shape:
    """One tree as a walk from the root finds it: what is kept, what must go, what hangs loose."""

    kept: list[_Entry] = field(default_factory=list)
    dropped: list[tuple[_Entry, str]] = field(default_factory=list)
    reached: set[int] = field(default_factory=set)
    dirs: set[int] = field(default_factory=set)
    dir_tops: list[int] = field(default_factory=list)  # tops of disconnected directory trees
    file_tops: list[int] = field(default_factory=list)  # disconnected non-directories with links
    unlinked: list[int] = field(default_factory=list)  # disconnected non-directories without links


def _isdir(mode: int) -> bool:
    return stat.S_ISDIR(mode)


def _bad_name(e: _Entry, live: bool) -> str | None:
    n = e.name
    if type(n) is bytes and 0 < len(n) <= NAME_MAX and b"/" not in n and b"\0" not in n and n[0] != 0x2E:
        return None  # the common case, quickly: no name starting with '.' is special
    if not isinstance(n, bytes):
        return "has a name stored as text, not bytes"
    if not n or b"/" in n or b"\0" in n or n in (b".", b".."):
        return "has an invalid name"
    if len(n) > NAME_MAX:
        return f"has a name longer than {NAME_MAX} bytes"
    if live and e.parent == ROOT_INO and n == SNAPDIR_NAME:
        return "is hidden by the snapshot directory"
    return None


def _shape(inodes: dict[int, _Ino], entries: list[_Entry], live: bool) -> _Shape:
    """Walk the tree from the root, then from the top of each disconnected part.

    A directory keeps its oldest name (the lowest cookie); other names of it
    are dropped, and so is the oldest one when the walk meets it from inside
    the directory itself (a loop).  The walk is a pure function of
    the rows, so a report without repair says exactly what a repair would do.
    """
    sh = _Shape()
    dirs = sh.dirs = {ino for ino, i in inodes.items() if _isdir(i.mode)}
    children: dict[int, list[_Entry]] = defaultdict(list)
    names_of: dict[int, list[_Entry]] = defaultdict(list)
    for e in entries:
        if e.parent not in dirs:
            reason: str | None = "is not in a directory"
        elif e.ino not in inodes:
            reason = f"names missing inode {e.ino}"
        elif e.ino == ROOT_INO:
            reason = "names the root directory"
        else:
            reason = _bad_name(e, live)
        if reason:
            sh.dropped.append((e, reason))
            continue
        children[e.parent].append(e)
        names_of[e.ino].append(e)

    def walk(top: int) -> None:
        sh.reached.add(top)
        todo = [top]
        while todo:
            for e in children[todo.pop()]:
                if e.ino in dirs:
                    if e.ino in sh.reached or e is not names_of[e.ino][0]:
                        sh.dropped.append((e, f"is a second name of directory {e.ino}"))
                        continue
                    todo.append(e.ino)
                sh.reached.add(e.ino)
                sh.kept.append(e)

    walk(ROOT_INO)
    for ino in sorted(inodes):
        if ino in sh.reached or ino not in dirs:
            continue
        top, path = ino, {ino}
        while names_of[top]:  # climb through parents (all disconnected too) to the top or a loop
            parent = names_of[top][0].parent
            if parent in path:
                break
            path.add(parent)
            top = parent
        sh.dir_tops.append(top)
        walk(top)
    for ino in sorted(inodes):
        if ino not in sh.reached:
            (sh.file_tops if inodes[ino].nlink else sh.unlinked).append(ino)
    return sh


class _Fsck:
    """One run of fsck over a volume, through its store (``vol.tables``) and public calls."""

    def __init__(self, vol: Volume, repair: bool) -> None:
        self.vol, self.repair = vol, repair
        self.t = vol.tables
        self.db = self.t.db
        self.rep = FsckReport()
        #: What the repairs leave (or, checking only, would leave): the high-water
        #: mark, and the live block-map rows that point outside the volume.
        self.high_water = self.t.meta.high_water
        self.illegal: set[tuple[int, int]] = set()
        self.lost_found: int | None = None
        #: the live entries the live-tree pass keeps, by (parent, name)
        self.kept_live: set[tuple[int, bytes]] = set()

    def check(self) -> None:
        """Run every pass of :data:`PASSES`, in order."""
        for name in PASSES:
            getattr(self, f"check_{name}")()

    def check_filer(self) -> None:
        """The filer's objects: identity, qtrees, junctions, restrictions (:mod:`snapfs.fsck_filer`),
        LUNs and locks (:mod:`snapfs.fsck_luns`)."""
        fsck_filer.check(self)
        fsck_luns.check(self)

    def check_snapshot_trees(self) -> None:
        for snap in list(self.t.epochs.epochs):
            self.check_snapshot_tree(snap)

    # ------------------------------------------------------------------ reporting

    def problem(self, msg: str) -> None:
        self.rep.problems.append(msg)

    def fix(self, msg: str, action: Callable[[], object]) -> bool:
        """Report ``msg``; when repairing, run ``action`` and note the problem repaired."""
        return self.fix_all([msg], action)

    def fix_all(self, msgs: list[str], action: Callable[[], object]) -> bool:
        """Report ``msgs``, which one ``action`` repairs together (or not at all)."""
        self.rep.problems.extend(msgs)
        if not msgs or not self.repair:
            return False
        try:
            action()
        except (SnapfsError, sqlite3.Error, OSError) as e:
            self.problem(f"the repair of the {len(msgs)} problem(s) above failed: {e}")
            return False
        finally:
            self.t.forget_rows()
        self.rep.repaired.extend(msgs)
        return True

    def _meta(self, **values: int) -> None:
        with self.t.txn():
            for k, v in values.items():
                setattr(self.t.meta, k, v)

    # ------------------------------------------------------------------ counters

    def check_counters(self) -> None:
        m, db = self.t.meta, self.db
        snaps = self.t.epochs.epochs
        if snaps and snaps[-1] >= m.epoch:
            self.fix(f"snapshot epoch {snaps[-1]} is not below the current epoch {m.epoch}",
                     lambda: self._meta(epoch=snaps[-1] + 1))
        top = db.execute("SELECT max(ino) FROM inodes").fetchone()[0] or 0
        if top >= m.next_ino:
            self.fix(f"next inode number {m.next_ino} is not above inode {top}, which exists",
                     lambda: self._meta(next_ino=top + 1))
        top = db.execute("SELECT max(cookie) FROM dirents").fetchone()[0] or 0
        if top >= m.next_cookie:
            self.fix(f"next directory cookie {m.next_cookie} is not above cookie {top}, which is in use",
                     lambda: self._meta(next_cookie=top + 1))

    # ------------------------------------------------------------------ block references

    def check_extents(self) -> None:
        bad = self.db.execute("SELECT ino, idx, death, birth, block, span FROM blockmap WHERE span < 1 OR span > ?",
                              (MAX_SPAN,)).fetchall()
        for ino, idx, death, birth, block, span in bad:
            where = "live tree" if death == LIVE else f"snapshot row (epochs {birth}..{death})"
            self.fix(f"{where}: inode {ino} block map row at block {idx} maps {span} blocks"
                     f" ({'none' if span < 1 else f'more than {MAX_SPAN}'})",
                     lambda: self._reshape(ino, idx, death, birth, block, span))

    def _reshape(self, ino: int, idx: int, death: int, birth: int, block: int, span: int) -> None:
        """A row of no blocks goes; a longer one than MAX_SPAN becomes rows of MAX_SPAN."""
        with self.t.txn():
            self.db.execute("DELETE FROM blockmap WHERE ino = ? AND idx = ? AND death = ?", (ino, idx, death))
            self.db.executemany("INSERT INTO blockmap (ino, idx, death, birth, block, span) VALUES (?,?,?,?,?,?)",
                                [(ino, idx + k, death, birth, block + k, min(MAX_SPAN, span - k))
                                 for k in range(0, span, MAX_SPAN)])

    def _isolate(self, ino: int, idx: int, death: int) -> None:
        """Inside a transaction: block ``idx`` of ``ino`` its own row (the version ending at
        ``death``), the extent that maps it split around it (same blocks, same epochs)."""
        r = self.db.execute("SELECT idx, span, block, birth FROM blockmap WHERE ino = ? AND idx <= ? AND death = ?"
                            " AND idx + span > ? ORDER BY idx DESC LIMIT 1", (ino, idx, death, idx)).fetchone()
        if r is None or r[1] == 1:
            return
        i0, span, b0, birth = r
        self.db.execute("DELETE FROM blockmap WHERE ino = ? AND idx = ? AND death = ?", (ino, i0, death))
        pieces = [(i0, idx - i0), (idx, 1), (idx + 1, i0 + span - idx - 1)]
        self.db.executemany("INSERT INTO blockmap (ino, idx, death, birth, block, span) VALUES (?,?,?,?,?,?)",
                            [(ino, a, death, birth, b0 + a - i0, n) for a, n in pieces if n > 0])

    def check_block_refs(self) -> None:
        db, m = self.db, self.t.meta
        rows: dict[int, list[tuple[int, int, int, int]]] = defaultdict(list)
        for ino, idx, death, birth, block, span in db.execute(
                "SELECT ino, idx, death, birth, block, span FROM blockmap"):
            for k in range(min(span, MAX_SPAN)):  # (longer rows: see check_extents)
                rows[block + k].append((birth, death, ino, idx + k))
        free = {r[0] for r in db.execute("SELECT block FROM free_blocks")}
        top, on_free, shared = 0, [], []
        for b, refs in sorted(rows.items()):
            if not 0 <= b < m.total_blocks:
                for birth, death, ino, idx in refs:
                    self._illegal_block(b, birth, death, ino, idx)
                continue
            top = max(top, b + 1)
            if b in free:
                on_free.append(b)
            if len(refs) > 1:
                shared.append((b, sorted(refs)))
        self.high_water = max(m.high_water, top)
        if top > m.high_water:
            self.fix(f"referenced blocks up to {top - 1} are beyond the high-water mark {m.high_water}",
                     lambda: self._meta(high_water=top))
        if on_free:
            self.fix(f"{len(on_free)} referenced blocks are on the free list ({_some(on_free)})",
                     lambda: self._txn_many("DELETE FROM free_blocks WHERE block = ?", on_free))
        bad = sorted(b for b in free if not 0 <= b < self.high_water)
        if bad:
            self.fix(f"{len(bad)} free-list blocks are beyond the high-water mark {self.high_water} ({_some(bad)})",
                     lambda: self._txn_many("DELETE FROM free_blocks WHERE block = ?", bad))
        for b, refs in shared:  # last: the copies are allocated from the allocation state just repaired
            self.fix(f"block {b} is referenced {len(refs)} times (inodes {', '.join(str(r[2]) for r in refs)})",
                     lambda: self._unshare(b, refs))

    def _illegal_block(self, b: int, birth: int, death: int, ino: int, idx: int) -> None:
        msg = f"inode {ino} block {idx} points to block {b}, outside the volume"
        if death != LIVE:
            self.problem(f"snapshot row of {msg} (epochs {birth}..{death}): snapshots are not repaired")
            return

        def drop() -> None:
            with self.t.txn():
                self._isolate(ino, idx, LIVE)
                if birth > self.t.epochs.latest:
                    self.db.execute("DELETE FROM blockmap WHERE ino = ? AND idx = ? AND death = ?", (ino, idx, LIVE))
                else:  # the snapshots keep their (equally bad) version
                    self.db.execute("UPDATE blockmap SET death = ? WHERE ino = ? AND idx = ? AND death = ?",
                                    (self.t.meta.epoch, ino, idx, LIVE))
        if not self.fix(f"live tree: {msg}", drop):
            self.illegal.add((ino, idx))

    def _unshare(self, block: int, refs: list[tuple[int, int, int, int]]) -> None:
        """Give every row but the oldest its own copy of ``block``: no view's contents change."""
        store = self.t.blocks
        with self.t.txn():
            data = store.read(block)
            for _, death, ino, idx in refs[1:]:
                self._isolate(ino, idx, death)
                new = store.allocate()
                store.write(new, data)
                self.db.execute("UPDATE blockmap SET block = ? WHERE ino = ? AND idx = ? AND death = ?",
                                (new, ino, idx, death))

    def _txn_many(self, sql: str, values: list[int]) -> None:
        with self.t.txn():
            self.db.executemany(sql, ((v,) for v in values))

    # ------------------------------------------------------------------ epochs

    def check_epochs(self) -> None:
        t, db = self.t, self.db
        E = t.meta.epoch
        for table, key in VERSIONED.items():
            cols = ", ".join(key)
            match = " AND ".join(f"{c} = ?" for c in key) + " AND death = ?"
            for *k, birth in db.execute(f"SELECT {cols}, birth FROM {table} WHERE death = ? AND birth > ?",
                                        (LIVE, E)).fetchall():
                self.fix(f"{table} row {tuple(k)} is live and born after the current epoch ({birth} > {E})",
                         lambda: self._exec(f"UPDATE {table} SET birth = ? WHERE {match}", (E, *k, LIVE)))
            for *k, birth, death in db.execute(
                    f"SELECT {cols}, birth, death FROM {table} WHERE death > ? AND {DEAD}", (E,)).fetchall():
                self.fix(f"{table} row {tuple(k)} died after the current epoch ({death} > {E})",
                         lambda: self._exec(f"UPDATE {table} SET death = ? WHERE {match}", (E, *k, death)))
            for *k, birth, death, nxt in db.execute(
                    f"SELECT * FROM (SELECT {cols}, birth, death, lead(birth) OVER (PARTITION BY {cols}"
                    f" ORDER BY birth) AS nxt FROM {table} WHERE birth < death) WHERE nxt < death"):
                self.problem(f"{table} row {tuple(k)}: versions overlap (one lives in epochs {birth}..{death},"
                             f" the next is born in {nxt}): snapshot history is not repaired")
            leaked = []
            for *k, birth, death in db.execute(
                    f"SELECT {cols}, birth, death FROM {table} WHERE {DEAD}").fetchall():
                if birth >= death:  # no view can see it
                    self.fix(f"{table} row {tuple(k)} has bad epochs birth={birth} death={death}",
                             lambda: self._drop_dead(table, match, [(*k, death)]))
                elif not t.epochs.visible_to_any(birth, death):
                    leaked.append((*k, death))
            if leaked:
                self.fix(f"{len(leaked)} dead {table} rows are seen by no snapshot",
                         lambda: self._drop_dead(table, match, leaked))

    def _exec(self, sql: str, params: tuple) -> None:
        with self.t.txn():
            self.db.execute(sql, params)

    def _drop_dead(self, table: str, match: str, rows: list[tuple]) -> None:
        with self.t.txn():
            if table == "blockmap":
                self.t.blocks.free_runs_later([r for k in rows for r in self.db.execute(
                    f"SELECT block, span FROM blockmap WHERE {match}", k)])
            self.db.executemany(f"DELETE FROM {table} WHERE {match}", rows)

    # ------------------------------------------------------------------ trees

    def _load(self, snap: int | None) -> tuple[dict[int, _Ino], list[_Entry]]:
        where, params = self.t.view(snap)
        inodes = {r[0]: _Ino(*r[1:]) for r in self.db.execute(
            f"SELECT ino, mode, nlink, size, nblocks FROM inodes WHERE {where}", params)}
        entries = [_Entry(*r) for r in self.db.execute(
            f"SELECT parent, name, ino FROM dirents WHERE {where} ORDER BY cookie", params)]
        return inodes, entries

    def _root_ok(self, label: str, inodes: dict[int, _Ino]) -> bool:
        if ROOT_INO in inodes and _isdir(inodes[ROOT_INO].mode):
            return True
        self.problem(f"{label}: root directory missing")
        return False

    def check_snapshot_tree(self, snap: int) -> None:
        label = f"snapshot {snap}"
        inodes, entries = self._load(snap)
        if not self._root_ok(label, inodes):
            return
        sh = _shape(inodes, entries, live=False)
        for e, why in sh.dropped:
            self.problem(f"{label}: entry {e.name!r} in {e.parent} {why}")
        for ino in sh.dir_tops:
            self.problem(f"{label}: directory {ino} is not connected to the root")
        for ino in sh.file_tops:
            self.problem(f"{label}: inode {ino} is not connected to the root")
        # a file unlinked while open when the snapshot was taken: legitimate there
        self._check_counts(label, snap, inodes, sh, skip=set(sh.unlinked))

    def check_live_tree(self) -> None:
        label = "live tree"
        inodes, entries = self._load(None)
        remade = ROOT_INO not in inodes or not _isdir(inodes[ROOT_INO].mode)
        if remade:  # as e2fsck does: a new root, which the entries naming it as parent fill again
            what = "missing" if ROOT_INO not in inodes else "not a directory"
            if self.fix(f"{label}: root directory {what}", self._make_root):
                inodes, entries = self._load(None)
            elif self.repair:
                return
            else:
                old = inodes.get(ROOT_INO, _Ino(0, 2, 0, 0))
                inodes = {**inodes, ROOT_INO: old._replace(mode=stat.S_IFDIR | 0o755, size=0)}
        sh = _shape(inodes, entries, live=True)
        self.kept_live = {(e.parent, e.name) for e in sh.kept}  # the short-name pass checks these
        drops = list(sh.dropped)
        tops = sh.dir_tops + sh.file_tops
        self.lost_found = None
        lf_msgs = self._find_lost_found(sh, inodes, tops, drops) if tops else []
        self.fix_all([f"{label}: entry {e.name!r} in {e.parent} {why}" for e, why in drops],
                     lambda: self._drop_entries([e for e, _ in drops]))
        self.fix_all([f"{label}: orphan inode {ino} (unlinked, not freed)" for ino in sh.unlinked],
                     lambda: self._destroy(sh.unlinked))
        self.fix_all(lf_msgs, self._make_lost_found)
        self.fix_all([f"{label}: {'directory' if _isdir(inodes[i].mode) else 'inode'} {i} is not connected"
                      f" to the root (goes to /lost+found/#{i})" for i in tops],
                     lambda: self._reconnect(tops, inodes))
        if self.repair and (drops or sh.unlinked or tops or remade):
            inodes, entries = self._load(None)  # count what the repairs left
            sh = _shape(inodes, entries, live=True)
            self._check_counts(label, None, inodes, sh, skip={i for i in inodes if i not in sh.reached})
        elif lf_msgs:  # count as the repair will: with a new lost+found in the root
            r, lf = inodes[ROOT_INO], -1
            sim = {**inodes, ROOT_INO: r._replace(nlink=r.nlink + 1), lf: _Ino(stat.S_IFDIR | LOST_FOUND_MODE, 2, 0, 0)}
            sh.kept.append(_Entry(ROOT_INO, LOST_FOUND, lf))
            self._check_counts(label, None, sim, sh, skip=set(sh.unlinked), named=set(tops))
        else:
            self._check_counts(label, None, inodes, sh, skip=set(sh.unlinked), named=set(tops))
        have, want = self.t.meta.live_inodes, len(inodes)
        if lf_msgs and not self.repair:  # as the repair will count them, with the new lost+found
            have, want = have + 1, want + 1
        if have != want:
            self.fix(f"live inode counter {have}, should be {want}", lambda: self._meta(live_inodes=want))

    def _find_lost_found(self, sh: _Shape, inodes: dict[int, _Ino], tops: list[int],
                         drops: list[tuple[_Entry, str]]) -> list[str]:
        """Find /lost+found for ``tops``; if a non-directory has the name, its entry joins
        ``drops`` and the file joins ``tops`` (as e2fsck unlinks it).  The problems
        to repair by making one (none if it exists)."""
        lf = next((e for e in sh.kept if e.parent == ROOT_INO and e.name == LOST_FOUND), None)
        if lf is not None and _isdir(inodes[lf.ino].mode):
            self.lost_found = lf.ino
            return []
        if lf is not None:
            drops.append((lf, "is not a directory"))
            sh.kept.remove(lf)
            if not any(e.ino == lf.ino for e in sh.kept):
                tops.append(lf.ino)
        return [f"live tree: /lost+found is missing (needed to reconnect {len(tops)} inode(s))"]

    def _make_lost_found(self) -> None:
        self.lost_found = self.vol.mkdir(ROOT_INO, LOST_FOUND, LOST_FOUND_MODE, 0, 0).ino

    def _make_root(self) -> None:
        t, now = self.t, time.time_ns()
        with t.txn():
            if t.db.execute("SELECT 1 FROM inodes WHERE ino = ? AND death = ?", (ROOT_INO, LIVE)).fetchone():
                t.set(ROOT_INO, mode=stat.S_IFDIR | 0o755, size=0, target=None, ctime_ns=now)
            else:
                self.db.execute(
                    "INSERT INTO inodes (ino, death, birth, mode, nlink, uid, gid, rdev, size, nblocks,"
                    " atime_ns, mtime_ns, ctime_ns, target) VALUES (?,?,?,?,2,0,0,0,0,0,?,?,?,NULL)",
                    (ROOT_INO, LIVE, t.meta.epoch, stat.S_IFDIR | 0o755, now, now, now))

    def _drop_entries(self, entries: list[_Entry]) -> None:
        with self.t.txn():
            for e in entries:
                self.t.del_dirent(e.parent, e.name)

    def _destroy(self, inos: list[int]) -> None:
        with self.t.txn():
            for ino in inos:
                self.t.destroy(ino)

    def _reconnect(self, tops: list[int], inodes: dict[int, _Ino]) -> None:
        """Name each of ``tops`` ``#INO`` in lost+found (``#INO.N`` if taken); lost+found counts the directories."""
        lf = self.lost_found
        if lf is None:
            raise SnapfsError("there is no /lost+found to reconnect them into")
        t = self.t
        with t.txn():
            taken = {r[0] for r in self.db.execute("SELECT name FROM dirents WHERE parent = ? AND death = ?",
                                                   (lf, LIVE))}
            for ino in tops:
                name, n = b"#%d" % ino, 0
                while name in taken:
                    n += 1
                    name = b"#%d.%d" % (ino, n)
                taken.add(name)
                t.add_dirent(lf, name, ino)
            dirs = sum(1 for ino in tops if _isdir(inodes[ino].mode))
            now = time.time_ns()
            t.set(lf, mtime_ns=now, ctime_ns=now, nlink=t.row(lf).nlink + dirs)

    def _check_counts(self, label: str, snap: int | None, inodes: dict[int, _Ino], sh: _Shape,
                      skip: set[int], named: set[int] = frozenset()) -> None:
        """Link counts, block counts, sizes, block maps and xattrs of one tree.

        ``skip``: inodes not to check (orphans, or what a repair could not
        reconnect); ``named``: inodes about to get one name in lost+found."""
        live, bs = snap is None, self.vol.block_size
        where, params = self.t.view(snap)
        dirs = sh.dirs | {i for i, n in inodes.items() if i < 0}  # with a lost+found to be made
        names = Counter(e.ino for e in sh.kept)
        names.update(named)
        subdirs = Counter(e.parent for e in sh.kept if e.ino in dirs)
        fixes: dict[int, dict] = defaultdict(dict)
        msgs: list[str] = []

        def bad(msg: str, ino: int, **change: int) -> None:
            if live:
                msgs.append(f"{label}: {msg}")
                fixes[ino].update(change)
            else:
                self.problem(f"{label}: {msg}")

        counts: Counter = Counter()
        last: dict[int, int] = {}
        strays: dict[int, str] = {}
        ends: dict[int, int] = {}
        for ino, idx, span in self.db.execute(f"SELECT ino, idx, span FROM blockmap WHERE {where} ORDER BY ino, idx",
                                              params):
            span = min(span, MAX_SPAN)  # (see check_extents)
            if live and self.illegal:
                n = sum(1 for k in range(idx, idx + span) if (ino, k) not in self.illegal)  # dropped by a repair
                if not n:
                    continue
            else:
                n = span
            if ino not in inodes:
                strays.setdefault(ino, f"block map of missing inode {ino}")
            elif not stat.S_ISREG(inodes[ino].mode):
                strays.setdefault(ino, f"inode {ino} maps blocks but is not a regular file")
            else:
                if span > 0 and idx < ends.get(ino, 0):
                    self.problem(f"{label}: inode {ino}: block map rows overlap at block {idx}: not repaired")
                ends[ino] = max(ends.get(ino, 0), idx + span)
                counts[ino] += n
                last[ino] = max(last.get(ino, idx), idx + span - 1)
        for ino in sorted(inodes):
            if ino in skip:
                continue
            _, nlink, size, nblocks = inodes[ino]
            want = 2 + subdirs[ino] if ino in dirs else names[ino]
            if nlink != want:
                bad(f"inode {ino} nlink {nlink}, should be {want}", ino, nlink=want)
            if ino in last and last[ino] * bs >= size:
                bad(f"inode {ino} maps block {last[ino]} past its size {size}", ino, size=(last[ino] + 1) * bs)
            if counts[ino] != nblocks:
                bad(f"inode {ino} counts {nblocks} blocks, maps {counts[ino]}", ino, nblocks=counts[ino])
        xstrays = [r[0] for r in self.db.execute(f"SELECT DISTINCT ino FROM xattrs WHERE {where}", params)
                   if r[0] not in inodes]
        sstrays = [r[0] for r in self.db.execute(f"SELECT DISTINCT ino FROM streams WHERE {where}", params)
                   if r[0] not in inodes]
        strays = dict(sorted(strays.items()))
        if not live:
            for msg in strays.values():
                self.problem(f"{label}: {msg}")
            for ino in xstrays:
                self.problem(f"{label}: xattrs of missing inode {ino}")
            for ino in sstrays:
                self.problem(f"{label}: streams of missing inode {ino}")
            return
        msgs += [f"{label}: {msg}" for msg in strays.values()]
        msgs += [f"{label}: xattrs of missing inode {ino}" for ino in xstrays]
        msgs += [f"{label}: streams of missing inode {ino}" for ino in sstrays]

        def apply() -> None:
            t = self.t
            with t.txn():
                for ino in strays:
                    t.kill("blockmap", "ino = ?", (ino,))
                for ino in xstrays:
                    t.kill("xattrs", "ino = ?", (ino,))
                for ino in sstrays:
                    t.kill("streams", "ino = ?", (ino,))
                for ino, ch in fixes.items():
                    t.set(ino, **ch)
        self.fix_all(msgs, apply)

    # ------------------------------------------------------------------ free space

    # ------------------------------------------------------------------ DOS 8.3 names

    def check_short_names(self) -> None:
        """Every live entry whose name does not fit 8.3 has a stored short name (unique in its
        directory: an index keeps that).  Repair gives it one, as a new entry gets."""
        missing = [(p, n) for p, n in self.db.execute(
            "SELECT parent, name FROM dirents WHERE death = ? AND dosname IS NULL ORDER BY cookie", (LIVE,))
            if not is_short(n) and (p, n) in self.kept_live]  # others the live-tree pass drops or moves

        def apply() -> None:
            with self.t.txn():
                for p, n in missing:
                    self.db.execute("UPDATE dirents SET dosname = ? WHERE parent = ? AND name = ? AND death = ?",
                                    (shortnames.assign(self.db, p, n), p, n, LIVE))
        self.fix_all([f"live tree: entry {n!r} in directory {p} has no DOS 8.3 name" for p, n in missing], apply)

    def check_free_space(self) -> None:
        db, m = self.db, self.t.meta
        refs = {b for block, span in db.execute("SELECT block, span FROM blockmap")
                for b in range(block, block + min(span, MAX_SPAN))}
        hw = max(self.high_water, m.high_water)  # copies of shared blocks may have raised it
        free = {r[0] for r in db.execute("SELECT block FROM free_blocks")}
        free = {b for b in free if 0 <= b < hw and b not in refs}  # as check_block_refs leaves it
        leaked = [b for b in range(hw) if b not in refs and b not in free]
        if leaked:
            self.fix(f"{len(leaked)} blocks are neither referenced nor free ({_some(leaked)})",
                     lambda: self._txn_many("INSERT INTO free_blocks (block) VALUES (?)", leaked))
            free.update(leaked)
        used = hw - len(free)
        if m.used_blocks != used:
            self.fix(f"used-blocks counter {m.used_blocks}, should be {used}", lambda: self._meta(used_blocks=used))


def _some(values: list[int], n: int = 5) -> str:
    return ", ".join(map(str, values[:n])) + (", ..." if len(values) > n else "")
