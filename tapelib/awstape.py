"""The AWSTAPE layout: records and tapemarks in a plain file.

Each block on the emulated tape is one or more *segments*, each preceded by a
6-byte header: the segment's length and the previous segment's length (both
little-endian 16-bit), then a flags byte and a reserved byte.  A record
longer than one segment is split; its first segment carries
``AWSTAPE_FLAG1_NEWREC`` and its last ``AWSTAPE_FLAG1_ENDREC``.  A tapemark
is a header alone, with ``AWSTAPE_FLAG1_TAPEMARK`` and length 0.  Hercules and
other tape emulators read the same layout.

This module is pure: it packs and checks headers.  :mod:`tapelib.cartridge`
does the file I/O.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

AWSTAPE_HEADER_SIZE = 6
AWSTAPE_FLAG1_NEWREC = 0x80
AWSTAPE_FLAG1_TAPEMARK = 0x40
AWSTAPE_FLAG1_ENDREC = 0x20
#: The longest segment a 16-bit length can describe.
AWSTAPE_MAX_SEGMENT = 0xFFFF

_HEADER = struct.Struct("<HHBB")
#: Unpacks a header in place from a buffer: ``(length, prev_length, flags, reserved)``.
unpack_header_from = _HEADER.unpack_from
_KNOWN_FLAGS = AWSTAPE_FLAG1_NEWREC | AWSTAPE_FLAG1_TAPEMARK | AWSTAPE_FLAG1_ENDREC


@dataclass(frozen=True, slots=True)
class SegmentHeader:
    """One AWSTAPE block header."""

    length: int
    prev_length: int
    flags: int

    @property
    def is_tapemark(self) -> bool:
        return bool(self.flags & AWSTAPE_FLAG1_TAPEMARK)

    @property
    def begins_record(self) -> bool:
        return bool(self.flags & AWSTAPE_FLAG1_NEWREC)

    @property
    def ends_record(self) -> bool:
        return bool(self.flags & AWSTAPE_FLAG1_ENDREC)


def pack_header(length: int, prev_length: int, flags: int) -> bytes:
    """The 6 header bytes for a segment."""
    return _HEADER.pack(length, prev_length, flags, 0)


def unpack_header(raw: bytes | memoryview) -> SegmentHeader | None:
    """Parse 6 header bytes; ``None`` when they cannot be an AWSTAPE header
    (unknown flag bits, a non-zero reserved byte, a tapemark with a length,
    or a data segment that neither begins nor continues a record sensibly)."""
    length, prev_length, flags, reserved = _HEADER.unpack(raw)
    if reserved != 0 or flags & ~_KNOWN_FLAGS:
        return None
    if flags & AWSTAPE_FLAG1_TAPEMARK:
        if length != 0 or flags != AWSTAPE_FLAG1_TAPEMARK:
            return None
    elif length == 0 and flags != (AWSTAPE_FLAG1_NEWREC | AWSTAPE_FLAG1_ENDREC):
        return None
    return SegmentHeader(length, prev_length, flags)


def tapemark_header(prev_length: int) -> bytes:
    """The header of a tapemark that follows a segment of ``prev_length`` bytes."""
    return pack_header(0, prev_length, AWSTAPE_FLAG1_TAPEMARK)


def record_segments(data: memoryview, prev_length: int) -> tuple[list[bytes | memoryview], int, int]:
    """Split one record into header/data pieces ready for ``os.writev``.

    Returns the pieces, their total size in bytes and the length of the last
    segment (the next block's ``prev_length``).  An empty record is one
    zero-length segment with both record flags.
    """
    total = len(data)
    pieces: list[bytes | memoryview] = []
    if total == 0:
        pieces.append(pack_header(0, prev_length, AWSTAPE_FLAG1_NEWREC | AWSTAPE_FLAG1_ENDREC))
        return pieces, AWSTAPE_HEADER_SIZE, 0
    pos = 0
    last = prev_length
    while pos < total:
        seg = min(AWSTAPE_MAX_SEGMENT, total - pos)
        flags = 0
        if pos == 0:
            flags |= AWSTAPE_FLAG1_NEWREC
        if pos + seg == total:
            flags |= AWSTAPE_FLAG1_ENDREC
        pieces.append(pack_header(seg, last, flags))
        pieces.append(data[pos : pos + seg])
        last = seg
        pos += seg
    return pieces, total + AWSTAPE_HEADER_SIZE * (len(pieces) // 2), last


def encoded_size(record_length: int) -> int:
    """Bytes a record of ``record_length`` takes in the file, headers included."""
    segments = max(1, -(-record_length // AWSTAPE_MAX_SEGMENT))
    return record_length + AWSTAPE_HEADER_SIZE * segments
