"""A loopback drive keeps records, filemarks and its place like a tape."""

from __future__ import annotations

import pytest

from tapelib import BufferTooSmall, Shelf, TapeError, TapeIOError, open_device


def test_records_read_back_with_their_true_lengths(nst0: str) -> None:
    sizes = (1, 1024, 65535, 65536, 262144)
    with open_device(nst0, writable=True) as tape:
        for size in sizes:
            tape.write(bytes([size % 251]) * size)
    with open_device(nst0) as tape:
        tape.rewind()
        for size in sizes:
            assert tape.read(1 << 20) == bytes([size % 251]) * size
        assert tape.read(1024) == b""  # the filemark written on close


def test_writing_zero_bytes_writes_no_record_as_on_st(nst0: str) -> None:
    with open_device(nst0, writable=True) as tape:
        assert tape.write(b"") == 0
        assert tape.tell() == 0
    with open_device(nst0) as tape:
        tape.rewind()
        with pytest.raises(TapeIOError):  # blank tape: no record, no filemark
            tape.read(100)


def test_short_read_buffer_is_an_error_as_on_st(nst0: str) -> None:
    with open_device(nst0, writable=True) as tape:
        tape.write(b"x" * 4096)
    with open_device(nst0) as tape:
        tape.rewind()
        with pytest.raises(BufferTooSmall) as info:
            tape.read(1024)
        assert info.value.errno == 12  # ENOMEM


def test_non_rewinding_drive_keeps_its_place_between_opens(shelf: Shelf, nst0: str) -> None:
    with open_device(nst0, writable=True) as tape:
        tape.write(b"file0")
        tape.write_filemarks(1)
        tape.write(b"file1")
    with open_device(nst0) as tape:
        tape.rewind()
        tape.space_files(1)
    with open_device(nst0) as tape:
        status = tape.status()
        assert (status.file_number, status.block_number) == (1, 0)
        assert tape.read(100) == b"file1"


def test_rewinding_drive_is_at_bot_after_close(shelf: Shelf) -> None:
    st0 = str(shelf.device_path(0, rewind=True))
    with open_device(st0, writable=True) as tape:
        tape.write(b"data")
    with open_device(st0) as tape:
        assert tape.status().bot
        assert tape.read(100) == b"data"


def test_read_past_end_of_data_is_eio(nst0: str) -> None:
    with open_device(nst0) as tape:
        with pytest.raises(TapeIOError) as info:
            tape.read(100)
        assert info.value.errno == 5


def test_readinto_gives_the_same_records_positions_and_errors_as_read(nst0: str) -> None:
    sizes = [1, 1000, 65535, 65536, 65537, 131070, 131071, 200_000, 262144]
    with open_device(nst0, writable=True) as tape:
        for i, size in enumerate(sizes):
            tape.write(bytes([i + 1]) * size)
            if i % 3 == 2:
                tape.write_filemarks(1)
    for buffer_size in (262144, 65536, 300_000):
        replies: dict[str, list[object]] = {"read": [], "readinto": []}
        for how in replies:
            buffer = bytearray(buffer_size)
            with open_device(nst0) as tape:
                tape.rewind()
                for _ in range(len(sizes) + 6):
                    try:
                        if how == "read":
                            got: object = tape.read(buffer_size)
                        else:
                            got = bytes(buffer[: tape.readinto(buffer)])
                    except TapeError as exc:
                        got = ("error", exc.errno)
                    status = tape.status()
                    replies[how].append((got, status.file_number, status.block_number, tape.tell()))
        assert replies["read"] == replies["readinto"]
        assert any(isinstance(r[0], bytes) and len(r[0]) == 262144 for r in replies["read"]) == (buffer_size >= 262144)
