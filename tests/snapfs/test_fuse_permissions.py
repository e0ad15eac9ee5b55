"""Permission checks for a non-root user, and POSIX ACLs with setfacl/getfacl."""

from __future__ import annotations

import os
import subprocess

import pytest
from fuse_fixtures import NOBODY, Mounted, as_nobody, mounted  # noqa: F401 (fixtures)

pytestmark = pytest.mark.fuse


def getfacl(path) -> str:
    return subprocess.run(["getfacl", "-cpn", str(path)], capture_output=True, text=True, check=True).stdout


def test_mode_bits_are_enforced_for_a_non_root_user(mounted: Mounted):
    m = mounted.mnt
    (m / "secret").write_bytes(b"s")
    os.chmod(m / "secret", 0o600)
    (m / "public").write_bytes(b"p")
    os.chmod(m / "public", 0o644)
    assert as_nobody(m, "cat", "secret").returncode != 0
    assert as_nobody(m, "cat", "public").stdout == "p"
    assert as_nobody(m, "sh", "-c", "echo x > public").returncode != 0
    assert as_nobody(m, "touch", "new").returncode != 0  # root dir is 0755 root
    (m / "open").mkdir(mode=0o777)
    os.chmod(m / "open", 0o1777)
    as_nobody(m, "touch", "open/mine", check=True)
    st = os.stat(m / "open" / "mine")
    assert (st.st_uid, st.st_gid) == (NOBODY, NOBODY)
    (m / "open" / "roots").write_bytes(b"")
    assert as_nobody(m, "rm", "-f", "open/roots").returncode != 0  # sticky bit
    assert as_nobody(m, "chown", "0", "open/mine").returncode != 0


def test_access_acl_grants_a_named_user(mounted: Mounted):
    f = mounted.mnt / "f"
    f.write_bytes(b"acl")
    os.chmod(f, 0o600)
    assert as_nobody(mounted.mnt, "cat", "f").returncode != 0
    subprocess.run(["setfacl", "-m", f"u:{NOBODY}:r", str(f)], check=True)
    assert f"user:{NOBODY}:r--" in getfacl(f)
    assert oct(os.stat(f).st_mode & 0o777) == oct(0o640)  # the mask shows in the group bits
    assert as_nobody(mounted.mnt, "cat", "f").stdout == "acl"
    os.chmod(f, 0o600)  # chmod narrows the mask
    assert "mask::---" in getfacl(f)
    assert as_nobody(mounted.mnt, "cat", "f").returncode != 0
    subprocess.run(["setfacl", "-b", str(f)], check=True)
    assert "user:65534" not in getfacl(f)


def test_default_acl_is_inherited_by_new_files_and_dirs(mounted: Mounted):
    d = mounted.mnt / "shared"
    d.mkdir(mode=0o755)
    subprocess.run(["setfacl", "-m", f"u:{NOBODY}:rwx,d:u:{NOBODY}:rwx,d:m::rwx", str(d)], check=True)
    as_nobody(d, "touch", "by-nobody", check=True)
    (d / "f").write_bytes(b"")
    old = os.umask(0)
    try:
        (d / "sub").mkdir()
    finally:
        os.umask(old)
    assert f"user:{NOBODY}:rwx" in getfacl(d / "f")
    sub = getfacl(d / "sub")
    assert f"default:user:{NOBODY}:rwx" in sub and f"user:{NOBODY}:rwx" in sub
    # the kernel applies the umask before snapfs sees the mode (pyfuse3 does not ask for
    # FUSE_DONT_MASK), so create with umask 0 to see the default ACL's mask unchanged
    as_nobody(d, "sh", "-c", "umask 000; echo x > sub/deeper", check=True)
    acl = getfacl(d / "sub" / "deeper")
    assert f"user:{NOBODY}:rwx" in acl and "mask::rw-" in acl
    (d / "sub" / "deeper").chmod(0o660)
    os.chown(d / "sub" / "deeper", 0, 0)
    assert as_nobody(d, "sh", "-c", "echo y > sub/deeper").returncode == 0  # via the named-user entry
    assert as_nobody(d, "cat", "f").returncode == 0
