"""Shelf drives with NDMP's tape semantics.

NDMP's TAPE service is not Linux st: a read that meets a filemark answers
EOF_ERR and *stays in front of it* (FSF steps over it), end of data is
EOM_ERR, spacing past the end stops there with a residual count instead of
an error, and nothing ever writes a filemark implicitly (not on close, not
before a rewind).  So this module drives the loopback cartridge itself,
through the public :class:`~tapelib.Cartridge` block API, and uses the
shelf's :class:`~tapelib.LoopbackDrive` only for what the shelf owns: the
drive lock, which cartridge is loaded, and the place the head is left for
the next user (synced back at close, so ``pymt status`` sees it).

:class:`ServedDrives` is the table of device names this server offers:
``SHELF/nst0`` (non-rewinding) and ``SHELF/st0`` (rewinds at close) for
every drive of every ``--shelf``, as our other tools name them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from tapelib import DriveBusy, EndOfMedium, LoopbackDrive, NoSuchDevice, Shelf, TapeError, WriteProtected
from tapelib.cartridge import BlockKind, Cartridge

from .errors import NdmpError
from .protocol import Error

_log = logging.getLogger(__name__)

#: The largest record TAPE_READ/TAPE_WRITE and the mover accept (ndmjob's limit).
MAX_RECORD_SIZE = 256 * 1024
#: AWSTAPE block header: what a record or filemark costs beyond its data.
_BLOCK_OVERHEAD = 6


@dataclass(frozen=True)
class DriveName:
    """One device name this server answers TAPE_OPEN for."""

    name: str
    shelf: Shelf
    index: int
    rewind: bool


class ServedDrives:
    """The device names of the shelves this server serves."""

    def __init__(self, shelves: list[Path]) -> None:
        self.shelves: list[Shelf] = []
        self._names: dict[str, DriveName] = {}
        for path in shelves:
            try:
                shelf = Shelf(Path(os.path.abspath(path)))
            except TapeError as exc:
                raise NdmpError(exc.message, Error.NO_DEVICE_ERR) from None
            self.shelves.append(shelf)
            for i in range(shelf.drive_count):
                for rewind in (False, True):
                    name = str(shelf.device_path(i, rewind))
                    self._names[name] = DriveName(name, shelf, i, rewind)

    def lookup(self, name: str) -> DriveName | None:
        """The drive ``name`` names (as given, or as an absolute or real path)."""
        for candidate in (name, os.path.abspath(name), os.path.realpath(name)):
            found = self._names.get(candidate)
            if found is not None:
                return found
        return None

    def drives(self) -> list[tuple[DriveName, DriveName]]:
        """Each drive's (non-rewinding, rewinding) names."""
        out = []
        for shelf in self.shelves:
            for i in range(shelf.drive_count):
                out.append((self._names[str(shelf.device_path(i, False))],
                            self._names[str(shelf.device_path(i, True))]))
        return out


@dataclass(frozen=True)
class TapeState:
    """What TAPE_GET_STATE reports; ``blockno`` is ``None`` when unknown."""

    file_num: int
    blockno: int | None
    write_protected: bool
    rewind: bool
    total_space: int
    space_remain: int


