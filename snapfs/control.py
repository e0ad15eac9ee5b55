"""The control channel: volume commands as small JSON requests over a Unix socket.

A mounted volume's daemon serves :data:`SOCKET_NAME` in the volume folder.
Each request is one JSON object on one line, ``{"op": NAME, "args": {...}}``;
each answer is one line, ``{"ok": true, "result": ...}`` or ``{"ok": false,
"errno": N, "error": MESSAGE}``.  The commands themselves live once, in
:data:`COMMANDS`, and run either in the daemon (on its open Volume) or, when
the volume is not mounted, in the caller's process (see :mod:`snapfs.client`).

No request ends the daemon: one that fails in a way no command expects (a
bug) is answered ``internal error: ...`` and its traceback goes to the mount
log, while the mount goes on serving.  Each Volume call is all-or-nothing
(its transaction or savepoint is rolled back on any exception), so such a
failure leaves no half-made change behind.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import socket
import stat
import struct
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterator

from snapdump.snapfs_names import SNAPDIR_NAME

from .errors import SnapfsError, err
from .limits import check_int
from .restrictions import check_owner
from .vetoes import SINGLE_FILE_OWNER
from .store import ROOT_INO

if TYPE_CHECKING:  # the daemon has it open; a client never needs it here
    from .volume import Volume

SOCKET_NAME = "control.sock"
MAX_REQUEST = 64 * 1024
_SUN_PATH_MAX = 107
_log = logging.getLogger("snapfs.control")


def _snapshot_create(vol: Volume, name: str | None = None) -> dict:
    return dataclasses.asdict(vol.snapshot_create(name or vol.next_backup_snapshot_name()))


def _snapshot_list(vol: Volume) -> list[dict]:
    vol.reconcile_clone_holds()  # a LUN clone removed through the mount let go of its snapshot (filerC)
    return [dataclasses.asdict(s) for s in vol.snapshot_list()]


def _snapshot_delete(vol: Volume, name: str) -> dict:
    return {"freed": vol.snapshot_delete(name)}


def _snapshot_rename(vol: Volume, old: str, new: str) -> None:
    vol.snapshot_rename(old, new)


def _snapshot_hold(vol: Volume, name: str, holder: str) -> None:
    vol.snapshot_hold(name, holder)


def _snapshot_release(vol: Volume, name: str, holder: str) -> None:
    vol.snapshot_release(name, holder)


def _info(vol: Volume) -> dict:
    sp, st = vol.space(), vol.statfs()
    return {"name": vol.name, "path": str(Path(vol.path).resolve()), "block_size": vol.block_size,
            **dataclasses.asdict(sp), "snapshot_count": len(vol.snapshot_names()),
            "max_name": st.name_max, "mountpoint": None, "pid": None}


# ---------------------------------------------------------------------- the filer's objects (issue 12, filerA)

def _volume_identity(vol: Volume) -> dict:
    return dataclasses.asdict(vol.volume_identity())


def _volume_modify(vol: Volume, type: str | None = None, security_style: str | None = None) -> dict:
    return dataclasses.asdict(vol.volume_modify(type, security_style))


def _volume_move(vol: Volume, aggregate: str, keep_identity: bool = False) -> dict:
    return dataclasses.asdict(vol.volume_move(aggregate, keep_identity))


def _volume_relocate(vol: Volume, to: str, keep_identity: bool = False, mountpoint: str | None = None) -> dict:
    """A volume move's last step (:mod:`snapfs.moving`); the daemon names its own ``mountpoint``."""
    from . import moving  # here: a client of the mount does not load the whole Volume for it

    return dataclasses.asdict(moving.move_volume(vol, to, keep_identity, mountpoint))


def _availability(vol: Volume, state: str | None = None) -> str:
    """The volume's availability; ``state``: set it first (see :mod:`snapfs.vetoes`)."""
    if state is not None:
        vol.set_availability(state)
    return vol.availability


