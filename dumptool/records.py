"""The record layer: 1 KiB tape blocks packed into records and moved.

dump writes its stream of ``TP_BSIZE`` blocks in records of ``ntrec`` blocks
(the blocking factor); restore reads them back.  This module moves records to
and from a :class:`tapelib.TapeDrive` (one ``write`` per record, the record
length detected on read), a plain file, or a pipe (stdout/stdin), and handles
the end of a volume:

* writing, a full cartridge (``EndOfMedium``, ENOSPC) makes the writer ask the
  caller's :class:`VolumeChange` for the next volume and its ``TS_TAPE``
  header, then write that header and replay the record that did not fit, as
  Linux dump's ``rollforward`` does;
* reading, a filemark or EOF ends the volume; :meth:`RecordReader.next_volume`
  moves on to the next one.

Nothing here knows a header field: headers come in as bytes, numbered by
:mod:`dumptool.format`.  Sinks and sources handed to a writer or reader belong
to it from then on: it closes them.
"""

from __future__ import annotations

import dataclasses
import errno as _errno
import os
import stat
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, BinaryIO, Protocol, runtime_checkable

from tapelib import EndOfMedium, TapeDrive, TapeError, is_tape_device, open_device

from .errors import DumpError, MediumError
from .format import MAXNTREC, TP_BSIZE

if TYPE_CHECKING:
    from .compression import RecordCompressor

#: The blocking factors pydump's ``-b`` accepts (real dump allows 1..1024).
MIN_NTREC = 4
MAX_NTREC = 256

#: Read buffer for the first record of a tape: large enough for any record
#: real dump writes (``-b 1024``), so the true record length comes back.
_MAX_RECORD = MAXNTREC * TP_BSIZE

#: Read size for files and pipes (restore fills a 32-block buffer).
_STREAM_READ = 32 * TP_BSIZE
#: What reads of a plain file grow to, doubling from _STREAM_READ (fewer
#: calls for a long read; a seek starts small again, for -Q).
_FILE_READ = 1024 * TP_BSIZE

#: Most buffers one ``writev`` takes.
_IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024


def volume_file(prefix: str, volume: int) -> str:
    """The file of volume *volume* of a ``-M`` dump: *prefix* and the number in
    three digits (``home.001``, ``home.002``, ...), as Linux dump and restore
    name them (``%s%03d``)."""
    return f"{prefix}{volume:03d}"


def check_blocking_factor(ntrec: int) -> int:
    """``ntrec`` if pydump accepts it as a blocking factor, else a :class:`DumpError`."""
    if not isinstance(ntrec, int) or not MIN_NTREC <= ntrec <= MAX_NTREC:
        raise DumpError(f"blocking factor {ntrec} is out of range {MIN_NTREC} to {MAX_NTREC}")
    return ntrec


@dataclasses.dataclass(frozen=True)
class TapePosition:
    """Where the next record goes (writer) or came from (reader).

    On a tape ``file_number`` and ``block_number`` are the drive's own (as
    ``mt status`` shows them, -1 when the drive does not know); on a file or a
    pipe ``file_number`` is 0 and ``block_number`` counts records from the
    start of the volume.
    """

    volume: int
    file_number: int
    block_number: int


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


# -- sinks ---------------------------------------------------------------------


class Sink:
    """Where records go: a tape drive, a file or a pipe."""

    name: str = "output"
    is_tape: bool = False
    #: True where record boundaries do not survive (a file or a pipe), so a
    #: writer may hand over many records, or parts of them, in one call.
    byte_stream: bool = False

    def write_record(self, record: bytes) -> None:
        raise NotImplementedError

    def write_parts(self, parts: list[bytes]) -> None:
        """Write *parts* one after the other (a byte stream's sinks only)."""
        self.write_record(b"".join(parts))

    def position(self, records: int) -> tuple[int, int]:
        """(file number, block number) of the next record; ``records`` is how
        many this sink has taken, used where the medium cannot tell."""
        return 0, records

    def address(self) -> int | None:
        """Where the next record starts as the medium counts (see :meth:`_TapeEnd.address`)."""
        return None

    def close(self) -> None:
        raise NotImplementedError


