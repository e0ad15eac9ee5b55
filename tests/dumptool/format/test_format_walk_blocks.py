"""walk_blocks: the streaming reader's counting rule, and resync after damage."""

from __future__ import annotations

import pytest

from dumptool.errors import FormatError
from dumptool.format import (
    TP_BSIZE,
    ByteOrder,
    Damage,
    Dinode,
    Head,
    Header,
    RecordType,
    read_head,
    walk_blocks,
    walk_chunks,
    walk_image,
)
from dumptool.format.header import unpack_header

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


def test_walk_chunks_gives_the_same_records_however_the_reads_are_cut():
    blocks = _image()
    image = b"".join(blocks)
    want = list(walk_image(image))
    for size in (1, 2, 3, 7):
        chunks = [image[i:i + size * TP_BSIZE] for i in range(0, len(image), size * TP_BSIZE)]
        assert list(walk_chunks(iter(chunks))) == want, size


def test_a_volume_change_inside_a_record_leaves_its_blocks_held():
    blocks = _image()
    held: list = []
    seen = []

    def chunks():
        yield b"".join(blocks[:2])   # TS_TAPE, then the header of inode 3 ...
        seen.append([bytes(b) for b in held])
        yield b"".join(blocks[2:])   # ... whose data block comes with the next read
    records = list(walk_chunks(chunks(), held=held))
    assert seen == [[blocks[1]]]
    assert [r.header.c_inumber for r in records][1:4] == [3, 4, 5]


@pytest.mark.parametrize("order", list(ByteOrder))
def test_read_head_agrees_with_unpack_header(order):
    h = Header(RecordType.TS_INODE, c_date=DATE, c_inumber=77, c_count=3, c_addr=b"\1\0\1", c_flags=0x8003,
               c_dinode=Dinode(mode=0o104755, size=3000, uid=70000, gid=5, atime_sec=9, atime_usec=8,
                               mtime_sec=7, mtime_usec=6, db=(0x10203, 4) + (0,) * 10))
    block = h.pack(order)
    assert read_head(block, 0, order) == Head.of(unpack_header(block, order))
    assert Head.of(h).rdev == 0x10203 and Head.of(h).mtime_ns == 7_000_006_000
    bad = bytearray(block)
    bad[800] ^= 1
    with pytest.raises(FormatError):
        read_head(bytes(bad), 0, order)
