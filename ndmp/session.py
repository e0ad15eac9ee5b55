"""One NDMP session: one TCP connection from a DMA.

A session reads records, decodes each request, checks that the DMA has
authenticated (only CONNECT_* and CONFIG_GET_* are allowed before), calls
the service that owns the message and sends the reply.  A failing request
gets a full reply body whose ``error`` says why (and one log line); only an
unknown message (NOT_SUPPORTED_ERR) and an undecodable body
(XDR_DECODE_ERR) get a header error.  A broken record stream
(:class:`~ndmp.errors.ProtocolError`) ends the session with one log line.

Posts (NOTIFY, LOG, FH) go out with :meth:`Session.post` at any time, also
from the mover's tasks; replies and posts share one sequence counter.
When the DMA goes away (ndmjob never sends CONNECT_CLOSE) everything is
cleaned up: the mover is halted and the tape closed, releasing its drive.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import trio

from tapelib import TapeError

from .config import ServerConfig
from .data import DataService
from .drive import NdmpTape, ServedDrives
from .engine import DumpEngine
from .errors import NdmpError, ProtocolError, XdrError
from .messages import POSTS, REPLIES, REQUESTS, Header, LogMessage, NotifyConnectionStatus
from .mover import Mover
from .protocol import (
    HEADER_SIZE,
    NDMP_VERSION,
    ConnectionStatus,
    DataOperation,
    DataState,
    Error,
    LogType,
    Message,
    MessageType,
    MoverState,
    message_name,
)
from .services import Handler
from .transport import RecordStream
from .xdr import decode, encode

_log = logging.getLogger("ndmp.session")

#: How the log names a data operation left running by a DMA that went away.
_RUNNING = {DataOperation.BACKUP: "a backup", DataOperation.RECOVER: "a recover",
            DataOperation.RECOVER_FILEHIST: "a listing"}

#: What a DMA may send before it has authenticated.
PRE_AUTH = frozenset({
    Message.CONNECT_OPEN, Message.CONNECT_CLIENT_AUTH, Message.CONNECT_CLOSE,
    Message.CONNECT_SERVER_AUTH, Message.CONFIG_GET_HOST_INFO, Message.CONFIG_GET_SERVER_INFO,
    Message.CONFIG_GET_CONNECTION_TYPE, Message.CONFIG_GET_AUTH_ATTR, Message.CONFIG_GET_BUTYPE_INFO,
    Message.CONFIG_GET_FS_INFO, Message.CONFIG_GET_TAPE_INFO, Message.CONFIG_GET_SCSI_INFO,
    Message.CONFIG_GET_EXT_LIST,
})

@dataclass
class ServerContext:
    """What every session of one server shares."""

    config: ServerConfig
    drives: ServedDrives


class EndSession(Exception):
    """Raised by a handler to close the connection after its work (CONNECT_CLOSE)."""


class Session:
    """The state of one connection and the dispatch of its requests."""

    def __init__(self, stream: trio.SocketStream, context: ServerContext) -> None:
        from .services import config, connect, data, mover, scsi, tape

        self.context = context
        self.socket_stream = stream
        self.records = RecordStream(stream)
        try:
            peer = stream.socket.getpeername()
            self.peer = f"{peer[0]}:{peer[1]}"
        except OSError:
            self.peer = "?"
        self.log = _log
        self.version = 0
        self.authenticated = False
        self.md5_challenge: bytes | None = None
        self.tape: NdmpTape | None = None
        self.nursery: trio.Nursery  # set in run()
        self.mover = Mover(self)
        self.data = DataService(self, DumpEngine(context.config.spool))
        self._sequence = 0
        self._send_lock = trio.Lock()
        self._closing = False
        self.handlers: dict[int, Handler] = {}
        for service in (connect.ConnectService(self), config.ConfigService(self),
                        tape.TapeService(self), mover.MoverService(self), scsi.ScsiService(self),
                        data.DataServiceHandlers(self)):
            self.handlers.update(service.handlers())

    # -- what the mover asks ------------------------------------------------------
    def data_is_idle(self) -> bool:
        """Whether the data service is free for the mover to listen or connect
        (IDLE, or LISTEN for a MOVER_CONNECT to it)."""
        return self.data.state in (DataState.IDLE, DataState.LISTEN)

    def local_address(self) -> str:
        """The IP the DMA used to reach us: where a TCP listener is opened
        (an IPv4-mapped IPv6 address as plain IPv4)."""
        host = self.socket_stream.socket.getsockname()[0]
        return host.removeprefix("::ffff:")

    # -- sending --------------------------------------------------------------------
    async def _send(self, message_type: MessageType, code: int, reply_sequence: int,
                    error: int, body: bytes) -> None:
        async with self._send_lock:
            self._sequence += 1
            header = Header(self._sequence, int(time.time()) & 0xFFFFFFFF, message_type, code,
                            reply_sequence, error)
            await self.records.send_record(header.pack() + body)

    async def post(self, code: Message, body: Any) -> None:
        """Send a notification, log or file history post (never answered).
        A DMA that has gone away is noticed by the reading side, not here."""
        await self.post_encoded(code, encode(body))

    async def post_encoded(self, code: Message, body: bytes) -> None:
        """:meth:`post` of a body already in XDR (file history: :mod:`ndmp.filehistory`)."""
        try:
            await self._send(MessageType.REQUEST, code, 0, 0, body)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.log.debug("post %s not sent: the connection is gone", message_name(code))

    async def log_message(self, text: str, log_type: LogType = LogType.NORMAL) -> None:
        """A LOG_MESSAGE post, which ndmjob prints."""
        await self.post(Message.LOG_MESSAGE, LogMessage(log_type, 0, text, 0, 0))

    # -- the session ----------------------------------------------------------------
    async def run(self) -> None:
        self.log.info("connection from %s", self.peer)
        try:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                await self._serve_until_closed()
                self._say_what_is_left()
                await self.data.shutdown()  # ends a running engine before its task is cancelled
                nursery.cancel_scope.cancel()  # the mover's tasks; waited for here
        finally:
            with trio.CancelScope(shield=True):
                await self._cleanup()
        self.log.info("%s: session ended", self.peer)

    def _say_what_is_left(self) -> None:
        """One line when the session ends with work running: a DMA that
        vanished mid-backup leaves a cut image (no end-of-dump record)."""
        if self.data.state == DataState.ACTIVE:
            what = _RUNNING.get(self.data.operation, "an operation")
        elif self.mover.state in (MoverState.ACTIVE, MoverState.PAUSED):
            what = "the mover"
        else:
            return
        self.log.warning("%s: the DMA went away with %s running; stopping it", self.peer, what)

    async def _serve_until_closed(self) -> None:
        try:
            await self.post(Message.NOTIFY_CONNECTION_STATUS, NotifyConnectionStatus(
                ConnectionStatus.CONNECTED, NDMP_VERSION, "pyndmpd ready"))
            await self._serve()
        except ProtocolError as exc:
            self.log.warning("%s: %s; closing the session", self.peer, exc.message)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self.log.info("%s: connection lost (%s)", self.peer, exc)

    async def _serve(self) -> None:
        while not self._closing:
            record = await self.records.receive_record()
            if record is None:
                return
            await self._handle(record)

    async def _handle(self, record: bytes) -> None:
        try:
            header = Header.unpack(record)
        except XdrError as exc:
            raise ProtocolError(exc.message) from None
        name = message_name(header.message_code)
        if header.is_reply:
            self.log.debug("ignoring a reply (%s): the DMA never answers our posts", name)
            return
        code = header.message_code
        handler = self.handlers.get(code)
        if handler is None:
            self.log.warning("%s: unknown or unsupported message %s: NOT_SUPPORTED_ERR", self.peer, name)
            if code not in POSTS:
                await self._reply(header, Error.NOT_SUPPORTED_ERR, None)
            return
        if not self.authenticated and code not in PRE_AUTH:
            self.log.warning("%s: %s before authentication: NOT_AUTHORIZED_ERR", self.peer, name)
            await self._reply(header, Error.NO_ERR, REPLIES[code](error=Error.NOT_AUTHORIZED_ERR))
            return
        layout = REQUESTS.get(code)
        body = memoryview(record)[HEADER_SIZE:]
        try:
            request = decode(layout, body) if layout is not None else None
        except XdrError as exc:
            self.log.warning("%s: %s: undecodable body (%s): XDR_DECODE_ERR", self.peer, name, exc.message)
            await self._reply(header, Error.XDR_DECODE_ERR, None)
            return
        try:
            reply = await handler(request)
        except EndSession:
            self._closing = True
            return
        except NdmpError as exc:
            self.log.info("%s: %s: %s: %s", self.peer, name, exc.code.name, exc.message)
            reply = REPLIES[code](error=exc.code)
        except TapeError as exc:  # a damaged cartridge met while spacing or reading
            self.log.warning("%s: %s: IO_ERR: %s", self.peer, name, exc.message)
            reply = REPLIES[code](error=Error.IO_ERR)
        except Exception:  # a bug: answer it, keep the session and say where
            self.log.exception("%s: %s failed: UNDEFINED_ERR", self.peer, name)
            reply = REPLIES[code](error=Error.UNDEFINED_ERR)
        if code in REPLIES:
            await self._reply(header, Error.NO_ERR, reply)

    async def _reply(self, request: Header, header_error: int, body: Any) -> None:
        data = b"" if header_error or body is None else encode(body)
        await self._send(MessageType.REPLY, request.message_code, request.sequence, header_error, data)

    async def _cleanup(self) -> None:
        """The DMA is gone or closed: stop the mover, close the tape (releasing
        its drive) and the connection.  The mover's tasks have ended by now."""
        await self.data.shutdown()
        await self.mover.shutdown()
        if self.tape is not None:
            tape, self.tape = self.tape, None
            await trio.to_thread.run_sync(tape.close)
        await self.records.aclose()
