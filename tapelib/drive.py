"""The one interface every tape drive offers.

A :class:`TapeDrive` moves whole records and filemarks and reports where it
stands, with the meanings of Linux st.  Loopback drives, real st drives and
remote drives all implement it, so the dump engine, ``pymt`` and the rmt
server never ask which kind they hold.
"""

from __future__ import annotations

import abc
import errno as _errno
from dataclasses import dataclass

from .errors import InvalidArgument, TapeError
from .mtio import (
    GMT_BOT,
    GMT_DR_OPEN,
    GMT_EOD,
    GMT_EOF,
    GMT_EOT,
    GMT_IM_REP_EN,
    GMT_ONLINE,
    GMT_WR_PROT,
    MtOp,
)


#: MTIOCTOP codes Linux st answers with ENOSYS (MTIOCPOS replaces MTTELL).
_ST_UNKNOWN_OPS = frozenset({MtOp.MTRESET, MtOp.MTRAS1, MtOp.MTRAS2, MtOp.MTRAS3, MtOp.MTTELL})


@dataclass(frozen=True)
class TapeStatus:
    """Where a drive stands and what it knows, as ``struct mtget`` says it.

    ``file_number`` and ``block_number`` count from BOT as Linux st does;
    -1 means unknown.  The flags are st's GMT_* bits, which st derives from
    its own state, not from the tape: ``bot`` is block 0 of file 0, ``eof``
    block 0 of any other file, ``eot`` a write that entered early warning,
    ``eod`` end of data reached (by MTEOM, a read, or a refused write).
    """

    file_number: int = 0
    block_number: int = 0
    block_size: int = 0
    density: int = 0
    bot: bool = False
    eof: bool = False
    eot: bool = False
    eod: bool = False
    write_protected: bool = False
    online: bool = False
    door_open: bool = False
    drive_type: int = 0x72
    residual: int = 0

    @property
    def gstat(self) -> int:
        """The ``mt_gstat`` word: GMT_* bits."""
        bits = GMT_IM_REP_EN
        for flag, bit in (
            (self.bot, GMT_BOT),
            (self.eof, GMT_EOF),
            (self.eot, GMT_EOT),
            (self.eod, GMT_EOD),
            (self.write_protected, GMT_WR_PROT),
            (self.online, GMT_ONLINE),
            (self.door_open, GMT_DR_OPEN),
        ):
            if flag:
                bits |= bit
        return bits


