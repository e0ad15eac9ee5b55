"""A drive that plays a loopback cartridge the way Linux st plays a tape.

:class:`LoopbackDrive` keeps the head's place on the cartridge (byte offset
and logical block address, always exact) and, beside it, the state the st
driver keeps: its file and block counters (``drv_file``/``drv_block``, which
st sometimes does not know and reports as -1), its ``eof`` state and its
``rw`` state.  Every reply (data, errno, MTIOCGET fields) is derived from that
state with st's own rules (``drivers/scsi/st.c``), so a program sees what it
would see on ``/dev/nst0`` in variable-block mode, the default:

* ``read`` at a filemark returns ``b""`` and stands after it (file+1, block 0);
  at end of data the first read after a filemark returns ``b""``, the next
  fails with EIO; with no filemark just before, EIO at once.  A buffer shorter
  than the record fails with ENOMEM and the record is passed over.
* ``write`` of zero bytes does nothing.  The write that enters the early
  warning zone succeeds; the next fails with ENOSPC writing nothing; then
  they alternate until the hard capacity, where every write is ENOSPC.
  Filemarks may still be written in the zone.  A write-protected cartridge,
  or a drive opened read-only, refuses writes with EACCES.
* A filemark is written at close only when the last thing done was a write
  (``rw`` WRITING).  MTREW, MTOFFL, MTSEEK, MTBSF and MTBSFM right after a
  write write it first (BSF/BSFM then space over one more); every other
  MTIOCTOP just forgets the write (``rw`` IDLE), as st does.
* Positioning errors land where st lands and report what st reports: fsf into
  end of data is EIO with the filemarks crossed counted and block -1; fsr/bsr
  into a filemark is EIO past it (fsr) or before it (bsr, file-1, block -1);
  bsf reports block -1, and EIO at BOT with 0/0; MTEOM succeeds with block -1;
  MTSEEK reports -1/-1 unless it went to block 0.

Deliberate differences from st, each because st's behaviour there depends
on buffering a loopback does not have:

* Fixed-block mode has no read-ahead: a read must be a whole number of blocks
  (st allows any size when read-ahead is on), reads stop before a filemark
  and the next read returns ``b""`` (the same replies st gives), and a block
  of another size is EIO without the read-ahead quirks.  Writes are not
  buffered, so st's EOM_ERROR state (EIO for data lost at EOM) never arises;
  a write that reaches the hard capacity part-way returns a short count.
* ``read(0)`` is EINVAL (st returns 0, which would look like a filemark),
  as :class:`~tapelib.linux_st.LinuxStDrive` does.
* ``write`` through a drive opened read-only is EACCES, the errno st gives
  for MTWEOF there (the kernel refuses write(2) on an O_RDONLY fd with EBADF
  before st sees it).
* Reading at a damaged spot of the cartridge is EIO (a medium error), whatever
  the eof state, and so is positioning into it (``eod`` included: it never
  succeeds short of the real end of data).  After one, writes are refused
  until the drive is positioned explicitly (see :class:`LoopbackDrive`).

The drive does not know about shelves: whoever opens it hands in a
:class:`~tapelib.position.Position` to start from and gets the final one back through
``on_close`` (that is how a non-rewinding device keeps its place between
processes, as st keeps its counters between opens).
"""

from __future__ import annotations

import errno as _errno
import functools
from typing import Callable, TypeVar

from .awstape import AWSTAPE_HEADER_SIZE, encoded_size
from .cartridge import BlockKind, Cartridge
from .drive import TapeDrive, TapeStatus
from .errors import (
    BufferTooSmall,
    EndOfMedium,
    InvalidArgument,
    MediumError,
    NoMedium,
    TapeError,
    TapeIOError,
    WriteProtected,
)
from .mtio import MtOp
from .position import MAX_BLOCK_SIZE, Position, StEof, StRw

__all__ = ["LoopbackDrive"]

#: MTEOM is MTFSF over this many filemarks in st (fast_mteom off, the default).
_MTEOM_FILEMARKS = 0x7FFFFF
#: MTIOCTOPs after which st writes a filemark first if the last thing done was a write.
_FILEMARK_FIRST = frozenset({MtOp.MTREW, MtOp.MTOFFL, MtOp.MTSEEK, MtOp.MTBSF, MtOp.MTBSFM})
#: MTIOCTOPs that leave ``rw`` alone (all others forget a pending write).
_KEEP_RW = frozenset({MtOp.MTNOP, MtOp.MTSETBLK, MtOp.MTSETDENSITY, MtOp.MTWSM,
                      MtOp.MTSETDRVBUFFER, MtOp.MTSETPART})


