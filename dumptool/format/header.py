"""The 1 KiB header block (``union u_spcl``, Linux layout) and its checksum.

A header is packed in the image's byte order (there is no byte-order flag);
readers tell the order from ``c_magic`` at offset 24 (:func:`header_byte_order`).
The checksum is taken over the 256 words in that same order (section 1).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ..errors import ChecksumError, FormatError, FormatLimitError, UnsupportedFormatError
from .constants import (
    CHECKSUM,
    DINODE_SIZE,
    DR_EXTATTRIBUTES,
    DR_METAONLY,
    DR_NEWINODEFMT,
    FS_UFS2_MAGIC,
    LBLSIZE,
    NAMELEN,
    NFS_MAGIC,
    NTREC,
    OFS_MAGIC,
    TP_BSIZE,
    TP_NINDIR,
    TP_NINOS,
    ByteOrder,
    RecordType,
)
from .dinode import Dinode, StatFields

_HEAD = "iiiiIIii"          # c_type .. c_checksum, offsets 0..31
_TAIL = f"i{TP_NINDIR}s{LBLSIZE}si{NAMELEN}s{NAMELEN}s{NAMELEN}siiii120s"
_HEAD_SIZE = struct.calcsize("<" + _HEAD)
_TAIL_OFFSET = _HEAD_SIZE + DINODE_SIZE
assert _HEAD_SIZE + DINODE_SIZE + struct.calcsize("<" + _TAIL) == TP_BSIZE

MAGIC_OFFSET = 24
CHECKSUM_OFFSET = 28
SPARE_SIZE = 120

_STRING_FIELDS = {"c_label": LBLSIZE, "c_filesys": NAMELEN, "c_dev": NAMELEN, "c_host": NAMELEN}


# --- checksum -----------------------------------------------------------------

def _word_sum(block: bytes, byte_order: ByteOrder) -> int:
    return sum(struct.unpack(f"{byte_order.value}{TP_BSIZE // 4}I", block)) & 0xFFFFFFFF


def compute_checksum(block: bytes, byte_order: ByteOrder = ByteOrder.LITTLE) -> int:
    """The ``c_checksum`` value that makes *block* sum to CHECKSUM.

    The current ``c_checksum`` word is treated as 0, so this works on a block
    whether or not it already holds a checksum.
    """
    _check_block(block)
    old = struct.unpack_from(byte_order.value + "I", block, CHECKSUM_OFFSET)[0]
    return (CHECKSUM - (_word_sum(block, byte_order) - old)) & 0xFFFFFFFF


def checksum_ok(block: bytes, byte_order: ByteOrder = ByteOrder.LITTLE) -> bool:
    """True when the 256 words of *block*, read in *byte_order*, sum to CHECKSUM."""
    _check_block(block)
    return _word_sum(block, byte_order) == CHECKSUM


def seal(block: bytes | bytearray, byte_order: ByteOrder = ByteOrder.LITTLE) -> bytes:
    """*block* with its ``c_checksum`` word set right."""
    out = bytearray(block)
    struct.pack_into(byte_order.value + "I", out, CHECKSUM_OFFSET, compute_checksum(bytes(out), byte_order))
    return bytes(out)


def _check_block(block: bytes) -> None:
    if len(block) != TP_BSIZE:
        raise FormatError(f"a header block is {TP_BSIZE} bytes, got {len(block)}")


# --- byte order -----------------------------------------------------------------

def header_byte_order(block: bytes) -> ByteOrder:
    """The byte order of a header, told from ``c_magic``.

    Raises :class:`UnsupportedFormatError` for the old 4.3BSD (OFS_MAGIC) and
    FreeBSD UFS2 headers, and :class:`FormatError` when *block* has no dump
    magic at all (not a header, or not a dump image).
    """
    _check_block(block)
    for order in (ByteOrder.LITTLE, ByteOrder.BIG):
        magic = struct.unpack_from(order.value + "i", block, MAGIC_OFFSET)[0]
        if magic == NFS_MAGIC:
            return order
        if magic in (OFS_MAGIC, FS_UFS2_MAGIC):
            kind = "an old 4.3BSD" if magic == OFS_MAGIC else "a FreeBSD UFS2"
            raise UnsupportedFormatError(
                f"this is {kind} dump image, which is not supported; "
                "restore it with the dump tools of that system"
            )
    raise FormatError("block is not a dump header (no dump magic): not a dump image, or damaged")


def is_header(block: bytes) -> bool:
    """True when *block* has the dump magic and a good checksum, in either byte order.

    This is what restore looks for when it resyncs after a damaged block.
    """
    if len(block) != TP_BSIZE:
        return False
    try:
        order = header_byte_order(block)
    except FormatError:
        return False
    return checksum_ok(block, order)


# --- packing (writers) ------------------------------------------------------------
#
# Every header of a dump repeats the volume's identity (label, names, level,
# ntrec...), and the checksum is a plain sum of words.  So the identity part
# is packed and summed once per distinct value, a ``c_addr`` map's words
# once per distinct map, an inode copy once per Dinode; each header then
# adds only its own few words.

_M32 = 0xFFFFFFFF
_PACK_HEAD = {o: struct.Struct(o.value + "iiiiIIiI") for o in ByteOrder}
_PACK_COUNT = {o: struct.Struct(o.value + "i") for o in ByteOrder}
_REST_FMT = f"{LBLSIZE}si{NAMELEN}s{NAMELEN}s{NAMELEN}siiii{SPARE_SIZE}s"
_PACK_REST = {o: struct.Struct(o.value + _REST_FMT) for o in ByteOrder}
_REST_WORDS = {o: struct.Struct(f"{o.value}{struct.calcsize('<' + _REST_FMT) // 4}I") for o in ByteOrder}
_ADDR_WORDS = {o: struct.Struct(f"{o.value}{TP_NINDIR // 4}I") for o in ByteOrder}
_DINODE_WORDS = {o: struct.Struct(f"{o.value}{DINODE_SIZE // 4}I") for o in ByteOrder}
assert _HEAD_SIZE + DINODE_SIZE + 4 + TP_NINDIR + _PACK_REST[ByteOrder.LITTLE].size == TP_BSIZE
_CACHE_LIMIT = 1024
_rest_cache: dict[tuple, tuple[bytes, int]] = {}
_addr_cache: dict[ByteOrder, dict[bytes, int]] = {o: {} for o in ByteOrder}


def _packed_rest(h: "Header", byte_order: ByteOrder) -> tuple[bytes, int]:
    """The header's bytes after ``c_addr`` and their word sum (cached)."""
    key = (byte_order, h.c_label, h.c_level, h.c_filesys, h.c_dev, h.c_host, h.c_flags,
           h.c_firstrec, h.c_ntrec, h.c_extattributes, h.c_spare)
    found = _rest_cache.get(key)
    if found is not None:
        return found
    for name, size in _STRING_FIELDS.items():
        value = getattr(h, name)
        if len(value) >= size or b"\0" in value:
            raise FormatLimitError(
                f"{name[2:]} {value!r} does not fit the dump header "
                f"(at most {size - 1} bytes, no NUL)"
            )
    try:
        rest = _PACK_REST[byte_order].pack(h.c_label, h.c_level, h.c_filesys, h.c_dev, h.c_host, h.c_flags,
                                           h.c_firstrec, h.c_ntrec, h.c_extattributes, h.c_spare)
    except struct.error as exc:
        raise FormatLimitError(f"header field out of range for a dump image: {exc}") from None
    found = (rest, sum(_REST_WORDS[byte_order].unpack(rest)))
    if len(_rest_cache) < _CACHE_LIMIT:
        _rest_cache[key] = found
    return found


