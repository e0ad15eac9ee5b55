"""Paths inside a volume, as the filer commands name files: ``a/b/c`` from the volume's root.

A leading ``/`` is allowed (still from the volume's root, not the host's);
``.`` and empty parts are skipped, ``..`` is refused (EINVAL), so a path
names one file however the caller spells it.
"""

from __future__ import annotations

import errno
import os
from typing import Protocol

from .errors import SnapfsError, err
from .store import ROOT_INO
from .values import Attrs


class _Looks(Protocol):
    def lookup(self, parent: int, name: bytes | str, snap: int | None = None) -> Attrs: ...


def parts(path: str) -> list[bytes]:
    """The names along ``path`` (EINVAL for ``..`` or an empty path)."""
    names = [os.fsencode(p) for p in path.split("/") if p not in ("", ".")]
    if any(n == b".." for n in names):
        raise err(errno.EINVAL, f"{path!r}: '..' is not allowed in a path inside the volume")
    return names


def split(vol: _Looks, path: str, snap: int | None = None) -> tuple[int, bytes]:
    """(inode of the parent directory, last name) of ``path`` (EINVAL for the root itself)."""
    names = parts(path)
    if not names:
        raise err(errno.EINVAL, f"{path!r} names the volume's root, not a file in it")
    parent = ROOT_INO
    try:
        for n in names[:-1]:
            parent = vol.lookup(parent, n, snap).ino
    except SnapfsError as e:
        raise err(e.errno or errno.ENOENT, f"{path!r}: {os.strerror(e.errno or errno.ENOENT).lower()}"
                  " (paths are from the volume's root)") from None
    return parent, names[-1]


def resolve(vol: _Looks, path: str, snap: int | None = None) -> int:
    """The inode ``path`` names (ENOENT, ENOTDIR as a lookup gives them)."""
    ino = ROOT_INO
    try:
        for n in parts(path):
            ino = vol.lookup(ino, n, snap).ino
    except SnapfsError as e:
        raise err(e.errno or errno.ENOENT, f"{path!r}: {os.strerror(e.errno or errno.ENOENT).lower()}"
                  " (paths are from the volume's root)") from None
    return ino