def _check_sessions(vol: Volume, kind: str = "") -> None:
    """EBUSY when a ``kind`` session may not start: the volume refuses them
    all now, or a restore meets a single-file restore (:mod:`snapfs.vetoes`)."""
    vol.check_sessions_allowed()
    running = [r.path for r in vol.restriction_list() if r.owner == SINGLE_FILE_OWNER]
    if kind == "restore" and running:
        raise err(errno.EBUSY, f"a single-file restore of {running[0]} runs on volume {vol.name}: "
                               "no restore session may start on it until it ends")


def _qtree_create(vol: Volume, name: str, security_style: str | None = None, oplocks: str = "enable") -> dict:
    return dataclasses.asdict(vol.qtree_create(name, security_style, oplocks))


def _qtree_list(vol: Volume) -> list[dict]:
    return [dataclasses.asdict(q) for q in vol.qtree_list()]


def _qtree_show(vol: Volume, name: str) -> dict:
    return dataclasses.asdict(vol.qtree_show(name))


def _qtree_modify(vol: Volume, name: str, security_style: str | None = None, oplocks: str | None = None) -> dict:
    return dataclasses.asdict(vol.qtree_modify(name, security_style, oplocks))


def _qtree_delete(vol: Volume, name: str, force: bool = False) -> None:
    vol.qtree_delete(name, force)


def _junction_create(vol: Volume, path: str, uuid: str, name: str, volume_path: str, target: str) -> dict:
    return dataclasses.asdict(vol.junction_create(path, uuid, name, volume_path, target))


def _junction_list(vol: Volume) -> list[dict]:
    return [dataclasses.asdict(j) for j in vol.junction_list()]


def _junction_delete(vol: Volume, path: str) -> None:
    vol.junction_delete(path)


def _restrict(vol: Volume, path: str, owner: str) -> dict:
    return dataclasses.asdict(vol.restrict(path, owner))


def _unrestrict(vol: Volume, path: str, owner: str) -> None:
    vol.unrestrict(path, owner)


def _unrestrict_inodes(vol: Volume, inos: list[int], owner: str) -> int:
    return vol.unrestrict_inodes([int(i) for i in inos], owner)


def _restriction_list(vol: Volume) -> list[dict]:
    return [dataclasses.asdict(r) for r in vol.restriction_list()]


def _volume_resize(vol: Volume, size: int) -> dict:
    return dataclasses.asdict(vol.volume_resize(size))


def _room_advice(vol: Volume) -> str:
    return vol.room_advice()


# -- LUNs and locks (filerC)

def _lun_create(vol: Volume, path: str, size: int, ostype: str, space_reserve: str = "enabled") -> dict:
    return dataclasses.asdict(vol.lun_create(path, size, ostype, space_reserve))


def _lun_list(vol: Volume) -> list[dict]:
    return [dataclasses.asdict(x) for x in vol.lun_list()]


def _lun_show(vol: Volume, path: str) -> dict:
    return dataclasses.asdict(vol.lun_show(path))


def _lun_resize(vol: Volume, path: str, size: int) -> dict:
    return dataclasses.asdict(vol.lun_resize(path, size))


def _lun_modify(vol: Volume, path: str, state: str | None = None, ostype: str | None = None) -> dict:
    return dataclasses.asdict(vol.lun_modify(path, state, ostype))


def _lun_delete(vol: Volume, path: str) -> None:
    vol.lun_delete(path)


def _lun_clone(vol: Volume, snapshot: str, path: str, newpath: str) -> dict:
    return dataclasses.asdict(vol.lun_clone(snapshot, path, newpath))


def _lun_split(vol: Volume, path: str) -> dict:
    return dataclasses.asdict(vol.lun_split(path))


def _lock_add(vol: Volume, path: str, type: str, owner: str, start: int = 0, length: int = 0,
              share: str = "deny-none") -> dict:
    return dataclasses.asdict(vol.lock_add(path, type, owner, start, length, share))


