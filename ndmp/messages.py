"""The NDMP v4 message header and the layout of every body we send or read.

Each body is a dataclass whose fields are in wire order (see
:func:`~ndmp.xdr.xfield`); :data:`REQUESTS` and :data:`REPLIES` map a
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
    xfield,
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
@dataclass
class Pval:
    name: str = xfield(STRING)
    value: str = xfield(STRING)


PVALS = Array(StructType(Pval))


@dataclass
class TcpAddr:
    ip_addr: int = xfield(U32)
    port: int = xfield(U32)
    addr_env: list[Pval] = xfield(PVALS)


@dataclass
class Addr:
    """An address (union on ``addr_type``): LOCAL carries nothing, TCP a list
    of ``TcpAddr`` (send exactly one), IPC an opaque."""

    addr_type: int = AddrType.LOCAL
    tcp: list[TcpAddr] = field(default_factory=list)
    ipc: bytes = b""


ADDR = Union(Addr, "addr_type", {
    AddrType.LOCAL: None,
    AddrType.TCP: ("tcp", Array(StructType(TcpAddr))),
    AddrType.IPC: ("ipc", OPAQUE),
})


@dataclass
class AuthData:
    auth_type: int = AuthType.NONE
    text: "AuthText | None" = None
    md5: "AuthMd5 | None" = None


@dataclass
class AuthText:
    auth_id: str = xfield(STRING)
    auth_password: str = xfield(STRING)


@dataclass
class AuthMd5:
    auth_id: str = xfield(STRING)
    auth_digest: bytes = xfield(Fixed(16))


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


@dataclass
class ButypeInfo:
    butype_name: str = xfield(STRING)
    default_env: list[Pval] = xfield(PVALS)
    attrs: int = xfield(U32)


@dataclass
class FsInfo:
    unsupported: int = xfield(U32)
    fs_type: str = xfield(STRING)
    fs_logical_device: str = xfield(STRING)
    fs_physical_device: str = xfield(STRING)
    total_size: int = xfield(U64)
    used_size: int = xfield(U64)
    avail_size: int = xfield(U64)
    total_inodes: int = xfield(U64)
    used_inodes: int = xfield(U64)
    fs_env: list[Pval] = xfield(PVALS)
    fs_status: str = xfield(STRING)


@dataclass
class DeviceCapability:
    device: str = xfield(STRING)
    attr: int = xfield(U32)
    capability: list[Pval] = xfield(PVALS)


@dataclass
class DeviceInfo:
    model: str = xfield(STRING)
    caplist: list[DeviceCapability] = xfield(Array(StructType(DeviceCapability)))


@dataclass
class ClassList:
    class_id: int = xfield(U32)
    class_version: list[int] = xfield(Array(U32))


@dataclass
class ClassVersion:
    class_id: int = xfield(U32)
    class_version: int = xfield(U32)


@dataclass
class Name:
    original_path: str = xfield(STRING)
    destination_path: str = xfield(STRING)
    name: str = xfield(STRING)
    other_name: str = xfield(STRING)
    node: int = xfield(U64, U64_INVALID)
    fh_info: int = xfield(U64, U64_INVALID)


# -- bodies -------------------------------------------------------------------
@dataclass
class ErrorReply:
    """The reply of every request whose answer is only an error code."""

    error: int = xfield(ENUM)


@dataclass
class ConnectOpenRequest:
    protocol_version: int = xfield(U32)


@dataclass
class ConnectClientAuthRequest:
    auth_data: AuthData = xfield(AUTH_DATA)


@dataclass
class ConnectServerAuthRequest:
    client_attr: AuthAttr = xfield(AUTH_ATTR)


@dataclass
class ConnectServerAuthReply:
    error: int = xfield(ENUM)
    server_result: AuthData = xfield(AUTH_DATA)


@dataclass
class HostInfoReply:
    error: int = xfield(ENUM)
    hostname: str = xfield(STRING)
    os_type: str = xfield(STRING)
    os_vers: str = xfield(STRING)
    hostid: str = xfield(STRING)


@dataclass
class ServerInfoReply:
    error: int = xfield(ENUM)
    vendor_name: str = xfield(STRING)
    product_name: str = xfield(STRING)
    revision_number: str = xfield(STRING)
    auth_type: list[int] = xfield(Array(ENUM))


@dataclass
class ConnectionTypeReply:
    error: int = xfield(ENUM)
    addr_types: list[int] = xfield(Array(ENUM))


@dataclass
class AuthAttrRequest:
    auth_type: int = xfield(ENUM)


@dataclass
class AuthAttrReply:
    error: int = xfield(ENUM)
    server_attr: AuthAttr = xfield(AUTH_ATTR)


@dataclass
class ButypeInfoReply:
    error: int = xfield(ENUM)
    butype_info: list[ButypeInfo] = xfield(Array(StructType(ButypeInfo)))


@dataclass
class FsInfoReply:
    error: int = xfield(ENUM)
    fs_info: list[FsInfo] = xfield(Array(StructType(FsInfo)))


@dataclass
class DeviceInfoReply:
    error: int = xfield(ENUM)
    devices: list[DeviceInfo] = xfield(Array(StructType(DeviceInfo)))


@dataclass
class ExtListReply:
    error: int = xfield(ENUM)
    class_list: list[ClassList] = xfield(Array(StructType(ClassList)))


@dataclass
class SetExtListRequest:
    ndmp_selected_ext: list[ClassVersion] = xfield(Array(StructType(ClassVersion)))


@dataclass
class DeviceRequest:
    """SCSI_OPEN's request: a device name."""

    device: str = xfield(STRING)


