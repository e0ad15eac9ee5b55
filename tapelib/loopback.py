"""A drive that plays a loopback cartridge the way Linux st plays a tape.

:class:`LoopbackDrive` keeps the head position (byte offset, file number,
block number, logical block address) and the small state machine st keeps
around filemarks, end of data and early warning.  It does not know about
shelves: whoever opens it hands in a :class:`Position` to start from and gets
the final one back through ``on_close`` (that is how a non-rewinding device
keeps its place between processes).
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, replace
from typing import Callable

from .cartridge import BlockKind, Cartridge
from .drive import TapeDrive, TapeStatus
from .errors import (
    BufferTooSmall,
    EndOfMedium,
    InvalidArgument,
    NoMedium,
    TapeIOError,
)

MAX_BLOCK_SIZE = 16 * 1024 * 1024


class EarlyWarning(enum.IntEnum):
    """st's end-of-medium states for writing (ST_EOM_OK / ST_EOM_ERROR)."""

    NONE = 0
    REACHED = 1   # the write that entered the zone succeeded
    REPORTED = 2  # the next write was refused with ENOSPC


@dataclass(frozen=True)
class Position:
    """Where the head is, and what st remembers about how it got there."""

    offset: int = 0
    file_number: int = 0
    block_number: int = 0
    lba: int = 0
    block_known: bool = True
    eof: bool = False
    wrote: bool = False
    early_warning: int = EarlyWarning.NONE
    block_size: int = 0
    online: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Position":
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**fields)