def _lock_list(vol: Volume) -> list[dict]:
    return [dataclasses.asdict(x) for x in vol.lock_list()]


def _lock_break(vol: Volume, path: str | None = None, owner: str | None = None, lock_id: int | None = None) -> int:
    return vol.lock_break(path, owner, lock_id)


def _dosnames_set(vol: Volume, directory: str, names: dict[str, str]) -> int:
    return vol.dosnames_set(directory, {os.fsencode(k): os.fsencode(v) for k, v in names.items()})


def _lun_adopt(vol: Volume, path: str, record: str) -> dict:
    return dataclasses.asdict(vol.lun_adopt(path, record))


def _lun_release(vol: Volume, path: str) -> None:
    vol.lun_release(path)


def _qtree_adopt(vol: Volume, name: str, qid: int, security_style: str, oplocks: str) -> dict:
    return dataclasses.asdict(vol.qtree_adopt(name, qid, security_style, oplocks))


def _junction_adopt(vol: Volume, path: str, uuid: str, name: str, volume_path: str) -> dict:
    return dataclasses.asdict(vol.junction_adopt(path, uuid, name, volume_path))


FILER_COMMANDS: dict[str, Callable[..., Any]] = {
    "dosnames_set": _dosnames_set, "junction_adopt": _junction_adopt, "lun_adopt": _lun_adopt, "lun_release": _lun_release, "qtree_adopt": _qtree_adopt,
    "lun_create": _lun_create, "lun_list": _lun_list, "lun_show": _lun_show, "lun_resize": _lun_resize,
    "lun_modify": _lun_modify, "lun_delete": _lun_delete, "lun_clone": _lun_clone, "lun_split": _lun_split,
    "lock_add": _lock_add, "lock_list": _lock_list, "lock_break": _lock_break,
    "volume_resize": _volume_resize, "room_advice": _room_advice,
    "volume_identity": _volume_identity, "volume_modify": _volume_modify, "volume_move": _volume_move,
    "volume_relocate": _volume_relocate,
    "qtree_create": _qtree_create, "qtree_list": _qtree_list, "qtree_show": _qtree_show,
    "qtree_modify": _qtree_modify, "qtree_delete": _qtree_delete,
    "junction_create": _junction_create, "junction_list": _junction_list, "junction_delete": _junction_delete,
    "restrict": _restrict, "unrestrict": _unrestrict, "unrestrict_inodes": _unrestrict_inodes,
    "restriction_list": _restriction_list,
    "availability": _availability, "check_sessions": _check_sessions,
}
#: The op by which a connection's process names itself a restriction owner (see
#: :mod:`snapfs.restrictions`): answered by the daemon itself, which knows the peer.
ACT_AS = "act_as"

# ---------------------------------------------------------------------- (end of the filer's objects)
# ---------------------------------------------------------------------- named streams (issue 12)

