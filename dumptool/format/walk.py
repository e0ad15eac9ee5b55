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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from ..errors import FormatError
from .constants import DR_EXTATTRIBUTES, TP_BSIZE, TP_NINDIR, ByteOrder, RecordType
from .header import Header, header_byte_order, is_header, unpack_header

Buffer = bytes | bytearray | memoryview
"""Bytes as a reader holds them: a slice of what it read may be a memoryview."""


class Record:
    """A header and the data blocks after it; ``index`` is the header's block index.

    ``data`` is the data blocks back to back (``len(data)`` is a multiple
    of 1 KiB): bytes, or a memoryview into what the reader read, valid as
    long as the record is kept.  ``blocks`` is the same data as 1 KiB
    ``bytes`` blocks.  Records compare by index, header and data.
    """

    __slots__ = ("index", "header", "data")

    def __init__(self, index: int, header: Header, blocks: Iterable[Buffer] = (), *,
                 data: Buffer | None = None) -> None:
        self.index = index
        self.header = header
        self.data: Buffer = data if data is not None else b"".join(blocks)

    @property
    def blocks(self) -> tuple[bytes, ...]:
        data = self.data
        return tuple(bytes(data[at:at + TP_BSIZE]) for at in range(0, len(data), TP_BSIZE))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return self.index == other.index and self.header == other.header and self.data == other.data

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Record(index={self.index}, header={self.header!r}, {len(self.data) // TP_BSIZE} blocks)"


def walk_image(image: bytes, *, verify: bool = True) -> Iterator[Record]:
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
) -> Iterator[Record]:
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
) -> Iterator[Record]:
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
    header = unpack_header(first, order, verify=verify)
    date = header.c_date
    index = 0
    last_inode = 0
    ts_inode, ts_addr = RecordType.TS_INODE, RecordType.TS_ADDR
    while True:
        c_type = header.c_type
        if (c_type is ts_inode or c_type is ts_addr) and not header.c_flags & DR_EXTATTRIBUTES:
            count = header.c_count
            if count > 0:
                entries = header.c_addr[:count] if count < TP_NINDIR else header.c_addr
                count = len(entries) - entries.count(0)
            else:
                count = 0
        else:
            count = header.data_block_count()
        if c_type is ts_inode or c_type is ts_addr:
            last_inode = header.c_inumber
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
                    on_damage(Damage(index, 1 + count - need // TP_BSIZE, header.c_inumber, reason,
                                     truncated=True))
                    return
                data = b"".join(parts)
        else:
            data = b""
        yield Record(index, header, data=data)
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
            header = unpack_header(block, order, verify=verify)
            continue
        except FormatError as exc:
            if on_damage is None:
                raise
            reason = exc.message
        start = index
        skipped = 0
        while block is not None and not (_is_header_in(block, order) and _date_of(block, order) == date):
            skipped += 1
            block = next_block()
        if block is None:
            on_damage(Damage(start, skipped, last_inode, reason, truncated=True))
            return
        on_damage(Damage(start, skipped, last_inode, reason))
        index += skipped
        header = unpack_header(block, order, verify=verify)


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


def _is_header_in(block: Buffer, order: ByteOrder) -> bool:
    return is_header(block) and header_byte_order(block) == order


def _date_of(block: Buffer, order: ByteOrder) -> int:
    return struct.unpack_from(order.value + "i", block, 4)[0]


def image_byte_order(image: bytes) -> ByteOrder:
    """The byte order of an image, from its first header."""
    return header_byte_order(image[:TP_BSIZE])


def iter_file_slices(records: Iterable[Record]) -> Iterator[tuple[int, bytes | None]]:
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


def assemble_file(records: Iterable[Record]) -> bytes:
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
