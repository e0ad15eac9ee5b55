"""A real Linux SCSI tape drive (``/dev/nst0``, ``/dev/st0``) through the st driver.

:class:`LinuxStDrive` is a thin :class:`~tapelib.drive.TapeDrive` over the
kernel: records move with ``read``/``write`` on the device, everything else is
an MTIOCTOP, MTIOCGET or MTIOCPOS ioctl.  The kernel already has the semantics
every other drive in tapelib imitates, so this module adds none of its own: it
packs the structures, passes the operation through, and turns each ``OSError``
into the :class:`~tapelib.errors.TapeError` subclass for the same errno.

This module also owns the native byte layout of ``struct mtop``, ``struct
mtget`` and ``struct mtpos``, and derives the ioctl request numbers from their
sizes, so the rmt server can send a native ``struct mtget`` (the 'S' command)
without a tape drive of its own: see :func:`pack_mtget`.

Layouts use the host's C alignment (``struct`` "@" formats), which is what the
kernel expects; the request numbers use the asm-generic ``_IOC`` encoding
(x86, x86-64, arm, arm64, riscv, s390), not the one of alpha, mips, powerpc or
sparc.

Not tested on real hardware: this machine has no tape drive.  The tests cover
the packing and unpacking, the request numbers (against the C header), which
operation each method issues, the errno-to-exception mapping, and the refusal
to treat a regular file or a non-tape device as a drive.
"""

from __future__ import annotations

import errno as _errno
import fcntl
import os
import struct
from typing import NamedTuple

from .drive import MtopDrive, TapeStatus
from .errors import InvalidArgument, NoSuchDevice, TapeError, error_for_errno
from .mtio import (
    GMT_BOT,
    GMT_DR_OPEN,
    GMT_EOD,
    GMT_EOF,
    GMT_EOT,
    GMT_ONLINE,
    GMT_WR_PROT,
)

__all__ = [
    "MTIOCGET",
    "MTIOCPOS",
    "MTIOCTOP",
    "LinuxStDrive",
    "MtGet",
    "mtget_fields",
    "pack_mtget",
    "pack_mtop",
    "unpack_mtget",
]

# -- structure layouts (<linux/mtio.h>) -------------------------------------

# struct mtop { short mt_op; int mt_count; }: two bytes of padding after mt_op.
_MTOP = struct.Struct("@hi")
# struct mtget { long mt_type, mt_resid, mt_dsreg, mt_gstat, mt_erreg;
#                __kernel_daddr_t mt_fileno, mt_blkno; }  (__kernel_daddr_t is int).
# mt_dsreg and mt_gstat are bit words whose top bit may be set (GMT_EOF,
# density 0x80 and up), so they are packed unsigned: same size, same bytes.
_MTGET = struct.Struct("@llLLlii")
# struct mtpos { long mt_blkno; }
_MTPOS = struct.Struct("@l")

# mt_dsreg fields, as <linux/mtio.h> names them.
_MT_ST_BLKSIZE_SHIFT = 0
_MT_ST_BLKSIZE_MASK = 0xFFFFFF
_MT_ST_DENSITY_SHIFT = 24
_MT_ST_DENSITY_MASK = 0xFF000000

_SHRT_MAX = 2**15 - 1
_INT_MIN = -(2**31)
_INT_MAX = 2**31 - 1

# -- ioctl request numbers (asm-generic <asm/ioctl.h>) -----------------------

_IOC_NRSHIFT = 0
_IOC_TYPESHIFT = 8
_IOC_SIZESHIFT = 16
_IOC_DIRSHIFT = 30
_IOC_SIZEBITS = 14
_IOC_WRITE = 1
_IOC_READ = 2


def _IOC(direction: int, type_: str, nr: int, size: int) -> int:
    if not 0 <= size < 1 << _IOC_SIZEBITS:
        raise ValueError(f"ioctl argument size {size} does not fit in _IOC")
    return (
        (direction << _IOC_DIRSHIFT)
        | (ord(type_) << _IOC_TYPESHIFT)
        | (nr << _IOC_NRSHIFT)
        | (size << _IOC_SIZESHIFT)
    )


def _IOW(type_: str, nr: int, size: int) -> int:
    return _IOC(_IOC_WRITE, type_, nr, size)


def _IOR(type_: str, nr: int, size: int) -> int:
    return _IOC(_IOC_READ, type_, nr, size)


