"""Real Samba exporting a snapfs mount: DOS attributes, streams, NT ACLs, 8.3 names
(smbd as :mod:`samba_fixtures` runs it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fuse_fixtures import Mounted, force_unmount, snapfs
from samba_fixtures import serving
from samba_fixtures import aces as _aces
from samba_fixtures import acl_arg as _acl_arg

from snapfs import Volume, fsck_path
from snapfs.windows import DOSATTRIB_XATTR, NTACL_XATTR, dosattrib, ntacl, security

pytestmark = pytest.mark.fuse


@pytest.fixture
def samba_mount(tmp_path: Path):
    voldir, mnt = tmp_path / "vol", tmp_path / "mnt"
    mnt.mkdir()
    Volume.create(voldir, 64 << 20, 1000, name="smbvol").close()  # 64 KiB blocks: a 36 KB ACL fits
    snapfs("mount", voldir, mnt, "-o", "allow_other")
    m = Mounted(voldir, mnt)
    try:
        with serving(mnt, tmp_path / "samba") as s:
            yield m, s
    finally:
        force_unmount(mnt)
    report = fsck_path(voldir)
    assert report.clean, report.problems


def test_samba_stores_its_windows_metadata_in_snapfs_and_serves_ours(samba_mount, tmp_path):
    m, smb = samba_mount
    local = tmp_path / "local.txt"
    local.write_bytes(b"the file\n")
    stream = tmp_path / "stream.txt"
    stream.write_bytes(b"a named stream\n")
    out = tmp_path / "back.txt"
    smb.client(f"put {local} f.txt; put {stream} f.txt:notes; setmode f.txt +hs; get f.txt:notes {out}")
    assert out.read_bytes() == b"a named stream\n"
    info = smb.client("allinfo f.txt")
    assert "attributes: HSA (26)" in info and "create_time:" in info
    assert "stream: [:notes:$DATA], 15 bytes" in info
    # what snapfs stores is what Samba wrote, in Samba's layouts
    f = m.mnt / "f.txt"
    d = dosattrib.decode(os.getxattr(f, DOSATTRIB_XATTR))
    assert d.version == 5 and d.attrib == 0x26 and d.create_time
    assert os.getxattr(f, b"user.DosStream.notes:$DATA") == b"a named stream\n\0"

    # 1,024 ACEs through smbcacls, kept as Samba's v4 blob and read back
    smb.run("smbcacls", "f.txt", "--set", _acl_arg(1024))
    assert len(_aces(smb.run("smbcacls", "f.txt", "--numeric").stdout)) == 1024
    n = ntacl.decode(os.getxattr(f, NTACL_XATTR))
    assert n.version == 4 and n.hash_type == ntacl.HASH_SHA256 and len(n.sd.dacl.aces) == 1024
    assert str(n.sd.dacl.aces[1023].sid) == "S-1-5-21-1-2-3-2023"
    # a 1,025th is refused, the 1,024 stay
    r = smb.run("smbcacls", "f.txt", "--set", _acl_arg(1025), check=False)
    assert r.returncode != 0
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip()]
    assert len(lines) == 1 and "NT_STATUS_INVALID_PARAMETER" in lines[0], lines
    assert len(ntacl.decode(os.getxattr(f, NTACL_XATTR)).sd.dacl.aces) == 1024

    # a file snapfs made with xattrs is shown right by Samba (our v5 DOSATTRIB, v1 NTACL)
    g = m.mnt / "ours.txt"
    g.write_bytes(b"ours\n")
    created = dosattrib.ns_to_nttime(1_600_000_000 * 10**9)  # 2020-09-13 12:26:40 UTC
    os.setxattr(g, DOSATTRIB_XATTR, dosattrib.encode(dosattrib.READONLY | dosattrib.ARCHIVE, created))
    os.setxattr(g, b"user.DosStream.meta:$DATA", b"stream of ours\0")
    sd = security.Descriptor(security.Sid.parse("S-1-5-21-1-2-3-500"), security.Sid.parse("S-1-5-32-544"),
                             security.Acl(2, (security.Ace(0, 0, security.FULL_CONTROL, security.Sid.parse("S-1-5-32-544")),
                                              security.Ace(0, 0, security.READ_EXECUTE, security.Sid.parse("S-1-5-21-1-2-3-1001")))))
    os.setxattr(g, NTACL_XATTR, ntacl.encode(sd))
    info = smb.client("allinfo ours.txt")
    assert "attributes: RA (21)" in info and "create_time:    Sun Sep 13 12:26:40 2020 UTC" in info
    assert "stream: [:meta:$DATA], 14 bytes" in info
    acl = smb.run("smbcacls", "ours.txt", "--numeric").stdout
    assert "OWNER:S-1-5-21-1-2-3-500" in acl
    assert _aces(acl) == ["ACL:S-1-5-32-544:0/0x0/0x001f01ff", "ACL:S-1-5-21-1-2-3-1001:0/0x0/0x001200a9"]

    # kept in a snapshot unchanged after the live file changes, across a remount
    snapfs("snapshot", "create", m.mnt, "before")
    smb.client("setmode f.txt -hs")
    smb.run("smbcacls", "f.txt", "--set", _acl_arg(2))
    snap_f = m.snap("before") / "f.txt"
    assert dosattrib.decode(os.getxattr(snap_f, DOSATTRIB_XATTR)).attrib == 0x26
    assert len(ntacl.decode(os.getxattr(snap_f, NTACL_XATTR)).sd.dacl.aces) == 1024
    assert len(ntacl.decode(os.getxattr(f, NTACL_XATTR)).sd.dacl.aces) == 2
    snapfs("unmount", m.mnt)
    assert fsck_path(m.voldir).clean
    snapfs("mount", m.voldir, m.mnt, "-o", "allow_other")
    assert len(ntacl.decode(os.getxattr(snap_f, NTACL_XATTR)).sd.dacl.aces) == 1024
    assert os.getxattr(snap_f, b"user.DosStream.notes:$DATA") == b"a named stream\n\0"
    assert dosattrib.decode(os.getxattr(f, DOSATTRIB_XATTR)).attrib == 0x20


def test_samba_shows_its_own_short_names_not_the_volume_s(samba_mount, tmp_path):
    """Samba computes 8.3 names (mangle_hash2, stateless); no module reads stored ones, so
    SMB clients see Samba's, while the volume keeps ONTAP's for the dump engine."""
    m, smb = samba_mount
    (m.mnt / "specification long name.htm").write_bytes(b"x")
    ours = os.getxattr(m.mnt / "specification long name.htm", b"trusted.snapfs.dosname").decode()
    assert ours == "SPECIF~1.HTM"
    info = smb.client('allinfo "specification long name.htm"')
    alt = next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("altname:"))
    assert alt != ours and alt.endswith(".HTM") and "~" in alt
