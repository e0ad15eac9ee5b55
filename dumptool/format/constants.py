"""Constants of the BSD/Linux dump format, under their standard names.

Values and meanings follow shared/docs/dump-format.md (Linux dump 0.4b47,
``protocols/dumprestore.h``).  Every other module imports them from here.
"""

from __future__ import annotations

import enum

# --- the stream (section 1) -------------------------------------------------
TP_BSIZE = 1024
"""Size of a tape block: every header and every data block is this long."""
NTREC = 10
"""Default blocking factor (tape blocks per record)."""
HIGHDENSITYTREC = 32
MAXNTREC = 1024
"""Largest blocking factor ``dump -b`` accepts."""

NFS_MAGIC = 60012
"""Magic of the 4.4BSD/Linux header (the only one we write)."""
OFS_MAGIC = 60011
"""Magic of the pre-4.4BSD header (different layout; recognised, not supported)."""
FS_UFS2_MAGIC = 0x19540119
"""Magic FreeBSD uses for UFS2 dumps (different layout; recognised, not supported)."""
CHECKSUM = 84446
"""The 256 header words (c_checksum included) sum to this, modulo 2**32."""

MAX_DATE = 2**31 - 1
"""The latest date a header holds: ``c_date`` and ``c_ddate`` are signed 32-bit
seconds since the epoch (19 January 2038, 03:14:07 UTC)."""

# --- header field sizes (section 2.1) ---------------------------------------
TP_NINDIR = TP_BSIZE // 2
"""Entries in ``c_addr``: at most this many 1 KiB slices per header (512)."""
TP_NINOS = TP_NINDIR // 4
"""``c_inos[]`` entries sharing the bytes of ``c_addr`` (128)."""
LBLSIZE = 16
"""Bytes of ``c_label``, the terminating NUL included."""
NAMELEN = 64
"""Bytes of ``c_filesys``, ``c_dev`` and ``c_host``, NUL included."""
DINODE_SIZE = 128
"""Bytes of ``c_dinode``."""
NDADDR = 12
NIADDR = 3

# --- record types, c_type (section 3) ---------------------------------------


class RecordType(enum.IntEnum):
    """The six values of ``c_type``; any other makes restore panic."""

    TS_TAPE = 1
    TS_INODE = 2
    TS_BITS = 3
    TS_ADDR = 4
    TS_END = 5
    TS_CLRI = 6


# The members under their C names, in order (an enum iterates over its members).
TS_TAPE, TS_INODE, TS_BITS, TS_ADDR, TS_END, TS_CLRI = RecordType

# --- c_flags (section 2.3) --------------------------------------------------
DR_NEWHEADER = 0x0001
"""Set on every ``TS_TAPE``: ``c_firstrec``/``c_count`` are valid."""
DR_NEWINODEFMT = 0x0002
"""Set on every header: 32-bit uid/gid and new dirents.  Writers must set it."""
DR_INODEINFO = 0x0002
"""Same bit as DR_NEWINODEFMT: ``c_inos`` valid on TS_TAPE/TS_END."""
DR_COMPRESSED = 0x0080
"""The records after each volume's first carry a ``struct tapebuf`` prefix
and are compressed (dump -z/-j/-y; see :mod:`.tapebuf`); read, not written by us."""
DR_METAONLY = 0x0100
"""Metadata-only inode (dump -m): no data; restore keeps the existing data."""
DR_EXTATTRIBUTES = 0x8000
"""This TS_INODE holds the extended attributes of the inode before it."""

# --- c_extattributes ----------------------------------------------------------
EXT_REGULAR = 0
EXT_MACOSFNDRINFO = 1
EXT_MACOSRESFORK = 2
EXT_XATTR = 3

# --- inode numbers (section 6) ----------------------------------------------
WINO = 1
"""Whiteout inode: special to restore, never use it."""
ROOTINO = 2
"""The root directory; must be dumped, as a directory."""

# --- directories (section 5) ------------------------------------------------
DIRBLKSIZ = 512
"""Chunk size dump packs directory entries into (no entry crosses it)."""
RESTORE_DIRBLKSIZ = 1024
"""restore's own limit: an entry crossing a 1 KiB boundary is "mangled"."""
MAXNAMLEN = 255
"""Longest name a dirent can hold (real restore garbles 255; 254 works)."""
DIRECT_HEADER_SIZE = 8


