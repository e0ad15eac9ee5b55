"""Writing an image: 1 KiB blocks packed into records and written to a
:class:`~dumptool.medium.ends.Sink`, volume after volume.

dump writes its stream of ``TP_BSIZE`` blocks in records of ``ntrec`` blocks
(the blocking factor).  A full cartridge (``EndOfMedium``, ENOSPC) makes the
writer ask the caller's :class:`VolumeChange` for the next volume and its
``TS_TAPE`` header, then write that header and replay the record that did not
fit, as Linux dump's ``rollforward`` does.

Nothing here knows a header field: headers come in as bytes, numbered by
:mod:`dumptool.format`.  A sink handed to the writer (or returned by the
volume change) belongs to it from then on: it closes it.  What a sink does
with a record (compress it, for one) is the sink's business: a caller that
wants a step between the writer and the medium wraps the sinks itself
(:class:`~dumptool.medium.ends.SinkWrapper`).
"""

from __future__ import annotations

import dataclasses
import errno as _errno
from collections.abc import Callable
from typing import BinaryIO, Protocol, runtime_checkable

from tapelib import EndOfMedium, TapeDrive

from ..errors import DumpError, MediumError
from ..format import TP_BSIZE
from .ends import Gathering, Sink, VolumeCursor, as_sink

#: The blocking factors pydump's ``-b`` accepts (real dump allows 1..1024).
MIN_NTREC = 4
MAX_NTREC = 256


def check_blocking_factor(ntrec: int) -> int:
    """``ntrec`` if pydump accepts it as a blocking factor, else a :class:`DumpError`."""
    if not isinstance(ntrec, int) or not MIN_NTREC <= ntrec <= MAX_NTREC:
        raise DumpError(f"blocking factor {ntrec} is out of range {MIN_NTREC} to {MAX_NTREC}")
    return ntrec


@dataclasses.dataclass(frozen=True)
class VolumeRequest:
    """What the writer tells the caller when it needs another volume.

    The new volume's ``TS_TAPE`` header takes ``first_block`` as its
    ``c_tapea``, and ``firstrec`` as its ``c_firstrec``: where that block
    stands in the stream as written, counting the headers of earlier volume
    changes that took no number (restore counts the blocks it read, headers
    too, and skips as duplicates those before ``c_firstrec``; dump's
    ``firstrec`` counts the same).  ``replay`` holds the blocks the writer
    will write again right after the header (the record the full volume
    refused, starting at block ``first_block``).  A change the caller asked
    for (:meth:`RecordWriter.change_volume`) replays nothing, and its header
    takes a block number of its own.
    """

    volume: int
    first_block: int
    replay: tuple[bytes, ...] = ()
    firstrec: int | None = None  # None: first_block

    @property
    def first_record(self) -> int:
        """``c_firstrec`` for the new volume's header."""
        return self.first_block if self.firstrec is None else self.firstrec


@dataclasses.dataclass(frozen=True)
class NewVolume:
    """The caller's answer: where to write the next volume and its header
    (one or more whole ``TP_BSIZE`` blocks, normally one ``TS_TAPE``)."""

    sink: "Sink | TapeDrive | BinaryIO"
    header: bytes


@runtime_checkable
class VolumeChange(Protocol):
    """Mounts the next volume for a :class:`RecordWriter`."""

    def next_volume(self, request: VolumeRequest) -> NewVolume:
        """Make volume ``request.volume`` ready and return it with its header.
        Raise a :class:`DumpError` to abort the dump instead."""


