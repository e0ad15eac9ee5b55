"""The two inode maps, ``TS_CLRI`` (in use) and ``TS_BITS`` (dumped) (section 3.2).

Inode *i* is bit ``(i-1) & 7`` (least significant first) of byte
``(i-1) >> 3``.  Maps are byte arrays, never byte-swapped.  A map is a whole
number of tape blocks; restore takes its idea of the largest inode number
from the TS_CLRI block count (:func:`restore_maxino`), so every inode number
written anywhere must stay below it, and TS_BITS must have the same length.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import FormatError, FormatLimitError
from .constants import TP_BSIZE


def map_blocks(maxino: int) -> int:
    """Tape blocks of a map covering inodes ``1 .. maxino-1``, as dump sizes it.

    dump's *maxino* is ``s_inodes_count + 1``: one past the highest inode
    number.  ``ceil(ceil(maxino/8) / 1024)``, at least 1.
    """
    if maxino < 2:
        raise ValueError(f"maxino must be at least 2, got {maxino}")
    map_bytes = -(-maxino // 8)
    return max(1, -(-map_bytes // TP_BSIZE))


def restore_maxino(map_block_count: int) -> int:
    """restore's maxino for a TS_CLRI of that many blocks: ``count*8192 + 1``.

    Inode numbers must be below it; dirents naming one that is not are
    silently dropped by restore as "corrupted".
    """
    return map_block_count * TP_BSIZE * 8 + 1


def build_inode_map(inodes: Iterable[int], maxino: int) -> bytes:
    """The map bytes (``map_blocks(maxino)`` whole tape blocks) with *inodes* set.

    Raises :class:`FormatLimitError` for an inode number outside ``1 .. maxino-1``.
    """
    out = bytearray(map_blocks(maxino) * TP_BSIZE)
    for ino in inodes:
        if not 1 <= ino < maxino:
            raise FormatLimitError(f"inode number {ino} is outside the map (1 to {maxino - 1})")
        out[(ino - 1) >> 3] |= 1 << ((ino - 1) & 7)
    return bytes(out)


def parse_inode_map(data: bytes) -> set[int]:
    """The inode numbers whose bits are set in map bytes."""
    found: set[int] = set()
    for byte_index, byte in enumerate(data):
        if byte:
            base = byte_index * 8 + 1
            for bit in range(8):
                if byte >> bit & 1:
                    found.add(base + bit)
    return found


def inode_in_map(data: bytes, ino: int) -> bool:
    """True when inode *ino*'s bit is set (False past the end of the map)."""
    if ino < 1:
        raise FormatError(f"inode number {ino} cannot be in a map")
    index = (ino - 1) >> 3
    return index < len(data) and bool(data[index] >> ((ino - 1) & 7) & 1)
