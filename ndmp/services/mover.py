"""MOVER: the requests of :class:`~ndmp.mover.Mover`, one session's mover."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..messages import (
    AddrReply,
    ErrorReply,
    MoverConnectRequest,
    MoverGetStateReply,
    MoverListenRequest,
    MoverReadRequest,
    MoverSetRecordSizeRequest,
    MoverSetWindowRequest,
)
from ..protocol import Error, Message

if TYPE_CHECKING:
    from ..session import Session

_OK = ErrorReply(Error.NO_ERR)


class MoverService:
    def __init__(self, session: "Session") -> None:
        self.session = session
        self.mover = session.mover

    def handlers(self) -> dict:
        return {
            Message.MOVER_GET_STATE: self.get_state,
            Message.MOVER_LISTEN: self.listen,
            Message.MOVER_CONNECT: self.connect,
            Message.MOVER_CONTINUE: self.continue_,
            Message.MOVER_ABORT: self.abort,
            Message.MOVER_STOP: self.stop,
            Message.MOVER_SET_WINDOW: self.set_window,
            Message.MOVER_READ: self.read,
            Message.MOVER_CLOSE: self.close,
            Message.MOVER_SET_RECORD_SIZE: self.set_record_size,
        }

    async def get_state(self, _request: None) -> MoverGetStateReply:
        return self.mover.get_state()

    async def listen(self, request: MoverListenRequest) -> AddrReply:
        return AddrReply(Error.NO_ERR, await self.mover.listen(request.mode, request.addr_type))

    async def connect(self, request: MoverConnectRequest) -> ErrorReply:
        data = self.session.data
        await self.mover.connect(request.mode, request.addr,
                                 data.local_connect if data.listening_local else None)
        return _OK

    async def continue_(self, _request: None) -> ErrorReply:
        self.mover.continue_()
        return _OK

    async def abort(self, _request: None) -> ErrorReply:
        await self.mover.abort()
        return _OK

    async def stop(self, _request: None) -> ErrorReply:
        self.mover.stop()
        return _OK

    async def set_window(self, request: MoverSetWindowRequest) -> ErrorReply:
        self.mover.set_window(request.offset, request.length)
        return _OK

    async def read(self, request: MoverReadRequest) -> ErrorReply:
        self.mover.read(request.offset, request.length)
        return _OK

    async def close(self, _request: None) -> ErrorReply:
        await self.mover.close()
        return _OK

    async def set_record_size(self, request: MoverSetRecordSizeRequest) -> ErrorReply:
        self.mover.set_record_size(request.len)
        return _OK
