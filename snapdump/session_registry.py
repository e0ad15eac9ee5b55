"""The session registry: which dump and restore sessions run, on which volume.

A contract between the dump engine, which registers its sessions
(:mod:`dumptool.sessions` takes the slots), and snapfs, whose unmount,
offline, failover and volume move ask which sessions run on a volume (its
vetoes, :mod:`snapfs.vetoes`).  Neither imports the other: both read this.

- The state folder: ``$SNAPDUMP_STATE_DIR``, else ``/var/lib/snapdump`` (for
  root or whoever may write there), else ``$XDG_STATE_HOME/snapdump``
  (``~/.local/state/snapdump``).
- ``STATE/sessions/slot-NN``: a running session holds an exclusive
  open-file-description lock (``F_OFD_SETLK``) on its slot file; the file
  holds one JSON line ``{"kind", "pid", "pid_start", "path", "started",
  "volume", "shared"}`` (``pid_start``: the process's start time,
  :func:`snapdump.processes.process_start`, so a reused pid is not taken for it) (``volume``: the snapfs volume folder the session reads or
  writes, "" when none; ``shared``: its process runs other sessions too,
  ``pyndmpd``, and may not be signalled for one of them).  A note without its lock is stale and ignored.
- ``STATE/sessions/aborted-PID``: written by whoever aborts session PID
  for a volume event (``--override-vetoes``, ``--automatic``) before it
  sends SIGTERM: one line, the reason.  The session reads it as it stops, so
  its restartable context says it is not restartable.
- ``STATE/sessions/aborted-PID.SLOT``: the same for one session of a shared
  process (``pyndmpd``), which is never signalled: the process watches for
  the note of each session it runs, aborts only that one and gives its slot
  back; the aborter waits for the slot to be let go.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import struct
from pathlib import Path

from .numerals import is_decimal
from .snapfs_names import VOLUME_XATTR

#: Environment variable naming the state folder instead of :data:`DEFAULT_STATE_DIR`.
STATE_DIR_ENV = "SNAPDUMP_STATE_DIR"
#: The state folder: beside Debian's dumpdates file (``/var/lib/dumpdates``).
DEFAULT_STATE_DIR = Path("/var/lib/snapdump")
SLOT_PREFIX = "slot-"
ABORTED_PREFIX = "aborted-"

# struct flock (Linux, 64-bit off_t): l_type, l_whence, l_start, l_len, l_pid, padded.
FLOCK_FORMAT = "@hhqqi4x"


def state_dir() -> Path:
    """The state folder (see the module's text): a user who may not write the
    machine's folder counts their own sessions only."""
    named = os.environ.get(STATE_DIR_ENV)
    if named:
        return Path(named)
    if os.geteuid() == 0 or _writable(DEFAULT_STATE_DIR):
        return DEFAULT_STATE_DIR
    home = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(home) / "snapdump"


def _writable(folder: Path) -> bool:
    """Whether *folder*'s sessions folder (or the nearest one that exists above it) may be written."""
    probe = folder / "sessions"
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return os.access(probe, os.W_OK | os.X_OK) and (not (probe / "slot-00").exists()
                                                     or os.access(probe / "slot-00", os.W_OK))


def sessions_dir() -> Path:
    """The folder of the slot files."""
    return state_dir() / "sessions"


@dataclasses.dataclass(frozen=True)
class SessionInfo:
    """A running session, as its slot file tells."""

    slot: int
    kind: str
    pid: int
    path: str
    started: float
    volume: str = ""
    shared: bool = False
    pid_start: int | None = None


def lock_request(kind: int) -> bytes:
    """A ``struct flock`` over the whole file."""
    return struct.pack(FLOCK_FORMAT, kind, os.SEEK_SET, 0, 0, 0)


def held(fd: int) -> bool:
    """Does another open file description hold the lock of *fd*'s file?"""
    answer = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, lock_request(fcntl.F_WRLCK))
    return struct.unpack(FLOCK_FORMAT, answer)[0] != fcntl.F_UNLCK


def running_sessions() -> list[SessionInfo]:
    """The sessions holding a slot now, by slot (a holder that has not yet
    written its note shows as kind ``?``); OSError when the folder cannot be read."""
    folder = sessions_dir()
    found: list[SessionInfo] = []
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return found
    for name in names:
        number = name[len(SLOT_PREFIX):]
        if not (name.startswith(SLOT_PREFIX) and is_decimal(number)):
            continue
        try:
            fd = os.open(folder / name, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if not held(fd):
                continue
            raw = os.pread(fd, 4096, 0)
        finally:
            os.close(fd)
        try:
            note = json.loads(raw.decode("utf-8", "surrogateescape"))
            found.append(SessionInfo(int(number), str(note["kind"]), int(note["pid"]), str(note["path"]),
                                     float(note["started"]), str(note.get("volume", "")),
                                     bool(note.get("shared", False)),
                                     None if note.get("pid_start") is None else int(note["pid_start"])))
        except (ValueError, KeyError, TypeError):
            found.append(SessionInfo(int(number), "?", 0, "", 0.0))
    return found


def sessions_on(voldir: str | os.PathLike[str]) -> list[SessionInfo]:
    """The running sessions on the volume in folder *voldir*."""
    want = os.path.realpath(voldir)
    return [s for s in running_sessions() if s.volume and os.path.realpath(s.volume) == want]


def volume_of(path: str | os.PathLike[str]) -> str:
    """The snapfs volume folder *path* lies on ("" when none): the root of
    its mount answers :data:`VOLUME_XATTR`."""
    p = Path(os.path.abspath(path))
    try:
        dev = os.stat(p).st_dev
    except OSError:
        return ""
    while True:
        try:
            return os.fsdecode(os.getxattr(p, VOLUME_XATTR))
        except OSError:
            pass
        parent = p.parent
        try:
            if parent == p or os.stat(parent).st_dev != dev:
                return ""
        except OSError:
            return ""
        p = parent


def _abort_note(pid: int, slot: int | None) -> Path:
    return sessions_dir() / (f"{ABORTED_PREFIX}{pid}" + ("" if slot is None else f".{slot}"))


def mark_aborted(pid: int, reason: str, slot: int | None = None) -> None:
    """Tell session *pid* it is being aborted, and why (before its SIGTERM);
    with *slot*: the one session of a shared process that holds that slot."""
    folder = sessions_dir()
    folder.mkdir(parents=True, exist_ok=True)
    _abort_note(pid, slot).write_text(reason + "\n", encoding="utf-8")


def abort_pending(pid: int, slot: int) -> bool:
    """Whether the shared session of *pid* in *slot* has an abort note waiting (the note stays)."""
    return _abort_note(pid, slot).exists()


def abort_reason(pid: int, slot: int | None = None) -> str | None:
    """Why session *pid* (*slot*: of a shared process) was aborted for a
    volume event (None: it was not); the note is taken away."""
    path = _abort_note(pid, slot)
    try:
        reason = path.read_text(encoding="utf-8").strip()
        path.unlink()
    except OSError:
        return None
    return reason
