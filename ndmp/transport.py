"""Record marking: NDMP messages over a TCP byte stream.

Each message is one record of one or more fragments; a fragment is a
4-byte big-endian mark (bit 31: last fragment of the record; bits 0-30:
its length) and that many bytes.  Peers split large messages (ndmjob
fragments anything over about 4 KB), so :meth:`RecordStream.receive_record`
joins fragments until the last one.  A fragment longer than
:data:`MAX_FRAGMENT`, a record longer than :data:`MAX_RECORD`, or a stream
that ends inside a fragment is a :class:`~ndmp.errors.ProtocolError`: the
peer is not speaking NDMP and the session must end.
"""

from __future__ import annotations

import struct

import trio

from .errors import ProtocolError

_MARK = struct.Struct(">I")
LAST_FRAGMENT = 0x80000000
#: ndmjob reads fragment lengths as 24 bits; nothing longer is NDMP.
MAX_FRAGMENT = (1 << 24) - 1
#: The longest message we accept: a TAPE_WRITE of the largest record is
#: 256 KiB; name lists of big restores can run to megabytes.
MAX_RECORD = 64 * 1024 * 1024
_RECEIVE_CHUNK = 256 * 1024


class RecordStream:
    """Whole records in and out of a trio stream.  Sending is serialized (a
    reply and a post from a mover task may want the socket at once)."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self._buffer = bytearray()
        self._eof = False
        self._send_lock = trio.Lock()

    async def _fill(self, wanted: int) -> bool:
        """Buffer at least ``wanted`` bytes; False if the stream ended first."""
        while len(self._buffer) < wanted:
            if self._eof:
                return False
            chunk = await self.stream.receive_some(_RECEIVE_CHUNK)
            if not chunk:
                self._eof = True
                return False
            self._buffer += chunk
        return True

    async def receive_record(self) -> bytes | None:
        """The next record, or ``None`` when the peer closed the stream
        between records."""
        parts: list[bytes] = []
        total = 0
        while True:
            if not await self._fill(4):
                if not parts and not self._buffer:
                    return None
                raise ProtocolError(
                    f"truncated fragment: the connection closed inside a record mark "
                    f"({len(self._buffer)} of 4 bytes)")
            mark = _MARK.unpack_from(self._buffer)[0]
            length = mark & ~LAST_FRAGMENT
            if length > MAX_FRAGMENT:
                raise ProtocolError(f"oversized fragment: {length} bytes (at most {MAX_FRAGMENT})")
            total += length
            if total > MAX_RECORD:
                raise ProtocolError(f"oversized record: more than {MAX_RECORD} bytes")
            if not await self._fill(4 + length):
                raise ProtocolError(
                    f"truncated fragment: the connection closed after {len(self._buffer) - 4} "
                    f"of {length} bytes")
            parts.append(bytes(self._buffer[4:4 + length]))
            del self._buffer[:4 + length]
            if mark & LAST_FRAGMENT:
                return parts[0] if len(parts) == 1 else b"".join(parts)

    async def send_record(self, record: bytes) -> None:
        """Send one record as a single fragment."""
        if len(record) > MAX_FRAGMENT:
            raise ProtocolError(f"cannot send a {len(record)}-byte message (at most {MAX_FRAGMENT})")
        async with self._send_lock:
            await self.stream.send_all(_MARK.pack(LAST_FRAGMENT | len(record)) + record)

    async def aclose(self) -> None:
        await self.stream.aclose()
