"""SCSI: this server has no robot; every device is unknown."""

from __future__ import annotations

from ..errors import DevNotOpen, NdmpError
from ..messages import DeviceRequest, ErrorReply
from ..protocol import Error, Message
from . import Service, answers


class ScsiService(Service):
    @answers(Message.SCSI_OPEN)
    async def open(self, request: DeviceRequest) -> ErrorReply:
        raise NdmpError(f"{request.device}: no such SCSI device (this server has no robot)", Error.NO_DEVICE_ERR)

    @answers(Message.SCSI_CLOSE, Message.SCSI_GET_STATE, Message.SCSI_RESET_DEVICE, Message.SCSI_EXECUTE_CDB)
    async def not_open(self, _request: object) -> ErrorReply:
        raise DevNotOpen("no SCSI device is open")
