"""fsck: check every invariant of a volume, and repair what can be repaired safely.

Invariants checked:

* epochs: every row has ``birth <= epoch`` and ``birth < death``; a dead row
  (``death < LIVE``) died at or before the current epoch and is seen by at
  least one existing snapshot (otherwise it is leaked space); snapshot epochs
  are below the current epoch.
* blocks: every block a row references is below the high-water mark, not on
  the free list, and referenced once; every other block below the mark is on
  the free list; the used-blocks counter matches.
* trees (the live tree and every snapshot's): every entry's parent is a
  directory and its target exists; link counts (directories: 2 + subdirs, one
  name each); every inode is reachable from the root (in the live tree an
  unreachable inode with no links is an orphan left by a crash); block maps lie
  within the file size and match the block count; xattrs belong to an inode;
  the live inode counter matches.

Repairs (``repair=True``) touch only the live tree and the allocation state:
leaked dead rows are dropped, orphans freed, link and block counts and the
counters corrected, leaked blocks returned to the free list.  Damage in a
snapshot's tree is reported, never rewritten.
"""

from __future__ import annotations

import stat
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .schema import LIVE, VERSIONED
from .volume import ROOT_INO, Volume


@dataclass
class FsckReport:
    problems: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.problems


def fsck_path(voldir: str | Path, repair: bool = False) -> FsckReport:
    """Open the volume in ``voldir`` (it must not be open elsewhere) and check it."""
    with Volume.open(voldir) as vol:
        return fsck(vol, repair)


def fsck(vol: Volume, repair: bool = False) -> FsckReport:
    """Check ``vol`` (no files may be open); with ``repair``, fix what is safe to fix."""
    rep = FsckReport()
    _check_epochs(vol, rep, repair)
    for snap in [None, *vol.epochs.epochs]:
        _check_tree(vol, snap, rep, repair)
    _check_blocks(vol, rep, repair)
    return rep


def _fix(rep: FsckReport, repair: bool, problem: str) -> bool:
    rep.problems.append(problem)
    if repair:
        rep.repaired.append(problem)
    return repair


def _check_epochs(vol: Volume, rep: FsckReport, repair: bool) -> None:
    db, E = vol.db, vol.meta.epoch
    for s in vol.epochs.epochs:
        if s >= E:
            rep.problems.append(f"snapshot epoch {s} is not below the current epoch {E}")
    for table, key in VERSIONED.items():
        cols = ", ".join(key)
        for row in db.execute(f"SELECT {cols}, birth, death FROM {table} WHERE birth >= death OR birth > ?", (E,)):
            rep.problems.append(f"{table} row {row[:-2]} has bad epochs birth={row[-2]} death={row[-1]}")
        leaked = []
        for row in db.execute(f"SELECT {cols}, birth, death FROM {table} WHERE death < ?", (LIVE,)):
            *k, birth, death = row
            if death > E:
                rep.problems.append(f"{table} row {tuple(k)} died in the future (epoch {death} > {E})")
            elif not vol.epochs.visible_to_any(birth, death):
                leaked.append((*k, death))
        if leaked and _fix(rep, repair, f"{len(leaked)} dead {table} rows are seen by no snapshot"):
            where = " AND ".join(f"{c} = ?" for c in key) + " AND death = ?"
            with vol._txn():
                if table == "blockmap":
                    vol.store.free_later(db.execute(f"SELECT block FROM blockmap WHERE {where}", k).fetchone()[0]
                                         for k in leaked)
                db.executemany(f"DELETE FROM {table} WHERE {where}", leaked)


