"""POSIX ACLs in their xattr form, and the rules a file system owes them.

With pyfuse3's ``enable_acl`` the kernel enforces ACLs itself (it reads
``system.posix_acl_access`` through getxattr) but leaves three duties to the
file system, which ext4 does in ``ext4_set_acl``/``ext4_init_acl``:

* a new inode under a directory with a default ACL inherits it
  (:func:`inherit`, the kernel's ``posix_acl_create``);
* chmod rewrites the owner, mask (or group) and other entries
  (:func:`chmod`, the kernel's ``posix_acl_chmod``);
* setting an access ACL sets the mode's permission bits, and an ACL that
  says no more than the mode is not stored (:func:`mode_of`).

The xattr value is ``posix_acl_xattr_header`` (version 2) followed by
``posix_acl_xattr_entry`` records (tag u16, perm u16, id u32, little endian).
"""

from __future__ import annotations

import errno
import struct

from .errors import err

ACL_ACCESS = b"system.posix_acl_access"
ACL_DEFAULT = b"system.posix_acl_default"
POSIX_ACL_XATTR_VERSION = 2
ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_GROUP, ACL_MASK, ACL_OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_HDR = struct.Struct("<I")
_ENT = struct.Struct("<HHI")

Entry = list  # [tag, perm, id]


def parse(value: bytes) -> list[Entry]:
    if len(value) < _HDR.size or (len(value) - _HDR.size) % _ENT.size:
        raise err(errno.EINVAL, "malformed POSIX ACL")
    if _HDR.unpack_from(value)[0] != POSIX_ACL_XATTR_VERSION:
        raise err(errno.EOPNOTSUPP, "unsupported POSIX ACL version")
    return [list(_ENT.unpack_from(value, off)) for off in range(_HDR.size, len(value), _ENT.size)]


def build(entries: list[Entry]) -> bytes:
    return _HDR.pack(POSIX_ACL_XATTR_VERSION) + b"".join(_ENT.pack(*e) for e in entries)


def _is_minimal(entries: list[Entry]) -> bool:
    return all(e[0] in (ACL_USER_OBJ, ACL_GROUP_OBJ, ACL_OTHER) for e in entries)


def _apply_mode(entries: list[Entry], mode: int) -> int:
    """Mask the owner, group-class and other entries with ``mode``; returns the resulting mode bits."""
    has_mask = any(e[0] == ACL_MASK for e in entries)
    bits = {ACL_USER_OBJ: 6, ACL_OTHER: 0, (ACL_MASK if has_mask else ACL_GROUP_OBJ): 3}
    out = 0
    for e in entries:
        if e[0] in bits:
            e[1] &= (mode >> bits[e[0]]) & 7
            out |= e[1] << bits[e[0]]
    return (mode & ~0o777) | out


def inherit(default_acl: bytes | None, mode: int, umask: int, is_dir: bool) -> tuple[int, dict[bytes, bytes]]:
    """Mode and ACL xattrs of a new inode whose parent has ``default_acl`` (None: apply umask)."""
    if default_acl is None:
        return mode & ~umask, {}
    entries = parse(default_acl)
    new_mode = _apply_mode(entries, mode)
    xattrs: dict[bytes, bytes] = {}
    if not _is_minimal(entries):
        xattrs[ACL_ACCESS] = build(entries)
    if is_dir:
        xattrs[ACL_DEFAULT] = default_acl
    return new_mode, xattrs


def chmod(access_acl: bytes, mode: int) -> bytes:
    """The access ACL after chmod to ``mode``."""
    entries = parse(access_acl)
    has_mask = any(e[0] == ACL_MASK for e in entries)
    bits = {ACL_USER_OBJ: 6, ACL_OTHER: 0, (ACL_MASK if has_mask else ACL_GROUP_OBJ): 3}
    for e in entries:
        if e[0] in bits:
            e[1] = (mode >> bits[e[0]]) & 7
    return build(entries)


def mode_of(access_acl: bytes, mode: int) -> tuple[int, bool]:
    """The mode an access ACL implies, and whether the ACL must be stored (not minimal)."""
    entries = parse(access_acl)
    has_mask = any(e[0] == ACL_MASK for e in entries)
    bits = {ACL_USER_OBJ: 6, ACL_OTHER: 0, (ACL_MASK if has_mask else ACL_GROUP_OBJ): 3}
    out = 0
    for e in entries:
        if e[0] in bits:
            out |= (e[1] & 7) << bits[e[0]]
    return (mode & ~0o777) | out, not _is_minimal(entries)
