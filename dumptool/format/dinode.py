"""``c_dinode``: the 128-byte copy of an inode in every header (section 2.2).

The layout is the "new BSD inode" Linux dump uses.  Times are whole seconds
plus a **microsecond** part: Linux restore hands ``di_*.usec`` to utimes() as
microseconds (FreeBSD stores nanoseconds at the same place; dump 0.4b47
itself writes 0 there).  Device numbers go in ``di_db[0]`` in the Linux
``dev_t`` encoding.
"""

from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass, field

from ..errors import FormatError, FormatLimitError
from .constants import DINODE_SIZE, NDADDR, NIADDR, ByteOrder

#: The struct layout of the 128-byte dinode (without the byte order sign).
DINODE_FORMAT = "HhHHQ" + "II" * 3 + f"{NDADDR}I{NIADDR}I" + "Iii" + "II" + "2i"
assert struct.calcsize("<" + DINODE_FORMAT) == DINODE_SIZE

_U32 = (1 << 32) - 1
_S32_MAX = (1 << 31) - 1
_S16_MAX = (1 << 15) - 1

_STRUCTS = {order: struct.Struct(order.value + DINODE_FORMAT) for order in ByteOrder}
_NO_DB = (0,) * NDADDR
_NO_IB = (0,) * NIADDR
_NS_MAX = (_U32 + 1) * 1_000_000_000  # times from here on are clamped
_S_IFREG, _S_IFDIR = stat.S_IFREG, stat.S_IFDIR

#: The names of the dinode's first fields, in layout order, as :class:`Dinode` calls them.
DINODE_FIELDS = (
    "mode nlink old_uid old_gid size atime_sec atime_usec mtime_sec mtime_usec "
    "ctime_sec ctime_usec"
).split()


def encode_dev(major: int, minor: int) -> int:
    """Encode a device number as the 32-bit Linux ``dev_t`` restore passes to mknod.

    ``(minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)``: for major and
    minor below 256 this equals the old 16-bit encoding.  Raises
    :class:`FormatLimitError` when major > 4095 or minor > 1048575.
    """
    if not 0 <= major <= 0xFFF or not 0 <= minor <= 0xFFFFF:
        raise FormatLimitError(
            f"device number {major}:{minor} does not fit a dump image "
            "(major at most 4095, minor at most 1048575)"
        )
    return (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)


def decode_dev(dev: int) -> tuple[int, int]:
    """Split a 32-bit Linux ``dev_t`` into ``(major, minor)``."""
    return (dev & 0xFFF00) >> 8, (dev & 0xFF) | ((dev >> 12) & 0xFFF00)


def timeval_from_ns(ns: int) -> tuple[int, int]:
    """``(seconds, microseconds)`` for a time in ns, clamped to what u32 seconds hold.

    Times before 1970 become 0 and times after 2106 become the largest value:
    the dump format has unsigned 32-bit seconds.
    """
    sec, rem = divmod(ns, 1_000_000_000)
    if sec < 0:
        return 0, 0
    if sec > _U32:
        return _U32, 999_999
    return sec, rem // 1000


StatFields = tuple[int, int, int, int, int, int, int, int, int, int, int, int, int, int, int, int]
"""The fields of an inode copy made from a stat that can be other than 0, in
layout order: ``mode, nlink, old_uid, old_gid, size, atime_sec, atime_usec,
mtime_sec, mtime_usec, ctime_sec, ctime_usec, db[0], flags, blocks, uid,
gid`` (``db[1:]``, ``ib``, ``gen`` and ``spare`` are 0)."""


def stat_fields(st: os.stat_result, *, flags: int = 0, size: int | None = None) -> StatFields:
    """What :meth:`Dinode.from_stat` puts in the inode copy, as a plain tuple
    (:data:`StatFields`): a writer's hot path packs it without a Dinode."""
    mode = st.st_mode
    fmt = mode & 0o170000
    db0 = 0
    if fmt != _S_IFREG and fmt != _S_IFDIR:
        flags = 0
        if fmt == stat.S_IFCHR or fmt == stat.S_IFBLK:
            db0 = encode_dev(os.major(st.st_rdev), os.minor(st.st_rdev))
    # Times in (seconds, microseconds); a file written once has three equal ones.  In the
    # range (all but the odd file) as timeval_from_ns without its call: three per inode.
    mt = st.st_mtime_ns
    if 0 <= mt < _NS_MAX:
        mt_s, mt_us = mt // 1_000_000_000, mt % 1_000_000_000 // 1000
    else:
        mt_s, mt_us = timeval_from_ns(mt)
    at, ct = st.st_atime_ns, st.st_ctime_ns
    if at == mt:
        at_s, at_us = mt_s, mt_us
    elif 0 <= at < _NS_MAX:
        at_s, at_us = at // 1_000_000_000, at % 1_000_000_000 // 1000
    else:
        at_s, at_us = timeval_from_ns(at)
    if ct == mt:
        ct_s, ct_us = mt_s, mt_us
    elif 0 <= ct < _NS_MAX:
        ct_s, ct_us = ct // 1_000_000_000, ct % 1_000_000_000 // 1000
    else:
        ct_s, ct_us = timeval_from_ns(ct)
    uid, gid = st.st_uid & _U32, st.st_gid & _U32
    nlink = st.st_nlink
    blocks = st.st_blocks
    return (mode & 0xFFFF, nlink if nlink < _S16_MAX else _S16_MAX, uid & 0xFFFF, gid & 0xFFFF,
            st.st_size if size is None else size, at_s, at_us, mt_s, mt_us, ct_s, ct_us, db0, flags & _U32,
            blocks if blocks < _S32_MAX else _S32_MAX, uid, gid)