def _packed_dinode(dinode: Dinode, byte_order: ByteOrder) -> tuple[bytes, int]:
    """The inode copy's bytes and word sum, kept on the (frozen) Dinode."""
    d = dinode.__dict__
    found = d.get("_packed")
    if found is None or found[0] is not byte_order:
        data = dinode.pack(byte_order)
        found = d["_packed"] = (byte_order, data, sum(_DINODE_WORDS[byte_order].unpack(data)))
    return found[1], found[2]


def _pack_header(h: "Header", byte_order: ByteOrder, tapea: int) -> bytes:
    c_type = h.c_type
    if not isinstance(c_type, RecordType):
        raise FormatLimitError(f"c_type {c_type} is not a dump record type")
    rest, total = _packed_rest(h, byte_order)
    addr = h.c_addr
    sums = _addr_cache[byte_order]
    addr_sum = sums.get(addr)
    if addr_sum is None:
        if len(addr) != TP_NINDIR:
            raise FormatLimitError(f"c_addr is {TP_NINDIR} bytes, got {len(addr)}")
        addr_sum = sum(_ADDR_WORDS[byte_order].unpack(addr))
        if len(sums) < _CACHE_LIMIT:
            sums[bytes(addr)] = addr_sum
    dinode, dinode_sum = _packed_dinode(h.c_dinode, byte_order)
    count = h.c_count
    total += (c_type + (h.c_date & _M32) + (h.c_ddate & _M32) + (h.c_volume & _M32) + (tapea & _M32)
              + (h.c_inumber & _M32) + NFS_MAGIC + dinode_sum + (count & _M32) + addr_sum)
    try:
        head = _PACK_HEAD[byte_order].pack(c_type, h.c_date, h.c_ddate, h.c_volume, tapea, h.c_inumber,
                                           NFS_MAGIC, (CHECKSUM - total) & _M32)
        count_word = _PACK_COUNT[byte_order].pack(count)
    except struct.error as exc:
        raise FormatLimitError(f"header field out of range for a dump image: {exc}") from None
    return b"".join((head, dinode, count_word, addr, rest))


