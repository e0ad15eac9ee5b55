"""Windows metadata of a Volume: DOS 8.3 names, NT ACL rules, the security style.

:class:`WindowsOps` is one of the parts :class:`snapfs.volume.Volume` is made
of.  DOS attributes, creation times, NT ACLs and named streams are stored as
Samba stores them (``user.DOSATTRIB``, ``security.NTACL``,
``user.DosStream.NAME:$DATA``: plain xattrs, see :mod:`snapfs.windows`); this
part adds what plain xattrs cannot do:

- the DOS 8.3 name of each directory entry (kept in ``dirents``, see
  :mod:`snapfs.shortnames`), read as the read-only virtual xattr
  :data:`DOSNAME_XATTR` (not listed, as the other virtual ones);
- ``security.NTACL`` values are checked: a descriptor Samba can read, at most
  1,024 ACEs per ACL (ONTAP's limit), else EINVAL;
- the security style's rules: a file with only unix permissions in an
  ntfs-style tree reports a default NT ACL made from its owner, group and mode
  (:func:`snapfs.windows.security.default_descriptor`, SIDs ``S-1-22-1-UID`` and
  ``S-1-22-2-GID``, which Samba maps to unix users and groups); a file or
  directory with only an NT ACL (an NT ACL and no permission bits: mode 0, as a
  restore of a file from an ntfs-style tree leaves it) in a unix-style tree shows
  the tree's default unix permissions, until a chmod gives it its own.

:meth:`WindowsOps.security_style` gives the style of an inode: its qtree's
(:mod:`snapfs.qtrees`; qtree 0, outside every qtree, has the volume's).
"""

from __future__ import annotations

import errno
import stat

from .errors import SnapfsError, err
from .store import ROOT_INO, StoreCalls
from .windows import NTACL_XATTR, ntacl, security

DOSNAME_XATTR = b"trusted.snapfs.dosname"
#: virtual xattrs of this part: read-only
READ_ONLY_XATTRS = (DOSNAME_XATTR,)
STYLES = ("unix", "ntfs", "mixed")
#: what a file with only an NT ACL shows in a unix-style tree (ONTAP's qtree default, 0755)
DEFAULT_UNIX_PERMISSIONS = 0o755


class WindowsOps(StoreCalls):
    """DOS names, NT ACL checks and the security style (a Volume part)."""

    def dosname(self, ino: int, snap: int | None = None) -> bytes | None:
        """The DOS 8.3 name of (the first entry naming) ``ino``; None for the root."""
        self._row(ino, snap)
        if ino == ROOT_INO:
            return None
        return self.tables.dosname_of(ino, snap)

    def security_style(self, ino: int, snap: int | None = None) -> str:
        """The security style that rules ``ino``: ``unix``, ``ntfs`` or ``mixed``: its qtree's
        (the volume's for a file unlinked while open, which is in no tree any more)."""
        try:
            return self.qtree_of(ino, snap).security_style
        except SnapfsError as e:
            if e.errno != errno.ENOENT:
                raise
            return self.prop("security_style", "unix")

    def unix_mode_shown(self, ino: int, mode: int, snap: int | None = None) -> int:
        """The mode getattr shows for an inode whose stored ``mode`` has no permission bits:
        a regular file or directory with only an NT ACL in a unix-style tree shows the
        tree's default unix permissions (:data:`DEFAULT_UNIX_PERMISSIONS`); else ``mode``."""
        if stat.S_IFMT(mode) not in (stat.S_IFREG, stat.S_IFDIR) or self.security_style(ino, snap) != "unix":
            return mode
        if snap is None:
            has = NTACL_XATTR in self._xattrs(ino)
        else:
            where, params = self._view(snap)
            has = self._db.execute(f"SELECT 1 FROM xattrs WHERE ino = ? AND name = ? AND {where}",
                                   (ino, NTACL_XATTR, *params)).fetchone() is not None
        return mode | DEFAULT_UNIX_PERMISSIONS if has else mode

    def check_windows_xattr(self, name: bytes, value: bytes) -> None:
        """EINVAL for a ``security.NTACL`` that is no descriptor Samba could read or holds
        an ACL of more than 1,024 ACEs; EPERM for a read-only virtual xattr."""
        if name in READ_ONLY_XATTRS:
            raise err(errno.EPERM, f"{name.decode()} is read-only (the volume keeps it)")
        if name == NTACL_XATTR:
            try:
                ntacl.decode(value)
            except SnapfsError as e:
                raise err(errno.EINVAL, f"security.NTACL refused: {e.message}") from None

    def windows_xattr(self, ino: int, name: bytes, stored: bytes | None, snap: int | None) -> bytes | None:
        """The value getxattr shows for ``name`` given the ``stored`` one (None: not set)."""
        if name == DOSNAME_XATTR:
            return self.dosname(ino, snap)
        if stored is None and name == NTACL_XATTR and self.security_style(ino, snap) == "ntfs":
            row = self._row(ino, snap)
            sd = security.default_descriptor(security.Sid(22, (1, row.uid)), security.Sid(22, (2, row.gid)),
                                             row.mode)
            return ntacl.encode(sd)
        return stored
