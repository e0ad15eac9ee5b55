"""The medium packs 1 KiB blocks into records and moves them like dump."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from dumptool.errors import DumpError, MediumError
from dumptool.format import DR_COMPRESSED, TP_BSIZE, volume_header
from dumptool.medium import (
    NewVolume,
    RecordReader,
    RecordWriter,
    TapePosition,
    VolumeRequest,
    open_sink,
    open_source,
)
from tapelib import Shelf, open_device

REPO = Path(__file__).resolve().parents[2]


def block(n: int) -> bytes:
    """A recognisable 1 KiB block: its index, repeated."""
    return n.to_bytes(4, "little") * (TP_BSIZE // 4)


def index_of(b: bytes) -> int:
    return int.from_bytes(b[:4], "little")


def stream(n: int, start: int = 0) -> list[bytes]:
    return [block(i) for i in range(start, start + n)]


# -- blocking factor -----------------------------------------------------------------

@pytest.mark.parametrize("ntrec", [0, 1, 3, 257, 1024])
def test_blocking_factor_outside_4_to_256_is_refused(tmp_path: Path, ntrec: int) -> None:
    with pytest.raises(DumpError, match=f"blocking factor {ntrec} is out of range 4 to 256"):
        RecordWriter(open_sink(str(tmp_path / "img")), ntrec)


@pytest.mark.parametrize("ntrec", [4, 10, 256])
def test_blocking_factors_4_to_256_are_accepted(tmp_path: Path, ntrec: int) -> None:
    writer = RecordWriter(open_sink(str(tmp_path / "img")), ntrec)
    writer.write(b"".join(stream(ntrec)))
    writer.finish()
    assert (tmp_path / "img").stat().st_size == ntrec * TP_BSIZE


# -- writing a file --------------------------------------------------------------------

def test_file_gets_whole_records_and_next_block_counts_blocks(tmp_path: Path) -> None:
    writer = RecordWriter(open_sink(str(tmp_path / "img")), 10)
    for i, b in enumerate(stream(25)):
        assert writer.next_block == i
        assert writer.write(b) == i
    assert writer.next_block == 25
    assert writer.blocks_pending == 5
    assert (tmp_path / "img").stat().st_size == 20 * TP_BSIZE  # only full records so far
    assert writer.position == TapePosition(volume=1, file_number=0, block_number=2)
    writer.finish(pad=block(999))
    data = (tmp_path / "img").read_bytes()
    assert len(data) == 30 * TP_BSIZE
    assert [index_of(data[i:i + TP_BSIZE]) for i in range(0, len(data), TP_BSIZE)] == \
        list(range(25)) + [999] * 5
    assert writer.next_block == 30


def test_padding_function_gets_each_pad_blocks_own_index(tmp_path: Path) -> None:
    """dump ends with ntrec - (tapea mod ntrec) TS_END blocks, each numbered."""
    writer = RecordWriter(open_sink(str(tmp_path / "img")), 8)
    writer.write(b"".join(stream(5)))
    assert writer.end_blocks_needed == 3
    writer.finish(pad=block)
    data = (tmp_path / "img").read_bytes()
    assert [index_of(data[i:i + TP_BSIZE]) for i in range(0, len(data), TP_BSIZE)] == list(range(8))


def test_end_blocks_needed_is_a_whole_record_when_aligned(tmp_path: Path) -> None:
    writer = RecordWriter(open_sink(str(tmp_path / "img")), 4)
    assert writer.end_blocks_needed == 4
    writer.write(b"".join(stream(4)))
    assert writer.end_blocks_needed == 4
    writer.finish()


def test_finish_with_a_partial_record_and_no_pad_is_an_error(tmp_path: Path) -> None:
    writer = RecordWriter(open_sink(str(tmp_path / "img")), 4)
    writer.write(block(0))
    with pytest.raises(ValueError, match="pad"):
        writer.finish()
    writer.abort()


def test_blocks_must_be_whole(tmp_path: Path) -> None:
    writer = RecordWriter(open_sink(str(tmp_path / "img")), 4)
    with pytest.raises(ValueError):
        writer.write(b"x" * 100)
    writer.abort()


def test_unwritable_output_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(MediumError, match=f"cannot open output {tmp_path}/no/such/img"):
        open_sink(str(tmp_path / "no" / "such" / "img"))


def test_pipe_gets_the_same_bytes_as_a_file(tmp_path: Path) -> None:
    r, w = os.pipe()
    got = bytearray()

    def drain() -> None:
        while chunk := os.read(r, 7000):
            got.extend(chunk)

    t = threading.Thread(target=drain)
    t.start()
    writer = RecordWriter(w, 16)  # an fd > 2: the writer closes it
    writer.write(b"".join(stream(40)))
    writer.finish(pad=block)
    t.join()
    os.close(r)
    assert bytes(got) == b"".join(stream(48))


# -- writing a tape ----------------------------------------------------------------------

def test_tape_gets_one_record_per_write_and_reports_drive_position(nst0: str) -> None:
    writer = RecordWriter(open_sink(nst0), 4)
    writer.write(b"".join(stream(9)))
    assert writer.position == TapePosition(volume=1, file_number=0, block_number=2)
    writer.finish(pad=block)
    with open_device(nst0) as tape:
        tape.rewind()
        records = []
        while rec := tape.read(1 << 20):
            records.append(rec)
    assert [len(r) for r in records] == [4 * TP_BSIZE] * 3
    assert b"".join(records) == b"".join(stream(12))


class TwoCartridges:
    """A VolumeChange that swaps drive 0's cartridge for the next one on the shelf."""

    def __init__(self, shelf: Shelf, nst0: str, barcodes: list[str]) -> None:
        self.shelf, self.nst0, self.barcodes = shelf, nst0, barcodes
        self.requests: list[VolumeRequest] = []

    def next_volume(self, request: VolumeRequest) -> NewVolume:
        self.requests.append(request)
        self.shelf.unload(0)
        self.shelf.load(self.barcodes.pop(0), drive=0)
        return NewVolume(open_device(self.nst0, writable=True), header=block(100_000 + request.volume))


