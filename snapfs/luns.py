"""LUNs: regular files with LUN metadata, at the root of a volume or of a qtree; clones and splits.

:class:`LunOps` is one of the parts :class:`snapfs.volume.Volume` is made of.
A LUN is a regular file carrying the xattr :data:`LUN_XATTR`
(``trusted.snapfs.lun``), an ASCII record such as
``serial=Ab3dE5fG7hJ9;ostype=linux;size=16777216;space-reserve=enabled;state=online;backing=``
(:func:`encode`/:func:`decode`).  Being an xattr of the file it is versioned
with it, so a snapshot keeps the record as it was; the mount shows it to
``getfattr -d -m -`` and refuses to change it.  The file's size is the LUN's
size: the mount refuses ``truncate`` (EPERM) and writes past the end (EFBIG);
``snapfs lun resize`` changes both.

Space reservation (``space-reserve=enabled``, the default): the LUN's blocks
are set aside at create, so writes to it never get ENOSPC.  Blocks are never
overwritten in place (copy on write), so what a reserved LUN may still need is
one fresh block per block it has not written since the newest snapshot
(:attr:`LunOps.lun_fresh`); that many blocks are kept from every other file
(they are not free in ``df``), and creating a snapshot that would leave too
few is refused (ENOSPC), as ONTAP does with a full overwrite reserve.

Clones: ``backing=EPOCH:INO`` names the snapshot and the LUN in it the clone
was made from.  The clone holds only the blocks written to it; the rest is
read from the backing LUN in that snapshot, which stays held (holder
``lun-clone:SERIAL``) as long as any version of the clone (live or in a
snapshot) still reads from it.  :meth:`LunOps.lun_split` copies what the
clone still reads from the snapshot into its own blocks and drops the
backing.  A LUN in state ``inconsistent`` (what a 7-Mode transition leaves)
is read and written as any other; the dump engine skips it.
"""

from __future__ import annotations

import errno
import re
import stat
from dataclasses import dataclass
from typing import Callable

from . import volpaths
from .errors import NoSpace, SnapfsError, err
from .filedata import MAX_FILE_SIZE
from .limits import check_int
from .schema import LIVE, MAX_SPAN
from .store import ROOT_INO, StoreCalls
from .values import Attrs, SnapshotInfo

LUN_XATTR = b"trusted.snapfs.lun"
#: ONTAP's LUN ostypes.
OSTYPES = ("aix", "hpux", "hyper_v", "linux", "netware", "openvms", "solaris", "solaris_efi", "vmware",
           "windows", "windows_2008", "windows_gpt", "xen")
STATES = ("online", "inconsistent")
SPACE_RESERVE = ("enabled", "disabled")
SERIAL_LEN = 12
CLONE_HOLDER = "lun-clone:"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_{}.\-]{0,254}")
_SERIAL_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"  # string.ascii_letters + digits
#: blocks copied per call by a split
_SPLIT_CHUNK = 64
#: the largest write the mount passes in one request (libfuse's bound): blocks are never
#: overwritten in place, so a write needs this much room until the next commit frees the
#: blocks it replaced; kept aside, with the reservations, while a reserved LUN exists
WRITE_PAD = 1 << 20