class RecordWriter(VolumeCursor[Sink]):
    """Packs 1 KiB blocks into records of ``ntrec`` blocks and writes them.

    ``next_block`` is the stream index the next block will have (what dump
    keeps in ``c_tapea``).  ``position`` says where the next record goes.
    Without a ``volume_change`` a full tape is a :class:`MediumError`.

    ``coalesce`` (bytes, 0 for none) lets a writer to a file or a pipe, where
    record boundaries do not survive anyway, keep up to that much and hand
    it to the sink in one call (``writev``, no copy): the bytes that reach
    the medium are the same, in far fewer system calls.  A tape always gets
    one ``write`` per record.

    A sink that is no byte stream (a tape, or a wrapper that wants whole
    records, as :class:`~dumptool.compression.CompressingSink` does) gets
    every record whole, in one call of its own.
    """

    def __init__(self, sink: "Sink | TapeDrive | BinaryIO", ntrec: int,
                 volume_change: VolumeChange | None = None, *, first_block: int = 0,
                 volume: int = 1, coalesce: int = 0) -> None:
        self.ntrec = check_blocking_factor(ntrec)
        super().__init__(as_sink(sink), volume)
        self._coalesce = max(0, coalesce)
        self._change = volume_change
        self._buffer = bytearray()
        self._next_block = first_block
        self._closed = False
        #: Blocks written that took no number: the headers of volumes a
        #: record was replayed on (stream position = number + this).
        self._unnumbered = 0
        #: Byte-stream mode: blocks queued as they came (``_gathering``) until
        #: ``coalesce`` bytes are; ``_partial`` blocks of them after the last
        #: whole record of the volume.
        self._stream = bool(self._coalesce) and self._end.byte_stream
        self._gathering = Gathering(self._end, self._coalesce)
        self._partial = 0

    @property
    def record_size(self) -> int:
        return self.ntrec * TP_BSIZE

    @property
    def next_block(self) -> int:
        """Index of the next block in the whole stream (``c_tapea`` to give it)."""
        return self._next_block

    @property
    def sink(self) -> Sink:
        return self._end

    @property
    def unnumbered(self) -> int:
        """Volume headers written that took no block number (a replay's)."""
        return self._unnumbered

    @property
    def record_index(self) -> int:
        """The number (from 0, in this volume) of the record the next block goes into."""
        return self._records

    @property
    def compressed(self) -> bool:
        """Whether records' sizes on the medium differ from the blocking factor's (compressed)."""
        return self._end.sizes_vary

    @property
    def blocks_pending(self) -> int:
        """Blocks after the last whole record (less than a record): accepted
        but not yet written, the last of a volume's records still to fill."""
        return self._partial if self._stream else len(self._buffer) // TP_BSIZE

    @property
    def end_blocks_needed(self) -> int:
        """How many ``TS_END`` blocks end the image now, filling the last
        record: at least one, a whole record when aligned.  That is dump's
        ``ntrec - (c_tapea mod ntrec)`` until a full tape made the writer
        replay a record: the replayed header shifts the records by one
        block but takes no number."""
        return self.ntrec - self.blocks_pending

    @property
    def address(self) -> int | None:
        """Where the record the next block goes into starts, as the medium
        counts (the QFA position: a tape's logical block, a file's byte
        offset); ``None`` where the medium cannot tell (a pipe)."""
        if not self._stream:
            return self._end.address()
        self.flush()
        end = self._end.address()
        return None if end is None else end - self._partial * TP_BSIZE

    def write(self, block: bytes) -> int:
        """Queue one or more whole blocks; full records are written at once
        (or, coalescing, once enough are queued).  Returns the stream index
        of the first block given."""
        self._check_open()
        if not block or len(block) % TP_BSIZE:
            raise ValueError(f"blocks are {TP_BSIZE} bytes; got {len(block)}")
        first = self._next_block
        if self._stream:
            self._queue((block if type(block) is bytes else bytes(block),), len(block))
            return first
        buffer = self._buffer
        size = self.record_size
        if len(buffer) + len(block) < size:
            buffer += block
            self._next_block += len(block) // TP_BSIZE
            return first
        # Fill the pending record, then write whole records straight from
        # ``block`` (one copy each instead of three through the buffer).
        view = memoryview(block)
        start = 0
        if buffer:
            start = size - len(buffer)
            buffer += view[:start]
            self._next_block += start // TP_BSIZE
            self._flush_full()
        # A replayed record (a volume change) leaves blocks pending: they go first.
        while len(block) - start >= size and not buffer:
            self._next_block += self.ntrec
            self._write_record(bytes(view[start:start + size]))
            start += size
        if start < len(block):
            buffer += view[start:]
            self._next_block += (len(block) - start) // TP_BSIZE
            self._flush_full()
        return first

    def write_parts(self, parts: tuple[bytes, ...] | list[bytes], size: int) -> int:
        """:meth:`write` of ``b"".join(parts)``, whose ``size`` the caller
        knows, without joining them where the medium does not need it (the
        parts need not be whole blocks; they must not change afterwards).
        Returns the stream index of the first block."""
        if not self._stream or self._closed or not size or size % TP_BSIZE:
            return self.write(b"".join(parts))
        first = self._next_block
        self._queue(parts, size)
        return first

    def flush(self) -> None:
        """Write everything queued (coalescing; whole records otherwise are
        written already)."""
        self._gathering.flush()

    def finish(self, pad: bytes | Callable[[int], bytes] | None = None) -> None:
        """Write the last record and close the sink.

        A partial last record is filled with ``pad``: a fixed block, or a
        function giving the block for a stream index (so that each ``TS_END``
        gets its own ``c_tapea``, as dump writes them).  Padding blocks count
        in ``next_block``.  The usual ending writes :attr:`end_blocks_needed`
        ``TS_END`` blocks first, so that nothing is left to pad.
        """
        self._check_open()
        if self.blocks_pending:
            if pad is None:
                raise ValueError(f"{self.blocks_pending} blocks left over: give a pad block")
            while self.blocks_pending:
                filler = pad(self._next_block) if callable(pad) else pad
                if len(filler) != TP_BSIZE:
                    raise ValueError(f"a pad block is {TP_BSIZE} bytes; got {len(filler)}")
                self.write(filler)
        self.flush()
        self._closed = True
        self._end.close()

    def abort(self) -> None:
        """Close the sink without writing what is pending."""
        if not self._closed:
            self._closed = True
            self._buffer.clear()
            self._gathering.drop()
            self._end.close()

    def change_volume(self) -> None:
        """End this volume at the current record boundary and start the next
        (a size limit reached, like dump's ``-B``).  The header the caller
        returns takes the next block numbers."""
        self._check_open()
        if self.blocks_pending:
            raise ValueError(f"{self.blocks_pending} blocks pending: a volume ends on a record boundary")
        self.flush()
        new = self._mount(VolumeRequest(self._volume + 1, self._next_block,
                                        firstrec=self._next_block + self._unnumbered))
        self._check_header(new.header)
        if self._stream:
            self._queue((bytes(new.header),), len(new.header))
            return
        self._buffer += new.header
        self._next_block += len(new.header) // TP_BSIZE
        self._flush_full()

    # -- internals ---------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("the record writer is closed")

    def _check_header(self, header: bytes) -> None:
        if not header or len(header) % TP_BSIZE:
            raise ValueError(f"a volume header is whole {TP_BSIZE}-byte blocks; got {len(header)} bytes")

    def _queue(self, parts: "tuple[bytes, ...] | list[bytes]", size: int) -> None:
        """Byte-stream mode: take ``size`` bytes (whole blocks) in ``parts``."""
        blocks = size // TP_BSIZE
        self._next_block += blocks
        partial = self._partial + blocks
        if partial >= self.ntrec:
            self._records += partial // self.ntrec
            partial %= self.ntrec
        self._partial = partial
        self._gathering.add(parts, size)

    def _flush_full(self) -> None:
        size = self.record_size
        while len(self._buffer) >= size:
            record = bytes(self._buffer[:size])
            del self._buffer[:size]
            self._write_record(record)

    def _write_record(self, record: bytes) -> None:
        try:
            self._end.write_record(record)
        except EndOfMedium:
            self._roll_forward(record)
            return
        self._records += 1

    def _roll_forward(self, record: bytes) -> None:
        """The volume is full and ``record`` was not written: write it again on
        the next volume, after that volume's header (dump's rollforward)."""
        full = self._end.name
        first = self._next_block - len(self._buffer) // TP_BSIZE - self.ntrec
        blocks = tuple(record[i:i + TP_BSIZE] for i in range(0, len(record), TP_BSIZE))
        if self._change is None:
            raise MediumError(f"{full}: end of medium on volume {self._volume} and no way to change volumes",
                              _errno.ENOSPC)
        new = self._mount(VolumeRequest(self._volume + 1, first, blocks, firstrec=first + self._unnumbered))
        self._check_header(new.header)
        # The header repeats the number of the first replayed block, as dump's
        # does, so ``next_block`` stays where it is.
        self._unnumbered += len(new.header) // TP_BSIZE
        head = new.header + record
        size = self.record_size
        try:
            self._end.write_record(head[:size])
        except EndOfMedium:
            raise MediumError(f"{self._end.name}: end of medium at the start of volume {self._volume}",
                              _errno.ENOSPC) from None
        self._records += 1
        # What is left of the replayed record goes in front of what was pending.
        self._buffer[0:0] = head[size:]

    def _mount(self, request: VolumeRequest) -> NewVolume:
        if self._change is None:
            raise MediumError(f"{self._end.name}: no way to change volumes", _errno.ENOSPC)
        old = self._end
        try:
            old.close()
        except MediumError as exc:
            # A full cartridge may refuse even its closing filemark; restore
            # stops at end of data all the same.
            if exc.errno != _errno.ENOSPC:
                raise
        new = self._change.next_volume(request)
        self._new_volume(as_sink(new.sink), request.volume)
        self._gathering = Gathering(self._end, self._coalesce)
        self._partial = 0
        # Coalescing goes on only where the new volume is a byte stream too
        # (a replay after a full tape leaves blocks in the record buffer).
        self._stream = bool(self._coalesce) and self._end.byte_stream and not self._buffer
        return new

    def __enter__(self) -> "RecordWriter":
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None:
            self.abort()

