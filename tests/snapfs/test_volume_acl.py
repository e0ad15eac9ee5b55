"""The POSIX ACL rules in the Volume (inheritance on create, chmod <-> access ACL),
each one transaction: what the FUSE adapter used to do in two or three calls."""

from __future__ import annotations

import errno
import stat

import pytest
from volume_fixtures import vol, voldir  # noqa: F401 (fixtures)

from snapfs import ROOT_INO, SnapfsError
from snapfs.acl import (ACL_ACCESS, ACL_DEFAULT, ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER, ACL_USER, ACL_USER_OBJ,
                        build, parse)

#: u::rwx, u:1000:rw-, g::r-x, m::rwx, o::r--
FULL = build([[ACL_USER_OBJ, 7, 0], [ACL_USER, 6, 1000], [ACL_GROUP_OBJ, 5, 0], [ACL_MASK, 7, 0],
              [ACL_OTHER, 4, 0]])
MINIMAL = build([[ACL_USER_OBJ, 6, 0], [ACL_GROUP_OBJ, 4, 0], [ACL_OTHER, 0, 0]])


def test_new_inodes_inherit_the_default_acl_with_umask(vol):
    d = vol.mkdir(ROOT_INO, "d", 0o755)
    vol.set_acl(d.ino, ACL_DEFAULT, FULL)
    f = vol.create_file(d.ino, "f", 0o666, umask=0o077)  # a default ACL: the umask is not applied
    assert stat.S_IMODE(f.mode) == 0o664  # the group bits are the mask's, masked by the mode
    assert parse(vol.getxattr(f.ino, ACL_ACCESS))[1] == [ACL_USER, 6, 1000]
    assert vol.xattr(f.ino, ACL_DEFAULT) is None
    sub = vol.mkdir(d.ino, "sub", 0o777, umask=0o077)
    assert vol.getxattr(sub.ino, ACL_DEFAULT) == FULL  # a directory inherits it as its default too
    g = vol.create_file(ROOT_INO, "g", 0o666, umask=0o027)  # no default ACL: the umask
    assert stat.S_IMODE(g.mode) == 0o640 and vol.listxattr(g.ino) == []


def test_chmod_follows_into_the_access_acl_in_the_same_call(vol):
    f = vol.create_file(ROOT_INO, "f", 0o600)
    vol.set_acl(f.ino, ACL_ACCESS, FULL)
    assert stat.S_IMODE(vol.getattr(f.ino).mode) == 0o774
    a = vol.setattr(f.ino, mode=0o640, acl=True)
    assert stat.S_IMODE(a.mode) == 0o640
    entries = {e[0]: e[1] for e in parse(vol.getxattr(f.ino, ACL_ACCESS))}
    assert (entries[ACL_USER_OBJ], entries[ACL_MASK], entries[ACL_OTHER]) == (6, 4, 0)
    vol.setattr(f.ino, mode=0o777)  # without acl: the ACL is the caller's business
    assert {e[0]: e[1] for e in parse(vol.getxattr(f.ino, ACL_ACCESS))}[ACL_MASK] == 4


def test_set_acl_sets_the_mode_and_drops_a_minimal_acl(vol):
    f = vol.create_file(ROOT_INO, "f", 0o777)
    vol.set_acl(f.ino, ACL_ACCESS, FULL)
    vol.set_acl(f.ino, ACL_ACCESS, MINIMAL)  # says no more than the mode: not stored
    assert stat.S_IMODE(vol.getattr(f.ino).mode) == 0o640
    assert vol.xattr(f.ino, ACL_ACCESS) is None
    with pytest.raises(SnapfsError) as e:
        vol.set_acl(f.ino, ACL_DEFAULT, FULL)
    assert e.value.errno == errno.EACCES  # a default ACL on a file, as Linux


def test_set_acl_is_one_transaction(vol, monkeypatch):
    f = vol.create_file(ROOT_INO, "f", 0o600)
    before = vol.getattr(f.ino)

    def boom(*a, **k):
        raise OSError(errno.EIO, "disk on fire")

    monkeypatch.setattr(vol, "_put_xattr", boom)  # fails after the mode was changed
    with pytest.raises(OSError):
        vol.set_acl(f.ino, ACL_ACCESS, FULL)
    monkeypatch.undo()
    assert vol.getattr(f.ino) == before and vol.listxattr(f.ino) == []
