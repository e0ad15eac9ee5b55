"""The two ends of the medium: :class:`Sink` (where records go) and
:class:`Source` (where they come from), on a tape drive, a plain file or a
pipe, and the wrappers a caller puts around them (:class:`SinkWrapper`,
:class:`SourceWrapper`: compression, for one).

A tape gets one ``write`` per record and tells the record length on read; a
file or a pipe is a byte stream where record boundaries do not survive.
"""

from __future__ import annotations

import dataclasses
import errno as _errno
import os
import stat
from collections.abc import Callable, Sequence
from typing import BinaryIO, Generic, TypeVar

from tapelib import EndOfMedium, TapeDrive, TapeError, is_tape_device, open_device
from tapelib.device import is_remote
from tapelib.devicefile import shelf_file_refusal

from ..errors import MediumError
from ..format import MAXNTREC, TP_BSIZE

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


class Gathering:
    """Parts on their way to a byte stream's sink: kept until *limit* bytes
    are, then handed over in one :meth:`Sink.write_parts` (``writev``, no
    copy).  The parts must not change while they wait."""

    __slots__ = ("sink", "limit", "parts", "size")

    def __init__(self, sink: Sink, limit: int) -> None:
        self.sink = sink
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, parts: Sequence[bytes], size: int) -> None:
        """Queue *parts*, *size* bytes in all; write them all once the limit is reached."""
        self.parts += parts
        self.size += size
        if self.size >= self.limit:
            self.flush()

    def flush(self) -> None:
        """Write what is queued."""
        if self.parts:
            parts = self.parts
            self.parts = []
            self.size = 0
            self.sink.write_parts(parts)

    def drop(self) -> None:
        """Forget what is queued (an aborted write)."""
        self.parts = []
        self.size = 0


# -- the two ends ----------------------------------------------------------------------


class Sink:
    """Where records go: a tape drive, a file or a pipe."""

    name: str = "output"
    is_tape: bool = False
    #: True where record boundaries do not survive (a file or a pipe), so a
    #: writer may hand over many records, or parts of them, in one call.
    byte_stream: bool = False
    #: True where a record's size on the medium is not the blocking factor's
    #: (a compressing wrapper's): positions are then asked, not counted.
    sizes_vary: bool = False

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
        """Where the next record starts as the medium counts: a tape's logical
        block (filemarks counted), a file's byte offset; ``None`` on a pipe."""
        return None

    def close(self) -> None:
        raise NotImplementedError


class Source:
    """Where records come from: a tape drive, a file or a pipe.

    Besides reading, a tape source moves its drive for the caller
    (:meth:`rewind`, :meth:`space_files`); a file or a pipe refuses that with
    a :class:`MediumError`."""

    name: str = "input"
    is_tape: bool = False
    can_change_volume: bool = True

    @property
    def record_size(self) -> int | None:
        """A tape's record length in bytes once the first read told it (what
        reads ask for from then on); ``None`` for files and pipes."""
        return None

    def read(self) -> bytes:
        """The next chunk (a whole record on a tape); ``b""`` at end of volume."""
        raise NotImplementedError

    def position(self, records: int) -> tuple[int, int]:
        return 0, records

    def address(self) -> int | None:
        """Where the next read starts, as :meth:`Sink.address` counts."""
        return None

    def seek(self, address: int) -> None:
        """Go to *address* (as :meth:`address` counts) to read from there."""
        raise MediumError(f"{self.name}: cannot seek", _errno.ESPIPE)

    def allow_records(self, size: int) -> None:
        """Read records of up to *size* bytes from now on (a tape whose later
        records are longer than its first); other media read as they do."""

    def rewind(self) -> None:
        """Take a tape back to its beginning (``mt rewind``)."""
        raise MediumError(f"{self.name}: cannot rewind: not a tape drive", _errno.ENOTTY)

    def space_files(self, count: int) -> None:
        """Move a tape forward over *count* filemarks (``mt fsf``), to the
        start of a later file."""
        raise MediumError(f"{self.name}: cannot space over tape files: not a tape drive", _errno.ENOTTY)

    def close(self) -> None:
        raise NotImplementedError


#: A sink or a source.
_End = TypeVar("_End", Sink, Source)


