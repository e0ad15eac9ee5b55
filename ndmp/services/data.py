"""DATA: the requests of :class:`~ndmp.data.DataService`, one session's data service."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..messages import (
    AddrReply,
    DataConnectRequest,
    DataGetEnvReply,
    DataGetStateReply,
    DataListenRequest,
    DataStartBackupRequest,
    DataStartRecoverRequest,
    ErrorReply,
)
from ..protocol import Error, Message
from . import Service, answers

if TYPE_CHECKING:
    from ..session import Session

_OK = ErrorReply(Error.NO_ERR)


class DataServiceHandlers(Service):
    def __init__(self, session: "Session") -> None:
        super().__init__(session)
        self.data = session.data

    @answers(Message.DATA_GET_STATE)
    async def get_state(self, _request: None) -> DataGetStateReply:
        return self.data.get_state()

    @answers(Message.DATA_START_BACKUP)
    async def start_backup(self, request: DataStartBackupRequest) -> ErrorReply:
        await self.data.start_backup(request.butype_name, request.env)
        return _OK

    @answers(Message.DATA_START_RECOVER)
    async def start_recover(self, request: DataStartRecoverRequest) -> ErrorReply:
        await self.data.start_recover(request.env, request.nlist, request.butype_name, filehist=False)
        return _OK

    @answers(Message.DATA_START_RECOVER_FILEHIST)
    async def start_recover_filehist(self, request: DataStartRecoverRequest) -> ErrorReply:
        await self.data.start_recover(request.env, request.nlist, request.butype_name, filehist=True)
        return _OK

    @answers(Message.DATA_ABORT)
    async def abort(self, _request: None) -> ErrorReply:
        await self.data.abort()
        return _OK

    @answers(Message.DATA_GET_ENV)
    async def get_env(self, _request: None) -> DataGetEnvReply:
        return DataGetEnvReply(Error.NO_ERR, self.data.get_env())

    @answers(Message.DATA_STOP)
    async def stop(self, _request: None) -> ErrorReply:
        self.data.stop()
        return _OK

    @answers(Message.DATA_LISTEN)
    async def listen(self, request: DataListenRequest) -> AddrReply:
        return AddrReply(Error.NO_ERR, await self.data.listen(request.addr_type))

    @answers(Message.DATA_CONNECT)
    async def connect(self, request: DataConnectRequest) -> ErrorReply:
        await self.data.connect(request.addr)
        return _OK
