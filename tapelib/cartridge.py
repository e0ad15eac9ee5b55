"""Loopback cartridges: an AWSTAPE file plus a small metadata sidecar.

A :class:`Cartridge` knows the file layout and nothing about positions or
drives: it answers "what block starts at byte N", "what block ends at byte
N", reads a record, and appends records and tapemarks (truncating whatever
lay beyond, as writing in the middle of a tape does).

The sidecar (``NAME.json`` beside ``NAME.awstape``) holds the barcode, the
capacity, the early-warning zone, the write-protect tab and, while no writer
has the cartridge open, where the recorded data ends.  A cartridge without a
sidecar (one made by another emulator) gets the defaults.  A writer killed
mid-record leaves the sidecar marked dirty; the next open scans the file and
ends the tape after the last complete record.
"""

from __future__ import annotations

import enum
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .awstape import (
    AWSTAPE_HEADER_SIZE,
    SegmentHeader,
    encoded_size,
    record_segments,
    tapemark_header,
    unpack_header,
)
from .errors import BufferTooSmall, EndOfMedium, NotACartridge, TapeIOError, WriteProtected

CARTRIDGE_SUFFIX = ".awstape"
METADATA_FORMAT = "snapdump-cartridge"
DEFAULT_CAPACITY = 10 * 1024**3
#: Fraction of the capacity given to the early-warning zone by default.
EARLY_WARNING_FRACTION = 50
MIN_EARLY_WARNING = 64 * 1024


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


