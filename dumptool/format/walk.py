"""Reading a stream of blocks: headers with their data blocks (section 12.2).

This is the reader's counting rule: after each header come exactly
:meth:`Header.data_block_count` data blocks, then the next header.
:func:`walk_chunks` applies it to a stream read in chunks of whole blocks
(what a reader gets from a tape record or a file read), without cutting
the data into 1 KiB pieces; :func:`walk_blocks` and :func:`walk_image` are
its forms for a stream of single blocks and for a whole image in memory.
The rest reads one inode's records gathered by such a walk.
"""

from __future__ import annotations

import struct
from collections import namedtuple
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from ..errors import ChecksumError, FormatError
from .constants import (
    CHECKSUM,
    DINODE_SIZE,
    DR_EXTATTRIBUTES,
    LBLSIZE,
    NAMELEN,
    NDADDR,
    NFS_MAGIC,
    NIADDR,
    TP_BSIZE,
    TP_NINDIR,
    ByteOrder,
    RecordType,
)
from .dinode import InodeTimes
from .header import Header, HeaderQueries, header_byte_order, is_header, unpack_header

Buffer = bytes | bytearray | memoryview
"""Bytes as a reader holds them: a slice of what it read may be a memoryview."""


_HEAD_FIELDS = ("c_type c_date c_volume c_tapea c_inumber c_magic mode size atime_sec atime_usec mtime_sec "
                "mtime_usec db0 db1 uid gid c_count c_addr c_flags")


class Head(namedtuple("Head", _HEAD_FIELDS), HeaderQueries, InodeTimes):
    """The fields of a header a reader needs for every record, unpacked in
    one step: what :func:`walk_chunks` counts with and a restore writes a
    file with.  The dinode fields keep their :class:`Dinode` names; ``rdev``
    is its device number.  The full :class:`Header` is :attr:`Segment.header`.
    """

    __slots__ = ()

    @classmethod
    def of(cls, header: Header) -> "Head":
        """The fields of a full header."""
        d = header.c_dinode
        return cls(int(header.c_type), header.c_date, header.c_volume, header.c_tapea, header.c_inumber, NFS_MAGIC,
                   d.mode, d.size, d.atime_sec, d.atime_usec, d.mtime_sec, d.mtime_usec, d.db[0], d.db[1],
                   d.uid, d.gid, header.c_count, header.c_addr, header.c_flags)

    @property
    def rdev(self) -> int:
        """As :attr:`Dinode.rdev`."""
        return self.db0 or self.db1


# The header layout (header.py, dinode.py) with only :class:`Head`'s fields
# kept, in its order: c_type, c_date, (c_ddate), c_volume, c_tapea, c_inumber, c_magic,
# (c_checksum); di_mode, (nlink, old ids), di_size, the six time words, the
# first two of di_db, (the rest, di_ib, flags, blocks, gen), di_uid, di_gid,
# (spare); c_count, c_addr, (label, level, names), c_flags, (the rest).
_LEAN_FMT = (f"ii4xiIIi4x H6xQ IIII8x II{(NDADDR - 2) * 4 + NIADDR * 4 + 12}x II8x "
             f"i{TP_NINDIR}s{LBLSIZE + 4 + 3 * NAMELEN}x i{TP_BSIZE - 892}x").replace(" ", "")
_LEAN = {order: struct.Struct(order.value + _LEAN_FMT) for order in ByteOrder}
assert _LEAN[ByteOrder.LITTLE].size == TP_BSIZE and DINODE_SIZE == 128
_TYPES = frozenset(int(t) for t in RecordType)
_new_tuple = tuple.__new__

# The checksum (the sum of the 256 words) in three parts: the words before
# c_addr, summed each time; c_addr, and the words after it (the volume's
# names, flags, spare), each summed once per distinct value and looked up
# after that: nearly every header of a dump repeats them.
_ADDR_AT = 32 + DINODE_SIZE + 4
_REST_AT = _ADDR_AT + TP_NINDIR
_FRONT = {order: struct.Struct(f"{order.value}{_ADDR_AT // 4}I") for order in ByteOrder}
_PART_SUMS: dict[ByteOrder, dict[bytes, int]] = {order: {} for order in ByteOrder}
_PART_SUMS_LIMIT = 256