def small_shelf(shelf: Shelf) -> None:
    shelf.unload(0)
    for name in ("SMALL1", "SMALL2", "SMALL3"):
        shelf.new_cartridge(name, capacity=40 * 1024, early_warning=12 * 1024)
    shelf.load("SMALL1", drive=0)


def read_volume(nst0: str) -> list[bytes]:
    with open_device(nst0) as tape:
        tape.rewind()
        reader = RecordReader(tape)
        return list(reader)


def test_full_tape_replays_the_refused_record_after_the_next_volumes_header(shelf: Shelf, nst0: str) -> None:
    small_shelf(shelf)
    change = TwoCartridges(shelf, nst0, ["SMALL2", "SMALL3"])
    writer = RecordWriter(open_sink(nst0), 4, change)
    blocks = stream(40)
    for b in blocks:
        writer.write(b)
    assert writer.volume == 2
    [request] = change.requests
    assert request.volume == 2
    assert request.first_block % 4 == 0
    assert request.replay == tuple(blocks[request.first_block:request.first_block + 4])
    # The header repeats the number of the first replayed block: no block
    # number moved, but the records did by one block.
    assert writer.next_block == 40
    assert writer.end_blocks_needed == 3
    writer.finish(pad=block)

    vol2 = read_volume(nst0)  # SMALL2 is in the drive now
    shelf.unload(0)
    shelf.load("SMALL1", drive=0)
    vol1 = read_volume(nst0)
    assert [index_of(b) for b in vol1] == list(range(request.first_block))
    assert index_of(vol2[0]) == 100_002
    assert [index_of(b) for b in vol2[1:]] == list(range(request.first_block, 43))
    # Every record on the new volume is still a whole record.
    shelf.unload(0)
    shelf.load("SMALL2", drive=0)
    with open_device(nst0) as tape:
        tape.rewind()
        sizes = []
        while rec := tape.read(1 << 20):
            sizes.append(len(rec))
    assert set(sizes) == {4 * TP_BSIZE}


def test_full_tape_without_a_volume_change_is_an_error_naming_the_device(shelf: Shelf, nst0: str) -> None:
    small_shelf(shelf)
    writer = RecordWriter(open_sink(nst0), 4)
    with pytest.raises(MediumError, match="end of medium on volume 1") as info:
        for b in stream(100):
            writer.write(b)
    assert info.value.errno == 28
    assert nst0 in info.value.message
    writer.abort()


def test_planned_volume_change_numbers_the_header_as_a_block(tmp_path: Path) -> None:
    class Files:
        def next_volume(self, request: VolumeRequest) -> NewVolume:
            assert request.replay == ()
            return NewVolume(open_sink(str(tmp_path / f"vol{request.volume}")), block(request.first_block))

    writer = RecordWriter(open_sink(str(tmp_path / "vol1")), 4, Files())
    writer.write(b"".join(stream(8)))
    writer.change_volume()
    assert writer.next_block == 9
    writer.write(b"".join(stream(3, start=9)))
    writer.finish(pad=block)
    assert (tmp_path / "vol1").read_bytes() == b"".join(stream(8))
    assert (tmp_path / "vol2").read_bytes() == b"".join(stream(4, start=8))


# -- reading ---------------------------------------------------------------------------------

def test_tape_reader_detects_the_record_size_from_the_first_read(nst0: str) -> None:
    with open_device(nst0, writable=True) as tape:
        for i in range(3):
            tape.write(b"".join(stream(16, start=16 * i)))
    with open_device(nst0) as tape:
        tape.rewind()
    reader = RecordReader(open_source(nst0))
    assert reader.record_size is None
    assert index_of(reader.read_block()) == 0
    assert reader.record_size == 16 * TP_BSIZE
    assert reader.ntrec == 16
    assert [index_of(b) for b in reader] == list(range(1, 48))
    assert reader.at_end_of_volume
    assert reader.read_block() is None
    reader.close()


