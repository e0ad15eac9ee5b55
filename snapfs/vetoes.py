"""Vetoes and volume events: what an unmount, an offline, a (simulated)
failover or a volume move does to the dump and restore sessions running on
the volume.

The sessions are read from the session registry
(:mod:`snapdump.session_registry`, the contract with the dump engine, which
snapfs does not import).  A user-initiated event meeting a session on its
volume is vetoed: refused, naming the sessions (pid and kind).  With
``--override-vetoes``, and always with ``--automatic`` (a system-initiated
event), the sessions are aborted instead: each is told why (an
``aborted-PID`` note), sent SIGTERM (and SIGCONT, should it be stopped), and
waited for; its restartable context then says it is not restartable.  A
session of ``pyndmpd``, which serves other sessions in the same process, is
never signalled: it gets an ``aborted-PID.SLOT`` note of its own, the server
halts that DATA operation alone (NDMP's DATA_HALT_ABORTED, a LOG_MESSAGE
naming the event) and lets its slot go, which the event waits for.

The failover events are simulated on the one machine there is: the volume
goes briefly unavailable (I/O refused, sessions refused) for
``$SNAPFS_EVENT_SECONDS`` (default 0.5 s), is served by the other node or
site, and comes back online.  A session that starts meanwhile fails; the
event goes on (it aborts any that slipped in).

A single-file restore (``snapfs restore-file``, SnapMirror's) restricts the
file to :data:`SINGLE_FILE_OWNER` while it copies it back from a snapshot
(for ``$SNAPFS_EVENT_SECONDS`` at least): a dump meanwhile skips it (and the
next one takes it), and a restore session and a single-file restore on one
volume exclude each other (the second is refused).
"""

from __future__ import annotations

import errno
import os
import signal
import time
from collections.abc import Callable

from snapdump.processes import process_alive
from snapdump.session_registry import SessionInfo, mark_aborted, running_sessions, sessions_on

from .errors import SnapfsError, VolumeBusy

#: Seconds a simulated failover event keeps the volume unavailable (and a volume move's transfer lasts).
EVENT_SECONDS_ENV = "SNAPFS_EVENT_SECONDS"
DEFAULT_EVENT_SECONDS = 0.5
#: The failover events: flag -> (what it is called, who serves the volume afterwards).
FAILOVER_EVENTS: dict[str, tuple[str, str]] = {
    "takeover": ("storage failover takeover", "the partner node"),
    "giveback": ("storage failover giveback", "the home node"),
    "relocate": ("aggregate relocation", "the partner node"),
    "switchover": ("MetroCluster switchover", "the disaster-recovery site"),
    "switchback": ("MetroCluster switchback", "the home site"),
}
#: The restriction owner of a single-file restore (``snapfs restore-file``).
SINGLE_FILE_OWNER = "single-file-restore"
#: Seconds an aborted session is given to stop after SIGTERM before SIGKILL.
ABORT_WAIT = 30.0


def event_seconds() -> float:
    text = os.environ.get(EVENT_SECONDS_ENV, "").strip()
    if not text:
        return DEFAULT_EVENT_SECONDS
    try:
        return max(0.0, float(text))
    except ValueError:
        raise SnapfsError(f"{EVENT_SECONDS_ENV}={text}: give seconds", errno.EINVAL) from None


def named(sessions: list[SessionInfo]) -> str:
    """``pid 123 (dump), pid 456 (restore)``; a session of ``pyndmpd``: ``pid 789 slot 2 (NDMP dump)``."""
    return ", ".join(f"pid {s.pid} slot {s.slot} (NDMP {s.kind})" if s.shared else f"pid {s.pid} ({s.kind})"
                     for s in sessions)


def veto(voldir: str | os.PathLike[str], name: str, event: str, *, override: bool, automatic: bool,
         say: Callable[[str], None]) -> None:
    """Before ``event`` on volume ``name`` (folder ``voldir``): refuse it when
    sessions run there, or abort them (``override``, ``automatic``)."""
    try:
        sessions = sessions_on(voldir)
    except OSError as exc:
        raise SnapfsError(f"cannot read the dump and restore sessions: {exc.strerror or exc}", errno.EIO) from None
    if not sessions:
        return
    if not (override or automatic):
        raise VolumeBusy(f"{event} of volume {name} vetoed: dump and restore sessions run on it: {named(sessions)}"
                         " (--override-vetoes aborts them)")
    why = "--automatic" if automatic else "--override-vetoes"
    own = [s for s in sessions if not s.shared]
    shared = [s for s in sessions if s.shared]
    if own:
        abort(own, f"{event} of volume {name} ({why})")
    if shared:  # their server serves others: each session is told alone, the server is not signalled
        abort_shared(shared, f"{event} of volume {name} ({why})")
    say(f"{event}: aborted {named(sessions)} on volume {name} (not restartable)")


def abort(sessions: list[SessionInfo], reason: str) -> None:
    """Abort each session: its note, SIGTERM (and SIGCONT), then wait for it to stop (SIGKILL at last)."""
    for s in sessions:
        if not process_alive(s.pid, s.pid_start):
            continue  # it ended meanwhile (its pid may be another process's already)
        try:
            mark_aborted(s.pid, reason)
        except OSError:
            pass  # it is aborted all the same; only its context will not say why
        for sig in (signal.SIGTERM, signal.SIGCONT):
            try:
                os.kill(s.pid, sig)
            except ProcessLookupError:
                break
    pids = {(s.pid, s.pid_start) for s in sessions}
    if not _wait_stopped(pids, ABORT_WAIT):
        for pid, start in pids:
            if not process_alive(pid, start):
                continue
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _wait_stopped(pids, 5.0)


def abort_shared(sessions: list[SessionInfo], reason: str) -> None:
    """Abort sessions of a shared process (``pyndmpd``) one by one: each
    gets its own note (by pid and slot), which the process watches for; it
    halts that session alone and gives its slot back, which is waited for.
    The process is never signalled: it serves other sessions."""
    for s in sessions:
        try:
            mark_aborted(s.pid, reason, s.slot)
        except OSError as exc:
            raise SnapfsError(f"cannot tell the NDMP session pid {s.pid} (slot {s.slot}) to abort: "
                              f"{exc.strerror or exc}", errno.EIO) from None
    deadline = time.monotonic() + ABORT_WAIT
    while True:
        try:
            running = {(r.pid, r.slot, r.started) for r in running_sessions()}
        except OSError:
            running = set()
        left = [s for s in sessions if (s.pid, s.slot, s.started) in running and process_alive(s.pid, s.pid_start)]
        if not left:
            return
        if time.monotonic() > deadline:
            raise VolumeBusy(f"the NDMP sessions {named(left)} did not stop within {ABORT_WAIT:.0f} s of being "
                             "told to abort")
        time.sleep(0.02)


def _wait_stopped(pids: set[tuple[int, int | None]], timeout: float) -> bool:
    """Wait until none of the (pid, start time) runs any more."""
    deadline = time.monotonic() + timeout
    while True:
        alive = {p for p in pids if process_alive(*p)}
        if not alive:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