class _TapeEnd:
    """What a tape sink and a tape source share: the drive, its position, closing."""

    is_tape = True

    def __init__(self, drive: TapeDrive) -> None:
        self.drive = drive
        self.name = drive.name

    def position(self, records: int) -> tuple[int, int]:
        try:
            status = self.drive.status()
        except TapeError as exc:
            raise MediumError(f"{self.name}: cannot read the tape position: {exc.message}", exc.errno) from None
        return status.file_number, status.block_number

    def address(self) -> int | None:
        """The drive's logical block address (``MTIOCPOS``, filemarks counted):
        the position Linux dump's QFA file records and restore seeks to
        (``MTSEEK``).  ``None`` when the drive cannot tell."""
        try:
            return self.drive.tell()
        except TapeError:
            return None

    def close(self) -> None:
        try:
            self.drive.close()
        except TapeError as exc:
            raise MediumError(f"{self.name}: error closing the tape: {exc.message}", exc.errno) from None


class _StreamEnd:
    """What a file or pipe sink and source share: the descriptor and closing it."""

    def __init__(self, fd: int, name: str, owned: bool) -> None:
        self.fd = fd
        self.name = name
        self._owned = owned
        self._closed = False

    def address(self) -> int | None:
        """The byte offset of the descriptor (what dump's QFA records for a
        file); ``None`` on a pipe."""
        try:
            return os.lseek(self.fd, 0, os.SEEK_CUR)
        except OSError:
            return None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owned:
            try:
                os.close(self.fd)
            except OSError as exc:
                raise MediumError(f"{self.name}: error closing: {exc.strerror}", exc.errno) from None


class _TapeSink(_TapeEnd, Sink):
    def write_record(self, record: bytes) -> None:
        # EndOfMedium passes through: the writer changes volume on it.
        try:
            written = self.drive.write(record)
        except EndOfMedium:
            raise
        except TapeError as exc:
            raise MediumError(f"{self.name}: write error: {exc.message}", exc.errno) from None
        if written != len(record):
            raise MediumError(f"{self.name}: short write ({written} of {len(record)} bytes)", _errno.EIO)



class _StreamSink(_StreamEnd, Sink):
    byte_stream = True

    def write_record(self, record: bytes) -> None:
        view = memoryview(record)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError as exc:
            raise MediumError(f"{self.name}: write error: {exc.strerror}", exc.errno) from None

    def write_parts(self, parts: list[bytes]) -> None:
        # One writev per IOV_MAX parts: the kernel gathers them, no copy here.
        fd = self.fd
        try:
            for start in range(0, len(parts), _IOV_MAX):
                batch = parts[start:start + _IOV_MAX]
                want = sum(map(len, batch))
                done = os.writev(fd, batch)
                if done != want:  # a short write (a signal, a full disk): finish it part by part
                    for part in batch:
                        if done >= len(part):
                            done -= len(part)
                            continue
                        view = memoryview(part)[done:]
                        done = 0
                        while view:
                            view = view[os.write(fd, view):]
        except OSError as exc:
            raise MediumError(f"{self.name}: write error: {exc.strerror}", exc.errno) from None


def as_sink(target: "Sink | TapeDrive | BinaryIO | int", name: str | None = None) -> Sink:
    """Wrap a tape drive, a binary file object or a file descriptor as a :class:`Sink`.

    A file object or descriptor handed in is closed with the sink, except
    stdout's."""
    if isinstance(target, Sink):
        return target
    if isinstance(target, TapeDrive):
        return _TapeSink(target)
    if isinstance(target, int):
        return _StreamSink(target, name or f"fd {target}", owned=target > 2)
    target.flush()
    fd = os.dup(target.fileno())
    if target.fileno() > 2:
        target.close()
    return _StreamSink(fd, name or getattr(target, "name", "output"), owned=True)