class InodeHeaders:
    """Packs one dump's ``TS_INODE`` and ``TS_ADDR`` headers straight from
    :func:`~dumptool.format.dinode.stat_fields` tuples: one struct call and a
    few additions per header, no :class:`Header` or :class:`Dinode` made.

    *template* is a header of the kind to make (``inode_records`` makes it
    for an empty inode): everything but ``c_type``, ``c_tapea``,
    ``c_inumber``, the inode copy, ``c_count`` and ``c_addr`` is taken from
    it.  :meth:`pack` gives the same bytes as ``Header.pack`` of the header
    with those fields set.
    """

    def __init__(self, template: "Header", byte_order: ByteOrder = ByteOrder.LITTLE) -> None:
        rest, rest_sum = _packed_rest(template, byte_order)
        self._rest = rest
        self._date, self._ddate, self._volume = template.c_date, template.c_ddate, template.c_volume
        self._fixed = (rest_sum + (self._date & _M32) + (self._ddate & _M32) + (self._volume & _M32)
                       + NFS_MAGIC)
        self._struct = _INODE_HEAD[byte_order]
        self._little = byte_order is ByteOrder.LITTLE
        self._sums = _addr_cache[byte_order]
        self._addr_words = _ADDR_WORDS[byte_order]
        self._runs: list[bytes | None] = [None] * (TP_NINDIR + 1)

    def data_addr(self, blocks: int) -> bytes:
        """The ``c_addr`` of a header whose first *blocks* slices are all data."""
        addr = self._runs[blocks]
        if addr is None:
            addr = self._runs[blocks] = b"\1" * blocks + bytes(TP_NINDIR - blocks)
            self._sums[addr] = sum(self._addr_words.unpack(addr))
        return addr

    def pack(self, c_type: RecordType, tapea: int, ino: int, fields: StatFields, count: int,
             addr: bytes) -> tuple[bytes, bytes, bytes]:
        """The header's 1024 bytes in three parts: up to ``c_count``, ``c_addr``
        (*addr*, all 512 bytes), the rest."""
        (mode, nlink, old_uid, old_gid, size, at_s, at_us, mt_s, mt_us, ct_s, ct_us, db0, flags, blocks,
         uid, gid) = fields
        addr_sum = self._sums.get(addr)
        if addr_sum is None:
            if len(addr) != TP_NINDIR:
                raise FormatLimitError(f"c_addr is {TP_NINDIR} bytes, got {len(addr)}")
            addr_sum = sum(self._addr_words.unpack(addr))
            if len(self._sums) < _CACHE_LIMIT:
                self._sums[bytes(addr)] = addr_sum
        # The checksum: every 32-bit word of the block, summed.
        if self._little:
            pairs = mode + (nlink << 16) + old_uid + (old_gid << 16)
        else:
            pairs = (mode << 16) + nlink + (old_uid << 16) + old_gid
        total = (self._fixed + addr_sum + c_type + (tapea & _M32) + (ino & _M32) + pairs + (size & _M32)
                 + (size >> 32) + at_s + at_us + mt_s + mt_us + ct_s + ct_us + db0 + flags + blocks + uid + gid
                 + (count & _M32))
        try:
            head = self._struct.pack(c_type, self._date, self._ddate, self._volume, tapea, ino, NFS_MAGIC,
                                     (CHECKSUM - total) & _M32, mode, nlink, old_uid, old_gid, size, at_s, at_us,
                                     mt_s, mt_us, ct_s, ct_us, db0, flags, blocks, uid, gid, count)
        except struct.error as exc:
            raise FormatLimitError(f"header field out of range for a dump image: {exc}") from None
        return head, addr, self._rest