@dataclass
class ScsiGetStateReply:
    error: int = xfield(ENUM)
    target_controller: int = xfield(U32)
    target_id: int = xfield(U32)
    target_lun: int = xfield(U32)


@dataclass
class ExecuteCdbRequest:
    flags: int = xfield(U32)
    timeout: int = xfield(U32)
    datain_len: int = xfield(U32)
    cdb: bytes = xfield(OPAQUE)
    dataout: bytes = xfield(OPAQUE)


@dataclass
class ExecuteCdbReply:
    error: int = xfield(ENUM)
    status: int = xfield(U32)
    dataout_len: int = xfield(U32)
    datain: bytes = xfield(OPAQUE)
    ext_sense: bytes = xfield(OPAQUE)


@dataclass
class TapeOpenRequest:
    device: str = xfield(STRING)
    mode: int = xfield(ENUM)


@dataclass
class TapeGetStateReply:
    unsupported: int = xfield(U32)
    error: int = xfield(ENUM)
    flags: int = xfield(U32)
    file_num: int = xfield(U32)
    soft_errors: int = xfield(U32)
    block_size: int = xfield(U32)
    blockno: int = xfield(U32)
    total_space: int = xfield(U64)
    space_remain: int = xfield(U64)


@dataclass
class TapeMtioRequest:
    tape_op: int = xfield(ENUM)
    count: int = xfield(U32)


@dataclass
class TapeMtioReply:
    error: int = xfield(ENUM)
    resid_count: int = xfield(U32)


@dataclass
class TapeWriteRequest:
    data_out: bytes = xfield(OPAQUE)


@dataclass
class TapeWriteReply:
    error: int = xfield(ENUM)
    count: int = xfield(U32)


@dataclass
class TapeReadRequest:
    count: int = xfield(U32)


@dataclass
class TapeReadReply:
    error: int = xfield(ENUM)
    data_in: bytes = xfield(OPAQUE)


@dataclass
class MoverGetStateReply:
    error: int = xfield(ENUM)
    mode: int = xfield(ENUM)
    state: int = xfield(ENUM)
    pause_reason: int = xfield(ENUM)
    halt_reason: int = xfield(ENUM)
    record_size: int = xfield(U32)
    record_num: int = xfield(U32)
    bytes_moved: int = xfield(U64)
    seek_position: int = xfield(U64)
    bytes_left_to_read: int = xfield(U64)
    window_offset: int = xfield(U64)
    window_length: int = xfield(U64)
    data_connection_addr: Addr = xfield(ADDR)


@dataclass
class MoverListenRequest:
    mode: int = xfield(ENUM)
    addr_type: int = xfield(ENUM)


@dataclass
class AddrReply:
    """MOVER_LISTEN's and DATA_LISTEN's reply: the address to connect to."""

    error: int = xfield(ENUM)
    connect_addr: Addr = xfield(ADDR)


@dataclass
class MoverConnectRequest:
    mode: int = xfield(ENUM)
    addr: Addr = xfield(ADDR)


@dataclass
class MoverSetWindowRequest:
    offset: int = xfield(U64)
    length: int = xfield(U64)


@dataclass
class MoverReadRequest:
    offset: int = xfield(U64)
    length: int = xfield(U64)


@dataclass
class MoverSetRecordSizeRequest:
    len: int = xfield(U32)


