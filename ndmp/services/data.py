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

if TYPE_CHECKING:
    from ..session import Session

_OK = ErrorReply(Error.NO_ERR)


class DataServiceHandlers:
    def __init__(self, session: "Session") -> None:
        self.data = session.data

    def handlers(self) -> dict:
        return {
            Message.DATA_GET_STATE: self.get_state,
            Message.DATA_START_BACKUP: self.start_backup,
            Message.DATA_START_RECOVER: self.start_recover,
            Message.DATA_START_RECOVER_FILEHIST: self.start_recover_filehist,
            Message.DATA_ABORT: self.abort,
            Message.DATA_GET_ENV: self.get_env,
            Message.DATA_STOP: self.stop,
            Message.DATA_LISTEN: self.listen,
            Message.DATA_CONNECT: self.connect,
        }

    async def get_state(self, _request: None) -> DataGetStateReply:
        return self.data.get_state()

    async def start_backup(self, request: DataStartBackupRequest) -> ErrorReply:
        await self.data.start_backup(request.butype_name, request.env)
        return _OK

    async def start_recover(self, request: DataStartRecoverRequest) -> ErrorReply:
        await self.data.start_recover(request.env, request.nlist, request.butype_name, filehist=False)
        return _OK

    async def start_recover_filehist(self, request: DataStartRecoverRequest) -> ErrorReply:
        await self.data.start_recover(request.env, request.nlist, request.butype_name, filehist=True)
        return _OK

    async def abort(self, _request: None) -> ErrorReply:
        await self.data.abort()
        return _OK

    async def get_env(self, _request: None) -> DataGetEnvReply:
        return DataGetEnvReply(Error.NO_ERR, self.data.get_env())

    async def stop(self, _request: None) -> ErrorReply:
        self.data.stop()
        return _OK

    async def listen(self, request: DataListenRequest) -> AddrReply:
        return AddrReply(Error.NO_ERR, await self.data.listen(request.addr_type))

    async def connect(self, request: DataConnectRequest) -> ErrorReply:
        await self.data.connect(request.addr)
        return _OK