def open_sink(name: str) -> Sink:
    """Open ``name`` for writing an image: a tape device (``is_tape_device``),
    ``-`` for stdout, or a plain file (created or truncated, as dump does)."""
    if name == "-":
        return _StreamSink(1, "standard output", owned=False)
    if is_tape_device(name):
        try:
            return _TapeSink(open_device(name, writable=True))
        except TapeError as exc:
            raise MediumError(f"cannot open output {name}: {exc.message}", exc.errno) from None
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    except OSError as exc:
        raise MediumError(f"cannot open output {name}: {exc.strerror}", exc.errno) from None
    return _StreamSink(fd, name, owned=True)


# -- writer --------------------------------------------------------------------


class RecordWriter:
    """Packs 1 KiB blocks into records of ``ntrec`` blocks and writes them.

    ``next_block`` is the stream index the next block will have (what dump
    keeps in ``c_tapea``).  ``position`` says where the next record goes.
    Without a ``volume_change`` a full tape is a :class:`MediumError`.

    ``coalesce`` (bytes, 0 for none) lets a writer to a file or a pipe, where
    record boundaries do not survive anyway, keep up to that much and hand
    it to the sink in one call (``writev``, no copy): the bytes that reach
    the medium are the same, in far fewer system calls.  A tape always gets
    one ``write`` per record.

    ``compressor`` (:class:`~dumptool.compression.RecordCompressor`) makes a
    compressed image (``dump -z``/``-j``): every volume's sink is wrapped so
    that its first record goes as is and every later one compressed alone;
    records then reach the wrapper whole, one call each.
    """

    def __init__(self, sink: "Sink | TapeDrive | BinaryIO", ntrec: int,
                 volume_change: VolumeChange | None = None, *, first_block: int = 0,
                 volume: int = 1, coalesce: int = 0, compressor: "RecordCompressor | None" = None) -> None:
        self.ntrec = check_blocking_factor(ntrec)
        self._compressor = compressor
        self._coalesce = max(0, coalesce)
        self._sink = self._wrap(as_sink(sink))
        self._change = volume_change
        self._buffer = bytearray()
        self._next_block = first_block
        self._volume = volume
        self._records_this_volume = 0
        self._closed = False
        #: Blocks written that took no number: the headers of volumes a
        #: record was replayed on (stream position = number + this).
        self._unnumbered = 0
        #: Byte-stream mode: blocks queued as they came (``_parts``) until
        #: ``coalesce`` bytes are; ``_partial`` blocks of them after the last
        #: whole record of the volume.
        self._stream = bool(self._coalesce) and self._sink.byte_stream
        self._parts: list[bytes] = []
        self._queued = 0
        self._partial = 0

    @property
    def record_size(self) -> int:
        return self.ntrec * TP_BSIZE

    @property
    def next_block(self) -> int:
        """Index of the next block in the whole stream (``c_tapea`` to give it)."""
        return self._next_block

    @property
    def volume(self) -> int:
        return self._volume

    @property
    def unnumbered(self) -> int:
        """Volume headers written that took no block number (a replay's)."""
        return self._unnumbered

    @property
    def sink(self) -> Sink:
        return self._sink

    @property
    def record_index(self) -> int:
        """The number (from 0, in this volume) of the record the next block goes into."""
        return self._records_this_volume

    @property
    def compressed(self) -> bool:
        """Whether records are compressed (their sizes on the medium differ)."""
        return self._compressor is not None

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
    def position(self) -> TapePosition:
        """Where the next full record will be written (file history uses it)."""
        file_number, block_number = self._sink.position(self._records_this_volume)
        return TapePosition(self._volume, file_number, block_number)

    @property
    def address(self) -> int | None:
        """Where the record the next block goes into starts, as the medium
        counts (the QFA position: a tape's logical block, a file's byte
        offset); ``None`` where the medium cannot tell (a pipe)."""
        if not self._stream:
            return self._sink.address()
        self.flush()
        end = self._sink.address()
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
        # _queue(), inlined: this is once per file of a dump.
        first = self._next_block
        self._parts += parts
        self._queued += size
        blocks = size // TP_BSIZE
        self._next_block = first + blocks
        partial = self._partial + blocks
        if partial >= self.ntrec:
            self._records_this_volume += partial // self.ntrec
            partial %= self.ntrec
        self._partial = partial
        if self._queued >= self._coalesce:
            self._drain()
        return first

    def flush(self) -> None:
        """Write everything queued (coalescing; whole records otherwise are
        written already)."""
        self._drain()

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
        self._sink.close()

    def abort(self) -> None:
        """Close the sink without writing what is pending."""
        if not self._closed:
            self._closed = True
            self._buffer.clear()
            self._parts.clear()
            self._sink.close()

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
    def _wrap(self, sink: Sink) -> Sink:
        """A new volume's sink, compressing when this writer does."""
        return sink if self._compressor is None else self._compressor.sink(sink, self._coalesce)

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("the record writer is closed")

    def _check_header(self, header: bytes) -> None:
        if not header or len(header) % TP_BSIZE:
            raise ValueError(f"a volume header is whole {TP_BSIZE}-byte blocks; got {len(header)} bytes")

    def _queue(self, parts: "tuple[bytes, ...] | list[bytes]", size: int) -> None:
        """Byte-stream mode: take ``size`` bytes (whole blocks) in ``parts``."""
        self._parts += parts
        self._queued += size
        blocks = size // TP_BSIZE
        self._next_block += blocks
        partial = self._partial + blocks
        if partial >= self.ntrec:
            self._records_this_volume += partial // self.ntrec
            partial %= self.ntrec
        self._partial = partial
        if self._queued >= self._coalesce:
            self._drain()

    def _drain(self) -> None:
        """Byte-stream mode: write what is queued, in one ``writev`` per
        ``IOV_MAX`` parts."""
        if self._parts:
            parts = self._parts
            self._parts = []
            self._queued = 0
            self._sink.write_parts(parts)

    def _flush_full(self) -> None:
        size = self.record_size
        while len(self._buffer) >= size:
            record = bytes(self._buffer[:size])
            del self._buffer[:size]
            self._write_record(record)

    def _write_record(self, record: bytes) -> None:
        try:
            self._sink.write_record(record)
        except EndOfMedium:
            self._roll_forward(record)
            return
        self._records_this_volume += 1

    def _roll_forward(self, record: bytes) -> None:
        """The volume is full and ``record`` was not written: write it again on
        the next volume, after that volume's header (dump's rollforward)."""
        full = self._sink.name
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
            self._sink.write_record(head[:size])
        except EndOfMedium:
            raise MediumError(f"{self._sink.name}: end of medium at the start of volume {self._volume}",
                              _errno.ENOSPC) from None
        self._records_this_volume += 1
        # What is left of the replayed record goes in front of what was pending.
        self._buffer[0:0] = head[size:]

    def _mount(self, request: VolumeRequest) -> NewVolume:
        if self._change is None:
            raise MediumError(f"{self._sink.name}: no way to change volumes", _errno.ENOSPC)
        old = self._sink
        try:
            old.close()
        except MediumError as exc:
            # A full cartridge may refuse even its closing filemark; restore
            # stops at end of data all the same.
            if exc.errno != _errno.ENOSPC:
                raise
        new = self._change.next_volume(request)
        self._sink = self._wrap(as_sink(new.sink))
        self._volume = request.volume
        self._records_this_volume = 0
        self._partial = 0
        # Coalescing goes on only where the new volume is a byte stream too
        # (a replay after a full tape leaves blocks in the record buffer).
        self._stream = bool(self._coalesce) and self._sink.byte_stream and not self._buffer
        return new

    def __enter__(self) -> "RecordWriter":
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None:
            self.abort()


