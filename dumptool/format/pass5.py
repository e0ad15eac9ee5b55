"""Pass V: the filer's objects a file's own EA record cannot carry, in one record after the last file.

Real Linux restore 0.4b47 takes an EA record (``EXT_XATTR``) of at most 4096
bytes and then loses the rest of that inode's xattrs (and the next file).
ONTAP's dump writes ACLs in a stage after the files (stage V); so does this
layout: after the last non-directory's records (and its EA record) comes ONE
``TS_INODE`` record flagged ``DR_EXTATTRIBUTES`` with ``c_extattributes`` =
:data:`EXT_PASS5` (``0x534E``, "NS"), ``c_inumber`` = that last file's inode
(the *carrier*), ``c_dinode`` the carrier's with ``di_size`` = the payload's
length, ``c_count`` data blocks (``c_addr`` all 1, at most 512 per header)
and ``TS_ADDR`` continuations of the same inode for the rest.  Real restore
``-t`` passes over it silently; ``-r``/``-x``/``-C`` print one "unexpected
inode extension 21326, skipping" line and restore everything else.

The payload (little-endian, whatever the image's byte order)::

    0   4  magic b"SNP5"
    4   2  version (1)
    6   2  0
    8   4  number of entries
    12  4  0
    16  ... entries, one after the other:
        0  2  kind (see :class:`Kind`)
        2  2  name length N
        4  4  owner: the dump inode the entry belongs to
        8  8  value length V
        16 N  name
        16+N V value

Kinds: ``XATTR`` an xattr that did not fit its file's EA record (name = its
full name), ``NTACL`` ``security.NTACL`` (name empty), ``STREAM`` a named
stream stored as data (name = the stream's name, value its bytes), ``DOSNAME``
the DOS 8.3 name of directory entry ``name`` of directory ``owner`` (only
where it differs from the name in upper case), ``LUN`` the LUN record of
file ``owner`` (``serial=..;ostype=..;size=..;space-reserve=..;state=..``;
the data is the file's data; a clone is written as an independent LUN),
``QTREE`` the qtree record of directory ``owner`` (``id=..;security-style=..;
oplocks=..``; name = the qtree's name), ``JUNCTION`` the junction record of
symbolic link ``owner`` (``uuid=..;name=..;path=..`` of the volume it leads
to; the link itself is on the image as any symbolic link).  A reader skips
kinds it does not know.
"""

from __future__ import annotations

import dataclasses
import enum
import struct
from collections.abc import Iterable, Iterator

from ..errors import FormatError
from .constants import DR_EXTATTRIBUTES, TP_BSIZE
from .dinode import Dinode
from .header import Header
from .stream import Item, file_slices, inode_records

#: ``c_extattributes`` of the Pass V record ("NS"): no value Linux restore knows (1, 2, 3).
EXT_PASS5 = 0x534E
MAGIC = b"SNP5"
VERSION = 1
_HEAD = struct.Struct("<4sHHII")
_ENTRY = struct.Struct("<HHIQ")


class Kind(enum.IntEnum):
    XATTR = 1
    NTACL = 2
    STREAM = 3
    DOSNAME = 4
    LUN = 5
    QTREE = 6
    JUNCTION = 7


def kind_name(kind: int, unknown: str | None = None) -> str:
    """``kind``'s name in lower case (``"ntacl"``); ``unknown`` (else ``"kind N"``) for a kind this reader does not know."""
    try:
        return Kind(kind).name.lower()
    except ValueError:
        return unknown if unknown is not None else f"kind {kind}"


@dataclasses.dataclass(frozen=True)
class Entry:
    """One object of Pass V: ``kind``, the dump inode it belongs to, a name, bytes."""

    kind: int
    owner: int
    name: bytes
    value: bytes


def pack_pass5(entries: Iterable[Entry]) -> bytes:
    """The Pass V payload for *entries*, in the order given."""
    parts = []
    n = 0
    for e in entries:
        if len(e.name) > 0xFFFF:
            raise ValueError(f"Pass V name of {len(e.name)} bytes")
        parts += (_ENTRY.pack(int(e.kind), len(e.name), e.owner, len(e.value)), e.name, e.value)
        n += 1
    return _HEAD.pack(MAGIC, VERSION, 0, n, 0) + b"".join(parts)


def unpack_pass5(payload: bytes) -> list[Entry]:
    """The entries of a Pass V payload; :class:`FormatError` when it is not one."""
    if len(payload) < _HEAD.size:
        raise FormatError("Pass V record is too short")
    magic, version, _, count, _ = _HEAD.unpack_from(payload, 0)
    if magic != MAGIC:
        raise FormatError(f"Pass V record has bad magic {magic!r}")
    if version != VERSION:
        raise FormatError(f"Pass V record of version {version}; this restore reads version {VERSION}")
    out = []
    at = _HEAD.size
    view = memoryview(payload)
    for _ in range(count):
        if at + _ENTRY.size > len(payload):
            raise FormatError("Pass V entries run past the record")
        kind, nlen, owner, vlen = _ENTRY.unpack_from(payload, at)
        at += _ENTRY.size
        if at + nlen + vlen > len(payload):
            raise FormatError("Pass V entry runs past the record")
        name = bytes(view[at:at + nlen])
        value = bytes(view[at + nlen:at + nlen + vlen])
        at += nlen + vlen
        out.append(Entry(kind, owner, name, value))
    return out


def pass5_records(tape: Header, ino: int, dinode: Dinode, payload: bytes) -> Iterator[Item]:
    """The Pass V record: *payload* after carrier inode *ino* (its *dinode*), see the module."""
    items = inode_records(tape, ino, dataclasses.replace(dinode, size=len(payload)),
                          file_slices(payload.ljust(-(-len(payload) // TP_BSIZE) * TP_BSIZE, b"\0"), holes=False))
    for item in items:
        if isinstance(item, Header):
            item = item.derive(c_flags=item.c_flags | DR_EXTATTRIBUTES, c_extattributes=EXT_PASS5)
        yield item


def is_pass5(header: Header) -> bool:
    """Whether *header* starts a Pass V record."""
    return bool(header.c_flags & DR_EXTATTRIBUTES) and header.c_extattributes == EXT_PASS5