def _head_reader(order: ByteOrder, verify: bool = True) -> Callable[[Buffer, int], Head]:
    """:func:`read_head` for one byte order, its tables looked up once (a
    :class:`ByteOrder` hashes in Python: a lookup per header costs)."""
    lean = _LEAN[order].unpack_from
    front = _FRONT[order].unpack_from
    sums = _PART_SUMS[order]
    prefix = order.value
    types, new, magic, checksum = _TYPES, _new_tuple, NFS_MAGIC, CHECKSUM

    def part_sum(part: bytes) -> int:
        total = sum(struct.unpack(f"{prefix}{len(part) // 4}I", part))
        if len(sums) < _PART_SUMS_LIMIT:
            sums[part] = total
        return total

    last = [b"", 0, b"", 0]  # the last c_addr and rest seen, with their sums (the next header's, mostly)

    def read(buf: Buffer, at: int) -> Head:
        v = lean(buf, at)
        if v[5] != magic:
            raise FormatError("block is not a dump header (bad magic): damaged, or wrong byte order")
        if verify:
            addr = v[17]
            if addr == last[0]:
                addr_sum = last[1]
            else:
                addr_sum = sums.get(addr)
                if addr_sum is None:
                    addr_sum = part_sum(addr)
                last[0], last[1] = addr, addr_sum
            rest = bytes(buf[at + _REST_AT:at + TP_BSIZE])
            if rest == last[2]:
                rest_sum = last[3]
            else:
                rest_sum = sums.get(rest)
                if rest_sum is None:
                    rest_sum = part_sum(rest)
                last[2], last[3] = rest, rest_sum
            if (sum(front(buf, at)) + addr_sum + rest_sum) & 0xFFFFFFFF != checksum:
                raise ChecksumError(f"header at tape block {v[3]} (inode {v[4]}) has a bad checksum: "
                                    "the image is damaged")
        if v[0] not in types:
            raise FormatError(f"header has unknown record type {v[0]}: the image is damaged")
        return new(Head, v)

    return read


def read_head(buf: Buffer, at: int, order: ByteOrder, *, verify: bool = True) -> Head:
    """The :class:`Head` of the header block at offset *at* of *buf*, with
    :func:`unpack_header`'s checks and errors (magic, checksum, record type)."""
    return _head_reader(order, verify)(buf, at)


