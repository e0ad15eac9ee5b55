"""Bad input to the tape API fails with the right error and harms no data."""

from __future__ import annotations

import errno
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tapelib import (
    DriveBusy,
    InvalidArgument,
    MtOp,
    NoMedium,
    NoSuchDevice,
    NotACartridge,
    Shelf,
    TapeError,
    TapeIOError,
    WriteProtected,
    open_device,
)

REPO = Path(__file__).resolve().parents[2]
RECORDS = [b"first record", bytes(range(256)) * 300, b"third"]


@pytest.fixture
def recorded(shelf: Shelf, nst0: str) -> Shelf:
    """The fixture shelf with three records and a filemark on TEST01, rewound."""
    with open_device(nst0, writable=True) as tape:
        for data in RECORDS:
            tape.write(data)
    with open_device(nst0) as tape:
        tape.rewind()
    return shelf


def snapshot(shelf: Shelf) -> tuple[bytes, bytes]:
    path = shelf.cartridge_path("TEST01")
    return path.read_bytes(), path.with_suffix(".json").read_bytes()


def assert_records_intact(shelf: Shelf) -> None:
    with open_device(str(shelf.device_path(0, rewind=False))) as tape:
        tape.rewind()
        assert [tape.read(1 << 20) for _ in RECORDS] == RECORDS
        assert tape.read(1 << 20) == b""


def test_unknown_device_path_is_no_such_device(tmp_path: Path) -> None:
    with pytest.raises(NoSuchDevice) as info:
        open_device(str(tmp_path / "nst7"))
    assert info.value.errno == errno.ENOENT
    assert "no such tape device" in info.value.message


def test_regular_file_that_is_no_device_marker_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "backup.img"
    plain.write_bytes(b"not a tape\n")
    with pytest.raises(NoSuchDevice) as info:
        open_device(str(plain))
    assert info.value.errno == errno.ENOENT
    assert "not a tape device" in info.value.message
    assert plain.read_bytes() == b"not a tape\n"


def test_random_bytes_in_a_drive_are_not_a_cartridge(shelf: Shelf, nst0: str) -> None:
    path = shelf.cartridge_path("TEST01")
    junk = random.Random(7).randbytes(100_000)
    path.write_bytes(junk)
    sidecar = path.with_suffix(".json").read_bytes()
    for writable in (False, True):
        with pytest.raises(NotACartridge) as info:
            open_device(nst0, writable=writable)
        assert info.value.errno == errno.EMEDIUMTYPE
        assert str(path) in info.value.message and "not a loopback cartridge" in info.value.message
    assert path.read_bytes() == junk
    assert path.with_suffix(".json").read_bytes() == sidecar
    # The drive was released: the error left nothing open.
    with pytest.raises(NotACartridge):
        open_device(nst0)


def test_corrupted_metadata_sidecar_is_not_a_cartridge(recorded: Shelf, nst0: str) -> None:
    data, _ = snapshot(recorded)
    sidecar = recorded.cartridge_path("TEST01").with_suffix(".json")
    sidecar.write_text('{"format": "snapdump-cartr')
    with pytest.raises(NotACartridge) as info:
        open_device(nst0, writable=True)
    assert info.value.errno == errno.EMEDIUMTYPE
    assert str(sidecar) in info.value.message and "metadata" in info.value.message
    assert recorded.cartridge_path("TEST01").read_bytes() == data


def test_write_protected_cartridge_refuses_a_writable_open_with_erofs(recorded: Shelf, nst0: str) -> None:
    recorded.set_write_protect("TEST01", True)
    before = snapshot(recorded)
    with pytest.raises(WriteProtected) as info:
        open_device(nst0, writable=True)
    assert info.value.errno == errno.EROFS
    with open_device(nst0) as tape:  # reading still works, and says it is protected
        assert tape.status().write_protected
        for attempt in (lambda: tape.write(b"x"), lambda: tape.write_filemarks(1), tape.erase):
            with pytest.raises(WriteProtected) as info:
                attempt()
            assert info.value.errno == errno.EACCES
    assert snapshot(recorded) == before
    assert_records_intact(recorded)


def test_writing_through_a_read_only_open_is_eacces(recorded: Shelf, nst0: str) -> None:
    before = snapshot(recorded)
    with open_device(nst0) as tape:
        tape.seek_eod()
        for attempt in (lambda: tape.write(b"x"), lambda: tape.write_filemarks(1), tape.erase):
            with pytest.raises(WriteProtected) as info:
                attempt()
            assert info.value.errno == errno.EACCES
        assert not tape.status().write_protected  # st: WR_PROT is the tab, not the open mode
    assert snapshot(recorded)[0] == before[0]
    assert_records_intact(recorded)


OTHER_PROCESS_OPENS = """
import sys
sys.path.insert(0, {repo!r})
from tapelib import open_device, TapeError
try:
    open_device({device!r})
except TapeError as exc:
    print(type(exc).__name__, exc.errno, exc.message)
else:
    print("opened")
"""


