"""Compressed dump images (Linux ``dump -z``, ``-j``, ``-y``): reading and writing.

Both are wrappers the caller puts around the medium's ends
(:mod:`dumptool.medium` knows nothing of compression).

Reading: a :class:`DecompressingSource` around a record
:class:`~dumptool.medium.Source`: an image whose first header says
``DR_COMPRESSED`` comes out of it as the plain records it stands for, and
any other image passes through untouched.  pyrestore puts every volume's
source in one before a :class:`~dumptool.medium.RecordReader` sees it, so
the rest of restore never sees a compressed record.

Writing: a :class:`RecordCompressor` (``pydump -z``/``-j``) frames records;
a :class:`CompressingSink` around a volume's sink writes that volume's first
record as is and every later one framed as below, and
:class:`CompressingVolumes` around the writer's
:class:`~dumptool.medium.VolumeChange` puts each next volume's sink in one.
The compressor counts the bytes written for dump's
"compressed" lines and for ``-B``; pydump closes a volume before its next
record could take it past ``-B`` KiB (it knows each record's size when it
is written, where dump's count lags three records behind).  pydump writes
zlib and bzip2, not lzo (there is only an LZO decoder here).

What the image looks like (Linux dump/restore 0.4b47 sources, dump/tape.c
``doslave``/``startnewtape`` and restore/tape.c ``findtapeblksize``,
``readtape_comprfile``, ``readtape_comprtape``, ``decompress_tapebuf``;
checked against images of the installed dump 0.4b47):

* The ``TS_TAPE`` header has ``DR_COMPRESSED`` (0x80) in ``c_flags`` and the
  blocking factor in ``c_ntrec``.  The first record of *every* volume is
  written as is: ``ntrec`` blocks, no prefix (each volume gets new writer
  processes, and the one that writes first does not compress its first
  record).  Volume 2 on starts with its ``TS_TAPE``, also flagged.
* Every later record is a 4-byte ``struct tapebuf`` word then ``length``
  bytes (:mod:`dumptool.format.tapebuf`): bit 0 compressed, bits 1-3 the
  method (0 zlib ``compress2`` at the ``-z`` level, 1 bzip2
  ``BZ2_bzBuffToBuffCompress`` at the ``-j`` level with work factor 30,
  2 lzo ``lzo1x_1_compress``), bits 4-31 the length.  Each record is
  compressed alone (no dictionary carries over), always from the full
  ``ntrec * 1024`` bytes.
* Fallback: when compression does not save at least 16 bytes
  (``length > ntrec * 1024 - 16``) the record is stored as is behind a word
  with bit 0 clear, the method bits still set and ``length = ntrec * 1024``,
  so such a record is 4 bytes *longer* than a plain one.
* On a file or pipe the records follow each other with nothing between
  them; restore reads 1 KiB, sees the flag, reads ``c_ntrec - 1`` more
  blocks, then for each record the 4-byte word and ``length`` bytes (its
  ``-b`` only bounds ``c_ntrec``).  A length larger than a record is
  clamped by restore; here it ends the volume (the framing is lost).
* On a tape each record is one tape block of variable length (4 + length
  bytes); restore reads with a buffer of ``ntrec * 1024 + 4`` and, on a
  read or decompression error, zero-fills the record and spaces forward one
  block (``MTFSR``) to go on.
* A payload that does not decompress is reported ("decompression error,
  block N: data error", then "File decompression error while restoring
  NAME") and replaced by zeros; restore then resyncs at the next good
  header.  A decompressed length that is not whole blocks is reported too
  ("length mismatch").  The 0.4b47 binary's ``restore -r -y`` still exits 0
  after such an error, with the damaged file in place; pyrestore exits 1.
* restore says "Dump tape is compressed." on stderr when it opens each
  volume of such an image.
* ``-B`` counts compressed bytes: dump ends a volume when the bytes written
  to it plus three records' worth (its three writer processes' buffers)
  reach ``-B`` KiB, so volumes are not a fixed number of records.
* ``dump -Q`` positions are taken before a record's write: on a file, the
  byte offset of that record's prefix in the compressed file.
* ``-A`` archive files are written uncompressed, with ``DR_COMPRESSED``
  cleared in the copied headers.
* dump sets ``DR_COMPRESSED`` in ``TS_TAPE`` before writing it and never
  clears it, so every later header of the image carries it too (restore
  looks only at the ``TS_TAPE``'s).
* Each volume's "completed" lines swap "Volume N B blocks" for "Volume N
  UkB uncompressed, CkB compressed, R:1" (C counting the first record and
  the prefixes; R rounded up, ``.0005 + U/C``), and the dump ends with
  "Wrote UkB uncompressed, CkB compressed, R:1".  It says "Compressing
  output at transformation level N (zlib)" (``bzlib`` for ``-j``) after
  "Writing N Kilobyte records".  A level outside 1 to 9 is refused ("compress
  level must be between 1 and 9", exit 1); the level is attached to the
  flag (``-z6``), ``-z 6`` is ``-z`` then the argument ``6``.
"""

