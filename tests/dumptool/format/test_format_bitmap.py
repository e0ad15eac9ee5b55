"""TS_CLRI / TS_BITS maps (dump-format.md section 3.2)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dumptool.errors import FormatLimitError
from dumptool.format import TP_BSIZE, build_inode_map, inode_in_map, map_blocks, parse_inode_map, restore_maxino


@given(st.integers(2, 100_000).flatmap(lambda maxino: st.tuples(
    st.just(maxino), st.sets(st.integers(1, maxino - 1), max_size=200))))
def test_map_round_trips(case: tuple[int, set[int]]) -> None:
    maxino, inodes = case
    data = build_inode_map(inodes, maxino)
    assert len(data) == map_blocks(maxino) * TP_BSIZE
    assert parse_inode_map(data) == inodes
    assert all(inode_in_map(data, i) for i in inodes)
    assert maxino <= restore_maxino(map_blocks(maxino)), "restore must see every inode we map"


def test_inode_one_is_bit_zero_of_byte_zero_and_root_bit_one() -> None:
    assert build_inode_map({1}, 100)[0] == 0b01
    assert build_inode_map({2}, 100)[0] == 0b10
    assert build_inode_map({9}, 100)[1] == 0b01
    assert not inode_in_map(build_inode_map({2}, 100), 3)
    assert not inode_in_map(bytes(8), 10_000)


def test_map_size_matches_real_dump_example() -> None:
    # 16384 inodes -> maxino 16385 -> 2049 bytes -> 3 blocks (section 3.2)
    assert map_blocks(16385) == 3
    assert restore_maxino(3) == 3 * 8192 + 1
    assert map_blocks(2) == 1


def test_inode_outside_the_map_is_refused() -> None:
    with pytest.raises(FormatLimitError):
        build_inode_map({20}, 20)
    with pytest.raises(FormatLimitError):
        build_inode_map({0}, 20)