class DirentType(enum.IntEnum):
    """``d_type`` values (``st_mode >> 12``)."""

    DT_UNKNOWN = 0
    DT_FIFO = 1
    DT_CHR = 2
    DT_DIR = 4
    DT_BLK = 6
    DT_REG = 8
    DT_LNK = 10
    DT_SOCK = 12
    DT_WHT = 14


DT_UNKNOWN, DT_FIFO, DT_CHR, DT_DIR, DT_BLK, DT_REG, DT_LNK, DT_SOCK, DT_WHT = DirentType

# --- symlinks ----------------------------------------------------------------
MAXPATHLEN = 4096
"""Symlink targets are at most MAXPATHLEN - 1 bytes (plus the NUL on the image)."""

# --- extended attributes (section 7) ----------------------------------------
XATTR_MAXSIZE = 4096
"""restore skips an EA header whose payload (``di_size``) is larger."""
EXT2_XATTR_MAGIC = 0xEA020000
"""Block form of an EA payload (32-byte header)."""
EXT2_XATTR_MAGIC2 = 0xEA020001
"""In-inode form of an EA payload (4-byte header)."""
EXT2_XATTR_HEADER_SIZE = 32
EXT2_XATTR_IBODY_HEADER_SIZE = 4
EXT2_XATTR_ENTRY_SIZE = 16

EXT2_XATTR_INDEX_USER = 1
EXT2_XATTR_INDEX_POSIX_ACL_ACCESS = 2
EXT2_XATTR_INDEX_POSIX_ACL_DEFAULT = 3
EXT2_XATTR_INDEX_TRUSTED = 4
EXT2_XATTR_INDEX_LUSTRE = 5
EXT2_XATTR_INDEX_SECURITY = 6
EXT4_XATTR_INDEX_SYSTEM = 7
"""ext4 ``system.`` (e.g. ``system.data``): real restore rejects it; we only read it."""

# --- POSIX ACLs (section 7.3) -----------------------------------------------
# The Linux xattr form's names and numbers are the kernel's, defined once in
# snapdump.posix_acl (snapfs stores ACLs in that form); the ext disk form's
# version word is the image's own.
from snapdump.posix_acl import (  # noqa: E402,F401  (the standard names, here too)
    ACL_EXECUTE,
    ACL_GROUP,
    ACL_GROUP_OBJ,
    ACL_MASK,
    ACL_OTHER,
    ACL_READ,
    ACL_UNDEFINED_ID,
    ACL_USER,
    ACL_USER_OBJ,
    ACL_WRITE,
    POSIX_ACL_XATTR_VERSION,
)
from snapdump.posix_acl import ACL_ACCESS as XATTR_NAME_POSIX_ACL_ACCESS  # noqa: E402
from snapdump.posix_acl import ACL_DEFAULT as XATTR_NAME_POSIX_ACL_DEFAULT  # noqa: E402

EXT2_ACL_VERSION = 1
"""Version word of the ext disk form (what the image holds)."""

# --- compressed records (section 10.2; read by :mod:`.tapebuf`) ---------------
COMPRESS_ZLIB = 0
"""``struct tapebuf`` method bits: ``dump -z`` (zlib ``compress2``)."""
COMPRESS_BZLIB = 1
"""``dump -j`` (``BZ2_bzBuffToBuffCompress``)."""
COMPRESS_LZO = 2
"""``dump -y`` (``lzo1x_1_compress``)."""
TAPEBUF_PREFIX = 4
"""Bytes of the ``struct tapebuf`` word in front of each compressed-image record
(restore's ``PREFIXSIZE``)."""


class ByteOrder(str, enum.Enum):
    """Byte order of an image: the ``struct`` prefix of its integers.

    An image has no byte-order flag; readers tell it from ``c_magic``
    (:func:`dumptool.format.header.header_byte_order`).  Linux dump writes the
    host's order, so x86 images are little-endian, our writers' default.
    """

    LITTLE = "<"
    BIG = ">"

    @property
    def other(self) -> "ByteOrder":
        return ByteOrder.BIG if self is ByteOrder.LITTLE else ByteOrder.LITTLE