from __future__ import annotations

import errno as _errno
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO

from .errors import DumpError, FormatError, MediumError
from .format import DR_COMPRESSED, MAXNTREC, TP_BSIZE, ByteOrder, Header, RecordType, header_byte_order
from .format.constants import COMPRESS_BZLIB, COMPRESS_ZLIB, TAPEBUF_PREFIX
from .format.tapebuf import TapeBuf, decode_payload, pack_tapebuf, unpack_tapebuf
from .medium import (Gathering, NewVolume, Sink, SinkWrapper, Source, SourceWrapper, VolumeChange, VolumeRequest,
                     as_sink)

#: What a handler of damaged records is called with: one line saying what was lost.
DamageReport = Callable[[str], None]

if TYPE_CHECKING:
    from tapelib import TapeDrive


def compressed_header(block: bytes) -> Header | None:
    """The ``TS_TAPE`` header in *block* if it marks a compressed image, else ``None``."""
    if len(block) < TP_BSIZE:
        return None
    try:
        order = header_byte_order(block[:TP_BSIZE])
        head = Header.unpack(block[:TP_BSIZE], order)
    except FormatError:
        return None
    if head.c_type != RecordType.TS_TAPE or not head.c_flags & DR_COMPRESSED:
        return None
    return head


class DecompressingSource(SourceWrapper):
    """A :class:`Source` that undoes the compression of a compressed image.

    Until the first read it does not know what the image is: that read
    decides.  A plain image's chunks pass through as they come.  A compressed
    one comes out one record at a time (``ntrec`` blocks each).  A record
    that cannot be decoded goes to *report* (which may raise; without one
    that is a :class:`MediumError`) and is replaced by ``ntrec`` zero
    blocks; on a file or pipe, a record whose framing is lost ends the
    volume after the report.
    """

    def __init__(self, inner: Source, report: DamageReport | None = None) -> None:
        super().__init__(inner)
        self._report = report or _raise_damage
        self._pending = b""          # stream bytes read past the last record
        self._record_size = 0
        self._order = ByteOrder.LITTLE
        self._records = 0            # records returned on this volume
        self._unknown()

    @property
    def compressed(self) -> bool | None:
        """Whether the image is compressed (``None`` before the first read)."""
        return self._compressed

    @property
    def record_size(self) -> int | None:
        """A tape's (uncompressed) record length, as :attr:`RecordReader.record_size` wants it."""
        if self._compressed and self.is_tape:
            return self._record_size
        return self.inner.record_size

    def address(self) -> int | None:
        here = self.inner.address()
        if here is None or not self._pending:
            return here
        return here - len(self._pending)

    def seek(self, address: int) -> None:
        self.inner.seek(address)
        self._pending = b""
        if address == self._start:  # the volume's first record again: raw, no prefix
            self._unknown()

    def rewind(self) -> None:
        self.inner.rewind()
        self._pending = b""
        self._unknown()

    def space_files(self, count: int) -> None:
        self.inner.space_files(count)
        self._pending = b""
        self._unknown()

    def _unknown(self) -> None:
        """The next read is the first record of an image (raw, no prefix): it decides again."""
        self._compressed: bool | None = None
        self._start = self.inner.address()
        self.__dict__.pop("read", None)

    # -- reading -------------------------------------------------------------------------
    def read(self) -> bytes:
        if self._compressed is None:
            return self._first_read()
        if self.is_tape:
            return self._tape_record()
        return self._stream_record()

    def _first_read(self) -> bytes:
        chunk = self.inner.read()
        head = compressed_header(chunk)
        if head is None:
            self._compressed = False
            self.read = self.inner.read  # type: ignore[method-assign]  # no step of ours per read
            return chunk
        if not 1 <= head.c_ntrec <= MAXNTREC:
            raise MediumError(f"{self.name}: compressed image with a blocking factor of {head.c_ntrec} "
                              f"(1 to {MAXNTREC} expected): not a dump image", _errno.EINVAL)
        self._compressed = True
        self._order = header_byte_order(chunk[:TP_BSIZE])
        self._record_size = size = head.c_ntrec * TP_BSIZE
        self._records = 1
        if self.is_tape:
            # later records are up to 4 bytes longer than this one (a stored
            # record behind its prefix): read them with room for that
            self.inner.allow_records(size + TAPEBUF_PREFIX)
            return chunk
        self._pending = chunk
        data = self._take(size)
        if len(data) < size:
            self._report(f"{self.name}: the volume ends inside its first record "
                         f"({len(data)} of {size} bytes)")
            return data[:len(data) // TP_BSIZE * TP_BSIZE]
        return data

    def _tape_record(self) -> bytes:
        raw = self.inner.read()
        if not raw:
            return raw
        self._records += 1
        if len(raw) < TAPEBUF_PREFIX:
            return self._lost(f"a {len(raw)}-byte tape block, too short for a compressed record")
        buf = unpack_tapebuf(raw, self._order)
        payload = raw[TAPEBUF_PREFIX:]
        if len(payload) != buf.length:
            what = "short" if len(payload) < buf.length else "long"
            return self._lost(f"{what} compressed record: {len(raw)} bytes, its prefix says "
                              f"{buf.length + TAPEBUF_PREFIX}")
        return self._decode(buf, payload)

    def _stream_record(self) -> bytes:
        at = self.address()
        word = self._take(TAPEBUF_PREFIX)
        if not word:
            return b""
        self._records += 1
        if len(word) < TAPEBUF_PREFIX:
            self._report(f"{self.name}: the volume ends inside the prefix of record {self._records}")
            return b""
        buf = unpack_tapebuf(word, self._order)
        if not 0 < buf.length <= self._record_size:
            self._report(f"{self.name}: record {self._records}" + (f" (byte {at})" if at is not None else "")
                         + f" has a bad prefix (length {buf.length}, at most {self._record_size}): "
                         "the rest of this volume cannot be read")
            self._pending = b""
            return b""
        payload = self._take(buf.length)
        if len(payload) < buf.length:
            self._report(f"{self.name}: the volume ends inside record {self._records} "
                         f"({len(payload)} of {buf.length} bytes)")
            return b""
        return self._decode(buf, payload)

    def _take(self, count: int) -> bytes:
        """*count* bytes of the stream (fewer at its end)."""
        data = self._pending
        while len(data) < count:
            more = self.inner.read()
            if not more:
                break
            data += more
        self._pending = data[count:]
        return data[:count]

    def _decode(self, buf: TapeBuf, payload: bytes) -> bytes:
        try:
            return decode_payload(buf, payload, self._record_size)
        except FormatError as exc:
            return self._lost(exc.message)

    def _lost(self, reason: str) -> bytes:
        self._report(f"{self.name}: decompression error in record {self._records}: {reason}; "
                     f"its {self._record_size // TP_BSIZE} blocks are lost")
        return bytes(self._record_size)


def _raise_damage(message: str) -> None:
    raise MediumError(message, _errno.EIO)


# -- writing ---------------------------------------------------------------------------

#: What a record must shrink by to be stored compressed (dump's rule).
MIN_SAVING = 16
#: The levels ``-z``/``-j`` take, and the one a bare flag means.
MIN_LEVEL, MAX_LEVEL, DEFAULT_LEVEL = 1, 9, 2
#: The name dump prints for each method it writes.
WRITER_NAMES = {COMPRESS_ZLIB: "zlib", COMPRESS_BZLIB: "bzlib"}


class RecordCompressor:
    """Frames the records of a compressed image: *method* (:data:`COMPRESS_ZLIB`
    or :data:`COMPRESS_BZLIB`) at *level* 1 to 9, each record alone.

    It also counts what reached the media (all volumes: :attr:`bytes_written`;
    the current one: :attr:`volume_bytes`), first records and prefixes
    included, as dump's ``bytes_written`` does."""

    def __init__(self, method: int, level: int = DEFAULT_LEVEL, byte_order: ByteOrder = ByteOrder.LITTLE) -> None:
        if method not in WRITER_NAMES:
            raise DumpError(f"pydump cannot write compression method {method} (zlib and bzip2 only: -z or -j)")
        if not isinstance(level, int) or not MIN_LEVEL <= level <= MAX_LEVEL:
            raise DumpError(f"compress level must be between {MIN_LEVEL} and {MAX_LEVEL}")
        self.method = method
        self.level = level
        self.byte_order = byte_order
        self.bytes_written = 0
        self.volume_bytes = 0
        #: Records written as they were (compression did not save 16 bytes).
        self.stored = 0
        self._stored_words: dict[int, bytes] = {}

    @property
    def name(self) -> str:
        """``zlib`` or ``bzlib``, as dump names them."""
        return WRITER_NAMES[self.method]

    def frame(self, record: bytes) -> tuple[bytes, bytes]:
        """The prefix word and payload that stand for *record* after the
        first of a volume: compressed, or as is when that saves under 16 bytes."""
        if self.method == COMPRESS_ZLIB:
            packed = zlib.compress(record, self.level)
        else:
            import bz2  # here: only -j writes bzip2

            packed = bz2.compress(record, self.level)  # work factor 0: bzip2's default, 30, as dump's
        if len(packed) <= len(record) - MIN_SAVING:
            return pack_tapebuf(TapeBuf(True, self.method, len(packed)), self.byte_order), packed
        self.stored += 1
        word = self._stored_words.get(len(record))
        if word is None:
            word = self._stored_words[len(record)] = pack_tapebuf(
                TapeBuf(False, self.method, len(record)), self.byte_order)
        return word, record

    def count(self, size: int) -> None:
        """*size* more bytes reached the medium."""
        self.bytes_written += size
        self.volume_bytes += size


def ratio_line(uncompressed_kb: int, compressed_bytes: int) -> str:
    """dump's "UkB uncompressed, CkB compressed, R:1" (the ratio rounded up)."""
    kb = compressed_bytes // 1024
    rate = .0005 + uncompressed_kb / kb if kb else 0.0
    return f"{uncompressed_kb}kB uncompressed, {kb}kB compressed, {rate:1.3f}:1"


class CompressingSink(SinkWrapper):
    """A volume of a compressed image: the first record goes to *inner* as
    is, every later one framed by *compressor*.  On a tape each is one
    write (one tape block of its own length); on a file or a pipe the
    framed records follow each other, gathered up to *coalesce* bytes for
    one ``writev``.  To a :class:`~dumptool.medium.RecordWriter` it is no
    byte stream: the writer hands over whole records, each framed alone."""

    sizes_vary = True

    def __init__(self, inner: "Sink | TapeDrive | BinaryIO", compressor: RecordCompressor,
                 coalesce: int = 0) -> None:
        super().__init__(as_sink(inner))
        self.byte_stream = False
        self._compressor = compressor
        self._first = True
        self._gathering = Gathering(self.inner, coalesce) if coalesce and self.inner.byte_stream else None
        compressor.volume_bytes = 0

    def write_record(self, record: bytes) -> None:
        if self._first:
            parts: tuple[bytes, ...] = (record,)
            size = len(record)
        else:
            parts = self._compressor.frame(record)
            size = len(parts[0]) + len(parts[1])
        if self._gathering is not None:
            self._gathering.add(parts, size)
        else:
            # A full tape raises EndOfMedium here: nothing counted, the
            # writer replays the record on the next volume.
            self.inner.write_record(parts[0] if len(parts) == 1 else b"".join(parts))
        self._first = False
        self._compressor.count(size)

    def write_parts(self, parts: list[bytes]) -> None:
        """Records whole, each framed alone (what a sink that is no byte stream takes)."""
        self.write_record(b"".join(parts))

    def address(self) -> int | None:
        """Where the next record's prefix goes (a file's byte offset, a tape's block)."""
        here = self.inner.address()
        if here is None or self._gathering is None:
            return here
        return here + self._gathering.size

    def close(self) -> None:
        try:
            if self._gathering is not None:
                self._gathering.flush()
        finally:
            self.inner.close()


class CompressingVolumes:
    """A :class:`~dumptool.medium.VolumeChange` around *inner*: each next
    volume it mounts comes back as a :class:`CompressingSink`, so that every
    volume of the image starts with a plain record (as dump's do)."""

    def __init__(self, inner: VolumeChange, compressor: RecordCompressor, coalesce: int = 0) -> None:
        self.inner = inner
        self._compressor = compressor
        self._coalesce = coalesce

    def next_volume(self, request: VolumeRequest) -> NewVolume:
        new = self.inner.next_volume(request)
        return NewVolume(CompressingSink(new.sink, self._compressor, self._coalesce), new.header)
