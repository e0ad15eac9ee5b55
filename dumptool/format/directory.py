"""Directories as dump writes them: BSD ``struct direct`` records (section 5).

A dumped directory is file data made of new-format entries::

    u32 d_ino | u16 d_reclen | u8 d_type | u8 d_namlen | name, NUL, zero padding

packed into 512-byte chunks (``DIRBLKSIZ``) that no entry crosses; the last
entry of each chunk is stretched to the chunk's end.  The directory's
``di_size`` is the converted length (a multiple of 512), not the source
file system's.  "." comes first and ".." second.  Only ``d_ino`` and
``d_reclen`` are byte-swapped in a swapped image.
"""

from __future__ import annotations

import stat
import struct
from collections import namedtuple
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import FormatError, FormatLimitError
from .constants import (
    DIRBLKSIZ,
    DIRECT_HEADER_SIZE,
    MAXNAMLEN,
    RESTORE_DIRBLKSIZ,
    ROOTINO,
    ByteOrder,
    DirentType,
)


@dataclass(frozen=True, slots=True)
class Dirent:
    """One directory entry: an inode number, a name (bytes) and a ``d_type``."""

    ino: int
    name: bytes
    type: int = DirentType.DT_UNKNOWN


def dirent_reclen(namlen: int) -> int:
    """The smallest ``d_reclen`` of an entry with a name of *namlen* bytes."""
    return (DIRECT_HEADER_SIZE + namlen + 1 + 3) & ~3


def dtype_from_mode(mode: int) -> DirentType:
    """The ``d_type`` of a file of that ``st_mode`` (``mode >> 12``)."""
    try:
        return DirentType(stat.S_IFMT(mode) >> 12)
    except ValueError:
        return DirentType.DT_UNKNOWN


def pack_dirent(
    entry: Dirent, reclen: int | None = None, byte_order: ByteOrder = ByteOrder.LITTLE
) -> bytes:
    """The bytes of one entry, zero-padded to *reclen* (default: the minimum)."""
    minimum = dirent_reclen(len(entry.name))
    reclen = minimum if reclen is None else reclen
    if reclen < minimum or reclen % 4 or reclen > 0xFFFF:
        raise ValueError(f"bad d_reclen {reclen} for a {len(entry.name)}-byte name")
    head = struct.pack(byte_order.value + "IHBB", entry.ino, reclen, entry.type, len(entry.name))
    return (head + entry.name).ljust(reclen, b"\0")


_DIRENT_HEAD = {o: struct.Struct(o.value + "IHBB") for o in ByteOrder}
_ZEROS = bytes(4)


def _check_entries(ino: int, entries: list[Dirent]) -> None:
    """:func:`_check_entry` for each entry, and no name twice: checked for all
    at once first (a directory of a thousand entries is a dozen calls), and
    entry by entry only to name the first bad one."""
    names = [entry.name for entry in entries]
    if names:
        joined = b"".join(names)
        inos = [entry.ino for entry in entries]
        if (len(set(names)) == len(names) and b"/" not in joined and b"\0" not in joined
                and b"." not in names and b".." not in names and min(map(len, names)) > 0
                and max(map(len, names)) <= MAXNAMLEN and min(inos) >= ROOTINO and max(inos) <= 0xFFFFFFFF):
            return
    seen: set[bytes] = set()
    for entry in entries:
        _check_entry(entry)
        if entry.name in seen:
            raise ValueError(f"duplicate name {entry.name!r} in directory {ino}")
        seen.add(entry.name)


def _check_entry(entry: Dirent) -> None:
    name = entry.name
    if not name or b"/" in name or b"\0" in name or name in (b".", b".."):
        raise FormatLimitError(f"{name!r} cannot be a name in a dumped directory")
    if len(name) > MAXNAMLEN:
        raise FormatLimitError(
            f"name {name[:40]!r}... is {len(name)} bytes; a dump image holds at most {MAXNAMLEN}"
        )
    if entry.ino < ROOTINO or entry.ino > 0xFFFFFFFF:
        raise FormatLimitError(f"entry {name!r} has inode number {entry.ino}; it must be 2 .. 2**32-1")


