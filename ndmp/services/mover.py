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
from . import Service, answers

if TYPE_CHECKING:
    from ..session import Session

_OK = ErrorReply(Error.NO_ERR)


class MoverService(Service):
    def __init__(self, session: "Session") -> None:
        super().__init__(session)
        self.mover = session.mover

    @answers(Message.MOVER_GET_STATE)
    async def get_state(self, _request: None) -> MoverGetStateReply:
        return self.mover.get_state()

    @answers(Message.MOVER_LISTEN)
    async def listen(self, request: MoverListenRequest) -> AddrReply:
        return AddrReply(Error.NO_ERR, await self.mover.listen(request.mode, request.addr_type))

    @answers(Message.MOVER_CONNECT)
    async def connect(self, request: MoverConnectRequest) -> ErrorReply:
        data = self.session.data
        await self.mover.connect(request.mode, request.addr,
                                 data.local_connect if data.listening_local else None)
        return _OK

    @answers(Message.MOVER_CONTINUE)
    async def continue_(self, _request: None) -> ErrorReply:
        self.mover.continue_()
        return _OK

    @answers(Message.MOVER_ABORT)
    async def abort(self, _request: None) -> ErrorReply:
        await self.mover.abort()
        return _OK

    @answers(Message.MOVER_STOP)
    async def stop(self, _request: None) -> ErrorReply:
        self.mover.stop()
        return _OK

    @answers(Message.MOVER_SET_WINDOW)
    async def set_window(self, request: MoverSetWindowRequest) -> ErrorReply:
        self.mover.set_window(request.offset, request.length)
        return _OK

    @answers(Message.MOVER_READ)
    async def read(self, request: MoverReadRequest) -> ErrorReply:
        self.mover.read(request.offset, request.length)
        return _OK

    @answers(Message.MOVER_CLOSE)
    async def close(self, _request: None) -> ErrorReply:
        await self.mover.close()
        return _OK

    @answers(Message.MOVER_SET_RECORD_SIZE)
    async def set_record_size(self, request: MoverSetRecordSizeRequest) -> ErrorReply:
        self.mover.set_record_size(request.len)
        return _OK
