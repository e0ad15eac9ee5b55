"""fsck's pass over the filer's objects (issue 12): the volume's identity, qtrees,
junctions and client I/O restrictions.  Run by :mod:`snapfs.fsck` as its ``filer``
pass; reports and repairs through that pass's ``problem``/``fix``.

* identity (``volume_props``): a uuid, a type rw or ro, a generation of at
  least 1, a known security style, and a next qtree id above every id in use.
  Repair: a missing uuid is made, a bad type becomes rw and the generation
  goes up (the dump engine then asks for a new baseline), a bad generation or
  style is reset, the next qtree id is raised.
* qtrees (``trusted.snapfs.qtree``): every record readable; in the live tree on
  a directory named in the root, ids unique, at most 4,995.  Repair: a live
  record that is unreadable or misplaced, or a later duplicate id, is removed
  (its directory becomes a plain one, in qtree 0; no file is touched).
  Snapshots' records are reported only.
* junctions (``trusted.snapfs.junction``): readable and on a symbolic link.
  Repair: a bad live record is removed (the link stays).
* restrictions: each names a live inode.  Repair: the restriction is lifted.
* LUNs and locks: :mod:`snapfs.fsck_luns`.
"""

from __future__ import annotations

import stat
import uuid as _uuid
from typing import Protocol

from snapdump.numerals import is_decimal

from . import junctions, qtrees
from .identity import SECURITY_STYLES, VOLUME_TYPES, read_props
from .schema import LIVE
from .store import ROOT_INO
from .volume import Volume


class FilerPass(Protocol):
    """What the filer checks need of fsck's pass runner (fsck's ``_Fsck``)."""

    vol: Volume
    repair: bool

    def problem(self, msg: str) -> None: ...

    def fix(self, msg: str, action) -> bool: ...


def check(ck: FilerPass) -> None:
    db = ck.vol.db
    _identity(ck, db)
    _qtrees(ck, db)
    _junctions(ck, db)
    _restrictions(ck, db)


def run_sql(ck: FilerPass, sql: str, params: tuple = ()) -> None:
    """One repair statement, in a transaction of its own."""
    with ck.vol.tables.txn():
        ck.vol.db.execute(sql, params)


def _set_prop(ck: FilerPass, key: str, value: str) -> None:
    run_sql(ck, "INSERT OR REPLACE INTO volume_props (key, value) VALUES (?, ?)", (key, value))


def _identity(ck: FilerPass, db) -> None:
    p = read_props(db)
    try:
        _uuid.UUID(p.get("uuid", ""))
    except ValueError:
        ck.fix(f"the volume has no valid uuid ({p.get('uuid')!r})", lambda: _set_prop(ck, "uuid", str(_uuid.uuid4())))
    gen = p.get("generation", "")
    good_gen = is_decimal(gen) and int(gen) >= 1
    if p.get("type") not in VOLUME_TYPES:
        nxt = str(int(gen) + 1 if good_gen else 1)
        ck.fix(f"the volume's type {p.get('type')!r} is neither rw nor ro",
               lambda: (_set_prop(ck, "type", "rw"), _set_prop(ck, "generation", nxt)))
    elif not good_gen:
        ck.fix(f"the volume's generation {gen!r} is not a number of at least 1",
               lambda: _set_prop(ck, "generation", "1"))
    if p.get("security_style") not in SECURITY_STYLES:
        ck.fix(f"the volume's security style {p.get('security_style')!r} is unknown",
               lambda: _set_prop(ck, "security_style", "unix"))


def _qtrees(ck: FilerPass, db) -> None:
    seen: dict[int, int] = {}
    top = 0
    live = 0
    for ino, death, value in db.execute("SELECT ino, death, value FROM xattrs WHERE name = ? ORDER BY ino, birth",
                                        (qtrees.QTREE_XATTR,)).fetchall():
        where = "live tree" if death == LIVE else "a snapshot"
        try:
            q = qtrees.decode(value)
        except (ValueError, KeyError, UnicodeDecodeError):
            _bad(ck, ino, death, qtrees.QTREE_XATTR, f"qtree record {value!r} of inode {ino} ({where}) is unreadable")
            continue
        top = max(top, q.id)
        if death != LIVE:
            continue
        row = db.execute("SELECT mode FROM inodes WHERE ino = ? AND death = ?", (ino, LIVE)).fetchone()
        named = db.execute("SELECT 1 FROM dirents WHERE ino = ? AND parent = ? AND death = ?",
                           (ino, ROOT_INO, LIVE)).fetchone()
        if row is None or not stat.S_ISDIR(row[0]) or named is None:
            _bad(ck, ino, death, qtrees.QTREE_XATTR, f"qtree {q.id} (inode {ino}) is not a directory in the root")
        elif q.id in seen:
            _bad(ck, ino, death, qtrees.QTREE_XATTR, f"qtree id {q.id} is used by inodes {seen[q.id]} and {ino}")
        else:
            seen[q.id] = ino
            live += 1
    if live > qtrees.MAX_QTREES:
        ck.problem(f"the volume has {live} qtrees, more than {qtrees.MAX_QTREES}")
    nxt = read_props(db).get("next_qtree_id", "")
    if not is_decimal(nxt) or int(nxt) <= top:
        ck.fix(f"the next qtree id {nxt!r} is not above qtree id {top}, which is in use",
               lambda: _set_prop(ck, "next_qtree_id", str(top + 1)))


def _bad(ck: FilerPass, ino: int, death: int, name: bytes, msg: str) -> None:
    if death != LIVE:
        ck.problem(msg)
        return
    ck.fix(msg, lambda: (ck.vol.removexattr(ino, name), ck.vol.tables.forget_rows()))


def _junctions(ck: FilerPass, db) -> None:
    for ino, death, value in db.execute("SELECT ino, death, value FROM xattrs WHERE name = ?",
                                        (junctions.JUNCTION_XATTR,)).fetchall():
        where = "live tree" if death == LIVE else "a snapshot"
        try:
            junctions.decode(value)
        except (ValueError, UnicodeDecodeError):
            _bad(ck, ino, death, junctions.JUNCTION_XATTR,
                 f"junction record {value!r} of inode {ino} ({where}) is unreadable")
            continue
        row = db.execute("SELECT mode FROM inodes WHERE ino = ? AND death > ? AND birth <= ? LIMIT 1",
                         (ino, death - 1, death - 1)).fetchone()
        if row is not None and not stat.S_ISLNK(row[0]):
            _bad(ck, ino, death, junctions.JUNCTION_XATTR, f"junction record on inode {ino} ({where}),"
                 " which is not a symbolic link")


def _restrictions(ck: FilerPass, db) -> None:
    for ino, owner in db.execute("SELECT ino, owner FROM restrictions").fetchall():
        if db.execute("SELECT 1 FROM inodes WHERE ino = ? AND death = ?", (ino, LIVE)).fetchone() is None:
            ck.fix(f"restriction of owner {owner!r} names inode {ino}, which no longer exists",
                   lambda ino=ino: (run_sql(ck, "DELETE FROM restrictions WHERE ino = ?", (ino,)),
                                    ck.vol.restricted.pop(ino, None)))
