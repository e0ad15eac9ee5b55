"""Dump and restore sessions: how many may run at once, and the slots that count them.

As on a filer, the dump and restore sessions of one machine -- ``pydump``
runs, ``pyrestore`` runs that read an image, and the NDMP DATA service's
backups and recovers in ``pyndmpd`` -- are counted together against one
limit that follows the memory (the seed's table, ``MemTotal`` of
``/proc/meminfo``): 4 below 16 GiB, 16 below 24 GiB, 32 from 24 GiB.
``SNAPDUMP_MAX_SESSIONS=N`` sets it instead.  One over the limit is refused
at once (no waiting), with the limit and the count in its message.

A session holds a slot: an open file description of ``slot-NN`` in the
``sessions`` folder of the state folder, with an exclusive open-file-
description lock (``F_OFD_SETLK``) on it.  The kernel drops that lock when
its holder ends, however it ends (``kill -9`` too), so a slot cannot leak and
nothing is ever cleaned up: the slot files stay, and a lock on one is the
only truth.  Two sessions of one process (``pyndmpd``) each open their own
description, so they exclude each other as two processes do.  Whether a slot
is held is asked with ``F_OFD_GETLK``, which takes nothing, so looking never
makes a starting session miss a free slot.  The file holds one JSON line
about its holder (kind, pid, path, start time), for whoever lists the
sessions; it is not trusted without the lock.

The state folder is ``/var/lib/snapdump`` (beside Debian's dumpdates file,
``/var/lib/dumpdates``), or ``$SNAPDUMP_STATE_DIR``; a user who may not write
there uses ``~/.local/state/snapdump`` (their own sessions only).  The
folder, the slot files and their notes are a contract with snapfs (its
vetoes ask which sessions run on a volume): :mod:`snapdump.session_registry`
reads them, for both.  A note names the snapfs volume the session runs on (a
dump's source's, a restore's working folder's); a session on a volume that
refuses new ones (offline, in a switchover, after a move's cutover; for a
restore, during a single-file restore) is refused at once with snapfs's reason.
"""

from __future__ import annotations

import errno as _errno
import fcntl
import json
import os
import time
from pathlib import Path

from snapdump.numerals import is_decimal
from snapdump.processes import process_start
from snapdump.session_registry import (  # noqa: F401  (the registry's contract, re-exported)
    DEFAULT_STATE_DIR,
    STATE_DIR_ENV,
    SessionInfo,
    abort_pending,
    abort_reason,
    held as _held,
    lock_request as _lock_request,
    sessions_dir,
    state_dir,
    volume_of,
)
from snapdump.session_registry import running_sessions as _registered

from .errors import SessionError, SessionLimitError

#: Environment variable setting the session limit instead of the memory table.
MAX_SESSIONS_ENV = "SNAPDUMP_MAX_SESSIONS"
#: The seed's table: (MemTotal below this many bytes, sessions); the last row has no bound.
LIMIT_TABLE: tuple[tuple[int | None, int], ...] = ((16 << 30, 4), (24 << 30, 16), (None, 32))
#: The session kinds.
KINDS = ("dump", "restore")

_SLOT = "slot-{:02d}"


def limit_for_memory(mem_total: int) -> int:
    """The session limit for *mem_total* bytes of memory (``MemTotal``), from the seed's table."""
    for below, sessions in LIMIT_TABLE:
        if below is None or mem_total < below:
            return sessions
    raise AssertionError("the table's last row has no bound")


def read_mem_total(meminfo: str | Path = "/proc/meminfo") -> int | None:
    """``MemTotal`` of a meminfo file in bytes (None when it cannot be read)."""
    try:
        text = Path(meminfo).read_bytes().decode("ascii", "replace")  # (a text file would load the ascii codec)
    except OSError:
        return None
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "MemTotal:" and is_decimal(words[1]):
            unit = words[2].lower() if len(words) > 2 else "b"
            return int(words[1]) * (1024 if unit == "kb" else 1)
    return None


