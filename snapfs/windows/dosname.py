"""DOS 8.3 short names, generated as ONTAP documents it.

A name that already fits 8.3 (at most 8 characters, a dot and at most 3,
DOS's characters only) is its own short name, in upper case.  Any other name
gets the first 6 usable characters of its base, ``~1`` .. ``~5`` and the first
3 of its last extension (``specification.htm`` -> ``SPECIF~1.HTM``); when
those five are taken, a name that has nothing to do with the long one: 2
characters, 4 hex digits of a hash and ``~1`` (``SP3A9F~1.HTM``), the hash
varied until it is free.  The volume stores the result per directory entry,
unique within its directory (case-insensitive, as DOS compares names).
"""

from __future__ import annotations

import re
import zlib
from typing import Callable, Iterator

#: characters a short name may hold besides A-Z and 0-9
_SPECIAL = set(b"!#$%&'()-@^_`{}~")
_TILDES = 5


def _ok(c: int) -> bool:
    return 48 <= c <= 57 or 65 <= c <= 90 or c in _SPECIAL or c >= 128


_DOS_CHARS = rb"[A-Z0-9!#$%&'()\-@^_`{}~]"
_SHORT = re.compile(_DOS_CHARS + rb"{1,8}(?:\." + _DOS_CHARS + rb"{1,3})?")


def is_short(name: bytes) -> bool:
    """Does ``name`` fit 8.3 already (compared in upper case)?"""
    return _SHORT.fullmatch(name.upper()) is not None


def _clean(part: bytes) -> bytes:
    return bytes(c if _ok(c) and c < 128 else ord("_") for c in part.upper() if c not in b" .")


def candidates(name: bytes) -> Iterator[bytes]:
    """Short names for ``name`` in the order to try them (endless; the caller takes the first free)."""
    if is_short(name):
        yield name.upper()
    stripped = name.lstrip(b".")
    base, dot, ext = stripped.rpartition(b".") if b"." in stripped else (stripped, b"", b"")
    base, ext = _clean(base) or b"_", _clean(ext)[:3]
    tail = b"." + ext if ext else b""
    for n in range(1, _TILDES + 1):
        yield base[:6] + b"~%d" % n + tail
    salt = 0
    while True:
        h = zlib.crc32(name + salt.to_bytes(4, "little")) & 0xFFFF
        yield base[:2] + b"%04X~1" % h + tail
        salt += 1


def generate(name: bytes, taken: Callable[[bytes], bool]) -> bytes:
    """The first candidate for ``name`` that ``taken`` says is free in its directory."""
    for c in candidates(name):
        if not taken(c):
            return c
    raise AssertionError("unreachable: candidates never end")