class VolumeCursor(Generic[_End]):
    """What a record writer and a record reader share: the medium's end they
    move records through, the volume it holds, how many records they moved
    on it, and so where they stand."""

    def __init__(self, end: _End, volume: int) -> None:
        self._end = end
        self._volume = volume
        self._records = 0

    @property
    def volume(self) -> int:
        return self._volume

    @property
    def position(self) -> TapePosition:
        """Where the next record goes or comes from."""
        file_number, block_number = self._end.position(self._records)
        return TapePosition(self._volume, file_number, block_number)

    def _new_volume(self, end: _End, volume: int) -> None:
        """Move on to *end*, holding *volume*: no record moved on it yet."""
        self._end = end
        self._volume = volume
        self._records = 0


# -- wrappers --------------------------------------------------------------------------


class _Wrapping:
    """What a sink wrapper and a source wrapper pass on alike: the name and
    kind of the inner end, its position and address, closing it."""

    inner: Sink | Source

    def __init__(self, inner: Sink | Source) -> None:
        self.inner = inner
        self.name = inner.name
        self.is_tape = inner.is_tape

    def position(self, records: int) -> tuple[int, int]:
        return self.inner.position(records)

    def address(self) -> int | None:
        return self.inner.address()

    def close(self) -> None:
        self.inner.close()


class SinkWrapper(_Wrapping, Sink):
    """A sink around another: what it does not change it passes on to
    ``inner``.  The way to add a step between a writer and the medium (a
    caller builds the wrapper and hands it to the writer as its sink)."""

    inner: Sink

    def __init__(self, inner: Sink) -> None:
        super().__init__(inner)
        self.byte_stream = inner.byte_stream

    def write_record(self, record: bytes) -> None:
        self.inner.write_record(record)

    def write_parts(self, parts: list[bytes]) -> None:
        self.inner.write_parts(parts)


class SourceWrapper(_Wrapping, Source):
    """A source around another: what it does not change it passes on to
    ``inner`` (the drive's movements included)."""

    inner: Source

    def __init__(self, inner: Source) -> None:
        super().__init__(inner)
        self.can_change_volume = inner.can_change_volume

    @property
    def record_size(self) -> int | None:
        return self.inner.record_size

    def read(self) -> bytes:
        return self.inner.read()

    def seek(self, address: int) -> None:
        self.inner.seek(address)

    def allow_records(self, size: int) -> None:
        self.inner.allow_records(size)

    def rewind(self) -> None:
        self.inner.rewind()

    def space_files(self, count: int) -> None:
        self.inner.space_files(count)


# -- tape drives -----------------------------------------------------------------------


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


class _TapeSource(_TapeEnd, Source):
    def __init__(self, drive: TapeDrive) -> None:
        super().__init__(drive)
        self._record_size: int | None = None

    @property
    def record_size(self) -> int | None:
        return self._record_size

    def read(self) -> bytes:
        size = self._record_size or _MAX_RECORD
        try:
            data = self.drive.read(size)
        except TapeError as exc:
            if exc.errno == _errno.EIO and self._at_end_of_data():
                return b""
            what = "record larger than the detected record size" if exc.errno == _errno.ENOMEM else exc.message
            raise MediumError(f"{self.name}: read error: {what}", exc.errno) from None
        if data and self._record_size is None:
            # Like restore: the first read, with a large buffer, tells the record size.
            if len(data) % TP_BSIZE:
                raise MediumError(
                    f"{self.name}: first record is {len(data)} bytes, not a multiple of {TP_BSIZE}: "
                    "not a dump tape", _errno.EINVAL)
            self._record_size = len(data)
        return data

    def seek(self, address: int) -> None:
        try:
            self.drive.seek(address)
        except TapeError as exc:
            raise MediumError(f"{self.name}: cannot seek to block {address}: {exc.message}", exc.errno) from None

    def allow_records(self, size: int) -> None:
        self._record_size = size

    def rewind(self) -> None:
        try:
            self.drive.rewind()
        except TapeError as exc:
            raise MediumError(f"{self.name}: cannot rewind: {exc.message}", exc.errno) from None

    def space_files(self, count: int) -> None:
        try:
            self.drive.space_files(count)
        except TapeError as exc:
            raise MediumError(f"{self.name}: cannot space over {count} tape files: {exc.message}",
                              exc.errno) from None

    def _at_end_of_data(self) -> bool:
        try:
            return self.drive.status().eod
        except TapeError:
            return False


