"""Vetoes and volume events (issue 14): ``snapfs unmount``, ``volume offline`` and the
simulated failovers (``snapfs failover --takeover|--giveback|--relocate|--switchover|
--switchback``) meeting real pydump/pyrestore sessions held busy on the volume (a fifo
nobody reads or writes): refused naming them, or with ``--override-vetoes`` and
``--automatic`` the sessions aborted (their contexts not restartable); a session started
during a switchover fails and the switchover goes on; a volume move lets sessions run
until its cutover and refuses new ones after it until it completes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fuse_fixtures import Mounted, mounted, snapfs  # noqa: F401 (fixtures)

from snapdump.session_registry import running_sessions
from snapfs import client

pytestmark = pytest.mark.fuse

BIN = Path(sys.executable).parent
PYDUMP, PYRESTORE = str(BIN / "pydump"), str(BIN / "pyrestore")


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "state"
    monkeypatch.setenv("SNAPDUMP_STATE_DIR", str(folder))
    monkeypatch.delenv("SNAPDUMP_MAX_SESSIONS", raising=False)
    monkeypatch.setenv("SNAPFS_EVENT_SECONDS", "0.2")
    return folder


def _tree(m: Path) -> None:
    (m / "d").mkdir()
    for i in range(6):
        (m / "d" / f"f{i}").write_bytes(bytes([i]) * (20000 * (i + 1)))


def _wait(what, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _holds_slot(proc: subprocess.Popen, voldir: Path) -> bool:
    return any(s.pid == proc.pid and s.volume == str(voldir.resolve()) for s in running_sessions())


def busy_dump(m: Mounted, fifo: Path, **env: str) -> subprocess.Popen:
    """A pydump of the mount writing to a fifo nobody reads: it holds its slot."""
    if not fifo.exists():
        os.mkfifo(fifo)
    p = subprocess.Popen([PYDUMP, "-0", "--quiet", "-f", str(fifo), str(m.mnt)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=dict(os.environ, **env))
    _wait(lambda: _holds_slot(p, m.voldir))
    return p


def busy_restore(m: Mounted, fifo: Path) -> subprocess.Popen:
    """A pyrestore -t in a folder of the mount, reading a fifo nobody writes: it holds its slot."""
    os.mkfifo(fifo)
    p = subprocess.Popen([PYRESTORE, "-t", "-f", str(fifo)], cwd=m.mnt, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait(lambda: _holds_slot(p, m.voldir))
    return p


def _stopped(*procs: subprocess.Popen) -> None:
    for p in procs:
        p.wait(30)
        assert p.returncode != 0
        p.stderr.close()


def test_unmount_is_vetoed_by_a_dump_and_a_restore_and_the_override_aborts_them(mounted: Mounted, state: Path,
                                                                                tmp_path: Path):
    _tree(mounted.mnt)
    dump, restore = busy_dump(mounted, tmp_path / "out.fifo"), busy_restore(mounted, tmp_path / "in.fifo")
    try:
        r = snapfs("unmount", mounted.mnt, check=False)
        assert r.returncode == 1
        assert r.stderr == (f"snapfs: unmount of volume testvol vetoed: dump and restore sessions run on it: "
                            f"pid {dump.pid} (dump), pid {restore.pid} (restore) (--override-vetoes aborts them)\n")
        assert os.path.ismount(mounted.mnt) and dump.poll() is None and restore.poll() is None
        r = snapfs("unmount", "--override-vetoes", mounted.mnt)
        assert f"unmount: aborted pid {dump.pid} (dump), pid {restore.pid} (restore) on volume testvol" in r.stdout
        _stopped(dump, restore)
        assert not os.path.ismount(mounted.mnt)
        assert running_sessions() == []
    finally:
        for p in (dump, restore):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_offline_refuses_io_and_sessions_until_online(mounted: Mounted, state: Path, tmp_path: Path):
    _tree(mounted.mnt)
    dump = busy_dump(mounted, tmp_path / "out.fifo")
    r = snapfs("volume", "offline", mounted.mnt, check=False)
    assert (r.returncode, r.stderr) == (1, f"snapfs: volume offline of volume testvol vetoed: dump and restore "
                                           f"sessions run on it: pid {dump.pid} (dump) (--override-vetoes aborts them)\n")
    assert (mounted.mnt / "d" / "f1").read_bytes()[:1] == b"\x01"  # still online
    r = snapfs("volume", "offline", "--override-vetoes", mounted.mnt)
    _stopped(dump)
    assert "volume testvol is offline" in r.stdout
    with pytest.raises(OSError) as refused:
        (mounted.mnt / "d" / "f1").read_bytes()
    assert refused.value.errno == 5  # EIO
    for cmd, cwd in (([PYDUMP, "-0", "-f", str(tmp_path / "img"), str(mounted.mnt)], None),
                     ([PYRESTORE, "-t", "-f", str(tmp_path / "img")], mounted.mnt)):
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert r.returncode == 1
        assert r.stderr.endswith("volume testvol is offline ('snapfs volume online' brings it back): "
                                 "no dump or restore session may start on it now\n"), r.stderr
        assert r.stderr.count("\n") == 1
    snapfs("volume", "online", mounted.mnt)
    assert (mounted.mnt / "d" / "f1").read_bytes()[:1] == b"\x01"
    r = subprocess.run([PYDUMP, "-0", "--quiet", "-f", str(tmp_path / "img"), str(mounted.mnt)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("event", ["takeover", "giveback", "relocate", "switchover", "switchback"])
def test_failover_events_are_vetoed_and_automatic_aborts(mounted: Mounted, state: Path, tmp_path: Path, event: str):
    _tree(mounted.mnt)
    dump = busy_dump(mounted, tmp_path / "out.fifo")
    try:
        r = snapfs("failover", mounted.mnt, f"--{event}", check=False)
        assert r.returncode == 1 and "vetoed: dump and restore sessions run on it: " \
            f"pid {dump.pid} (dump) (--override-vetoes aborts them)" in r.stderr, r.stderr
        assert dump.poll() is None
        r = snapfs("failover", mounted.mnt, f"--{event}", "--automatic")
        _stopped(dump)
        assert f"aborted pid {dump.pid} (dump) on volume testvol (not restartable)" in r.stdout
        assert r.stdout.endswith("of volume testvol done: served by " + {
            "takeover": "the partner node", "giveback": "the home node", "relocate": "the partner node",
            "switchover": "the disaster-recovery site", "switchback": "the home site"}[event] + ", online\n")
        with client.open_volume(mounted.mnt) as c:
            assert c.availability() == "online"
    finally:
        if dump.poll() is None:
            dump.kill()
            dump.wait()


def test_a_session_started_during_a_switchover_fails_and_the_switchover_goes_on(mounted: Mounted, state: Path,
                                                                                 tmp_path: Path):
    _tree(mounted.mnt)
    switch = subprocess.Popen([str(BIN / "snapfs"), "failover", str(mounted.mnt), "--switchover"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, SNAPFS_EVENT_SECONDS="3"))

    def switching() -> bool:
        with client.open_volume(mounted.mnt) as c:
            return c.availability() == "switchover"
    _wait(switching)
    r = subprocess.run([PYDUMP, "-0", "-f", str(tmp_path / "img"), str(mounted.mnt)], capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert (r.returncode, r.stderr) == (1, "  DUMP: volume testvol is in a MetroCluster switchover: "
                                           "no dump or restore session may start on it now\n")
    out, err = switch.communicate(timeout=30)
    assert (switch.returncode, err) == (0, "")
    assert out.endswith("MetroCluster switchover of volume testvol done: served by the disaster-recovery site, "
                        "online\n")
    assert running_sessions() == []


def test_a_dump_aborted_by_an_override_leaves_a_context_that_is_not_restartable(mounted: Mounted, state: Path,
                                                                                tmp_path: Path):
    _tree(mounted.mnt)
    image = tmp_path / "img"
    # a dump to a file that stops itself in stage IV after its second file (a checkpoint made)
    p = subprocess.Popen([PYDUMP, "-0", "-b", "10", "-f", str(image), str(mounted.mnt)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, SNAPDUMP_CHECKPOINT_SECONDS="0", SNAPDUMP_TEST_SIGNAL_AT="2:SIGSTOP"))
    try:
        _wait(lambda: Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T")
        assert _holds_slot(p, mounted.voldir)
        r = snapfs("volume", "offline", "--override-vetoes", mounted.mnt)
        assert f"aborted pid {p.pid} (dump)" in r.stdout
        p.wait(30)
        err = p.stderr.read()
        assert p.returncode != 0
        ids = sorted(f.stem for f in (state / "contexts").glob("*.json"))
        assert len(ids) == 1, err
        why = "was aborted by the volume offline of volume testvol (--override-vetoes): it cannot be restarted"
        assert why in err
        snapfs("volume", "online", mounted.mnt)
        shown = subprocess.run([PYDUMP, "--contexts", ids[0]], capture_output=True, text=True, timeout=60)
        assert "Is Context Restartable?: false" in shown.stdout, shown.stdout
        again = subprocess.run([PYDUMP, "--restart", ids[0], "-f", str(tmp_path / "next")], capture_output=True,
                               text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert again.returncode != 0 and why in again.stderr and again.stderr.count("\n") == 1, again.stderr
        gone = subprocess.run([PYDUMP, "--delete-context", ids[0]], capture_output=True, text=True, timeout=60)
        assert gone.returncode == 0, gone.stderr
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stderr.close()


def test_a_volume_move_runs_sessions_until_the_cutover_and_refuses_new_ones_until_it_completes(
        mounted: Mounted, state: Path, tmp_path: Path):
    _tree(mounted.mnt)
    fifo = tmp_path / "out.fifo"
    dump = busy_dump(mounted, fifo)
    move = subprocess.Popen([str(BIN / "snapfs"), "volume", "move", str(mounted.mnt), "--to", "aggr2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, SNAPFS_EVENT_SECONDS="0.5"))

    def past_cutover() -> bool:
        with client.open_volume(mounted.mnt) as c:
            return c.availability() == "move-cutover"
    try:
        _wait(past_cutover)
        assert dump.poll() is None  # the running dump goes on
        r = subprocess.run([PYDUMP, "-0", "-f", str(tmp_path / "img"), str(mounted.mnt)], capture_output=True,
                           text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert (r.returncode, r.stderr) == (1, "  DUMP: volume testvol is past the cutover of a volume move: "
                                               "no dump or restore session may start on it now\n")
        time.sleep(0.3)
        assert move.poll() is None  # waiting for the running dump
        drained = bytearray()
        reader = threading.Thread(target=lambda: drained.extend(fifo.read_bytes()))
        reader.start()
        assert dump.wait(60) == 0, dump.stderr.read()
        reader.join(30)
        assert len(drained) > 120000
        out, err = move.communicate(timeout=30)
        assert (move.returncode, err) == (0, "")
        assert f"cutover done; new sessions are refused until the move completes; waiting for pid {dump.pid} " \
               "(dump) to finish" in out
        assert "volume move of testvol to aggr2 complete: its generation is now 2: the next incremental dump " \
               "needs a new baseline (level 0)" in out
        r = subprocess.run([PYDUMP, "-0", "--quiet", "-f", str(tmp_path / "img"), str(mounted.mnt)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        r = snapfs("volume", "move", mounted.mnt, "--to", "aggr3", "--keep-identity")
        assert "complete: its identity was kept (CAB): incremental dumps go on from their baselines" in r.stdout
        assert "generation" in r.stdout and client.open_volume(mounted.mnt).volume_identity().generation == 2
    finally:
        for p in (dump, move):
            if p.poll() is None:
                p.kill()
                p.wait()
        dump.stderr.close()


def test_an_ndmp_session_is_told_alone_its_server_is_not_signalled(mounted: Mounted, state: Path):
    """A session of pyndmpd (a shared process, here this test's): the override
    leaves a note for its pid and slot and waits for the slot to be let go;
    the process is not signalled (this test would die of SIGTERM)."""
    from dumptool.sessions import abort_pending, abort_reason, session_slot

    slot = session_slot("dump", str(mounted.mnt), on=str(mounted.mnt), shared=True)
    try:
        r = snapfs("failover", mounted.mnt, "--takeover", check=False)
        assert (r.returncode, r.stderr) == (1, "snapfs: storage failover takeover of volume testvol vetoed: dump and "
                                               f"restore sessions run on it: pid {os.getpid()} slot {slot.slot} "
                                               "(NDMP dump) (--override-vetoes aborts them)\n")
        event = subprocess.Popen([str(BIN / "snapfs"), "failover", str(mounted.mnt), "--takeover",
                                  "--override-vetoes"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait(lambda: abort_pending(os.getpid(), slot.slot))
        assert event.poll() is None  # it waits for the session to stop
        assert abort_reason(os.getpid(), slot.slot) == ("storage failover takeover of volume testvol "
                                                        "(--override-vetoes)")
        slot.release()  # as pyndmpd does once the session halted
        out, err = event.communicate(timeout=30)
        assert (event.returncode, err) == (0, "")
        assert f"aborted pid {os.getpid()} slot {slot.slot} (NDMP dump) on volume testvol (not restartable)" in out
    finally:
        slot.release()
    assert running_sessions() == []


def test_restore_file_excludes_a_restore_session_and_a_dump_meanwhile_skips_the_file(mounted: Mounted, state: Path,
                                                                                      tmp_path: Path):
    m = mounted.mnt
    _tree(m)
    snapfs("snapshot", "create", m, "before")
    (m / "d" / "f2").write_bytes(b"changed since")
    # a restore session runs: the single-file restore is refused, naming it
    restore = busy_restore(mounted, tmp_path / "in.fifo")
    try:
        r = snapfs("restore-file", m, "before", "d/f2", check=False)
        assert (r.returncode, r.stderr) == (1, f"snapfs: single-file restore of d/f2 on volume testvol refused: a "
                                               f"restore session runs on it: pid {restore.pid} (restore)\n")
    finally:
        restore.kill()
        restore.wait()
        restore.stderr.close()
    single = subprocess.Popen([str(BIN / "snapfs"), "restore-file", str(m), "before", str(m / "d" / "f2")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, SNAPFS_EVENT_SECONDS="3"))

    def restricted() -> bool:
        with client.open_volume(m) as c:
            return [(x.owner, x.path) for x in c.restriction_list()] == [("single-file-restore", "d/f2")]
    _wait(restricted)
    # a restore session meanwhile: refused in one line
    r = subprocess.run([PYRESTORE, "-t", "-f", str(tmp_path / "none")], cwd=m, capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert (r.returncode, r.stderr) == (1, "pyrestore: a single-file restore of d/f2 runs on volume testvol: "
                                           "no restore session may start on it until it ends\n")
    # a dump meanwhile skips the file; the next one (based on it) takes it
    dumpdates = tmp_path / "dumpdates"
    first = subprocess.run([PYDUMP, "-0", "-u", "-D", str(dumpdates), "--quiet", "-f", str(tmp_path / "l0"), str(m)],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert first.returncode == 0, first.stderr
    assert "d/f2: under client I/O restriction (owner single-file-restore): not dumped" in first.stderr
    out, err = single.communicate(timeout=30)
    assert (single.returncode, err, out) == (0, "", "restored d/f2 of volume testvol from snapshot before\n")
    assert (m / "d" / "f2").read_bytes() == bytes([2]) * 60000
    listed = subprocess.run([PYRESTORE, "-t", "-f", str(tmp_path / "l0")], capture_output=True, text=True, timeout=60)
    assert "./d/f1" in listed.stdout and "./d/f2" not in listed.stdout
    second = subprocess.run([PYDUMP, "-1", "-u", "-D", str(dumpdates), "--quiet", "-f", str(tmp_path / "l1"),
                             str(m)], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert second.returncode == 0, second.stderr
    listed = subprocess.run([PYRESTORE, "-t", "-f", str(tmp_path / "l1")], capture_output=True, text=True, timeout=60)
    assert "./d/f2" in listed.stdout and "./d/f1" not in listed.stdout


def test_an_aborted_session_leaves_no_abort_note(mounted: Mounted, state: Path, tmp_path: Path):
    """A dump aborted before stage IV (no context to read the note) takes its note away as it ends."""
    _tree(mounted.mnt)
    dump = busy_dump(mounted, tmp_path / "out.fifo")
    snapfs("volume", "offline", "--automatic", mounted.mnt)
    _stopped(dump)
    snapfs("volume", "online", mounted.mnt)
    assert sorted(p.name for p in (state / "sessions").iterdir() if not p.name.startswith("slot-")) == []