def resolve(vol: Volume, path: str) -> tuple[int, int | None]:
    """(inode, snapshot id or None) of ``path``, relative to the volume's root; a path
    under ``.snapshot/NAME/`` is in that snapshot.  ENOENT/ENOTDIR as a lookup gives."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    snap = None
    if parts[:1] == [os.fsdecode(SNAPDIR_NAME)] and len(parts) >= 2:
        snap = next((s.id for s in vol.snapshot_list() if s.name == parts[1]), None)
        if snap is None:
            raise err(errno.ENOENT, f"no snapshot {parts[1]!r}")
        parts = parts[2:]
    ino = ROOT_INO
    for p in parts:
        ino = vol.lookup(ino, p, snap).ino
    return ino, snap


def _stream_list(vol: Volume, path: str) -> list[dict]:
    ino, snap = resolve(vol, path)
    return [{"name": os.fsdecode(n), "size": size, "in_xattr": x} for n, size, x in vol.stream_list(ino, snap)]


def _stream_read(vol: Volume, path: str, name: str, offset: int = 0, size: int = 1 << 20) -> str:
    import base64  # here: no other command needs it (a client's start-up does not pay for it)

    check_int(offset, "stream offset")
    check_int(size, "stream read size")
    ino, snap = resolve(vol, path)
    return base64.b64encode(vol.stream_read(ino, name, snap, offset, size)).decode()


def _stream_write(vol: Volume, path: str, name: str, source: str | BinaryIO, offset: int = 0,
                  size: int | None = None) -> dict:
    """Stream ``name`` of ``path`` gets the bytes of regular file ``source`` (``size`` bytes
    from ``offset``; to its end without ``size``), read a chunk at a time; or, in the daemon,
    of the copy :func:`spool_source` made of them beforehand (a file object: all of it)."""
    ino, snap = resolve(vol, path)
    if snap is not None:
        raise err(errno.EROFS, f"{path} is in a snapshot: read-only")
    if not isinstance(source, str):
        source.seek(0)
        in_xattr = vol.stream_write(ino, name, source)
        return {"in_xattr": in_xattr, "size": source.tell()}
    with _SourcePart(source, offset, size) as part:
        in_xattr = vol.stream_write(ino, name, part)
        got = part.done()
    return {"in_xattr": in_xattr, "size": got}


def spool_source(source: str, offset: int = 0, size: int | None = None, folder: str | None = None) -> BinaryIO:
    """A private copy of what :func:`_stream_write` takes from ``source`` (see there), made
    in ``folder`` (held in memory while it is small): the daemon makes it on a worker thread,
    so reading the file (on a slow file system, or on the mount itself) holds up no other
    request."""
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY, dir=folder)
    try:
        with _SourcePart(source, offset, size) as part:
            for chunk in iter(lambda: part.read(1 << 20), b""):
                spool.write(chunk)
            part.done()
    except BaseException:
        spool.close()
        raise
    return spool


#: A stream source copied by the daemon stays in memory up to this size (then in a file).
_SPOOL_IN_MEMORY = 1 << 20


class _SourcePart:
    """``size`` bytes (to the end: None) from ``offset`` of regular file ``source``, as a file
    to read; :meth:`done` checks that they were all there.  Anything but a regular file (a
    FIFO, a device, a directory) is refused without being read: it is opened without waiting
    for a writer.  Failures are SnapfsError, one line."""

    def __init__(self, source: str, offset: int, size: int | None) -> None:
        check_int(offset, "stream source offset")
        if size is not None:
            check_int(size, "stream source size")
        self.source, self.offset, self.size = source, offset, size
        self._f: BinaryIO | None = None
        self._left = size

    def __enter__(self) -> _SourcePart:
        try:
            fd = os.open(self.source, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError as e:
            raise self._error(e) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise err(errno.EINVAL, f"{self.source} is not a regular file: a stream takes a file's bytes")
            if self.size is not None and self.offset + self.size > st.st_size:
                raise err(errno.EIO, f"{self.source}: {st.st_size} bytes, not {self.size} at {self.offset}")
            os.set_blocking(fd, True)
            os.lseek(fd, self.offset, os.SEEK_SET)
        except BaseException as e:
            os.close(fd)
            if isinstance(e, OSError):
                raise self._error(e) from None
            raise
        self._f = os.fdopen(fd, "rb")
        return self

    def __exit__(self, *exc) -> None:
        if self._f is not None:
            self._f.close()

    def _error(self, e: OSError) -> SnapfsError:
        return err(e.errno or errno.EIO, f"{self.source}: {e.strerror or e}")

    def read(self, n: int) -> bytes:
        assert self._f is not None
        try:
            got = self._f.read(n if self._left is None else min(n, self._left))
        except OSError as e:
            raise self._error(e) from None
        if self._left is not None:
            self._left -= len(got)
        return got

    def done(self) -> int:
        """How many bytes were read; EIO when the file ended before ``size`` of them."""
        assert self._f is not None
        got = self._f.tell() - self.offset
        if self.size is not None and got != self.size:
            raise err(errno.EIO, f"{self.source}: {got} bytes at {self.offset}, not {self.size}")
        return got


def _stream_delete(vol: Volume, path: str, name: str) -> None:
    ino, snap = resolve(vol, path)
    if snap is not None:
        raise err(errno.EROFS, f"{path} is in a snapshot: read-only")
    vol.stream_delete(ino, name)


STREAM_COMMANDS: dict[str, Callable[..., Any]] = {
    "stream_list": _stream_list, "stream_read": _stream_read,
    "stream_write": _stream_write, "stream_delete": _stream_delete,
}

#: op name -> function(vol, **args) returning something JSON can carry
COMMANDS: dict[str, Callable[..., Any]] = {
    "info": _info,
    "snapshot_create": _snapshot_create,
    "snapshot_list": _snapshot_list,
    "snapshot_delete": _snapshot_delete,
    "snapshot_rename": _snapshot_rename,
    "snapshot_hold": _snapshot_hold,
    "snapshot_release": _snapshot_release,
    **FILER_COMMANDS,
    **STREAM_COMMANDS,
}


def execute(vol: Volume, op: str, args: dict) -> Any:
    """Run one command on ``vol``; SnapfsError for unknown ops or bad arguments."""
    fn = COMMANDS.get(op)
    if fn is None:
        raise err(errno.EINVAL, f"unknown control request {op!r}")
    try:
        return fn(vol, **args)
    except TypeError as e:
        raise err(errno.EINVAL, f"bad arguments for {op}: {e}") from None


def gone_names(op: str, args: dict) -> list[str]:
    """Snapshot names a successful ``op`` removed (the kernel must forget their entries)."""
    if op == "snapshot_delete":
        return [args["name"]]
    if op == "snapshot_rename":
        return [args["old"]]
    return []


def socket_path(voldir: str | os.PathLike) -> Path:
    return Path(voldir) / SOCKET_NAME


@contextmanager
def _short_path(path: Path) -> Iterator[str]:
    """A name for ``path`` that fits sun_path (through /proc/self/fd when it is long)."""
    if len(os.fsencode(str(path))) <= _SUN_PATH_MAX:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def listen(voldir: str | os.PathLike) -> socket.socket:
    """Bind the control socket of a volume this process holds open (a stale one is replaced)."""
    path = socket_path(voldir)
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with _short_path(path) as name:
        s.bind(name)
    os.chmod(path, 0o600)
    s.listen(16)
    return s


def connect(voldir: str | os.PathLike, timeout: float = 60.0) -> socket.socket | None:
    """A connection to the volume's daemon, or None when nobody serves the socket."""
    path = socket_path(voldir)
    if not path.exists():
        return None
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        with _short_path(path) as name:
            s.connect(name)
    except (ConnectionRefusedError, FileNotFoundError):
        s.close()
        return None
    return s


