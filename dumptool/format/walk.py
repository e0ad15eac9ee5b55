"""Reading an image held in memory: headers with their data blocks (section 12.2).

This is the reader's counting rule, free of I/O: after each header come
exactly :meth:`Header.data_block_count` data blocks, then the next header.
A streaming reader applies the same rule block by block; these helpers are
for whole images in memory (tests, tools, small images) and for one inode's
records gathered by such a reader.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

from ..errors import FormatError
from .constants import DR_EXTATTRIBUTES, TP_BSIZE, TP_NINDIR, ByteOrder, RecordType
from .header import Header, header_byte_order, is_header, unpack_header


_WHOLE_BLOCK = {TP_BSIZE}


@dataclass(frozen=True)
class Record:
    """A header and the data blocks after it; ``index`` is the header's block index."""

    index: int
    header: Header
    blocks: tuple[bytes, ...]


def walk_image(image: bytes, *, verify: bool = True) -> Iterator[Record]:
    """Every record of a single-volume image, in order, up to and including TS_END headers.

    The byte order is told from the first header.  Raises
    :class:`FormatError` when a header is missing where one must be or the
    image ends inside a record's data (a truncated image).
    """
    if len(image) < TP_BSIZE or len(image) % TP_BSIZE:
        raise FormatError(f"a dump image is a whole number of {TP_BSIZE}-byte blocks")
    blocks = (image[i:i + TP_BSIZE] for i in range(0, len(image), TP_BSIZE))
    yield from walk_blocks(blocks, verify=verify)


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
    """Every record of a stream of 1 KiB blocks: the streaming form of :func:`walk_image`.

    The byte order and the dump date come from the first header, which must
    be good.  Without *on_damage*, a bad header or a stream that ends inside
    a record's data raises :class:`FormatError`.  With it, the walk resyncs
    as restore does: it reports a :class:`Damage`, skips forward to the next
    block that is a good header (:func:`is_header`) with the same ``c_date``,
    and goes on from there; a truncated last record is reported and dropped.
    Every TS_END is yielded; the walk ends with the stream (a caller that
    has what it needs simply stops iterating).
    """
    it = iter(blocks)
    index = 0
    first = next(it, None)
    if first is None:
        raise FormatError("the image is empty: no dump header")
    if len(first) != TP_BSIZE:
        raise FormatError(f"a dump image is a whole number of {TP_BSIZE}-byte blocks")
    order = header_byte_order(first)
    header = unpack_header(first, order, verify=verify)
    date = header.c_date
    last_inode = 0
    inode_types = (RecordType.TS_INODE, RecordType.TS_ADDR)
    while True:
        if header.c_type in inode_types and not header.c_flags & DR_EXTATTRIBUTES:
            entries = header.c_addr[:max(0, min(header.c_count, TP_NINDIR))]
            count = len(entries) - entries.count(0)
        else:
            count = header.data_block_count()
        data = tuple(islice(it, count)) if count else ()
        if len(data) != count or (count and {*map(len, data)} != _WHOLE_BLOCK):
            good = 0
            while good < len(data) and len(data[good]) == TP_BSIZE:
                good += 1
            reason = f"the image ends inside the data of the header at block {index}"
            if on_damage is None:
                raise FormatError(reason)
            on_damage(Damage(index, 1 + good, header.c_inumber, reason, truncated=True))
            return
        yield Record(index, header, data)
        if header.c_type in inode_types:
            last_inode = header.c_inumber
        index += 1 + count
        block = next(it, None)
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
            block = next(it, None)
        if block is None:
            on_damage(Damage(start, skipped, last_inode, reason, truncated=True))
            return
        on_damage(Damage(start, skipped, last_inode, reason))
        index += skipped
        header = unpack_header(block, order, verify=verify)


def skip_to_header(blocks: Iterable[bytes], order: ByteOrder, date: int) -> Iterator[bytes]:
    """*blocks* from the first good header of the dump of *date* on: where a
    reader lands after seeking into the middle of an image (a QFA position),
    the blocks before it are the tail of an earlier file."""
    it = iter(blocks)
    for block in it:
        if _is_header_in(block, order) and _date_of(block, order) == date:
            yield block
            yield from it
            return


def _is_header_in(block: bytes, order: ByteOrder) -> bool:
    return is_header(block) and header_byte_order(block) == order


def _date_of(block: bytes, order: ByteOrder) -> int:
    return struct.unpack_from(order.value + "i", block, 4)[0]


def image_byte_order(image: bytes) -> ByteOrder:
    """The byte order of an image, from its first header."""
    return header_byte_order(image[:TP_BSIZE])


def iter_file_slices(records: Iterable[Record]) -> Iterator[tuple[int, bytes | None]]:
    """``(file offset, block or None for a hole)`` over one inode's TS_INODE/TS_ADDR records."""
    k = 0
    for record in records:
        blocks = iter(record.blocks)
        for entry in record.header.addr_entries:
            yield k * TP_BSIZE, (next(blocks) if entry else None)
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
