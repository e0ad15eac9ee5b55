"""What two packages both speak is defined once, in snapdump (issue 11, item 6):
the names a snapfs mount shows other programs, and the POSIX ACL xattr codec."""

from __future__ import annotations

import ast
from pathlib import Path

from snapdump import posix_acl
from snapdump.posix_acl import ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER, ACL_USER, ACL_USER_OBJ, AclEntry, pack_acl_xattr

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("snapdump", "tapelib", "dumptool", "snapfs", "ndmp")


def _modules():
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            yield path.relative_to(ROOT).as_posix(), ast.parse(path.read_text())


def _is_snapfs_name(value: object) -> bool:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return isinstance(value, str) and (value == ".snapshot" or value.startswith("user.snapfs.")
                                       or value == "trusted.snapfs.ino")


def test_the_names_a_snapfs_mount_shows_are_spelled_once() -> None:
    spelled = [f"{name}:{node.lineno}: {node.value!r}" for name, tree in _modules() if name != "snapdump/snapfs_names.py"
               for node in ast.walk(tree) if isinstance(node, ast.Constant) and _is_snapfs_name(node.value)]
    assert not spelled, "spelled again outside snapdump/snapfs_names.py:\n" + "\n".join(spelled)


def test_snapfs_client_exports_them() -> None:
    from snapfs import client

    assert client.SNAPDIR_NAME == b".snapshot" and client.INO_XATTR == b"user.snapfs.ino"


def test_the_acl_xattr_form_is_defined_once() -> None:
    """Its version word and tags are assigned in snapdump/posix_acl.py only."""
    names = {"POSIX_ACL_XATTR_VERSION", "ACL_USER_OBJ", "ACL_USER", "ACL_GROUP_OBJ", "ACL_GROUP", "ACL_MASK",
             "ACL_OTHER", "ACL_UNDEFINED_ID"}
    assigned = [f"{name}:{node.lineno}" for name, tree in _modules() if name != "snapdump/posix_acl.py"
                for node in ast.walk(tree) if isinstance(node, ast.Assign)
                for target in node.targets for t in ast.walk(target)
                if isinstance(t, ast.Name) and t.id in names]
    assert not assigned, assigned


def test_snapfs_and_the_dump_format_read_each_others_acls() -> None:
    from dumptool.format import AclEntry as FormatEntry
    from dumptool.format import acl_ext_to_xattr, acl_xattr_to_ext
    from snapfs import acl

    assert FormatEntry is AclEntry
    entries = [[ACL_USER_OBJ, 7, 0], [ACL_USER, 6, 1000], [ACL_GROUP_OBJ, 5, 0], [ACL_MASK, 7, 0], [ACL_OTHER, 4, 0]]
    value = acl.build(entries)
    assert value == pack_acl_xattr(AclEntry(*e) for e in entries)
    assert acl_ext_to_xattr(acl_xattr_to_ext(value)) == value  # through an image and back
    assert [e[:2] for e in acl.parse(value)] == [e[:2] for e in entries]
    assert posix_acl.parse_acl_xattr(value)[1] == AclEntry(ACL_USER, 6, 1000)