def encode_error(e: SnapfsError) -> dict:
    return {"ok": False, "errno": e.errno, "error": e.message}


def internal_error(op: object, e: BaseException) -> dict:
    """The answer to request ``op`` that failed with ``e``, an exception no command expects
    (a bug): logged with its traceback (the mount log), answered in one line."""
    _log.error("control request %r failed", op, exc_info=e)
    text = " ".join(f"{type(e).__name__}: {e}".split())
    return {"ok": False, "errno": errno.EIO,
            "error": f"internal error in {op}: {text} (the traceback is in the mount log; the mount goes on)"}


#: The op that moves the volume's folder: the daemon then serves the new one (its ``on_moved``).
RELOCATE = "volume_relocate"
#: The op whose source file the daemon copies on a worker thread first (see :func:`spool_source`).
STREAM_WRITE = "stream_write"


async def _spooled(args: dict, folder: str) -> tuple[dict, BinaryIO]:
    """``args`` of a stream_write with the source file's bytes copied (on a worker thread,
    while the daemon serves on) into a private spool in ``folder``; and the spool."""
    import trio

    spool = await trio.to_thread.run_sync(spool_source, args["source"], args.get("offset", 0),
                                          args.get("size"), folder)
    return {k: v for k, v in args.items() if k not in ("offset", "size")} | {"source": spool}, spool


