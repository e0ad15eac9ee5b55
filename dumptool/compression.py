"""Reading compressed dump images (Linux ``dump -z``, ``-j``, ``-y``).

:func:`watch_compression` wraps a record :class:`~dumptool.records.Source`:
an image whose first header says ``DR_COMPRESSED`` comes out of it as the
plain records it stands for, and any other image passes through untouched.
:class:`~dumptool.records.RecordReader` puts every source it reads in one,
so the rest of restore never sees a compressed record.

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
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Callable

from .errors import FormatError, MediumError
from .format import DR_COMPRESSED, MAXNTREC, TP_BSIZE, ByteOrder, Header, RecordType, header_byte_order
from .format.constants import TAPEBUF_PREFIX
from .format.tapebuf import TapeBuf, decode_payload, unpack_tapebuf
from .records import Source

#: What a handler of damaged records is called with: one line saying what was lost.
DamageReport = Callable[[str], None]


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


class DecompressingSource(Source):
    """A :class:`Source` that undoes the compression of a compressed image.

    Until the first read it does not know what the image is: that read
    decides.  A plain image's chunks pass through as they come.  A compressed
    one comes out one record at a time (``ntrec`` blocks each).  A record
    that cannot be decoded goes to *report* (which may raise) and is replaced
    by ``ntrec`` zero blocks; on a file or pipe, a record whose framing is
    lost ends the volume after the report.
    """

    def __init__(self, inner: Source, report: DamageReport) -> None:
        self._inner = inner
        self._report = report
        self._compressed: bool | None = None
        self._pending = b""          # stream bytes read past the last record
        self._record_size = 0
        self._order = ByteOrder.LITTLE
        self._records = 0            # records returned on this volume
        self._start = inner.address()

    # -- what the wrapped source answers ---------------------------------------------
    @property
    def name(self) -> str:  # type: ignore[override]
        return self._inner.name

    @property
    def is_tape(self) -> bool:  # type: ignore[override]
        return self._inner.is_tape

    @property
    def can_change_volume(self) -> bool:  # type: ignore[override]
        return self._inner.can_change_volume

    @property
    def compressed(self) -> bool | None:
        """Whether the image is compressed (``None`` before the first read)."""
        return self._compressed

    @property
    def record_size(self) -> int | None:
        """A tape's (uncompressed) record length, as :attr:`RecordReader.record_size` wants it."""
        if self._compressed and self.is_tape:
            return self._record_size
        return getattr(self._inner, "record_size", None)

    def __getattr__(self, name: str):
        # anything else a caller asks of the medium (``drive``, ``fd``)
        return getattr(self._inner, name)

    def position(self, records: int) -> tuple[int, int]:
        return self._inner.position(records)

    def address(self) -> int | None:
        here = self._inner.address()
        if here is None or not self._pending:
            return here
        return here - len(self._pending)

    def seek(self, address: int) -> None:
        self._inner.seek(address)
        self._pending = b""
        if address == self._start:  # the volume's first record again: raw, no prefix
            self._compressed = None
            self.__dict__.pop("read", None)

    def close(self) -> None:
        self._inner.close()

    # -- reading -------------------------------------------------------------------------
    def read(self) -> bytes:
        if self._compressed is None:
            return self._first_read()
        if self.is_tape:
            return self._tape_record()
        return self._stream_record()

    def _first_read(self) -> bytes:
        chunk = self._inner.read()
        head = compressed_header(chunk)
        if head is None:
            self._compressed = False
            self.read = self._inner.read  # type: ignore[method-assign]  # no step of ours per read
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
            self._inner.record_size = size + TAPEBUF_PREFIX  # type: ignore[attr-defined]
            return chunk
        data = chunk
        while len(data) < size:
            more = self._inner.read()
            if not more:
                break
            data += more
        if len(data) < size:
            self._report(f"{self.name}: the volume ends inside its first record "
                         f"({len(data)} of {size} bytes)")
            return data[:len(data) // TP_BSIZE * TP_BSIZE]
        self._pending = data[size:]
        return data[:size]

    def _tape_record(self) -> bytes:
        raw = self._inner.read()
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
            more = self._inner.read()
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


def watch_compression(source: Source, report: DamageReport) -> Source:
    """*source*, wrapped so that a compressed image reads as a plain one."""
    if isinstance(source, DecompressingSource):
        return source
    return DecompressingSource(source, report)
