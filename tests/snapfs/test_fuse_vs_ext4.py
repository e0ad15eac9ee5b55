"""Where snapfs must answer as ext4 and tmpfs do, checked against them on this machine:
renameat2's RENAME_WHITEOUT, xattr namespaces (both against tmpfs in /dev/shm) and
xattr size limits (against a real ext4 with 4 KiB blocks, as the test volumes have)."""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tmpfs_at
from fuse_fixtures import Mounted, as_nobody, mounted  # noqa: F401 (fixtures)

pytestmark = pytest.mark.fuse
_libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT = 1, 2, 4
ACL_ACCESS = "system.posix_acl_access"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="RENAME_WHITEOUT and mounting ext4 need root")


def renameat2(old, new, flags: int) -> int:
    """0 or the errno of renameat2(2)."""
    if _libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags) != 0:
        return ctypes.get_errno()
    return 0


def outcome(fn, *a) -> int:
    try:
        fn(*a)
    except OSError as e:
        return e.errno
    return 0


@pytest.fixture
def tmpfs_dir(tmp_path: Path):
    """A fresh tmpfs of its own (the tests that use it run as root)."""
    with tmpfs_at(tmp_path / "tmpfs", "size=16m,mode=1777") as d:
        yield d


def _whiteout_story(root: Path) -> list:
    """Rename with RENAME_WHITEOUT in every case that matters; what each leaves behind."""
    seen = []

    def node(p: Path):
        st = os.lstat(p)
        acl = os.getxattr(p, ACL_ACCESS, follow_symlinks=False) if ACL_ACCESS in os.listxattr(
            p, follow_symlinks=False) else None
        return oct(st.st_mode), st.st_rdev, st.st_nlink, st.st_uid, st.st_gid, st.st_size, acl

    (root / "a").write_bytes(b"A")
    seen.append(("new name", renameat2(root / "a", root / "b", RENAME_WHITEOUT), node(root / "a"),
                 (root / "b").read_bytes()))
    (root / "c").write_bytes(b"C")
    seen.append(("over a file", renameat2(root / "b", root / "c", RENAME_WHITEOUT), node(root / "b"),
                 (root / "c").read_bytes()))
    seen.append(("with exchange", renameat2(root / "c", root / "b", RENAME_WHITEOUT | RENAME_EXCHANGE)))
    seen.append(("noreplace, taken", renameat2(root / "c", root / "b", RENAME_WHITEOUT | RENAME_NOREPLACE)))
    seen.append(("noreplace, free", renameat2(root / "c", root / "e", RENAME_WHITEOUT | RENAME_NOREPLACE),
                 node(root / "c")))
    (root / "d" / "sub").mkdir(parents=True)
    seen.append(("a directory", renameat2(root / "d" / "sub", root / "sub", RENAME_WHITEOUT),
                 node(root / "d" / "sub"), os.lstat(root / "d").st_nlink, os.lstat(root).st_nlink))
    seen.append(("missing", renameat2(root / "nothing", root / "x", RENAME_WHITEOUT)))
    os.link(root / "e", root / "e2")
    seen.append(("the same file", renameat2(root / "e", root / "e2", RENAME_WHITEOUT), node(root / "e")))
    seen.append(("unknown flag", renameat2(root / "e", root / "y", 8)))
    # in a setgid directory with a default ACL: the whiteout takes the group and the ACL
    g = root / "g"
    g.mkdir()
    os.chown(g, 0, 100)
    os.chmod(g, 0o2775)
    subprocess.run(["setfacl", "-d", "-m", "u:1000:rwx", str(g)], check=True)
    (g / "f").write_bytes(b"")
    seen.append(("inherits", renameat2(g / "f", g / "f2", RENAME_WHITEOUT), node(g / "f")))
    seen.append(("names", sorted(os.listdir(root)), sorted(os.listdir(g))))
    return seen


@needs_root
def test_rename_whiteout_leaves_what_tmpfs_leaves(mounted: Mounted, tmpfs_dir: Path):
    live = mounted.mnt / "w"
    live.mkdir()
    ours, theirs = _whiteout_story(live), _whiteout_story(tmpfs_dir)
    assert ours == theirs
    assert ours[0][1] == 0 and ours[0][2][0] == oct(stat.S_IFCHR)  # the story did whiteout something


