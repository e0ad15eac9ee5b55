"""NT security descriptors: SIDs, ACEs and ACLs in their self-relative binary form.

A descriptor is revision 1, a control word, then four offsets (owner SID, group
SID, SACL, DACL; 0 = absent).  The offsets of a bare descriptor count from its
own start; inside a ``security.NTACL`` blob Samba counts them from the blob's
start, so :func:`parse` and :func:`build` take that ``base``.  :func:`build`
lays the parts out as Samba does (owner, group, SACL, DACL), so what we build
is byte for byte what Samba's NDR code makes of the same descriptor.
An ACL holds at most :data:`MAX_ACES` (ONTAP's limit).
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass

from ..errors import err

MAX_ACES = 1024
#: ACE types
ACCESS_ALLOWED, ACCESS_DENIED, SYSTEM_AUDIT = 0, 1, 2
#: the object ACE types, callback ones included (a flags word and up to two GUIDs before the SID)
_OBJECT_TYPES = {5, 6, 7, 8, 0x0B, 0x0C, 0x0F, 0x10}
#: control bits
DACL_PRESENT, SACL_PRESENT, DACL_PROTECTED, SELF_RELATIVE = 0x4, 0x10, 0x1000, 0x8000
FULL_CONTROL, READ_EXECUTE = 0x001F01FF, 0x001200A9
ACL_REVISION, ACL_REVISION_DS = 2, 4


def _bad(what: str) -> Exception:
    return err(errno.EINVAL, f"bad security descriptor: {what}")


@dataclass(frozen=True)
class Sid:
    """A SID: revision 1, a 48-bit authority and up to 15 sub-authorities."""

    authority: int
    subs: tuple[int, ...]

    @classmethod
    def parse(cls, text: str) -> "Sid":
        """``S-1-5-21-...`` to a Sid (EINVAL when it is not one)."""
        parts = text.strip().upper().split("-")
        try:
            if len(parts) < 3 or parts[0] != "S" or parts[1] != "1":
                raise ValueError
            auth = int(parts[2], 16) if parts[2].startswith("0X") else int(parts[2])
            subs = tuple(int(p) for p in parts[3:])
            if not 0 <= auth < 1 << 48 or len(subs) > 15 or any(not 0 <= s < 1 << 32 for s in subs):
                raise ValueError
        except ValueError:
            raise err(errno.EINVAL, f"{text!r} is not a SID (S-1-AUTHORITY-SUB...)") from None
        return cls(auth, subs)

    def __str__(self) -> str:
        return "S-1-" + "-".join(str(x) for x in (self.authority, *self.subs))

    def to_bytes(self) -> bytes:
        return (struct.pack("<BB", 1, len(self.subs)) + self.authority.to_bytes(6, "big")
                + struct.pack(f"<{len(self.subs)}I", *self.subs))

    @classmethod
    def from_bytes(cls, buf: bytes, at: int) -> "Sid":
        if at + 8 > len(buf):
            raise _bad("a SID runs past the end")
        rev, n = buf[at], buf[at + 1]
        if rev != 1 or n > 15 or at + 8 + 4 * n > len(buf):
            raise _bad(f"a SID at {at} has revision {rev} and {n} sub-authorities")
        return cls(int.from_bytes(buf[at + 2:at + 8], "big"), struct.unpack_from(f"<{n}I", buf, at + 8))

    @property
    def size(self) -> int:
        return 8 + 4 * len(self.subs)


@dataclass(frozen=True)
class Ace:
    """An ACE; ``object_data`` is an object ACE's flags and GUIDs, ``extra`` what follows the SID."""

    type: int
    flags: int
    mask: int
    sid: Sid
    object_data: bytes = b""
    extra: bytes = b""

    def to_bytes(self) -> bytes:
        body = struct.pack("<I", self.mask) + self.object_data + self.sid.to_bytes() + self.extra
        size = 4 + len(body)
        return struct.pack("<BBH", self.type, self.flags, size) + body


@dataclass(frozen=True)
class Acl:
    revision: int = ACL_REVISION
    aces: tuple[Ace, ...] = ()

    def to_bytes(self) -> bytes:
        if len(self.aces) > MAX_ACES:
            raise err(errno.EINVAL, f"an ACL holds at most {MAX_ACES} ACEs; this one has {len(self.aces)}")
        body = b"".join(a.to_bytes() for a in self.aces)
        if 8 + len(body) > 0xFFFF:
            raise err(errno.EINVAL, f"an ACL is at most 65,535 bytes; this one has {8 + len(body)}")
        return struct.pack("<BBHHH", self.revision, 0, 8 + len(body), len(self.aces), 0) + body


