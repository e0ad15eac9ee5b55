"""c_dinode: layout, times, device numbers (dump-format.md sections 2.2, 6)."""

from __future__ import annotations

import os
import stat
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dumptool.errors import FormatError, FormatLimitError
from dumptool.format import ByteOrder, Dinode, Header, RecordType, decode_dev, encode_dev, timeval_from_ns
from test_format_header import dinodes, orders


@given(dinodes, orders)
def test_dinode_round_trips_in_either_byte_order(dinode: Dinode, order: ByteOrder) -> None:
    raw = dinode.pack(order)
    assert len(raw) == 128
    assert Dinode.unpack(raw, order) == dinode


def test_dinode_fields_sit_at_the_sheet_header_offsets() -> None:
    d = Dinode(mode=0o100644, nlink=2, old_uid=0x1234, old_gid=0x5678, size=2**40 + 5, atime_sec=10,
               atime_usec=11, mtime_sec=12, mtime_usec=13, ctime_sec=14, ctime_usec=15,
               db=tuple(range(100, 112)), ib=(200, 201, 202), flags=0x80000, blocks=8, gen=9,
               uid=0x11234, gid=0x15678)
    b = Header(RecordType.TS_INODE, c_dinode=d).pack()
    assert struct.unpack_from("<HhHHQ", b, 32) == (0o100644, 2, 0x1234, 0x5678, 2**40 + 5)
    assert struct.unpack_from("<6I", b, 48) == (10, 11, 12, 13, 14, 15)
    assert struct.unpack_from("<I", b, 72)[0] == 100 and struct.unpack_from("<I", b, 120)[0] == 200
    assert struct.unpack_from("<IiiII", b, 132) == (0x80000, 8, 9, 0x11234, 0x15678)
    assert b[152:160] == bytes(8)


@pytest.mark.parametrize("major, minor, value", [(4, 5, 0x405), (8, 1, 0x801), (259, 300, 0x11032C)])
def test_device_numbers_use_the_linux_dev_t_encoding(major: int, minor: int, value: int) -> None:
    assert encode_dev(major, minor) == (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12) == value
    assert decode_dev(value) == (major, minor)


@given(st.integers(0, 0xFFF), st.integers(0, 0xFFFFF))
def test_device_numbers_round_trip(major: int, minor: int) -> None:
    assert decode_dev(encode_dev(major, minor)) == (major, minor)


def test_device_numbers_out_of_range_are_refused() -> None:
    with pytest.raises(FormatLimitError):
        encode_dev(4096, 0)


def test_reader_takes_rdev_from_db1_when_db0_is_zero() -> None:
    # real dump copies ext4's raw i_block: big numbers sit in the second word (section 6)
    assert Dinode(db=(0, 0x11032C) + (0,) * 10).rdev == 0x11032C
    assert Dinode(db=(0x405, 7) + (0,) * 10).rdev == 0x405


def test_times_are_microseconds_clamped_to_u32_seconds() -> None:
    assert timeval_from_ns(1_700_000_000_123_456_789) == (1_700_000_000, 123_456)
    assert timeval_from_ns(-5) == (0, 0)
    assert timeval_from_ns(2**33 * 10**9) == (2**32 - 1, 999_999)
    assert Dinode(mtime_sec=3, mtime_usec=4).mtime_ns == 3_000_004_000




def test_from_stat_fills_both_uid_copies_and_keeps_flags_only_for_files_and_dirs() -> None:
    st_reg = os.lstat(__file__)
    d = Dinode.from_stat(st_reg, flags=0x80000)
    assert d.flags == 0x80000 and d.uid == st_reg.st_uid and d.old_uid == st_reg.st_uid & 0xFFFF
    assert d.mode == st_reg.st_mode and d.size == st_reg.st_size
    assert d.mtime_sec == st_reg.st_mtime_ns // 10**9
    assert d.mtime_usec == st_reg.st_mtime_ns // 1000 % 10**6
    st_dev = os.stat("/dev/null")
    dn = Dinode.from_stat(st_dev, flags=0x80000)
    assert dn.flags == 0 and dn.rdev == encode_dev(1, 3)
    assert stat.S_ISCHR(dn.mode)


def test_unpack_refuses_wrong_length() -> None:
    with pytest.raises(FormatError):
        Dinode.unpack(bytes(127))


def test_out_of_range_inode_field_is_a_limit_error() -> None:
    with pytest.raises(FormatLimitError):
        Dinode(uid=2**32).pack()
