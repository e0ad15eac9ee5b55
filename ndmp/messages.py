"""The NDMP v4 message header and the layout of every body we send or read.

Each body is a dataclass whose fields are in wire order, written as one
row of a table (see :func:`~ndmp.xdr.layout`); :data:`EXCHANGES` maps a
message code to its request and reply layouts (``None`` = no body), and
:data:`POSTS` the bodies of notifications, logs and file history, which
are sent as requests and never answered.  Every reply body starts with
``error`` except TAPE_GET_STATE's and DATA_GET_STATE's, where
``unsupported`` comes first, as in ``ndmp4.x``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .errors import XdrError
from .protocol import HEADER_SIZE, AddrType, AuthType, Message, MessageType
from .xdr import (
    ENUM,
    OPAQUE,
    STRING,
    U32,
    U64,
    U64_INVALID,
    Array,
    Fixed,
    StructType,
    Union,
    layout,
)

_HEADER = struct.Struct(">IIiiIi")


@dataclass
class Header:
    sequence: int
    time_stamp: int
    message_type: int
    message_code: int
    reply_sequence: int = 0
    error_code: int = 0

    def pack(self) -> bytes:
        return _HEADER.pack(self.sequence, self.time_stamp, self.message_type,
                            self.message_code, self.reply_sequence, self.error_code)

    @classmethod
    def unpack(cls, record: bytes | memoryview) -> "Header":
        if len(record) < HEADER_SIZE:
            raise XdrError(f"a message of {len(record)} bytes is shorter than the {HEADER_SIZE}-byte header")
        return cls(*_HEADER.unpack_from(record))

    @property
    def is_reply(self) -> bool:
        return self.message_type == MessageType.REPLY


# -- shared structures ------------------------------------------------------
Pval = layout("Pval", name=STRING, value=STRING)
PVALS = Array(Pval)
TcpAddr = layout("TcpAddr", ip_addr=U32, port=U32, addr_env=PVALS)



@dataclass
class Addr:
    """An address (union on ``addr_type``): LOCAL carries nothing, TCP a list
    of ``TcpAddr`` (send exactly one), IPC an opaque."""

    addr_type: int = AddrType.LOCAL
    tcp: list[TcpAddr] = field(default_factory=list)
    ipc: bytes = b""


ADDR = Union(Addr, "addr_type", {
    AddrType.LOCAL: None,
    AddrType.TCP: ("tcp", Array(TcpAddr)),
    AddrType.IPC: ("ipc", OPAQUE),
})


@dataclass
class AuthData:
    auth_type: int = AuthType.NONE
    text: "AuthText | None" = None
    md5: "AuthMd5 | None" = None


AuthText = layout("AuthText", auth_id=STRING, auth_password=STRING)
AuthMd5 = layout("AuthMd5", auth_id=STRING, auth_digest=Fixed(16))
AUTH_DATA = Union(AuthData, "auth_type", {
    AuthType.NONE: None,
    AuthType.TEXT: ("text", StructType(AuthText)),
    AuthType.MD5: ("md5", StructType(AuthMd5)),
})


@dataclass
class AuthAttr:
    auth_type: int = AuthType.NONE
    challenge: bytes = bytes(64)


AUTH_ATTR = Union(AuthAttr, "auth_type", {AuthType.MD5: ("challenge", Fixed(64))})

ButypeInfo = layout("ButypeInfo", butype_name=STRING, default_env=PVALS, attrs=U32)
FsInfo = layout("FsInfo", unsupported=U32, fs_type=STRING, fs_logical_device=STRING, fs_physical_device=STRING,
                total_size=U64, used_size=U64, avail_size=U64, total_inodes=U64, used_inodes=U64, fs_env=PVALS,
                fs_status=STRING)
DeviceCapability = layout("DeviceCapability", device=STRING, attr=U32, capability=PVALS)
DeviceInfo = layout("DeviceInfo", model=STRING, caplist=Array(DeviceCapability))
ClassList = layout("ClassList", class_id=U32, class_version=Array(U32))
ClassVersion = layout("ClassVersion", class_id=U32, class_version=U32)
Name = layout("Name", original_path=STRING, destination_path=STRING, name=STRING, other_name=STRING,
              node=(U64, U64_INVALID), fh_info=(U64, U64_INVALID))


# -- bodies -------------------------------------------------------------------
#: The reply of every request whose answer is only an error code.
ErrorReply = layout("ErrorReply", error=ENUM)
ConnectOpenRequest = layout("ConnectOpenRequest", protocol_version=U32)
ConnectClientAuthRequest = layout("ConnectClientAuthRequest", auth_data=AUTH_DATA)
ConnectServerAuthRequest = layout("ConnectServerAuthRequest", client_attr=AUTH_ATTR)
ConnectServerAuthReply = layout("ConnectServerAuthReply", error=ENUM, server_result=AUTH_DATA)
HostInfoReply = layout("HostInfoReply", error=ENUM, hostname=STRING, os_type=STRING, os_vers=STRING, hostid=STRING)
ServerInfoReply = layout("ServerInfoReply", error=ENUM, vendor_name=STRING, product_name=STRING,
                         revision_number=STRING, auth_type=Array(ENUM))
ConnectionTypeReply = layout("ConnectionTypeReply", error=ENUM, addr_types=Array(ENUM))
AuthAttrRequest = layout("AuthAttrRequest", auth_type=ENUM)
AuthAttrReply = layout("AuthAttrReply", error=ENUM, server_attr=AUTH_ATTR)
ButypeInfoReply = layout("ButypeInfoReply", error=ENUM, butype_info=Array(ButypeInfo))
FsInfoReply = layout("FsInfoReply", error=ENUM, fs_info=Array(FsInfo))
DeviceInfoReply = layout("DeviceInfoReply", error=ENUM, devices=Array(DeviceInfo))
ExtListReply = layout("ExtListReply", error=ENUM, class_list=Array(ClassList))
SetExtListRequest = layout("SetExtListRequest", ndmp_selected_ext=Array(ClassVersion))
#: SCSI_OPEN's request: a device name.
DeviceRequest = layout("DeviceRequest", device=STRING)
ScsiGetStateReply = layout("ScsiGetStateReply", error=ENUM, target_controller=U32, target_id=U32, target_lun=U32)
ExecuteCdbRequest = layout("ExecuteCdbRequest", flags=U32, timeout=U32, datain_len=U32, cdb=OPAQUE, dataout=OPAQUE)
ExecuteCdbReply = layout("ExecuteCdbReply", error=ENUM, status=U32, dataout_len=U32, datain=OPAQUE,
                         ext_sense=OPAQUE)
TapeOpenRequest = layout("TapeOpenRequest", device=STRING, mode=ENUM)
TapeGetStateReply = layout("TapeGetStateReply", unsupported=U32, error=ENUM, flags=U32, file_num=U32,
                           soft_errors=U32, block_size=U32, blockno=U32, total_space=U64, space_remain=U64)
TapeMtioRequest = layout("TapeMtioRequest", tape_op=ENUM, count=U32)
TapeMtioReply = layout("TapeMtioReply", error=ENUM, resid_count=U32)
TapeWriteRequest = layout("TapeWriteRequest", data_out=OPAQUE)
TapeWriteReply = layout("TapeWriteReply", error=ENUM, count=U32)
TapeReadRequest = layout("TapeReadRequest", count=U32)
TapeReadReply = layout("TapeReadReply", error=ENUM, data_in=OPAQUE)
MoverGetStateReply = layout("MoverGetStateReply", error=ENUM, mode=ENUM, state=ENUM, pause_reason=ENUM,
                            halt_reason=ENUM, record_size=U32, record_num=U32, bytes_moved=U64, seek_position=U64,
                            bytes_left_to_read=U64, window_offset=U64, window_length=U64, data_connection_addr=ADDR)
MoverListenRequest = layout("MoverListenRequest", mode=ENUM, addr_type=ENUM)
#: MOVER_LISTEN's and DATA_LISTEN's reply: the address to connect to.
AddrReply = layout("AddrReply", error=ENUM, connect_addr=ADDR)
MoverConnectRequest = layout("MoverConnectRequest", mode=ENUM, addr=ADDR)
MoverSetWindowRequest = layout("MoverSetWindowRequest", offset=U64, length=U64)
MoverReadRequest = layout("MoverReadRequest", offset=U64, length=U64)
MoverSetRecordSizeRequest = layout("MoverSetRecordSizeRequest", len=U32)
DataGetStateReply = layout("DataGetStateReply", unsupported=U32, error=ENUM, operation=ENUM, state=ENUM,
                           halt_reason=ENUM, bytes_processed=U64, est_bytes_remain=U64, est_time_remain=U32,
                           data_connection_addr=ADDR, read_offset=U64, read_length=U64)
DataListenRequest = layout("DataListenRequest", addr_type=ENUM)
DataConnectRequest = layout("DataConnectRequest", addr=ADDR)
DataStartBackupRequest = layout("DataStartBackupRequest", butype_name=STRING, env=PVALS)
DataStartRecoverRequest = layout("DataStartRecoverRequest", env=PVALS, nlist=Array(Name),
                                 butype_name=STRING)
DataGetEnvReply = layout("DataGetEnvReply", error=ENUM, env=PVALS)


# -- posts --------------------------------------------------------------------
NotifyConnectionStatus = layout("NotifyConnectionStatus", reason=ENUM, protocol_version=U32, text_reason=STRING)
#: NOTIFY_DATA_HALTED and NOTIFY_MOVER_HALTED: a halt reason.
NotifyHalted = layout("NotifyHalted", reason=ENUM)
NotifyMoverPaused = layout("NotifyMoverPaused", reason=ENUM, seek_position=U64)
NotifyDataRead = layout("NotifyDataRead", offset=U64, length=U64)
LogMessage = layout("LogMessage", log_type=ENUM, message_id=U32, entry=STRING, associated_message_valid=ENUM,
                    associated_message_sequence=U32)
LogFile = layout("LogFile", name=STRING, recovery_status=ENUM)


# -- file history -------------------------------------------------------------
@dataclass
class FileName:
    """A file name (union on ``fs_type``): UNIX names are one string."""

    fs_type: int = 0
    unix_name: str = ""


FILE_NAME = Union(FileName, "fs_type", {0: ("unix_name", STRING)})

FileStat = layout("FileStat", unsupported=U32, fs_type=ENUM, ftype=ENUM, mtime=U32, atime=U32, ctime=U32, owner=U32,
                  group=U32, fattr=U32, size=U64, links=U32)
FhDir = layout("FhDir", names=Array(FILE_NAME), node=U64, parent=U64)
FhNode = layout("FhNode", stats=Array(FileStat), node=U64, fh_info=(U64, U64_INVALID))
FhAddDir = layout("FhAddDir", dirs=Array(FhDir))
FhAddNode = layout("FhAddNode", nodes=Array(FhNode))


M = Message
#: Request and reply layouts by message code: a request of ``None`` has no
#: body, a reply of ``None`` is never sent (CONNECT_CLOSE), ``ErrorReply``
#: is the reply of a request answered with its error code only.
EXCHANGES: dict[int, tuple[type | None, type | None]] = {
    M.CONNECT_OPEN: (ConnectOpenRequest, ErrorReply),
    M.CONNECT_CLIENT_AUTH: (ConnectClientAuthRequest, ErrorReply),
    M.CONNECT_CLOSE: (None, None),
    M.CONNECT_SERVER_AUTH: (ConnectServerAuthRequest, ConnectServerAuthReply),
    M.CONFIG_GET_HOST_INFO: (None, HostInfoReply),
    M.CONFIG_GET_CONNECTION_TYPE: (None, ConnectionTypeReply),
    M.CONFIG_GET_AUTH_ATTR: (AuthAttrRequest, AuthAttrReply),
    M.CONFIG_GET_BUTYPE_INFO: (None, ButypeInfoReply),
    M.CONFIG_GET_FS_INFO: (None, FsInfoReply),
    M.CONFIG_GET_TAPE_INFO: (None, DeviceInfoReply),
    M.CONFIG_GET_SCSI_INFO: (None, DeviceInfoReply),
    M.CONFIG_GET_SERVER_INFO: (None, ServerInfoReply),
    M.CONFIG_GET_EXT_LIST: (None, ExtListReply),
    M.CONFIG_SET_EXT_LIST: (SetExtListRequest, ErrorReply),
    M.SCSI_OPEN: (DeviceRequest, ErrorReply),
    M.SCSI_CLOSE: (None, ErrorReply),
    M.SCSI_GET_STATE: (None, ScsiGetStateReply),
    M.SCSI_RESET_DEVICE: (None, ErrorReply),
    M.SCSI_EXECUTE_CDB: (ExecuteCdbRequest, ExecuteCdbReply),
    M.TAPE_OPEN: (TapeOpenRequest, ErrorReply),
    M.TAPE_CLOSE: (None, ErrorReply),
    M.TAPE_GET_STATE: (None, TapeGetStateReply),
    M.TAPE_MTIO: (TapeMtioRequest, TapeMtioReply),
    M.TAPE_WRITE: (TapeWriteRequest, TapeWriteReply),
    M.TAPE_READ: (TapeReadRequest, TapeReadReply),
    M.TAPE_EXECUTE_CDB: (ExecuteCdbRequest, ExecuteCdbReply),
    M.MOVER_GET_STATE: (None, MoverGetStateReply),
    M.MOVER_LISTEN: (MoverListenRequest, AddrReply),
    M.MOVER_CONTINUE: (None, ErrorReply),
    M.MOVER_ABORT: (None, ErrorReply),
    M.MOVER_STOP: (None, ErrorReply),
    M.MOVER_SET_WINDOW: (MoverSetWindowRequest, ErrorReply),
    M.MOVER_READ: (MoverReadRequest, ErrorReply),
    M.MOVER_CLOSE: (None, ErrorReply),
    M.MOVER_SET_RECORD_SIZE: (MoverSetRecordSizeRequest, ErrorReply),
    M.MOVER_CONNECT: (MoverConnectRequest, ErrorReply),
    M.DATA_GET_STATE: (None, DataGetStateReply),
    M.DATA_START_BACKUP: (DataStartBackupRequest, ErrorReply),
    M.DATA_START_RECOVER: (DataStartRecoverRequest, ErrorReply),
    M.DATA_START_RECOVER_FILEHIST: (DataStartRecoverRequest, ErrorReply),
    M.DATA_ABORT: (None, ErrorReply),
    M.DATA_GET_ENV: (None, DataGetEnvReply),
    M.DATA_STOP: (None, ErrorReply),
    M.DATA_LISTEN: (DataListenRequest, AddrReply),
    M.DATA_CONNECT: (DataConnectRequest, ErrorReply),
}
#: Request layouts by message code (``None``: the request has no body).
REQUESTS: dict[int, type | None] = {code: request for code, (request, _) in EXCHANGES.items()}
#: Reply layouts by message code (none for a request that is not answered).
REPLIES: dict[int, type] = {code: reply for code, (_, reply) in EXCHANGES.items() if reply is not None}

#: Post bodies by message code (sent as requests, never answered).
POSTS: dict[int, type] = {
    M.NOTIFY_CONNECTION_STATUS: NotifyConnectionStatus,
    M.NOTIFY_DATA_HALTED: NotifyHalted,
    M.NOTIFY_MOVER_HALTED: NotifyHalted,
    M.NOTIFY_MOVER_PAUSED: NotifyMoverPaused,
    M.NOTIFY_DATA_READ: NotifyDataRead,
    M.LOG_MESSAGE: LogMessage,
    M.LOG_FILE: LogFile,
    M.FH_ADD_DIR: FhAddDir,
    M.FH_ADD_NODE: FhAddNode,
}
