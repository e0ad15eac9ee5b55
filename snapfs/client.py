"""snapfs.client: volume commands for other programs (the dump engine, the CLI).

``open_volume(PATH)`` takes a mount point or a volume folder.  On a mounted
volume the requests go over the daemon's control socket (see
:mod:`snapfs.control`); on an unmounted one the client opens the Volume itself
and holds it until :meth:`Client.close`.  Either way the answers are the same
and failures are :class:`SnapfsError` with the errno and message the volume
gave (a busy snapshot names its holder).

    with open_volume("/mnt/vol1") as c:
        snap = c.snapshot_create()          # snapshot_for_backup.N
        c.snapshot_hold(snap.name, "dump-42")
        ...                                 # read /mnt/vol1/.snapshot/<name>/
        c.snapshot_release(snap.name, "dump-42")
        c.snapshot_delete(snap.name)

The filer's objects (qtrees, junctions, client I/O restrictions, the
volume's identity and type) have calls of the same shape; see the README.

The names a mount shows (:data:`SNAPDIR_NAME`, the ``user.snapfs.*`` xattrs)
are defined once in :mod:`snapdump.snapfs_names` and exported here.
"""

from __future__ import annotations

import errno
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

# re-exported: the names other programs look for on a mount
from snapdump.snapfs_names import INO_XATTR, SNAPDIR_NAME, SNAPSHOT_CREATED_XATTR  # noqa: F401
from snapdump.snapfs_names import SNAPSHOT_XATTR, TRUSTED_INO_XATTR, VOLUME_XATTR  # noqa: F401

from . import control
from .errors import NotAVolume, SnapfsError, SnapshotBusy
from .identity import VolumeIdentity
from .junctions import Junction
from .junctions import decode as _junction_fields
from .luns import Lun
from .qtrees import Qtree
from .restrictions import Restriction, check_owner
from .values import SnapshotInfo, SpaceInfo
from .store import DB_FILE

if TYPE_CHECKING:
    from .locks import Lock
    from .volume import Volume


@dataclass(frozen=True)
class VolumeInfo(SpaceInfo):
    """A volume's space figures (:class:`~snapfs.values.SpaceInfo`, bytes) and
    what else ``snapfs info`` shows; ``mountpoint``/``pid`` are set when it is mounted."""

    name: str
    path: str
    block_size: int
    snapshot_count: int
    max_name: int
    mountpoint: str | None
    pid: int | None


def find_volume(path: str | os.PathLike) -> Path:
    """The volume folder behind ``path``: a volume folder itself, or a snapfs mount point."""
    p = Path(path)
    if (p / DB_FILE).is_file():
        return p.resolve()
    try:
        return Path(os.fsdecode(os.getxattr(p, VOLUME_XATTR)))
    except OSError:
        pass
    raise NotAVolume(f"{path} is neither a snapfs volume folder nor a snapfs mount point")