# -- sources and reader ----------------------------------------------------------


class Source:
    """Where records come from: a tape drive, a file or a pipe."""

    name: str = "input"
    is_tape: bool = False
    can_change_volume: bool = True

    def read(self) -> bytes:
        """The next chunk (a whole record on a tape); ``b""`` at end of volume."""
        raise NotImplementedError

    def position(self, records: int) -> tuple[int, int]:
        return 0, records

    def address(self) -> int | None:
        return None

    def seek(self, address: int) -> None:
        """Go to *address* (as :meth:`address` counts) to read from there."""
        raise MediumError(f"{self.name}: cannot seek", _errno.ESPIPE)

    def close(self) -> None:
        raise NotImplementedError


class _TapeSource(_TapeEnd, Source):
    def __init__(self, drive: TapeDrive) -> None:
        super().__init__(drive)
        self.record_size: int | None = None

    def read(self) -> bytes:
        size = self.record_size or _MAX_RECORD
        try:
            data = self.drive.read(size)
        except TapeError as exc:
            if exc.errno == _errno.EIO and self._at_end_of_data():
                return b""
            what = "record larger than the detected record size" if exc.errno == _errno.ENOMEM else exc.message
            raise MediumError(f"{self.name}: read error: {what}", exc.errno) from None
        if data and self.record_size is None:
            # Like restore: the first read, with a large buffer, tells the record size.
            if len(data) % TP_BSIZE:
                raise MediumError(
                    f"{self.name}: first record is {len(data)} bytes, not a multiple of {TP_BSIZE}: "
                    "not a dump tape", _errno.EINVAL)
            self.record_size = len(data)
        return data

    def seek(self, address: int) -> None:
        try:
            self.drive.seek(address)
        except TapeError as exc:
            raise MediumError(f"{self.name}: cannot seek to block {address}: {exc.message}", exc.errno) from None

    def _at_end_of_data(self) -> bool:
        try:
            return self.drive.status().eod
        except TapeError:
            return False



