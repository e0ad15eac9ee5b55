"""CONFIG: what this server is and what it offers (allowed before auth)."""

from __future__ import annotations

import os
import platform
import secrets
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import IllegalArgs, NdmpError
from ..messages import (
    AuthAttr,
    AuthAttrReply,
    AuthAttrRequest,
    ButypeInfo,
    ButypeInfoReply,
    ConnectionTypeReply,
    DeviceCapability,
    DeviceInfo,
    DeviceInfoReply,
    ErrorReply,
    ExtListReply,
    FsInfo,
    FsInfoReply,
    HostInfoReply,
    Pval,
    ServerInfoReply,
    SetExtListRequest,
)
from ..protocol import (
    BUTYPE_BACKUP_DIRECT,
    BUTYPE_BACKUP_FH_DIR,
    BUTYPE_BACKUP_INCREMENTAL,
    BUTYPE_BACKUP_UTF8,
    BUTYPE_RECOVER_DIRECT,
    BUTYPE_RECOVER_FH_DIR,
    BUTYPE_RECOVER_FILEHIST,
    BUTYPE_RECOVER_FILELIST,
    BUTYPE_RECOVER_UTF8,
    FS_INFO_TOTAL_INODES_UNS,
    FS_INFO_USED_INODES_UNS,
    TAPE_ATTR_REWIND,
    AddrType,
    AuthType,
    Error,
    Message,
)
from . import Service, answers

if TYPE_CHECKING:
    from ..session import Session

VENDOR = "snapdump"
PRODUCT = "pyndmpd"
REVISION = "0.1.0"

#: The one backup type: BSD dump images, with its NDMP attributes and the
#: defaults of its environment (ONTAP's names).
BUTYPE_DUMP = "dump"
DUMP_ATTRS = (BUTYPE_BACKUP_DIRECT | BUTYPE_RECOVER_DIRECT | BUTYPE_BACKUP_INCREMENTAL
              | BUTYPE_BACKUP_UTF8 | BUTYPE_RECOVER_UTF8 | BUTYPE_BACKUP_FH_DIR
              | BUTYPE_RECOVER_FILELIST | BUTYPE_RECOVER_FILEHIST | BUTYPE_RECOVER_FH_DIR)
DUMP_DEFAULT_ENV = [
    ("FILESYSTEM", ""), ("TYPE", BUTYPE_DUMP), ("LEVEL", "0"), ("UPDATE", "y"), ("HIST", "y"),
    ("DIRECT", "n"), ("RECURSIVE", "y"), ("EXTRACT", "n"), ("FORCE", "n"), ("BASE_DATE", "-1"),
    ("PATHNAME_SEPARATOR", "/"),
    # restartable backups (ndmp.restartable): advertised, and the env name a restart gives
    ("RESTARTABLE", "y"), ("RESTART_CONTEXT", ""),
]


def _host_id() -> str:
    try:
        return Path("/etc/machine-id").read_text().strip()[:8] or f"{os.getpid():08x}"
    except OSError:
        return f"{socket.gethostname().__hash__() & 0xFFFFFFFF:08x}"


