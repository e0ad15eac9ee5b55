"""``user.DOSATTRIB``: DOS attributes and creation time, as Samba stores them.

Layout (Samba's ``xattr_DOSATTRIB``, little-endian):
a NUL-terminated ASCII string (``"0x20"`` in v1-v3, empty in v4/v5), a uint16
version, the uint16 union level (the version again), then the version's fields
(NDR alignment: the version on a 2-byte boundary, the fields from a 4-byte one).
A blob that is only the hex string (with or without its NUL) is the legacy
form.  :func:`decode` reads v1-v5 and the legacy form; :func:`encode` writes
v5, as Samba >= 4.17 does.  Times are NTTIME (100 ns since 1601).
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass

from ..errors import err

READONLY, HIDDEN, SYSTEM, DIRECTORY, ARCHIVE = 0x1, 0x2, 0x4, 0x10, 0x20
NORMAL, TEMPORARY, SPARSE, REPARSE, COMPRESSED = 0x80, 0x100, 0x200, 0x400, 0x800
OFFLINE, NOT_CONTENT_INDEXED, ENCRYPTED = 0x1000, 0x2000, 0x4000
#: valid_flags bits
VALID_ATTRIB, VALID_EA_SIZE, VALID_SIZE, VALID_ALLOC_SIZE = 0x1, 0x2, 0x4, 0x8
VALID_CREATE_TIME, VALID_CHANGE_TIME, VALID_ITIME = 0x10, 0x20, 0x40
#: NTTIME of the Unix epoch
NTTIME_EPOCH = 116444736000000000
LEGACY = 0xFFFF


@dataclass(frozen=True)
class DosInfo:
    """What a DOSATTRIB says; ``create_time`` is NTTIME or None when not valid."""

    attrib: int
    create_time: int | None = None
    version: int = 5
    valid_flags: int = VALID_ATTRIB
    change_time: int | None = None
    itime: int | None = None


def ns_to_nttime(ns: int) -> int:
    return ns // 100 + NTTIME_EPOCH


def nttime_to_ns(nt: int) -> int:
    return (nt - NTTIME_EPOCH) * 100


def encode(attrib: int, create_time: int | None = None) -> bytes:
    """A v5 blob (what Samba 4.17 writes): the attributes, and the creation time if given."""
    flags = VALID_ATTRIB | (VALID_CREATE_TIME if create_time is not None else 0)
    return b"\0\0" + struct.pack("<HH", 5, 5) + b"\0\0" + struct.pack("<IIQ", flags, attrib & 0xFFFFFFFF,
                                                                     create_time or 0)


def _need(blob: bytes, at: int, n: int, version: int) -> None:
    if len(blob) < at + n:
        raise err(errno.EINVAL, f"DOSATTRIB version {version} is truncated ({len(blob)} bytes)")


def decode(blob: bytes) -> DosInfo:
    """Read any DOSATTRIB blob Samba ever wrote (v1-v5, legacy); EINVAL for anything else."""
    blob = bytes(blob)
    nul = blob.find(b"\0")
    text = blob if nul < 0 else blob[:nul]
    try:
        hexattr = int(text, 16) if text else None
    except ValueError:
        raise err(errno.EINVAL, f"DOSATTRIB attribute string {text[:16]!r} is not hex") from None
    if nul < 0 or nul + 1 == len(blob):  # the legacy form: the string alone
        if hexattr is None:
            raise err(errno.EINVAL, "DOSATTRIB is empty")
        return DosInfo(hexattr, version=LEGACY)
    at = nul + 1 + (nul + 1) % 2  # NDR: the version on a 2-byte boundary, the struct on a 4-byte one
    _need(blob, at, 4, 0)
    version, level = struct.unpack_from("<HH", blob, at)
    at += 4 + (-(at + 4) % 4)
    if version != level:
        raise err(errno.EINVAL, f"DOSATTRIB version {version} with union level {level}")
    if version == 1:
        _need(blob, at, 40, 1)
        attrib, _ea, _size, _alloc, ct, ch = struct.unpack_from("<IIQQQQ", blob, at)
        return DosInfo(attrib, ct, 1, VALID_ATTRIB | VALID_CREATE_TIME | VALID_CHANGE_TIME, ch)
    if version == 2:
        _need(blob, at, 52, 2)
        _f, attrib, _ea, _size, _alloc, ct, ch, _wt = struct.unpack_from("<IIIQQQQQ", blob, at)
        return DosInfo(attrib, ct, 2, VALID_ATTRIB | VALID_CREATE_TIME | VALID_CHANGE_TIME, ch)
    if version == 3:
        _need(blob, at, 44, 3)
        flags, attrib, _ea, _size, _alloc, ct, ch = struct.unpack_from("<IIIQQQQ", blob, at)
    elif version == 4:
        _need(blob, at, 24, 4)
        flags, attrib, it, ct = struct.unpack_from("<IIQQ", blob, at)
        return DosInfo(attrib, ct if flags & VALID_CREATE_TIME else None, 4, flags,
                       itime=it if flags & VALID_ITIME else None)
    elif version == 5:
        _need(blob, at, 16, 5)
        flags, attrib, ct = struct.unpack_from("<IIQ", blob, at)
        ch = None
    else:
        raise err(errno.EINVAL, f"DOSATTRIB version {version} is unknown (1-5 are)")
    if not flags & VALID_ATTRIB and hexattr is not None:
        attrib = hexattr
    return DosInfo(attrib, ct if flags & VALID_CREATE_TIME else None, version, flags,
                   ch if ch is not None and flags & VALID_CHANGE_TIME else None)
