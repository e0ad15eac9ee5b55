"""LinuxStDrive and the <linux/mtio.h> structures it packs.

No tape drive here: the byte layouts and request numbers are checked against
literals taken from gcc and the system headers on x86-64; the drive's
operations are checked against a recording ioctl over /dev/null; the refusal
of non-tape files uses real files and devices.
"""

from __future__ import annotations

import errno
import os
import platform
import struct
import sys
import types

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tapelib import linux_st
from tapelib.drive import TapeStatus
from tapelib.errors import (
    BufferTooSmall,
    DriveBusy,
    EndOfMedium,
    InvalidArgument,
    NoMedium,
    NoSuchDevice,
    TapeError,
    TapeIOError,
    WriteProtected,
)
from tapelib.linux_st import (
    MTIOCGET,
    MTIOCPOS,
    MTIOCTOP,
    LinuxStDrive,
    pack_mtget,
    pack_mtop,
    unpack_mtget,
)
from tapelib.mtio import GMT_BOT, GMT_EOF, GMT_IM_REP_EN, GMT_ONLINE, GMT_WR_PROT, MtOp

x86_64_only = pytest.mark.skipif(
    platform.machine() != "x86_64" or sys.byteorder != "little",
    reason="literals are the x86-64 layout and request numbers",
)

# struct mtget on x86-64, written out independently of linux_st: offsets
# from gcc (type 0, resid 8, dsreg 16, gstat 24, erreg 32, fileno 40,
# blkno 44; sizeof 48).
X86_64_MTGET = struct.Struct("<qqQQqii")
C_LONG_BITS = struct.calcsize("@l") * 8


def craft_mtget(
    *,
    mt_type: int = 0x72,
    resid: int = 0,
    dsreg: int = 0,
    gstat: int = 0,
    erreg: int = 0,
    fileno: int = 0,
    blkno: int = 0,
) -> bytes:
    return X86_64_MTGET.pack(mt_type, resid, dsreg, gstat, erreg, fileno, blkno)


def open_fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- structures and request numbers ------------------------------------------


@x86_64_only
def test_mtop_packs_op_and_count_native_layout() -> None:
    assert pack_mtop(MtOp.MTFSF, 3) == b"\x01\x00" + b"\x00\x00" + b"\x03\x00\x00\x00"
    assert pack_mtop(MtOp.MTWEOFI, 0x01020304) == b"\x23\x00\x00\x00\x04\x03\x02\x01"
    assert pack_mtop(MtOp.MTSEEK, -1) == b"\x16\x00\x00\x00\xff\xff\xff\xff"


@pytest.mark.parametrize(("op", "count"), [(-1, 1), (2**15, 1), (1, 2**31), (1, -(2**31) - 1)])
def test_mtop_refuses_values_that_would_truncate(op: int, count: int) -> None:
    with pytest.raises(InvalidArgument):
        pack_mtop(op, count)


@x86_64_only
def test_ioctl_request_numbers_equal_linux_header() -> None:
    # gcc: printf("%lx", MTIOCTOP) etc. with <sys/mtio.h> and <linux/mtio.h>.
    assert MTIOCTOP == 0x40086D01
    assert MTIOCGET == 0x80306D02
    assert MTIOCPOS == 0x80086D03


@x86_64_only
def test_mtget_unpacks_position_flags_and_dsreg() -> None:
    buf = craft_mtget(
        mt_type=0x72,
        resid=5,
        dsreg=(0x46 << 24) | 0x10000,
        gstat=GMT_BOT | GMT_ONLINE | GMT_WR_PROT | GMT_IM_REP_EN,
        erreg=0x1234,
        fileno=7,
        blkno=42,
    )
    assert unpack_mtget(buf) == TapeStatus(
        file_number=7,
        block_number=42,
        block_size=65536,
        density=0x46,
        bot=True,
        write_protected=True,
        online=True,
        drive_type=0x72,
        residual=5,
    )


@x86_64_only
def test_mtget_unknown_position_stays_minus_one() -> None:
    status = unpack_mtget(craft_mtget(fileno=-1, blkno=-1, gstat=GMT_EOF))
    assert (status.file_number, status.block_number) == (-1, -1)
    assert status.eof and not status.bot and not status.online


@x86_64_only
def test_mtget_density_with_top_bit_set_is_not_negative() -> None:
    status = unpack_mtget(craft_mtget(dsreg=(0x8C << 24) | 0xFFFFFF))
    assert (status.density, status.block_size) == (0x8C, 0xFFFFFF)


@x86_64_only
def test_pack_mtget_writes_the_c_layout() -> None:
    status = TapeStatus(
        file_number=3,
        block_number=-1,
        block_size=512,
        density=0x8C,
        eot=True,
        online=True,
        drive_type=0x72,
        residual=-2,
    )
    assert pack_mtget(status) == craft_mtget(
        mt_type=0x72,
        resid=-2,
        dsreg=(0x8C << 24) | 512,
        gstat=status.gstat,
        fileno=3,
        blkno=-1,
    )
    assert len(pack_mtget(status)) == 48


