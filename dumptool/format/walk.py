"""Reading an image held in memory: headers with their data blocks (section 12.2).

This is the reader's counting rule, free of I/O: after each header come
exactly :meth:`Header.data_block_count` data blocks, then the next header.
A streaming reader applies the same rule block by block; these helpers are
for whole images in memory (tests, tools, small images) and for one inode's
records gathered by such a reader.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..errors import FormatError
from .constants import TP_BSIZE, ByteOrder, RecordType
from .header import Header, header_byte_order


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
    order = header_byte_order(image[:TP_BSIZE])
    pos = 0
    nblocks = len(image) // TP_BSIZE
    while pos < nblocks:
        header = Header.unpack(image[pos * TP_BSIZE:(pos + 1) * TP_BSIZE], order, verify=verify)
        count = header.data_block_count()
        if pos + 1 + count > nblocks:
            raise FormatError(f"image ends inside the data of the header at block {pos}")
        blocks = tuple(image[(pos + 1 + i) * TP_BSIZE:(pos + 2 + i) * TP_BSIZE] for i in range(count))
        yield Record(pos, header, blocks)
        pos += 1 + count


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
