"""BSD directory records and their 512-byte chunks (dump-format.md section 5)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dumptool.errors import FormatError, FormatLimitError
from dumptool.format import (
    DIRBLKSIZ,
    ByteOrder,
    Dirent,
    DirentType,
    build_directory,
    dirent_reclen,
    dtype_from_mode,
    pack_dirent,
    parse_directory,
)
from test_format_header import orders

names = st.binary(min_size=1, max_size=255).filter(lambda n: b"/" not in n and b"\0" not in n and n not in (b".", b".."))
entries = st.lists(
    st.builds(Dirent, ino=st.integers(2, 2**32 - 1), name=names, type=st.sampled_from(list(DirentType))),
    max_size=40, unique_by=lambda e: e.name,
)


def walk_raw(data: bytes, order: ByteOrder) -> list[tuple[int, int]]:
    """(offset, reclen) of every entry, following d_reclen."""
    out, pos = [], 0
    while pos < len(data):
        reclen = struct.unpack_from(order.value + "H", data, pos + 4)[0]
        out.append((pos, reclen))
        pos += reclen
    return out


@given(entries, st.integers(2, 2**32 - 1), st.integers(2, 2**32 - 1), orders, st.sampled_from([512, 1024]))
def test_directory_round_trips_and_respects_chunks(ents, ino, parent, order, chunk) -> None:
    data = build_directory(ino, parent, ents, byte_order=order, chunk=chunk)
    assert len(data) % chunk == 0 and data
    parsed = parse_directory(data, order)
    assert parsed[:2] == [Dirent(ino, b".", DirentType.DT_DIR), Dirent(parent, b"..", DirentType.DT_DIR)]
    assert parsed[2:] == ents
    for pos, reclen in walk_raw(data, order):
        assert reclen % 4 == 0
        assert pos // chunk == (pos + reclen - 1) // chunk, "an entry crosses a chunk"
    assert walk_raw(data, order)[-1][0] + walk_raw(data, order)[-1][1] == len(data)


def test_minimal_record_lengths_match_real_dump() -> None:
    assert [dirent_reclen(len(n)) for n in (b".", b"..", b"lost+found")] == [12, 12, 20]


def test_small_root_is_one_512_byte_chunk_with_dot_entries_first() -> None:
    data = build_directory(2, 2, [Dirent(11, b"lost+found", DirentType.DT_DIR)])
    assert len(data) == DIRBLKSIZ
    assert data[:12] == struct.pack("<IHBB", 2, 12, 4, 1) + b".\0\0\0"
    assert data[12:24] == struct.pack("<IHBB", 2, 12, 4, 2) + b"..\0\0"
    assert struct.unpack_from("<IHBB", data, 24) == (11, 512 - 24, 4, 10)
    assert data[32:43] == b"lost+found\0" and data[43:] == bytes(512 - 43)


def test_swapped_dirents_swap_only_ino_and_reclen() -> None:
    e = Dirent(0x01020304, b"ab", DirentType.DT_REG)
    assert pack_dirent(e, byte_order=ByteOrder.BIG)[:8] == bytes([1, 2, 3, 4, 0, 12, 8, 2])


def test_dtype_comes_from_the_mode() -> None:
    assert dtype_from_mode(0o040755) == DirentType.DT_DIR
    assert dtype_from_mode(0o120777) == DirentType.DT_LNK
    assert dtype_from_mode(0o140000) == DirentType.DT_SOCK


@pytest.mark.parametrize("name", [b"", b"a/b", b"a\0", b".", b"..", b"x" * 256])
def test_names_restore_cannot_take_are_refused(name: bytes) -> None:
    with pytest.raises(FormatLimitError):
        build_directory(2, 2, [Dirent(5, name)])


def test_inode_numbers_below_two_are_refused() -> None:
    with pytest.raises(FormatLimitError):
        build_directory(2, 2, [Dirent(1, b"whiteout")])


def test_unused_entries_are_skipped() -> None:
    data = pack_dirent(Dirent(2, b"."), 12) + pack_dirent(Dirent(0, b"gone"), 500)
    assert parse_directory(data) == [Dirent(2, b".")]


def test_an_entry_crossing_1024_is_mangled_and_lenient_reading_skips_its_chunk() -> None:
    # the entry "x" claims 1008..1040: it crosses 1024
    first = pack_dirent(Dirent(2, b"."), 12) + pack_dirent(Dirent(2, b".."), 996) + pack_dirent(Dirent(7, b"x"), 32)
    data = first[:1024] + pack_dirent(Dirent(9, b"ok"), 1024)
    with pytest.raises(FormatError, match="mangled"):
        parse_directory(data)
    assert [e.name for e in parse_directory(data, strict=False)] == [b".", b"..", b"ok"]


@pytest.mark.parametrize("reclen", [0, 14, 8])
def test_bad_record_lengths_are_mangled(reclen: int) -> None:
    data = struct.pack("<IHBB", 5, reclen, 8, 4) + b"name" + bytes(512 - 12)
    with pytest.raises(FormatError):
        parse_directory(data)


def test_old_format_reads_namlen_as_16_bits() -> None:
    data = struct.pack("<IHH", 2, 12, 1) + b".\0\0\0"
    assert parse_directory(data, old_format=True) == [Dirent(2, b".", DirentType.DT_UNKNOWN)]