@dataclass
class DataGetStateReply:
    unsupported: int = xfield(U32)
    error: int = xfield(ENUM)
    operation: int = xfield(ENUM)
    state: int = xfield(ENUM)
    halt_reason: int = xfield(ENUM)
    bytes_processed: int = xfield(U64)
    est_bytes_remain: int = xfield(U64)
    est_time_remain: int = xfield(U32)
    data_connection_addr: Addr = xfield(ADDR)
    read_offset: int = xfield(U64)
    read_length: int = xfield(U64)


@dataclass
class DataListenRequest:
    addr_type: int = xfield(ENUM)


@dataclass
class DataConnectRequest:
    addr: Addr = xfield(ADDR)


@dataclass
class DataStartBackupRequest:
    butype_name: str = xfield(STRING)
    env: list[Pval] = xfield(PVALS)


@dataclass
class DataStartRecoverRequest:
    env: list[Pval] = xfield(PVALS)
    nlist: list[Name] = xfield(Array(StructType(Name)))
    butype_name: str = xfield(STRING)


@dataclass
class DataGetEnvReply:
    error: int = xfield(ENUM)
    env: list[Pval] = xfield(PVALS)


# -- posts --------------------------------------------------------------------
@dataclass
class NotifyConnectionStatus:
    reason: int = xfield(ENUM)
    protocol_version: int = xfield(U32)
    text_reason: str = xfield(STRING)


@dataclass
class NotifyHalted:
    """NOTIFY_DATA_HALTED and NOTIFY_MOVER_HALTED: a halt reason."""

    reason: int = xfield(ENUM)


@dataclass
class NotifyMoverPaused:
    reason: int = xfield(ENUM)
    seek_position: int = xfield(U64)


@dataclass
class NotifyDataRead:
    offset: int = xfield(U64)
    length: int = xfield(U64)


@dataclass
class LogMessage:
    log_type: int = xfield(ENUM)
    message_id: int = xfield(U32)
    entry: str = xfield(STRING)
    associated_message_valid: int = xfield(ENUM)
    associated_message_sequence: int = xfield(U32)


@dataclass
class LogFile:
    name: str = xfield(STRING)
    recovery_status: int = xfield(ENUM)


# -- file history -------------------------------------------------------------
@dataclass
class FileName:
    """A file name (union on ``fs_type``): UNIX names are one string."""

    fs_type: int = 0
    unix_name: str = ""


FILE_NAME = Union(FileName, "fs_type", {0: ("unix_name", STRING)})


@dataclass
class FileStat:
    unsupported: int = xfield(U32)
    fs_type: int = xfield(ENUM)
    ftype: int = xfield(ENUM)
    mtime: int = xfield(U32)
    atime: int = xfield(U32)
    ctime: int = xfield(U32)
    owner: int = xfield(U32)
    group: int = xfield(U32)
    fattr: int = xfield(U32)
    size: int = xfield(U64)
    links: int = xfield(U32)


@dataclass
class FhDir:
    names: list[FileName] = xfield(Array(FILE_NAME))
    node: int = xfield(U64)
    parent: int = xfield(U64)


@dataclass
class FhNode:
    stats: list[FileStat] = xfield(Array(StructType(FileStat)))
    node: int = xfield(U64)
    fh_info: int = xfield(U64, U64_INVALID)


@dataclass
class FhAddDir:
    dirs: list[FhDir] = xfield(Array(StructType(FhDir)))


@dataclass
class FhAddNode:
    nodes: list[FhNode] = xfield(Array(StructType(FhNode)))


