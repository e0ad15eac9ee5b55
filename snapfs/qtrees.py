"""Qtrees: top-level directories of a volume with an id, a security style and oplocks.

:class:`QtreeOps` is one of the parts :class:`snapfs.volume.Volume` is made of.
A qtree is a directory in the volume's root carrying the xattr
:data:`QTREE_XATTR` (``trusted.snapfs.qtree``), an ASCII value such as
``id=3;security-style=ntfs;oplocks=enable`` (:func:`encode`/:func:`decode`).
Being an xattr of the directory, it is versioned with it: a snapshot shows
the qtrees as they were.  The mount shows it to ``getfattr -d -m -`` and
refuses to change it (only ``snapfs qtree`` does).  Qtree 0 is everything
in no qtree.  Ids are never reused (``next_qtree_id``, see
:mod:`snapfs.identity`).  Names follow ONTAP's rules: 1 to 64 characters,
no ``/``; commas and spaces, which ONTAP warns against, are refused here,
and so are control characters and bytes that are not UTF-8 (the rule of every
name a person reads, :func:`snapfs.limits.check_label`); and no leading dot (so never ``.snapshot``).  At most :data:`MAX_QTREES`.

The qtree of any inode is its top-level directory's (:meth:`QtreeOps.qtree_of`):
what the mount answers for :data:`QTREE_ID_XATTR` and the reader for
:meth:`snapfs.reader.SnapshotReader.qtree_of`.
"""

from __future__ import annotations

import errno
import stat
from dataclasses import dataclass
from typing import Callable

from .errors import err
from .limits import check_label
from .identity import check_style
from .store import ROOT_INO, StoreCalls

QTREE_XATTR = b"trusted.snapfs.qtree"
#: Virtual (never stored, never listed): the qtree id of any inode, decimal ASCII.
QTREE_ID_XATTR = b"trusted.snapfs.qtree_id"
MAX_QTREES = 4995
QTREE_NAME_MAX = 64
OPLOCKS = ("enable", "disable")


@dataclass(frozen=True, slots=True)
class Qtree:
    """A qtree: ``ino`` is its directory's inode (0 and ``""`` name qtree 0)."""

    id: int
    name: str
    security_style: str
    oplocks: str
    ino: int


def encode(qid: int, style: str, oplocks: str) -> bytes:
    return f"id={qid};security-style={style};oplocks={oplocks}".encode()


def decode(value: bytes, name: str = "", ino: int = 0) -> Qtree:
    """The qtree a :data:`QTREE_XATTR` value describes (ValueError if it is malformed)."""
    fields = dict(p.split("=", 1) for p in value.decode("ascii").split(";"))
    q = Qtree(int(fields["id"]), name, fields["security-style"], fields["oplocks"], ino)
    if q.id < 1 or q.security_style not in ("unix", "ntfs", "mixed") or q.oplocks not in OPLOCKS:
        raise ValueError(f"bad qtree record {value!r}")
    return q


def check_name(name: str) -> bytes:
    """The qtree name as bytes; EINVAL with the rule it breaks."""
    if not isinstance(name, str) or not name or len(name) > QTREE_NAME_MAX:
        raise err(errno.EINVAL, f"qtree name {name!r} must be 1 to {QTREE_NAME_MAX} characters")
    check_label(name, "qtree name", None)
    bad = next((c for c in name if c in "/, "), None)
    if bad is not None:
        raise err(errno.EINVAL, f"qtree name {name!r} may not contain {bad!r}")
    if name.startswith("."):
        raise err(errno.EINVAL, f"qtree name {name!r} may not start with '.'")
    return name.encode()


