"""Junctions: where another volume is mounted into this one, shown as a symbolic link.

:class:`JunctionOps` is one of the parts :class:`snapfs.volume.Volume` is made
of.  A junction is a symbolic link whose target is the other volume's mount
point when the junction is made (its volume folder when it is not mounted
then), carrying the xattr :data:`JUNCTION_XATTR` (``trusted.snapfs.junction``):
``uuid=...;name=...;path=...`` of the other volume (:func:`encode`/:func:`decode`).
So ``ls -l`` shows where it leads, a dump records it as the symbolic link it
is, and a snapshot keeps the junction as it was (the link and the xattr are
versioned rows).  The mount refuses to change the xattr.  The other volume is
checked by whoever resolves it (:meth:`snapfs.client.Client.junction_create`):
an unknown volume is refused there.
"""

from __future__ import annotations

import errno
import stat
from dataclasses import dataclass
from typing import Callable

from . import volpaths
from .errors import err
from .store import StoreCalls
from .values import Attrs

JUNCTION_XATTR = b"trusted.snapfs.junction"


@dataclass(frozen=True, slots=True)
class Junction:
    """A junction at ``path`` (from the volume's root) to volume ``volume`` (its name)."""

    path: str
    volume: str
    uuid: str
    volume_path: str
    target: str
    ino: int


def encode(uuid: str, name: str, path: str) -> bytes:
    for v in (uuid, name, path):
        if ";" in v or "\n" in v:
            raise err(errno.EINVAL, f"{v!r}: a junction's volume may not have ';' or a newline in it")
    return f"uuid={uuid};name={name};path={path}".encode()


def decode(value: bytes) -> dict[str, str]:
    """The fields of a :data:`JUNCTION_XATTR` value (ValueError if malformed)."""
    fields = dict(p.split("=", 1) for p in value.decode().split(";"))
    if not {"uuid", "name", "path"} <= fields.keys():
        raise ValueError(f"bad junction record {value!r}")
    return fields


class JunctionOps(StoreCalls):
    """junction_create, junction_list, junction_delete (a Volume part)."""

    # what else the Volume gives this part
    _make: Callable[..., Attrs]
    entries_changed: list[tuple[int, bytes]]

    def junction_create(self, path: str, uuid: str, name: str, volume_path: str, target: str) -> Junction:
        """A junction at ``path`` (its parent must exist) to the volume ``uuid``/``name``
        in folder ``volume_path``; the symbolic link points to ``target``."""
        self.check_writable()
        if uuid == self.volume_identity().uuid:
            raise err(errno.EINVAL, f"a junction of volume {self.meta.name} may not lead to itself")
        parent, last = volpaths.split(self, path)
        value = encode(uuid, name, volume_path)
        if not target or len(target.encode()) >= 4096:
            raise err(errno.EINVAL, f"bad junction target {target!r}")
        self.entries_changed.append((parent, last))
        # the link and its record in one call (one transaction)
        a = self._make(parent, last, stat.S_IFLNK | 0o777, 0, 0, target=target.encode(),
                       xattrs={JUNCTION_XATTR: value})
        return Junction("/".join(p.decode(errors="surrogateescape") for p in volpaths.parts(path)),
                        name, uuid, volume_path, target, a.ino)

    def junction_list(self, snap: int | None = None) -> list[Junction]:
        where, params = self._view(snap)
        out = []
        for ino, value in self._db.execute(f"SELECT ino, value FROM xattrs WHERE name = ? AND {where}"
                                           " ORDER BY ino", (JUNCTION_XATTR, *params)).fetchall():
            f = decode(value)
            out.append(Junction(self.path_of(ino, snap), f["name"], f["uuid"], f["path"],
                                self.readlink(ino, snap).decode(errors="surrogateescape"), ino))
        return out

    def junction_delete(self, path: str) -> None:
        self.check_writable()
        a = self.getattr(volpaths.resolve(self, path))
        parent, last = volpaths.split(self, path)
        if not stat.S_ISLNK(a.mode) or JUNCTION_XATTR not in self._xattrs(a.ino):
            raise err(errno.EINVAL, f"{path!r} is not a junction")
        self.entries_changed.append((parent, last))
        self.unlink(parent, last)

    def path_of(self, ino: int, snap: int | None = None) -> str:
        """A path (from the root) of inode ``ino``: the first name found at each level."""
        where, params = self._view(snap)
        names = []
        while ino != 1:
            r = self._db.execute(f"SELECT parent, name FROM dirents WHERE ino = ? AND {where} LIMIT 1",
                                 (ino, *params)).fetchone()
            if r is None:
                raise err(errno.ENOENT, f"inode {ino} has no name")
            ino = r[0]
            names.append(r[1].decode(errors="surrogateescape"))
        return "/".join(reversed(names))