def _mounts() -> list[tuple[str, str, str]]:
    """(mount point, device, type) of every mount, longest mount point first."""
    out = []
    try:
        for line in Path("/proc/self/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3:
                point = fields[1].replace("\\040", " ")
                out.append((point, fields[0], fields[2]))
    except OSError:
        pass
    return sorted(out, key=lambda m: len(m[0]), reverse=True)


def fs_info(volume: Path) -> FsInfo:
    """A served volume's sizes now, from statvfs."""
    device, fs_type = "", "unknown"
    for point, dev, kind in _mounts():
        if volume == Path(point) or Path(point) in volume.parents:
            device, fs_type = dev, kind
            break
    try:
        st = os.statvfs(volume)
    except OSError as exc:
        return FsInfo(unsupported=0x1F, fs_type=fs_type, fs_logical_device=str(volume),
                      fs_physical_device=device, fs_status=f"offline: {exc.strerror}")
    unsupported = 0
    total_inodes = st.f_files
    used_inodes = st.f_files - st.f_ffree
    if not st.f_files:
        unsupported |= FS_INFO_TOTAL_INODES_UNS | FS_INFO_USED_INODES_UNS
    return FsInfo(
        unsupported=unsupported, fs_type=fs_type, fs_logical_device=str(volume),
        fs_physical_device=device,
        total_size=st.f_blocks * st.f_frsize,
        used_size=(st.f_blocks - st.f_bfree) * st.f_frsize,
        avail_size=st.f_bavail * st.f_frsize,
        total_inodes=total_inodes, used_inodes=used_inodes,
        fs_env=[Pval("LOCAL", "y"), Pval("TYPE", fs_type)], fs_status="online")


class ConfigService(Service):
    def __init__(self, session: "Session") -> None:
        super().__init__(session)
        self.ext_list_asked = False
        self.ext_list_set = False

    @answers(Message.CONFIG_GET_HOST_INFO)
    async def host_info(self, _request: None) -> HostInfoReply:
        return HostInfoReply(Error.NO_ERR, socket.gethostname(), platform.system(), platform.release(), _host_id())

    @answers(Message.CONFIG_GET_SERVER_INFO)
    async def server_info(self, _request: None) -> ServerInfoReply:
        types = [int(t) for t in self.session.context.config.auth_types]
        return ServerInfoReply(Error.NO_ERR, VENDOR, PRODUCT, REVISION, types)

    @answers(Message.CONFIG_GET_CONNECTION_TYPE)
    async def connection_type(self, _request: None) -> ConnectionTypeReply:
        return ConnectionTypeReply(Error.NO_ERR, [AddrType.LOCAL, AddrType.TCP])

    @answers(Message.CONFIG_GET_AUTH_ATTR)
    async def auth_attr(self, request: AuthAttrRequest) -> AuthAttrReply:
        kind = request.auth_type
        if kind not in (AuthType.NONE, AuthType.TEXT, AuthType.MD5):
            raise IllegalArgs(f"unknown authentication type {kind}")
        if kind == AuthType.MD5:
            challenge = secrets.token_bytes(64)
            self.session.md5_challenge = challenge
            return AuthAttrReply(Error.NO_ERR, AuthAttr(AuthType.MD5, challenge))
        return AuthAttrReply(Error.NO_ERR, AuthAttr(kind))

    @answers(Message.CONFIG_GET_BUTYPE_INFO)
    async def butype_info(self, _request: None) -> ButypeInfoReply:
        env = [Pval(name, value) for name, value in DUMP_DEFAULT_ENV]
        return ButypeInfoReply(Error.NO_ERR, [ButypeInfo(BUTYPE_DUMP, env, DUMP_ATTRS)])

    @answers(Message.CONFIG_GET_FS_INFO)
    async def fs_info(self, _request: None) -> FsInfoReply:
        return FsInfoReply(Error.NO_ERR, [fs_info(v) for v in self.session.context.config.volumes])

    @answers(Message.CONFIG_GET_TAPE_INFO)
    async def tape_info(self, _request: None) -> DeviceInfoReply:
        devices = []
        for plain, rewinding in self.session.context.drives.drives():
            devices.append(DeviceInfo("loopback", [
                DeviceCapability(plain.name, 0, [Pval("EXECUTE_CDB", "n")]),
                DeviceCapability(rewinding.name, TAPE_ATTR_REWIND, [Pval("EXECUTE_CDB", "n")]),
            ]))
        return DeviceInfoReply(Error.NO_ERR, devices)

    @answers(Message.CONFIG_GET_SCSI_INFO)
    async def scsi_info(self, _request: None) -> DeviceInfoReply:
        return DeviceInfoReply(Error.NO_ERR, [])

    @answers(Message.CONFIG_GET_EXT_LIST)
    async def get_ext_list(self, _request: None) -> ExtListReply:
        self.ext_list_asked = True
        return ExtListReply(Error.NO_ERR, [])

    @answers(Message.CONFIG_SET_EXT_LIST)
    async def set_ext_list(self, request: SetExtListRequest) -> ErrorReply:
        if not self.ext_list_asked:
            raise NdmpError("CONFIG_SET_EXT_LIST before CONFIG_GET_EXT_LIST", Error.PRECONDITION_ERR)
        if self.ext_list_set:
            raise NdmpError("CONFIG_SET_EXT_LIST a second time", Error.EXT_DANDN_ILLEGAL_ERR)
        if request.ndmp_selected_ext:
            raise NdmpError("no extension classes are supported", Error.CLASS_NOT_SUPPORTED_ERR)
        self.ext_list_set = True
        return ErrorReply(Error.NO_ERR)
