"""The dump and restore session limit (dumptool.sessions): the memory table,
SNAPDUMP_MAX_SESSIONS, 40 real pydump processes against a limit of 4, slots
given back by kill -9, and which pydump/pyrestore runs take a slot."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import console_script
from dumptool.errors import SessionError, SessionLimitError
from dumptool.sessions import (
    LIMIT_TABLE,
    limit_for_memory,
    read_mem_total,
    running_sessions,
    session_limit,
    session_slot,
)

GIB = 1 << 30
REFUSED = "too many dump and restore sessions: 4 of 4 running (SNAPDUMP_MAX_SESSIONS=4); try again later"


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state folder of the test's own (for this process and the ones it starts)."""
    folder = tmp_path / "state"
    monkeypatch.setenv("SNAPDUMP_STATE_DIR", str(folder))
    monkeypatch.delenv("SNAPDUMP_MAX_SESSIONS", raising=False)
    monkeypatch.delenv("TAPE", raising=False)
    return folder


def _meminfo(tmp_path: Path, kib: int) -> Path:
    path = tmp_path / "meminfo"
    path.write_text(f"MemTotal:       {kib} kB\nMemFree:         1234 kB\nMemAvailable:    5678 kB\n")
    return path


def test_the_limit_follows_the_memory_table_and_the_override(tmp_path: Path, state: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    assert LIMIT_TABLE == ((16 * GIB, 4), (24 * GIB, 16), (None, 32))
    for total, sessions in ((512 << 20, 4), (16 * GIB - 1, 4), (16 * GIB, 16), (24 * GIB - 1, 16),
                            (24 * GIB, 32), (1 << 42, 32)):
        assert limit_for_memory(total) == sessions, total
    # MemTotal is in kB; a 16 GiB machine shows a little less than 16 GiB
    assert read_mem_total(_meminfo(tmp_path, 24683772)) == 24683772 * 1024
    assert session_limit(_meminfo(tmp_path, 16 * 1024 * 1024 - 200_000))[0] == 4
    assert session_limit(_meminfo(tmp_path, 24683772)) == (
        16, "the limit for 23.5 GiB of memory; SNAPDUMP_MAX_SESSIONS changes it")
    assert session_limit(_meminfo(tmp_path, 64 * 1024 * 1024))[0] == 32
    assert session_limit(tmp_path / "no-meminfo")[0] == 4  # unknown memory: the lowest row
    monkeypatch.setenv("SNAPDUMP_MAX_SESSIONS", "2")
    assert session_limit(_meminfo(tmp_path, 64 * 1024 * 1024)) == (2, "SNAPDUMP_MAX_SESSIONS=2")
    for bad in ("0", "-1", "many", "2.5"):
        monkeypatch.setenv("SNAPDUMP_MAX_SESSIONS", bad)
        with pytest.raises(SessionError, match=f"SNAPDUMP_MAX_SESSIONS={bad}: give a whole number"):
            session_limit()


def test_slots_are_counted_together_and_given_back(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNAPDUMP_MAX_SESSIONS", "2")
    with session_slot("dump", "/src") as dump:
        restore = session_slot("restore", "/dest")
        with pytest.raises(SessionLimitError) as refused:
            session_slot("dump")
        assert (refused.value.running, refused.value.limit) == (2, 2)
        assert [(s.slot, s.kind, s.pid, s.path) for s in running_sessions()] == [
            (0, "dump", os.getpid(), "/src"), (1, "restore", os.getpid(), "/dest")]
        restore.release()
        restore.release()  # again: harmless
        assert [s.kind for s in running_sessions()] == ["dump"]
        with session_slot("restore") as again:
            assert again.slot == 1
        monkeypatch.setenv("SNAPDUMP_MAX_SESSIONS", "1")  # slot 0 is the dump's
        with pytest.raises(SessionLimitError, match="sessions: 1 of 1 running"):
            session_slot("restore")
    assert dump.held is False
    assert running_sessions() == []
    assert sorted(p.name for p in (state / "sessions").iterdir()) == ["slot-00", "slot-01"]  # never removed


def test_a_lowered_limit_counts_every_running_session(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNAPDUMP_MAX_SESSIONS", "3")
    held = [session_slot("dump") for _ in range(3)]
    monkeypatch.setenv("SNAPDUMP_MAX_SESSIONS", "1")
    with pytest.raises(SessionLimitError, match=r"sessions: 3 of 1 running \(SNAPDUMP_MAX_SESSIONS=1\)"):
        session_slot("restore")
    for slot in held:
        slot.release()


def test_an_unusable_state_folder_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("SNAPDUMP_STATE_DIR", str(tmp_path / "file" / "state"))
    with pytest.raises(SessionError, match=r"cannot use the session folder .*file/state/sessions: Not a directory "
                                           r"\(set SNAPDUMP_STATE_DIR"):
        session_slot("dump")


def _small_tree(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("a\n")
    (src / "sub" / "b.txt").write_text("b\n" * 100)
    return src


def _start_dump(src: Path, fifo: Path) -> subprocess.Popen:
    """A pydump writing to a fifo nobody reads: it holds its slot until killed."""
    return subprocess.Popen([console_script("pydump"), "-0", "--quiet", "-f", str(fifo), str(src)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_exits(procs: list[subprocess.Popen], count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while sum(p.poll() is not None for p in procs) < count:
        assert time.monotonic() < deadline, f"only {sum(p.poll() is not None for p in procs)} of {count} ended"
        time.sleep(0.05)


def _wait_running(pids: set[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not pids <= {s.pid for s in running_sessions()}:
        assert time.monotonic() < deadline, f"{pids} do not hold slots: {running_sessions()}"
        time.sleep(0.05)


def test_40_concurrent_pydumps_4_run_the_rest_are_refused_and_kill_9_frees_slots(
        tmp_path: Path, state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNAPDUMP_MAX_SESSIONS", "4")
    src = _small_tree(tmp_path)
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    procs = [_start_dump(src, fifo) for _ in range(40)]
    try:
        _wait_exits(procs, 36, timeout=60)  # nobody waits for a slot: the refused end by themselves
        time.sleep(0.3)
        running = [p for p in procs if p.poll() is None]
        refused = [p for p in procs if p.poll() is not None]
        assert len(running) == 4 and len(refused) == 36
        for p in refused:
            err = p.stderr.read()
            assert p.returncode == 1 and err == f"  DUMP: {REFUSED}\n", (p.returncode, err)
        _wait_running({p.pid for p in running}, timeout=30)  # each writes its note just after its lock
        assert sorted(s.pid for s in running_sessions()) == sorted(p.pid for p in running)
        assert {s.kind for s in running_sessions()} == {"dump"}
        assert {s.path for s in running_sessions()} == {str(src)}
        for p in running[:2]:
            p.send_signal(signal.SIGKILL)
            p.wait(10)
        newcomers = [_start_dump(src, fifo) for _ in range(2)]
        procs += newcomers
        _wait_running({p.pid for p in newcomers}, timeout=30)
        assert all(p.poll() is None for p in newcomers + running[2:])
        one_more = subprocess.run([console_script("pydump"), "-0", "--quiet", "-f", str(fifo), str(src)],
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        assert (one_more.returncode, one_more.stderr) == (1, f"  DUMP: {REFUSED}\n")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait(10)
            if p.stderr:
                p.stderr.close()
    assert running_sessions() == []


def _run(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, cwd=cwd)


def test_only_the_real_work_takes_a_slot(tmp_path: Path, state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over the limit: a dump, and a restore that reads an image (-t too), are
    refused with exit 1 and touch nothing; -S, -W, --version, usage errors and
    pyrestore -t -A (the archive file only) run."""
    pydump, pyrestore = console_script("pydump"), console_script("pyrestore")
    src = _small_tree(tmp_path)
    image, toc, dumpdates = tmp_path / "img", tmp_path / "toc", tmp_path / "dumpdates"
    made = _run(pydump, "-0", "-u", "-D", str(dumpdates), "-A", str(toc), "--quiet", "-f", str(image), str(src))
    assert made.returncode == 0, made.stderr
    monkeypatch.setenv("SNAPDUMP_MAX_SESSIONS", "1")
    message = "too many dump and restore sessions: 1 of 1 running (SNAPDUMP_MAX_SESSIONS=1); try again later"
    dest = tmp_path / "dest"
    dest.mkdir()
    kept = tmp_path / "kept"
    kept.write_bytes(b"an earlier image, not to be overwritten")
    with session_slot("dump", str(src)):
        r = _run(pydump, "-0", "--quiet", "-f", str(kept), str(src))
        assert (r.returncode, r.stderr) == (1, f"  DUMP: {message}\n")
        assert kept.read_bytes() == b"an earlier image, not to be overwritten"
        for mode in (["-t"], ["-x"], ["-r"], ["-C"], ["-i"]):
            r = _run(pyrestore, *mode, "-f", str(image), cwd=dest)
            assert (r.returncode, r.stderr) == (1, f"pyrestore: {message}\n"), mode
        assert list(dest.iterdir()) == []
        r = _run(pydump, "-0", "-S", str(src))
        assert r.returncode == 0 and int(r.stdout) > 0, r.stderr
        r = _run(pydump, "-W", "-D", str(dumpdates))
        assert r.returncode == 0 and str(src) in r.stdout, r.stderr
        r = _run(pydump, "--version")
        assert r.returncode == 0 and r.stdout.startswith("pydump "), r.stderr
        r = _run(pydump, "-0", "-b", "2", "-f", str(tmp_path / "x"), str(src))
        assert r.returncode == 1 and "blocking factor" in r.stderr and "sessions" not in r.stderr
        r = _run(pyrestore, "-t", "-A", str(toc))
        assert r.returncode == 0 and "./sub/b.txt" in r.stdout, r.stderr
    r = _run(pyrestore, "-t", "-f", str(image))
    assert r.returncode == 0 and "./sub/b.txt" in r.stdout, r.stderr  # the slot given back: it runs
    monkeypatch.setenv("SNAPDUMP_MAX_SESSIONS", "none")
    r = _run(pydump, "-0", "--quiet", "-f", str(kept), str(src))
    assert (r.returncode, r.stderr) == (
        1, "  DUMP: SNAPDUMP_MAX_SESSIONS=none: give a whole number of sessions, 1 or more\n")
    assert kept.read_bytes() == b"an earlier image, not to be overwritten"


def test_a_user_who_cannot_write_the_machines_folder_counts_their_own(tmp_path, monkeypatch):
    """Not root and /var/lib/snapdump not writable: the user's own folder, not a refusal."""
    from dumptool import sessions
    monkeypatch.delenv(sessions.STATE_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    locked = tmp_path / "machine"
    (locked / "sessions").mkdir(parents=True)
    from snapdump import session_registry
    monkeypatch.setattr(session_registry, "DEFAULT_STATE_DIR", locked)
    monkeypatch.setattr(sessions.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(sessions.os, "access", lambda path, mode: not str(path).startswith(str(locked)))
    assert sessions.state_dir() == tmp_path / "state" / "snapdump"
    with sessions.session_slot("dump", "/x") as slot:
        assert slot.held
        assert (tmp_path / "state" / "snapdump" / "sessions" / "slot-00").exists()
    monkeypatch.setattr(sessions.os, "geteuid", lambda: 0)
    assert sessions.state_dir() == locked