tape_statuses = st.builds(
    TapeStatus,
    file_number=st.integers(-(2**31), 2**31 - 1),
    block_number=st.integers(-(2**31), 2**31 - 1),
    block_size=st.integers(0, 0xFFFFFF),
    density=st.integers(0, 0xFF),
    bot=st.booleans(),
    eof=st.booleans(),
    eot=st.booleans(),
    eod=st.booleans(),
    write_protected=st.booleans(),
    online=st.booleans(),
    door_open=st.booleans(),
    drive_type=st.integers(-(2 ** (C_LONG_BITS - 1)), 2 ** (C_LONG_BITS - 1) - 1),
    residual=st.integers(-(2 ** (C_LONG_BITS - 1)), 2 ** (C_LONG_BITS - 1) - 1),
)


@given(tape_statuses)
def test_mtget_pack_unpack_round_trip(status: TapeStatus) -> None:
    assert unpack_mtget(pack_mtget(status)) == status


@pytest.mark.parametrize(
    "status",
    [
        TapeStatus(block_size=0x1000000),
        TapeStatus(block_size=-1),
        TapeStatus(density=0x100),
        TapeStatus(file_number=2**31),
        TapeStatus(residual=2**C_LONG_BITS),
    ],
)
def test_pack_mtget_refuses_fields_too_wide_for_the_struct(status: TapeStatus) -> None:
    with pytest.raises(InvalidArgument):
        pack_mtget(status)


@pytest.mark.parametrize("size", [0, 47, 49, 96])
def test_unpack_mtget_refuses_a_buffer_of_the_wrong_size(size: int) -> None:
    with pytest.raises(InvalidArgument):
        unpack_mtget(bytes(size))


# -- opening things that are not tapes ---------------------------------------


def test_opening_regular_file_is_not_a_tape_and_leaks_no_fd(tmp_path) -> None:
    path = tmp_path / "dump.img"
    path.write_bytes(b"\0" * 1024)
    before = open_fd_count()
    with pytest.raises(NoSuchDevice) as info:
        LinuxStDrive(path, writable=True)
    assert open_fd_count() == before
    assert str(info.value) == f"{path}: not a tape device"
    assert info.value.errno == errno.ENOTTY
    assert path.read_bytes() == b"\0" * 1024


def test_opening_missing_path_raises_no_such_device(tmp_path) -> None:
    path = tmp_path / "nst9"
    with pytest.raises(NoSuchDevice) as info:
        LinuxStDrive(path)
    assert info.value.errno == errno.ENOENT
    assert str(info.value) == f"{path}: {os.strerror(errno.ENOENT)}"


def test_opening_dev_null_is_not_a_tape() -> None:
    before = open_fd_count()
    with pytest.raises(NoSuchDevice, match=r"^/dev/null: not a tape device$"):
        LinuxStDrive("/dev/null")
    assert open_fd_count() == before


# -- operations, over a recording ioctl --------------------------------------


class RecordingIoctl:
    """Stands in for fcntl.ioctl: answers MTIOCGET/MTIOCPOS, records MTIOCTOP."""

    def __init__(self) -> None:
        self.ops: list[tuple[int, int]] = []
        self.mtget = pack_mtget(TapeStatus(online=True, bot=True))
        self.mtpos = struct.pack("@l", 0)
        self.fail: dict[int, int] = {}  # request -> errno to raise

    def __call__(self, fd: int, request: int, arg: bytes) -> bytes:
        os.fstat(fd)  # the drive must hand over an open descriptor
        if request in self.fail:
            code = self.fail[request]
            raise OSError(code, os.strerror(code))
        if request == MTIOCGET:
            assert len(arg) == len(self.mtget)
            return self.mtget
        if request == MTIOCPOS:
            assert len(arg) == len(self.mtpos)
            return self.mtpos
        if request == MTIOCTOP:
            self.ops.append(struct.unpack("@hxxi", arg))
            return arg
        raise AssertionError(f"unexpected ioctl request {request:#x}")


@pytest.fixture
def fake_ioctl(monkeypatch: pytest.MonkeyPatch) -> RecordingIoctl:
    fake = RecordingIoctl()
    monkeypatch.setattr(linux_st, "fcntl", types.SimpleNamespace(ioctl=fake))
    return fake


@pytest.fixture
def drive(fake_ioctl: RecordingIoctl):
    d = LinuxStDrive("/dev/null", writable=True)
    yield d
    d.close()


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda d: d.space_records(3), (MtOp.MTFSR, 3)),
        (lambda d: d.space_records(-2), (MtOp.MTBSR, 2)),
        (lambda d: d.space_files(4), (MtOp.MTFSF, 4)),
        (lambda d: d.space_files(-1), (MtOp.MTBSF, 1)),
        (lambda d: d.write_filemarks(2), (MtOp.MTWEOF, 2)),
        (lambda d: d.write_filemarks(0), (MtOp.MTWEOF, 0)),
        (lambda d: d.rewind(), (MtOp.MTREW, 1)),
        (lambda d: d.seek_eod(), (MtOp.MTEOM, 1)),
        (lambda d: d.erase(), (MtOp.MTERASE, 1)),
        (lambda d: d.seek(123456), (MtOp.MTSEEK, 123456)),
        (lambda d: d.load(), (MtOp.MTLOAD, 1)),
        (lambda d: d.unload(), (MtOp.MTOFFL, 1)),
        (lambda d: d.set_block_size(512), (MtOp.MTSETBLK, 512)),
        (lambda d: d.set_block_size(0), (MtOp.MTSETBLK, 0)),
    ],
)
def test_each_method_issues_its_st_operation(drive, fake_ioctl, call, expected) -> None:
    call(drive)
    assert fake_ioctl.ops == [expected]


