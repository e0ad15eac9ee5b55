"""The data connection between a data service and a mover.

The image is a raw byte stream with no framing.  Between two hosts it is a
TCP connection (a trio ``SocketStream``); between the data service and the
mover of one session (NDMP's LOCAL address) it is :func:`local_stream_pair`,
two in-process ends with the same interface, so the mover never asks which
kind it holds.
"""

from __future__ import annotations

import ipaddress

import trio

from .errors import ConnectFailed, IllegalArgs, NdmpError
from .messages import Addr, TcpAddr
from .protocol import AddrType, Error

#: Bytes in flight between the two ends of a local pair (chunks of up to
#: 256 KiB; a small queue keeps memory bounded and the writer paced).
_LOCAL_QUEUE = 8


class LocalStream(trio.abc.HalfCloseableStream):
    """One end of an in-process byte stream."""

    def __init__(self, send: trio.MemorySendChannel[bytes], receive: trio.MemoryReceiveChannel[bytes]) -> None:
        self._send = send
        self._receive = receive
        self._pending = b""

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if data:
            try:
                await self._send.send(bytes(data))
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                raise trio.BrokenResourceError("the other end of the local data connection is closed") from None

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def send_eof(self) -> None:
        await self._send.aclose()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if not self._pending:
            try:
                self._pending = await self._receive.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                return b""
        if max_bytes is None or max_bytes >= len(self._pending):
            data, self._pending = self._pending, b""
        else:
            data, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
        return data

    async def aclose(self) -> None:
        await self._send.aclose()
        await self._receive.aclose()


def local_stream_pair() -> tuple[LocalStream, LocalStream]:
    """Two connected ends: what one sends, the other receives."""
    a_send, b_receive = trio.open_memory_channel[bytes](_LOCAL_QUEUE)
    b_send, a_receive = trio.open_memory_channel[bytes](_LOCAL_QUEUE)
    return LocalStream(a_send, a_receive), LocalStream(b_send, b_receive)


async def open_tcp_listener(host: str) -> tuple[trio.SocketListener, Addr]:
    """A listener on a free port of ``host`` (the address the DMA reached us
    at) and the NDMP address that names it (v4 TCP addresses are IPv4)."""
    try:
        ip = int(ipaddress.IPv4Address(host))
    except ValueError:
        raise NdmpError(f"NDMP v4 TCP addresses are IPv4; this session came over {host}",
                        Error.NOT_SUPPORTED_ERR) from None
    listeners = await trio.open_tcp_listeners(0, host=host)
    for extra in listeners[1:]:
        await extra.aclose()
    listener = listeners[0]
    return listener, Addr(AddrType.TCP, [TcpAddr(ip, listener.socket.getsockname()[1])])


async def accept_one(listener: trio.SocketListener) -> trio.SocketStream | None:
    """The one connection a DATA_LISTEN or MOVER_LISTEN waits for; the listener
    is closed either way (None: it was closed, or the accept failed)."""
    try:
        return await listener.accept()
    except (trio.ClosedResourceError, OSError):
        return None
    finally:
        await listener.aclose()


def check_connect_address(addr: Addr) -> None:
    """IllegalArgs unless ``addr`` is LOCAL, or TCP with an address to reach."""
    if addr.addr_type not in (AddrType.LOCAL, AddrType.TCP) or (addr.addr_type == AddrType.TCP and not addr.tcp):
        raise IllegalArgs(f"address type {addr.addr_type} is neither LOCAL nor TCP")


async def open_tcp_to(addr: Addr, who: str) -> tuple[trio.SocketStream, Addr]:
    """A TCP connection to the first address of ``addr`` (a checked TCP address),
    and the address it reached; ConnectFailed naming ``who`` when it cannot."""
    target = addr.tcp[0]
    host = str(ipaddress.IPv4Address(target.ip_addr))
    try:
        stream = await trio.open_tcp_stream(host, target.port)
    except OSError as exc:
        raise ConnectFailed(f"{who}: cannot connect to {host}:{target.port}: {exc.strerror}") from None
    return stream, Addr(AddrType.TCP, [TcpAddr(target.ip_addr, target.port)])


async def close_quietly(*resources: trio.abc.AsyncResource | None) -> None:
    """Close each of ``resources`` (None ones skipped), shielded from
    cancellation, whatever the peer did to them."""
    for resource in resources:
        if resource is not None:
            with trio.CancelScope(shield=True):
                try:
                    await resource.aclose()
                except (trio.BrokenResourceError, OSError):
                    pass