#: A header up to ``c_count`` for :class:`InodeHeaders`: the inode copy with
#: ``db[1:]``, ``ib``, ``gen`` and ``spare`` as zero padding.
_INODE_HEAD = {o: struct.Struct(o.value + "iiiiIIiI" + "HhHHQIIIIII" + "I56x" + "Ii4xII8x" + "i")
               for o in ByteOrder}
assert _INODE_HEAD[ByteOrder.LITTLE].size == _HEAD_SIZE + DINODE_SIZE + 4


# --- the header -------------------------------------------------------------------

class HeaderQueries:
    """What a reader asks of a header's flags and map: for :class:`Header`
    and for a reader's lean header tuple alike."""

    __slots__ = ()
    c_type: int
    c_flags: int
    c_count: int
    c_addr: bytes

    @property
    def is_extattr(self) -> bool:
        """True for the EA header that carries the previous inode's xattrs."""
        return self.c_type == RecordType.TS_INODE and bool(self.c_flags & DR_EXTATTRIBUTES)

    @property
    def is_metaonly(self) -> bool:
        """True for a ``dump -m`` inode: restore keeps the file's existing data."""
        return bool(self.c_flags & DR_METAONLY)

    @property
    def addr_entries(self) -> bytes:
        """The meaningful ``c_addr`` entries: nonzero = data block, 0 = hole."""
        return self.c_addr[: max(0, min(self.c_count, TP_NINDIR))]