class TapeDrive(abc.ABC):
    """A tape drive opened by one process.

    Records are read and written whole.  ``read`` returns ``b""`` when it
    meets a filemark (the drive is then just past it, in the next file).
    Counts must be non-negative where the operation names its direction.
    Errors are :class:`~tapelib.errors.TapeError` subclasses carrying the
    errno Linux st gives.
    """

    #: A name for messages ("SHELF/nst0", "/dev/nst0", "host:/dev/nst0").
    name: str = "tape"

    # -- data -------------------------------------------------------------
    @abc.abstractmethod
    def read(self, size: int) -> bytes:
        """Read the next record (at most ``size`` bytes; a longer record is an
        error, :class:`~tapelib.errors.BufferTooSmall`).  ``b""`` at a filemark."""

    def readinto(self, buffer: bytearray | memoryview) -> int:
        """Read the next record into ``buffer`` (its length is the read size);
        returns the record's length, 0 at a filemark.  Drives that can fill a
        caller's buffer directly override this to save a copy, as ``dd``
        reusing one buffer does."""
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    @abc.abstractmethod
    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Write one record (or, in fixed-block mode, ``len(data) / block_size``
        records); returns the bytes written."""

    @abc.abstractmethod
    def write_filemarks(self, count: int = 1) -> None:
        """Write ``count`` filemarks at the current position."""

    # -- positioning ------------------------------------------------------
    @abc.abstractmethod
    def space_records(self, count: int) -> None:
        """Space over ``count`` records: forward if positive (fsr), back if
        negative (bsr).  Meeting a filemark stops with EIO, as st does."""

    @abc.abstractmethod
    def space_files(self, count: int) -> None:
        """Space over ``count`` filemarks: forward (fsf, landing just past the
        last one) or back (bsf, landing just before it)."""

    @abc.abstractmethod
    def rewind(self) -> None:
        """Go to BOT."""

    @abc.abstractmethod
    def seek_eod(self) -> None:
        """Go to end of recorded data (MTEOM), ready to append."""

    @abc.abstractmethod
    def erase(self) -> None:
        """Erase from the current position to the end of the medium."""

    @abc.abstractmethod
    def tell(self) -> int:
        """The logical block address (records and filemarks from BOT)."""

    @abc.abstractmethod
    def seek(self, block: int) -> None:
        """Go to logical block address ``block`` (see :meth:`tell`)."""

    # -- medium -----------------------------------------------------------
    @abc.abstractmethod
    def load(self) -> None:
        """Load the medium and bring the drive online at BOT."""

    @abc.abstractmethod
    def unload(self) -> None:
        """Rewind and take the medium offline (eject)."""

    @abc.abstractmethod
    def set_block_size(self, size: int) -> None:
        """0 for variable-length records, else the fixed record size."""

    @abc.abstractmethod
    def status(self) -> TapeStatus:
        """Where the drive stands (MTIOCGET)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the drive.  After writing, a filemark is written first; a
        rewinding device then rewinds.  Idempotent."""

    # -- derived ----------------------------------------------------------
    def space_files_then_back(self, count: int) -> None:
        """fsfm (positive ``count``) and bsfm (negative): space over ``abs(count)``
        filemarks, then back over the last one, as mt-st's fsfm/bsfm do."""
        if count > 0:
            self.space_files(count)
            self.space_files(-1)
        elif count < 0:
            self.space_files(count)
            self.space_files(1)

    def mtop(self, op: int, count: int = 1) -> None:
        """Carry out one ``struct mtop`` operation (MTIOCTOP, the rmt 'I' command).

        Operations st does not know (MTTELL, MTRESET, MTRAS*, unknown codes)
        fail with ENOSYS as on st; known ones this drive cannot do with EINVAL.
        """
        try:
            code = MtOp(op)
        except ValueError:
            code = None
        if code is None or code in _ST_UNKNOWN_OPS:
            raise TapeError(f"{self.name}: tape operation {op} is not supported by st (ENOSYS)",
                            errno=_errno.ENOSYS)
        if count < 0 and code not in (MtOp.MTSETBLK, MtOp.MTSEEK):
            raise InvalidArgument(f"{self.name}: negative count {count}")
        handlers = {
            MtOp.MTFSF: lambda: self.space_files(count),
            MtOp.MTBSF: lambda: self.space_files(-count),
            MtOp.MTFSR: lambda: self.space_records(count),
            MtOp.MTBSR: lambda: self.space_records(-count),
            MtOp.MTFSFM: lambda: self.space_files_then_back(count),
            MtOp.MTBSFM: lambda: self.space_files_then_back(-count),
            MtOp.MTWEOF: lambda: self.write_filemarks(count),
            MtOp.MTWEOFI: lambda: self.write_filemarks(count),
            MtOp.MTREW: self.rewind,
            MtOp.MTOFFL: self.unload,
            MtOp.MTUNLOAD: self.unload,
            MtOp.MTLOAD: self.load,
            MtOp.MTEOM: self.seek_eod,
            MtOp.MTERASE: self.erase,
            MtOp.MTSETBLK: lambda: self.set_block_size(count),
            MtOp.MTSEEK: lambda: self.seek(count),
            MtOp.MTNOP: lambda: None,
            MtOp.MTRETEN: lambda: None,
            MtOp.MTLOCK: lambda: None,
            MtOp.MTUNLOCK: lambda: None,
            MtOp.MTSETDENSITY: lambda: None,
            MtOp.MTCOMPRESSION: lambda: None,
        }
        handler = handlers.get(code)
        if handler is None:
            raise InvalidArgument(f"{self.name}: unsupported tape operation {code.name}")
        handler()

    def __enter__(self) -> "TapeDrive":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MtopDrive(TapeDrive):
    """A drive whose positioning and medium operations are ``struct mtop``
    requests carried out elsewhere (the kernel's st driver, a remote rmt
    server): each method is one :meth:`mtop` call, which subclasses send."""

    @abc.abstractmethod
    def mtop(self, op: int, count: int = 1) -> None:
        """Send one MTIOCTOP request."""

    def _non_negative(self, what: str, value: int) -> None:
        if value < 0:
            raise InvalidArgument(f"{self.name}: negative {what} {value}")

    def _counted(self, forward: MtOp, backward: MtOp, count: int) -> None:
        if count > 0:
            self.mtop(forward, count)
        elif count < 0:
            self.mtop(backward, -count)

    def write_filemarks(self, count: int = 1) -> None:
        self._non_negative("filemark count", count)
        self.mtop(MtOp.MTWEOF, count)

    def space_records(self, count: int) -> None:
        self._counted(MtOp.MTFSR, MtOp.MTBSR, count)

    def space_files(self, count: int) -> None:
        self._counted(MtOp.MTFSF, MtOp.MTBSF, count)

    def rewind(self) -> None:
        self.mtop(MtOp.MTREW, 1)

    def seek_eod(self) -> None:
        self.mtop(MtOp.MTEOM, 1)

    def erase(self) -> None:
        # A non-zero count asks st for a long erase, to the end of the medium.
        self.mtop(MtOp.MTERASE, 1)

    def seek(self, block: int) -> None:
        self._non_negative("block address", block)
        self.mtop(MtOp.MTSEEK, block)

    def load(self) -> None:
        self.mtop(MtOp.MTLOAD, 1)

    def unload(self) -> None:
        self.mtop(MtOp.MTOFFL, 1)

    def set_block_size(self, size: int) -> None:
        self._non_negative("block size", size)
        self.mtop(MtOp.MTSETBLK, size)