def session_limit(meminfo: str | Path = "/proc/meminfo") -> tuple[int, str]:
    """The limit, and where it comes from (for messages): ``SNAPDUMP_MAX_SESSIONS``
    when set, else the memory table (its lowest row when memory cannot be read)."""
    text = os.environ.get(MAX_SESSIONS_ENV, "").strip()
    if text:
        if not is_decimal(text) or int(text) < 1:
            raise SessionError(f"{MAX_SESSIONS_ENV}={text}: give a whole number of sessions, 1 or more")
        return int(text), f"{MAX_SESSIONS_ENV}={int(text)}"
    total = read_mem_total(meminfo)
    if total is None:
        return LIMIT_TABLE[0][1], f"the limit for unknown memory; {MAX_SESSIONS_ENV} changes it"
    gib = total / (1 << 30)
    return limit_for_memory(total), f"the limit for {gib:.1f} GiB of memory; {MAX_SESSIONS_ENV} changes it"


def _note_volume(where: str) -> str:
    """The snapfs volume *where* lies on ("" when none)."""
    try:
        return volume_of(where)
    except OSError:
        return ""


def _check_available(volume: str, kind: str) -> None:
    """Refuse a session on a volume that refuses new ones (offline, in a
    switchover, after a volume move's cutover): asked of snapfs, when it is here."""
    if not volume:
        return
    try:
        from snapfs.client import open_volume
        from snapfs.errors import SnapfsError
    except ImportError:
        return
    try:
        with open_volume(volume) as c:
            c.check_sessions_allowed(kind)
    except SnapfsError as exc:
        if exc.errno == _errno.EINVAL:  # a daemon mounted by an older snapfs, which has no such check
            return
        raise SessionError(exc.message) from None
    except OSError:
        return


class Session:
    """One held slot; :meth:`release` (or leaving the ``with``) gives it back."""

    def __init__(self, kind: str, slot: int, fd: int, shared: bool = False) -> None:
        self.kind = kind
        self.slot = slot
        self.shared = shared
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Give the slot back (closing the description drops the lock), and
        take away an abort note a volume event left for it; again is harmless."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
            abort_reason(os.getpid(), self.slot if self.shared else None)

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


def _open_slot(folder: Path, slot: int) -> int:
    try:
        return os.open(folder / _SLOT.format(slot), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise _state_error(folder, exc) from None


def _state_error(folder: Path, exc: OSError) -> SessionError:
    return SessionError(f"cannot use the session folder {folder}: {exc.strerror or exc} "
                        f"(set {STATE_DIR_ENV} to a folder that can be written)")


def session_slot(kind: str, path: str = "", *, on: str | None = None, shared: bool = False) -> Session:
    """Take a free slot for a *kind* session (``dump`` or ``restore``) on
    *path*, or raise :class:`SessionLimitError` at once when all are held.
    *on*: where the session reads or writes (default: a dump's *path*, a
    restore's working folder), whose snapfs volume the note names; *shared*:
    the process runs other sessions too (``pyndmpd``), so a volume event may
    not abort it by signalling it."""
    if kind not in KINDS:
        raise ValueError(f"session kind {kind!r} is not one of {KINDS}")
    limit, why = session_limit()
    folder = sessions_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _state_error(folder, exc) from None
    for slot in range(limit):
        fd = _open_slot(folder, slot)
        try:
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _lock_request(fcntl.F_WRLCK))
        except OSError as exc:
            os.close(fd)
            if exc.errno in (_errno.EAGAIN, _errno.EACCES):
                continue
            raise _state_error(folder, exc) from None
        volume = _note_volume(on if on is not None else path if kind == "dump" and path else os.getcwd())
        note = json.dumps({"kind": kind, "pid": os.getpid(), "pid_start": process_start(os.getpid()),
                           "path": path, "started": time.time(),
                           "volume": volume, "shared": shared})
        os.ftruncate(fd, 0)
        os.pwrite(fd, (note + "\n").encode("utf-8", "surrogateescape"), 0)
        session = Session(kind, slot, fd, shared)
        abort_reason(os.getpid(), slot if shared else None)  # a stale note of an earlier holder
        try:
            _check_available(volume, kind)
        except SessionError:
            session.release()
            raise
        return session
    running = max(len(running_sessions()), limit)  # all ours were held; more when the limit was lowered
    raise SessionLimitError(f"too many dump and restore sessions: {running} of {limit} running ({why}); "
                            "try again later", running=running, limit=limit)


def running_sessions() -> list[SessionInfo]:
    """The sessions holding a slot now, by slot (a holder that has not yet
    written its note shows as kind ``?``)."""
    try:
        return _registered()
    except OSError as exc:
        raise _state_error(sessions_dir(), exc) from None
