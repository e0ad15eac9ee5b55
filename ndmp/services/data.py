"""DATA: the requests of :class:`~ndmp.data.DataService`, one session's data service."""

from __future__ import annotations

from ..messages import AddrReply, DataGetEnvReply, DataListenRequest, DataStartRecoverRequest, ErrorReply
from ..protocol import Error, Message
from . import Service, answers

_OK = ErrorReply(Error.NO_ERR)


class DataServiceHandlers(Service):
    TARGET = "data"
    FORWARDS = {
        Message.DATA_GET_STATE: ("get_state",),
        Message.DATA_START_BACKUP: ("start_backup", "butype_name", "env"),
        Message.DATA_ABORT: ("abort",),
        Message.DATA_STOP: ("stop",),
        Message.DATA_CONNECT: ("connect", "addr"),
    }

    @answers(Message.DATA_START_RECOVER)
    async def start_recover(self, request: DataStartRecoverRequest) -> ErrorReply:
        await self.session.data.start_recover(request.env, request.nlist, request.butype_name, filehist=False)
        return _OK

    @answers(Message.DATA_START_RECOVER_FILEHIST)
    async def start_recover_filehist(self, request: DataStartRecoverRequest) -> ErrorReply:
        await self.session.data.start_recover(request.env, request.nlist, request.butype_name, filehist=True)
        return _OK

    @answers(Message.DATA_GET_ENV)
    async def get_env(self, _request: None) -> DataGetEnvReply:
        return DataGetEnvReply(Error.NO_ERR, await self.session.data.get_env())

    @answers(Message.DATA_LISTEN)
    async def listen(self, request: DataListenRequest) -> AddrReply:
        return AddrReply(Error.NO_ERR, await self.session.data.listen(request.addr_type))
