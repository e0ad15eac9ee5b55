"""The 1 KiB header: layout, byte orders, checksum (dump-format.md sections 1, 2)."""

from __future__ import annotations

import dataclasses
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dumptool.errors import ChecksumError, FormatError, FormatLimitError, UnsupportedFormatError
from dumptool.format import (
    CHECKSUM,
    DR_EXTATTRIBUTES,
    DR_NEWINODEFMT,
    FS_UFS2_MAGIC,
    NFS_MAGIC,
    OFS_MAGIC,
    TP_BSIZE,
    ByteOrder,
    Dinode,
    Header,
    RecordType,
    checksum_ok,
    compute_checksum,
    header_byte_order,
    is_header,
    seal,
)

u32 = st.integers(0, 2**32 - 1)
s32 = st.integers(-(2**31), 2**31 - 1)
u16 = st.integers(0, 2**16 - 1)
s16 = st.integers(-(2**15), 2**15 - 1)
orders = st.sampled_from(list(ByteOrder))


def cstring(max_len: int) -> st.SearchStrategy[bytes]:
    return st.binary(max_size=max_len).map(lambda b: b.replace(b"\0", b"x"))


dinodes = st.builds(
    Dinode,
    mode=u16, nlink=s16, old_uid=u16, old_gid=u16, size=st.integers(0, 2**64 - 1),
    atime_sec=u32, atime_usec=u32, mtime_sec=u32, mtime_usec=u32, ctime_sec=u32, ctime_usec=u32,
    db=st.tuples(*[u32] * 12), ib=st.tuples(*[u32] * 3), flags=u32, blocks=s32, gen=s32,
    uid=u32, gid=u32, spare=st.tuples(s32, s32),
)
headers = st.builds(
    Header,
    c_type=st.sampled_from(list(RecordType)), c_date=s32, c_ddate=s32, c_volume=s32,
    c_tapea=u32, c_inumber=u32, c_dinode=dinodes, c_count=s32,
    c_addr=st.binary(min_size=512, max_size=512), c_label=cstring(15), c_level=s32,
    c_filesys=cstring(63), c_dev=cstring(63), c_host=cstring(63), c_flags=s32,
    c_firstrec=s32, c_ntrec=s32, c_extattributes=s32, c_spare=st.binary(min_size=120, max_size=120),
)


@given(headers, orders)
def test_header_round_trips_in_either_byte_order(header: Header, order: ByteOrder) -> None:
    block = header.pack(order)
    assert len(block) == TP_BSIZE
    assert header_byte_order(block) is order
    assert Header.unpack(block) == header
    assert Header.unpack(block, order) == header


@given(headers, orders)
def test_packed_header_words_sum_to_checksum(header: Header, order: ByteOrder) -> None:
    block = header.pack(order)
    assert sum(struct.unpack(f"{order.value}256I", block)) % 2**32 == CHECKSUM
    assert checksum_ok(block, order)
    assert is_header(block)


@given(headers, orders, st.integers(0, TP_BSIZE - 1), st.integers(1, 255))
def test_any_changed_byte_is_detected(header: Header, order: ByteOrder, offset: int, xor: int) -> None:
    block = bytearray(header.pack(order))
    block[offset] ^= xor
    damaged = bytes(block)
    assert not checksum_ok(damaged, order)
    assert not is_header(damaged)
    with pytest.raises(FormatError):  # ChecksumError, or a bad magic
        Header.unpack(damaged, order)


@given(headers, orders)
def test_seal_and_compute_checksum_ignore_the_old_checksum(header: Header, order: ByteOrder) -> None:
    block = bytearray(header.pack(order))
    good = struct.unpack_from(order.value + "I", block, 28)[0]
    struct.pack_into(order.value + "I", block, 28, 12345)
    assert compute_checksum(bytes(block), order) == good
    assert seal(block, order) == header.pack(order)


@given(headers)
def test_big_endian_header_is_the_little_endian_one_swapped_field_by_field(header: Header) -> None:
    # section 2.4: 8x32 (0..31), 4x16 (32..39), 1x64 (40), 29x32 (48..163), 528 bytes,
    # 1x32 (c_level), 192 bytes, 4x32 (888..903), c_spare unswapped.  Checksum excluded.
    le, be = header.pack(ByteOrder.LITTLE), header.pack(ByteOrder.BIG)
    plan = [(0, 4, 8), (32, 2, 4), (40, 8, 1), (48, 4, 29), (164, 1, 528), (692, 4, 1), (696, 1, 192),
            (888, 4, 4), (904, 1, 120)]
    pos = 0
    for start, width, n in plan:
        assert start == pos
        for i in range(n):
            a = start + i * width
            if a == 28:
                continue
            assert be[a:a + width] == le[a:a + width][::-1], a
        pos = start + width * n
    assert pos == TP_BSIZE


