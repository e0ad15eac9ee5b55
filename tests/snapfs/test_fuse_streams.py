"""Named streams of any size through ``snapfs stream`` on a real mount: small ones in
Samba's xattr, large ones as data (copy on write), both kept by snapshots."""

from __future__ import annotations

import os
import subprocess

import pytest
from fuse_fixtures import SNAPFS, mounted, snapfs  # noqa: F401 (fixture)

from snapfs import fsck_path

pytestmark = pytest.mark.fuse


def test_streams_of_any_size(mounted, tmp_path):
    m = mounted
    f = m.mnt / "f.txt"
    f.write_bytes(b"main data\n")
    big = os.urandom(300_000)
    src = tmp_path / "big.bin"
    src.write_bytes(big)
    assert "kept as data" in snapfs("stream", "write", m.mnt, "f.txt", "big", src).stdout
    r = subprocess.run([SNAPFS, "stream", "write", str(m.mnt), str(f), "small"], input=b"tiny",
                       capture_output=True, timeout=30)
    assert r.returncode == 0 and b"kept as an xattr" in r.stdout, r.stderr
    lines = snapfs("stream", "list", m.mnt, "f.txt").stdout.split("\n")
    assert lines[0].split() == ["300000", "data", "big"] and lines[1].split() == ["4", "xattr", "small"]
    # the xattr view shows the one that fits, as Samba's streams_xattr stores it
    assert os.getxattr(f, b"user.DosStream.small:$DATA") == b"tiny\0"
    assert not [x for x in os.listxattr(f) if "big" in x]
    cat = subprocess.run([SNAPFS, "stream", "cat", str(m.mnt), "f.txt", "big"], capture_output=True, timeout=30)
    assert cat.returncode == 0 and cat.stdout == big

    snapfs("snapshot", "create", m.mnt, "s")
    changed = big[:150_000] + b"!" + big[150_001:]
    src.write_bytes(changed)
    snapfs("stream", "write", m.mnt, "f.txt", "big", src)
    snapfs("stream", "delete", m.mnt, "f.txt", "small")
    assert subprocess.run([SNAPFS, "stream", "cat", str(m.mnt), "f.txt", "big"], capture_output=True).stdout == changed
    assert [ln.split()[2] for ln in snapfs("stream", "list", m.mnt, "f.txt").stdout.splitlines()] == ["big"]
    assert os.getxattr(m.snap("s") / "f.txt", b"user.DosStream.small:$DATA") == b"tiny\0"

    # bad input: one line, exit 1 (or 2 for usage)
    for args, code, text in ((("cat", "f.txt", "nope"), 1, "has no stream 'nope'"),
                             (("write", "f.txt", "a:b", str(src)), 1, "invalid stream name"),
                             (("cat", "missing.txt", "big"), 1, "missing.txt"),
                             (("write", ".snapshot/s/f.txt", "big", str(src)), 1, "read-only"),
                             (("delete", "f.txt"), 2, "needs MOUNT PATH NAME")):
        r = snapfs("stream", args[0], m.mnt, *args[1:], check=False)
        assert r.returncode == code and len(r.stderr.splitlines()) == 1 and text in r.stderr, (args, r.stderr)

    # across an unmount and fsck, read from the volume folder: the snapshot keeps the old bytes
    snapfs("unmount", m.mnt)
    assert fsck_path(m.voldir).clean
    old = subprocess.run([SNAPFS, "stream", "cat", str(m.voldir), ".snapshot/s/f.txt", "big"], capture_output=True)
    assert old.returncode == 0 and old.stdout == big
    snapfs("mount", m.voldir, m.mnt, "-o", "allow_other")
    assert subprocess.run([SNAPFS, "stream", "cat", str(m.mnt), "f.txt", "big"], capture_output=True).stdout == changed


def test_short_names_and_the_unix_style_rule_through_the_mount(mounted):
    from snapfs.windows import NTACL_XATTR, ntacl, security

    m = mounted
    (m.mnt / "docs").mkdir()
    (m.mnt / "docs" / "specification.htm").write_bytes(b"x")
    out = subprocess.run(["getfattr", "--only-values", "-n", "trusted.snapfs.dosname",
                          str(m.mnt / "docs" / "specification.htm")], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout == "SPECIF~1.HTM"
    assert subprocess.run(["setfattr", "-n", "trusted.snapfs.dosname", "-v", "X",
                           str(m.mnt / "docs" / "specification.htm")], capture_output=True).returncode != 0
    f = m.mnt / "nt-only"
    f.write_bytes(b"y")
    os.chmod(f, 0)
    assert os.stat(f).st_mode & 0o7777 == 0
    sd = security.Descriptor(security.Sid.parse("S-1-5-32-544"), security.Sid.parse("S-1-5-32-544"),
                             security.Acl(2, (security.Ace(0, 0, security.FULL_CONTROL, security.Sid.parse("S-1-1-0")),)))
    os.setxattr(f, NTACL_XATTR, ntacl.encode(sd))
    assert os.stat(f).st_mode & 0o7777 == 0o755  # only an NT ACL, in the volume's unix style
    snapfs("snapshot", "create", m.mnt, "s")
    (m.mnt / "docs" / "specification.htm").rename(m.mnt / "docs" / "renamed specification.htm")
    (m.mnt / "docs" / "specification.htm").write_bytes(b"new")
    assert os.getxattr(m.mnt / "docs" / "specification.htm", "trusted.snapfs.dosname") == b"SPECIF~2.HTM"
    assert os.getxattr(m.snap("s") / "docs" / "specification.htm", "trusted.snapfs.dosname") == b"SPECIF~1.HTM"
    assert os.stat(m.snap("s") / "nt-only").st_mode & 0o7777 == 0o755