@dataclass(frozen=True)
class Header(HeaderQueries):
    """One header block.  Field names are the C names (``c_type`` ...).

    ``c_magic`` and ``c_checksum`` are not fields: :meth:`pack` writes them,
    :meth:`unpack` checks them.  Strings are bytes without their NUL
    (``c_label`` at most 15 bytes, the others at most 63).  ``c_addr`` is
    always the full 512 bytes (shorter values are zero-padded); only its
    first ``c_count`` bytes mean anything for inode headers.

    dump keeps one global header and changes a few fields per record, so the
    natural way to make the next header is :func:`dataclasses.replace`.
    Readers must ignore fields a record type does not define: real images
    hold leftovers there (section 2.1).
    """

    c_type: int
    c_date: int = 0
    c_ddate: int = 0
    c_volume: int = 1
    c_tapea: int = 0
    c_inumber: int = 0
    c_dinode: Dinode = field(default_factory=Dinode)
    c_count: int = 0
    c_addr: bytes = bytes(TP_NINDIR)
    c_label: bytes = b""
    c_level: int = 0
    c_filesys: bytes = b""
    c_dev: bytes = b""
    c_host: bytes = b""
    c_flags: int = DR_NEWINODEFMT
    c_firstrec: int = 0
    c_ntrec: int = NTREC
    c_extattributes: int = 0
    c_spare: bytes = bytes(SPARE_SIZE)

    def __post_init__(self) -> None:
        if len(self.c_addr) > TP_NINDIR:
            raise ValueError(f"c_addr holds at most {TP_NINDIR} entries")
        if len(self.c_addr) < TP_NINDIR:
            object.__setattr__(self, "c_addr", bytes(self.c_addr).ljust(TP_NINDIR, b"\0"))
        if len(self.c_spare) != SPARE_SIZE:
            raise ValueError(f"c_spare is {SPARE_SIZE} bytes")
        try:
            object.__setattr__(self, "c_type", RecordType(self.c_type))
        except ValueError:
            pass  # kept as int; pack() refuses it

    # -- what a reader asks of a header ----------------------------------------

    def data_block_count(self) -> int:
        """How many data blocks follow this header before the next header.

        Inode and addr headers: one per nonzero entry of ``c_addr[:c_count]``.
        Maps (TS_CLRI, TS_BITS) and EA headers: ``c_count``, whatever
        ``c_addr`` says (restore reads them all).  TS_TAPE and TS_END: none
        (a later volume's TS_TAPE count is the rest of an interrupted file,
        which a sequential reader already expects).
        """
        t = self.c_type
        if t in (RecordType.TS_CLRI, RecordType.TS_BITS) or self.is_extattr:
            return max(0, self.c_count)
        if t in (RecordType.TS_INODE, RecordType.TS_ADDR):
            return sum(1 for b in self.addr_entries if b)
        return 0

    def inos(self, byte_order: ByteOrder = ByteOrder.LITTLE) -> tuple[int, ...]:
        """``c_inos[128]``: the same bytes as ``c_addr``, read as s32 (TOC files)."""
        return struct.unpack(f"{byte_order.value}{TP_NINOS}i", self.c_addr)

    # -- bytes --------------------------------------------------------------------

    def pack(self, byte_order: ByteOrder = ByteOrder.LITTLE, *, tapea: int | None = None) -> bytes:
        """The 1024 bytes of this header, magic and checksum included.

        *tapea*, when given, is written as ``c_tapea`` instead of the field
        (how :func:`~dumptool.format.stream.number_blocks` numbers a header
        without copying it).  Raises :class:`FormatLimitError` when a string
        or number does not fit.
        """
        return _pack_header(self, byte_order, self.c_tapea if tapea is None else tapea)

    def derive(self, **changes) -> "Header":
        """``dataclasses.replace(self, **changes)`` for a writer's hot path:
        the same result without running the constructor for every header
        (``c_addr`` is still padded to its 512 entries, ``c_type`` still made
        a :class:`RecordType`)."""
        new = object.__new__(Header)
        d = new.__dict__
        d.update(self.__dict__)
        d.update(changes)
        addr = d["c_addr"]
        if len(addr) != TP_NINDIR:
            if len(addr) > TP_NINDIR:
                raise ValueError(f"c_addr holds at most {TP_NINDIR} entries")
            d["c_addr"] = bytes(addr).ljust(TP_NINDIR, b"\0")
        if "c_type" in changes and not isinstance(d["c_type"], RecordType):
            try:
                d["c_type"] = RecordType(d["c_type"])
            except ValueError:
                pass  # kept as int; pack() refuses it
        if len(d["c_spare"]) != SPARE_SIZE:
            raise ValueError(f"c_spare is {SPARE_SIZE} bytes")
        return new

    @classmethod
    def unpack(
        cls, block: bytes, byte_order: ByteOrder | None = None, *, verify: bool = True
    ) -> "Header":
        """Parse a header block; *byte_order* None means tell it from the magic.

        With *verify* (the default) a wrong checksum raises
        :class:`ChecksumError`; an unknown ``c_type`` or a missing magic raises
        :class:`FormatError`.
        """
        _check_block(block)
        if byte_order is None:
            byte_order = header_byte_order(block)
        o = byte_order.value
        head = struct.unpack_from(o + _HEAD, block, 0)
        if head[6] != NFS_MAGIC:
            raise FormatError("block is not a dump header (bad magic): damaged, or wrong byte order")
        if verify and not checksum_ok(block, byte_order):
            raise ChecksumError(
                f"header at tape block {head[4]} (inode {head[5]}) has a bad checksum: "
                "the image is damaged"
            )
        try:
            c_type = RecordType(head[0])
        except ValueError:
            raise FormatError(f"header has unknown record type {head[0]}: the image is damaged") from None
        tail = struct.unpack_from(o + _TAIL, block, _TAIL_OFFSET)
        return cls(
            c_type=c_type, c_date=head[1], c_ddate=head[2], c_volume=head[3],
            c_tapea=head[4], c_inumber=head[5],
            c_dinode=Dinode.unpack(block[_HEAD_SIZE:_TAIL_OFFSET], byte_order),
            c_count=tail[0], c_addr=tail[1], c_label=_cstr(tail[2]), c_level=tail[3],
            c_filesys=_cstr(tail[4]), c_dev=_cstr(tail[5]), c_host=_cstr(tail[6]),
            c_flags=tail[7], c_firstrec=tail[8], c_ntrec=tail[9],
            c_extattributes=tail[10], c_spare=tail[11],
        )


