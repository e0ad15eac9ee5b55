"""Whether a process still runs, as the tools that remember pids ask it
(pydump's snapshot holders and contexts, snapfs's vetoes, pyndmpd's pid
file)."""

from __future__ import annotations

import os
from pathlib import Path


def process_alive(pid: int) -> bool:
    """True while process *pid* runs: it exists (``kill(pid, 0)``; a process
    we may not signal exists too) and is no zombie (a child that has ended
    but is not waited for yet has stopped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc to ask: kill said it exists


__all__ = ["process_alive"]
