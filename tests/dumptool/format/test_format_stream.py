"""The stream: TS_INODE/TS_ADDR splitting, holes, symlinks, EA and end records
(dump-format.md sections 3, 4, 6, 7.1), and walking it back."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dumptool.errors import FormatError, FormatLimitError
from dumptool.format import (
    DR_EXTATTRIBUTES,
    DR_METAONLY,
    DR_NEWHEADER,
    DR_NEWINODEFMT,
    EXT_XATTR,
    TP_BSIZE,
    ByteOrder,
    Dinode,
    Header,
    RecordType,
    assemble_file,
    continuation_header,
    end_records,
    file_slices,
    inode_records,
    map_records,
    number_blocks,
    parse_inode_map,
    symlink_slices,
    volume_header,
    walk_image,
    xattr_records,
)
from test_format_header import orders

TAPE = volume_header(date=1_700_000_000, label=b"t", filesys=b"/fs", dev=b"/dev/x", host=b"h")


def headers_of(items) -> list[Header]:
    return [i for i in items if isinstance(i, Header)]


def test_volume_header_is_what_restore_requires() -> None:
    assert TAPE.c_type == RecordType.TS_TAPE and TAPE.c_volume == 1 and TAPE.c_ddate == 0
    assert TAPE.c_flags == DR_NEWHEADER | DR_NEWINODEFMT and TAPE.c_firstrec == 0 and TAPE.c_ntrec == 10
    assert TAPE.c_addr == bytes(512)
    with pytest.raises(FormatLimitError):
        volume_header(date=1, ntrec=1025)


def test_a_601_entry_file_is_one_inode_header_and_one_addr_header() -> None:
    data = bytes((i * 7) % 251 for i in range(614_500))
    items = list(inode_records(TAPE, 15, Dinode(mode=0o100644, size=len(data)), file_slices(data)))
    hs = headers_of(items)
    assert [(h.c_type, h.c_count) for h in hs] == [(RecordType.TS_INODE, 512), (RecordType.TS_ADDR, 89)]
    assert all(h.c_inumber == 15 and h.c_flags == DR_NEWINODEFMT for h in hs)
    assert len(items) == 2 + 601


def test_holes_take_no_block_and_a_missing_tail_becomes_holes() -> None:
    size = 2 * 1024 * 1024
    slices = [None] * 1024 + [b"MID".ljust(1024, b"\0")]  # nothing given past 1 MiB + 1 KiB
    items = list(inode_records(TAPE, 24, Dinode(mode=0o100644, size=size), slices, per_header=256))
    hs = headers_of(items)
    assert [h.c_count for h in hs] == [256] * 8
    assert sum(h.data_block_count() for h in hs) == 1 and len(items) == 9
    assert hs[4].c_addr[0] == 1 and hs[4].c_type == RecordType.TS_ADDR


def test_empty_file_and_devices_have_one_header_with_count_zero() -> None:
    items = list(inode_records(TAPE, 20, Dinode(mode=0o100644)))
    assert len(items) == 1 and items[0].c_type == RecordType.TS_INODE and items[0].c_count == 0


def test_symlinks_are_one_data_block_with_a_nul_never_a_hole() -> None:
    slices = symlink_slices(b"hello.txt")
    assert slices == [b"hello.txt\0".ljust(1024, b"\0")]
    assert len(symlink_slices(b"x" * 1024)) == 2
    items = list(inode_records(TAPE, 23, Dinode(mode=0o120777, size=9), slices))
    assert items[0].c_count == 1 and items[0].c_addr[0] == 1
    for bad in (b"", b"a\0b", b"x" * 4096):
        with pytest.raises(FormatLimitError):
            symlink_slices(bad)


def test_metadata_only_inode_has_no_data_and_size_zero() -> None:
    (h,) = inode_records(TAPE, 30, Dinode(mode=0o100644, size=5000), [b"x" * 1024], metaonly=True)
    assert h.c_flags == DR_NEWINODEFMT | DR_METAONLY and h.c_count == 0 and h.c_dinode.size == 0


def test_ea_record_carries_the_payload_size_and_all_entries_one() -> None:
    items = xattr_records(TAPE, 12, Dinode(mode=0o100664, size=5), bytes(range(256)) * 8)
    h = items[0]
    assert h.c_type == RecordType.TS_INODE and h.is_extattr and h.c_extattributes == EXT_XATTR
    assert h.c_flags == DR_NEWINODEFMT | DR_EXTATTRIBUTES
    assert h.c_dinode.size == 2048 and h.c_count == 2 and h.c_addr[:2] == b"\1\1"
    assert len(items) == 3
    with pytest.raises(FormatLimitError):
        xattr_records(TAPE, 12, Dinode(), bytes(4097))


def test_maps_have_their_block_count_and_size() -> None:
    items = map_records(TAPE, RecordType.TS_CLRI, {2, 11, 16384}, 16385)
    h = items[0]
    assert h.c_type == RecordType.TS_CLRI and h.c_count == 3 and h.c_dinode.size == 3072
    assert h.c_addr == bytes(512) and len(items) == 4
    assert parse_inode_map(b"".join(items[1:])) == {2, 11, 16384}


@pytest.mark.parametrize("tapea, count", [(13, 7), (644, 6), (20, 10), (1, 9)])
def test_end_records_fill_the_last_record(tapea: int, count: int) -> None:
    ends = end_records(TAPE, tapea)
    assert len(ends) == count and all(h.c_type == RecordType.TS_END for h in ends)


def test_number_blocks_gives_each_header_its_index() -> None:
    items = [TAPE, *map_records(TAPE, RecordType.TS_CLRI, {2}, 10), b"\0" * 1024]
    blocks = list(number_blocks(items, 7))
    assert [Header.unpack(blocks[i]).c_tapea for i in (0, 1)] == [7, 8]
    with pytest.raises(FormatError):
        list(number_blocks([b"short"]))


def test_continuation_volume_header_points_into_the_interrupted_file() -> None:
    interrupted = Header(RecordType.TS_ADDR, c_inumber=15, c_count=256, c_addr=b"\1" * 256)
    h = continuation_header(TAPE, 2, 300, interrupted, 235)
    assert (h.c_type, h.c_volume, h.c_tapea, h.c_firstrec, h.c_inumber, h.c_count) == (
        RecordType.TS_TAPE, 2, 300, 300, 15, 235)
    assert h.c_flags & DR_NEWHEADER and h.data_block_count() == 0


files = st.lists(
    st.one_of(st.just(b""), st.binary(min_size=1, max_size=1024), st.just(bytes(1024))), max_size=40
).map(b"".join)


@settings(max_examples=50, deadline=None)
@given(st.lists(files, min_size=1, max_size=4), orders, st.integers(1, 512))
def test_an_image_walks_back_to_its_files(contents: list[bytes], order: ByteOrder, per_header: int) -> None:
    items = [TAPE, *map_records(TAPE, RecordType.TS_CLRI, {2, 3, 4, 5, 6}, 10),
             *map_records(TAPE, RecordType.TS_BITS, {2, 3, 4, 5, 6}, 10)]
    for n, data in enumerate(contents):
        items += inode_records(TAPE, 3 + n, Dinode(mode=0o100644, size=len(data)), file_slices(data),
                               per_header=per_header)
    items += end_records(TAPE, len(items))
    image = b"".join(number_blocks(items, 0, order))
    assert len(image) % (10 * TP_BSIZE) == 0
    records = list(walk_image(image))
    assert [r.index for r in records] == [
        i for i, item in enumerate(items) if isinstance(item, Header)]
    assert all(r.header == dataclasses.replace(item, c_tapea=r.index)
               for r, item in zip(records, headers_of(items)))
    got = {}
    for r in records:
        if r.header.c_type == RecordType.TS_INODE:
            got[r.header.c_inumber] = [r]
        elif r.header.c_type == RecordType.TS_ADDR:
            got[r.header.c_inumber].append(r)
    assert {ino: assemble_file(rs) for ino, rs in got.items()} == {3 + n: d for n, d in enumerate(contents)}


def test_a_truncated_image_is_a_format_error() -> None:
    items = [TAPE, *map_records(TAPE, RecordType.TS_CLRI, {2}, 10)]
    image = b"".join(number_blocks(items))
    with pytest.raises(FormatError, match="ends inside"):
        list(walk_image(image[:-TP_BSIZE]))