@needs_root
def test_rename_whiteout_needs_no_privilege(mounted: Mounted, tmpfs_dir: Path):
    """Since Linux 5.8 a whiteout needs no CAP_MKNOD: anyone who may rename may leave one."""
    prog = ("import ctypes; libc = ctypes.CDLL(None, use_errno=True); "
            "r = libc.renameat2(-100, b'a', -100, b'b', 4); print(ctypes.get_errno() if r else 0)")
    answers = []
    for d in (mounted.mnt / "open", tmpfs_dir / "open"):
        d.mkdir()
        os.chmod(d, 0o777)
        (d / "a").write_bytes(b"")
        ino = os.lstat(d / "a").st_ino
        said = as_nobody(d, sys.executable, "-c", prog, check=True).stdout.strip()
        w = os.lstat(d / "a")
        answers.append((said, oct(w.st_mode), w.st_uid, os.lstat(d / "b").st_ino == ino))
    assert answers[0] == answers[1] == ("0", oct(stat.S_IFCHR), 65534, True)


XATTR_NAMES = ["foo.bar", "foo", "user", "system.foo", "system.", "system.nfs4_acl", "user.", "trusted.",
               "security.", "user.x", "trusted.x", "security.x", "osx.x"]


@needs_root
def test_xattr_namespaces_answer_as_on_tmpfs(mounted: Mounted, tmpfs_dir: Path):
    def story(f: Path) -> list:
        f.write_bytes(b"")
        return [(n, outcome(os.setxattr, f, n, b"v"), outcome(os.getxattr, f, n),
                 outcome(os.removexattr, f, n)) for n in XATTR_NAMES] + [sorted(os.listxattr(f))]

    ours = story(mounted.mnt / "f")
    assert ours == story(tmpfs_dir / "f")
    assert ("foo.bar", errno.EOPNOTSUPP, errno.EOPNOTSUPP, errno.EOPNOTSUPP) in ours
    assert outcome(os.getxattr, mounted.mnt / ".snapshot", "foo.bar") == errno.EOPNOTSUPP
    assert outcome(os.getxattr, mounted.mnt / ".snapshot", "user.foo") == errno.ENODATA
    # the virtual identity xattrs still answer, and cannot be set
    ino = os.stat(mounted.mnt / "f").st_ino
    assert int(os.getxattr(mounted.mnt / "f", "user.snapfs.ino")) == ino
    assert int(os.getxattr(mounted.mnt / "f", "trusted.snapfs.ino")) == ino
    assert outcome(os.setxattr, mounted.mnt / "f", "trusted.snapfs.ino", b"1") == errno.EPERM


@pytest.fixture
def ext4_dir(tmp_path: Path):
    """A folder on a fresh ext4 with 4 KiB blocks and 256-byte inodes, mounted from a loop image."""
    img, mnt = tmp_path / "ext4.img", tmp_path / "ext4"
    mnt.mkdir()
    subprocess.run(["mkfs.ext4", "-q", "-F", "-b", "4096", "-I", "256", str(img), "16M"], check=True)
    subprocess.run(["mount", "-o", "loop", str(img), str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def _xattr_limit_story(d: Path) -> list:
    """Values too large for an inode's own room (ext4 keeps about 92 bytes there), so
    only the 4 KiB block counts."""
    out = []
    for size in (4039, 4040, 4041, 65536, 65537):  # one xattr, a 1-byte name suffix
        f = d / f"one{size}"
        f.write_bytes(b"")
        out.append((size, outcome(os.setxattr, f, "user.a", b"v" * size)))
    f = d / "three"
    f.write_bytes(b"")
    out.append([outcome(os.setxattr, f, f"user.{c}", b"v" * 1000) for c in "abcd"])
    out.append(outcome(os.setxattr, f, "trusted.b", b"w" * 997))  # replacing: same rounded size
    out.append(outcome(os.setxattr, f, "user.a", b"v" * 2000))
    out.append(sorted((n, len(os.getxattr(f, n))) for n in os.listxattr(f)))
    f = d / "names"
    f.write_bytes(b"")
    out.append(outcome(os.setxattr, f, "user." + "n" * 250, b"v" * 3700))
    out.append(outcome(os.setxattr, f, "security." + "s" * 40, b"v" * 100))
    out.append(outcome(os.setxattr, f, "user." + "m" * 251, b""))
    return out


@needs_root
def test_xattr_limits_are_those_of_a_4k_ext4(mounted: Mounted, ext4_dir: Path):
    ours = _xattr_limit_story(mounted.mnt)
    assert ours == _xattr_limit_story(ext4_dir)
    assert (4041, errno.ENOSPC) in ours and (65537, errno.E2BIG) in ours