def test_filemark_ends_the_volume_and_next_volume_goes_on(shelf: Shelf, nst0: str) -> None:
    with open_device(nst0, writable=True) as tape:
        tape.write(b"".join(stream(4)))
        tape.write_filemarks(1)
        tape.write(b"".join(stream(4, start=4)))
    with open_device(nst0) as tape:
        tape.rewind()
    asked: list[int] = []

    def next_volume(number: int) -> object:
        asked.append(number)
        return open_source(nst0)  # a non-rewinding drive: the next file

    reader = RecordReader(open_source(nst0), next_volume)
    assert [index_of(b) for b in reader] == [0, 1, 2, 3]
    assert reader.position == TapePosition(volume=1, file_number=1, block_number=0)
    reader.next_volume()
    assert asked == [2] and reader.volume == 2
    assert [index_of(b) for b in reader] == [4, 5, 6, 7]
    reader.close()


def test_pipe_short_reads_are_reassembled_into_blocks() -> None:
    r, w = os.pipe()
    data = b"".join(stream(20))

    def feed() -> None:
        for i in range(0, len(data), 333):
            os.write(w, data[i:i + 333])
        os.close(w)

    t = threading.Thread(target=feed)
    t.start()
    reader = RecordReader(r)
    assert [index_of(b) for b in reader] == list(range(20))
    t.join()
    with pytest.raises(MediumError, match="pipe cannot change volumes"):
        RecordReader(reader.source, lambda n: 0).next_volume()
    reader.close()


def test_truncated_image_is_an_error_naming_the_file(tmp_path: Path) -> None:
    image = tmp_path / "img"
    image.write_bytes(b"".join(stream(3)) + b"x" * 100)
    reader = RecordReader(open_source(str(image)))
    with pytest.raises(MediumError, match=f"{image}: volume 1 ends inside a block"):
        list(reader)
    reader.close()


def test_file_volumes_chain_through_the_callback(tmp_path: Path) -> None:
    for v in (1, 2):
        (tmp_path / f"vol{v}").write_bytes(b"".join(stream(4, start=4 * (v - 1))))
    reader = RecordReader(open_source(str(tmp_path / "vol1")),
                          lambda n: open_source(str(tmp_path / f"vol{n}")))
    got = [index_of(b) for b in reader]
    reader.next_volume()
    got += [index_of(b) for b in reader]
    assert got == list(range(8))
    assert reader.blocks_read == 8
    reader.close()


def test_missing_input_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(MediumError, match=f"cannot open input {tmp_path}/nothing"):
        open_source(str(tmp_path / "nothing"))


def test_dash_writes_stdout_and_reads_stdin() -> None:
    """``-f -``: the image goes to standard output and comes from standard input."""
    write = ("from dumptool.medium import RecordWriter, open_sink\n"
             "w = RecordWriter(open_sink('-'), 4)\n"
             "w.write(bytes(range(256)) * 4 * 8)\n"
             "w.finish()\n")
    out = subprocess.run([sys.executable, "-c", write], capture_output=True, check=True, cwd=REPO).stdout
    assert out == bytes(range(256)) * 4 * 8
    read = ("import sys\n"
            "from dumptool.medium import RecordReader, open_source\n"
            "print(sum(1 for _ in RecordReader(open_source('-'))))\n")
    done = subprocess.run([sys.executable, "-c", read], input=out, capture_output=True, check=True, cwd=REPO)
    assert done.stdout.strip() == b"8"


# -- the drive a source moves; what the medium does not know ---------------------------------------


def test_a_tape_source_spaces_over_files_and_rewinds_and_a_file_refuses(nst0: str, tmp_path: Path) -> None:
    with open_device(nst0, writable=True) as tape:
        for first in (0, 4):
            tape.write(b"".join(stream(4, start=first)))
            tape.write_filemarks(1)
        tape.rewind()
    source = open_source(nst0)
    source.space_files(1)
    assert [index_of(b) for b in RecordReader(source)] == [4, 5, 6, 7]
    source.rewind()
    with RecordReader(source) as reader:
        assert [index_of(b) for b in reader] == [0, 1, 2, 3]
    (tmp_path / "img").write_bytes(b"".join(stream(4)))
    plain = open_source(str(tmp_path / "img"))
    with pytest.raises(MediumError, match=f"{tmp_path}/img: cannot space over tape files: not a tape drive"):
        plain.space_files(1)
    with pytest.raises(MediumError, match="cannot rewind: not a tape drive"):
        plain.rewind()
    plain.close()


def test_the_medium_moves_a_compressed_image_as_it_lies(tmp_path: Path) -> None:
    """Compression is a wrapper the caller chooses: a reader alone hands over
    the bytes of an image flagged compressed untouched, and importing the
    medium does not import compression."""
    head = volume_header(date=1_700_000_000, ntrec=4)
    image = head.derive(c_flags=head.c_flags | DR_COMPRESSED).pack() + b"".join(stream(7, start=1))
    (tmp_path / "img").write_bytes(image)
    with RecordReader(open_source(str(tmp_path / "img"))) as reader:
        assert b"".join(reader) == image
    probe = "import sys, dumptool.medium; print(sorted(m for m in sys.modules if m.startswith('dumptool.')))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    assert "dumptool.compression" not in loaded.stdout and "dumptool.medium.reader" in loaded.stdout
