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

Both ways Pass V streams: the record's size is the sum of the entries' sizes,
known before any value is read (:func:`pass5_size`), so a dump writes a
stream's bytes as it reads them (:func:`pass5_records`) and a restore takes
the entries one by one as the blocks come (:func:`read_pass5`), a big value
going to a spool file in chunks: memory stays bounded whatever a stream's size.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import struct
from collections.abc import Iterable, Iterator, Sequence
from typing import BinaryIO, Protocol

from ..errors import FormatError
from .constants import DR_EXTATTRIBUTES, TP_BSIZE
from .dinode import Dinode
from .header import Header
from .stream import Item, inode_records

#: ``c_extattributes`` of the Pass V record ("NS"): no value Linux restore knows (1, 2, 3).
EXT_PASS5 = 0x534E
MAGIC = b"SNP5"
VERSION = 1
_HEAD = struct.Struct("<4sHHII")
_ENTRY = struct.Struct("<HHIQ")
#: the size of the pieces a large value is read, written and spooled in
CHUNK = 1 << 20
#: a value read back longer than this goes to the spool (:func:`read_pass5`)
KEEP = 64 * 1024


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


class LargeValue(Protocol):
    """A value not held in memory: its length, and its bytes a chunk at a time."""

    def __len__(self) -> int: ...

    def chunks(self) -> Iterator[bytes]: ...


class Spooled:
    """A value read from an image and kept in a spool file (``file``, an open binary file
    named ``file.name``), ``size`` bytes from ``offset``: a big stream is never held whole."""

    def __init__(self, file: BinaryIO, offset: int, size: int) -> None:
        self.file, self.offset, self.size = file, offset, size

    def __len__(self) -> int:
        return self.size

    def chunks(self, step: int = CHUNK) -> Iterator[bytes]:
        fd = self.file.fileno()
        at, end = self.offset, self.offset + self.size
        while at < end:
            got = os.pread(fd, min(step, end - at), at)
            if not got:
                raise FormatError("the spool of a Pass V value is shorter than the value")
            yield got
            at += len(got)


@dataclasses.dataclass(frozen=True)
class Entry:
    """One object of Pass V: ``kind``, the dump inode it belongs to, a name, bytes (or,
    for a big stream, a :class:`LargeValue` that gives them a chunk at a time)."""

    kind: int
    owner: int
    name: bytes
    value: bytes | LargeValue


def value_chunks(value: bytes | LargeValue) -> Iterator[bytes]:
    """The bytes of an entry's value, a chunk at a time."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        if value:
            yield bytes(value)
    else:
        yield from value.chunks()


def pass5_size(entries: Iterable[Entry]) -> int:
    """The length of the Pass V payload for *entries* (known before any value is read)."""
    return _HEAD.size + sum(_ENTRY.size + len(e.name) + len(e.value) for e in entries)


def pass5_chunks(entries: Sequence[Entry]) -> Iterator[bytes]:
    """The Pass V payload for *entries*, in the order given, a piece at a time: a large
    value's chunks as they are read (:class:`FormatError` if one does not give the length
    it announced: the record's size is written before its bytes)."""
    entries = list(entries)
    for e in entries:
        if len(e.name) > 0xFFFF:
            raise ValueError(f"Pass V name of {len(e.name)} bytes")
    yield _HEAD.pack(MAGIC, VERSION, 0, len(entries), 0)
    for e in entries:
        size = len(e.value)
        yield _ENTRY.pack(int(e.kind), len(e.name), e.owner, size) + e.name
        got = 0
        for chunk in value_chunks(e.value):
            got += len(chunk)
            if got > size:
                break
            yield chunk
        if got != size:
            raise FormatError(f"a Pass V value of inode {e.owner} ({kind_name(e.kind)} {e.name!r}) changed "
                              f"while dumped: {size} bytes announced, {got} read")


def pack_pass5(entries: Iterable[Entry]) -> bytes:
    """The Pass V payload for *entries*, in the order given."""
    return b"".join(pass5_chunks(list(entries)))


def unpack_pass5(payload: bytes) -> list[Entry]:
    """The entries of a Pass V payload; :class:`FormatError` when it is not one."""
    return list(read_pass5((payload,)))


def read_pass5(chunks: Iterable[bytes], spool: BinaryIO | None = None, *,
               keep: int = KEEP) -> Iterator[Entry]:
    """The entries of a Pass V payload given a piece at a time (*chunks*), each as soon as
    it is read; a value of more than *keep* bytes goes to the end of *spool* (when given)
    in chunks, its entry's value a :class:`Spooled`, so memory stays bounded whatever the
    values' sizes (only streams are spooled: the other kinds are an xattr's size at
    most).  :class:`FormatError` (after the entries read whole) when the payload
    is not one."""
    it = iter(chunks)
    buf = bytearray()

    def fill(n: int) -> bool:
        while len(buf) < n:
            piece = next(it, None)
            if piece is None:
                return False
            buf.extend(piece)
        return True

    def take(n: int) -> bytes:
        out = bytes(buf[:n])
        del buf[:n]
        return out

    if not fill(_HEAD.size):
        raise FormatError("Pass V record is too short")
    magic, version, _, count, _ = _HEAD.unpack(take(_HEAD.size))
    if magic != MAGIC:
        raise FormatError(f"Pass V record has bad magic {magic!r}")
    if version != VERSION:
        raise FormatError(f"Pass V record of version {version}; this restore reads version {VERSION}")
    for _ in range(count):
        if not fill(_ENTRY.size):
            raise FormatError("Pass V entries run past the record")
        kind, nlen, owner, vlen = _ENTRY.unpack(take(_ENTRY.size))
        if not fill(nlen):
            raise FormatError("Pass V entry runs past the record")
        name = take(nlen)
        if spool is None or vlen <= keep or kind != Kind.STREAM:
            if not fill(vlen):
                raise FormatError("Pass V entry runs past the record")
            yield Entry(kind, owner, name, take(vlen))
            continue
        spool.seek(0, os.SEEK_END)
        start, left = spool.tell(), vlen
        while left:
            if not buf and not fill(1):
                raise FormatError("Pass V entry runs past the record")
            n = min(left, len(buf))
            spool.write(memoryview(buf)[:n])
            del buf[:n]
            left -= n
        spool.flush()
        yield Entry(kind, owner, name, Spooled(spool, start, vlen))


def pass5_records(tape: Header, ino: int, dinode: Dinode, entries: Sequence[Entry]) -> Iterator[Item]:
    """The Pass V record of *entries* after carrier inode *ino* (its *dinode*), see the
    module; the values are read as the record is written (runs of whole blocks of about
    :data:`CHUNK` bytes go out), so memory stays bounded whatever their sizes."""
    size = pass5_size(entries)

    def runs() -> Iterator[bytes]:
        buf = bytearray()
        for piece in pass5_chunks(entries):
            buf += piece
            if len(buf) >= CHUNK:
                whole = len(buf) - len(buf) % TP_BSIZE
                yield bytes(buf[:whole])
                del buf[:whole]
        if buf:
            yield bytes(buf.ljust(-(-len(buf) // TP_BSIZE) * TP_BSIZE, b"\0"))

    items = inode_records(tape, ino, dataclasses.replace(dinode, size=size), runs())
    for item in items:
        if isinstance(item, Header):
            item = item.derive(c_flags=item.c_flags | DR_EXTATTRIBUTES, c_extattributes=EXT_PASS5)
        yield item


def is_pass5(header: Header) -> bool:
    """Whether *header* starts a Pass V record."""
    return bool(header.c_flags & DR_EXTATTRIBUTES) and header.c_extattributes == EXT_PASS5