def build_directory(
    ino: int,
    parent_ino: int,
    entries: Iterable[Dirent],
    *,
    byte_order: ByteOrder = ByteOrder.LITTLE,
    chunk: int = DIRBLKSIZ,
) -> bytes:
    """The dumped data of a directory: ".", "..", then *entries* in the given order.

    The result's length is the directory's ``di_size`` (a multiple of
    *chunk*).  *chunk* is 512 as dump uses, or 1024 (restore's own limit:
    larger chunks are "mangled").  The root's parent is itself (2).

    Writer rules honoured: no entry crosses a chunk; "." and ".." first;
    names 1..255 bytes without "/" or NUL.  Real restore 0.4b47 garbles
    255-byte names (section 15), so a writer aiming at it should stop at 254;
    that choice is left to the caller.
    """
    if chunk not in (DIRBLKSIZ, RESTORE_DIRBLKSIZ):
        raise ValueError(f"directory chunk must be {DIRBLKSIZ} or {RESTORE_DIRBLKSIZ}")
    all_entries = [Dirent(ino, b".", DirentType.DT_DIR), Dirent(parent_ino, b"..", DirentType.DT_DIR)]
    all_entries += entries
    _check_entries(ino, all_entries[2:])
    for special in all_entries[:2]:
        if special.ino < ROOTINO:
            raise FormatLimitError(f"directory inode number {special.ino} is invalid (must be >= 2)")

    # The entries are packed at their minimum length; when the next one does
    # not fit the chunk, the chunk's last entry is stretched to its end (its
    # d_reclen rewritten, zeros after it), as pack_dirent(entry, longer) would.
    head = _DIRENT_HEAD[byte_order]
    out = bytearray()
    chunk_end = chunk
    last = (0, 0, 0, 0)  # offset, d_ino, d_type, d_namlen of the chunk's last entry
    for entry in all_entries:
        name = entry.name
        namlen = len(name)
        reclen = (DIRECT_HEADER_SIZE + namlen + 4) & ~3
        if len(out) + reclen > chunk_end:
            head.pack_into(out, last[0], last[1], chunk_end - last[0], last[2], last[3])
            out += bytes(chunk_end - len(out))
            chunk_end += chunk
        last = (len(out), entry.ino, entry.type, namlen)
        out += head.pack(entry.ino, reclen, entry.type, namlen)
        out += name
        out += _ZEROS[:reclen - DIRECT_HEADER_SIZE - namlen]
    head.pack_into(out, last[0], last[1], chunk_end - last[0], last[2], last[3])
    out += bytes(chunk_end - len(out))
    return bytes(out)


def parse_directory(
    data: bytes,
    byte_order: ByteOrder = ByteOrder.LITTLE,
    *,
    strict: bool = True,
    old_format: bool = False,
    skip_bad_entries: bool = False,
) -> list[Dirent]:
    """The entries of dumped directory data (``di_size`` bytes), "." and ".." included.

    Entries with ``d_ino`` 0 are unused and left out.  An entry is checked as
    restore checks it: ``d_reclen`` a multiple of 4, at least the minimum for
    its name, and not crossing a 1 KiB boundary.  A bad entry raises
    :class:`FormatError` when *strict*; otherwise, like restore, the rest of
    that 1 KiB chunk is skipped.  *old_format* (no DR_NEWINODEFMT in
    TS_TAPE) reads ``d_namlen`` as a 16-bit field at offset 6, with no type.
    With *skip_bad_entries* (and not *strict*), an entry whose ``d_reclen``
    is still a usable step (a positive multiple of 4 inside the chunk) is
    dropped alone and the entries after it are kept: real dump 0.4b47 writes
    a 255-byte name with ``d_reclen`` cut to 8 bits (section 15).
    """
    return [Dirent(*entry) for entry in directory_entries(
        data, byte_order, strict=strict, old_format=old_format, skip_bad_entries=skip_bad_entries)]


class DirEntry(namedtuple("DirEntry", "ino name type")):
    """An entry as :func:`directory_entries` gives it: :class:`Dirent`'s
    fields in a tuple, made ten times faster (a restore keeps one per file)."""

    __slots__ = ()


