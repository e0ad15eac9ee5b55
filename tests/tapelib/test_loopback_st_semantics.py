"""Named st behaviours of the loopback drive (Linux st.c is the reference)."""

from __future__ import annotations

import errno

import pytest

from tapelib import EndOfMedium, MtOp, Shelf, TapeIOError, open_device
from tapelib.awstape import AWSTAPE_HEADER_SIZE


@pytest.fixture
def small(tmp_path) -> str:
    """nst0 of a shelf whose cartridge holds 10 000 bytes, early warning after 6 000."""
    shelf = Shelf.create(tmp_path / "small", drives=1, slots=1)
    shelf.new_cartridge("SMALL1", capacity=10_000, early_warning=4_000)
    shelf.load("SMALL1")
    return str(shelf.device_path(0, rewind=False))


def test_fresh_tape_status_is_bot_online_im_rep_en(nst0: str) -> None:
    with open_device(nst0) as tape:
        assert tape.status().gstat == 0x41010000


def test_status_after_reading_a_filemark_is_eof(nst0: str) -> None:
    with open_device(nst0, writable=True) as tape:
        tape.write(b"x")
    with open_device(nst0) as tape:
        tape.rewind()
        assert tape.read(10) == b"x"
        assert tape.read(10) == b""
        status = tape.status()
        assert (status.file_number, status.block_number, status.gstat) == (1, 0, 0x81010000)


def test_writes_alternate_with_enospc_after_early_warning_until_the_hard_end(small: str) -> None:
    record = b"r" * 1000  # 1006 bytes on tape
    results = []
    with open_device(small, writable=True) as tape:
        for _ in range(14):
            try:
                results.append(tape.write(record))
            except EndOfMedium as exc:
                assert exc.errno == errno.ENOSPC
                results.append("ENOSPC")
        # 5 records before the zone (5030 < 6000), the 6th enters it, then alternation
        # up to 9 records (9054 bytes; a 10th would pass 10 000), then only ENOSPC.
        assert results == [1000] * 6 + ["ENOSPC", 1000, "ENOSPC", 1000, "ENOSPC", 1000, "ENOSPC", "ENOSPC"]
        assert tape.tell() == 9
        assert tape.status().eot  # the hard end sets EOM_OK again...
        with pytest.raises(EndOfMedium):
            tape.write(record)
        status = tape.status()
        assert status.eod and not status.eot  # ...and the refusal after it EOD_1, as st shows
        tape.write_filemarks(2)  # filemarks still fit in the zone
        assert tape.tell() == 11


def test_a_filemark_past_the_hard_end_is_eio_and_reports_eot(small: str) -> None:
    with open_device(small, writable=True) as tape:
        tape.write(b"f" * (10_000 - 2 * AWSTAPE_HEADER_SIZE - 3))
        tape.write_filemarks(1)  # fits: 3 bytes short of the end
        with pytest.raises(TapeIOError) as info:
            tape.write_filemarks(1)
        assert info.value.errno == errno.EIO
        status = tape.status()
        assert status.eot and (status.file_number, status.block_number) == (1, 0)


@pytest.mark.parametrize("op, count, filemark", [
    (MtOp.MTEOM, 1, False), (MtOp.MTFSR, 0, False), (MtOp.MTWEOF, 0, False), (MtOp.MTNOP, 1, True),
])
def test_only_a_write_just_before_close_gets_a_filemark(nst0: str, op: MtOp, count: int, filemark: bool) -> None:
    with open_device(nst0, writable=True) as tape:
        tape.write(b"data")
        tape.mtop(op, count)  # every MTIOCTOP but a few (MTNOP...) forgets the write
    with open_device(nst0) as tape:
        tape.rewind()
        assert tape.read(10) == b"data"
        if filemark:
            assert tape.read(10) == b""
        else:
            with pytest.raises(TapeIOError):
                tape.read(10)


def test_bsf_after_write_crosses_the_filemark_it_wrote(nst0: str) -> None:
    with open_device(nst0, writable=True) as tape:
        tape.write(b"file0")
        tape.write_filemarks(1)
        tape.write(b"file1")
        tape.space_files(-1)  # filemark written, then BSF 2: before the first filemark
        status = tape.status()
        assert (status.file_number, status.block_number) == (0, -1)
        assert tape.tell() == 1
        tape.space_files(1)
        assert tape.read(10) == b"file1"
        assert tape.read(10) == b""  # the filemark BSF wrote


def test_a_write_refused_after_a_read_still_counts_as_writing_at_close(small: str) -> None:
    with open_device(small, writable=True) as tape:
        for _ in range(6):
            tape.write(b"r" * 1000)  # the 6th enters early warning
        with pytest.raises(TapeIOError):
            tape.read(2000)  # end of data; rw becomes READING
        with pytest.raises(EndOfMedium):
            tape.write(b"r" * 1000)  # refused, but rw goes READING -> WRITING as in st_write
    with open_device(small) as tape:
        tape.rewind()
        tape.space_records(6)
        assert tape.read(10) == b""  # so close wrote a filemark


def test_mteom_reports_the_file_and_block_minus_one(nst0: str) -> None:
    with open_device(nst0, writable=True) as tape:
        for _ in range(3):
            tape.write(b"r")
            tape.write_filemarks(1)
        tape.rewind()
        tape.seek_eod()
        status = tape.status()
        assert (status.file_number, status.block_number, status.eod) == (3, -1, True)
        with pytest.raises(TapeIOError):
            tape.read(10)  # straight EIO after MTEOM


def test_mtseek_forgets_file_and_block(nst0: str) -> None:
    with open_device(nst0, writable=True) as tape:
        for data in (b"a", b"b", b"c"):
            tape.write(data)
        tape.seek(2)
        status = tape.status()
        assert (status.file_number, status.block_number, tape.tell()) == (-1, -1, 2)
        assert tape.read(10) == b"c"
        tape.seek(0)
        assert tape.status().bot
