"""Loopback cartridges: an AWSTAPE file plus a small metadata sidecar.

A :class:`Cartridge` knows the file layout and nothing about positions or
drives: it answers "what block starts at byte N", "what block ends at byte
N", reads a record, and appends records and tapemarks (truncating whatever
lay beyond, as writing in the middle of a tape does).

The sidecar (``NAME.json`` beside ``NAME.awstape``) holds the barcode, the
capacity, the early-warning zone, the write-protect tab and, while no writer
has the cartridge open, where the recorded data ends and how long the file
is.  A cartridge without a sidecar (one made by another emulator) gets the
defaults and is scanned at every open.  A writer killed mid-record leaves the
sidecar marked dirty; the next open scans the file, cuts the torn record off,
ends the interrupted tape file with a filemark as Linux st does when a killed
writer's device is closed (:attr:`Cartridge.recovered` tells the drive where
that left the head), and marks the sidecar clean again.

A clean sidecar is trusted only when it matches the file (its end of data is
the file's size and the last block is what it says); otherwise the file is
scanned and whatever does not scan, a cut-short tail included, is damage.
Damage found then or later is a :class:`~tapelib.errors.MediumError`: reads
and positioning stop before it, and nothing is written over it unasked.
"""

from __future__ import annotations

import enum
import errno as _errno
import json
import mmap
import os
from dataclasses import dataclass
from pathlib import Path

from .awstape import (
    AWSTAPE_FLAG1_TAPEMARK,
    AWSTAPE_MAX_SEGMENT,
    AWSTAPE_FLAG1_ENDREC,
    AWSTAPE_FLAG1_NEWREC,
    AWSTAPE_HEADER_SIZE,
    SegmentHeader,
    encoded_size,
    record_segments,
    tapemark_header,
    unpack_header,
    unpack_header_from,
)
from .durable import replace_file
from .errors import EndOfMedium, MediumError, NotACartridge, TapeIOError, WriteProtected

CARTRIDGE_SUFFIX = ".awstape"
_WHOLE_RECORD = AWSTAPE_FLAG1_NEWREC | AWSTAPE_FLAG1_ENDREC
METADATA_FORMAT = "snapdump-cartridge"
DEFAULT_CAPACITY = 10 * 1024**3
#: Fraction of the capacity given to the early-warning zone by default.
EARLY_WARNING_FRACTION = 50
MIN_EARLY_WARNING = 64 * 1024
#: At most this many buffers go to one ``os.pwritev`` (Linux's IOV_MAX is 1024).
_IOV_BATCH = 1000