class Segment:
    """A header and the data blocks it counts, as a walk reads them (what
    dump-format.md calls a record of the header's type, named apart from the
    tape records of :mod:`dumptool.medium`); ``index`` is the header's block index.

    ``head`` holds the header's everyday fields (:class:`Head`); ``header``
    is the full :class:`Header`, made when first asked for from
    ``header_block`` (the header as read, in ``byte_order``; None for a
    segment made from a :class:`Header`).  ``data`` is
    the data blocks back to back (``len(data)`` is a multiple of 1 KiB):
    bytes, or a memoryview into what the reader read, valid as long as the
    segment is kept.  ``blocks`` is the same data as 1 KiB ``bytes`` blocks.
    Segments compare by index, header and data.
    """

    __slots__ = ("index", "head", "data", "header_block", "byte_order", "_header")

    def __init__(self, index: int, header: Header, blocks: Iterable[Buffer] = (), *,
                 data: Buffer | None = None) -> None:
        self.index = index
        self._header = header
        self.head = Head.of(header)
        self.data: Buffer = data if data is not None else b"".join(blocks)
        self.header_block: Buffer | None = None
        self.byte_order: ByteOrder | None = None

    @property
    def header(self) -> Header:
        try:
            return self._header
        except AttributeError:  # a walk's segment: made from its block when first asked for
            header = self._header = unpack_header(self.header_block, self.byte_order, verify=False)
            return header

    @property
    def blocks(self) -> tuple[bytes, ...]:
        data = self.data
        return tuple(bytes(data[at:at + TP_BSIZE]) for at in range(0, len(data), TP_BSIZE))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Segment):
            return NotImplemented
        return self.index == other.index and self.header == other.header and self.data == other.data

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Segment(index={self.index}, header={self.header!r}, {len(self.data) // TP_BSIZE} blocks)"


_new_segment = Segment.__new__


def walk_image(image: bytes, *, verify: bool = True) -> Iterator[Segment]:
    """Every record of a single-volume image, in order, up to and including TS_END headers.

    The byte order is told from the first header.  Raises
    :class:`FormatError` when a header is missing where one must be or the
    image ends inside a record's data (a truncated image).
    """
    if len(image) < TP_BSIZE or len(image) % TP_BSIZE:
        raise FormatError(f"a dump image is a whole number of {TP_BSIZE}-byte blocks")
    yield from walk_chunks((image,), verify=verify)


@dataclass(frozen=True)
class Damage:
    """What a resyncing reader skipped: ``skipped`` blocks from block ``index`` on.

    ``inode`` is the inode whose records were being read when the damage was
    found (0 when none), ``reason`` says what was wrong.  ``truncated`` is
    true when the stream ended inside a record.
    """

    index: int
    skipped: int
    inode: int
    reason: str
    truncated: bool = False


def walk_blocks(
    blocks: Iterable[bytes],
    *,
    verify: bool = True,
    on_damage: Callable[[Damage], None] | None = None,
) -> Iterator[Segment]:
    """Every record of a stream of 1 KiB blocks: :func:`walk_chunks` over
    single blocks.  A block of another length ends the stream there."""
    yield from walk_chunks(blocks, verify=verify, on_damage=on_damage)


_INODE_TYPES = (RecordType.TS_INODE, RecordType.TS_ADDR)


def walk_chunks(
    chunks: Iterable[Buffer],
    *,
    verify: bool = True,
    on_damage: Callable[[Damage], None] | None = None,
    held: list[Buffer] | None = None,
) -> Iterator[Segment]:
    """Every record of a stream read in chunks of whole 1 KiB blocks, in order.

    The byte order and the dump date come from the first header, which must
    be good.  A record's data lying inside one chunk comes as a memoryview
    slice of it (no copy).  Without *on_damage*, a bad header or a stream
    that ends inside a record's data raises :class:`FormatError`.  With it,
    the walk resyncs as restore does: it reports a :class:`Damage`, skips
    forward to the next block that is a good header (:func:`is_header`) with
    the same ``c_date``, and goes on from there; a truncated last record is
    reported and dropped.  Every TS_END is yielded; the walk ends with the
    stream (a caller that has what it needs simply stops iterating).  A
    chunk that is not whole blocks ends the stream after its whole blocks.

    *held*, when given, is a list the walk keeps up to date for a caller
    that must save a record cut by a volume change: while the walk asks
    *chunks* for more, it holds the bytes read of the record under way
    (empty between records).
    """
    it = iter(chunks)
    if held is None:
        held = []
    buf: memoryview = memoryview(b"")
    end = 0          # len(buf)
    pos = 0          # the next unread byte of buf
    mark = 0         # where the record under way starts in buf (held has what came before)
    done = False     # the stream ended (no more chunks)

    def fetch() -> bool:
        """Move on to the next chunk; False at the end of the stream."""
        nonlocal buf, end, pos, mark, done
        if mark < end:
            held.append(buf[mark:end])
        while not done:
            chunk = next(it, None)
            if chunk is None:
                break
            size = len(chunk)
            if size % TP_BSIZE:
                done = True
                size -= size % TP_BSIZE
            if size:
                buf = memoryview(chunk)[:size]
                end, pos, mark = size, 0, 0
                return True
        done = True
        buf, end, pos, mark = memoryview(b""), 0, 0, 0
        return False

    def next_block() -> memoryview | None:
        nonlocal pos
        if pos >= end and not fetch():
            return None
        block = buf[pos:pos + TP_BSIZE]
        pos += TP_BSIZE
        return block

    first = next_block()
    if first is None:
        raise FormatError("the image is empty: no dump header")
    order = header_byte_order(first)
    read = _head_reader(order, verify)
    try:
        head = read(first, 0)
    except FormatError as exc:
        # a good header (magic, checksum) of an unknown type: restore takes
        # the first block as the volume header all the same
        if on_damage is None or not _is_header_in(first, order):
            raise
        first = _as_volume_header(first, order)
        head = read(first, 0)
        on_damage(Damage(0, 0, 0, f"{exc.message}: the first block is read as the volume header (TS_TAPE)"))
    block = first
    date = head.c_date
    index = 0
    last_inode = 0
    ts_inode, ts_addr, ts_clri, ts_bits = (int(t) for t in (RecordType.TS_INODE, RecordType.TS_ADDR,
                                                            RecordType.TS_CLRI, RecordType.TS_BITS))
    while True:
        c_type = head.c_type
        if c_type == ts_inode or c_type == ts_addr:
            last_inode = head.c_inumber
            count = head.c_count
            if count <= 0:
                count = 0
            elif c_type != ts_inode or not head.c_flags & DR_EXTATTRIBUTES:
                if count > TP_NINDIR:
                    count = TP_NINDIR
                count -= head.c_addr.count(0, 0, count)  # the holes have no data blocks
        elif c_type == ts_clri or c_type == ts_bits:
            count = max(0, head.c_count)
        else:
            count = 0
        if count:
            size = count * TP_BSIZE
            if pos + size <= end:
                data: Buffer = buf[pos:pos + size]
                pos += size
            else:
                parts = [buf[pos:end]]
                need = size - (end - pos)
                pos = end
                while need:
                    if not fetch():
                        break
                    take = need if need < end else end
                    parts.append(buf[:take])
                    pos = take
                    need -= take
                if need:
                    reason = f"the image ends inside the data of the header at block {index}"
                    if on_damage is None:
                        raise FormatError(reason)
                    on_damage(Damage(index, 1 + count - need // TP_BSIZE, head.c_inumber, reason,
                                     truncated=True))
                    return
                data = b"".join(parts)
        else:
            data = b""
        rec = _new_segment(Segment)
        rec.index, rec.head, rec.data, rec.header_block, rec.byte_order = index, head, data, block, order
        yield rec
        if held:
            del held[:]
        mark = pos
        index += 1 + count
        if pos < end:
            block = buf[pos:pos + TP_BSIZE]
            pos += TP_BSIZE
        else:
            block = next_block()
            if block is None:
                return
        try:
            head = read(block, 0)
            continue
        except FormatError as exc:
            if on_damage is None:
                raise
            reason = exc.message
        # the bad block is skipped, then every block up to one that reads as a
        # good header of this dump (a block with the magic and a good checksum
        # but an unknown type, say, is skipped like any other)
        start = index
        skipped = 0
        while True:
            skipped += 1
            block = next_block()
            if block is None:
                on_damage(Damage(start, skipped, last_inode, reason, truncated=True))
                return
            if _is_header_in(block, order) and _date_of(block, order) == date:
                try:
                    head = read(block, 0)
                    break
                except FormatError:
                    continue
        on_damage(Damage(start, skipped, last_inode, reason))
        index += skipped


def skip_to_header(chunks: Iterable[Buffer], order: ByteOrder, date: int) -> Iterator[Buffer]:
    """*chunks* (of whole blocks) from the first good header of the dump of
    *date* on: where a reader lands after seeking into the middle of an
    image (a QFA position), the blocks before it are the tail of an earlier file."""
    it = iter(chunks)
    for chunk in it:
        view = memoryview(chunk)
        for at in range(0, len(view) - len(view) % TP_BSIZE, TP_BSIZE):
            block = view[at:at + TP_BSIZE]
            if _is_header_in(block, order) and _date_of(block, order) == date:
                yield view[at:]
                yield from it
                return


def _as_volume_header(block: Buffer, order: ByteOrder) -> bytes:
    """*block* with its ``c_type`` made TS_TAPE and its checksum made good again."""
    out = bytearray(block)
    word = struct.Struct(order.value + "I")
    was, checksum, tape = word.unpack_from(out, 0)[0], word.unpack_from(out, 28)[0], int(RecordType.TS_TAPE)
    word.pack_into(out, 0, tape)
    word.pack_into(out, 28, (checksum + was - tape) & 0xFFFFFFFF)
    return bytes(out)


def _is_header_in(block: Buffer, order: ByteOrder) -> bool:
    return is_header(block) and header_byte_order(block) == order


def _date_of(block: Buffer, order: ByteOrder) -> int:
    return struct.unpack_from(order.value + "i", block, 4)[0]


def image_byte_order(image: bytes) -> ByteOrder:
    """The byte order of an image, from its first header."""
    return header_byte_order(image[:TP_BSIZE])


def iter_file_slices(records: Iterable[Segment]) -> Iterator[tuple[int, bytes | None]]:
    """``(file offset, block or None for a hole)`` over one inode's TS_INODE/TS_ADDR records."""
    k = 0
    for record in records:
        data = record.data
        at = 0
        for entry in record.header.addr_entries:
            if entry:
                yield k * TP_BSIZE, bytes(data[at:at + TP_BSIZE])
                at += TP_BSIZE
            else:
                yield k * TP_BSIZE, None
            k += 1


def assemble_file(records: Iterable[Segment]) -> bytes:
    """The contents of one inode from its TS_INODE record and TS_ADDR records.

    Holes read as zeros; entries missing at the end count as holes (as restore
    assumes); bytes past ``di_size`` are dropped.
    """
    records = list(records)
    if not records or records[0].header.c_type != RecordType.TS_INODE:
        raise ValueError("assemble_file needs the inode's TS_INODE record first")
    size = records[0].header.c_dinode.size
    out = bytearray()
    for offset, block in iter_file_slices(records):
        if offset >= size:
            break
        out += block if block is not None else bytes(TP_BSIZE)
    del out[size:]
    out.extend(bytes(size - len(out)))
    return bytes(out)
