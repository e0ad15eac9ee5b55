"""A full volume: what would make room, and growing (or shrinking) the volume.

:class:`RoomOps` is one of the parts :class:`snapfs.volume.Volume` is made of.
ENOSPC is exact: a write fails only when every data block of the volume is in
use (blocks freed in the same batch count once the batch commits, and the
mount retries after that commit).  The error, and ``snapfs df`` on a volume
at least :data:`NEARLY_FULL` full, say what would make room
(:meth:`RoomOps.room_advice`): growing the volume
(``snapfs volume modify MOUNT --size SIZE``, :meth:`RoomOps.volume_resize`),
and deleting snapshots, naming the one that alone holds the most.
"""

from __future__ import annotations

import errno

from .errors import err
from .limits import INT_MAX, check_int
from .store import StoreCalls
from .values import SpaceInfo

#: df gives its advice from this fill ratio on.
NEARLY_FULL = 0.9


def human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if abs(n) < 1024 or unit == "EiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


class RoomOps(StoreCalls):
    """room_advice, volume_resize (a Volume part)."""

    def _load_room(self) -> None:
        self.store.advice = self.room_advice  # what a failed allocation says

    def room_advice(self) -> str:
        """What would make room: one line (computed only when asked: the snapshots' exclusive space)."""
        snaps = [s for s in self.snapshot_list() if s.exclusive_bytes]
        size = human(self.meta.total_blocks * self._bs)
        tips = [f"grow the volume (snapfs volume modify MOUNT --size SIZE; now {size})"]
        if snaps:
            big = max(snaps, key=lambda s: s.exclusive_bytes)
            held = f", held by {', '.join(big.holders)}" if big.holders else ""
            tips.append(f"delete snapshots: {big.name} alone holds the most, {human(big.exclusive_bytes)}{held}"
                        f" (of {len(snaps)} holding space)")
        tips.append("or delete files")
        return "to make room: " + "; ".join(tips)

    def volume_resize(self, size_bytes: int) -> SpaceInfo:
        """Set the volume's size (whole blocks); it may not shrink below the highest block
        the data file uses (blocks are not moved), nor below what is in use; at most
        :data:`~snapfs.limits.INT_MAX` bytes."""
        blocks = check_int(size_bytes, "volume size", 0, INT_MAX) // self._bs
        m = self.meta
        floor = max(m.high_water, m.used_blocks, 1)
        if blocks < floor:
            raise err(errno.EINVAL, f"volume {m.name} cannot shrink below {human(floor * self._bs)}"
                      " (the blocks in use and below them stay where they are)")
        with self._txn():
            m.total_blocks = blocks
        return self.space()