@pytest.mark.parametrize("other", ["nst0", "st0"])
def test_a_drive_in_use_is_busy_for_another_process(recorded: Shelf, nst0: str, other: str) -> None:
    with open_device(nst0, writable=True) as tape:
        tape.seek_eod()
        device = str(recorded.path / other)
        result = subprocess.run([sys.executable, "-c", OTHER_PROCESS_OPENS.format(repo=str(REPO), device=device)],
                                capture_output=True, text=True, check=True)
        name, code, message = result.stdout.split(" ", 2)
        assert (name, int(code)) == ("DriveBusy", errno.EBUSY)
        assert "busy" in message
        # ... and the same process's second open is busy too.
        with pytest.raises(DriveBusy):
            open_device(device)
        tape.write(b"still mine")  # the first open works on
    with open_device(nst0) as tape:
        tape.rewind()
        tape.space_files(1)  # the write went after the filemark, into file 1
        assert tape.read(100) == b"still mine"


def test_reading_past_end_of_data_is_eio_and_changes_nothing(recorded: Shelf, nst0: str) -> None:
    before = snapshot(recorded)
    with open_device(nst0) as tape:
        tape.space_files(1)
        assert tape.read(100) == b""  # end of data right after a filemark: one 0
        for _ in range(3):
            with pytest.raises(TapeIOError) as info:
                tape.read(100)
            assert info.value.errno == errno.EIO
        status = tape.status()
        assert status.eod and (status.file_number, status.block_number) == (1, -1)
    assert snapshot(recorded)[0] == before[0]
    assert_records_intact(recorded)


@pytest.mark.parametrize("call", [
    lambda t: t.read(-1),
    lambda t: t.read(0),
    lambda t: t.write_filemarks(-1),
    lambda t: t.seek(-1),
    lambda t: t.set_block_size(-1),
    lambda t: t.mtop(MtOp.MTFSF, -1),
    lambda t: t.mtop(MtOp.MTBSR, -2),
    lambda t: t.mtop(MtOp.MTWEOF, -1),
    lambda t: t.space_files(1.5),
    lambda t: t.space_records("2"),
    lambda t: t.read(0x1000000),
    lambda t: t.write(bytes(0x1000000)),
], ids=["read-1", "read0", "weof-1", "seek-1", "setblk-1", "mtop-fsf-1", "mtop-bsr-2", "mtop-weof-1",
        "fsf-float", "fsr-str", "read-too-big", "write-too-big"])
def test_bad_counts_are_einval_and_do_nothing(recorded: Shelf, nst0: str, call) -> None:
    before = snapshot(recorded)
    with open_device(nst0, writable=True) as tape:
        tape.space_records(1)
        with pytest.raises(InvalidArgument) as info:
            call(tape)
        assert info.value.errno == errno.EINVAL
        assert tape.tell() == 1
    assert snapshot(recorded)[0] == before[0]  # and no filemark: nothing was written
    assert_records_intact(recorded)


@pytest.mark.parametrize("op", [MtOp.MTTELL, MtOp.MTRESET, 99])
def test_operations_st_does_not_know_are_enosys(recorded: Shelf, nst0: str, op: int) -> None:
    with open_device(nst0) as tape:
        with pytest.raises(TapeError) as info:
            tape.mtop(op, 1)
        assert info.value.errno == errno.ENOSYS
    assert_records_intact(recorded)


def test_an_unloaded_cartridge_gives_enomedium_until_loaded(recorded: Shelf, nst0: str) -> None:
    with open_device(nst0) as tape:
        tape.space_records(2)
        tape.unload()
        status = tape.status()
        assert (status.file_number, status.block_number) == (0, 2)  # st keeps them
        assert status.door_open and not status.online
        for attempt in (lambda: tape.read(100), lambda: tape.write(b"x"), tape.rewind,
                        lambda: tape.space_files(1)):
            with pytest.raises(NoMedium) as info:
                attempt()
            assert info.value.errno == errno.ENOMEDIUM
    with open_device(nst0) as tape:  # still unloaded in the next process
        status = tape.status()
        assert (status.file_number, status.block_number, status.door_open) == (-1, -1, True)
        tape.load()
        assert tape.status().bot
        assert tape.read(100) == RECORDS[0]
    assert_records_intact(recorded)


def test_a_closed_drive_is_ebadf(recorded: Shelf, nst0: str) -> None:
    tape = open_device(nst0)
    tape.close()
    for attempt in (lambda: tape.read(100), tape.status, tape.tell, tape.rewind):
        with pytest.raises(TapeError) as info:
            attempt()
        assert info.value.errno == errno.EBADF
    tape.close()  # idempotent
    assert_records_intact(recorded)


def test_an_empty_drive_reports_no_medium(shelf: Shelf) -> None:
    nst1 = str(shelf.device_path(1, rewind=False))
    with open_device(nst1) as tape:
        status = tape.status()
        assert (status.file_number, status.block_number, status.door_open) == (-1, -1, True)
        with pytest.raises(NoMedium) as info:
            tape.read(100)
        assert info.value.errno == errno.ENOMEDIUM
        with pytest.raises(NoMedium):
            tape.load()