def _check_tree(vol: Volume, snap: int | None, rep: FsckReport, repair: bool) -> None:
    db, bs = vol.db, vol.block_size
    where, params = vol._view(snap)
    label = "live tree" if snap is None else f"snapshot {snap}"
    inodes = {r[0]: r[1:] for r in db.execute(
        f"SELECT ino, mode, nlink, size, nblocks FROM inodes WHERE {where}", params)}
    if ROOT_INO not in inodes or not stat.S_ISDIR(inodes[ROOT_INO][0]):
        rep.problems.append(f"{label}: root directory missing")
        return
    names: Counter = Counter()
    subdirs: Counter = Counter()
    children = defaultdict(list)
    for parent, name, ino in db.execute(f"SELECT parent, name, ino FROM dirents WHERE {where}", params):
        if parent not in inodes or not stat.S_ISDIR(inodes[parent][0]):
            rep.problems.append(f"{label}: entry {name!r} in {parent}, which is not a directory")
            continue
        if ino not in inodes:
            rep.problems.append(f"{label}: entry {name!r} in {parent} names missing inode {ino}")
            continue
        names[ino] += 1
        children[parent].append(ino)
        if stat.S_ISDIR(inodes[ino][0]):
            subdirs[parent] += 1
    seen, todo = {ROOT_INO}, [ROOT_INO]
    while todo:
        for c in children[todo.pop()]:
            if c not in seen:
                seen.add(c)
                todo.append(c)
    fixes: dict[int, dict] = defaultdict(dict)
    orphans = []
    for ino, (mode, nlink, size, nblocks) in inodes.items():
        isdir = stat.S_ISDIR(mode)
        if ino not in seen:
            if nlink == 0 and not isdir:
                if snap is None and _fix(rep, repair, f"{label}: orphan inode {ino} (unlinked, not freed)"):
                    orphans.append(ino)
                continue
            rep.problems.append(f"{label}: inode {ino} is not connected to the root")
            continue
        if isdir:
            if ino != ROOT_INO and names[ino] != 1:
                rep.problems.append(f"{label}: directory {ino} has {names[ino]} names")
            want = 2 + subdirs[ino]
        else:
            want = names[ino]
        if nlink != want and snap is None and _fix(rep, repair, f"{label}: inode {ino} nlink {nlink}, should be {want}"):
            fixes[ino]["nlink"] = want
        elif nlink != want and snap is not None:
            rep.problems.append(f"{label}: inode {ino} nlink {nlink}, should be {want}")
    counts: Counter = Counter()
    for ino, idx in db.execute(f"SELECT ino, idx FROM blockmap WHERE {where}", params):
        if ino not in inodes:
            rep.problems.append(f"{label}: block map of missing inode {ino}")
            continue
        counts[ino] += 1
        if idx * bs >= inodes[ino][2]:
            rep.problems.append(f"{label}: inode {ino} maps block {idx} past its size {inodes[ino][2]}")
    for ino, (_, _, _, nblocks) in inodes.items():
        if counts[ino] != nblocks and ino not in orphans:
            msg = f"{label}: inode {ino} counts {nblocks} blocks, maps {counts[ino]}"
            if snap is None and _fix(rep, repair, msg):
                fixes[ino]["nblocks"] = counts[ino]
            elif snap is not None:
                rep.problems.append(msg)
    for (ino,) in db.execute(f"SELECT DISTINCT ino FROM xattrs WHERE {where}", params):
        if ino not in inodes:
            rep.problems.append(f"{label}: xattrs of missing inode {ino}")
    if snap is None:
        live = len(inodes) - len(orphans)
        if repair and (fixes or orphans):
            with vol._txn():
                for ino, ch in fixes.items():
                    vol._set(ino, **ch)
                for ino in orphans:
                    vol._destroy(ino)
        if vol.meta.live_inodes != live and _fix(
                rep, repair, f"live inode counter {vol.meta.live_inodes}, should be {live}"):
            with vol._txn():
                vol.meta.live_inodes = live


def _check_blocks(vol: Volume, rep: FsckReport, repair: bool) -> None:
    db, m = vol.db, vol.meta
    refs = Counter(r[0] for r in db.execute("SELECT block FROM blockmap"))
    free = {r[0] for r in db.execute("SELECT block FROM free_blocks")}
    for b, n in refs.items():
        if n > 1:
            rep.problems.append(f"block {b} is referenced {n} times")
        if b in free:
            rep.problems.append(f"block {b} is referenced and on the free list")
        if b >= m.high_water or b < 0:
            rep.problems.append(f"block {b} is beyond the high-water mark {m.high_water}")
    bad_free = [b for b in free if b >= m.high_water or b < 0]
    if bad_free:
        rep.problems.append(f"{len(bad_free)} free-list blocks are beyond the high-water mark")
    leaked = [b for b in range(m.high_water) if b not in refs and b not in free]
    if leaked and _fix(rep, repair, f"{len(leaked)} blocks are neither referenced nor free"):
        with vol._txn():
            db.executemany("INSERT INTO free_blocks (block) VALUES (?)", ((b,) for b in leaked))
            free.update(leaked)
    used = m.high_water - len([b for b in free if 0 <= b < m.high_water])
    if m.used_blocks != used and _fix(rep, repair, f"used-blocks counter {m.used_blocks}, should be {used}"):
        with vol._txn():
            m.used_blocks = used