@pytest.mark.parametrize("call", [lambda d: d.space_records(0), lambda d: d.space_files(0)])
def test_spacing_zero_issues_no_operation(drive, fake_ioctl, call) -> None:
    call(drive)
    assert fake_ioctl.ops == []


@pytest.mark.parametrize(
    ("op", "count"),
    [
        (MtOp.MTSETDRVBUFFER, 0x10000002),
        (MtOp.MTMKPART, 1),
        (MtOp.MTFSS, 2),
        (99, 5),
        (MtOp.MTFSF, -3),
    ],
)
def test_mtop_passes_any_operation_through_unchanged(drive, fake_ioctl, op, count) -> None:
    drive.mtop(op, count)
    assert fake_ioctl.ops == [(op, count)]


@pytest.mark.parametrize(
    ("op", "count"),
    [(-1, 1), (2**15, 1), ("1", 1), (1.0, 1), (True, 1), (MtOp.MTFSF, 2**31), (MtOp.MTFSF, None)],
)
def test_mtop_refuses_malformed_operation_before_the_kernel(drive, fake_ioctl, op, count) -> None:
    with pytest.raises(InvalidArgument, match=r"^/dev/null: "):
        drive.mtop(op, count)
    assert fake_ioctl.ops == []


@pytest.mark.parametrize(
    "call",
    [
        lambda d: d.write_filemarks(-1),
        lambda d: d.seek(-1),
        lambda d: d.set_block_size(-512),
        lambda d: d.read(0),
    ],
)
def test_negative_counts_and_sizes_are_refused(drive, fake_ioctl, call) -> None:
    with pytest.raises(InvalidArgument):
        call(drive)
    assert fake_ioctl.ops == []


def test_tell_returns_the_mtiocpos_block(drive, fake_ioctl) -> None:
    fake_ioctl.mtpos = struct.pack("@l", 987654)
    assert drive.tell() == 987654


def test_status_is_the_unpacked_mtiocget(drive, fake_ioctl) -> None:
    wanted = TapeStatus(file_number=2, block_number=9, block_size=10240, eof=True, online=True)
    fake_ioctl.mtget = pack_mtget(wanted)
    assert drive.status() == wanted


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (errno.EIO, TapeIOError),
        (errno.ENOSPC, EndOfMedium),
        (errno.EROFS, WriteProtected),
        (errno.EACCES, WriteProtected),
        (errno.EBUSY, DriveBusy),
        (errno.ENOMEDIUM, NoMedium),
        (errno.ENOMEM, BufferTooSmall),
        (errno.EINVAL, InvalidArgument),
        (errno.ENOENT, NoSuchDevice),
        (errno.ENXIO, NoSuchDevice),
        (errno.ENODEV, NoSuchDevice),
        (errno.EPERM, TapeError),
    ],
)
def test_kernel_errno_becomes_matching_tape_error(drive, fake_ioctl, code, cls) -> None:
    fake_ioctl.fail[MTIOCTOP] = code
    with pytest.raises(TapeError) as info:
        drive.space_files(1)
    assert type(info.value) is cls
    assert info.value.errno == code
    assert str(info.value) == f"/dev/null: {os.strerror(code)}"


def test_failing_status_check_at_open_is_mapped_and_closes_fd(fake_ioctl) -> None:
    fake_ioctl.fail[MTIOCGET] = errno.EIO
    before = open_fd_count()
    with pytest.raises(TapeIOError) as info:
        LinuxStDrive("/dev/null")
    assert info.value.errno == errno.EIO
    assert open_fd_count() == before


def test_write_on_read_only_drive_keeps_the_kernel_errno(fake_ioctl) -> None:
    with LinuxStDrive("/dev/null", writable=False) as d:
        with pytest.raises(TapeError) as info:
            d.write(b"record")
    assert info.value.errno == errno.EBADF


def test_writable_drive_writes_whole_record(drive) -> None:
    assert drive.write(memoryview(b"x" * 10240)) == 10240


def test_close_releases_fd_once_and_later_use_fails(fake_ioctl) -> None:
    before = open_fd_count()
    d = LinuxStDrive("/dev/null")
    assert open_fd_count() == before + 1
    d.close()
    d.close()
    assert open_fd_count() == before
    with pytest.raises(TapeError) as info:
        d.rewind()
    assert info.value.errno == errno.EBADF
    assert fake_ioctl.ops == []