async def serve(listener: socket.socket, vol: Volume, extra: dict,
                on_gone: Callable[[list[str]], None], on_moved: Callable[[], None] = lambda: None) -> None:
    """Answer control requests forever (the daemon cancels this task at unmount);
    ``on_moved`` is called after the volume's folder moved (``vol.path``)."""
    import trio

    sock = trio.socket.from_stdlib_socket(listener)
    async with trio.open_nursery() as nursery:
        while True:
            conn, _ = await sock.accept()
            nursery.start_soon(_handle, conn, vol, extra, on_gone, on_moved)


def _peer_pid(conn) -> int:
    """The pid of the process at the other end of a Unix socket (from the kernel)."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[0]


async def _handle(conn, vol: Volume, extra: dict, on_gone: Callable[[list[str]], None],
                  on_moved: Callable[[], None]) -> None:
    acting: list[int] = []  # the peer's pid once it acts as a restriction owner (filerA)
    with conn:  # closed after the owners are let go: a client that waits for the end sees them gone
        try:
            await _requests(conn, vol, extra, on_gone, on_moved, acting)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (killed, ^C) before its answer: its channel ends, not the daemon
        except Exception:  # anything else ends this channel too, never the daemon
            _log.exception("control channel failed")
        finally:
            for pid in acting:
                vol.owners.unregister(pid)


async def _requests(conn, vol: Volume, extra: dict, on_gone: Callable[[list[str]], None],
                    on_moved: Callable[[], None], acting: list[int]) -> None:
    buf = b""
    while True:
        while b"\n" not in buf:
            chunk = await conn.recv(65536)
            if not chunk:
                return
            buf += chunk
            if len(buf) > MAX_REQUEST:
                return
        line, buf = buf.split(b"\n", 1)
        op: object = None
        spool: BinaryIO | None = None
        try:
            req = json.loads(line)
            op, args = req["op"], req.get("args") or {}
            if op == ACT_AS:  # filerA: this connection's process acts as a restriction owner
                pid = _peer_pid(conn)
                # inherit: keep the owner an ancestor acts as (restrict exec ... -- pyrestore)
                owner = (args.get("inherit") and vol.owners.owner_of(pid)) or args["owner"]
                check_owner(owner)
                acting.append(pid)
                vol.owners.register(pid, owner, bool(args.get("restore")))
                reply = {"ok": True, "result": owner}
            else:
                if op == STREAM_WRITE and isinstance(args.get("source"), str):
                    args, spool = await _spooled(args, str(vol.path))
                vol.commit()  # exact space figures; the command itself is committed below
                if op == RELOCATE:
                    args = {**args, "mountpoint": extra.get("mountpoint")}
                result = execute(vol, op, args)
                if op == "info":
                    result.update(extra)
                if op == RELOCATE:
                    on_moved()
                on_gone(gone_names(op, args))
                reply = {"ok": True, "result": result}
        except SnapfsError as e:
            reply = encode_error(e)
        except (ValueError, KeyError, TypeError) as e:
            reply = {"ok": False, "errno": errno.EINVAL, "error": f"bad control request: {e}"}
        except Exception as e:
            reply = internal_error(op, e)
        if spool is not None:
            spool.close()
        try:
            vol.commit()
            data = (json.dumps(reply) + "\n").encode()
        except Exception as e:  # the commit rolled the request's changes back (see Store.commit)
            data = (json.dumps(internal_error(op, e)) + "\n").encode()
        await _send(conn, data)


async def _send(conn, data: bytes) -> None:
    while data:
        n = await conn.send(data)
        data = data[n:]