class InodeTimes:
    """Access and modification times in ns from the (seconds, microseconds)
    words: for :class:`Dinode` and for a reader's lean header tuple alike."""

    __slots__ = ()
    atime_sec: int
    atime_usec: int
    mtime_sec: int
    mtime_usec: int

    @property
    def atime_ns(self) -> int:
        return self.atime_sec * 1_000_000_000 + self.atime_usec * 1000

    @property
    def mtime_ns(self) -> int:
        return self.mtime_sec * 1_000_000_000 + self.mtime_usec * 1000


@dataclass(frozen=True)
class Dinode(InodeTimes):
    """The inode copy of a header.  Field names drop the ``di_`` prefix.

    ``old_uid``/``old_gid`` are the 16-bit copies (low bits of ``uid``/``gid``)
    that only old-format readers use; :meth:`from_stat` fills them.  ``db``
    and ``ib`` are the raw address words: Linux restore reads only ``db[0]``,
    and only for devices (see :attr:`rdev`).
    """

    mode: int = 0
    nlink: int = 0
    old_uid: int = 0
    old_gid: int = 0
    size: int = 0
    atime_sec: int = 0
    atime_usec: int = 0
    mtime_sec: int = 0
    mtime_usec: int = 0
    ctime_sec: int = 0
    ctime_usec: int = 0
    db: tuple[int, ...] = field(default=(0,) * NDADDR)
    ib: tuple[int, ...] = field(default=(0,) * NIADDR)
    flags: int = 0
    blocks: int = 0
    gen: int = 0
    uid: int = 0
    gid: int = 0
    spare: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        if len(self.db) != NDADDR or len(self.ib) != NIADDR or len(self.spare) != 2:
            raise ValueError("Dinode.db/ib/spare must have 12/3/2 entries")

    # -- conversions ---------------------------------------------------------

    @classmethod
    def from_stat(cls, st: os.stat_result, *, flags: int = 0, size: int | None = None) -> "Dinode":
        """The inode copy a writer puts in a file's ``TS_INODE`` header.

        *flags* is the ``FS_IOC_GETFLAGS`` value; it is kept only for regular
        files and directories because ``restore -C`` compares it with the
        ioctl, which reports 0 for symlinks and fifos and fails for devices
        and sockets (section 6).  *size* overrides ``st_size`` (directories
        carry their converted size).  Devices get their number in ``db[0]``;
        times are clamped to the format's u32 seconds.
        """
        # Filled directly (every field is right by construction): a dump
        # makes one per inode, and the constructor was a tenth of its time.
        (mode, nlink, old_uid, old_gid, size, at_s, at_us, mt_s, mt_us, ct_s, ct_us, db0, flags, blocks,
         uid, gid) = stat_fields(st, flags=flags, size=size)
        new = object.__new__(cls)
        new.__dict__.update(
            mode=mode, nlink=nlink, old_uid=old_uid, old_gid=old_gid, size=size,
            atime_sec=at_s, atime_usec=at_us, mtime_sec=mt_s, mtime_usec=mt_us, ctime_sec=ct_s, ctime_usec=ct_us,
            db=(db0,) + _NO_DB[1:] if db0 else _NO_DB, ib=_NO_IB, flags=flags, blocks=blocks, gen=0,
            uid=uid, gid=gid, spare=(0, 0),
        )
        return new

    @property
    def file_type(self) -> int:
        """``S_IFMT`` bits of :attr:`mode`."""
        return stat.S_IFMT(self.mode)

    @property
    def rdev(self) -> int:
        """The device number as a 32-bit Linux ``dev_t``.

        ``db[0]``, or ``db[1]`` when ``db[0]`` is 0: real dump copies ext4's
        raw ``i_block``, which keeps numbers with major or minor above 255 in
        the second word (section 6).
        """
        return self.db[0] or self.db[1]

    @property
    def ctime_ns(self) -> int:
        return self.ctime_sec * 1_000_000_000 + self.ctime_usec * 1000

    # -- bytes -----------------------------------------------------------------

    def pack(self, byte_order: ByteOrder = ByteOrder.LITTLE) -> bytes:
        """The 128 bytes of this inode copy in *byte_order*."""
        try:
            return _STRUCTS[byte_order].pack(
                self.mode, self.nlink, self.old_uid, self.old_gid, self.size,
                self.atime_sec, self.atime_usec, self.mtime_sec, self.mtime_usec,
                self.ctime_sec, self.ctime_usec,
                *self.db, *self.ib,
                self.flags, self.blocks, self.gen, self.uid, self.gid, *self.spare,
            )
        except struct.error as exc:
            raise FormatLimitError(f"inode field out of range for a dump image: {exc}") from None

    @classmethod
    def unpack(cls, data: bytes, byte_order: ByteOrder = ByteOrder.LITTLE) -> "Dinode":
        """Parse 128 bytes (as found at header offset 32)."""
        if len(data) != DINODE_SIZE:
            raise FormatError(f"an inode copy is {DINODE_SIZE} bytes, got {len(data)}")
        v = struct.unpack(byte_order.value + DINODE_FORMAT, data)
        n = len(DINODE_FIELDS)
        fixed = dict(zip(DINODE_FIELDS, v[:n]))
        rest = v[n:]
        return cls(
            **fixed,
            db=tuple(rest[:NDADDR]),
            ib=tuple(rest[NDADDR:NDADDR + NIADDR]),
            flags=rest[15], blocks=rest[16], gen=rest[17], uid=rest[18], gid=rest[19],
            spare=(rest[20], rest[21]),
        )