# -- files and pipes -------------------------------------------------------------------


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


class _RemoteFileSource(Source):
    """A file on another host read through rmt as a byte stream (restore's
    ``-l``): reads as large as it gives, no records, no drive moves."""

    def __init__(self, drive: TapeDrive) -> None:
        self.drive = drive
        self.name = drive.name
        self._read_size = _STREAM_READ

    def read(self) -> bytes:
        size = self._read_size
        if size < _FILE_READ:
            self._read_size = size * 2
        try:
            return self.drive.read(size)
        except TapeError as exc:
            raise MediumError(f"{self.name}: read error: {exc.message}", exc.errno) from None

    def close(self) -> None:
        try:
            self.drive.close()
        except TapeError as exc:
            raise MediumError(f"{self.name}: error closing: {exc.message}", exc.errno) from None


# -- opening ---------------------------------------------------------------------------


def _descriptor(target: BinaryIO) -> int:
    """A descriptor of its own for the open file *target*, which is closed
    (flushed first) unless it is stdin, stdout or stderr."""
    target.flush()
    fd = os.dup(target.fileno())
    if target.fileno() > 2:
        target.close()
    return fd


def _open_medium(name: str, writable: bool) -> TapeDrive | int:
    """The tape drive (``is_tape_device``) or a descriptor of the file *name*,
    opened to write an image (a file created or truncated, as dump does) or
    to read one."""
    what = "output" if writable else "input"
    if is_tape_device(name):
        try:
            return open_device(name, writable=writable)
        except TapeError as exc:
            raise MediumError(f"cannot open {what} {name}: {exc.message}", exc.errno) from None
    refusal = shelf_file_refusal(name) if writable else None
    if refusal is not None:  # O_TRUNC would empty a cartridge past its drive's checks
        raise MediumError(f"cannot open {what} {name}: {refusal}", _errno.EPERM)
    try:
        return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC if writable else os.O_RDONLY, 0o666)
    except OSError as exc:
        raise MediumError(f"cannot open {what} {name}: {exc.strerror}", exc.errno) from None


def _end_of(medium: "TapeDrive | BinaryIO | int", name: str | None, tape: Callable[[TapeDrive], _End],
            stream: Callable[[int, str, bool], _End], what: str) -> _End:
    """The sink or source (*tape* or *stream*) on a drive, a descriptor or a
    file object; a descriptor past stderr is closed with it."""
    if isinstance(medium, TapeDrive):
        return tape(medium)
    if isinstance(medium, int):
        return stream(medium, name or f"fd {medium}", medium > 2)
    return stream(_descriptor(medium), name or getattr(medium, "name", what), True)


def as_sink(target: "Sink | TapeDrive | BinaryIO | int", name: str | None = None) -> Sink:
    """Wrap a tape drive, a binary file object or a file descriptor as a :class:`Sink`.

    A file object or descriptor handed in is closed with the sink, except
    stdout's."""
    return target if isinstance(target, Sink) else _end_of(target, name, _TapeSink, _StreamSink, "output")


def as_source(origin: "Source | TapeDrive | BinaryIO | int", name: str | None = None) -> Source:
    """Wrap a tape drive, a binary file object or a descriptor as a :class:`Source`."""
    return origin if isinstance(origin, Source) else _end_of(origin, name, _TapeSource, _StreamSource, "input")


def open_sink(name: str) -> Sink:
    """Open ``name`` for writing an image: a tape device (``is_tape_device``),
    ``-`` for stdout, or a plain file (created or truncated, as dump does)."""
    if name == "-":
        return _StreamSink(1, "standard output", owned=False)
    return as_sink(_open_medium(name, writable=True), name)


def open_source(name: str, *, remote_file: bool = False) -> Source:
    """Open ``name`` to read an image: a tape device, ``-`` for stdin, or a
    file.  ``host:device`` is a drive unless *remote_file* (restore's
    ``-l``) says it is a file or pipe on that host, read as a byte stream."""
    if name == "-":
        return _StreamSource(0, "standard input", owned=False)
    if remote_file and is_remote(name):
        try:
            return _RemoteFileSource(open_device(name))
        except TapeError as exc:
            raise MediumError(f"cannot open input {name}: {exc.message}", exc.errno) from None
    return as_source(_open_medium(name, writable=False), name)
