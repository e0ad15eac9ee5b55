"""fsck's checks of LUNs and persistent locks (issue 12, filerC), run within the
``filer`` pass (:mod:`snapfs.fsck_filer`); reports and repairs through its
``problem``/``fix``.

* LUN records (``trusted.snapfs.lun``, every version): readable.  Repair: an
  unreadable live record is removed (the file stays, an ordinary file);
  snapshots' records are reported only.
* live LUNs: a regular file at the root of the volume or of a qtree, as large
  as its record says, with a serial no other live LUN has.  Repair: the record
  takes the file's size (no byte of the file is touched); a duplicate serial is
  replaced.  A LUN outside a root is reported (moving it is the user's call).
* clones (any version): the snapshot they read from exists and is held for
  them.  Repair: a missing hold is put back.  A clone whose snapshot is gone
  has lost what it had not written: reported.
* locks: each names a live regular file, with a known type and share mode.
  Repair: the lock is lifted.
"""

from __future__ import annotations

import secrets
import stat

from . import luns
from .fsck_filer import FilerPass, run_sql
from .locks import LOCK_TYPES, SHARES
from .schema import LIVE
from .store import ROOT_INO


def check(ck: FilerPass) -> None:
    _luns(ck)
    _locks(ck)


def _put(ck: FilerPass, ino: int, rec: luns.LunRecord) -> None:
    with ck.vol.tables.txn():
        ck.vol.db.execute("UPDATE xattrs SET value = ? WHERE ino = ? AND name = ? AND death = ?",
                          (luns.encode(rec), ino, luns.LUN_XATTR, LIVE))
    ck.vol.luns[ino] = rec
    ck.vol.tables.forget_rows()


def _drop(ck: FilerPass, ino: int) -> None:
    ck.vol.removexattr(ino, luns.LUN_XATTR)
    ck.vol.luns.pop(ino, None)
    ck.vol.tables.forget_rows()


def _luns(ck: FilerPass) -> None:
    db = ck.vol.db
    qtree_dirs = set(ck.vol.qtrees)
    serials: dict[str, int] = {}
    epochs = {e for (e,) in db.execute("SELECT epoch FROM snapshots")}
    holds = set(db.execute("SELECT epoch, holder FROM holds").fetchall())
    for ino, death, value in db.execute("SELECT ino, death, value FROM xattrs WHERE name = ? ORDER BY ino, birth",
                                        (luns.LUN_XATTR,)).fetchall():
        live = death == LIVE
        where = "live tree" if live else "a snapshot"
        try:
            rec = luns.decode(value)
        except (ValueError, KeyError, IndexError, UnicodeDecodeError):
            msg = f"LUN record {value!r} of inode {ino} ({where}) is unreadable"
            if live:
                ck.fix(msg, lambda ino=ino: _drop(ck, ino))
            else:
                ck.problem(msg)
            continue
        if rec.backing is not None:
            s = rec.backing[0]
            holder = luns.CLONE_HOLDER + rec.serial
            if s not in epochs:
                ck.problem(f"LUN clone {rec.serial} (inode {ino}, {where}) reads from snapshot id {s},"
                           " which no longer exists: what it had not written is lost")
            elif (s, holder) not in holds:
                ck.fix(f"snapshot id {s} is not held for LUN clone {rec.serial} (inode {ino}, {where})",
                       lambda s=s, holder=holder: run_sql(
                           ck, "INSERT OR IGNORE INTO holds (epoch, holder) VALUES (?, ?)", (s, holder)))
                holds.add((s, holder))
        if not live:
            continue
        row = db.execute("SELECT mode, size FROM inodes WHERE ino = ? AND death = ?", (ino, LIVE)).fetchone()
        size = ck.vol.getattr(ino).size if row is not None else None
        if row is None or not stat.S_ISREG(row[0]):
            ck.fix(f"LUN record on inode {ino}, which is not a regular file", lambda ino=ino: _drop(ck, ino))
            continue
        parents = [p for (p,) in db.execute("SELECT parent FROM dirents WHERE ino = ? AND death = ?", (ino, LIVE))]
        if parents and not any(p == ROOT_INO or p in qtree_dirs for p in parents):
            ck.problem(f"LUN {rec.serial} (inode {ino}) is not at the root of the volume or of a qtree")
        if size != rec.size and size:
            fixed = luns.LunRecord(rec.serial, rec.ostype, size, rec.space_reserve, rec.state, rec.backing)
            ck.fix(f"LUN {rec.serial} (inode {ino}) is {size} bytes, its record says {rec.size}",
                   lambda ino=ino, fixed=fixed: _put(ck, ino, fixed))
            rec = fixed
        if rec.serial in serials:
            new = "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(luns.SERIAL_LEN))
            ck.fix(f"LUN serial {rec.serial} is used by inodes {serials[rec.serial]} and {ino}",
                   lambda ino=ino, rec=rec, new=new: _put(ck, ino, luns.LunRecord(
                       new, rec.ostype, rec.size, rec.space_reserve, rec.state, rec.backing)))
        else:
            serials[rec.serial] = ino


def _lift(ck: FilerPass, lock_id: int) -> None:
    run_sql(ck, "DELETE FROM locks WHERE id = ?", (lock_id,))
    ck.vol.lock_reload()


def _locks(ck: FilerPass) -> None:
    db = ck.vol.db
    for lid, ino, owner, typ, start, length, share in db.execute(
            "SELECT id, ino, owner, type, start, length, share FROM locks").fetchall():
        row = db.execute("SELECT mode FROM inodes WHERE ino = ? AND death = ?", (ino, LIVE)).fetchone()
        if row is None or not stat.S_ISREG(row[0]):
            ck.fix(f"lock {lid} of owner {owner!r} names inode {ino}, which is no live file",
                   lambda lid=lid: _lift(ck, lid))
        elif typ not in LOCK_TYPES or share not in SHARES or start < 0 or length < 0 or not owner:
            ck.fix(f"lock {lid} on inode {ino} is malformed ({typ!r}, {share!r}, {start}:{length})",
                   lambda lid=lid: _lift(ck, lid))
