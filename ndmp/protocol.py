"""NDMP version 4 constants, with their standard names (``ndmp4.x``).

Enums here are for naming values; decoded messages keep plain integers,
since peers send values out of range on purpose.  The small enums are a
table, one line each: their names in the order ``ndmp4.x`` numbers them.
"""

from __future__ import annotations

import enum

NDMP_VERSION = 4
NDMP_PORT = 10000
#: The header of every message: sequence, time_stamp, message_type,
#: message_code, reply_sequence, error_code (six 4-byte words).
HEADER_SIZE = 24


class Error(enum.IntEnum):
    NO_ERR = 0
    NOT_SUPPORTED_ERR = 1
    DEVICE_BUSY_ERR = 2
    DEVICE_OPENED_ERR = 3
    NOT_AUTHORIZED_ERR = 4
    PERMISSION_ERR = 5
    DEV_NOT_OPEN_ERR = 6
    IO_ERR = 7
    TIMEOUT_ERR = 8
    ILLEGAL_ARGS_ERR = 9
    NO_TAPE_LOADED_ERR = 10
    WRITE_PROTECT_ERR = 11
    EOF_ERR = 12
    EOM_ERR = 13
    FILE_NOT_FOUND_ERR = 14
    BAD_FILE_ERR = 15
    NO_DEVICE_ERR = 16
    NO_BUS_ERR = 17
    XDR_DECODE_ERR = 18
    ILLEGAL_STATE_ERR = 19
    UNDEFINED_ERR = 20
    XDR_ENCODE_ERR = 21
    NO_MEM_ERR = 22
    CONNECT_ERR = 23
    SEQUENCE_NUM_ERR = 24
    READ_IN_PROGRESS_ERR = 25
    PRECONDITION_ERR = 26
    CLASS_NOT_SUPPORTED_ERR = 27
    VERSION_NOT_SUPPORTED_ERR = 28
    EXT_DUPL_CLASSES_ERR = 29
    EXT_DANDN_ILLEGAL_ERR = 30


class Message(enum.IntEnum):
    CONFIG_GET_HOST_INFO = 0x100
    CONFIG_GET_CONNECTION_TYPE = 0x102
    CONFIG_GET_AUTH_ATTR = 0x103
    CONFIG_GET_BUTYPE_INFO = 0x104
    CONFIG_GET_FS_INFO = 0x105
    CONFIG_GET_TAPE_INFO = 0x106
    CONFIG_GET_SCSI_INFO = 0x107
    CONFIG_GET_SERVER_INFO = 0x108
    CONFIG_SET_EXT_LIST = 0x109
    CONFIG_GET_EXT_LIST = 0x10A
    SCSI_OPEN = 0x200
    SCSI_CLOSE = 0x201
    SCSI_GET_STATE = 0x202
    SCSI_RESET_DEVICE = 0x204
    SCSI_EXECUTE_CDB = 0x206
    TAPE_OPEN = 0x300
    TAPE_CLOSE = 0x301
    TAPE_GET_STATE = 0x302
    TAPE_MTIO = 0x303
    TAPE_WRITE = 0x304
    TAPE_READ = 0x305
    TAPE_EXECUTE_CDB = 0x307
    DATA_GET_STATE = 0x400
    DATA_START_BACKUP = 0x401
    DATA_START_RECOVER = 0x402
    DATA_ABORT = 0x403
    DATA_GET_ENV = 0x404
    DATA_STOP = 0x407
    DATA_LISTEN = 0x409
    DATA_CONNECT = 0x40A
    DATA_START_RECOVER_FILEHIST = 0x40B
    NOTIFY_DATA_HALTED = 0x501
    NOTIFY_CONNECTION_STATUS = 0x502
    NOTIFY_MOVER_HALTED = 0x503
    NOTIFY_MOVER_PAUSED = 0x504
    NOTIFY_DATA_READ = 0x505
    LOG_FILE = 0x602
    LOG_MESSAGE = 0x603
    FH_ADD_FILE = 0x703
    FH_ADD_DIR = 0x704
    FH_ADD_NODE = 0x705
    CONNECT_OPEN = 0x900
    CONNECT_CLIENT_AUTH = 0x901
    CONNECT_CLOSE = 0x902
    CONNECT_SERVER_AUTH = 0x903
    MOVER_GET_STATE = 0xA00
    MOVER_LISTEN = 0xA01
    MOVER_CONTINUE = 0xA02
    MOVER_ABORT = 0xA03
    MOVER_STOP = 0xA04
    MOVER_SET_WINDOW = 0xA05
    MOVER_READ = 0xA06
    MOVER_CLOSE = 0xA07
    MOVER_SET_RECORD_SIZE = 0xA08
    MOVER_CONNECT = 0xA09


def message_name(code: int) -> str:
    """``TAPE_OPEN`` for 0x300; ``0x20000001`` for a code we do not know."""
    try:
        return Message(code).name
    except ValueError:
        return f"{code:#x}"


