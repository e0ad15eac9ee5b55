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

The xattr value's codec is :mod:`snapdump.posix_acl`, which the dump engine
shares; here an ACL's entries are ``[tag, perm, id]`` lists the rules change
in place.
"""

from __future__ import annotations

from snapdump.posix_acl import (ACL_ACCESS, ACL_DEFAULT, ACL_GROUP, ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER, ACL_USER,
                                ACL_USER_OBJ, AclEntry, AclError, pack_acl_xattr, parse_acl_xattr)

from .errors import SnapfsError

__all__ = ["ACL_ACCESS", "ACL_DEFAULT", "ACL_GROUP", "ACL_GROUP_OBJ", "ACL_MASK", "ACL_OTHER", "ACL_USER",
           "ACL_USER_OBJ", "Entry", "build", "chmod", "inherit", "mode_of", "parse"]

#: One entry as the rules below change it in place: [tag, perm, id].
Entry = list


def parse(value: bytes) -> list[Entry]:
    """The entries of an xattr-form ACL (:mod:`snapdump.posix_acl`), as
    ``[tag, perm, id]`` lists; EINVAL (or EOPNOTSUPP) where it is none."""
    try:
        return [[e.tag, e.perm, e.id] for e in parse_acl_xattr(value)]
    except AclError as exc:
        raise SnapfsError(str(exc), exc.errno) from None


def build(entries: list[Entry]) -> bytes:
    """The xattr form of ``[tag, perm, id]`` entries."""
    return pack_acl_xattr(AclEntry(*e) for e in entries)


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
