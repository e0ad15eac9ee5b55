"""MOVER: the requests of :class:`~ndmp.mover.Mover`, one session's mover."""

from __future__ import annotations

from ..messages import AddrReply, ErrorReply, MoverConnectRequest, MoverListenRequest
from ..protocol import Error, Message
from . import Service, answers


class MoverService(Service):
    TARGET = "mover"
    FORWARDS = {
        Message.MOVER_GET_STATE: ("get_state",),
        Message.MOVER_CONTINUE: ("continue_",),
        Message.MOVER_ABORT: ("abort",),
        Message.MOVER_STOP: ("stop",),
        Message.MOVER_SET_WINDOW: ("set_window", "offset", "length"),
        Message.MOVER_READ: ("read", "offset", "length"),
        Message.MOVER_CLOSE: ("close",),
        Message.MOVER_SET_RECORD_SIZE: ("set_record_size", "len"),
    }

    @answers(Message.MOVER_LISTEN)
    async def listen(self, request: MoverListenRequest) -> AddrReply:
        return AddrReply(Error.NO_ERR, await self.session.mover.listen(request.mode, request.addr_type))

    @answers(Message.MOVER_CONNECT)
    async def connect(self, request: MoverConnectRequest) -> ErrorReply:
        data = self.session.data
        await self.session.mover.connect(request.mode, request.addr,
                                         data.local_connect if data.listening_local else None)
        return ErrorReply(Error.NO_ERR)
