"""The stream a writer emits: headers and data blocks in order (sections 3, 4, 6, 7.1, 9).

Functions here return or yield *items*: a :class:`Header` still to be
numbered, or a 1 KiB data block (``bytes``).  :func:`number_blocks` gives
each header its ``c_tapea`` (its index in the stream) and packs it; the
record layer then groups blocks into records of ``c_ntrec`` blocks.

Every header repeats the identity of the volume header (date, base date,
volume, level, label, names, ntrec); the functions copy them from the
``tape`` header they are given, as dump copies its one global header.

An image that real restore accepts is, in order (section 3.1)::

    volume_header, map_records(TS_CLRI), map_records(TS_BITS),
    directories by ascending inode (inode_records [+ xattr_records]),
    other inodes by ascending inode (inode_records [+ xattr_records]),
    end_records
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Iterator

from ..errors import FormatError, FormatLimitError
from .bitmap import build_inode_map, map_blocks
from .constants import (
    DR_COMPRESSED,
    DR_EXTATTRIBUTES,
    DR_METAONLY,
    DR_NEWHEADER,
    DR_NEWINODEFMT,
    EXT_XATTR,
    MAXNTREC,
    MAXPATHLEN,
    NTREC,
    TP_BSIZE,
    TP_NINDIR,
    XATTR_MAXSIZE,
    ByteOrder,
    RecordType,
)
from .dinode import Dinode
from .header import Header

Item = Header | bytes
"""A header to number and pack, or data blocks: one 1 KiB block, or (from
:func:`inode_records` given runs) several whole blocks in one bytes."""
Slice = bytes | None
"""One 1 KiB slice of a file: its bytes (at most 1024), or None for a hole.
:func:`inode_records` also takes a run of several whole slices in one bytes."""

_ZERO_BLOCK = bytes(TP_BSIZE)
_ONES = b"\1" * TP_NINDIR


def volume_header(
    *,
    date: int,
    ddate: int = 0,
    level: int = 0,
    label: bytes = b"none",
    filesys: bytes = b"",
    dev: bytes = b"",
    host: bytes = b"",
    ntrec: int = NTREC,
) -> Header:
    """The ``TS_TAPE`` header of volume 1: the global header every other copies.

    *ddate* is the ``c_date`` of the base dump, 0 for level 0: restore
    treats the image as incremental exactly when it is nonzero.  An empty
    *host* makes restore omit its "Level ... dump of ..." line.  ``c_count`` 1
    and zero ``c_addr`` copy real dump (restore ignores both on volume 1).
    """
    if not 1 <= ntrec <= MAXNTREC:
        raise FormatLimitError(f"blocking factor {ntrec} is outside 1..{MAXNTREC}")
    return Header(
        c_type=RecordType.TS_TAPE, c_date=date, c_ddate=ddate, c_volume=1, c_count=1,
        c_label=label, c_level=level, c_filesys=filesys, c_dev=dev, c_host=host,
        c_flags=DR_NEWHEADER | DR_NEWINODEFMT, c_firstrec=0, c_ntrec=ntrec,
    )


def continuation_header(tape: Header, volume: int, tapea: int, interrupted: Header, remaining: int,
                        firstrec: int | None = None) -> Header:
    """The ``TS_TAPE`` that starts volume *volume* >= 2 (section 9).

    *tapea* is this header's stream index (also ``c_firstrec`` unless
    *firstrec* gives it: where the header stands among the blocks written,
    which runs ahead of the numbers once a full tape made a record be
    written again after a volume header that took no number);
    *interrupted* is the header whose blocks were cut off, *remaining* how
    many blocks after this one still belong to it.
    """
    return dataclasses.replace(
        tape, c_type=RecordType.TS_TAPE, c_volume=volume, c_tapea=tapea,
        c_firstrec=tapea if firstrec is None else firstrec,
        c_inumber=interrupted.c_inumber, c_dinode=interrupted.c_dinode, c_count=remaining,
        c_addr=interrupted.c_addr, c_flags=tape.c_flags | DR_NEWHEADER | DR_NEWINODEFMT,
        c_extattributes=0,
    )


#: The fields every volume header of one dump repeats from volume 1's (dump's one global
#: header: from volume to volume only the volume number, the counts and the file cut change),
#: with how a mismatch is told.  Real dump 0.4b47 keeps them all alike across -M volumes too.
_SAME_ON_EVERY_VOLUME = (("c_date", "dump date"), ("c_ddate", "base dump date"), ("c_level", "level"),
                         ("c_host", "host"), ("c_filesys", "file system"), ("c_dev", "device"),
                         ("c_label", "label"))


def other_dump(head: Header, dump: Header) -> str:
    """How the volume header *head* shows it belongs to another dump than the
    one *dump* (any header of it) is of: ``"its file system is /var, not
    /home"``; "" when nothing does.  Two dumps started in the same second
    share a date: their level, host, file system, device or label tell them
    apart."""
    for field, what in _SAME_ON_EVERY_VOLUME:
        theirs, ours = getattr(head, field), getattr(dump, field)
        if theirs != ours:
            if isinstance(theirs, bytes):
                theirs, ours = (v.decode("utf-8", "backslashreplace") or '""' for v in (theirs, ours))
            elif field != "c_level":
                theirs, ours = (time.ctime(v) if v else "the epoch" for v in (theirs, ours))
            return f"its {what} is {theirs}, not {ours}"
    return ""


_RECORD_DEFAULTS = {"c_flags": DR_NEWINODEFMT, "c_extattributes": 0, "c_addr": b"", "c_dinode": Dinode(),
                    "c_inumber": 0, "c_count": 0}


def _record(tape: Header, c_type: RecordType, **fields) -> Header:
    merged = {**_RECORD_DEFAULTS, **fields}
    if tape.c_flags & DR_COMPRESSED:  # dump never clears it once the TS_TAPE has it
        merged["c_flags"] |= DR_COMPRESSED
    return tape.derive(c_type=c_type, **merged)


def map_records(tape: Header, c_type: RecordType, inodes: Iterable[int], maxino: int) -> list[Item]:
    """A ``TS_CLRI`` (inodes in use) or ``TS_BITS`` (inodes dumped) map and its blocks.

    *maxino* is one past the highest inode number; give both maps the same
    one (restore sizes everything from the TS_CLRI block count).  The whole
    map goes under one header whatever its length, as dump does.
    """
    if c_type not in (RecordType.TS_CLRI, RecordType.TS_BITS):
        raise ValueError("map_records makes TS_CLRI or TS_BITS records")
    data = build_inode_map(inodes, maxino)
    count = map_blocks(maxino)
    header = _record(
        tape, c_type, c_count=count, c_dinode=Dinode(size=count * TP_BSIZE),
        c_inumber=maxino - 1 if c_type == RecordType.TS_CLRI else 0,
    )
    return [header, *(data[i:i + TP_BSIZE] for i in range(0, len(data), TP_BSIZE))]


def data_slice(block: bytes, *, holes: bool = True) -> Slice:
    """One slice as a writer stores it: zero-padded to 1 KiB, or None (a hole) when all zero.

    An all-zero slice written as a hole restores the same (restore seeks and
    truncates); pass ``holes=False`` to write it as data.
    """
    if len(block) > TP_BSIZE:
        raise ValueError(f"a slice is at most {TP_BSIZE} bytes")
    if holes and not block.strip(b"\0"):
        return None
    return block.ljust(TP_BSIZE, b"\0")


def file_slices(data: bytes, *, holes: bool = True) -> list[Slice]:
    """The slices of a whole file held in memory (see :func:`data_slice`)."""
    return [data_slice(data[i:i + TP_BSIZE], holes=holes) for i in range(0, len(data), TP_BSIZE)]


def symlink_slices(target: bytes) -> list[bytes]:
    """The data of a symlink: its target plus a NUL, zero-padded, never a hole.

    Fast and slow links alike are written this way; the inode's ``di_size``
    is ``len(target)``.  restore ignores a symlink with no data ("zero length
    symbolic link") and a hole in one is fatal, so both are impossible here.
    """
    if not target or b"\0" in target:
        raise FormatLimitError(f"symlink target {target!r} cannot be dumped (empty or has NUL)")
    if len(target) >= MAXPATHLEN:
        raise FormatLimitError(f"symlink target of {len(target)} bytes is longer than {MAXPATHLEN - 1}")
    return file_slices(target + b"\0", holes=False)  # type: ignore[return-value]


def inode_records(
    tape: Header,
    ino: int,
    dinode: Dinode,
    slices: Iterable[Slice] = (),
    *,
    per_header: int = TP_NINDIR,
    metaonly: bool = False,
) -> Iterator[Item]:
    """One inode's ``TS_INODE``, its data blocks, and ``TS_ADDR`` continuations.

    Slice *k* covers file bytes ``[k*1024, k*1024+1024)``.  Slices are taken
    lazily, *per_header* (at most 512) at a time.  A slice may also be a run
    of several whole slices in one bytes (a chunk of data read at once): it
    counts as that many slices, and comes out as one data item, cut only
    where a header's map is full.  If they cover less than
    ``dinode.size``, holes are added up to it: restore would otherwise warn
    "Missing blocks" (section 4); more slices than the size needs are
    written (restore reads and drops them).  Devices, fifos, sockets and
    empty files have no slices: one header with ``c_count`` 0, devices with
    their number in ``dinode.db[0]``.  Directories: slices of
    :func:`~dumptool.format.directory.build_directory` data with
    ``holes=False``.  Symlinks: :func:`symlink_slices`.

    *metaonly* writes a ``dump -m`` header: ``DR_METAONLY``, ``di_size`` 0,
    no data; restore then keeps the file's existing data.
    """
    if not 1 <= per_header <= TP_NINDIR:
        raise ValueError(f"per_header must be 1..{TP_NINDIR}")
    if metaonly:
        yield _record(tape, RecordType.TS_INODE, c_inumber=ino, c_count=0,
                      c_dinode=dataclasses.replace(dinode, size=0),
                      c_flags=DR_NEWINODEFMT | DR_METAONLY)
        return
    needed = -(-dinode.size // TP_BSIZE)
    c_type = RecordType.TS_INODE
    addr = bytearray()
    data: list[bytes] = []
    taken = 0

    def group() -> list[Item]:
        nonlocal c_type, addr, data
        items: list[Item] = [_record(tape, c_type, c_inumber=ino, c_dinode=dinode, c_count=len(addr),
                                     c_addr=bytes(addr)), *data]
        c_type = RecordType.TS_ADDR
        addr = bytearray()
        data = []
        return items

    for s in slices:
        if s is None:
            addr.append(0)
            taken += 1
        elif (size := len(s)) == TP_BSIZE:
            addr.append(1)
            data.append(s)
            taken += 1
        elif size and not size % TP_BSIZE:
            # A run of whole slices: split only where a header's map is full.
            blocks, start = size // TP_BSIZE, 0
            taken += blocks
            while blocks:
                take = min(blocks, per_header - len(addr))
                addr += _ONES[:take]
                data.append(s if take == blocks and not start else s[start:start + take * TP_BSIZE])
                start += take * TP_BSIZE
                blocks -= take
                if len(addr) == per_header:
                    yield from group()
            continue
        else:
            raise ValueError("slices must be 1024 bytes, a run of whole 1024-byte slices, or None "
                             "(use data_slice)")
        if len(addr) == per_header:
            yield from group()
    while taken < needed:  # holes up to the size
        take = min(needed - taken, per_header - len(addr))
        addr += bytes(take)
        taken += take
        if len(addr) == per_header:
            yield from group()
    if addr or c_type == RecordType.TS_INODE:
        yield from group()


def xattr_records(tape: Header, ino: int, dinode: Dinode, payload: bytes) -> list[Item]:
    """The EA header and payload blocks that follow inode *ino*'s data (section 7.1).

    *payload* is :func:`~dumptool.format.xattr.pack_xattr_block` output.
    ``di_size`` is the payload size, ``c_count`` its block count, every
    ``c_addr`` entry 1.  Give each inode at most one such record.
    """
    if not payload or len(payload) > XATTR_MAXSIZE:
        raise FormatLimitError(f"an xattr payload is 1..{XATTR_MAXSIZE} bytes, got {len(payload)}")
    count = -(-len(payload) // TP_BSIZE)
    header = _record(
        tape, RecordType.TS_INODE, c_inumber=ino, c_dinode=dataclasses.replace(dinode, size=len(payload)),
        c_count=count, c_addr=b"\1" * count, c_flags=DR_NEWINODEFMT | DR_EXTATTRIBUTES,
        c_extattributes=EXT_XATTR,
    )
    padded = payload.ljust(count * TP_BSIZE, b"\0")
    return [header, *(padded[i:i + TP_BSIZE] for i in range(0, len(padded), TP_BSIZE))]


def end_records(tape: Header, next_tapea: int) -> list[Header]:
    """The ``TS_END`` headers that close the image and fill its last record.

    dump writes ``ntrec - (tapea mod ntrec)`` of them (at least one, a whole
    record when already aligned), so the image is a whole number of records.
    Without any TS_END restore asks for another volume.  *next_tapea* need
    only tell where the next block falls in its record: after a full tape
    the records are one block off the block numbers (the new volume's
    header repeats a number), so a writer gives its own count of blocks
    pending in the record instead.
    """
    count = tape.c_ntrec - next_tapea % tape.c_ntrec
    return [_record(tape, RecordType.TS_END) for _ in range(count)]


def number_blocks(
    items: Iterable[Item], first_tapea: int = 0, byte_order: ByteOrder = ByteOrder.LITTLE
) -> Iterator[bytes]:
    """The 1 KiB blocks of *items*, each header given its ``c_tapea`` and packed."""
    tapea = first_tapea
    for item in items:
        if isinstance(item, Header):
            yield item.pack(byte_order, tapea=tapea)
        elif len(item) == TP_BSIZE:
            yield bytes(item)
        elif len(item) and not len(item) % TP_BSIZE:  # a run of data blocks
            for i in range(0, len(item), TP_BSIZE):
                yield bytes(item[i:i + TP_BSIZE])
            tapea += len(item) // TP_BSIZE - 1
        else:
            raise FormatError(f"data block of {len(item)} bytes; every block is {TP_BSIZE}")
        tapea += 1