_Method = TypeVar("_Method", bound=Callable)


def _fences_on_damage(method: _Method) -> _Method:
    """A drive operation that, meeting damage, leaves the drive fenced."""
    @functools.wraps(method)
    def fenced(self: "LoopbackDrive", *args: object) -> object:
        try:
            return method(self, *args)
        except MediumError:
            self._fenced = True
            raise
    return fenced  # type: ignore[return-value]


class LoopbackDrive(TapeDrive):
    """A drive holding one :class:`Cartridge` (or none).

    ``position`` is where the previous user of the drive left it; the ``rw``
    state starts IDLE, as at every st open.  The head goes back to BOT when
    that place is no longer a block boundary of the cartridge, fenced (a
    write there would overwrite the tape from its start when the head was
    meant to be elsewhere).  After a writer died (see
    :attr:`Cartridge.recovered`) the head stands after the filemark that
    ended its tape file, as st's non-rewinding device would.

    Fencing: an operation that meets damage (:class:`MediumError`) leaves the
    head where it stopped, short of the damage, and the drive refuses writes
    (EIO) until the operator positions it explicitly: rewind, load, an
    ``eod`` that succeeds, or an erase (which says it destroys everything
    from the head on).  So an append after a failed ``eod`` cannot cut off
    the intact data beyond the damage.
    """

    def __init__(self, name: str, cartridge: Cartridge | None, position: Position | None = None,
                 rewind_on_close: bool = False,
                 on_close: Callable[[Position], None] | None = None) -> None:
        self.name = name
        self._cart = cartridge
        self._rewind_on_close = rewind_on_close
        self._rewinding_device = rewind_on_close
        self._on_close = on_close
        self._closed = False
        pos = position or Position()
        self._offset = pos.offset
        self._lba = pos.lba
        self._file = pos.file_number
        self._block = pos.block_number
        self._eof = pos.eof
        self._rw = StRw.IDLE
        self._block_size = pos.block_size
        self._fenced = pos.fenced
        self._online = pos.online and cartridge is not None
        if not self._online:
            # st's open finds no tape: it no longer knows file or block.
            self._offset = self._lba = 0
            self._file = self._block = -1
        elif cartridge is not None and cartridge.recovered is not None:
            self._offset, self._lba, self._file = cartridge.recovered
            self._block = 0
            self._eof = StEof.FM if self._offset else StEof.NOEOF
            self._fenced = False
        elif cartridge is not None and not cartridge.is_block_start(self._offset):
            self._to_bot()
            self._fenced = True

    # -- state ----------------------------------------------------------------
    @property
    def position(self) -> Position:
        return Position(self._offset, self._lba, self._file, self._block, self._eof, self._rw,
                        self._block_size, self._online, self._fenced)

    @property
    def cartridge(self) -> Cartridge | None:
        return self._cart

    def _to_bot(self) -> None:
        self._offset = self._lba = self._file = self._block = 0
        self._eof = StEof.NOEOF
        self._fenced = False

    def _check_open(self) -> None:
        if self._closed:
            raise TapeError(f"{self.name}: drive is closed", errno=_errno.EBADF)

    def _ready(self) -> Cartridge:
        """The cartridge, when the drive is open, loaded and online (else
        ENOMEDIUM, as st gives when it has no tape)."""
        self._check_open()
        if self._cart is None:
            raise NoMedium(f"{self.name}: no cartridge loaded")
        if not self._online:
            raise NoMedium(f"{self.name}: no medium: cartridge {self._cart.barcode} is unloaded (load it first)")
        return self._cart

    def _check_writable(self, cart: Cartridge, erasing: bool = False) -> None:
        """EACCES for a write-protected cartridge or a read-only open; EIO,
        changing nothing, for a write where a damaged cartridge's readable
        part ends (it would destroy what lies beyond; an erase may)."""
        if cart.write_protected:
            raise WriteProtected(f"{self.name}: cartridge {cart.barcode} is write-protected",
                                 errno=_errno.EACCES)
        if not cart.writable:
            raise WriteProtected(f"{self.name}: drive was opened read-only", errno=_errno.EACCES)
        if self._fenced and not erasing:
            raise TapeIOError(
                f"{self.name}: not writing: an earlier operation met damage on cartridge {cart.barcode}, "
                "so the head may not be where a write belongs; position it first "
                "(rewind, eod, or erase to destroy everything from the head on)")
        if cart.damaged_at is not None and self._offset >= cart.end and not erasing:
            raise TapeIOError(
                f"{self.name}: cartridge {cart.barcode} is damaged ({cart.damage}); "
                "not writing there (write from an earlier position to overwrite it)")

    def _begin_op(self, op: MtOp, count: int) -> int:
        """What st's ioctl does before an MTIOCTOP: after a write, a filemark
        for the ops in ``_FILEMARK_FIRST`` (BSF and BSFM then space over one
        more filemark), then forget the write.  Returns the count to use."""
        if self._rw is StRw.WRITING and op in _FILEMARK_FIRST:
            self._weof(self._ready(), 1)
            if op in (MtOp.MTBSF, MtOp.MTBSFM):
                count += 1
        if op not in _KEEP_RW:
            self._rw = StRw.IDLE
        return count

    @staticmethod
    def _check_count(value: object, what: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidArgument(f"bad {what} {value!r}: not an integer")
        return value

    # -- data -------------------------------------------------------------------
    @_fences_on_damage
    def read(self, size: int) -> bytes:
        self._check_count(size, "read size")
        if size <= 0:
            raise InvalidArgument(f"{self.name}: read size must be positive, not {size}")
        cart = self._ready()
        bs = self._block_size
        if bs == 0 and size > MAX_BLOCK_SIZE:
            raise InvalidArgument(f"{self.name}: read of {size} bytes is more than the largest block, {MAX_BLOCK_SIZE}")
        if bs and size % bs:
            raise InvalidArgument(
                f"{self.name}: read of {size} bytes is not a multiple of the block size {bs}")
        self._rw = StRw.READING
        if self._eof >= StEof.EOD_1:
            if self._eof < StEof.EOD:
                self._eof = StEof(self._eof + 1)
                return b""
            raise TapeIOError(f"{self.name}: read past end of data")
        if bs:
            return self._read_fixed(cart, size)
        offset = self._offset
        if offset >= cart.end:
            return self._blank_check(cart)
        data, block = cart.read_record(offset, size)
        if block.kind is BlockKind.TAPEMARK:
            return self._read_filemark(block)
        if data is None:
            # st passes over the record it could not deliver.
            self._offset = block.end
            self._lba += 1
            if self._block >= 0:
                self._block += 1
            raise BufferTooSmall(
                f"{self.name}: failed to read {block.length} byte block with {size} byte transfer")
        self._passed_record(block.end)
        return data

    @_fences_on_damage
    def readinto(self, buffer: bytearray | memoryview) -> int:
        """:meth:`read` into the caller's buffer.  In variable-block mode a
        well-formed record goes from the cartridge file straight into
        ``buffer`` (one ``preadv``, no new object); everything else takes the
        :meth:`read` path, with the same replies."""
        view = memoryview(buffer).cast("B")
        cart = self._cart
        if (cart is not None and not self._closed and self._online and not self._block_size
                and self._eof < StEof.EOD_1 and 0 < len(view) <= MAX_BLOCK_SIZE):
            got = cart.readinto_record(self._offset, view)
            if got is not None:
                self._rw = StRw.READING
                self._passed_record(got[1])
                return got[0]
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def _passed_record(self, end: int) -> None:
        """The head has read a data record that ends at byte ``end``."""
        self._offset = end
        self._lba += 1
        if self._block >= 0:
            self._block += 1
        if self._eof is StEof.FM:
            self._eof = StEof.NOEOF

    def _read_filemark(self, block) -> bytes:
        """A read met the filemark *block*: st moves past it into the next file and returns nothing."""
        self._offset = block.end
        self._lba += 1
        if self._file >= 0:
            self._file += 1
        self._block = 0
        self._eof = StEof.FM
        return b""

    def _blank_check(self, cart: Cartridge) -> bytes:
        """A read at end of recorded data (SCSI BLANK CHECK): ``b""`` the first
        time right after a filemark, EIO otherwise."""
        self._block = -1
        if cart.damaged_at is not None:
            raise MediumError(
                f"{self.name}: medium error: cartridge {cart.barcode} is damaged ({cart.damage})")
        if self._eof is StEof.FM:
            self._eof = StEof.EOD
            return b""
        raise TapeIOError(f"{self.name}: read at end of recorded data")

    def _read_fixed(self, cart: Cartridge, size: int) -> bytes:
        bs = self._block_size
        out: list[bytes] = []
        for _ in range(size // bs):
            offset = self._offset
            if offset >= cart.end:
                if out:
                    break
                return self._blank_check(cart)
            data, block = cart.read_record(offset, bs)
            if block.kind is BlockKind.TAPEMARK:
                if out:
                    break  # the next read returns the filemark
                return self._read_filemark(block)
            if data is None or len(data) != bs:
                if out:
                    break
                raise TapeIOError(
                    f"{self.name}: incorrect block size: a {block.length}-byte block in "
                    f"{bs}-byte fixed-block mode")
            out.append(data)
            self._offset = block.end
            self._lba += 1
            if self._block >= 0:
                self._block += 1
        if self._eof is StEof.FM:
            self._eof = StEof.NOEOF
        return out[0] if len(out) == 1 else b"".join(out)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        cart = self._ready()
        view = memoryview(data).cast("B")
        count = len(view)
        if count == 0:
            return 0
        bs = self._block_size
        if bs == 0 and count > MAX_BLOCK_SIZE:
            raise InvalidArgument(f"{self.name}: record of {count} bytes is larger than {MAX_BLOCK_SIZE}")
        if bs and count % bs:
            raise InvalidArgument(
                f"{self.name}: write of {count} bytes is not a multiple of the block size {bs}")
        self._check_writable(cart)
        if self._eof is StEof.EOM_OK:
            self._eof = StEof.EOD_1
            if self._rw is StRw.READING:
                self._rw = StRw.WRITING
            raise EndOfMedium(f"{self.name}: end of medium (early warning) on {cart.barcode}")
        self._rw = StRw.WRITING
        offset = self._offset
        if bs:
            written = self._write_fixed(cart, view, bs)
        else:
            if offset + encoded_size(count) > cart.capacity:
                self._eof = StEof.EOM_OK
                raise EndOfMedium(f"{self.name}: end of medium: cartridge {cart.barcode} is full")
            self._offset = cart.write_record(offset, view).end
            self._lba += 1
            if self._block >= 0:
                self._block += 1
            written = count
        if self._offset >= cart.early_warning_at or self._eof is StEof.EOD_1:
            self._eof = StEof.EOM_OK
        elif self._eof is not StEof.EOM_OK:
            self._eof = StEof.NOEOF
        return written

    def _write_fixed(self, cart: Cartridge, view: memoryview, bs: int) -> int:
        blocks = len(view) // bs
        fit = min(blocks, (cart.capacity - self._offset) // encoded_size(bs))
        if fit <= 0:
            self._eof = StEof.EOM_OK
            raise EndOfMedium(f"{self.name}: end of medium: cartridge {cart.barcode} is full")
        self._offset = cart.write_records(self._offset, [view[i * bs:(i + 1) * bs] for i in range(fit)])
        self._lba += fit
        if self._block >= 0:
            self._block += fit
        if fit < blocks:
            self._eof = StEof.EOM_OK
        return fit * bs

    def write_filemarks(self, count: int = 1) -> None:
        self._check_count(count, "filemark count")
        if count < 0:
            raise InvalidArgument(f"{self.name}: negative filemark count {count}")
        cart = self._ready()
        self._begin_op(MtOp.MTWEOF, count)
        self._weof(cart, count)

    def _weof(self, cart: Cartridge, count: int) -> None:
        """Write ``count`` filemarks as st's MTWEOF does: allowed in the early
        warning zone, EIO for those past the hard capacity."""
        self._check_writable(cart)
        room = max(0, (cart.capacity - self._offset) // AWSTAPE_HEADER_SIZE)
        done = min(count, room)
        if done:
            self._offset = cart.write_tapemarks(self._offset, done)
            self._lba += done
            if self._file >= 0:
                self._file += done
        self._block = 0
        if done < count:
            self._eof = StEof.NOEOF if done else StEof.EOM_OK
            raise TapeIOError(
                f"{self.name}: end of medium: wrote {done} of {count} filemarks on {cart.barcode}")
        self._eof = StEof.NOEOF

    # -- positioning ------------------------------------------------------------
    @_fences_on_damage
    def mtop(self, op: int, count: int = 1) -> None:
        """One MTIOCTOP with st's exact meaning, counts included (MTFSF 0 still
        sets block 0, MTBSF 0 block -1, MTFSFM 0 goes back one filemark)."""
        self._check_count(op, "tape operation")
        self._check_count(count, "count")
        handler = self._mtops.get(op)
        if handler is None:
            super().mtop(op, count)
            return
        if count < 0:
            raise InvalidArgument(f"{self.name}: negative count {count}")
        handler(self, count)

    @_fences_on_damage
    def space_records(self, count: int) -> None:
        self._check_count(count, "record count")
        if count > 0:
            self._fsr(count)
        elif count < 0:
            self._bsr(-count)

    @_fences_on_damage
    def space_files(self, count: int) -> None:
        self._check_count(count, "file count")
        if count > 0:
            self._fsf(count)
        elif count < 0:
            self._bsf(-count)

    def _fsf(self, count: int) -> None:
        cart = self._ready()
        count = self._begin_op(MtOp.MTFSF, count)
        self._space_filemarks_forward(cart, count)

    def _bsf(self, count: int) -> None:
        cart = self._ready()
        count = self._begin_op(MtOp.MTBSF, count)
        self._space_filemarks_back(cart, count)

    def _fsfm(self, count: int) -> None:
        cart = self._ready()
        count = self._begin_op(MtOp.MTFSFM, count)
        self._space_filemarks_forward(cart, count)
        self._space_filemarks_back(cart, 1)

    def _bsfm(self, count: int) -> None:
        cart = self._ready()
        count = self._begin_op(MtOp.MTBSFM, count)
        self._space_filemarks_back(cart, count)
        self._space_filemarks_forward(cart, 1)

    def _space_filemarks_forward(self, cart: Cartridge, count: int) -> None:
        """SPACE filemarks forward: just past the ``count``-th, file+count,
        block 0, eof FM; EIO at end of data, with the filemarks crossed counted."""
        offset, lba, crossed = self._offset, self._lba, 0
        while crossed < count:
            block = cart.block_at(offset)
            if block.kind is BlockKind.EOD:
                break
            offset = block.end
            lba += 1
            if block.kind is BlockKind.TAPEMARK:
                crossed += 1
        self._offset, self._lba = offset, lba
        if self._file >= 0:
            self._file += crossed
        if crossed < count:
            self._block = -1
            self._eof = StEof.EOD
            raise TapeIOError(f"{self.name}: end of data after {crossed} of {count} filemarks")
        self._block = 0
        self._eof = StEof.FM

    def _space_filemarks_back(self, cart: Cartridge, count: int) -> None:
        """SPACE filemarks backward: just before (BOT side of) the
        ``count``-th, file-count, block -1 (st cannot know it); EIO at BOT,
        with the filemarks crossed counted and block 0."""
        offset, lba, crossed = self._offset, self._lba, 0
        while crossed < count:
            block = cart.block_before(offset)
            if block is None:
                break
            offset = block.start
            lba -= 1
            if block.kind is BlockKind.TAPEMARK:
                crossed += 1
        self._offset, self._lba = offset, lba
        if self._file >= 0:
            self._file -= crossed
        self._eof = StEof.NOEOF
        if crossed < count:
            self._block = 0
            raise TapeIOError(f"{self.name}: beginning of tape after {crossed} of {count} filemarks")
        self._block = -1

    def _fsr(self, count: int) -> None:
        cart = self._ready()
        count = self._begin_op(MtOp.MTFSR, count)
        offset, lba, crossed = self._offset, self._lba, 0
        try:
            while crossed < count:
                block = cart.block_at(offset)
                if block.kind is BlockKind.EOD:
                    self._block = self._block + crossed if self._block >= 0 else -1
                    self._eof = StEof.EOD
                    raise TapeIOError(f"{self.name}: end of data after {crossed} of {count} records")
                offset = block.end
                lba += 1
                if block.kind is BlockKind.TAPEMARK:
                    if self._file >= 0:
                        self._file += 1
                    self._block = 0
                    self._eof = StEof.FM
                    raise TapeIOError(f"{self.name}: filemark after {crossed} of {count} records")
                crossed += 1
        finally:
            self._offset, self._lba = offset, lba
        if self._block >= 0:
            self._block += count
        self._eof = StEof.NOEOF

    def _bsr(self, count: int) -> None:
        cart = self._ready()
        count = self._begin_op(MtOp.MTBSR, count)
        offset, lba, crossed = self._offset, self._lba, 0
        old = self._block
        self._eof = StEof.NOEOF
        try:
            while crossed < count:
                block = cart.block_before(offset)
                if block is None:
                    # st: block = (old - count) + residual, -1 standing for "old - count".
                    self._block = (old - count if old >= 0 else -1) + (count - crossed)
                    raise TapeIOError(f"{self.name}: beginning of tape after {crossed} of {count} records")
                offset = block.start
                lba -= 1
                if block.kind is BlockKind.TAPEMARK:
                    self._file -= 1  # st decrements it even when it is -1
                    self._block = -1
                    raise TapeIOError(f"{self.name}: filemark after {crossed} of {count} records")
                crossed += 1
        finally:
            self._offset, self._lba = offset, lba
        self._block = old - count if old >= 0 else -1

    def rewind(self) -> None:
        self._ready()
        self._begin_op(MtOp.MTREW, 1)
        self._to_bot()

    def _retension(self, _count: int = 1) -> None:
        self._ready()
        self._begin_op(MtOp.MTRETEN, 1)
        self._to_bot()

    @_fences_on_damage
    def seek_eod(self) -> None:
        """MTEOM as st does it (MTFSF to end of data, which then counts as
        success): file counts the filemarks crossed, block is -1, eof EOD."""
        cart = self._ready()
        self._begin_op(MtOp.MTEOM, 1)
        try:
            self._space_filemarks_forward(cart, _MTEOM_FILEMARKS)
        except MediumError:
            raise
        except TapeIOError:
            if self._eof is not StEof.EOD:
                raise
        else:
            self._seek_eod_rest(cart)
        self._fenced = False

    def _seek_eod_rest(self, cart: Cartridge) -> None:
        """After 0x7fffff filemarks without end of data, st spaces to EOD."""
        offset, lba = self._offset, self._lba
        while (block := cart.block_at(offset)).kind is not BlockKind.EOD:
            offset, lba = block.end, lba + 1
        self._offset, self._lba = offset, lba
        self._block = -1
        self._eof = StEof.EOD

    def erase(self) -> None:
        cart = self._ready()
        self._begin_op(MtOp.MTERASE, 1)
        self._check_writable(cart, erasing=True)
        cart.erase(self._offset)
        self._eof = StEof.NOEOF
        self._fenced = False

    def tell(self) -> int:
        """MTIOCPOS: the logical block address, filemarks counted (EIO with no
        medium, as st's READ POSITION gives)."""
        self._check_open()
        if self._cart is None or not self._online:
            raise TapeIOError(f"{self.name}: cannot read the tape position: no medium")
        return self._lba

    @_fences_on_damage
    def seek(self, block: int) -> None:
        """MTSEEK: file and block become -1 (0 and 0 for block 0); past end
        of data the head stops there and the seek fails with EIO."""
        self._check_count(block, "block address")
        if block < 0:
            raise InvalidArgument(f"{self.name}: negative block address {block}")
        cart = self._ready()
        self._begin_op(MtOp.MTSEEK, block)
        if block < self._lba:
            self._offset = self._lba = 0
        offset, lba = self._offset, self._lba
        while lba < block:
            nxt = cart.block_at(offset)
            if nxt.kind is BlockKind.EOD:
                break
            offset, lba = nxt.end, lba + 1
        self._offset, self._lba = offset, lba
        self._eof = StEof.NOEOF
        self._file = self._block = 0 if block == 0 else -1
        if lba < block:
            raise TapeIOError(f"{self.name}: block {block} is past end of data (block {lba})")

    # -- medium -----------------------------------------------------------------
    def load(self) -> None:
        """MTLOAD: the cartridge online at BOT, 0/0."""
        self._check_open()
        if self._cart is None:
            raise NoMedium(f"{self.name}: no cartridge in the drive")
        self._rw = StRw.IDLE
        self._online = True
        self._rewind_on_close = self._rewinding_device
        self._to_bot()

    def unload(self) -> None:
        """MTOFFL: a filemark first after a write, then offline; st keeps the
        old file and block numbers, reads and writes give ENOMEDIUM."""
        self._unload(MtOp.MTOFFL)

    def _unload(self, op: MtOp) -> None:
        self._ready()
        self._begin_op(op, 1)
        self._online = False
        self._rewind_on_close = False
        self._offset = self._lba = 0

    def set_block_size(self, size: int) -> None:
        self._check_count(size, "block size")
        if not 0 <= size <= MAX_BLOCK_SIZE:
            raise InvalidArgument(f"{self.name}: block size {size} out of range 0..{MAX_BLOCK_SIZE}")
        self._ready()
        self._block_size = size

    def _forget_write(self, _count: int = 1) -> None:
        """MTLOCK, MTUNLOCK, MTCOMPRESSION: nothing to do here but what every
        MTIOCTOP does (forget a pending write)."""
        self._ready()
        self._rw = StRw.IDLE

    _mtops: dict[int, Callable[["LoopbackDrive", int], None]] = {
        MtOp.MTFSF: _fsf,
        MtOp.MTBSF: _bsf,
        MtOp.MTFSR: _fsr,
        MtOp.MTBSR: _bsr,
        MtOp.MTFSFM: _fsfm,
        MtOp.MTBSFM: _bsfm,
        MtOp.MTWEOF: write_filemarks,
        MtOp.MTWEOFI: write_filemarks,
        MtOp.MTREW: lambda self, _n: self.rewind(),
        MtOp.MTOFFL: lambda self, _n: self.unload(),
        MtOp.MTUNLOAD: lambda self, _n: self._unload(MtOp.MTUNLOAD),
        MtOp.MTLOAD: lambda self, _n: self.load(),
        MtOp.MTEOM: lambda self, _n: self.seek_eod(),
        MtOp.MTERASE: lambda self, _n: self.erase(),
        MtOp.MTSEEK: seek,
        MtOp.MTRETEN: _retension,
        MtOp.MTLOCK: _forget_write,
        MtOp.MTUNLOCK: _forget_write,
        MtOp.MTCOMPRESSION: _forget_write,
        MtOp.MTSETBLK: set_block_size,
    }

    def status(self) -> TapeStatus:
        """MTIOCGET: the counters and the GMT_* bits as st derives them from
        its state (EOF/BOT from the counters, EOT/EOD from the eof state)."""
        self._check_open()
        cart = self._cart
        blk, fileno = self._block, self._file
        return TapeStatus(
            file_number=fileno,
            block_number=blk,
            block_size=self._block_size,
            bot=blk == 0 and fileno == 0,
            eof=blk == 0 and fileno != 0,
            eot=self._eof in (StEof.EOM_OK, StEof.EOM_ERROR),
            eod=self._eof >= StEof.EOD_1,
            write_protected=bool(cart is not None and cart.write_protected),
            online=self._online,
            door_open=not self._online,
        )

    def close(self) -> None:
        """st's close: a filemark if the last thing done was a write (EIO,
        after releasing the drive, if it does not fit), then a rewinding
        device rewinds.  Idempotent."""
        if self._closed:
            return
        error: TapeError | None = None
        cart = self._cart
        try:
            if cart is not None and self._online:
                if self._rw is StRw.WRITING:
                    if self._offset + AWSTAPE_HEADER_SIZE <= cart.capacity:
                        self._weof(cart, 1)
                        self._eof = StEof.FM
                    else:  # st_flush: "Error on write filemark.", nothing changes
                        error = TapeIOError(
                            f"{self.name}: error on write filemark at close: cartridge {cart.barcode} is full")
                if self._rewind_on_close:
                    self._to_bot()
        finally:
            self._closed = True
            self._rw = StRw.IDLE
            try:
                if cart is not None:
                    cart.close()
            finally:
                if self._on_close is not None:
                    self._on_close(self.position)
        if error is not None:
            raise error

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"file {self._file} block {self._block} {self._eof.name}"
        return f"<LoopbackDrive {self.name} {state}>"