class Client:
    """A connection to one volume; use :func:`open_volume`."""

    def __init__(self, voldir: Path) -> None:
        self.voldir = voldir
        self._sock: socket.socket | None = control.connect(voldir)
        self._file = self._sock.makefile("rwb") if self._sock else None
        self._vol: Volume | None = None
        if not self._sock:  # not mounted: the client opens the volume itself
            from .volume import Volume

            self._vol = Volume.open(voldir)
        self._acted = False  # acts as a restriction owner (act_as): close waits until the daemon let it go

    @property
    def mounted(self) -> bool:
        """True when requests go to a mount daemon."""
        return self._sock is not None

    def close(self) -> None:
        if self._file:
            self._file.close()
        if self._sock:
            if self._acted:  # wait for the daemon's end of the channel: it lets the owner go first
                try:
                    self._sock.shutdown(socket.SHUT_WR)
                    self._sock.settimeout(10)
                    while self._sock.recv(4096):
                        pass
                except OSError:
                    pass
            self._sock.close()
            self._sock = None
        if self._vol:
            self._vol.close()
            self._vol = None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, op: str, **args: Any) -> Any:
        if self._vol is not None:
            return control.execute(self._vol, op, args)
        file = self._file if self._file is not None else self._reconnect()
        try:
            file.write((json.dumps({"op": op, "args": args}) + "\n").encode())
            file.flush()
            line = file.readline()
        except BaseException as e:
            # An answer left unread (a failure, or ^C between the request and its answer) would be
            # taken for the next request's: this channel is given up (see _reconnect).
            self._file = None
            try:
                file.close()
            except OSError:
                pass
            if isinstance(e, OSError):
                raise SnapfsError(f"lost the control channel of {self.voldir}: {e}", errno.EIO) from None
            raise
        if not line:
            raise SnapfsError(f"the mount daemon of {self.voldir} closed the control channel", errno.EIO)
        reply = json.loads(line)
        if reply["ok"]:
            return reply["result"]
        cls = SnapshotBusy if reply["errno"] == errno.EBUSY and op == "snapshot_delete" else SnapfsError
        raise cls(reply["error"], reply["errno"])

    def _reconnect(self) -> BinaryIO:
        """A new channel for the requests after one whose answer was left unread.  Not for
        a restriction owner (the daemon lets the owner go when its channel closes), nor
        once closed: then the request fails."""
        if self._sock is None:
            raise SnapfsError(f"the control channel of {self.voldir} is closed", errno.EIO)
        if self._acted:
            raise SnapfsError(f"the control channel of {self.voldir} was given up: a request on it was "
                              "interrupted", errno.EIO)
        sock = control.connect(self.voldir)
        if sock is None:
            raise SnapfsError(f"the mount daemon of {self.voldir} is gone", errno.EIO)
        self._sock.close()
        self._sock = sock
        self._file = sock.makefile("rwb")
        return self._file

    # ------------------------------------------------------------------ commands

    def info(self) -> VolumeInfo:
        return VolumeInfo(**self._call("info"))

    def snapshot_create(self, name: str | None = None) -> SnapshotInfo:
        """Create ``name`` (default: the next ``snapshot_for_backup.N`` of this mount)."""
        return _snapshot(self._call("snapshot_create", name=name))

    def snapshot_list(self) -> list[SnapshotInfo]:
        return [_snapshot(d) for d in self._call("snapshot_list")]

    def snapshot_delete(self, name: str) -> int:
        """Delete ``name``; returns the bytes freed.  SnapshotBusy (naming the holder) if held."""
        return self._call("snapshot_delete", name=name)["freed"]

    def snapshot_rename(self, old: str, new: str) -> None:
        self._call("snapshot_rename", old=old, new=new)

    def snapshot_hold(self, name: str, holder: str) -> None:
        self._call("snapshot_hold", name=name, holder=holder)

    def snapshot_release(self, name: str, holder: str) -> None:
        self._call("snapshot_release", name=name, holder=holder)

    # ------------------------------------------------------------------ named streams (issue 12)

    def stream_list(self, path: str) -> list[dict]:
        """The named streams of ``path`` (relative to the volume root; ``.snapshot/NAME/...``
        reads a snapshot): ``{"name", "size", "in_xattr"}`` each."""
        return self._call("stream_list", path=path)

    def stream_read(self, path: str, name: str) -> bytes:
        return b"".join(self.stream_chunks(path, name))

    def stream_chunks(self, path: str, name: str, step: int = 1 << 20) -> Iterator[bytes]:
        """The bytes of stream ``name`` of ``path``, ``step`` bytes at a time."""
        import base64  # here: the rest of the client never needs it

        offset = 0
        while True:
            chunk = base64.b64decode(self._call("stream_read", path=path, name=name, offset=offset, size=step))
            if chunk or not offset:
                yield chunk
            offset += len(chunk)
            if len(chunk) < step:
                return

    def stream_write(self, path: str, name: str, source: str | os.PathLike, offset: int = 0,
                     size: int | None = None) -> dict:
        """Make stream ``name`` of ``path`` hold the bytes of file ``source`` (``size`` bytes
        from ``offset``, else all of it; read by the volume's process a chunk at a time:
        give a path it can read), in one transaction."""
        return self._call("stream_write", path=path, name=name, source=str(Path(source).resolve()),
                          offset=offset, size=size)

    def stream_delete(self, path: str, name: str) -> None:
        self._call("stream_delete", path=path, name=name)


    # ------------------------------------------------------------------ the filer's objects (issue 12, filerA)

    def volume_identity(self) -> VolumeIdentity:
        """uuid, generation, type (rw/ro), security style and aggregate."""
        return VolumeIdentity(**self._call("volume_identity"))

    def volume_modify(self, type: str | None = None, security_style: str | None = None) -> VolumeIdentity:
        return VolumeIdentity(**self._call("volume_modify", type=type, security_style=security_style))

    def availability(self, state: str | None = None) -> str:
        """online, offline, a failover event or move-cutover; ``state``: set it first."""
        return self._call("availability", state=state)

    def check_sessions_allowed(self, kind: str = "") -> None:
        """SnapfsError (EBUSY) when a ``kind`` (dump, restore) session may not start on the volume now."""
        self._call("check_sessions", kind=kind)

    def volume_move(self, aggregate: str, keep_identity: bool = False) -> VolumeIdentity:
        """A simulated volume move: bumps the generation (unless ``keep_identity``)."""
        return VolumeIdentity(**self._call("volume_move", aggregate=aggregate, keep_identity=keep_identity))

    def volume_relocate(self, to: str | os.PathLike, keep_identity: bool = False) -> VolumeIdentity:
        """A volume move's last step: the volume's folder goes to ``to`` (see
        :mod:`snapfs.moving`); this client goes on talking to it there."""
        ident = VolumeIdentity(**self._call("volume_relocate", to=os.fspath(to), keep_identity=keep_identity))
        self.voldir = Path(self.info().path)
        return ident

    def volume_resize(self, size: int) -> dict:
        """Grow (or shrink, down to the highest block in use) the volume; its space figures."""
        return self._call("volume_resize", size=size)

    def room_advice(self) -> str:
        """What would make room on this volume (one line): see :mod:`snapfs.room`."""
        return self._call("room_advice")

    def qtree_create(self, name: str, security_style: str | None = None, oplocks: str = "enable") -> Qtree:
        return Qtree(**self._call("qtree_create", name=name, security_style=security_style, oplocks=oplocks))

    def qtree_list(self) -> list[Qtree]:
        return [Qtree(**d) for d in self._call("qtree_list")]

    def qtree_show(self, name: str) -> Qtree:
        return Qtree(**self._call("qtree_show", name=name))

    def qtree_modify(self, name: str, security_style: str | None = None, oplocks: str | None = None) -> Qtree:
        return Qtree(**self._call("qtree_modify", name=name, security_style=security_style, oplocks=oplocks))

    def qtree_delete(self, name: str, force: bool = False) -> None:
        self._call("qtree_delete", name=name, force=force)

    def junction_create(self, path: str, volume: str | os.PathLike) -> Junction:
        """A junction at ``path`` to the snapfs volume at ``volume`` (its folder or mount
        point, mounted or not): a symbolic link to its mount point (its folder when it
        is not mounted).  NotAVolume for anything else."""
        try:
            other = find_volume(volume)
        except NotAVolume:
            raise NotAVolume(f"unknown volume for a junction: {volume} is neither a snapfs volume folder nor"
                             " a snapfs mount point") from None
        if other == self.voldir.resolve():
            raise SnapfsError(f"a junction of volume {self.voldir} may not lead to itself", errno.EINVAL)
        with Client(other) as o:
            ident, info = o.volume_identity(), o.info()
        target = info.mountpoint or str(other)
        return Junction(**self._call("junction_create", path=path, uuid=ident.uuid, name=info.name,
                                     volume_path=str(other), target=target))

    def junction_list(self) -> list[Junction]:
        return [Junction(**d) for d in self._call("junction_list")]

    def junction_delete(self, path: str) -> None:
        self._call("junction_delete", path=path)

    def restrict(self, path: str, owner: str) -> Restriction:
        """Client I/O restriction: only ``owner`` may open ``path`` until :meth:`unrestrict`."""
        return Restriction(**self._call("restrict", path=path, owner=owner))

    def unrestrict(self, path: str, owner: str) -> None:
        self._call("unrestrict", path=path, owner=owner)

    def unrestrict_inodes(self, inos: list[int], owner: str) -> int:
        """Lift ``owner``'s restrictions on live inodes ``inos`` (:attr:`Restriction.ino`) at
        once, wherever the files are now; how many were lifted."""
        return self._call("unrestrict_inodes", inos=list(inos), owner=owner)

    def restriction_list(self) -> list[Restriction]:
        return [Restriction(**d) for d in self._call("restriction_list")]

    def act_as(self, owner: str, restore: bool = False, inherit: bool = False) -> str:
        """This process (and its children) act as restriction owner ``owner`` on the
        mount while this client stays open (see :mod:`snapfs.restrictions`); with
        ``restore``, as a restoring owner, which no lock stops (:mod:`snapfs.locks`);
        with ``inherit``, as the owner an ancestor already acts as, if any.  The owner
        it acts as.  On a volume that is not mounted nothing is enforced, so nothing is needed."""
        check_owner(owner)
        if self.mounted:
            self._acted = True
            return self._call(control.ACT_AS, owner=owner, restore=restore, inherit=inherit)
        return owner

    # -- what a restore sets that the mount cannot (snapfs.restoring)

    def dosnames_set(self, directory: str, names: dict[bytes, bytes]) -> int:
        """Give entries of ``directory`` their DOS 8.3 names (see :meth:`snapfs.restoring.RestoringOps.dosnames_set`)."""
        return self._call("dosnames_set", directory=directory,
                          names={os.fsdecode(k): os.fsdecode(v) for k, v in names.items()})

    def lun_adopt(self, path: str, record: str) -> Lun:
        """Make regular file ``path`` a LUN with a dumped record's fields."""
        return Lun(**self._call("lun_adopt", path=path, record=record))

    def lun_release(self, path: str) -> None:
        """Make LUN ``path`` a plain file, for a restore to write over it."""
        self._call("lun_release", path=path)

    def qtree_adopt(self, name: str, qid: int, security_style: str, oplocks: str) -> Qtree:
        """Make directory ``name`` of the root a qtree (id ``qid`` when free)."""
        return Qtree(**self._call("qtree_adopt", name=name, qid=qid, security_style=security_style, oplocks=oplocks))

    def junction_adopt(self, path: str, record: str) -> Junction:
        """Make symbolic link ``path`` a junction again from a dumped junction record
        (``uuid=..;name=..;path=..``); NotAVolume when the record's folder holds no
        snapfs volume with that uuid any more."""
        try:
            fields = _junction_fields(record.encode())
        except (ValueError, UnicodeError):
            raise SnapfsError(f"bad junction record {record!r}", errno.EINVAL) from None
        try:
            other = find_volume(fields["path"])
            with Client(other) as o:
                uuid = o.volume_identity().uuid
        except SnapfsError:
            uuid = None
        if uuid != fields["uuid"]:
            raise NotAVolume(f"volume {fields['name']} ({fields['uuid']}) is not in {fields['path']} any more")
        return Junction(**self._call("junction_adopt", path=path, uuid=uuid, name=fields["name"],
                                     volume_path=str(other)))

    # -- LUNs and locks (filerC)

    def lun_create(self, path: str, size: int, ostype: str, space_reserve: str = "enabled") -> Lun:
        return Lun(**self._call("lun_create", path=path, size=size, ostype=ostype, space_reserve=space_reserve))

    def lun_list(self) -> list[Lun]:
        return [Lun(**d) for d in self._call("lun_list")]

    def lun_show(self, path: str) -> Lun:
        return Lun(**self._call("lun_show", path=path))

    def lun_resize(self, path: str, size: int) -> Lun:
        return Lun(**self._call("lun_resize", path=path, size=size))

    def lun_modify(self, path: str, state: str | None = None, ostype: str | None = None) -> Lun:
        return Lun(**self._call("lun_modify", path=path, state=state, ostype=ostype))

    def lun_delete(self, path: str) -> None:
        self._call("lun_delete", path=path)

    def lun_clone(self, snapshot: str, path: str, newpath: str) -> Lun:
        """A clone of LUN ``path`` as in ``snapshot``, at ``newpath``; holds the snapshot until split."""
        return Lun(**self._call("lun_clone", snapshot=snapshot, path=path, newpath=newpath))

    def lun_split(self, path: str) -> Lun:
        return Lun(**self._call("lun_split", path=path))

    def lock_add(self, path: str, type: str, owner: str, start: int = 0, length: int = 0,
                 share: str = "deny-none") -> Lock:
        from .locks import Lock  # here: a client of the dump engine never asks for a lock

        return Lock(**self._call("lock_add", path=path, type=type, owner=owner, start=start, length=length,
                                 share=share))

    def lock_list(self) -> list[Lock]:
        from .locks import Lock

        return [Lock(**d) for d in self._call("lock_list")]

    def lock_break(self, path: str | None = None, owner: str | None = None, lock_id: int | None = None) -> int:
        return self._call("lock_break", path=path, owner=owner, lock_id=lock_id)

    # ------------------------------------------------------------------ (end of the filer's objects)


def _snapshot(d: dict) -> SnapshotInfo:
    d = dict(d)
    d["holders"] = tuple(d["holders"])
    return SnapshotInfo(**d)


def open_volume(path: str | os.PathLike) -> Client:
    """A :class:`Client` for the volume at ``path`` (mount point or volume folder)."""
    return Client(find_volume(path))
