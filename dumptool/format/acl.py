"""POSIX ACLs in their two byte forms (section 7.3).

The image holds the **ext disk form** (version 1; USER_OBJ, GROUP_OBJ, MASK
and OTHER as 4-byte entries without an id).  ``getxattr``/``setxattr`` of
``system.posix_acl_access``/``_default`` use the **Linux xattr form**
(version 2; every entry 8 bytes, id 0xFFFFFFFF where there is none), whose
codec is :mod:`snapdump.posix_acl` (snapfs stores ACLs in it too); here its
functions raise this package's :class:`FormatError`.  Both forms are
little-endian whatever the image's byte order: restore converts them with
``le``-to-host swaps.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from snapdump import posix_acl
from snapdump.posix_acl import ID_TAGS, AclEntry, AclError, pack_acl_xattr

from ..errors import FormatError
from .constants import ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER, ACL_USER_OBJ, EXT2_ACL_VERSION

__all__ = ["AclEntry", "acl_ext_to_xattr", "acl_xattr_to_ext", "canonical_acl", "pack_acl_xattr",
           "pack_ext_acl", "parse_acl_xattr", "parse_ext_acl"]

_SHORT_TAGS = (ACL_USER_OBJ, ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER)


@contextmanager
def _format_errors() -> Iterator[None]:
    try:
        yield
    except AclError as exc:
        raise FormatError(str(exc)) from None


def canonical_acl(entries: Iterable[AclEntry]) -> list[AclEntry]:
    """*entries* in the kernel's canonical order, checked to be a valid ACL
    (:func:`snapdump.posix_acl.canonical_acl`): restore keeps the image's
    entry order, which the kernel takes in this order only.  Raises
    :class:`FormatError` for an ACL the kernel would not take."""
    with _format_errors():
        return posix_acl.canonical_acl(entries)


def parse_acl_xattr(value: bytes) -> list[AclEntry]:
    """Entries of a Linux xattr-form ACL (what ``os.getxattr`` returns), in order."""
    with _format_errors():
        return posix_acl.parse_acl_xattr(value)


def _ext_acl_count(size: int) -> int:
    # restore's (and the kernel's) ext3_acl_count(): assumes 4 short entries
    size -= 4
    rest = size - 4 * 4
    if rest < 0:
        return -1 if size % 4 else size // 4
    return -1 if rest % 8 else rest // 8 + 4


def parse_ext_acl(value: bytes) -> list[AclEntry]:
    """Entries of an ext disk-form ACL as found in an image, checked as restore does.

    Raises :class:`FormatError` where restore says "ACL bad count/entry"
    (including an empty ACL, which restore cannot apply).
    """
    if len(value) < 4:
        raise FormatError("ACL value is shorter than its header")
    (version,) = struct.unpack_from("<I", value, 0)
    if version != EXT2_ACL_VERSION:
        raise FormatError(f"ext ACL has version {version}, expected {EXT2_ACL_VERSION}")
    count = _ext_acl_count(len(value))
    if count <= 0:
        raise FormatError(f"ext ACL of {len(value)} bytes has a bad entry count")
    out = []
    pos = 4
    for _ in range(count):
        if pos + 4 > len(value):
            raise FormatError("ext ACL entry runs past the value")
        tag, perm = struct.unpack_from("<HH", value, pos)
        if tag in _SHORT_TAGS:
            out.append(AclEntry(tag, perm))
            pos += 4
        elif tag in ID_TAGS:
            if pos + 8 > len(value):
                raise FormatError("ext ACL entry runs past the value")
            out.append(AclEntry(tag, perm, struct.unpack_from("<I", value, pos + 4)[0]))
            pos += 8
        else:
            raise FormatError(f"ext ACL entry has unknown tag {tag:#x}")
    if pos != len(value):
        raise FormatError("ext ACL entries do not use up the value exactly")
    return out


def pack_ext_acl(entries: Iterable[AclEntry]) -> bytes:
    """The ext disk form restore accepts: canonical order, checked (see :func:`canonical_acl`)."""
    out = bytearray(struct.pack("<I", EXT2_ACL_VERSION))
    for e in canonical_acl(entries):
        if e.tag in ID_TAGS:
            out += struct.pack("<HHI", e.tag, e.perm, e.id)
        else:
            out += struct.pack("<HH", e.tag, e.perm)
    return bytes(out)


def acl_xattr_to_ext(value: bytes) -> bytes:
    """Linux xattr form (from getxattr) to the ext disk form for the image."""
    return pack_ext_acl(parse_acl_xattr(value))


def acl_ext_to_xattr(value: bytes) -> bytes:
    """ext disk form (from an image) to the Linux xattr form for setxattr, order kept."""
    return pack_acl_xattr(parse_ext_acl(value))