class QtreeOps(StoreCalls):
    """qtree_create, qtree_list, qtree_show, qtree_modify, qtree_delete, qtree_of (a Volume part)."""

    #: live qtrees by directory inode (loaded at open; the root's rows are few)
    qtrees: dict[int, Qtree]
    check_writable: Callable[[], None]

    def _load_qtrees(self) -> None:
        self.qtrees = {q.ino: q for q in self.qtree_list()}
        #: (directory, name) of entries the filer's commands made or removed behind the
        #: kernel's back; the mount drains it after each control request, to invalidate them
        self.entries_changed: list[tuple[int, bytes]] = []

    def qtree_list(self, snap: int | None = None) -> list[Qtree]:
        """The qtrees of the live tree or of snapshot ``snap``, by id."""
        where, params = self._view(snap)
        dv, xv = "d." + where.replace(" AND ", " AND d."), "x." + where.replace(" AND ", " AND x.")
        rows = self._db.execute(
            f"SELECT d.name, d.ino, x.value FROM dirents d JOIN xattrs x ON x.ino = d.ino AND x.name = ?"
            f" AND {xv} WHERE d.parent = ? AND {dv}", (QTREE_XATTR, *params, ROOT_INO, *params)).fetchall()
        return sorted((decode(v, n.decode(errors="surrogateescape"), i) for n, i, v in rows), key=lambda q: q.id)

    def qtree_show(self, name: str, snap: int | None = None) -> Qtree:
        q = next((q for q in self.qtree_list(snap) if q.name == name), None)
        if q is None:
            raise err(errno.ENOENT, f"no qtree named {name!r} on volume {self.meta.name}")
        return q

    def qtree_create(self, name: str, security_style: str | None = None, oplocks: str = "enable",
                     mode: int = 0o755, uid: int = 0, gid: int = 0) -> Qtree:
        """A new qtree: a directory ``name`` in the root (the volume's style unless given)."""
        self.check_writable()
        bn = check_name(name)
        style = check_style(security_style or self.prop("security_style", "unix"))
        if oplocks not in OPLOCKS:
            raise err(errno.EINVAL, f"unknown oplocks setting {oplocks!r} (use enable or disable)")
        if len(self.qtrees) >= MAX_QTREES:
            raise err(errno.ENOSPC, f"volume {self.meta.name} already has {MAX_QTREES} qtrees, the most it may")
        if self.find(ROOT_INO, bn) is not None:
            raise err(errno.EEXIST, f"{name!r} already exists in the root of volume {self.meta.name}")
        qid = int(self.prop("next_qtree_id", "1"))
        self.entries_changed.append((ROOT_INO, bn))
        # the id is taken first: a failed mkdir skips one, a crash never hands one out twice
        self._put_props(next_qtree_id=str(qid + 1))
        a = self.mkdir(ROOT_INO, bn, mode, uid, gid, xattrs={QTREE_XATTR: encode(qid, style, oplocks)})
        q = Qtree(qid, name, style, oplocks, a.ino)
        self.qtrees[a.ino] = q
        return q

    def qtree_modify(self, name: str, security_style: str | None = None, oplocks: str | None = None) -> Qtree:
        self.check_writable()
        q = self.qtree_show(name)
        style = check_style(security_style) if security_style is not None else q.security_style
        if oplocks is not None and oplocks not in OPLOCKS:
            raise err(errno.EINVAL, f"unknown oplocks setting {oplocks!r} (use enable or disable)")
        new = Qtree(q.id, q.name, style, oplocks or q.oplocks, q.ino)
        with self._txn():
            self._put_xattr(q.ino, QTREE_XATTR, encode(new.id, new.security_style, new.oplocks))
        self.qtrees[q.ino] = new
        return new

    def qtree_delete(self, name: str, force: bool = False) -> None:
        """Remove the qtree and its directory; ENOTEMPTY unless it is empty or ``force``."""
        self.check_writable()
        q = self.qtree_show(name)
        if not force and self.tables.has_entries(q.ino):
            raise err(errno.ENOTEMPTY, f"qtree {name!r} is not empty (use --force to delete it with its files)")
        self.entries_changed.append((ROOT_INO, name.encode()))
        self._remove_tree(q.ino)  # a call per file: a failure leaves the qtree, partly emptied
        self.rmdir(ROOT_INO, name.encode())
        del self.qtrees[q.ino]

    def _remove_tree(self, top: int) -> None:
        for e in self.readdir(top):
            if stat.S_ISDIR(e.attrs.mode):
                self._remove_tree(e.attrs.ino)
                self.rmdir(top, e.name)
            else:
                self.unlink(top, e.name)

    def qtree_root(self, parent: int, name: bytes) -> bool:
        """Is ``name`` in live ``parent`` a qtree's directory?  (A set look-up when
        ``parent`` is not the root.)"""
        if parent != ROOT_INO or not self.qtrees:
            return False
        return self._dirent(parent, name) in self.qtrees

    def moves_across_qtrees(self, src: int, old_parent: int, new_parent: int) -> bool:
        """Would moving directory ``src`` from ``old_parent`` to ``new_parent`` take it into
        another qtree?  (ONTAP moves only files between qtrees.)  Free without qtrees."""
        if not self.qtrees or old_parent == new_parent or not stat.S_ISDIR(self._row(src).mode):
            return False
        return self.qtree_of(old_parent).id != self.qtree_of(new_parent).id

    def qtree_of(self, ino: int, snap: int | None = None) -> Qtree:
        """The qtree inode ``ino`` is in (qtree 0 for the root and what is in no qtree).
        A file with several names is in the qtree of the name found first."""
        top = ino
        while top != ROOT_INO:
            p = self._any_parent(top, snap)
            if p == ROOT_INO:
                break
            top = p
        if snap is None:
            q = self.qtrees.get(top)
        else:
            q = next((q for q in self.qtree_list(snap) if q.ino == top), None) if top != ROOT_INO else None
        return q or Qtree(0, "", self.prop("security_style", "unix"), "enable", 0)

    def _any_parent(self, ino: int, snap: int | None) -> int:
        where, params = self._view(snap)
        r = self._db.execute(f"SELECT parent FROM dirents WHERE ino = ? AND {where} LIMIT 1",
                             (ino, *params)).fetchone()
        if r is None:
            raise err(errno.ENOENT, f"inode {ino} has no name")
        return r[0]