def directory_entries(
    data: bytes | memoryview,
    byte_order: ByteOrder = ByteOrder.LITTLE,
    *,
    strict: bool = True,
    old_format: bool = False,
    skip_bad_entries: bool = False,
    size: int | None = None,
    lost: list[int] | None = None,
) -> list[DirEntry]:
    """What :func:`parse_directory` reads, as :class:`DirEntry` tuples.

    *size* (default ``len(data)``) is the directory's ``di_size``: entries
    are read up to it, but *data* may go on to the end of its last block,
    where real dump's cut 255-byte entries (:func:`_cut_long_entry`) keep
    the end of their name.  Such an entry is read right; when its name was
    overwritten, its inode is appended to *lost* (when given) and it is
    named ``#INODE`` (as fsck names what it finds without a name).
    """
    found: list[DirEntry] = []
    append = found.append
    new = tuple.__new__
    unpack = (_OLD_HEAD if old_format else _NEW_HEAD)[byte_order].unpack_from
    pos = 0
    if size is None or size > len(data):
        size = len(data)
    while pos < size:
        chunk_end = (pos | (RESTORE_DIRBLKSIZ - 1)) + 1
        if chunk_end > size:
            chunk_end = size
        if pos + DIRECT_HEADER_SIZE <= chunk_end:
            # a good entry: on to the next one at once
            if old_format:
                d_ino, reclen, namlen = unpack(data, pos)
                d_type = DirentType.DT_UNKNOWN
            else:
                d_ino, reclen, d_type, namlen = unpack(data, pos)
            end = pos + reclen
            if not reclen & 3 and (DIRECT_HEADER_SIZE + namlen + 4) & ~3 <= reclen and end <= chunk_end:
                if not d_ino:
                    pos = end
                    continue
                name = bytes(data[pos + DIRECT_HEADER_SIZE:pos + DIRECT_HEADER_SIZE + namlen])
                # (bytes values, not b"/": ``bytes in bytes`` first tries the
                # operand as an int and raises and clears a TypeError each time)
                if name and 47 not in name and 0 not in name:
                    append(new(DirEntry, (d_ino, name, d_type)))
                    pos = end
                    continue
        if not old_format and pos + DIRECT_HEADER_SIZE <= chunk_end:
            cut = _cut_long_entry(data, pos, size, unpack)
            if cut is not None:
                entry, pos = cut
                if entry.name.startswith(b"#"):
                    if lost is not None:
                        lost.append(entry.ino)
                append(entry)
                continue
        # a bad one: why, and where to go on
        problem, reclen = _entry_problem(data, pos, chunk_end, unpack, old_format)
        if strict:
            raise FormatError(f"mangled directory at byte {pos}: {problem}")
        if (skip_bad_entries and pos + DIRECT_HEADER_SIZE <= chunk_end and reclen
                and reclen % 4 == 0 and pos + reclen <= chunk_end):
            pos += reclen
            continue
        pos = chunk_end
    return found


_LONGEST_RECLEN = dirent_reclen(MAXNAMLEN)  # 264: real dump 0.4b47 stores it mod 256 (8)


def _cut_long_entry(data: bytes | memoryview, pos: int, size: int, unpack) -> tuple[DirEntry, int] | None:
    """Real dump 0.4b47's 255-byte entry, read right: ``(entry, where the
    next entry is)``, or ``None`` when the entry at *pos* is not one.

    That dump computes the entry's length in 8 bits: 264 becomes 8, so
    its ``d_reclen`` is 8, plus the padding to the 512-byte chunk's end when
    it is the chunk's last entry; its 255 name bytes and NUL are written all
    the same, and the next entry is written over them, ``d_reclen`` bytes
    on.  The name is whole only when nothing came after it: the
    directory's last entry, whose name runs on past ``di_size`` into the
    rest of its block.  Otherwise the name is lost and the entry is named
    ``#INODE``.
    """
    d_ino, reclen, d_type, namlen = unpack(data, pos)
    if namlen != MAXNAMLEN or not d_ino or reclen & 3 or not DIRECT_HEADER_SIZE <= reclen < _LONGEST_RECLEN:
        return None
    end = pos + reclen
    if reclen != _LONGEST_RECLEN % 256 and end % DIRBLKSIZ:
        return None  # not that dump's shape: other damage
    name = bytes(data[pos + DIRECT_HEADER_SIZE:pos + DIRECT_HEADER_SIZE + MAXNAMLEN])
    if end < size or len(name) < MAXNAMLEN or 0 in name or 47 in name:
        name = b"#%d" % d_ino
    return DirEntry(d_ino, name, d_type), end


def _entry_problem(data: bytes | memoryview, pos: int, chunk_end: int, unpack, old_format: bool) -> tuple[str, int]:
    """What is wrong with the entry at *pos* (one :func:`directory_entries`
    did not take), and its ``d_reclen`` (0 when it has no header)."""
    if pos + DIRECT_HEADER_SIZE > chunk_end:
        return "an entry header crosses a 1 KiB boundary", 0
    if old_format:
        d_ino, reclen, namlen = unpack(data, pos)
    else:
        d_ino, reclen, _, namlen = unpack(data, pos)
    name = bytes(data[pos + DIRECT_HEADER_SIZE:pos + DIRECT_HEADER_SIZE + namlen])
    if reclen == 0 or reclen % 4:
        return f"d_reclen {reclen} is not a positive multiple of 4", reclen
    if reclen < dirent_reclen(namlen) or pos + reclen > chunk_end:
        return f"d_reclen {reclen} does not fit its name or crosses a 1 KiB boundary", reclen
    return f"entry name {name!r} is not a file name", reclen


# the 8-byte entry header: d_ino, d_reclen, d_type, d_namlen (old format: a 16-bit d_namlen, no type)
_NEW_HEAD = {order: struct.Struct(order.value + "IHBB") for order in ByteOrder}
_OLD_HEAD = {order: struct.Struct(order.value + "IHH") for order in ByteOrder}