M = Message
#: Request layouts by message code (``None``: the request has no body).
REQUESTS: dict[int, type | None] = {
    M.CONNECT_OPEN: ConnectOpenRequest,
    M.CONNECT_CLIENT_AUTH: ConnectClientAuthRequest,
    M.CONNECT_CLOSE: None,
    M.CONNECT_SERVER_AUTH: ConnectServerAuthRequest,
    M.CONFIG_GET_HOST_INFO: None,
    M.CONFIG_GET_CONNECTION_TYPE: None,
    M.CONFIG_GET_AUTH_ATTR: AuthAttrRequest,
    M.CONFIG_GET_BUTYPE_INFO: None,
    M.CONFIG_GET_FS_INFO: None,
    M.CONFIG_GET_TAPE_INFO: None,
    M.CONFIG_GET_SCSI_INFO: None,
    M.CONFIG_GET_SERVER_INFO: None,
    M.CONFIG_GET_EXT_LIST: None,
    M.CONFIG_SET_EXT_LIST: SetExtListRequest,
    M.SCSI_OPEN: DeviceRequest,
    M.SCSI_CLOSE: None,
    M.SCSI_GET_STATE: None,
    M.SCSI_RESET_DEVICE: None,
    M.SCSI_EXECUTE_CDB: ExecuteCdbRequest,
    M.TAPE_OPEN: TapeOpenRequest,
    M.TAPE_CLOSE: None,
    M.TAPE_GET_STATE: None,
    M.TAPE_MTIO: TapeMtioRequest,
    M.TAPE_WRITE: TapeWriteRequest,
    M.TAPE_READ: TapeReadRequest,
    M.TAPE_EXECUTE_CDB: ExecuteCdbRequest,
    M.MOVER_GET_STATE: None,
    M.MOVER_LISTEN: MoverListenRequest,
    M.MOVER_CONTINUE: None,
    M.MOVER_ABORT: None,
    M.MOVER_STOP: None,
    M.MOVER_SET_WINDOW: MoverSetWindowRequest,
    M.MOVER_READ: MoverReadRequest,
    M.MOVER_CLOSE: None,
    M.MOVER_SET_RECORD_SIZE: MoverSetRecordSizeRequest,
    M.MOVER_CONNECT: MoverConnectRequest,
    M.DATA_GET_STATE: None,
    M.DATA_START_BACKUP: DataStartBackupRequest,
    M.DATA_START_RECOVER: DataStartRecoverRequest,
    M.DATA_START_RECOVER_FILEHIST: DataStartRecoverRequest,
    M.DATA_ABORT: None,
    M.DATA_GET_ENV: None,
    M.DATA_STOP: None,
    M.DATA_LISTEN: DataListenRequest,
    M.DATA_CONNECT: DataConnectRequest,
}

#: Reply layouts by message code (``ErrorReply`` where only the error comes back).
REPLIES: dict[int, type] = {
    M.CONNECT_OPEN: ErrorReply,
    M.CONNECT_CLIENT_AUTH: ErrorReply,
    M.CONNECT_SERVER_AUTH: ConnectServerAuthReply,
    M.CONFIG_GET_HOST_INFO: HostInfoReply,
    M.CONFIG_GET_CONNECTION_TYPE: ConnectionTypeReply,
    M.CONFIG_GET_AUTH_ATTR: AuthAttrReply,
    M.CONFIG_GET_BUTYPE_INFO: ButypeInfoReply,
    M.CONFIG_GET_FS_INFO: FsInfoReply,
    M.CONFIG_GET_TAPE_INFO: DeviceInfoReply,
    M.CONFIG_GET_SCSI_INFO: DeviceInfoReply,
    M.CONFIG_GET_SERVER_INFO: ServerInfoReply,
    M.CONFIG_GET_EXT_LIST: ExtListReply,
    M.CONFIG_SET_EXT_LIST: ErrorReply,
    M.SCSI_OPEN: ErrorReply,
    M.SCSI_CLOSE: ErrorReply,
    M.SCSI_GET_STATE: ScsiGetStateReply,
    M.SCSI_RESET_DEVICE: ErrorReply,
    M.SCSI_EXECUTE_CDB: ExecuteCdbReply,
    M.TAPE_OPEN: ErrorReply,
    M.TAPE_CLOSE: ErrorReply,
    M.TAPE_GET_STATE: TapeGetStateReply,
    M.TAPE_MTIO: TapeMtioReply,
    M.TAPE_WRITE: TapeWriteReply,
    M.TAPE_READ: TapeReadReply,
    M.TAPE_EXECUTE_CDB: ExecuteCdbReply,
    M.MOVER_GET_STATE: MoverGetStateReply,
    M.MOVER_LISTEN: AddrReply,
    M.MOVER_CONTINUE: ErrorReply,
    M.MOVER_ABORT: ErrorReply,
    M.MOVER_STOP: ErrorReply,
    M.MOVER_SET_WINDOW: ErrorReply,
    M.MOVER_READ: ErrorReply,
    M.MOVER_CLOSE: ErrorReply,
    M.MOVER_SET_RECORD_SIZE: ErrorReply,
    M.MOVER_CONNECT: ErrorReply,
    M.DATA_GET_STATE: DataGetStateReply,
    M.DATA_START_BACKUP: ErrorReply,
    M.DATA_START_RECOVER: ErrorReply,
    M.DATA_START_RECOVER_FILEHIST: ErrorReply,
    M.DATA_ABORT: ErrorReply,
    M.DATA_GET_ENV: DataGetEnvReply,
    M.DATA_STOP: ErrorReply,
    M.DATA_LISTEN: AddrReply,
    M.DATA_CONNECT: ErrorReply,
}

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
