"""The record of a compressed image: a ``struct tapebuf`` word, then the payload.

In an image whose ``TS_TAPE`` has ``DR_COMPRESSED`` (``dump -z``, ``-j``,
``-y``), every record but the first of each volume is a 32-bit word in the
image's byte order followed by ``length`` bytes: bit 0 says whether the
payload is compressed, bits 1-3 name the method (:data:`COMPRESS_ZLIB`,
:data:`COMPRESS_BZLIB`, :data:`COMPRESS_LZO`; set even on a record stored
as is), bits 4-31 are ``length``.  A compressed payload decodes to one whole
record of ``ntrec`` blocks; a stored one *is* the record.  See
:mod:`dumptool.compression` for where the records lie on a file and on a tape.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from ..errors import FormatError
from .constants import COMPRESS_BZLIB, COMPRESS_LZO, COMPRESS_ZLIB, TP_BSIZE, ByteOrder
from .lzo1x import lzo1x_decompress

METHOD_NAMES = {COMPRESS_ZLIB: "zlib", COMPRESS_BZLIB: "bzip2", COMPRESS_LZO: "lzo"}


@dataclass(frozen=True)
class TapeBuf:
    """The word in front of a record: ``compressed``, ``method``, payload ``length``."""

    compressed: bool
    method: int
    length: int

    @property
    def method_name(self) -> str:
        return METHOD_NAMES.get(self.method, f"method {self.method}")


def unpack_tapebuf(word: bytes, byte_order: ByteOrder = ByteOrder.LITTLE) -> TapeBuf:
    """The :class:`TapeBuf` of the first 4 bytes (``TAPEBUF_PREFIX``) of *word*.

    On a big-endian image the word was written as a big-endian integer with
    the same bit layout (restore swaps it, then reads the same fields)."""
    value = struct.unpack_from(byte_order.value + "I", word)[0]
    return TapeBuf(bool(value & 1), (value >> 1) & 7, value >> 4)


def pack_tapebuf(buf: TapeBuf, byte_order: ByteOrder = ByteOrder.LITTLE) -> bytes:
    """The word for *buf* (tests build compressed images with it)."""
    if not 0 <= buf.method < 8 or not 0 <= buf.length < 1 << 28:
        raise ValueError(f"no tapebuf word holds {buf}")
    return struct.pack(byte_order.value + "I", int(buf.compressed) | buf.method << 1 | buf.length << 4)


def decode_payload(buf: TapeBuf, payload: bytes, record_size: int) -> bytes:
    """The record *payload* holds: decompressed (at most *record_size*
    bytes) or as stored.  A payload that does not decode, or decodes to
    something that is not whole blocks, is a :class:`FormatError` saying why."""
    if len(payload) != buf.length:
        raise FormatError(f"record payload is {len(payload)} bytes, its prefix says {buf.length}")
    if not buf.compressed:
        data = payload
    else:
        try:
            if buf.method == COMPRESS_ZLIB:
                unzip = zlib.decompressobj()
                data = unzip.decompress(payload, record_size + 1)
                if not unzip.eof:
                    raise FormatError("zlib data error (incomplete or longer than a record)")
            elif buf.method == COMPRESS_BZLIB:
                import bz2  # here: only a bzip2 image needs it

                unbz = bz2.BZ2Decompressor()
                data = unbz.decompress(payload, record_size + 1)
                if not unbz.eof:
                    raise FormatError("bzip2 data error (incomplete or longer than a record)")
            elif buf.method == COMPRESS_LZO:
                data = lzo1x_decompress(payload, record_size)
            else:
                raise FormatError(f"unknown compression method {buf.method}")
        except (zlib.error, OSError, EOFError, ValueError) as exc:
            raise FormatError(f"{buf.method_name} data error ({exc})") from None
    if not data or len(data) % TP_BSIZE or len(data) > record_size:
        raise FormatError(f"{buf.method_name} record decodes to {len(data)} bytes, "
                          f"not whole {TP_BSIZE}-byte blocks of a {record_size}-byte record")
    return data