def _cstr(raw: bytes) -> bytes:
    return raw.split(b"\0", 1)[0]


# --- fast unpack (readers) ------------------------------------------------------------
#
# ``Header.unpack`` goes through two dataclass constructors and three struct
# calls per header; a restore of many small files spends a fifth of its time
# there.  :func:`unpack_header` gives an equal :class:`Header` from one
# precompiled struct, filling the frozen instances' ``__dict__`` directly.

from .constants import NDADDR, NIADDR  # noqa: E402
from .dinode import DINODE_FIELDS as _DI_NAMES, DINODE_FORMAT as _DI_FMT  # noqa: E402

_WHOLE = {order: struct.Struct(order.value + _HEAD + _DI_FMT + _TAIL) for order in ByteOrder}
_WORDS = {order: struct.Struct(f"{order.value}{TP_BSIZE // 4}I") for order in ByteOrder}
_TYPES = {int(t): t for t in RecordType}
_NDI = len(_DI_NAMES)
_new = object.__new__


def unpack_header(block: bytes, byte_order: ByteOrder, *, verify: bool = True) -> Header:
    """What ``Header.unpack(block, byte_order, verify=verify)`` returns, faster.

    Same checks, same errors, same result (an equal :class:`Header`)."""
    if len(block) != TP_BSIZE:
        _check_block(block)
    v = _WHOLE[byte_order].unpack(block)
    if v[6] != NFS_MAGIC:
        raise FormatError("block is not a dump header (bad magic): damaged, or wrong byte order")
    if verify and sum(_WORDS[byte_order].unpack(block)) & 0xFFFFFFFF != CHECKSUM:
        raise ChecksumError(
            f"header at tape block {v[4]} (inode {v[5]}) has a bad checksum: "
            "the image is damaged"
        )
    c_type = _TYPES.get(v[0])
    if c_type is None:
        raise FormatError(f"header has unknown record type {v[0]}: the image is damaged")
    dinode = _new(Dinode)
    dd = dinode.__dict__
    dd.update(zip(_DI_NAMES, v[8:8 + _NDI]))
    i = 8 + _NDI
    dd["db"] = v[i:i + NDADDR]
    i += NDADDR
    dd["ib"] = v[i:i + NIADDR]
    i += NIADDR
    dd["flags"], dd["blocks"], dd["gen"], dd["uid"], dd["gid"] = v[i:i + 5]
    dd["spare"] = v[i + 5:i + 7]
    t = v[i + 7:]
    # the strings are the same in every header of a dump: cut their NULs once
    names = t[2], t[4], t[5], t[6]
    cut = _NAMES.get(names)
    if cut is None:
        if len(_NAMES) > 64:
            _NAMES.clear()
        cut = _NAMES[names] = tuple(_cstr(x) for x in names)
    header = _new(Header)
    header.__dict__.update(
        c_type=c_type, c_date=v[1], c_ddate=v[2], c_volume=v[3], c_tapea=v[4], c_inumber=v[5],
        c_dinode=dinode, c_count=t[0], c_addr=t[1], c_label=cut[0], c_level=t[3],
        c_filesys=cut[1], c_dev=cut[2], c_host=cut[3], c_flags=t[7],
        c_firstrec=t[8], c_ntrec=t[9], c_extattributes=t[10], c_spare=t[11],
    )
    return header


_NAMES: dict[tuple[bytes, ...], tuple[bytes, ...]] = {}