class _StreamSource(_StreamEnd, Source):
    def __init__(self, fd: int, name: str, owned: bool) -> None:
        super().__init__(fd, name, owned)
        self._read_size = _STREAM_READ
        try:
            mode = os.fstat(fd).st_mode
            self.can_change_volume = not stat.S_ISFIFO(mode)
            self._grows = stat.S_ISREG(mode)
        except OSError:
            self.can_change_volume = self._grows = False

    def read(self) -> bytes:
        size = self._read_size
        if self._grows and size < _FILE_READ:
            self._read_size = size * 2
        try:
            return os.read(self.fd, size)
        except OSError as exc:
            raise MediumError(f"{self.name}: read error: {exc.strerror}", exc.errno) from None

    def seek(self, address: int) -> None:
        self._read_size = _STREAM_READ
        try:
            os.lseek(self.fd, address, os.SEEK_SET)
        except OSError as exc:
            raise MediumError(f"{self.name}: cannot seek to byte {address}: {exc.strerror}", exc.errno) from None


def as_source(origin: "Source | TapeDrive | BinaryIO | int", name: str | None = None) -> Source:
    """Wrap a tape drive, a binary file object or a descriptor as a :class:`Source`."""
    if isinstance(origin, Source):
        return origin
    if isinstance(origin, TapeDrive):
        return _TapeSource(origin)
    if isinstance(origin, int):
        return _StreamSource(origin, name or f"fd {origin}", owned=origin > 2)
    fd = os.dup(origin.fileno())
    if origin.fileno() > 2:
        origin.close()
    return _StreamSource(fd, name or getattr(origin, "name", "input"), owned=True)


def open_source(name: str) -> Source:
    """Open ``name`` to read an image: a tape device, ``-`` for stdin, or a file."""
    if name == "-":
        return _StreamSource(0, "standard input", owned=False)
    if is_tape_device(name):
        try:
            return _TapeSource(open_device(name, writable=False))
        except TapeError as exc:
            raise MediumError(f"cannot open input {name}: {exc.message}", exc.errno) from None
    try:
        fd = os.open(name, os.O_RDONLY)
    except OSError as exc:
        raise MediumError(f"cannot open input {name}: {exc.strerror}", exc.errno) from None
    return _StreamSource(fd, name, owned=True)


