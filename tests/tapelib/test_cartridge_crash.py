"""A cartridge survives its writer dying, a torn tail and damage in the middle."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tapelib import MediumError, Shelf, TapeIOError, open_device
from tapelib.awstape import AWSTAPE_HEADER_SIZE

REPO = Path(__file__).resolve().parents[2]
RECORD = 3 * 1024 * 1024 + 12345  # 49 AWSTAPE segments: a kill often lands mid-record
BASE = os.urandom(4099)
BIG = BASE * (RECORD // len(BASE) + 2)


def pattern(i: int, size: int = RECORD) -> bytes:
    """Record ``i``'s bytes: differ from record to record and along each record."""
    start = (i * 997) % len(BASE)
    return BIG[start:start + size]


WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo!r})
    from tapelib import open_device
    base = bytes.fromhex({base!r})
    size = {size}
    big = memoryview(base * (size // len(base) + 2))
    def pattern(i):  # a slice, not a copy: the writer spends its time writing
        start = (i * 997) % len(base)
        return big[start:start + size]
    with open_device({device!r}, writable=True) as tape:
        i = 0
        while True:
            tape.write(pattern(i))
            print(i, flush=True)
            i += 1
""")


@pytest.fixture
def big_shelf(tmp_path: Path) -> Shelf:
    shelf = Shelf.create(tmp_path / "shelf", drives=1, slots=1)
    shelf.new_cartridge("CRASH1", capacity=2 * 1024**3)
    shelf.load("CRASH1")
    return shelf


def read_all(device: str) -> tuple[list[bytes], int]:
    """Rewind and read records until an error; the records and that errno."""
    records = []
    with open_device(device) as tape:
        tape.rewind()
        while True:
            try:
                records.append(tape.read(RECORD + 1))
            except TapeIOError as exc:
                return records, exc.errno


def kill_writer_after(device: str, records: int, extra_delay: float) -> int:
    """Run the writer, SIGKILL it once it reported ``records`` records (plus a
    little); returns how many it reported complete."""
    script = WRITER.format(repo=str(REPO), base=BASE.hex(), size=RECORD, device=device)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    done = -1
    try:
        assert proc.stdout is not None
        while done < records - 1:
            line = proc.stdout.readline()
            assert line, "the writer died on its own"
            done = int(line)
        time.sleep(extra_delay)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    for line in proc.stdout or ():
        done = int(line)
    return done + 1


@pytest.mark.parametrize("extra_delay", [0.0, 0.0007, 0.0013, 0.0021])
def test_killed_writer_leaves_every_complete_record_readable(big_shelf: Shelf, extra_delay: float) -> None:
    nst0 = str(big_shelf.device_path(0, rewind=False))
    reported = kill_writer_after(nst0, 4, extra_delay)

    blocks, code = read_all(nst0)
    # The writer's tape file ends with a filemark, as st's close of a killed
    # writer's device writes one: records, b"" (the filemark), b"" (end of
    # data after a filemark), then EIO.
    assert blocks[-2:] == [b"", b""] and code == errno.EIO
    records = blocks[:-2]
    # The writer may have been killed after a write returned but before it said so.
    assert reported <= len(records) <= reported + 1
    for i, data in enumerate(records):
        assert data == pattern(i), f"record {i} differs"

    # A new write appends after that filemark, in a tape file of its own.
    with open_device(nst0, writable=True) as tape:
        tape.seek_eod()
        assert tape.tell() == len(records) + 1
        assert tape.status().file_number == 1
        tape.write(b"after the crash")
    with open_device(nst0) as tape:
        tape.rewind()
        tape.space_files(1)
        assert tape.read(100) == b"after the crash"
        assert tape.read(100) == b""  # the filemark of the close
        assert tape.read(100) == b""  # end of data after a filemark
        with pytest.raises(TapeIOError):
            tape.read(100)


def test_after_a_crash_the_head_stands_after_the_new_filemark(big_shelf: Shelf) -> None:
    nst0 = str(big_shelf.device_path(0, rewind=False))
    kill_writer_after(nst0, 2, 0.001)
    with open_device(nst0) as tape:
        status = tape.status()
        assert (status.file_number, status.block_number, status.eof) == (1, 0, True)
        assert tape.read(RECORD + 1) == b""  # end of data right after a filemark
        tape.rewind()
        assert tape.read(RECORD + 1) == pattern(0)
    with open_device(nst0) as tape:  # the recovery is done: the place is kept again
        assert tape.tell() == 1
        assert tape.read(RECORD + 1) == pattern(1)


def write_records(device: str, records: list[bytes], filemark_after: int | None = None) -> None:
    with open_device(device, writable=True) as tape:
        for i, data in enumerate(records):
            tape.write(data)
            if i == filemark_after:
                tape.write_filemarks(1)


def cartridge_file(shelf: Shelf) -> Path:
    return shelf.cartridge_path("CRASH1")


def mark_dirty(shelf: Shelf) -> None:
    """What a writer that died leaves in the sidecar."""
    meta = cartridge_file(shelf).with_suffix(".json")
    meta.write_text(meta.read_text().replace('"clean": true', '"clean": false'))


@pytest.mark.parametrize("cut", ["mid-header", "mid-segment", "after-a-whole-segment"])
def test_a_torn_tail_ends_the_tape_after_the_last_complete_record(big_shelf: Shelf, cut: str) -> None:
    nst0 = str(big_shelf.device_path(0, rewind=False))
    records = [pattern(i, 200_000) for i in range(3)]  # 4 segments each
    write_records(nst0, records)
    path = cartridge_file(big_shelf)
    full = path.stat().st_size
    # The filemark of the close is the last 6 bytes; the third record before it.
    third_starts = full - AWSTAPE_HEADER_SIZE - (200_000 + 4 * AWSTAPE_HEADER_SIZE)
    length = {"mid-header": third_starts + 3,
              "mid-segment": third_starts + AWSTAPE_HEADER_SIZE + 1000,
              "after-a-whole-segment": third_starts + AWSTAPE_HEADER_SIZE + 0xFFFF}[cut]
    os.truncate(path, length)
    mark_dirty(big_shelf)

    with open_device(nst0) as tape:
        tape.rewind()
        assert tape.read(300_000) == records[0]
        assert tape.read(300_000) == records[1]
        assert tape.read(300_000) == b""  # the filemark that ends the dead writer's file
        assert tape.read(300_000) == b""
        with pytest.raises(TapeIOError):
            tape.read(300_000)
    # The torn record is cut off and the filemark written in its place.
    assert path.stat().st_size == third_starts + AWSTAPE_HEADER_SIZE

    with open_device(nst0, writable=True) as tape:
        tape.seek_eod()
        assert tape.tell() == 3
        tape.write(b"new third record")
    with open_device(nst0) as tape:
        tape.rewind()
        tape.space_files(1)
        assert tape.read(100) == b"new third record"
        assert tape.read(100) == b""


def test_garbage_in_the_middle_reads_up_to_it_and_refuses_to_write_there(big_shelf: Shelf) -> None:
    nst0 = str(big_shelf.device_path(0, rewind=False))
    records = [pattern(i, 5000) for i in range(4)]
    write_records(nst0, records)
    path = cartridge_file(big_shelf)
    damage_at = 2 * (5000 + AWSTAPE_HEADER_SIZE)  # the third record's header
    with open(path, "r+b") as f:
        f.seek(damage_at)
        f.write(b"\xde\xad\xbe\xef\xfe\xed")
    before = path.read_bytes()
    mark_dirty(big_shelf)

    with open_device(nst0, writable=True) as tape:
        tape.rewind()
        assert tape.read(10_000) == records[0]
        assert tape.read(10_000) == records[1]
        with pytest.raises(TapeIOError) as info:
            tape.read(10_000)
        assert info.value.errno == errno.EIO
        assert "damaged" in info.value.message
        with pytest.raises(MediumError) as info:  # no end of data short of the damage
            tape.seek_eod()
        assert str(damage_at) in info.value.message
        assert tape.tell() == 2
        with pytest.raises(TapeIOError) as info:
            tape.write(b"would overwrite the damage")
        assert info.value.errno == errno.EIO
        assert "damage" in info.value.message
    assert path.read_bytes() == before  # nothing truncated, nothing written