def write_pad_blocks(block_size: int) -> int:
    """Blocks kept aside for a reserved LUN's overwrites in flight (see :data:`WRITE_PAD`)."""
    return -(-WRITE_PAD // block_size) + 1


@dataclass(frozen=True, slots=True)
class LunRecord:
    serial: str
    ostype: str
    size: int
    space_reserve: str
    state: str
    backing: tuple[int, int] | None  # (snapshot epoch, LUN inode in it)


@dataclass(frozen=True, slots=True)
class Lun:
    """A LUN as the commands show it (``backing_snapshot`` empty unless it is a clone)."""

    path: str
    size: int
    ostype: str
    serial: str
    space_reserve: str
    state: str
    backing_snapshot: str
    backing_path: str
    used: int
    ino: int


def encode(r: LunRecord) -> bytes:
    b = "" if r.backing is None else f"{r.backing[0]}:{r.backing[1]}"
    return (f"serial={r.serial};ostype={r.ostype};size={r.size};space-reserve={r.space_reserve};"
            f"state={r.state};backing={b}").encode()


def decode(value: bytes) -> LunRecord:
    """The LUN a :data:`LUN_XATTR` value describes (ValueError if it is malformed)."""
    f = dict(p.split("=", 1) for p in value.decode("ascii").split(";"))
    b = f["backing"]
    backing = None if not b else (int(b.split(":")[0]), int(b.split(":")[1]))
    r = LunRecord(f["serial"], f["ostype"], int(f["size"]), f["space-reserve"], f["state"], backing)
    if (len(r.serial) != SERIAL_LEN or r.ostype not in OSTYPES or r.state not in STATES
            or r.space_reserve not in SPACE_RESERVE or not 0 < r.size <= MAX_FILE_SIZE):
        raise ValueError(f"bad LUN record {value!r}")
    return r


def check_ostype(ostype: str) -> str:
    if ostype not in OSTYPES:
        raise err(errno.EINVAL, f"unknown LUN ostype {ostype!r} (one of: {', '.join(OSTYPES)})")
    return ostype


def check_lun_name(name: bytes) -> None:
    text = name.decode(errors="replace")
    if not _NAME.fullmatch(text):
        raise err(errno.EINVAL, f"bad LUN name {text!r}: 1 to 255 of A-Z a-z 0-9 - _ {{ }} . starting with"
                  " a letter or a digit")


class LunOps(StoreCalls):
    """lun_create, lun_list, lun_show, lun_resize, lun_modify, lun_delete, lun_clone, lun_split (a Volume part)."""

    #: live LUNs: inode -> record (changed in place: the FUSE adapter keeps a reference)
    luns: dict[int, LunRecord]
    #: reserved live LUNs: inode -> blocks written since the newest snapshot (need no new room)
    lun_fresh: dict[int, int]
    qtrees: dict
    entries_changed: list[tuple[int, bytes]]
    check_writable: Callable[[], None]
    path_of: Callable[..., str]
    _put_block: Callable[..., int]
    _make: Callable[..., Attrs]

    # ------------------------------------------------------------------ loading and the hooks

    def _load_luns(self) -> None:
        self.luns = {}
        for ino, value in self._db.execute("SELECT ino, value FROM xattrs WHERE name = ? AND death = ?",
                                           (LUN_XATTR, LIVE)).fetchall():
            try:
                self.luns[ino] = decode(value)
            except (ValueError, KeyError, UnicodeDecodeError):
                pass  # fsck reports it; the file stays an ordinary one meanwhile
        self.lun_fresh = {}
        self.lun_outstanding = 0
        self._snap_clones: dict[int, dict[int, tuple[int, int]]] = {}
        #: live inodes whose size the commands changed behind the kernel's back (the mount drains it)
        self.inodes_changed: list[int] = []
        self._plain_put_block = self._put_block
        self._plain_read = self.read_buffer
        self._plain_write = self.write
        self._armed = False
        self._count_fresh()
        destroy = self._destroy

        def destroy_lun(ino: int) -> None:
            destroy(ino)
            if ino in self.luns:
                del self.luns[ino]
                self.lun_fresh.pop(ino, None)
                self._sum_outstanding()

        self._destroy = destroy_lun
        self._arm()

    def _arm(self) -> None:
        """Put the LUN hooks on the data path once the volume has a LUN (free before)."""
        if self._armed or not (self.luns or self._db.execute(
                "SELECT 1 FROM xattrs WHERE name = ? LIMIT 1", (LUN_XATTR,)).fetchone()):
            return
        self._armed = True
        self._put_block = self._reserving_put_block
        self._per_block = True  # (a write's blocks come through the hook one by one)
        self.read_buffer = self._clone_read
        self.write = self._clone_write

    def _blocks(self, r: LunRecord) -> int:
        return -(-r.size // self._bs)

    def _count_fresh(self) -> None:
        """Count, for every reserved LUN, the blocks it wrote since the newest snapshot (SQL)."""
        latest = self._epochs.latest
        self.lun_fresh = {ino: self._db.execute(
            "SELECT coalesce(sum(span), 0) FROM blockmap WHERE ino = ? AND death = ? AND birth > ?",
            (ino, LIVE, latest)).fetchone()[0] for ino, r in self.luns.items() if r.space_reserve == "enabled"}
        self._sum_outstanding()

    def _sum_outstanding(self) -> None:
        #: blocks kept for reserved LUNs (not free for other files)
        self.lun_outstanding = sum(max(0, self._blocks(self.luns[i]) - n) for i, n in self.lun_fresh.items())
        if self.lun_fresh:
            self.lun_outstanding += write_pad_blocks(self._bs)

    def _reserving_put_block(self, ino: int, idx: int, old: tuple | None, data: bytes) -> int:
        fresh = self.lun_fresh
        if fresh:
            m = self.meta
            own = 0
            n = fresh.get(ino)
            if n is not None:  # a reserved LUN may use its own reservation and the pad
                own = max(0, self._blocks(self.luns[ino]) - n) + write_pad_blocks(self._bs)
            if m.total_blocks - m.used_blocks - (self.lun_outstanding - own) < 1:
                self._count_fresh()  # a rolled-back call may have left the counts high
                own = (max(0, self._blocks(self.luns[ino]) - fresh[ino]) + write_pad_blocks(self._bs)
                       if ino in fresh else 0)
                if m.total_blocks - m.used_blocks - (self.lun_outstanding - own) < 1:
                    raise NoSpace(f"no space left on volume {m.name}: the free blocks are reserved for"
                                  f" space-reserved LUNs; {self.store.advice()}")
            block = self._plain_put_block(ino, idx, old, data)
            if n is not None and (old is None or old[1] <= self._epochs.latest):
                fresh[ino] = n + 1
                if n < self._blocks(self.luns[ino]):
                    self.lun_outstanding -= 1
            return block
        return self._plain_put_block(ino, idx, old, data)

    def reserved_blocks(self) -> int:
        """Blocks kept for space-reserved LUNs (counted as used by statfs and df)."""
        return self.lun_outstanding

    # ------------------------------------------------------------------ clones: reading and writing

    def _backing(self, ino: int, snap: int | None) -> tuple[int, int] | None:
        if snap is None:
            r = self.luns.get(ino)
            return None if r is None else r.backing
        clones = self._snap_clones.get(snap)
        if clones is None:
            clones = {}
            where, params = self._view(snap)
            for i, v in self._db.execute(f"SELECT ino, value FROM xattrs WHERE name = ? AND {where}",
                                         (LUN_XATTR, *params)).fetchall():
                try:
                    b = decode(v).backing
                except (ValueError, KeyError, UnicodeDecodeError):
                    continue
                if b is not None:
                    clones[i] = b
            self._snap_clones[snap] = clones
        return clones.get(ino)

    def _clone_read(self, ino: int, offset: int, size: int, snap: int | None = None) -> bytearray:
        out = self._plain_read(ino, offset, size, snap)
        b = self._backing(ino, snap)
        if b is None or not out:
            return out
        bs, end = self._bs, offset + len(out)
        first, last = offset // bs, (end - 1) // bs
        where, params = self._view(snap)
        own = {i for idx, span in self._db.execute(
            f"SELECT idx, span FROM blockmap WHERE ino = ? AND idx > ? AND idx <= ? AND idx + span > ? AND {where}",
            (ino, first - MAX_SPAN, last, first, *params)) for i in range(idx, idx + span)}
        for idx in range(first, last + 1):
            if idx in own:
                continue
            lo, hi = max(offset, idx * bs), min(end, (idx + 1) * bs)
            out[lo - offset:hi - offset] = self.read_buffer(b[1], lo, hi - lo, b[0]).ljust(hi - lo, b"\0")
        return out

    def _clone_write(self, ino: int, offset: int, data: bytes, append: bool = False) -> int:
        """A write to a live clone first gives it its own copy of each block it writes part of."""
        r = self.luns.get(ino)
        if r is not None and r.backing is not None and data and not append:
            bs = self._bs
            end = min(offset + len(data), r.size)
            for idx in {offset // bs, (end - 1) // bs}:
                lo, hi = idx * bs, min(r.size, (idx + 1) * bs)
                if (offset <= lo and offset + len(data) >= hi) or self._db.execute(
                        "SELECT 1 FROM blockmap WHERE ino = ? AND idx > ? AND idx <= ? AND idx + span > ? AND death = ?",
                        (ino, idx - MAX_SPAN, idx, idx, LIVE)).fetchone():
                    continue
                self._plain_write(ino, lo, bytes(self._clone_read(ino, lo, hi - lo)))
        return self._plain_write(ino, offset, data, append)

    # ------------------------------------------------------------------ the commands

    def _lun_place(self, path: str) -> tuple[int, bytes]:
        parent, last = volpaths.split(self, path)
        if parent != ROOT_INO and parent not in self.qtrees:
            raise err(errno.EINVAL, f"a LUN must be at the root of the volume or of a qtree: {path!r} is not")
        check_lun_name(last)
        return parent, last

    def _new_serial(self) -> str:
        import secrets  # here: a reader of LUNs never makes a serial

        used = {r.serial for r in self.luns.values()}
        while True:
            s = "".join(secrets.choice(_SERIAL_CHARS) for _ in range(SERIAL_LEN))
            if s not in used:
                return s

    def _room_for(self, blocks: int, reserve: bool) -> None:
        if not reserve:
            return
        m = self.meta
        free = m.total_blocks - m.used_blocks - self.lun_outstanding
        if blocks > free:
            raise err(errno.ENOSPC, f"cannot reserve {blocks * self._bs} bytes for the LUN on volume {m.name}:"
                      f" {max(0, free) * self._bs} bytes are free (use --space-reserve disabled, or make room)")

    def _make_lun(self, path: str, rec: LunRecord) -> Lun:
        parent, last = self._lun_place(path)
        self._room_for(self._blocks(rec), rec.space_reserve == "enabled")
        self.entries_changed.append((parent, last))
        a = self._make(parent, last, stat.S_IFREG | 0o600, 0, 0, xattrs={LUN_XATTR: encode(rec)})
        try:
            self.setattr(a.ino, size=rec.size)
        except SnapfsError:
            self.unlink(parent, last)
            raise
        self.luns[a.ino] = rec
        self._arm()
        if rec.space_reserve == "enabled":
            self.lun_fresh[a.ino] = 0
            self._sum_outstanding()
        return self.lun_info(a.ino)

    def lun_create(self, path: str, size: int, ostype: str, space_reserve: str = "enabled") -> Lun:
        """A new LUN of ``size`` bytes at ``path`` (the root of the volume or of a qtree)."""
        self.check_writable()
        check_ostype(ostype)
        if space_reserve not in SPACE_RESERVE:
            raise err(errno.EINVAL, f"unknown space reservation {space_reserve!r} (enabled or disabled)")
        check_int(size, "LUN size", 1, MAX_FILE_SIZE)
        return self._make_lun(path, LunRecord(self._new_serial(), ostype, size, space_reserve, "online", None))

    def _lun_ino(self, path: str, snap: int | None = None) -> tuple[int, LunRecord]:
        ino = volpaths.resolve(self, path, snap)
        rec = self.lun_record(ino, snap)
        if rec is None:
            raise err(errno.EINVAL, f"{path!r} is not a LUN")
        return ino, rec

    def lun_record(self, ino: int, snap: int | None = None) -> LunRecord | None:
        if snap is None:
            return self.luns.get(ino)
        v = self.xattr(ino, LUN_XATTR, snap)
        return None if v is None else decode(v)

    def lun_info(self, ino: int, snap: int | None = None) -> Lun:
        r = self.lun_record(ino, snap)
        assert r is not None
        bsnap = bpath = ""
        if r.backing is not None:
            bsnap = next((n for s, n in self.snapshot_names() if s == r.backing[0]), "(deleted)")
            try:
                bpath = self.path_of(r.backing[1], r.backing[0])
            except SnapfsError:
                bpath = f"(inode {r.backing[1]})"
        return Lun(self.path_of(ino, snap), r.size, r.ostype, r.serial, r.space_reserve, r.state, bsnap, bpath,
                   self._row(ino, snap).nblocks * self._bs, ino)

    def lun_list(self, snap: int | None = None) -> list[Lun]:
        if snap is None:
            inos = sorted(self.luns)
        else:
            where, params = self._view(snap)
            inos = [r[0] for r in self._db.execute(f"SELECT ino FROM xattrs WHERE name = ? AND {where} ORDER BY ino",
                                                   (LUN_XATTR, *params))]
        return [self.lun_info(i, snap) for i in inos]

    def lun_show(self, path: str, snap: int | None = None) -> Lun:
        return self.lun_info(self._lun_ino(path, snap)[0], snap)

    def _put_record(self, ino: int, rec: LunRecord) -> None:
        with self._txn():
            self._put_xattr(ino, LUN_XATTR, encode(rec))
        self.luns[ino] = rec

    def lun_resize(self, path: str, size: int) -> Lun:
        self.check_writable()
        ino, rec = self._lun_ino(path)
        check_int(size, "LUN size", 1, MAX_FILE_SIZE)
        new = LunRecord(rec.serial, rec.ostype, size, rec.space_reserve, rec.state, rec.backing)
        if size < rec.size and rec.backing is not None:
            # what it cut off would read from the snapshot again when it grew back
            raise err(errno.EINVAL, f"LUN {path!r} is a clone: split it (snapfs lun split) before shrinking it")
        if size > rec.size:
            self._room_for(self._blocks(new) - self._blocks(rec), rec.space_reserve == "enabled")
        self._put_record(ino, new)
        try:
            self.setattr(ino, size=size)
        except SnapfsError:
            self._put_record(ino, rec)
            raise
        self._count_fresh()
        self.inodes_changed.append(ino)
        return self.lun_info(ino)

    def lun_modify(self, path: str, state: str | None = None, ostype: str | None = None) -> Lun:
        self.check_writable()
        ino, rec = self._lun_ino(path)
        if state is not None and state not in STATES:
            raise err(errno.EINVAL, f"unknown LUN state {state!r} (one of: {', '.join(STATES)})")
        self._put_record(ino, LunRecord(rec.serial, check_ostype(ostype) if ostype else rec.ostype, rec.size,
                                        rec.space_reserve, state or rec.state, rec.backing))
        return self.lun_info(ino)

    def lun_delete(self, path: str) -> None:
        self.check_writable()
        self._lun_ino(path)
        parent, last = volpaths.split(self, path)
        self.entries_changed.append((parent, last))
        self.unlink(parent, last)
        self.commit()
        self.reconcile_clone_holds()

    def lun_clone(self, snapshot: str, path: str, newpath: str) -> Lun:
        """A LUN at ``newpath`` reading the LUN ``path`` of ``snapshot`` until written (copy on
        write); the snapshot is held until :meth:`lun_split` (or the clone is gone)."""
        self.check_writable()
        s = self.snapshot_id(snapshot)
        src, rec = self._lun_ino(path, s)
        serial = self._new_serial()
        self.snapshot_hold(snapshot, CLONE_HOLDER + serial)
        try:
            return self._make_lun(newpath, LunRecord(serial, rec.ostype, rec.size, rec.space_reserve, "online",
                                                     (s, src)))
        except SnapfsError:
            self.reconcile_clone_holds()
            raise

    def lun_split(self, path: str) -> Lun:
        """Copy into the clone what it still reads from its snapshot; then it is a LUN of its own."""
        self.check_writable()
        ino, rec = self._lun_ino(path)
        if rec.backing is None:
            raise err(errno.EINVAL, f"LUN {path!r} is not a clone")
        bs, n = self._bs, self._blocks(rec)
        where, params = self._view(rec.backing[0])
        theirs = [i for idx, span in self._db.execute(
            f"SELECT idx, span FROM blockmap WHERE ino = ? AND {where} ORDER BY idx", (rec.backing[1], *params))
            for i in range(idx, idx + span)]
        own = {i for idx, span in self._db.execute("SELECT idx, span FROM blockmap WHERE ino = ? AND death = ?",
                                                   (ino, LIVE)) for i in range(idx, idx + span)}
        todo = [i for i in theirs if i not in own and i < n]
        for k in range(0, len(todo), _SPLIT_CHUNK):
            for idx in todo[k:k + _SPLIT_CHUNK]:
                lo = idx * bs
                self._plain_write(ino, lo, bytes(self._clone_read(ino, lo, min(bs, rec.size - lo))))
            self.commit()
        self._put_record(ino, LunRecord(rec.serial, rec.ostype, rec.size, rec.space_reserve, rec.state, None))
        self.commit()
        self.reconcile_clone_holds()
        return self.lun_info(ino)

    def reconcile_clone_holds(self) -> None:
        """Release each clone's hold on its snapshot once no version of the clone reads from it."""
        if not self._armed:
            return  # no LUN was ever on this volume (nothing to ask: keeps snapshot deletion lean)
        held = [(e, h) for e, h in self._db.execute("SELECT epoch, holder FROM holds WHERE holder LIKE ?",
                                                    (CLONE_HOLDER + "%",)).fetchall()]
        if not held:
            return
        needed: set[tuple[int, str]] = set()
        for (v,) in self._db.execute("SELECT value FROM xattrs WHERE name = ?", (LUN_XATTR,)):
            try:
                r = decode(v)
            except (ValueError, KeyError, UnicodeDecodeError):
                continue
            if r.backing is not None:
                needed.add((r.backing[0], CLONE_HOLDER + r.serial))
        gone = [(e, h) for e, h in held if (e, h) not in needed]
        if gone:
            with self._txn():
                self._db.executemany("DELETE FROM holds WHERE epoch = ? AND holder = ?", gone)

    # ------------------------------------------------------------------ snapshots and the reservation

    def snapshot_create(self, name: str) -> SnapshotInfo:
        """As :meth:`SnapshotOps.snapshot_create`; refused (ENOSPC) when it would leave the
        space-reserved LUNs less room than they may need to overwrite every block."""
        if self.lun_fresh:
            self.commit()
            m = self.meta
            need = sum(self._blocks(self.luns[i]) for i in self.lun_fresh) + write_pad_blocks(self._bs)
            free = m.total_blocks - m.used_blocks
            if need > free:
                raise err(errno.ENOSPC, f"cannot create snapshot {name!r} of volume {m.name}: its space-reserved"
                          f" LUNs would need {need * self._bs} bytes free to overwrite their blocks,"
                          f" {free * self._bs} are free")
        info = super().snapshot_create(name)  # type: ignore[misc]
        self._count_fresh()
        return info

    def snapshot_delete(self, name: str) -> int:
        self.commit()
        self.reconcile_clone_holds()
        freed = super().snapshot_delete(name)  # type: ignore[misc]
        self.reconcile_clone_holds()  # its versions of clones are gone: their snapshots may be free
        self._count_fresh()
        return freed

    def lun_size_check(self, ino: int, offset: int, length: int) -> None:
        """EFBIG for a write past a LUN's end (its size changes by ``snapfs lun resize`` only)."""
        if offset + length > self.luns[ino].size:
            raise err(errno.EFBIG, f"write past the end of a LUN (inode {ino}); resize it with snapfs lun resize")