class RecordReader:
    """Yields the 1 KiB blocks of an image, volume by volume.

    Record boundaries do not matter to the caller: a tape's records (whose
    size the first read tells, see :attr:`record_size`) and a pipe's short
    reads come out as the same blocks.  At a filemark or EOF the current
    volume ends (:meth:`read_block` returns ``None``); :meth:`next_volume`
    asks ``next_volume(number)`` for the next source.
    """

    def __init__(self, source: "Source | TapeDrive | BinaryIO",
                 next_volume: Callable[[int], "Source | TapeDrive | BinaryIO"] | None = None, *,
                 volume: int = 1, on_damage: Callable[[str], None] | None = None) -> None:
        #: Called with a line saying what was lost when a record of a
        #: compressed image cannot be decoded (its blocks come out as zeros);
        #: without it that is a :class:`MediumError`.
        self.on_damage = on_damage
        self._source = self._watch(as_source(source))
        self._next_volume = next_volume
        self._volume = volume
        self._buffer = bytearray()
        self._offset = 0
        self._ended = False
        self._records = 0
        self.blocks_read = 0
        #: Reads from the medium that brought data (records on a tape), in all
        self.reads = 0

    def _watch(self, source: Source) -> Source:
        # compressed images (dump -z/-j/-y) read as plain ones: dumptool.compression
        from .compression import watch_compression
        return watch_compression(source, self._damaged)

    def _damaged(self, message: str) -> None:
        if self.on_damage is None:
            raise MediumError(message, _errno.EIO)
        self.on_damage(message)

    @property
    def volume(self) -> int:
        return self._volume

    @property
    def source(self) -> Source:
        return self._source

    @property
    def record_size(self) -> int | None:
        """A tape's record length in bytes, once the first record is read; ``None`` for files and pipes."""
        return getattr(self._source, "record_size", None)

    @property
    def ntrec(self) -> int | None:
        size = self.record_size
        return size // TP_BSIZE if size else None

    @property
    def at_end_of_volume(self) -> bool:
        return self._ended and self._offset >= len(self._buffer)

    @property
    def position(self) -> TapePosition:
        """Where the next record will be read from."""
        file_number, block_number = self._source.position(self._records)
        return TapePosition(self._volume, file_number, block_number)

    @property
    def address(self) -> int | None:
        """Where the source's next read starts, as the medium counts (see
        :meth:`Sink.address`): blocks already buffered lie before it."""
        return self._source.address()

    def seek(self, address: int) -> None:
        """Drop what is buffered and read on from *address* of this volume
        (a QFA position); the blocks there need not start with a header."""
        self._source.seek(address)
        self._buffer.clear()
        self._offset = 0
        self._ended = False

    def read_block(self) -> bytes | None:
        """The next block of this volume, or ``None`` at its end."""
        while len(self._buffer) - self._offset < TP_BSIZE:
            if self._ended:
                if len(self._buffer) > self._offset:
                    raise MediumError(
                        f"{self._source.name}: volume {self._volume} ends inside a block "
                        f"({len(self._buffer) - self._offset} of {TP_BSIZE} bytes): the image is truncated",
                        _errno.EIO)
                return None
            chunk = self._source.read()
            if not chunk:
                self._ended = True
                continue
            self._records += 1
            self.reads += 1
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
            chunk = self._source.read()
            if not chunk:
                self._ended = True
            else:
                self._records += 1
                self.reads += 1
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

    def __iter__(self) -> Iterator[bytes]:
        """The remaining blocks of the current volume."""
        while (block := self.read_block()) is not None:
            yield block

    def next_volume(self) -> None:
        """Close this volume and open the next, through the caller's callback.
        Blocks not read from this volume are dropped."""
        if self._next_volume is None:
            raise MediumError(f"{self._source.name}: end of volume {self._volume} and no way to change volumes",
                              _errno.ENOSPC)
        if not self._source.can_change_volume:
            raise MediumError(f"{self._source.name}: a pipe cannot change volumes", _errno.ESPIPE)
        self._source.close()
        self._source = self._watch(as_source(self._next_volume(self._volume + 1)))
        self._volume += 1
        self._buffer.clear()
        self._offset = 0
        self._ended = False
        self._records = 0

    def close(self) -> None:
        self._source.close()

    def __enter__(self) -> "RecordReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