# -- the small enums of ndmp4.x, one line each: names numbered 0, 1, 2 ... or a map --
MessageType = enum.IntEnum("MessageType", "REQUEST REPLY", start=0)
AuthType = enum.IntEnum("AuthType", "NONE TEXT MD5", start=0)
AddrType = enum.IntEnum("AddrType", "LOCAL TCP RESERVED IPC", start=0)
ConnectionStatus = enum.IntEnum("ConnectionStatus", "CONNECTED SHUTDOWN REFUSED", start=0)
TapeOpenMode = enum.IntEnum("TapeOpenMode", "READ RDWR RAW", start=0)
MtioOp = enum.IntEnum("MtioOp", "FSF BSF FSR BSR REW EOF OFF TUR", start=0)
#: READ: read the data connection, write the tape (backup); WRITE: read the
#: tape, write the data connection (restore).
MoverMode = enum.IntEnum("MoverMode", "READ WRITE NOACTION", start=0)
MoverState = enum.IntEnum("MoverState", "IDLE LISTEN ACTIVE PAUSED HALTED", start=0)
MoverPauseReason = enum.IntEnum("MoverPauseReason", {"NA": 0, "EOM": 1, "EOF": 2, "SEEK": 3, "EOW": 5})
MoverHaltReason = enum.IntEnum("MoverHaltReason", "NA CONNECT_CLOSED ABORTED INTERNAL_ERROR CONNECT_ERROR "
                               "MEDIA_ERROR", start=0)
DataOperation = enum.IntEnum("DataOperation", "NOACTION BACKUP RECOVER RECOVER_FILEHIST", start=0)
DataState = enum.IntEnum("DataState", "IDLE ACTIVE HALTED LISTEN CONNECTED", start=0)
DataHaltReason = enum.IntEnum("DataHaltReason", "NA SUCCESSFUL ABORTED INTERNAL_ERROR CONNECT_ERROR", start=0)
LogType = enum.IntEnum("LogType", "NORMAL DEBUG ERROR WARNING", start=0)
FsType = enum.IntEnum("FsType", "UNIX NT OTHER", start=0)
#: LOG_FILE's outcome of one name-list entry.
RecoveryStatus = enum.IntEnum("RecoveryStatus", "SUCCESSFUL FAILED_PERMISSION FAILED_NOT_FOUND FAILED_NO_DIRECTORY "
                              "FAILED_OUT_OF_MEMORY FAILED_IO_ERROR FAILED_UNDEFINED_ERROR", start=0)
#: file_stat's ftype.
FileType = enum.IntEnum("FileType", "DIR FIFO CSPEC BSPEC REG SLINK SOCK REGISTRY OTHER", start=0)


# TAPE_GET_STATE flags and "unsupported" bits.
TAPE_STATE_NOREWIND = 0x08
TAPE_STATE_WR_PROT = 0x10
TAPE_STATE_ERROR = 0x20
TAPE_STATE_UNLOAD = 0x40
TAPE_STATE_FILE_NUM_UNS = 0x01
TAPE_STATE_SOFT_ERRORS_UNS = 0x02
TAPE_STATE_BLOCK_SIZE_UNS = 0x04
TAPE_STATE_BLOCKNO_UNS = 0x08
TAPE_STATE_TOTAL_SPACE_UNS = 0x10
TAPE_STATE_SPACE_REMAIN_UNS = 0x20
# CONFIG_GET_TAPE_INFO device attributes.
TAPE_ATTR_REWIND = 0x1
TAPE_ATTR_UNLOAD = 0x2
TAPE_ATTR_RAW = 0x4


# fs_info "unsupported" bits.
FS_INFO_TOTAL_SIZE_UNS = 0x01
FS_INFO_USED_SIZE_UNS = 0x02
FS_INFO_AVAIL_SIZE_UNS = 0x04
FS_INFO_TOTAL_INODES_UNS = 0x08
FS_INFO_USED_INODES_UNS = 0x10

# butype attributes (v4).
BUTYPE_BACKUP_FILELIST = 0x0002
BUTYPE_RECOVER_FILELIST = 0x0004
BUTYPE_BACKUP_DIRECT = 0x0008
BUTYPE_RECOVER_DIRECT = 0x0010
BUTYPE_BACKUP_INCREMENTAL = 0x0020
BUTYPE_RECOVER_INCREMENTAL = 0x0040
BUTYPE_BACKUP_UTF8 = 0x0080
BUTYPE_RECOVER_UTF8 = 0x0100
BUTYPE_BACKUP_FH_FILE = 0x0200
BUTYPE_BACKUP_FH_DIR = 0x0400
BUTYPE_RECOVER_FILEHIST = 0x0800
BUTYPE_RECOVER_FH_FILE = 0x1000
BUTYPE_RECOVER_FH_DIR = 0x2000

#: DATA_GET_STATE "unsupported" bits.
DATA_STATE_EST_BYTES_REMAIN_UNS = 0x1
DATA_STATE_EST_TIME_REMAIN_UNS = 0x2


#: file_stat "unsupported" bits.
FILE_STAT_ATIME_UNS = 0x1
FILE_STAT_CTIME_UNS = 0x2
FILE_STAT_GROUP_UNS = 0x4
