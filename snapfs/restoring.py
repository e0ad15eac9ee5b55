"""What a restore into a volume sets that the mount cannot: the filer's objects of a dump's Pass V.

A restore (``pyrestore``, see ``dumptool/filer_objects.py``) makes the files
through the mount, then, for what came in the image's Pass V:

- :meth:`RestoringOps.dosnames_set`: the DOS 8.3 names of entries of one directory, as the
  dumped volume had them (the names a volume generates depend on the order the
  entries were made in; a restore makes them in another order).  The entries
  are taken out and put back with their names in one transaction, so two
  entries may swap names; a name another entry keeps is not taken from it
  (the entry then gets a free one, as a rename does).
- :meth:`RestoringOps.lun_adopt`: an existing regular file at the root of the volume or of a
  qtree becomes a LUN with the dumped record's ostype, space reservation,
  state and serial (a new serial when another LUN has that one); its size is
  the file's.  A clone comes back an independent LUN.
- :meth:`RestoringOps.lun_release`: the reverse, for a LUN the restore is about to write
  over (a LUN cannot be truncated, renamed aside or replaced through the
  mount): it becomes a plain file with the same data; the image's Pass V makes
  it a LUN again.  A clone is refused (its data is partly its snapshot's).
- :meth:`RestoringOps.qtree_adopt`: an existing directory in the volume's root becomes a
  qtree with the dumped id (a new one when that id is taken), security style
  and oplocks.
- :meth:`RestoringOps.junction_adopt`: an existing symbolic link becomes a junction to the
  volume of a dumped junction record (the link keeps the target it was restored with).
"""

from __future__ import annotations

import errno
import stat

from . import junctions as _junctions
from . import luns as _luns
from . import qtrees as _qtrees
from . import volpaths
from .errors import err
from .identity import check_style
from .store import ROOT_INO, StoreCalls


class RestoringOps(StoreCalls):
    """The Volume's calls a restore makes for Pass V (see the module)."""

    def dosnames_set(self, directory: str, names: dict[bytes, bytes]) -> int:
        """Give the entries of ``directory`` (a path from the root) the DOS names ``names``
        (entry name -> 8.3 name); the number of entries that have their name after."""
        self.check_writable()
        parent = volpaths.resolve(self, directory)
        if not stat.S_ISDIR(self.getattr(parent).mode):
            raise err(errno.ENOTDIR, f"{directory!r} is not a directory")
        done = 0
        with self._txn():
            taken = []
            for name in names:
                ino = self._take_dirent(parent, name)
                if ino is not None:
                    taken.append((name, ino))
            for name, ino in taken:
                self._add_dirent(parent, name, ino, names[name])
                self.entries_changed.append((parent, name))
                done += self.tables.dosname(parent, name) == names[name]
        return done

    def lun_adopt(self, path: str, record: str) -> _luns.Lun:
        """Make regular file ``path`` a LUN with the fields of ``record`` (a LUN record's text)."""
        self.check_writable()
        parent, last = self._lun_place(path)
        ino = self.lookup(parent, last).ino
        a = self.getattr(ino)
        if not stat.S_ISREG(a.mode):
            raise err(errno.EINVAL, f"{path!r} is not a regular file: it cannot become a LUN")
        try:
            fields = dict(p.split("=", 1) for p in record.split(";"))
            ostype, reserve, state = fields["ostype"], fields["space-reserve"], fields["state"]
            serial = fields["serial"]
        except (ValueError, KeyError):
            raise err(errno.EINVAL, f"bad LUN record {record!r}") from None
        _luns.check_ostype(ostype)
        if reserve not in _luns.SPACE_RESERVE or state not in _luns.STATES:
            raise err(errno.EINVAL, f"bad LUN record {record!r}")
        if not 0 < a.size <= _luns.MAX_FILE_SIZE:
            raise err(errno.EINVAL, f"{path!r} is empty: a LUN has at least one byte")
        if len(serial) != _luns.SERIAL_LEN or any(r.serial == serial for i, r in self.luns.items() if i != ino):
            serial = self._new_serial()
        rec = _luns.LunRecord(serial, ostype, a.size, reserve, state, None)
        if reserve == "enabled":
            self._room_for(max(0, self._blocks(rec) - a.blocks * 512 // self._bs), True)
        self._put_record(ino, rec)
        self._arm()
        self._count_fresh()
        return self.lun_info(ino)

    def lun_release(self, path: str) -> None:
        """Make LUN ``path`` a plain file (see the module); EINVAL for a clone or a file that is no LUN."""
        self.check_writable()
        ino, rec = self._lun_ino(path)
        if rec.backing is not None:
            raise err(errno.EINVAL, f"LUN {path!r} is a clone: split it (snapfs lun split) before restoring over it")
        with self._txn():
            self._drop_xattr(ino, _luns.LUN_XATTR)
        del self.luns[ino]
        self.lun_fresh.pop(ino, None)
        self._sum_outstanding()

    def qtree_adopt(self, name: str, qid: int, security_style: str, oplocks: str) -> _qtrees.Qtree:
        """Make directory ``name`` of the volume's root a qtree (id ``qid`` when free)."""
        self.check_writable()
        bn = _qtrees.check_name(name)
        style = check_style(security_style)
        if oplocks not in _qtrees.OPLOCKS:
            raise err(errno.EINVAL, f"unknown oplocks setting {oplocks!r} (use enable or disable)")
        ino = self.lookup(ROOT_INO, bn).ino
        if not stat.S_ISDIR(self.getattr(ino).mode):
            raise err(errno.ENOTDIR, f"{name!r} is not a directory: it cannot become a qtree")
        old = self.qtrees.get(ino)
        used = {q.id for i, q in self.qtrees.items() if i != ino}
        nxt = int(self.prop("next_qtree_id", "1"))
        if old is None and len(self.qtrees) >= _qtrees.MAX_QTREES:
            raise err(errno.ENOSPC, f"volume {self.meta.name} already has {_qtrees.MAX_QTREES} qtrees, the most it may")
        if qid < 1 or qid in used:
            qid = old.id if old is not None else max(nxt, max(used, default=0) + 1)
        self._put_props(next_qtree_id=str(max(nxt, qid + 1)))
        with self._txn():
            self._put_xattr(ino, _qtrees.QTREE_XATTR, _qtrees.encode(qid, style, oplocks))
        q = _qtrees.Qtree(qid, name, style, oplocks, ino)
        self.qtrees[ino] = q
        self.entries_changed.append((ROOT_INO, bn))
        return q

    def junction_adopt(self, path: str, uuid: str, name: str, volume_path: str) -> _junctions.Junction:
        """Make symbolic link ``path`` a junction to volume ``uuid``/``name`` in folder ``volume_path``
        (the caller checked that volume, as :meth:`snapfs.client.Client.junction_adopt` does)."""
        self.check_writable()
        if uuid == self.volume_identity().uuid:
            raise err(errno.EINVAL, f"a junction of volume {self.meta.name} may not lead to itself")
        value = _junctions.encode(uuid, name, volume_path)
        ino = volpaths.resolve(self, path)
        if not stat.S_ISLNK(self.getattr(ino).mode):
            raise err(errno.EINVAL, f"{path!r} is not a symbolic link: it cannot become a junction")
        parent, last = volpaths.split(self, path)
        with self._txn():
            self._put_xattr(ino, _junctions.JUNCTION_XATTR, value)
        self.entries_changed.append((parent, last))
        return _junctions.Junction("/".join(p.decode(errors="surrogateescape") for p in volpaths.parts(path)),
                                   name, uuid, volume_path, self.readlink(ino).decode(errors="surrogateescape"), ino)
