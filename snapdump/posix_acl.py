"""POSIX ACLs in the Linux xattr form, the one codec of the project.

``getxattr``/``setxattr`` of :data:`ACL_ACCESS` and :data:`ACL_DEFAULT` carry
``posix_acl_xattr_header`` (version 2, u32) and then one
``posix_acl_xattr_entry`` per entry (tag u16, perm u16, id u32), little
endian; the id is :data:`ACL_UNDEFINED_ID` for the entries that name no user
or group.  snapfs stores and enforces ACLs in this form; the dump engine
turns it into the ext disk form of an image and back
(:mod:`dumptool.format.acl`).  Neither depends on the other, so the codec is
here.  A value that is not such an ACL raises :class:`AclError`, which each
caller says in its own family (EINVAL or EOPNOTSUPP for a volume, a
``FormatError`` for an image).
"""

from __future__ import annotations

import errno as _errno
import struct
from collections.abc import Iterable
from dataclasses import dataclass

ACL_ACCESS = b"system.posix_acl_access"
ACL_DEFAULT = b"system.posix_acl_default"
POSIX_ACL_XATTR_VERSION = 2
ACL_UNDEFINED_ID = 0xFFFFFFFF

ACL_USER_OBJ = 0x01
ACL_USER = 0x02
ACL_GROUP_OBJ = 0x04
ACL_GROUP = 0x08
ACL_MASK = 0x10
ACL_OTHER = 0x20

ACL_READ = 4
ACL_WRITE = 2
ACL_EXECUTE = 1

#: The tags whose entries name a user or group (the others' id is undefined).
ID_TAGS = (ACL_USER, ACL_GROUP)
# the kernel's canonical order: USER_OBJ, USER..., GROUP_OBJ, GROUP..., MASK, OTHER
_TAG_RANK = {ACL_USER_OBJ: 0, ACL_USER: 1, ACL_GROUP_OBJ: 2, ACL_GROUP: 3, ACL_MASK: 4, ACL_OTHER: 5}
_HEADER = struct.Struct("<I")
_ENTRY = struct.Struct("<HHI")


class AclError(ValueError):
    """Not a POSIX ACL the kernel would take; ``errno`` is what setxattr would say."""

    def __init__(self, message: str, errno: int = _errno.EINVAL) -> None:
        super().__init__(message)
        self.errno = errno


@dataclass(frozen=True)
class AclEntry:
    """One ACL entry.  ``id`` is a uid/gid for ACL_USER/ACL_GROUP, else ACL_UNDEFINED_ID."""

    tag: int
    perm: int
    id: int = ACL_UNDEFINED_ID


def parse_acl_xattr(value: bytes) -> list[AclEntry]:
    """Entries of a Linux xattr-form ACL (what ``os.getxattr`` returns), in order."""
    if len(value) < _HEADER.size or (len(value) - _HEADER.size) % _ENTRY.size:
        raise AclError(f"ACL xattr value of {len(value)} bytes is not 4 + 8*n")
    (version,) = _HEADER.unpack_from(value)
    if version != POSIX_ACL_XATTR_VERSION:
        raise AclError(f"ACL xattr has version {version}, expected {POSIX_ACL_XATTR_VERSION}", _errno.EOPNOTSUPP)
    out = []
    for off in range(_HEADER.size, len(value), _ENTRY.size):
        tag, perm, ident = _ENTRY.unpack_from(value, off)
        out.append(AclEntry(tag, perm, ident if tag in ID_TAGS else ACL_UNDEFINED_ID))
    return out


def pack_acl_xattr(entries: Iterable[AclEntry]) -> bytes:
    """The Linux xattr form of *entries*, in the given order."""
    return _HEADER.pack(POSIX_ACL_XATTR_VERSION) + b"".join(
        _ENTRY.pack(e.tag, e.perm, e.id if e.tag in ID_TAGS else ACL_UNDEFINED_ID) for e in entries)


def canonical_acl(entries: Iterable[AclEntry]) -> list[AclEntry]:
    """*entries* in the kernel's canonical order, checked to be a valid ACL.

    The kernel refuses any order other than USER_OBJ, USER (ascending id),
    GROUP_OBJ, GROUP (ascending id), MASK, OTHER; an ACL with named entries
    needs a MASK.  Raises :class:`AclError` for an ACL the kernel would not take.
    """
    items = list(entries)
    for e in items:
        if e.tag not in _TAG_RANK:
            raise AclError(f"ACL entry has unknown tag {e.tag:#x}")
        if not 0 <= e.perm <= 7:
            raise AclError(f"ACL entry has bad permissions {e.perm:#o}")
    counts = {tag: sum(1 for e in items if e.tag == tag) for tag in _TAG_RANK}
    if counts[ACL_USER_OBJ] != 1 or counts[ACL_GROUP_OBJ] != 1 or counts[ACL_OTHER] != 1:
        raise AclError("ACL needs exactly one user::, group:: and other:: entry")
    if counts[ACL_MASK] > 1 or (counts[ACL_USER] + counts[ACL_GROUP] and not counts[ACL_MASK]):
        raise AclError("ACL with named users or groups needs exactly one mask:: entry")
    for tag in ID_TAGS:
        ids = [e.id for e in items if e.tag == tag]
        if len(set(ids)) != len(ids):
            raise AclError("ACL names the same user or group twice")
    items = [e if e.tag in ID_TAGS else AclEntry(e.tag, e.perm) for e in items]
    return sorted(items, key=lambda e: (_TAG_RANK[e.tag], e.id if e.tag in ID_TAGS else 0))
