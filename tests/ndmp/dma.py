"""A small NDMP client (a DMA) for the tests: blocking sockets, our codec.

ndmjob and tshark are the independent oracles; this client exists to drive
what ndmjob's test modes do not reach (read semantics, the mover moving
data, bad input) and to look at replies field by field.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from ndmp.messages import POSTS, REPLIES, Header
from ndmp.protocol import HEADER_SIZE, Error, Message, MessageType
from ndmp.xdr import decode, encode

_MARK = struct.Struct(">I")


@dataclass
class Reply:
    header: Header
    body: Any

    @property
    def error(self) -> int:
        if self.header.error_code:
            return self.header.error_code
        return self.body.error


@dataclass
class Dma:
    sock: socket.socket
    sequence: int = 0
    posts: list[tuple[int, Any]] = field(default_factory=list)

    @classmethod
    def connect(cls, port: int, host: str = "127.0.0.1", auth: bool = True) -> "Dma":
        sock = socket.create_connection((host, port), timeout=10)
        dma = cls(sock)
        code, body = dma.next_post()
        assert code == Message.NOTIFY_CONNECTION_STATUS and body.reason == 0, (code, body)
        if auth:
            from ndmp.messages import AuthData, ConnectClientAuthRequest, ConnectOpenRequest

            assert dma.call(Message.CONNECT_OPEN, ConnectOpenRequest(4)).error == Error.NO_ERR
            assert dma.call(Message.CONNECT_CLIENT_AUTH, ConnectClientAuthRequest(AuthData(0))).error == Error.NO_ERR
        return dma

    def close(self) -> None:
        self.sock.close()

    # -- records ------------------------------------------------------------
    def send_record(self, record: bytes, fragment: int | None = None) -> None:
        """Send one record, split into fragments of ``fragment`` bytes if given."""
        size = fragment or max(len(record), 1)
        pieces = [record[i:i + size] for i in range(0, len(record), size)] or [b""]
        for i, piece in enumerate(pieces):
            last = 0x80000000 if i == len(pieces) - 1 else 0
            self.sock.sendall(_MARK.pack(last | len(piece)) + piece)

    def _recv_exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise EOFError(f"connection closed after {len(data)} of {n} bytes")
            data += chunk
        return data

    def receive_record(self) -> bytes:
        parts = []
        while True:
            mark = _MARK.unpack(self._recv_exact(4))[0]
            parts.append(self._recv_exact(mark & 0x7FFFFFFF))
            if mark & 0x80000000:
                return b"".join(parts)

    # -- messages ---------------------------------------------------------------
    def request(self, code: int, body: Any = None, fragment: int | None = None) -> int:
        self.sequence += 1
        header = Header(self.sequence, int(time.time()), MessageType.REQUEST, code)
        self.send_record(header.pack() + (encode(body) if body is not None else b""), fragment)
        return self.sequence

    def _read_message(self) -> tuple[Header, bytes]:
        record = self.receive_record()
        return Header.unpack(record), record[HEADER_SIZE:]

    def wait_reply(self, sequence: int, code: int) -> Reply:
        while True:
            header, body = self._read_message()
            if header.message_type == MessageType.REPLY:
                assert header.reply_sequence == sequence, (header, sequence)
                assert header.message_code == code, (header, code)
                if header.error_code:
                    assert body == b"", "a header error carries no body"
                    return Reply(header, None)
                return Reply(header, decode(REPLIES[code], body))
            self.posts.append((header.message_code, decode(POSTS[header.message_code], body)))

    def call(self, code: int, body: Any = None, fragment: int | None = None) -> Reply:
        return self.wait_reply(self.request(code, body, fragment), code)

    def next_post(self, timeout: float = 10) -> tuple[int, Any]:
        """The oldest post not yet looked at (waiting for one if needed)."""
        if self.posts:
            return self.posts.pop(0)
        self.sock.settimeout(timeout)
        try:
            header, body = self._read_message()
        finally:
            self.sock.settimeout(10)
        assert header.message_type == MessageType.REQUEST, header
        return header.message_code, decode(POSTS[header.message_code], body)