@dataclass(frozen=True)
class Descriptor:
    """A security descriptor; ``control`` gets SELF_RELATIVE and the PRESENT bits when built."""

    owner: Sid | None = None
    group: Sid | None = None
    dacl: Acl | None = None
    sacl: Acl | None = None
    control: int = 0

    def sddl(self) -> str:
        """A readable summary in SDDL's shape (numeric SIDs and masks)."""
        out = []
        if self.owner:
            out.append(f"O:{self.owner}")
        if self.group:
            out.append(f"G:{self.group}")
        if self.dacl is not None:
            out.append("D:" + "".join(f"({a.type};0x{a.flags:02x};0x{a.mask:08x};;;{a.sid})" for a in self.dacl.aces))
        return "".join(out)


def _parse_acl(buf: bytes, at: int) -> Acl:
    if at + 8 > len(buf):
        raise _bad("an ACL runs past the end")
    rev, _s1, size, count, _s2 = struct.unpack_from("<BBHHH", buf, at)
    if count > MAX_ACES:
        raise err(errno.EINVAL, f"an ACL holds at most {MAX_ACES} ACEs; this one has {count}")
    end = at + size
    if end > len(buf):
        raise _bad(f"an ACL of {size} bytes runs past the end")
    aces, p = [], at + 8
    for _ in range(count):
        if p + 8 > end:
            raise _bad("an ACE runs past its ACL")
        typ, flags, asize = struct.unpack_from("<BBH", buf, p)
        if asize < 8 + 8 or p + asize > end:
            raise _bad(f"an ACE of {asize} bytes")
        mask = struct.unpack_from("<I", buf, p + 4)[0]
        q = p + 8
        obj = b""
        if typ in _OBJECT_TYPES:
            oflags = struct.unpack_from("<I", buf, q)[0]
            olen = 4 + 16 * ((oflags & 1) + (oflags >> 1 & 1))
            obj, q = buf[q:q + olen], q + olen
        sid = Sid.from_bytes(buf, q)
        if q + sid.size > p + asize:
            raise _bad("an ACE's SID runs past the ACE")
        aces.append(Ace(typ, flags, mask, sid, bytes(obj), bytes(buf[q + sid.size:p + asize])))
        p += asize
    return Acl(rev, tuple(aces))


def parse(buf: bytes, at: int = 0, base: int | None = None) -> Descriptor:
    """The descriptor at ``at`` in ``buf``, its offsets counted from ``base`` (default ``at``)."""
    base = at if base is None else base
    if at + 20 > len(buf):
        raise _bad(f"{len(buf) - at} bytes are too few for a descriptor")
    rev, _sbz, control, o_owner, o_group, o_sacl, o_dacl = struct.unpack_from("<BBHIIII", buf, at)
    if rev != 1:
        raise _bad(f"revision {rev} (1 is the only one)")
    owner = Sid.from_bytes(buf, base + o_owner) if o_owner else None
    group = Sid.from_bytes(buf, base + o_group) if o_group else None
    sacl = _parse_acl(buf, base + o_sacl) if o_sacl and control & SACL_PRESENT else None
    dacl = _parse_acl(buf, base + o_dacl) if o_dacl and control & DACL_PRESENT else None
    return Descriptor(owner, group, dacl, sacl, control)


def build(sd: Descriptor, base: int = 0) -> bytes:
    """The self-relative bytes of ``sd`` placed at offset ``base`` of its blob (owner, group, SACL, DACL)."""
    control = sd.control | SELF_RELATIVE
    control = control | DACL_PRESENT if sd.dacl is not None else control & ~DACL_PRESENT
    control = control | SACL_PRESENT if sd.sacl is not None else control & ~SACL_PRESENT
    parts, offs, pos = [], [], 20
    for part in (sd.owner, sd.group, sd.sacl, sd.dacl):
        if part is None:
            offs.append(0)
            continue
        b = part.to_bytes()
        offs.append(base + pos)
        parts.append(b)
        pos += len(b)
    return struct.pack("<BBHIIII", 1, 0, control, *offs) + b"".join(parts)


def default_descriptor(owner: Sid, group: Sid, mode: int) -> Descriptor:
    """The NT ACL a file with only unix permissions reports in an ntfs-style tree: owner,
    group and Everyone allowed what their permission bits give (read = read and execute,
    write = full control), as a filer maps a unix file it has no ACL for."""
    everyone = Sid(1, (0,))
    aces = []
    for sid, bits in ((owner, mode >> 6 & 7), (group, mode >> 3 & 7), (everyone, mode & 7)):
        mask = (FULL_CONTROL if bits & 2 else 0) | (READ_EXECUTE if bits & 5 else 0)
        if mask:
            aces.append(Ace(ACCESS_ALLOWED, 0, mask, sid))
    return Descriptor(owner, group, Acl(ACL_REVISION, tuple(aces)))
