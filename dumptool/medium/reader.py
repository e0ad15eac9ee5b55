"""Reading an image: the 1 KiB blocks of the records a
:class:`~dumptool.medium.ends.Source` brings, volume by volume.

A filemark or EOF ends a volume; :meth:`RecordReader.next_volume` moves on
to the next one.  A source handed to the reader belongs to it from then on:
it closes it.  What a source does to the records before the reader sees
them (undo compression, for one) is the source's business: a caller wraps
its sources itself (:class:`~dumptool.medium.ends.SourceWrapper`).
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Callable, Iterator
from typing import BinaryIO

from tapelib import TapeDrive

from ..errors import MediumError
from ..format import TP_BSIZE
from .ends import Source, VolumeCursor, as_source


class RecordReader(VolumeCursor[Source]):
    """Yields the 1 KiB blocks of an image, volume by volume.

    Record boundaries do not matter to the caller: a tape's records (whose
    size the first read tells, see :attr:`record_size`) and a pipe's short
    reads come out as the same blocks.  At a filemark or EOF the current
    volume ends (:meth:`read_block` returns ``None``); :meth:`next_volume`
    asks ``next_volume(number)`` for the next source.
    """

    def __init__(self, source: "Source | TapeDrive | BinaryIO",
                 next_volume: Callable[[int], "Source | TapeDrive | BinaryIO"] | None = None, *,
                 volume: int = 1) -> None:
        super().__init__(as_source(source), volume)
        self._next_volume = next_volume
        self._buffer = bytearray()
        self._offset = 0
        self._ended = False
        self.blocks_read = 0
        #: Reads from the medium that brought data (records on a tape), in all volumes
        self.reads = 0

    @property
    def source(self) -> Source:
        return self._end

    @property
    def record_size(self) -> int | None:
        """A tape's record length in bytes, once the first record is read; ``None`` for files and pipes."""
        return self._end.record_size

    @property
    def ntrec(self) -> int | None:
        size = self.record_size
        return size // TP_BSIZE if size else None

    @property
    def at_end_of_volume(self) -> bool:
        return self._ended and self._offset >= len(self._buffer)

    @property
    def address(self) -> int | None:
        """Where the source's next read starts, as the medium counts (see
        :meth:`Sink.address`): blocks already buffered lie before it."""
        return self._end.address()

    @property
    def next_block_address(self) -> int | None:
        """Where the next block comes from as the medium counts: a file's byte
        offset; on a tape the logical block of the record it is in (``None``
        where the medium cannot tell)."""
        address = self.address
        left = len(self._buffer) - self._offset
        if address is None or left <= 0:
            return address
        return address - 1 if self._end.is_tape else address - left

    def seek(self, address: int) -> None:
        """Drop what is buffered and read on from *address* of this volume
        (a QFA position); the blocks there need not start with a header."""
        self._end.seek(address)
        self._drop_buffer()

    def read_block(self) -> bytes | None:
        """The next block of this volume, or ``None`` at its end."""
        while len(self._buffer) - self._offset < TP_BSIZE:
            if self._ended:
                if len(self._buffer) > self._offset:
                    raise MediumError(
                        f"{self._end.name}: volume {self._volume} ends inside a block "
                        f"({len(self._buffer) - self._offset} of {TP_BSIZE} bytes): the image is truncated",
                        _errno.EIO)
                return None
            chunk = self._next_chunk()
            if not chunk:
                continue
            if self._offset:
                del self._buffer[:self._offset]
                self._offset = 0
            self._buffer += chunk
        block = bytes(self._buffer[self._offset:self._offset + TP_BSIZE])
        self._offset += TP_BSIZE
        self.blocks_read += 1
        return block

    def read_blocks(self) -> bytes | None:
        """One or more whole blocks of this volume at once (what the next read
        brought, without copying it when it is whole blocks), or ``None`` at
        its end: :meth:`read_block` for a caller that slices blocks itself."""
        if self._offset >= len(self._buffer) and not self._ended:
            chunk = self._next_chunk()
            if chunk:
                self._buffer.clear()
                self._offset = 0
                if not len(chunk) % TP_BSIZE:
                    self.blocks_read += len(chunk) // TP_BSIZE
                    return chunk
                self._buffer += chunk
        block = self.read_block()
        if block is None:
            return None
        n = (len(self._buffer) - self._offset) // TP_BSIZE * TP_BSIZE
        if not n:
            return block
        rest = bytes(self._buffer[self._offset:self._offset + n])
        self._offset += n
        self.blocks_read += n // TP_BSIZE
        return block + rest

    def _drop_buffer(self) -> None:
        """Forget what was read ahead: the next block comes from a new read."""
        self._buffer.clear()
        self._offset = 0
        self._ended = False

    def _next_chunk(self) -> bytes:
        """The source's next read, counted as a record; ``b""``, and this
        volume ended, at its end."""
        chunk = self._end.read()
        if chunk:
            self._records += 1
            self.reads += 1
        else:
            self._ended = True
        return chunk

    def __iter__(self) -> Iterator[bytes]:
        """The remaining blocks of the current volume."""
        while (block := self.read_block()) is not None:
            yield block

    def next_volume(self) -> None:
        """Close this volume and open the next, through the caller's callback.
        Blocks not read from this volume are dropped."""
        if self._next_volume is None:
            raise MediumError(f"{self._end.name}: end of volume {self._volume} and no way to change volumes",
                              _errno.ENOSPC)
        if not self._end.can_change_volume:
            raise MediumError(f"{self._end.name}: a pipe cannot change volumes", _errno.ESPIPE)
        self._end.close()
        self._new_volume(as_source(self._next_volume(self._volume + 1)), self._volume + 1)
        self._drop_buffer()

    def close(self) -> None:
        self._end.close()

    def __enter__(self) -> "RecordReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