class Cartridge:
    """An open loopback cartridge file."""

    def __init__(self, path: Path, writable: bool) -> None:
        self.path = Path(path)
        self.writable = writable
        meta = self._read_metadata()
        self.barcode: str = meta.get("barcode", self.path.stem)
        self.capacity: int = int(meta.get("capacity", DEFAULT_CAPACITY))
        self.early_warning: int = int(meta.get("early_warning", default_early_warning(self.capacity)))
        self.write_protected: bool = bool(meta.get("write_protected", False))
        flags = os.O_RDWR if writable and not self.write_protected else os.O_RDONLY
        try:
            self._fd = os.open(self.path, flags | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotACartridge(f"{self.path}: no such cartridge file") from None
        except OSError as exc:
            raise NotACartridge(f"{self.path}: {exc.strerror}") from None
        self._dirty_marked = False
        self._next_header: tuple[int, bytes] | None = None
        self.damaged_at: int | None = None
        size = os.fstat(self._fd).st_size
        if meta.get("clean") and meta.get("end") == size:
            self.end = size
            self.tail_length = int(meta.get("tail_length", 0))
        else:
            try:
                self._scan(size)
            except NotACartridge:
                os.close(self._fd)
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
        _write_json(metadata_path(path), {
            "format": METADATA_FORMAT, "version": 1, "barcode": barcode,
            "capacity": capacity, "early_warning": zone, "write_protected": False,
            "clean": True, "end": 0, "tail_length": 0,
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
        return meta

    def _save_metadata(self, clean: bool) -> None:
        _write_json(metadata_path(self.path), {
            "format": METADATA_FORMAT, "version": 1, "barcode": self.barcode,
            "capacity": self.capacity, "early_warning": self.early_warning,
            "write_protected": self.write_protected, "clean": clean,
            "end": self.end, "tail_length": self.tail_length,
        })

    @property
    def early_warning_at(self) -> int:
        """Byte offset where the early-warning zone begins."""
        return self.capacity - self.early_warning

    # -- scanning ---------------------------------------------------------
    def _scan(self, size: int) -> None:
        """Walk every header from BOT to find where recorded data ends.

        A record cut short by the end of the file (a writer killed mid-record)
        ends the tape before that record.  Bytes that cannot be headers with
        more data after them mark the cartridge damaged there: it reads up to
        that point and refuses writes, so nothing beyond is destroyed.
        """
        offset = 0
        prev = 0
        good_end = 0
        good_tail = 0
        in_record = False
        while offset < size:
            if size - offset < AWSTAPE_HEADER_SIZE:
                break  # torn header
            header = unpack_header(os.pread(self._fd, AWSTAPE_HEADER_SIZE, offset))
            if header is None or header.prev_length != prev or (
                    header.begins_record == in_record and not header.is_tapemark) or (
                    header.is_tapemark and in_record):
                if offset == 0:
                    raise NotACartridge(f"{self.path}: not a loopback cartridge (no AWSTAPE header at the start)")
                self.damaged_at = offset
                break
            seg_end = offset + AWSTAPE_HEADER_SIZE + header.length
            if seg_end > size:
                break  # torn segment
            prev = header.length
            offset = seg_end
            if header.is_tapemark or header.ends_record:
                in_record = False
                good_end, good_tail = offset, prev
            else:
                in_record = True
        self.end = good_end
        self.tail_length = good_tail

    # -- reading ------------------------------------------------------------
    def _header(self, offset: int) -> SegmentHeader:
        cached = self._next_header
        if cached is not None and cached[0] == offset:
            raw = cached[1]
        else:
            raw = os.pread(self._fd, AWSTAPE_HEADER_SIZE, offset)
        header = unpack_header(raw) if len(raw) == AWSTAPE_HEADER_SIZE else None
        if header is None:
            raise TapeIOError(f"{self.barcode}: damaged cartridge: bad block header at byte {offset}")
        return header

    def block_at(self, offset: int) -> Block:
        """The block that starts at ``offset`` (EOD at the end of data)."""
        if offset >= self.end:
            return Block(BlockKind.EOD, offset, offset)
        header = self._header(offset)
        if header.is_tapemark:
            return Block(BlockKind.TAPEMARK, offset, offset + AWSTAPE_HEADER_SIZE)
        length = header.length
        pos = offset + AWSTAPE_HEADER_SIZE + header.length
        while not header.ends_record:
            header = self._header(pos)
            length += header.length
            pos += AWSTAPE_HEADER_SIZE + header.length
        return Block(BlockKind.RECORD, offset, pos, length)

    def block_before(self, offset: int) -> Block | None:
        """The block that ends at ``offset``; ``None`` at BOT."""
        if offset <= 0:
            return None
        prev = self.tail_length if offset >= self.end else self._header(offset).prev_length
        end = offset
        pos = offset - AWSTAPE_HEADER_SIZE - prev
        length = prev
        header = self._header(pos)
        if header.is_tapemark:
            return Block(BlockKind.TAPEMARK, pos, end)
        while not header.begins_record:
            pos -= AWSTAPE_HEADER_SIZE + header.prev_length
            header = self._header(pos)
            length += header.length
        return Block(BlockKind.RECORD, pos, end, length)

    def read_record(self, offset: int, size: int) -> tuple[bytes, Block]:
        """Read the block at ``offset``: a record's bytes, or ``b""`` for a
        tapemark.  A record longer than ``size`` raises BufferTooSmall and is
        still passed over (the returned block is in the exception's note)."""
        header = self._header(offset)
        if header.is_tapemark:
            return b"", Block(BlockKind.TAPEMARK, offset, offset + AWSTAPE_HEADER_SIZE)
        pieces: list[bytes] = []
        pos = offset
        total = 0
        while True:
            data_at = pos + AWSTAPE_HEADER_SIZE
            seg_end = data_at + header.length
            want = header.length + (AWSTAPE_HEADER_SIZE if seg_end < self.end else 0)
            chunk = os.pread(self._fd, want, data_at) if want else b""
            if len(chunk) < want:
                raise TapeIOError(f"{self.barcode}: damaged cartridge: record at byte {offset} is cut short")
            if want > header.length:
                self._next_header = (seg_end, chunk[header.length:])
                chunk = chunk[: header.length]
            pieces.append(chunk)
            total += header.length
            pos = seg_end
            if header.ends_record:
                break
            header = self._header(pos)
        block = Block(BlockKind.RECORD, offset, pos, total)
        if total > size:
            raise BufferTooSmall(
                f"{self.barcode}: record of {total} bytes does not fit a {size}-byte read buffer")
        return (pieces[0] if len(pieces) == 1 else b"".join(pieces)), block

    # -- writing ------------------------------------------------------------
    def _check_writable(self) -> None:
        if self.write_protected:
            raise WriteProtected(f"{self.barcode}: cartridge is write-protected")
        if not self.writable:
            raise WriteProtected(f"{self.barcode}: drive was opened read-only", errno=9)

    def _cut(self, offset: int) -> int:
        """Make ``offset`` the end of recorded data (a tape forgets what lies
        beyond the point it writes at); returns the length of the segment
        before it, which the next block's header names."""
        if offset >= self.end and self.damaged_at is None:
            return self.tail_length
        prev = 0 if offset == 0 else (
            self._header(offset).prev_length if offset < self.end else self.tail_length)
        if not self._dirty_marked:
            self._save_metadata(clean=False)
            self._dirty_marked = True
        os.ftruncate(self._fd, offset)
        self.end = offset
        self.tail_length = prev
        self.damaged_at = None
        self._next_header = None
        return prev

    def _prepare_write(self, offset: int, needed: int) -> int:
        """Check protection and room, then cut the tape at ``offset``."""
        self._check_writable()
        if self.damaged_at is not None and offset >= self.end:
            raise TapeIOError(
                f"{self.barcode}: damaged cartridge: unreadable bytes at {self.damaged_at}; "
                "write from an earlier position or erase it")
        if offset + needed > self.capacity:
            raise EndOfMedium(f"{self.barcode}: end of medium ({self.capacity} bytes)")
        if not self._dirty_marked:
            self._save_metadata(clean=False)
            self._dirty_marked = True
        return self._cut(offset)

    def write_record(self, offset: int, data: bytes | bytearray | memoryview) -> Block:
        """Write one record at ``offset``; everything after it is gone."""
        view = memoryview(data).cast("B")
        prev = self._prepare_write(offset, encoded_size(len(view)))
        pieces, size, last = record_segments(view, prev)
        written = os.pwritev(self._fd, pieces, offset)
        if written != size:
            raise TapeIOError(f"{self.barcode}: short write to {self.path}")
        self.end = offset + size
        self.tail_length = last
        return Block(BlockKind.RECORD, offset, self.end, len(view))

    def write_tapemark(self, offset: int) -> Block:
        """Write one tapemark at ``offset``; everything after it is gone."""
        prev = self._prepare_write(offset, AWSTAPE_HEADER_SIZE)
        os.pwrite(self._fd, tapemark_header(prev), offset)
        self.end = offset + AWSTAPE_HEADER_SIZE
        self.tail_length = 0
        return Block(BlockKind.TAPEMARK, offset, self.end)

    def erase(self, offset: int) -> None:
        """Erase from ``offset`` to the end of the medium."""
        self._check_writable()
        self._cut(offset)

    def close(self) -> None:
        """Make written data durable, then record where it ends."""
        if self._fd < 0:
            return
        try:
            if self._dirty_marked:
                os.fsync(self._fd)
                self._save_metadata(clean=True)
        finally:
            os.close(self._fd)
            self._fd = -1


def _write_json(path: Path, data: dict) -> None:
    """Replace ``path`` atomically with ``data`` as JSON."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)
