"""The dump engine behind the DATA service (ndmp/engine.py), without a DMA:
the file history it tells for awkward names, and the fh_info positions:
each file's header is the block its fh_info names, after the front."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from dumptool.format import TP_BSIZE, RecordType
from dumptool.format.header import header_byte_order, is_header, unpack_header
from ndmp.engine import U64_INVALID, BackupRequest, DumpEngine


def test_history_of_awkward_names_and_positions_of_every_header(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    names = {"new\nline": b"a", "tab\tname": b"b", " lead space": b"c", "   12\tx": b"d" * 70_000}
    for name, data in names.items():
        (src / name).write_bytes(data)
    os.mkdir(os.path.join(os.fsencode(src), b"bad\xff"))
    (src / "d\nir").mkdir()
    (src / "d\nir" / "inner").write_bytes(os.urandom(30_000))
    image = bytearray()
    result = DumpEngine(str(tmp_path)).backup(BackupRequest(str(src), update=False), image.extend,
                                              threading.Event())
    assert result.bytes == len(image) and not result.warnings
    entries = result.entries
    assert (entries[0].node, entries[0].parent, entries[0].name) == (2, 2, ".")
    by_name = {e.name: e for e in entries}
    assert set(by_name) == {".", *names, "bad\udcff", "d\nir", "inner"}
    assert by_name["inner"].parent == by_name["d\nir"].node
    assert by_name["   12\tx"].stat.size == 70_000
    order = header_byte_order(bytes(image[:TP_BSIZE]))
    for entry in entries:
        if entry.directory:
            assert entry.fh_info == U64_INVALID
            continue
        start = (entry.fh_info & 0xFFFFFFFF) * TP_BSIZE
        front = (entry.fh_info >> 32) * TP_BSIZE
        assert 0 < front <= start < len(image)
        h = unpack_header(bytes(image[start:start + TP_BSIZE]), order)
        assert (h.c_type, h.c_inumber, h.is_extattr) == (RecordType.TS_INODE, entry.node, False), entry.name
    # the front ends where the first file's header is: before it, only the maps and the directories
    front = min(e.fh_info >> 32 for e in entries if not e.directory) * TP_BSIZE
    assert front == min((e.fh_info & 0xFFFFFFFF) for e in entries if not e.directory) * TP_BSIZE
    for at in range(0, front, TP_BSIZE):
        block = bytes(image[at:at + TP_BSIZE])
        if is_header(block):
            h = unpack_header(block, order)
            assert h.c_type != RecordType.TS_INODE or h.c_dinode.mode & 0o170000 == 0o040000, at


def test_the_backup_spool_is_emptied_behind_what_was_sent(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        (src / f"f{i}").write_bytes(os.urandom(4_000_000))
    spool = tmp_path / "spool"
    spool.mkdir()
    allocated: list[int] = []
    total = 0

    def write(data: bytes) -> None:
        nonlocal total
        total += len(data)
        (image,) = spool.glob("pyndmpd-backup-*/image")
        allocated.append(image.stat().st_blocks * 512)

    DumpEngine(str(spool)).backup(BackupRequest(str(src), update=False), write, threading.Event())
    assert total > 16_000_000
    # when the last piece goes out, everything before it has been freed
    assert allocated[-1] < 2 * 1024 * 1024, allocated[-5:]
    assert not list(spool.iterdir())  # the spool is gone
