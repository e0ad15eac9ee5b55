"""POSIX ACLs in their two byte forms (section 7.3).

The image holds the **ext disk form** (version 1; USER_OBJ, GROUP_OBJ, MASK
and OTHER as 4-byte entries without an id).  ``getxattr``/``setxattr`` of
``system.posix_acl_access``/``_default`` use the **Linux xattr form**
(version 2; every entry 8 bytes, id 0xFFFFFFFF where there is none).  Both
are little-endian whatever the image's byte order: restore converts them
with ``le``-to-host swaps.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import FormatError
from .constants import (
    ACL_GROUP,
    ACL_GROUP_OBJ,
    ACL_MASK,
    ACL_OTHER,
    ACL_UNDEFINED_ID,
    ACL_USER,
    ACL_USER_OBJ,
    EXT2_ACL_VERSION,
    POSIX_ACL_XATTR_VERSION,
)

_SHORT_TAGS = (ACL_USER_OBJ, ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER)
_ID_TAGS = (ACL_USER, ACL_GROUP)
# the kernel's canonical order: USER_OBJ, USER..., GROUP_OBJ, GROUP..., MASK, OTHER
_TAG_RANK = {ACL_USER_OBJ: 0, ACL_USER: 1, ACL_GROUP_OBJ: 2, ACL_GROUP: 3, ACL_MASK: 4, ACL_OTHER: 5}


@dataclass(frozen=True)
class AclEntry:
    """One ACL entry.  ``id`` is a uid/gid for ACL_USER/ACL_GROUP, else ACL_UNDEFINED_ID."""

    tag: int
    perm: int
    id: int = ACL_UNDEFINED_ID


def canonical_acl(entries: Iterable[AclEntry]) -> list[AclEntry]:
    """*entries* in the kernel's canonical order, checked to be a valid ACL.

    restore keeps the image's entry order and the kernel refuses any other
    than USER_OBJ, USER (ascending id), GROUP_OBJ, GROUP (ascending id),
    MASK, OTHER; an ACL with named entries needs a MASK.  Raises
    :class:`FormatError` for an ACL the kernel would not take.
    """
    items = list(entries)
    for e in items:
        if e.tag not in _TAG_RANK:
            raise FormatError(f"ACL entry has unknown tag {e.tag:#x}")
        if not 0 <= e.perm <= 7:
            raise FormatError(f"ACL entry has bad permissions {e.perm:#o}")
    counts = {tag: sum(1 for e in items if e.tag == tag) for tag in _TAG_RANK}
    if counts[ACL_USER_OBJ] != 1 or counts[ACL_GROUP_OBJ] != 1 or counts[ACL_OTHER] != 1:
        raise FormatError("ACL needs exactly one user::, group:: and other:: entry")
    if counts[ACL_MASK] > 1 or (counts[ACL_USER] + counts[ACL_GROUP] and not counts[ACL_MASK]):
        raise FormatError("ACL with named users or groups needs exactly one mask:: entry")
    for tag in _ID_TAGS:
        ids = [e.id for e in items if e.tag == tag]
        if len(set(ids)) != len(ids):
            raise FormatError("ACL names the same user or group twice")
    items = [e if e.tag in _ID_TAGS else AclEntry(e.tag, e.perm) for e in items]
    return sorted(items, key=lambda e: (_TAG_RANK[e.tag], e.id if e.tag in _ID_TAGS else 0))


def parse_acl_xattr(value: bytes) -> list[AclEntry]:
    """Entries of a Linux xattr-form ACL (what ``os.getxattr`` returns), in order."""
    if len(value) < 4 or (len(value) - 4) % 8:
        raise FormatError(f"ACL xattr value of {len(value)} bytes is not 4 + 8*n")
    (version,) = struct.unpack_from("<I", value, 0)
    if version != POSIX_ACL_XATTR_VERSION:
        raise FormatError(f"ACL xattr has version {version}, expected {POSIX_ACL_XATTR_VERSION}")
    out = []
    for off in range(4, len(value), 8):
        tag, perm, ident = struct.unpack_from("<HHI", value, off)
        out.append(AclEntry(tag, perm, ident if tag in _ID_TAGS else ACL_UNDEFINED_ID))
    return out


def pack_acl_xattr(entries: Iterable[AclEntry]) -> bytes:
    """The Linux xattr form of *entries*, in the given order (as restore builds it)."""
    out = bytearray(struct.pack("<I", POSIX_ACL_XATTR_VERSION))
    for e in entries:
        out += struct.pack("<HHI", e.tag, e.perm, e.id if e.tag in _ID_TAGS else ACL_UNDEFINED_ID)
    return bytes(out)


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
        elif tag in _ID_TAGS:
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
        if e.tag in _ID_TAGS:
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
