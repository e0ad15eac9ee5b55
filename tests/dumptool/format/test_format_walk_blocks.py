"""walk_blocks: the streaming reader's counting rule, and resync after damage."""

from __future__ import annotations

import pytest

from dumptool.errors import FormatError
from dumptool.format import TP_BSIZE, Damage, Dinode, Header, RecordType, walk_blocks, walk_image

DATE = 1_700_000_000


def _image() -> list[bytes]:
    h = dict(c_date=DATE)
    blocks = [Header(RecordType.TS_TAPE, **h).pack()]
    for ino, data in ((3, b"a"), (4, b"b"), (5, b"c")):
        blocks.append(Header(RecordType.TS_INODE, c_inumber=ino, c_count=1, c_addr=b"\1",
                             c_dinode=Dinode(mode=0o100644, size=1), **h).pack())
        blocks.append(data * TP_BSIZE)
    blocks.append(Header(RecordType.TS_END, **h).pack())
    return blocks


def test_walk_blocks_yields_what_walk_image_yields():
    blocks = _image()
    assert list(walk_blocks(iter(blocks))) == list(walk_image(b"".join(blocks)))


def test_a_bad_header_resyncs_at_the_next_good_one_and_reports_the_loss():
    blocks = _image()
    bad = bytearray(blocks[3])
    bad[700] ^= 0xFF
    blocks[3] = bytes(bad)
    seen: list[Damage] = []
    records = list(walk_blocks(iter(blocks), on_damage=seen.append))
    assert [r.header.c_inumber for r in records if r.header.c_type == RecordType.TS_INODE] == [3, 5]
    assert seen == [Damage(3, 2, 3, seen[0].reason)]
    with pytest.raises(FormatError):
        list(walk_blocks(iter(blocks)))


def test_a_stream_ending_inside_a_record_is_reported_as_truncated():
    blocks = _image()[:4]
    seen: list[Damage] = []
    records = list(walk_blocks(iter(blocks), on_damage=seen.append))
    assert [r.index for r in records] == [0, 1]
    assert seen and seen[0].truncated and seen[0].inode == 4