#: Perform a tape operation (``struct mtop``).
MTIOCTOP: int = _IOW("m", 1, _MTOP.size)
#: Get tape status (``struct mtget``).
MTIOCGET: int = _IOR("m", 2, _MTGET.size)
#: Get tape position (``struct mtpos``).
MTIOCPOS: int = _IOR("m", 3, _MTPOS.size)

# TapeStatus booleans and the mt_gstat bit each one is.
_GSTAT_FLAGS: tuple[tuple[str, int], ...] = (
    ("bot", GMT_BOT),
    ("eof", GMT_EOF),
    ("eot", GMT_EOT),
    ("eod", GMT_EOD),
    ("write_protected", GMT_WR_PROT),
    ("online", GMT_ONLINE),
    ("door_open", GMT_DR_OPEN),
)


# -- packing -----------------------------------------------------------------


def pack_mtop(op: int, count: int) -> bytes:
    """A native ``struct mtop`` for MTIOCTOP.

    Raises :class:`~tapelib.errors.InvalidArgument` when ``op`` is negative or
    does not fit a C short, or ``count`` a C int, rather than letting the
    kernel see a truncated value.
    """
    if not 0 <= op <= _SHRT_MAX:
        raise InvalidArgument(f"tape operation {op} does not fit struct mtop")
    if not _INT_MAX >= count >= _INT_MIN:
        raise InvalidArgument(f"tape operation count {count} does not fit struct mtop")
    return _MTOP.pack(op, count)


def unpack_mtget(data: bytes | bytearray | memoryview) -> TapeStatus:
    """The :class:`TapeStatus` a native ``struct mtget`` describes.

    Block size and density come out of ``mt_dsreg`` as st packs them; the
    ``mt_gstat`` bits TapeStatus has no field for (SM, the old densities,
    CLN, IM_REP_EN) and ``mt_erreg`` are dropped.
    """
    if len(data) != _MTGET.size:
        raise InvalidArgument(
            f"struct mtget is {_MTGET.size} bytes here, not {len(data)}"
        )
    mt_type, mt_resid, mt_dsreg, mt_gstat, _mt_erreg, mt_fileno, mt_blkno = (
        _MTGET.unpack(data)
    )
    flags = {name: bool(mt_gstat & bit) for name, bit in _GSTAT_FLAGS}
    return TapeStatus(
        file_number=mt_fileno,
        block_number=mt_blkno,
        block_size=(mt_dsreg & _MT_ST_BLKSIZE_MASK) >> _MT_ST_BLKSIZE_SHIFT,
        density=(mt_dsreg & _MT_ST_DENSITY_MASK) >> _MT_ST_DENSITY_SHIFT,
        drive_type=mt_type,
        residual=mt_resid,
        **flags,
    )


class MtGet(NamedTuple):
    """The fields of ``struct mtget``, in order, as MTIOCGET fills them in."""

    mt_type: int
    mt_resid: int
    mt_dsreg: int
    mt_gstat: int
    mt_erreg: int
    mt_fileno: int
    mt_blkno: int


def mtget_fields(status: TapeStatus) -> MtGet:
    """The ``struct mtget`` fields that say what ``status`` says (``mt_erreg``
    is 0, ``mt_gstat`` is :attr:`TapeStatus.gstat`): what :func:`pack_mtget`
    packs, and what the rmt server's one-field status commands report.

    A block size above 0xffffff or a density above 0xff raises
    :class:`~tapelib.errors.InvalidArgument` rather than being truncated.
    """
    if not 0 <= status.block_size <= _MT_ST_BLKSIZE_MASK >> _MT_ST_BLKSIZE_SHIFT:
        raise InvalidArgument(f"block size {status.block_size} does not fit mt_dsreg")
    if not 0 <= status.density <= _MT_ST_DENSITY_MASK >> _MT_ST_DENSITY_SHIFT:
        raise InvalidArgument(f"density {status.density:#x} does not fit mt_dsreg")
    dsreg = (status.density << _MT_ST_DENSITY_SHIFT) | (
        status.block_size << _MT_ST_BLKSIZE_SHIFT
    )
    return MtGet(status.drive_type, status.residual, dsreg, status.gstat, 0,
                 status.file_number, status.block_number)