class LoopbackDrive(TapeDrive):
    """A drive holding one :class:`Cartridge` (or none)."""

    def __init__(self, name: str, cartridge: Cartridge | None, position: Position | None = None,
                 rewind_on_close: bool = False,
                 on_close: Callable[[Position], None] | None = None) -> None:
        self.name = name
        self._cart = cartridge
        self._pos = position or Position()
        self._rewind_on_close = rewind_on_close
        self._on_close = on_close
        self._closed = False
        if cartridge is not None and self._pos.offset > cartridge.end:
            # The cartridge lost data since (a torn write was cut off): stand at EOD.
            self._pos = Position(block_size=self._pos.block_size)
            self._walk_forward_to(cartridge.end)

    # -- helpers --------------------------------------------------------------
    @property
    def position(self) -> Position:
        return self._pos

    @property
    def cartridge(self) -> Cartridge | None:
        return self._cart

    def _medium(self) -> Cartridge:
        if self._closed:
            raise InvalidArgument(f"{self.name}: drive is closed", errno=9)
        if self._cart is None:
            raise NoMedium(f"{self.name}: no cartridge loaded")
        if not self._pos.online:
            raise NoMedium(f"{self.name}: drive is offline (load the cartridge first)")
        return self._cart

    def _flush_filemark(self) -> None:
        """st writes a filemark before it repositions or closes after writing."""
        if self._pos.wrote:
            self.write_filemarks(1)

    def _forward(self, count: int, stop_at_tapemark: bool) -> int:
        """Move forward over ``count`` blocks; with ``stop_at_tapemark`` a
        tapemark is crossed and ends the move early.  Returns blocks moved."""
        cart = self._medium()
        pos = self._pos
        moved = 0
        while moved < count:
            block = cart.block_at(pos.offset)
            if block.kind is BlockKind.EOD:
                self._pos = replace(pos, eof=False)
                raise TapeIOError(f"{self.name}: end of data reached")
            if block.kind is BlockKind.TAPEMARK:
                pos = replace(pos, offset=block.end, file_number=pos.file_number + 1,
                              block_number=0, block_known=True, lba=pos.lba + 1, eof=True)
                moved += 1
                if stop_at_tapemark:
                    self._pos = pos
                    raise TapeIOError(f"{self.name}: filemark reached")
                continue
            pos = replace(pos, offset=block.end, block_number=pos.block_number + 1,
                          lba=pos.lba + 1, eof=False)
            moved += 1
        self._pos = pos
        return moved

    def _walk_forward_to(self, offset: int) -> None:
        """From BOT (or wherever we stand), count blocks up to byte ``offset``."""
        cart = self._medium()
        pos = self._pos
        while pos.offset < offset:
            block = cart.block_at(pos.offset)
            if block.kind is BlockKind.EOD:
                break
            if block.kind is BlockKind.TAPEMARK:
                pos = replace(pos, offset=block.end, file_number=pos.file_number + 1,
                              block_number=0, block_known=True, lba=pos.lba + 1)
            else:
                pos = replace(pos, offset=block.end, block_number=pos.block_number + 1, lba=pos.lba + 1)
        self._pos = replace(pos, eof=False)

    # -- data -------------------------------------------------------------------
    def read(self, size: int) -> bytes:
        cart = self._medium()
        if size < 0:
            raise InvalidArgument(f"{self.name}: negative read size {size}")
        self._flush_filemark()
        pos = self._pos
        if pos.block_size:
            return self._read_fixed(cart, size)
        if pos.offset >= cart.end:
            raise TapeIOError(f"{self.name}: read past end of data")
        try:
            data, block = cart.read_record(pos.offset, size)
        except BufferTooSmall:
            block = cart.block_at(pos.offset)
            self._pos = replace(pos, offset=block.end, block_number=pos.block_number + 1,
                                lba=pos.lba + 1, eof=False)
            raise
        if block.kind is BlockKind.TAPEMARK:
            self._pos = replace(pos, offset=block.end, file_number=pos.file_number + 1,
                                block_number=0, block_known=True, lba=pos.lba + 1, eof=True)
            return b""
        self._pos = replace(pos, offset=block.end, block_number=pos.block_number + 1,
                            lba=pos.lba + 1, eof=False)
        return data

    def _read_fixed(self, cart: Cartridge, size: int) -> bytes:
        bs = self._pos.block_size
        if size % bs:
            raise InvalidArgument(f"{self.name}: read of {size} bytes is not a multiple of the block size {bs}")
        out = bytearray()
        while len(out) < size:
            pos = self._pos
            block = cart.block_at(pos.offset)
            if block.kind is BlockKind.EOD:
                if out:
                    break
                raise TapeIOError(f"{self.name}: read past end of data")
            if block.kind is BlockKind.TAPEMARK:
                if out:
                    break
                return self._cross_tapemark(block.end)
            data, block = cart.read_record(pos.offset, bs)
            out += data
            self._pos = replace(pos, offset=block.end, block_number=pos.block_number + 1,
                                lba=pos.lba + 1, eof=False)
        return bytes(out)

    def _cross_tapemark(self, end: int) -> bytes:
        pos = self._pos
        self._pos = replace(pos, offset=end, file_number=pos.file_number + 1,
                            block_number=0, block_known=True, lba=pos.lba + 1, eof=True)
        return b""

    def write(self, data: bytes | bytearray | memoryview) -> int:
        cart = self._medium()
        view = memoryview(data).cast("B")
        pos = self._pos
        if pos.block_size and len(view) % pos.block_size:
            raise InvalidArgument(
                f"{self.name}: write of {len(view)} bytes is not a multiple of the block size {pos.block_size}")
        if len(view) > MAX_BLOCK_SIZE:
            raise InvalidArgument(f"{self.name}: record of {len(view)} bytes is larger than {MAX_BLOCK_SIZE}")
        if pos.early_warning == EarlyWarning.REACHED:
            self._pos = replace(pos, early_warning=EarlyWarning.REPORTED)
            raise EndOfMedium(f"{self.name}: end of medium (early warning) on {cart.barcode}")
        step = pos.block_size or len(view) or 1
        chunks = [view[i:i + step] for i in range(0, len(view), step)] if view else [view]
        for chunk in chunks:
            block = cart.write_record(self._pos.offset, chunk)
            p = self._pos
            self._pos = replace(p, offset=block.end, block_number=p.block_number + 1,
                                lba=p.lba + 1, eof=False, wrote=True)
        if self._pos.offset >= cart.early_warning_at and self._pos.early_warning == EarlyWarning.NONE:
            self._pos = replace(self._pos, early_warning=EarlyWarning.REACHED)
        return len(view)

    def write_filemarks(self, count: int = 1) -> None:
        cart = self._medium()
        if count < 0:
            raise InvalidArgument(f"{self.name}: negative filemark count {count}")
        if count == 0:
            # st flushes its buffer; nothing reaches the tape.
            self._pos = replace(self._pos, wrote=False)
            return
        for _ in range(count):
            block = cart.write_tapemark(self._pos.offset)
            p = self._pos
            self._pos = replace(p, offset=block.end, file_number=p.file_number + 1,
                                block_number=0, block_known=True, lba=p.lba + 1, eof=False, wrote=False)
        if self._pos.early_warning == EarlyWarning.NONE and self._pos.offset >= cart.early_warning_at:
            self._pos = replace(self._pos, early_warning=EarlyWarning.REACHED)

    # -- positioning ------------------------------------------------------------
    def _check_count(self, count: int, what: str) -> None:
        if not isinstance(count, int):
            raise InvalidArgument(f"{self.name}: bad {what} count {count!r}")

    def space_records(self, count: int) -> None:
        self._check_count(count, "record")
        cart = self._medium()
        self._flush_filemark()
        if count >= 0:
            self._forward(count, stop_at_tapemark=True)
            return
        pos = self._pos
        for _ in range(-count):
            block = cart.block_before(pos.offset)
            if block is None:
                self._pos = replace(pos, eof=False)
                raise TapeIOError(f"{self.name}: beginning of tape reached")
            if block.kind is BlockKind.TAPEMARK:
                # SCSI SPACE stops on the BOT side of the filemark it meets.
                self._pos = replace(pos, offset=block.start, file_number=pos.file_number - 1,
                                    block_known=False, block_number=-1, lba=pos.lba - 1, eof=False)
                raise TapeIOError(f"{self.name}: filemark reached")
            pos = replace(pos, offset=block.start, block_number=pos.block_number - 1 if pos.block_known else -1,
                          lba=pos.lba - 1, eof=False)
        self._pos = pos

    def space_files(self, count: int) -> None:
        self._check_count(count, "file")
        cart = self._medium()
        self._flush_filemark()
        pos = self._pos
        if count >= 0:
            crossed = 0
            while crossed < count:
                block = cart.block_at(pos.offset)
                if block.kind is BlockKind.EOD:
                    self._pos = replace(pos, eof=False)
                    raise TapeIOError(f"{self.name}: end of data reached after {crossed} of {count} filemarks")
                if block.kind is BlockKind.TAPEMARK:
                    crossed += 1
                    pos = replace(pos, offset=block.end, file_number=pos.file_number + 1,
                                  block_number=0, block_known=True, lba=pos.lba + 1, eof=True)
                else:
                    pos = replace(pos, offset=block.end, block_number=pos.block_number + 1, lba=pos.lba + 1)
            self._pos = pos
            return
        crossed = 0
        while crossed < -count:
            block = cart.block_before(pos.offset)
            if block is None:
                self._pos = Position(block_size=pos.block_size, online=pos.online,
                                     early_warning=pos.early_warning)
                raise TapeIOError(f"{self.name}: beginning of tape reached")
            pos = replace(pos, offset=block.start, lba=pos.lba - 1, eof=False)
            if block.kind is BlockKind.TAPEMARK:
                crossed += 1
                pos = replace(pos, file_number=pos.file_number - 1, block_known=False, block_number=-1)
        self._pos = pos

    def rewind(self) -> None:
        self._medium()
        self._flush_filemark()
        self._pos = Position(block_size=self._pos.block_size)

    def seek_eod(self) -> None:
        cart = self._medium()
        self._flush_filemark()
        self._walk_forward_to(cart.end)

    def erase(self) -> None:
        cart = self._medium()
        cart.erase(self._pos.offset)
        self._pos = replace(self._pos, wrote=False, eof=False)

    def tell(self) -> int:
        self._medium()
        return self._pos.lba

    def seek(self, block: int) -> None:
        if block < 0:
            raise InvalidArgument(f"{self.name}: negative block address {block}")
        self.rewind()
        cart = self._medium()
        pos = self._pos
        while pos.lba < block:
            nxt = cart.block_at(pos.offset)
            if nxt.kind is BlockKind.EOD:
                self._pos = pos
                raise TapeIOError(f"{self.name}: block {block} is past end of data")
            if nxt.kind is BlockKind.TAPEMARK:
                pos = replace(pos, offset=nxt.end, file_number=pos.file_number + 1,
                              block_number=0, lba=pos.lba + 1)
            else:
                pos = replace(pos, offset=nxt.end, block_number=pos.block_number + 1, lba=pos.lba + 1)
        self._pos = pos

    # -- medium -----------------------------------------------------------------
    def load(self) -> None:
        if self._cart is None:
            raise NoMedium(f"{self.name}: no cartridge in the drive")
        self._pos = Position(block_size=self._pos.block_size, online=True)

    def unload(self) -> None:
        if self._cart is None:
            raise NoMedium(f"{self.name}: no cartridge loaded")
        if self._pos.online:
            self._flush_filemark()
        self._pos = Position(block_size=self._pos.block_size, online=False)

    def set_block_size(self, size: int) -> None:
        if size < 0 or size > MAX_BLOCK_SIZE:
            raise InvalidArgument(f"{self.name}: block size {size} out of range 0..{MAX_BLOCK_SIZE}")
        self._pos = replace(self._pos, block_size=size)

    def status(self) -> TapeStatus:
        cart = self._cart
        pos = self._pos
        if cart is None or not pos.online:
            return TapeStatus(file_number=-1 if cart is None else 0, block_number=-1 if cart is None else 0,
                              block_size=pos.block_size, online=False, door_open=cart is None,
                              write_protected=bool(cart and cart.write_protected))
        return TapeStatus(
            file_number=pos.file_number,
            block_number=pos.block_number if pos.block_known else -1,
            block_size=pos.block_size,
            bot=pos.offset == 0,
            eof=pos.eof,
            eot=pos.offset >= cart.early_warning_at,
            eod=pos.offset >= cart.end and pos.offset > 0,
            write_protected=cart.write_protected,
            online=True,
        )

    def close(self) -> None:
        if self._closed:
            return
        try:
            if self._cart is not None and self._pos.online:
                self._flush_filemark()
                if self._rewind_on_close:
                    self._pos = Position(block_size=self._pos.block_size)
        finally:
            self._closed = True
            if self._cart is not None:
                self._cart.close()
            if self._on_close is not None:
                self._on_close(replace(self._pos, wrote=False))
