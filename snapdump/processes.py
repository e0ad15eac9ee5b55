"""Whether a process still runs, as the tools that remember pids ask it
(pydump's snapshot holders and contexts, the session slots snapfs's vetoes
wait on, pyndmpd's pid file).

A pid alone can be fooled: once its process ends, the kernel may give the
same number to another one.  Whoever records a pid should record
:func:`process_start` beside it and pass it to :func:`process_alive`, which
then counts a process with that pid but another start time as dead."""

from __future__ import annotations

import os
from pathlib import Path

#: /proc/PID/stat's fields after the command's closing parenthesis start at field 3 (state).
_STATE_FIELD = 3
#: Field 22: starttime, the clock ticks after boot at which the process started.
_START_FIELD = 22


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields from the state on (field 3), or None when unreadable."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    tail = text.rsplit(")", 1)
    return tail[1].split() if len(tail) == 2 else None


def process_start(pid: int) -> int | None:
    """When process *pid* started (/proc/PID/stat field 22, clock ticks after
    boot), or None when it cannot be read (no such process, no /proc)."""
    fields = _stat_fields(pid)
    try:
        return int(fields[_START_FIELD - _STATE_FIELD]) if fields else None
    except (IndexError, ValueError):
        return None


def process_alive(pid: int, start: int | None = None) -> bool:
    """True while process *pid* runs: it exists (``kill(pid, 0)``; a process
    we may not signal exists too), is no zombie (a child that has ended but is
    not waited for yet has stopped), and, given *start* (what
    :func:`process_start` said of it when it was recorded), started then: a
    process that took the number over later is another one."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass
    fields = _stat_fields(pid)
    if fields is None:
        return True  # no /proc to ask: kill said it exists
    if fields[0] == "Z":
        return False
    if start is not None:
        try:
            return int(fields[_START_FIELD - _STATE_FIELD]) == start
        except (IndexError, ValueError):
            return True
    return True


def started_at(start: int) -> float | None:
    """The wall-clock time (seconds since the epoch, to about a second: the
    boot time is whole seconds) of a :func:`process_start` value, or None
    when /proc/stat gives no boot time."""
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return int(line.split()[1]) + start / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None
    return None


__all__ = ["process_alive", "process_start", "started_at"]
