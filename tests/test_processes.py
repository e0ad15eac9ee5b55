"""A recorded pid is checked with its process's start time (snapdump.processes,
issue 14): a record whose pid now names another process counts as dead, for a
restartable context, a session slot and the vetoes that wait on sessions."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from dumptool.contexts import Context, State, Status
from dumptool.sessions import running_sessions, session_slot
from snapdump.processes import process_alive, process_start
from snapdump.session_registry import SessionInfo
from snapfs import vetoes


@pytest.fixture
def sleeper():
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield p
    if p.poll() is None:
        p.kill()
    p.wait()


def test_a_pid_that_runs_with_another_start_time_counts_as_dead(sleeper: subprocess.Popen) -> None:
    start = process_start(sleeper.pid)
    assert isinstance(start, int) and start > 0
    assert process_alive(sleeper.pid) and process_alive(sleeper.pid, start)
    assert not process_alive(sleeper.pid, start + 1)  # the number reused by another process
    sleeper.kill()
    time.sleep(0.2)
    assert not process_alive(sleeper.pid, start)  # a zombie, not waited for yet
    sleeper.wait()
    assert not process_alive(sleeper.pid, start) and process_start(sleeper.pid) is None


def _context(pid: int, pid_start: int | None) -> Context:
    return Context(id="c1", vserver="vs", volume_name="vol", mount="/mnt", rel="", dump_path="/mnt",
                   snapshot="snap", auto_created=True, level=0, date=1, base_date=0, options={},
                   file_history=True, fingerprint="f", pid=pid, pid_start=pid_start,
                   status=Status.RUNNING, state=State.CHECKPOINTED)


def test_a_context_whose_pid_was_reused_is_not_busy_but_restartable(sleeper: subprocess.Popen) -> None:
    start = process_start(sleeper.pid)
    assert _context(sleeper.pid, start).busy
    reused = _context(sleeper.pid, start + 7)
    assert not reused.busy
    assert (reused.shown_status, reused.shown_state) == (Status.ABORTED, State.RESTARTABLE)
    # the context's JSON keeps the start time
    assert Context.from_json(reused.to_json()).pid_start == start + 7


def test_a_session_slot_notes_the_start_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNAPDUMP_STATE_DIR", str(tmp_path / "state"))
    import os
    with session_slot("dump", "/somewhere"):
        (s,) = running_sessions()
        assert (s.pid, s.pid_start) == (os.getpid(), process_start(os.getpid()))


def test_the_vetoes_do_not_signal_a_process_that_took_a_sessions_pid(sleeper: subprocess.Popen,
                                                                     tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNAPDUMP_STATE_DIR", str(tmp_path / "state"))
    other = SessionInfo(0, "dump", sleeper.pid, "/x", 0.0, "/vol", False, process_start(sleeper.pid) + 3)
    t0 = time.monotonic()
    vetoes.abort([other], "test")
    assert time.monotonic() - t0 < 5 and sleeper.poll() is None
    assert not (tmp_path / "state" / "sessions" / f"aborted-{sleeper.pid}").exists()


def test_a_context_taken_for_a_restart_is_busy_with_this_process_start_time(sleeper: subprocess.Popen) -> None:
    # left by another process (its pid and start time): a restart here takes it over, pydump's
    # and NDMP's alike (a stale start time beside this pid made a running restart look dead)
    ctx = _context(sleeper.pid, process_start(sleeper.pid))
    ctx.status = Status.ABORTED
    ctx.take_for_restart()
    assert ctx.busy and ctx.restarts == 1 and ctx.state == State.CHECKPOINTED
    import os
    assert (ctx.pid, ctx.pid_start) == (os.getpid(), process_start(os.getpid()))