def default_early_warning(capacity: int) -> int:
    """The early-warning zone for a capacity: 2%, at least 64 KiB, at most half."""
    return min(max(capacity // EARLY_WARNING_FRACTION, MIN_EARLY_WARNING), capacity // 2)


class BlockKind(enum.Enum):
    RECORD = "record"
    TAPEMARK = "tapemark"
    EOD = "eod"


@dataclass(frozen=True, slots=True)
class Block:
    """One block on the tape: a record or a tapemark, from ``start`` to ``end``."""

    kind: BlockKind
    start: int
    end: int
    length: int = 0


def metadata_path(path: Path) -> Path:
    return path.with_suffix(".json")


#: Every field of a cartridge sidecar, with its type and least value.
_METADATA_FIELDS: dict[str, tuple[type, int | None]] = {
    "format": (str, None), "version": (int, 1), "barcode": (str, None),
    "capacity": (int, 4 * AWSTAPE_HEADER_SIZE), "early_warning": (int, 0),
    "write_protected": (bool, None), "clean": (bool, None),
    "end": (int, 0), "tail_length": (int, 0), "size": (int, 0),
}


def metadata_problem(meta: dict) -> str | None:
    """What is wrong with a cartridge sidecar's fields (``None``: nothing).
    Fields may be missing (a default or a scan stands in); present ones
    must have their type and a sensible value."""
    for key, (kind, least) in _METADATA_FIELDS.items():
        if key not in meta:
            continue
        value = meta[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            return f"{key} is {value!r}, not {'true/false' if kind is bool else 'a ' + kind.__name__}"
        if least is not None and value < least:
            return f"{key} is {value}, less than {least}"
    if meta.get("version", 1) != 1:
        return f"version {meta['version']} is not one this program reads (1)"
    if "barcode" in meta and not meta["barcode"]:
        return "barcode is empty"
    capacity = meta.get("capacity", DEFAULT_CAPACITY)
    if meta.get("early_warning", 0) > capacity:
        return f"early_warning {meta['early_warning']} is more than the capacity {capacity}"
    if meta.get("tail_length", 0) > AWSTAPE_MAX_SEGMENT:
        return f"tail_length {meta['tail_length']} is more than a segment can hold"
    if meta.get("end", 0) > meta.get("size", meta.get("end", 0)):
        return f"end {meta['end']} is past size {meta['size']}"
    return None


class Cartridge:
    """An open loopback cartridge file.

    Reads use a read-only shared map of the file (no system call per header,
    one copy per record); writes use ``pwritev``, one call per record.  The
    file must not be truncated behind the cartridge's back while it is open
    (the shelf's drive lock sees to that): reading a mapped page past the end
    of the file would kill the process with SIGBUS.
    """

    def __init__(self, path: Path, writable: bool, exclusive: bool = False) -> None:
        """Open the cartridge at ``path``.  Only an ``exclusive`` open (its
        drive held, so no writer can have the file open) repairs anything:
        ends a dead writer's tape file, or rewrites a sidecar that did not
        match; any other open (``pytape status``) only looks."""
        self.path = Path(path)
        self.writable = writable
        meta = self._read_metadata()
        self.barcode: str = meta.get("barcode", self.path.stem)
        self.capacity: int = meta.get("capacity", DEFAULT_CAPACITY)
        self.early_warning: int = meta.get("early_warning", default_early_warning(self.capacity))
        self.write_protected: bool = meta.get("write_protected", False)
        flags = os.O_RDWR if writable and not self.write_protected else os.O_RDONLY
        try:
            self._fd = os.open(self.path, flags | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotACartridge(f"{self.path}: no such cartridge file") from None
        except OSError as exc:
            raise NotACartridge(f"{self.path}: {exc.strerror}") from None
        self._dirty_marked = False
        # Reads go through a read-only shared map of the file: headers cost
        # no system call and a record is one copy.  It is remapped when the
        # data grows past it (writes themselves use pwritev).
        self._map: mmap.mmap | None = None
        self._iov: tuple[object, int, list[bytearray], list[bytearray | memoryview]] | None = None
        self._view: memoryview = memoryview(b"")
        self.damaged_at: int | None = None
        #: Bytes a clean sidecar recorded past the file's end: the file was cut
        #: short (an old copy put back, a copy cut short): damage, never repaired
        #: by a scan (the sidecar keeps what it recorded until a write replaces it).
        self.missing = 0
        #: Set when a writer died with this cartridge open (its sidecar was
        #: left dirty): this open found the end of data by scanning, ended the
        #: interrupted tape file with a filemark as st's close would have, and
        #: this is where that left the head: ``(offset, lba, file number)``.
        self.recovered: tuple[int, int, int] | None = None
        try:
            size = os.fstat(self._fd).st_size
            self._size = size
            if meta.get("clean") is True and self._sidecar_holds(meta, size):
                self.end = meta["end"]
                self.tail_length = meta["tail_length"]
            elif meta.get("clean") is False and not exclusive:
                # A writer has it open (or died): take the sidecar's word,
                # without mapping a file that writer may be cutting short.
                self.end = min(meta.get("end", 0), size)
                self.tail_length = meta.get("tail_length", 0)
            elif meta.get("clean") is False:
                self._scan(size, torn_is_damage=False)
                if self.damaged_at is None:
                    self._recover()
            else:
                # No sidecar (another emulator's cartridge), or one that does
                # not describe this file: whatever does not scan is damage.
                self._scan(size, torn_is_damage=True)
                recorded = max(meta.get("size", 0), meta.get("end", 0)) if meta.get("clean") is True else 0
                if recorded > size:  # even cut right after a filemark, what was recorded beyond is gone
                    self.missing = recorded - size
                    if self.damaged_at is None:
                        self.damaged_at = self.end
                if meta and self.damaged_at is None and exclusive:
                    self._save_metadata(clean=True)
        except BaseException:
            self._unmap()
            os.close(self._fd)
            self._fd = -1
            raise

    # -- creation and metadata -------------------------------------------
    @classmethod
    def create(cls, path: Path, barcode: str, capacity: int = DEFAULT_CAPACITY,
               early_warning: int | None = None) -> None:
        """Make a blank cartridge file and its sidecar; refuses to overwrite."""
        path = Path(path)
        if capacity < 4 * AWSTAPE_HEADER_SIZE:
            raise NotACartridge(f"{barcode}: capacity {capacity} bytes is too small")
        with open(path, "xb"):
            pass
        zone = default_early_warning(capacity) if early_warning is None else early_warning
        write_json(metadata_path(path), {
            "format": METADATA_FORMAT, "version": 1, "barcode": barcode,
            "capacity": capacity, "early_warning": zone, "write_protected": False,
            "clean": True, "end": 0, "tail_length": 0, "size": 0,
        })

    def _read_metadata(self) -> dict:
        meta_file = metadata_path(self.path)
        try:
            meta = json.loads(meta_file.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise NotACartridge(f"{meta_file}: unreadable cartridge metadata ({exc})") from None
        if not isinstance(meta, dict) or meta.get("format") != METADATA_FORMAT:
            raise NotACartridge(f"{meta_file}: not a cartridge metadata file")
        problem = metadata_problem(meta)
        if problem is not None:
            raise NotACartridge(f"{meta_file}: damaged cartridge metadata: {problem}")
        return meta

    def _sidecar_holds(self, meta: dict, size: int) -> bool:
        """Whether a clean sidecar describes this file: its end of data is
        the file's end, and the last block there is what ``tail_length`` says."""
        end, tail = meta.get("end"), meta.get("tail_length")
        if end != size or meta.get("size") != size or tail is None:
            return False
        if end == 0:
            return tail == 0
        start = end - AWSTAPE_HEADER_SIZE - tail
        if start < 0:
            return False
        raw = os.pread(self._fd, AWSTAPE_HEADER_SIZE, start)
        header = unpack_header(raw) if len(raw) == AWSTAPE_HEADER_SIZE else None
        return header is not None and header.length == tail and (header.is_tapemark or header.ends_record)

    def _save_metadata(self, clean: bool) -> None:
        write_json(metadata_path(self.path), {
            "format": METADATA_FORMAT, "version": 1, "barcode": self.barcode,
            "capacity": self.capacity, "early_warning": self.early_warning,
            "write_protected": self.write_protected, "clean": clean,
            "end": self.end, "tail_length": self.tail_length, "size": self._size,
        })

    @property
    def early_warning_at(self) -> int:
        """Byte offset where the early-warning zone begins."""
        return self.capacity - self.early_warning

    # -- scanning ---------------------------------------------------------
    def _scan(self, size: int, torn_is_damage: bool) -> None:
        """Walk every header from BOT to find where recorded data ends.

        Bytes that cannot be headers mark the cartridge damaged there: it
        reads up to that point and refuses writes there, so nothing beyond is
        destroyed.  A block cut short by the end of the file is what a writer
        killed mid-record leaves; it ends the data before it, and is damage
        too unless ``torn_is_damage`` is false (the sidecar says a writer died).
        """
        offset = 0
        prev = 0
        good_end = 0
        good_tail = 0
        blocks = tapemarks = 0
        last_tapemark = False
        in_record = False
        view = self._mapped(size)
        torn = False
        while offset < size:
            if size - offset < AWSTAPE_HEADER_SIZE:
                torn = True
                break
            header = unpack_header(view[offset:offset + AWSTAPE_HEADER_SIZE])
            if header is None or header.prev_length != prev or (
                    header.begins_record == in_record and not header.is_tapemark) or (
                    header.is_tapemark and in_record):
                if offset == 0:
                    raise NotACartridge(f"{self.path}: not a loopback cartridge (no AWSTAPE header at the start)")
                self.damaged_at = offset
                break
            seg_end = offset + AWSTAPE_HEADER_SIZE + header.length
            if seg_end > size:
                torn = True
                break
            prev = header.length
            offset = seg_end
            if header.is_tapemark or header.ends_record:
                in_record = False
                good_end, good_tail = offset, prev
                blocks += 1
                tapemarks += header.is_tapemark
                last_tapemark = header.is_tapemark
            else:
                in_record = True
        if self.damaged_at is not None and in_record:
            self.damaged_at = good_end
        if in_record and self.damaged_at is None:
            torn = True  # the file ends after a segment that does not end its record
        if torn and torn_is_damage:
            self.damaged_at = good_end
        self.end = good_end
        self.tail_length = good_tail
        self._scanned = (blocks, tapemarks, last_tapemark)

    def _recover(self) -> None:
        """After a writer died: cut its torn last record off, end its tape
        file with a filemark (what st writes when a killed writer's device is
        closed), and mark the sidecar clean.  The head belongs after that
        filemark (:attr:`recovered`)."""
        blocks, tapemarks, last_tapemark = self._scanned
        end = self.end
        needs_filemark = end > 0 and not last_tapemark
        if self._size > end or needs_filemark:
            self._unmap()  # never keep a map across a truncation (SIGBUS)
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
            except OSError as exc:
                raise NotACartridge(
                    f"{self.path}: a writer died with this cartridge open and it cannot be "
                    f"repaired ({exc.strerror})") from None
            try:
                os.ftruncate(fd, end)
                if needs_filemark:
                    raw = tapemark_header(self.tail_length)
                    os.pwrite(fd, raw, end)
                    end += len(raw)
                    blocks += 1
                    tapemarks += 1
                    self.tail_length = 0
                os.fsync(fd)
            finally:
                os.close(fd)
            self.end = self._size = end
        self._save_metadata(clean=True)
        self.recovered = (end, blocks, tapemarks)

    # -- reading ------------------------------------------------------------
    def _mapped(self, upto: int) -> memoryview:
        """The file's bytes, mapped at least up to byte ``upto``."""
        view = self._view
        if len(view) >= upto:
            return view
        self._unmap()
        size = os.fstat(self._fd).st_size
        if size < upto:
            raise MediumError(f"{self.barcode}: damaged cartridge: {self.path} is shorter than its data")
        self._map = mmap.mmap(self._fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
        self._view = memoryview(self._map)
        return self._view

    def _unmap(self) -> None:
        if self._map is not None:
            try:
                self._view.release()
                self._map.close()
            except BufferError:
                # A slice of the map still lives (in the frame of an error
                # being raised through a read); the map closes when it goes.
                pass
            self._view = memoryview(b"")
            self._map = None

    def _header(self, offset: int, length: int | None = None) -> SegmentHeader:
        """The header at ``offset``; with ``length``, it must describe a
        segment of that length (a header found by walking backwards)."""
        header = None
        if 0 <= offset and offset + AWSTAPE_HEADER_SIZE <= self.end:
            header = unpack_header(self._mapped(self.end)[offset:offset + AWSTAPE_HEADER_SIZE])
        if header is None or (length is not None and header.length != length):
            raise MediumError(f"{self.barcode}: damaged cartridge: bad block header at byte {offset}")
        return header

    @property
    def damage(self) -> str | None:
        """What is wrong with the cartridge where its readable part ends, as
        one phrase ("unreadable bytes at byte N", "cut short: N bytes
        missing"); None when nothing is known to be."""
        if self.damaged_at is None:
            return None
        at_the_cut = self.missing and self.damaged_at == self._size
        found = [] if at_the_cut else [f"unreadable bytes at byte {self.damaged_at}"]
        if self.missing:
            found.append(f"cut short at byte {self._size}: {self.missing} bytes missing")
        return "; ".join(found)

    def _damaged_end(self) -> MediumError:
        return MediumError(f"{self.barcode}: damaged cartridge: {self.damage}")

    def block_at(self, offset: int) -> Block:
        """The block that starts at ``offset`` (EOD at the end of data).

        A damaged cartridge has no end of data where its readable part ends:
        that is a :class:`MediumError`, as is a block whose next header does
        not name it as the block before."""
        if offset >= self.end:
            if self.damaged_at is not None:
                raise self._damaged_end()
            return Block(BlockKind.EOD, offset, offset)
        header = self._header(offset)
        pos = offset + AWSTAPE_HEADER_SIZE + header.length
        length = header.length
        while not header.ends_record and not header.is_tapemark:
            header = self._header(pos)
            if header.begins_record or header.is_tapemark:
                raise MediumError(f"{self.barcode}: damaged cartridge: bad block header at byte {pos}")
            length += header.length
            pos += AWSTAPE_HEADER_SIZE + header.length
        if pos > self.end or (pos < self.end and self._header(pos).prev_length != header.length):
            raise MediumError(f"{self.barcode}: damaged cartridge: bad block header at byte {offset}")
        if header.is_tapemark:
            return Block(BlockKind.TAPEMARK, offset, pos)
        return Block(BlockKind.RECORD, offset, pos, length)

    def block_before(self, offset: int) -> Block | None:
        """The block that ends at ``offset``; ``None`` at BOT."""
        if offset <= 0:
            return None
        prev = self.tail_length if offset >= self.end else self._header(offset).prev_length
        end = offset
        pos = offset - AWSTAPE_HEADER_SIZE - prev
        length = prev
        header = self._header(pos, prev)
        if header.is_tapemark:
            return Block(BlockKind.TAPEMARK, pos, end)
        if not header.ends_record:
            raise MediumError(f"{self.barcode}: damaged cartridge: bad block header at byte {pos}")
        while not header.begins_record:
            prev = header.prev_length
            pos -= AWSTAPE_HEADER_SIZE + prev
            header = self._header(pos, prev)
            if header.is_tapemark or header.ends_record:
                raise MediumError(f"{self.barcode}: damaged cartridge: bad block header at byte {pos}")
            length += header.length
        return Block(BlockKind.RECORD, pos, end, length)

    def is_block_start(self, offset: int) -> bool:
        """Whether a block (record or tapemark) starts at ``offset``, or it is
        the end of data: a place a drive may stand."""
        if offset == 0 or offset == self.end:
            return True
        if not 0 < offset < self.end:
            return False
        try:
            header = self._header(offset)
        except TapeIOError:
            return False
        return header.is_tapemark or header.begins_record

    def read_record(self, offset: int, size: int) -> tuple[bytes | None, Block]:
        """Read the block at ``offset``: a record's bytes, or ``b""`` for a
        tapemark.  A record longer than ``size`` is not read: the bytes are
        ``None``, and the block still says where the record ends and how long
        it is (a drive passes over it, as st does)."""
        view = self._mapped(self.end)
        fast = self._read_common_record(view, offset, size)
        if fast is not None:
            return fast
        header = self._header(offset)
        if header.is_tapemark:
            return b"", Block(BlockKind.TAPEMARK, offset, offset + AWSTAPE_HEADER_SIZE)
        pieces: list[memoryview] = []
        pos = offset
        total = 0
        while True:
            data_at = pos + AWSTAPE_HEADER_SIZE
            seg_end = data_at + header.length
            total += header.length
            if total > size:
                while not header.ends_record:
                    header = self._header(seg_end)
                    total += header.length
                    seg_end += AWSTAPE_HEADER_SIZE + header.length
                return None, Block(BlockKind.RECORD, offset, seg_end, total)
            if seg_end > self.end:
                raise MediumError(f"{self.barcode}: damaged cartridge: record at byte {offset} is cut short")
            pieces.append(view[data_at:seg_end])
            pos = seg_end
            if header.ends_record:
                break
            header = self._header(pos)
        block = Block(BlockKind.RECORD, offset, pos, total)
        return (bytes(pieces[0]) if len(pieces) == 1 else b"".join(pieces)), block

    def _read_common_record(self, view: memoryview, offset: int, size: int) -> tuple[bytes, Block] | None:
        """The hot path of :meth:`read_record`: a well-formed record that fits
        ``size``.  One copy out of the page cache and no per-segment objects;
        ``None`` sends every other case (tapemarks, short buffers, damage) down
        the general path, which also says what is wrong."""
        end = self.end
        data_at = offset + AWSTAPE_HEADER_SIZE
        if data_at > end:
            return None
        length, _, flags, reserved = unpack_header_from(view, offset)
        data_end = data_at + length
        if flags == _WHOLE_RECORD and not reserved:
            if length <= size and data_end <= end:
                return view[data_at:data_end].tobytes(), Block(BlockKind.RECORD, offset, data_end, length)
            return None
        if flags != AWSTAPE_FLAG1_NEWREC or reserved:
            return None
        pieces = [view[data_at:data_end]]
        total = length
        while True:
            if data_end + AWSTAPE_HEADER_SIZE > end:
                return None
            prev = length
            length, prev_length, flags, reserved = unpack_header_from(view, data_end)
            data_at = data_end + AWSTAPE_HEADER_SIZE
            data_end = data_at + length
            total += length
            if (flags & ~AWSTAPE_FLAG1_ENDREC) or reserved or prev_length != prev or total > size or data_end > end:
                return None
            pieces.append(view[data_at:data_end])
            if flags:
                return b"".join(pieces), Block(BlockKind.RECORD, offset, data_end, total)

    def readinto_record(self, offset: int, view: memoryview) -> tuple[int, int] | None:
        """Read the record at ``offset`` straight into ``view`` with one
        ``preadv``: its segments' headers into small buffers and their data
        into consecutive slices of ``view``, which is where they belong when
        every segment but the last is full (as this module writes them).
        Returns ``(length, end offset)``; ``None`` for anything else (a
        tapemark, a longer record, other segmenting, damage), which the
        caller then reads the general way."""
        iov = self._iov
        if iov is None or iov[0] is not view.obj or iov[1] != len(view):
            iov = self._iov = self._iovecs(view)
        _, size, headers, pieces = iov
        end = self.end
        try:
            got = os.preadv(self._fd, pieces, offset)
        except OSError:
            return None
        pos = offset
        total = 0
        for i, header in enumerate(headers):
            length, prev_length, flags, reserved = unpack_header_from(header)
            if reserved or flags & AWSTAPE_FLAG1_TAPEMARK or bool(flags & AWSTAPE_FLAG1_NEWREC) != (i == 0):
                return None
            if i and prev_length != AWSTAPE_MAX_SEGMENT:
                return None
            total += length
            pos += AWSTAPE_HEADER_SIZE + length
            if pos > end or pos - offset > got or total > size:
                return None
            if flags & AWSTAPE_FLAG1_ENDREC:
                return total, pos
            if length != AWSTAPE_MAX_SEGMENT:
                return None
        return None

    @staticmethod
    def _iovecs(view: memoryview) -> tuple[object, int, list[bytearray], list[bytearray | memoryview]]:
        """The scatter list for :meth:`readinto_record` into ``view``."""
        size = len(view)
        headers = []
        pieces: list[bytearray | memoryview] = []
        for start in range(0, size, AWSTAPE_MAX_SEGMENT):
            header = bytearray(AWSTAPE_HEADER_SIZE)
            headers.append(header)
            pieces.append(header)
            pieces.append(view[start:start + AWSTAPE_MAX_SEGMENT])
        return view.obj, size, headers, pieces

    # -- writing ------------------------------------------------------------
    def _check_writable(self) -> None:
        if self.write_protected:
            raise WriteProtected(f"{self.barcode}: cartridge is write-protected", errno=_errno.EACCES)
        if not self.writable:
            raise WriteProtected(f"{self.barcode}: cartridge was opened read-only", errno=_errno.EACCES)

    def _mark_dirty(self) -> None:
        if not self._dirty_marked:
            self._save_metadata(clean=False)
            self._dirty_marked = True

    def _cut(self, offset: int) -> int:
        """Make ``offset`` the end of recorded data (a tape forgets what lies
        beyond the point it writes at); returns the length of the segment
        before it, which the next block's header names."""
        if offset == self.end and self._size == offset and self.damaged_at is None:
            return self.tail_length
        prev = 0 if offset == 0 else (
            self._header(offset).prev_length if offset < self.end else self.tail_length)
        self._mark_dirty()
        os.ftruncate(self._fd, offset)
        self.end = self._size = offset
        self.tail_length = prev
        self.damaged_at = None
        self.missing = 0
        return prev

    def _prepare_write(self, offset: int, needed: int) -> int:
        """Check protection, damage and room, then cut the tape at ``offset``."""
        self._check_writable()
        if offset > self.end:
            raise TapeIOError(f"{self.barcode}: write at byte {offset}, past the end of data at {self.end}")
        if self.damaged_at is not None and offset == self.end:
            raise TapeIOError(
                f"{self.barcode}: damaged cartridge: {self.damage}; "
                "not writing there (write from an earlier position to overwrite it)")
        if offset + needed > self.capacity:
            raise EndOfMedium(f"{self.barcode}: end of medium ({self.capacity} bytes)")
        self._mark_dirty()
        return self._cut(offset)

    def write_record(self, offset: int, data: bytes | bytearray | memoryview) -> Block:
        """Write one record at ``offset`` (one system call); everything after it is gone."""
        view = memoryview(data).cast("B")
        prev = self._prepare_write(offset, encoded_size(len(view)))
        pieces, size, last = record_segments(view, prev)
        self._pwritev(pieces, size, offset)
        self.tail_length = last
        return Block(BlockKind.RECORD, offset, self.end, len(view))

    def write_records(self, offset: int, records: list[memoryview]) -> int:
        """Write several records at ``offset`` in as few system calls as the
        kernel allows (fixed-block mode); returns the new end of data."""
        needed = sum(encoded_size(len(r)) for r in records)
        prev = self._prepare_write(offset, needed)
        pieces: list[bytes | memoryview] = []
        size = 0
        pos = offset
        for record in records:
            more, more_size, prev = record_segments(record, prev)
            pieces += more
            size += more_size
            if len(pieces) >= _IOV_BATCH:
                self._pwritev(pieces, size, pos)
                pos += size
                pieces, size = [], 0
        if pieces:
            self._pwritev(pieces, size, pos)
        self.tail_length = prev
        return self.end

    def _pwritev(self, pieces: list[bytes | memoryview], size: int, offset: int) -> None:
        written = os.pwritev(self._fd, pieces, offset)
        if written != size:
            raise TapeIOError(f"{self.barcode}: short write to {self.path}")
        self.end = offset + size
        self._size = max(self._size, self.end)

    def write_tapemark(self, offset: int) -> Block:
        """Write one tapemark at ``offset``; everything after it is gone."""
        self.write_tapemarks(offset, 1)
        return Block(BlockKind.TAPEMARK, offset, self.end)

    def write_tapemarks(self, offset: int, count: int) -> int:
        """Write ``count`` tapemarks at ``offset`` in one system call; returns
        the new end of data.  Everything after ``offset`` is gone."""
        prev = self._prepare_write(offset, AWSTAPE_HEADER_SIZE * count)
        raw = tapemark_header(prev) + tapemark_header(0) * (count - 1)
        self._pwritev([raw], len(raw), offset)
        self.tail_length = 0
        return self.end

    def erase(self, offset: int) -> None:
        """Erase from ``offset`` to the end of the medium."""
        self._check_writable()
        self._cut(offset)

    def close(self) -> None:
        """Make written data durable, then record where it ends."""
        if self._fd < 0:
            return
        self._unmap()
        try:
            if self._dirty_marked:
                os.fsync(self._fd)
                self._save_metadata(clean=True)
        finally:
            os.close(self._fd)
            self._fd = -1


def write_json(path: Path, data: dict) -> None:
    """Replace ``path`` with ``data`` as JSON, atomically and durably (:mod:`tapelib.durable`)."""
    replace_file(path, (json.dumps(data, indent=1) + "\n").encode())