def pack_mtget(status: TapeStatus) -> bytes:
    """A native ``struct mtget`` saying what ``status`` says, as MTIOCGET would
    fill it in: the reply body of the rmt 'S' command.

    ``mt_erreg`` is 0 and ``mt_gstat`` is :attr:`TapeStatus.gstat`.  A field
    too wide for its place in the structure (a block size above 0xffffff, a
    density above 0xff, a number beyond a C int or long) raises
    :class:`~tapelib.errors.InvalidArgument` rather than being truncated.
    """
    try:
        return _MTGET.pack(*mtget_fields(status))
    except struct.error as exc:
        raise InvalidArgument(f"tape status does not fit struct mtget: {exc}") from None


# -- errors ------------------------------------------------------------------

def _tape_error(name: str, exc: OSError) -> TapeError:
    """The TapeError for a failed system call on drive ``name``, same errno."""
    code = exc.errno if exc.errno is not None else _errno.EIO
    return error_for_errno(code, f"{name}: {os.strerror(code)}")


# -- the drive ---------------------------------------------------------------


class LinuxStDrive(MtopDrive):
    """A tape drive device of the Linux st driver, opened by this process.

    ``writable`` opens it read-write (a write-protected cartridge then fails
    the open with :class:`~tapelib.errors.WriteProtected`, as st does);
    otherwise read-only.  Opening anything that does not answer MTIOCGET
    fails with :class:`~tapelib.errors.NoSuchDevice` ("PATH: not a tape
    device"), so a typo cannot turn a dump into a regular file.

    Closing is left to the kernel: after a write, st writes the filemark, and
    a rewinding device (``/dev/st0``) rewinds.
    """

    def __init__(self, path: str | os.PathLike[str], writable: bool = False) -> None:
        self.name = os.fsdecode(path)
        self.writable = writable
        self._fd = -1
        try:
            fd = os.open(path, os.O_RDWR if writable else os.O_RDONLY)
        except OSError as exc:
            raise _tape_error(self.name, exc) from exc
        try:
            fcntl.ioctl(fd, MTIOCGET, bytes(_MTGET.size))
        except OSError as exc:
            os.close(fd)
            if exc.errno in (_errno.ENOTTY, _errno.EINVAL):
                raise NoSuchDevice(
                    f"{self.name}: not a tape device", errno=_errno.ENOTTY
                ) from exc
            raise _tape_error(self.name, exc) from exc
        self._fd = fd

    # -- plumbing ---------------------------------------------------------
    def _open_fd(self) -> int:
        if self._fd < 0:
            raise TapeError(f"{self.name}: drive is closed", errno=_errno.EBADF)
        return self._fd

    def _ioctl(self, request: int, arg: bytes) -> bytes:
        fd = self._open_fd()
        try:
            return fcntl.ioctl(fd, request, arg)
        except OSError as exc:
            raise _tape_error(self.name, exc) from exc

    def mtop(self, op: int, count: int = 1) -> None:
        """Issue MTIOCTOP with ``op`` and ``count`` unchanged, so every operation
        st knows (MTSETDRVBUFFER, MTMKPART, ...) reaches it, and st alone
        decides what a count means."""
        for what, value in (("operation", op), ("count", count)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidArgument(f"{self.name}: tape {what} {value!r} is not an integer")
        try:
            request = pack_mtop(op, count)
        except InvalidArgument as exc:
            raise InvalidArgument(f"{self.name}: {exc.message}") from None
        self._ioctl(MTIOCTOP, request)

    # -- data -------------------------------------------------------------
    def read(self, size: int) -> bytes:
        # size 0 would read b"" and look like a filemark.
        if size <= 0:
            raise InvalidArgument(f"{self.name}: read size must be positive, not {size}")
        fd = self._open_fd()
        try:
            return os.read(fd, size)
        except OSError as exc:
            raise _tape_error(self.name, exc) from exc

    def write(self, data: bytes | bytearray | memoryview) -> int:
        fd = self._open_fd()
        try:
            return os.write(fd, data)
        except OSError as exc:
            raise _tape_error(self.name, exc) from exc

    # -- positioning ------------------------------------------------------
    def tell(self) -> int:
        (block,) = _MTPOS.unpack(self._ioctl(MTIOCPOS, bytes(_MTPOS.size)))
        return block

    # -- medium -----------------------------------------------------------
    def status(self) -> TapeStatus:
        return unpack_mtget(self._ioctl(MTIOCGET, bytes(_MTGET.size)))

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd < 0:
            return
        try:
            os.close(fd)
        except OSError as exc:
            raise _tape_error(self.name, exc) from exc

    def __repr__(self) -> str:
        if self._fd < 0:
            state = "closed"
        else:
            state = "read-write" if self.writable else "read-only"
        return f"<LinuxStDrive {self.name} {state}>"
