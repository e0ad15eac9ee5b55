"""The Windows metadata codecs (snapfs.windows) against Samba's own NDR code.

Samba's python bindings (Debian's python3-samba) live under /usr/bin/python3, not in
our venv: each check runs them in a subprocess that reads and writes hex on stdin/out.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from snapfs.errors import SnapfsError
from snapfs.windows import dosattrib, ntacl, security
from snapfs.windows.security import Ace, Acl, Descriptor, Sid

SAMBA_PYTHON = "/usr/bin/python3"

#: Samba's test vector source4/librpc/tests/xattr_NTACL.dat (a v4 blob Samba wrote) and the
#: facts its .txt gives: owner, group, 4 ACEs (trustee, mask), SHA-256 hash type.
SAMBA_NTACL_V4 = bytes.fromhex(
    "04000400000002000400020001000407" "8b57a00cf3f79d64df3e914609b807a5" "f16cbe38dc555b1f380c23a84a850000"
    + "00" * 30 + "706f" "7369785f61636c0062a2d88c4baad501" "5d60e756a5d454921a77a5e1dce2a928"
    "a95d3b97716cf759f492ffe342a5e9b5" + "00" * 32 + "01001490b4000000d00000000000000"
    "0e00000000105000000000005150000007" "0cb8e6bf1f84e7c31875784f4010000" "01020000000000052000000020020000"
    "04006000040000000003180" "0ff011f00" "01020000000000052000000020020000" "00031800a9001200010200000000000"
    "520000000250200000003140" "0ff011f00" "0101000000000005120000000003140" "0a90012000101000000000005"
    "0b000000")
SAMBA_NTACL_V4_FACTS = ("S-1-5-21-1804520304-2085550321-2220328753-500", "S-1-5-32-544",
                        [("S-1-5-32-544", 0x001F01FF), ("S-1-5-32-549", 0x001200A9),
                         ("S-1-5-18", 0x001F01FF), ("S-1-5-11", 0x001200A9)])

_SAMBA_SCRIPT = r'''
import json, sys
from samba.ndr import ndr_pack, ndr_unpack
from samba.dcerpc import xattr, security
out = []
for kind, hexblob in json.load(sys.stdin):
    b = bytes.fromhex(hexblob)
    if kind == "ntacl":
        n = ndr_unpack(xattr.NTACL, b)
        sd = n.info if n.version == 1 else n.info.sd
        out.append({"version": n.version, "sddl": sd.as_sddl(), "owner": str(sd.owner_sid),
                    "aces": [[str(a.trustee), a.access_mask, a.flags, a.type] for a in sd.dacl.aces],
                    "repack": ndr_pack(n).hex()})
    elif kind == "dos":
        d = ndr_unpack(xattr.DOSATTRIB, b)
        i = d.info
        out.append({"version": d.version, "attrib": getattr(i, "attrib", None),
                    "create_time": getattr(i, "create_time", None),
                    "valid_flags": getattr(i, "valid_flags", None)})
    elif kind == "mk_dos":  # Samba writes each version
        v, attrib, ct = json.loads(b.decode())
        d = xattr.DOSATTRIB(); d.version = v; d.attrib_hex = "0x%x" % attrib if v < 4 else ""
        i = {1: xattr.DosInfo1, 2: xattr.DosInfo2Old, 3: xattr.DosInfo3, 4: xattr.DosInfo4, 5: xattr.DosInfo5}[v]()
        i.attrib = attrib; i.create_time = ct
        if v >= 3: i.valid_flags = 0x11
        if v == 2: i.name = "x"
        d.info = i
        out.append(ndr_pack(d).hex())
    elif kind == "mk_ntacl":  # Samba writes v1..v4 of an SDDL descriptor
        v, sddl = json.loads(b.decode())
        sd = security.descriptor.from_sddl(sddl, security.dom_sid("S-1-5-21-1-2-3"))
        n = xattr.NTACL(); n.version = v
        if v == 1:
            n.info = sd
        else:
            h = {2: xattr.security_descriptor_hash_v2, 3: xattr.security_descriptor_hash_v3,
                 4: xattr.security_descriptor_hash_v4}[v]()
            h.sd = sd
            h.hash = list(range(16 if v == 2 else 64))
            if v > 2: h.hash_type = 1
            if v == 4: h.description = "posix_acl"; h.time = 12345; h.sys_acl_hash = [9] * 64
            n.info = h
        out.append(ndr_pack(n).hex())
json.dump(out, sys.stdout)
'''


def samba(requests: list[tuple[str, bytes]]) -> list:
    r = subprocess.run([SAMBA_PYTHON, "-c", _SAMBA_SCRIPT], input=json.dumps([(k, b.hex()) for k, b in requests]),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _domain_sd(n: int) -> Descriptor:
    aces = tuple(Ace(security.ACCESS_ALLOWED, 0x3 if i % 2 else 0, 0x001200A9 + i % 7,
                     Sid(5, (21, 1, 2, 3, 1000 + i))) for i in range(n))
    return Descriptor(Sid(5, (21, 1, 2, 3, 500)), Sid(5, (32, 544)), Acl(security.ACL_REVISION, aces),
                      control=security.DACL_PROTECTED)


def test_the_samba_vector_decodes_to_its_facts():
    n = ntacl.decode(SAMBA_NTACL_V4)
    owner, group, aces = SAMBA_NTACL_V4_FACTS
    assert (n.version, n.hash_type, n.description) == (4, ntacl.HASH_SHA256, "posix_acl")
    assert (str(n.sd.owner), str(n.sd.group), n.sd.control) == (owner, group, 0x9014)
    assert [(str(a.sid), a.mask) for a in n.sd.dacl.aces] == aces
    assert all(a.flags == 3 for a in n.sd.dacl.aces) and n.sd.sacl is None


def test_samba_reads_what_we_write_and_we_read_what_samba_writes():
    sds = [_domain_sd(3), _domain_sd(1024)]
    ours = [ntacl.encode(sd) for sd in sds] + [ntacl.encode_v3(sds[0], 1, bytes(range(64)))]
    dos = [dosattrib.encode(0x23, 132199005539574370), dosattrib.encode(0x10)]
    got = samba([("ntacl", b) for b in ours] + [("dos", b) for b in dos]
                + [("ntacl", SAMBA_NTACL_V4)])
    for blob, sd, g in zip(ours, sds + sds[:1], got):
        assert g["repack"] == blob.hex()  # byte for byte what Samba makes of the same descriptor
        assert g["owner"] == str(sd.owner)
        assert [(t, m, f) for t, m, f, _ in g["aces"]] == [(str(a.sid), a.mask, a.flags) for a in sd.dacl.aces]
    assert len(got[1]["aces"]) == 1024
    assert got[3] == {"version": 5, "attrib": 0x23, "create_time": 132199005539574370, "valid_flags": 0x11}
    assert got[4] == {"version": 5, "attrib": 0x10, "create_time": 0, "valid_flags": 0x1}
    assert got[5]["repack"] == SAMBA_NTACL_V4.hex() and got[5]["owner"] == SAMBA_NTACL_V4_FACTS[0]

    sddl = "O:S-1-5-21-1-2-3-500G:BAD:P(A;OICI;0x1f01ff;;;BA)(D;;0x1200a9;;;WD)(OA;;RP;bf967aba-0de6-11d0-a285-00aa003049e2;;AU)"
    made = samba([("mk_ntacl", json.dumps([v, sddl]).encode()) for v in (1, 2, 3, 4)]
                 + [("mk_dos", json.dumps([v, 0x22, 4242]).encode()) for v in (1, 2, 3, 4, 5)])
    for v, h in zip((1, 2, 3, 4), made[:4]):
        n = ntacl.decode(bytes.fromhex(h))
        assert n.version == v and str(n.sd.owner) == "S-1-5-21-1-2-3-500" and str(n.sd.group) == "S-1-5-32-544"
        assert [(a.type, a.mask) for a in n.sd.dacl.aces] == [(0, 0x1F01FF), (1, 0x1200A9), (5, 0x10)]
        assert len(n.sd.dacl.aces[2].object_data) == 20  # flags and one GUID
        if v == 1:
            assert ntacl.encode(n.sd).hex() == h
        if v == 4:
            assert (n.description, n.time, n.sys_acl_hash) == ("posix_acl", 12345, bytes([9]) * 64)
    for v, h in zip((1, 2, 3, 4, 5), made[4:]):
        d = dosattrib.decode(bytes.fromhex(h))
        assert (d.version, d.attrib, d.create_time) == (v, 0x22, 4242), v
    assert dosattrib.encode(0x22, 4242).hex() == made[-1]


def test_legacy_dosattrib_and_bad_blobs():
    assert dosattrib.decode(b"0x21\0").attrib == 0x21
    assert dosattrib.decode(b"0x21").attrib == 0x21
    for bad in (b"", b"zz\0", b"\0\0\x09\0\x09\0\0\0", b"\0\0\x05\0\x05\0\0\0\x11"):
        with pytest.raises(SnapfsError):
            dosattrib.decode(bad)


def test_a_1025th_ace_is_refused_both_ways():
    with pytest.raises(SnapfsError, match="at most 1024 ACEs"):
        ntacl.encode(_domain_sd(1025))
    blob = bytearray(ntacl.encode(_domain_sd(1024)))
    dacl_at = int.from_bytes(blob[8 + 16:8 + 20], "little")
    blob[dacl_at + 4:dacl_at + 6] = (1025).to_bytes(2, "little")
    with pytest.raises(SnapfsError, match="at most 1024 ACEs"):
        ntacl.decode(bytes(blob))
    for bad in (b"\x05\0\x05\0\0\0\2\0", b"\x01\0\x01\0", ntacl.encode(_domain_sd(2))[:40]):
        with pytest.raises(SnapfsError):
            ntacl.decode(bad)