def test_fields_sit_at_the_sheet_offsets() -> None:
    h = Header(
        c_type=RecordType.TS_INODE, c_date=0x11111111, c_ddate=0x22222222, c_volume=3, c_tapea=0x44,
        c_inumber=12, c_count=7, c_addr=b"\1\0\1", c_label=b"lbl", c_level=9, c_filesys=b"/mnt",
        c_dev=b"/dev/x", c_host=b"host", c_flags=0x8002, c_firstrec=0x55, c_ntrec=10, c_extattributes=3,
    )
    b = h.pack()
    le = lambda off: struct.unpack_from("<i", b, off)[0]  # noqa: E731
    assert [le(o) for o in (0, 4, 8, 12, 16, 20, 24)] == [2, 0x11111111, 0x22222222, 3, 0x44, 12, NFS_MAGIC]
    assert le(160) == 7 and b[164:167] == b"\1\0\1" and b[167:676] == bytes(509)
    assert b[676:692] == b"lbl".ljust(16, b"\0") and le(692) == 9
    assert b[696:760] == b"/mnt".ljust(64, b"\0") and b[760:766] == b"/dev/x" and b[824:828] == b"host"
    assert [le(o) for o in (888, 892, 896, 900)] == [0x8002, 0x55, 10, 3]
    assert b[904:] == bytes(120)


def test_the_ea_header_of_sample_s2a_has_the_sheet_bytes() -> None:
    # section 7.4: block 11 of S2a
    h = Header(
        c_type=RecordType.TS_INODE, c_inumber=12, c_dinode=Dinode(mode=0o100664, size=256),
        c_count=1, c_addr=b"\1", c_flags=DR_NEWINODEFMT | DR_EXTATTRIBUTES, c_ntrec=10, c_extattributes=3,
    )
    b = h.pack()
    assert b[0:4] == b"\2\0\0\0" and b[20:24] == b"\x0c\0\0\0" and b[24:28] == bytes.fromhex("6cea0000")
    assert b[32:34] == bytes.fromhex("b481") and b[40:48] == bytes.fromhex("0001000000000000")
    assert b[160:164] == b"\1\0\0\0" and b[164] == 1
    assert b[888:892] == bytes.fromhex("02800000") and b[896] == 10 and b[900] == 3
    assert h.is_extattr and h.data_block_count() == 1


def test_swapped_magic_reads_as_the_sheet_says() -> None:
    block = Header(RecordType.TS_TAPE).pack(ByteOrder.BIG)
    assert struct.unpack_from("<i", block, 24)[0] == 0x6CEA0000
    assert block[24:28] == bytes.fromhex("0000ea6c")


@pytest.mark.parametrize("magic", [OFS_MAGIC, FS_UFS2_MAGIC])
def test_old_and_ufs2_images_are_named_not_misread(magic: int) -> None:
    block = bytearray(TP_BSIZE)
    struct.pack_into("<i", block, 24, magic)
    with pytest.raises(UnsupportedFormatError):
        header_byte_order(bytes(block))


def test_a_block_without_magic_is_not_a_header() -> None:
    with pytest.raises(FormatError, match="not a dump"):
        Header.unpack(bytes(TP_BSIZE))
    assert not is_header(bytes(TP_BSIZE))
    assert not is_header(b"short")


def test_bad_checksum_raises_checksum_error_unless_not_verifying() -> None:
    block = bytearray(Header(RecordType.TS_END, c_tapea=5).pack())
    block[100] ^= 1
    with pytest.raises(ChecksumError, match="tape block 5"):
        Header.unpack(bytes(block))
    assert Header.unpack(bytes(block), verify=False).c_tapea == 5


def test_unknown_record_type_is_a_format_error() -> None:
    block = bytearray(Header(RecordType.TS_END).pack())
    struct.pack_into("<i", block, 0, 9)
    with pytest.raises(FormatError, match="unknown record type 9"):
        Header.unpack(seal(block))


@pytest.mark.parametrize(
    "field, value", [("c_label", b"x" * 16), ("c_host", b"h" * 64), ("c_filesys", b"a\0b"), ("c_date", 2**31)]
)
def test_values_that_do_not_fit_are_refused(field: str, value) -> None:
    with pytest.raises(FormatLimitError):
        dataclasses.replace(Header(RecordType.TS_TAPE), **{field: value}).pack()


def test_data_block_count_follows_the_record_type() -> None:
    addr = bytes([1, 0, 1, 1]) + b"\1" * 508
    assert Header(RecordType.TS_INODE, c_count=4, c_addr=addr).data_block_count() == 3
    assert Header(RecordType.TS_ADDR, c_count=2, c_addr=addr).data_block_count() == 1
    assert Header(RecordType.TS_CLRI, c_count=3).data_block_count() == 3
    assert Header(RecordType.TS_BITS, c_count=640).data_block_count() == 640
    ea = Header(RecordType.TS_INODE, c_count=4, c_flags=DR_NEWINODEFMT | DR_EXTATTRIBUTES)
    assert ea.data_block_count() == 4  # c_addr is not looked at
    assert Header(RecordType.TS_TAPE, c_count=1).data_block_count() == 0
    assert Header(RecordType.TS_END, c_count=7, c_addr=addr).data_block_count() == 0


def test_inos_share_the_bytes_of_c_addr() -> None:
    h = Header(RecordType.TS_END, c_addr=struct.pack("<3i", 0, 2, 77))
    assert h.inos()[:4] == (0, 2, 77, 0) and len(h.inos()) == 128
