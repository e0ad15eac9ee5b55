"""SCSI: this server has no robot; every device is unknown."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import DevNotOpen, NdmpError
from ..messages import DeviceRequest, ErrorReply
from ..protocol import Error, Message

if TYPE_CHECKING:
    from ..session import Session


class ScsiService:
    def __init__(self, session: "Session") -> None:
        self.session = session

    def handlers(self) -> dict:
        return {
            Message.SCSI_OPEN: self.open,
            Message.SCSI_CLOSE: self.not_open,
            Message.SCSI_GET_STATE: self.not_open,
            Message.SCSI_RESET_DEVICE: self.not_open,
            Message.SCSI_EXECUTE_CDB: self.not_open,
        }

    async def open(self, request: DeviceRequest) -> ErrorReply:
        raise NdmpError(f"{request.device}: no such SCSI device (this server has no robot)", Error.NO_DEVICE_ERR)

    async def not_open(self, _request: object) -> ErrorReply:
        raise DevNotOpen("no SCSI device is open")