class NdmpTape:
    """An open drive with NDMP's semantics.  Errors are :class:`NdmpError`
    with the code the reply gives."""

    def __init__(self, device: DriveName, writable: bool) -> None:
        self.device = device
        self.writable = writable
        try:
            self._drive: LoopbackDrive = device.shelf.open_drive(device.index, rewind=False, writable=writable)
        except DriveBusy as exc:
            raise NdmpError(exc.message, Error.DEVICE_BUSY_ERR) from None
        except WriteProtected as exc:
            raise NdmpError(exc.message, Error.WRITE_PROTECT_ERR) from None
        except NoSuchDevice as exc:
            raise NdmpError(exc.message, Error.NO_DEVICE_ERR) from None
        except TapeError as exc:
            raise NdmpError(exc.message, Error.IO_ERR) from None
        cart = self._drive.cartridge
        position = self._drive.position
        if cart is None or not position.online:
            self._drive.close()
            what = "no cartridge" if cart is None else f"cartridge {cart.barcode} is unloaded"
            raise NdmpError(f"{device.name}: {what}", Error.NO_TAPE_LOADED_ERR)
        self._cart: Cartridge = cart
        self._online = True
        self._closed = False
        self._offset = position.offset
        self._file, self._block = self._counters_at(position.offset, position.file_number,
                                                    position.block_number)
        #: After a read met a filemark, TAPE_GET_STATE reports the block as unknown.
        self._block_unknown = False

    # -- helpers ------------------------------------------------------------
    def _counters_at(self, offset: int, file_hint: int, block_hint: int) -> tuple[int, int]:
        """File and block numbers at ``offset``: st's, when it knows them, else counted from BOT."""
        if file_hint >= 0 and block_hint >= 0:
            return file_hint, block_hint
        pos = files = blocks = 0
        while pos < offset:
            block = self._cart.block_at(pos)
            if block.kind is BlockKind.EOD:
                break
            pos = block.end
            if block.kind is BlockKind.TAPEMARK:
                files, blocks = files + 1, 0
            else:
                blocks += 1
        return files, blocks

    def _ready(self) -> Cartridge:
        if self._closed:
            raise NdmpError(f"{self.device.name}: not open", Error.DEV_NOT_OPEN_ERR)
        if not self._online:
            raise NdmpError(f"{self.device.name}: the cartridge was unloaded", Error.NO_TAPE_LOADED_ERR)
        return self._cart

    def _check_writable(self, cart: Cartridge) -> None:
        if not self.writable:
            raise NdmpError(f"{self.device.name}: opened read-only", Error.PERMISSION_ERR)
        if cart.write_protected:
            raise NdmpError(f"{self.device.name}: cartridge {cart.barcode} is write-protected",
                            Error.WRITE_PROTECT_ERR)

    def _moved(self) -> None:
        self._block_unknown = False

    # -- data ----------------------------------------------------------------
    def read(self, count: int) -> bytes:
        """The next record, cut to ``count`` bytes (the rest of it is passed
        over).  At a filemark EOF_ERR, staying in front of it; at end of data
        EOM_ERR."""
        cart = self._ready()
        block = cart.block_at(self._offset)
        if block.kind is BlockKind.EOD:
            raise NdmpError(f"{self.device.name}: end of data", Error.EOM_ERR)
        if block.kind is BlockKind.TAPEMARK:
            self._block_unknown = True
            raise NdmpError(f"{self.device.name}: filemark", Error.EOF_ERR)
        try:
            data, block = cart.read_record(self._offset, max(block.length, 1))
        except TapeError as exc:
            raise NdmpError(exc.message, Error.IO_ERR) from None
        self._offset = block.end
        self._block += 1
        self._moved()
        return (data or b"")[:count]

    def in_early_warning(self) -> bool:
        return self._offset >= self._cart.early_warning_at

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Write one record here; what followed is gone.  In the early-warning
        zone, or with no room, EOM_ERR and nothing is written."""
        cart = self._ready()
        self._check_writable(cart)
        if self.in_early_warning():
            raise NdmpError(f"{self.device.name}: early warning: end of medium is near", Error.EOM_ERR)
        try:
            block = cart.write_record(self._offset, data)
        except EndOfMedium as exc:
            raise NdmpError(exc.message, Error.EOM_ERR) from None
        except TapeError as exc:
            raise NdmpError(exc.message, Error.IO_ERR) from None
        self._offset = block.end
        self._block += 1
        self._moved()
        return len(data)

    def write_records(self, records: list[memoryview]) -> int:
        """Write several records in one go (the mover's path); returns how
        many were written before the early-warning zone (the rest are not)."""
        cart = self._ready()
        self._check_writable(cart)
        room = cart.early_warning_at - self._offset
        fit = 0
        for record in records:
            room -= len(record) + _BLOCK_OVERHEAD * (1 + len(record) // 65535)
            if room < 0:
                break
            fit += 1
        if fit == 0:
            return 0
        try:
            self._offset = cart.write_records(self._offset, records[:fit])
        except EndOfMedium:
            return 0
        except TapeError as exc:
            raise NdmpError(exc.message, Error.IO_ERR) from None
        self._block += fit
        self._moved()
        return fit

    def write_filemarks(self, count: int) -> int:
        """Write ``count`` filemarks (allowed in the early-warning zone);
        returns how many did not fit."""
        cart = self._ready()
        self._check_writable(cart)
        if count == 0:
            return 0
        room = max(0, (cart.capacity - self._offset) // _BLOCK_OVERHEAD)
        done = min(count, room)
        if done:
            try:
                self._offset = cart.write_tapemarks(self._offset, done)
            except TapeError as exc:
                raise NdmpError(exc.message, Error.IO_ERR) from None
            self._file += done
            self._block = 0
        self._moved()
        if done < count:
            raise NdmpError(f"{self.device.name}: end of medium after {done} of {count} filemarks",
                            Error.EOM_ERR)
        return 0

    # -- positioning ------------------------------------------------------------
    def forward_files(self, count: int) -> int:
        """FSF: cross ``count`` filemarks, stopping just past the last; at end
        of data stop there.  Returns the residual count."""
        cart = self._ready()
        crossed = 0
        while crossed < count:
            block = cart.block_at(self._offset)
            if block.kind is BlockKind.EOD:
                break
            self._offset = block.end
            if block.kind is BlockKind.TAPEMARK:
                crossed += 1
                self._file += 1
                self._block = 0
            else:
                self._block += 1
        self._moved()
        return count - crossed

    def back_files(self, count: int) -> int:
        """BSF: cross ``count`` filemarks backwards, stopping on the BOT side
        of the last; at BOT stop there.  Returns the residual count."""
        cart = self._ready()
        crossed = 0
        while crossed < count:
            block = cart.block_before(self._offset)
            if block is None:
                break
            self._offset = block.start
            if block.kind is BlockKind.TAPEMARK:
                crossed += 1
                self._file -= 1
        self._block = self._records_back_to_filemark(cart)
        self._moved()
        return count - crossed

    def _records_back_to_filemark(self, cart: Cartridge) -> int:
        pos, records = self._offset, 0
        while (block := cart.block_before(pos)) is not None and block.kind is BlockKind.RECORD:
            pos = block.start
            records += 1
        return records

    def forward_records(self, count: int) -> int:
        """FSR: skip records, stopping in front of a filemark or at end of data."""
        cart = self._ready()
        done = 0
        while done < count:
            block = cart.block_at(self._offset)
            if block.kind is not BlockKind.RECORD:
                break
            self._offset = block.end
            done += 1
        self._block += done
        self._moved()
        return count - done

    def back_records(self, count: int) -> int:
        """BSR: skip records backwards, stopping just after a filemark or at BOT."""
        cart = self._ready()
        done = 0
        while done < count:
            block = cart.block_before(self._offset)
            if block is None or block.kind is not BlockKind.RECORD:
                break
            self._offset = block.start
            done += 1
        self._block -= done
        self._moved()
        return count - done

    def rewind(self) -> None:
        self._ready()
        self._offset = self._file = self._block = 0
        self._moved()

    def unload(self) -> None:
        """Rewind and take the cartridge offline (the shelf keeps it in the drive)."""
        self.rewind()
        self._online = False

    def test_unit_ready(self) -> None:
        self._ready()

    @property
    def offset(self) -> int:
        """Byte offset of the head in the cartridge (for the mover's window)."""
        return self._offset

    def state(self) -> TapeState:
        cart = self._ready()
        return TapeState(
            file_num=self._file,
            blockno=None if self._block_unknown else self._block,
            write_protected=cart.write_protected,
            rewind=self.device.rewind,
            total_space=cart.capacity,
            space_remain=max(0, cart.capacity - self._offset),
        )

    # -- closing --------------------------------------------------------------
    def close(self) -> None:
        """Release the drive, leaving the shelf's record of the head where it
        is (at BOT for a rewinding device, offline after OFF).  Writes no
        filemark.  Idempotent."""
        if self._closed:
            return
        self._closed = True
        drive = self._drive
        try:
            if self.device.rewind:
                self._offset = self._file = self._block = 0
            if not self._online:
                drive.unload()
            else:
                # Bring the shelf drive to the same place the st way, so its
                # counters are exact for the next user.
                drive.rewind()
                if self._file:
                    drive.space_files(self._file)
                if self._block:
                    drive.space_records(self._block)
        except TapeError as exc:
            _log.warning("%s: could not record the head position at close: %s", self.device.name, exc.message)
        finally:
            try:
                drive.close()
            except TapeError as exc:
                _log.warning("%s: %s", self.device.name, exc.message)

    @property
    def closed(self) -> bool:
        return self._closed
