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
from conftest import tmpfs_at
from fuse_fixtures import Mounted, force_unmount, mounted, snapfs  # noqa: F401 (fixtures)

from snapdump.session_registry import running_sessions
from snapfs import client
from snapfs.fsck import fsck_path

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
def test_failover_events_are_vetoed_and_the_override_or_automatic_aborts(mounted: Mounted, state: Path, tmp_path: Path, event: str):
    _tree(mounted.mnt)
    dump = busy_dump(mounted, tmp_path / "out.fifo")
    try:
        r = snapfs("failover", mounted.mnt, f"--{event}", check=False)
        assert r.returncode == 1 and "vetoed: dump and restore sessions run on it: " \
            f"pid {dump.pid} (dump) (--override-vetoes aborts them)" in r.stderr, r.stderr
        assert dump.poll() is None
        # user-initiated with --override-vetoes, or system-initiated (--automatic): aborted either way
        how = "--override-vetoes" if event in ("takeover", "relocate", "switchback") else "--automatic"
        r = snapfs("failover", mounted.mnt, f"--{event}", how)
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


@pytest.mark.parametrize("event, site", [("switchover", "the disaster-recovery site"), ("switchback", "the home site")])
def test_a_session_started_during_a_switchover_fails_and_the_switchover_goes_on(mounted: Mounted, state: Path,
                                                                                 tmp_path: Path, event: str, site: str):
    _tree(mounted.mnt)
    switch = subprocess.Popen([str(BIN / "snapfs"), "failover", str(mounted.mnt), f"--{event}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, SNAPFS_EVENT_SECONDS="3"))

    def switching() -> bool:
        with client.open_volume(mounted.mnt) as c:
            return c.availability() == event
    _wait(switching)
    r = subprocess.run([PYDUMP, "-0", "-f", str(tmp_path / "img"), str(mounted.mnt)], capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert (r.returncode, r.stderr) == (1, f"  DUMP: volume testvol is in a MetroCluster {event}: "
                                           "no dump or restore session may start on it now\n")
    r = subprocess.run([PYRESTORE, "-t", "-f", str(tmp_path / "img")], cwd=mounted.mnt, capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert (r.returncode, r.stderr) == (1, f"pyrestore: volume testvol is in a MetroCluster {event}: "
                                           "no dump or restore session may start on it now\n")
    out, err = switch.communicate(timeout=30)
    assert (switch.returncode, err) == (0, "")
    assert out.endswith(f"MetroCluster {event} of volume testvol done: served by {site}, online\n")
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
    (tmp_path / "aggr2").mkdir()
    dest = tmp_path / "aggr2" / "vol"
    move = subprocess.Popen([str(BIN / "snapfs"), "volume", "move", str(mounted.mnt), "--to", str(dest)],
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
        assert f"volume move of testvol to {dest} complete: its generation is now 2: the next incremental dump " \
               "needs a new baseline (level 0)" in out
        mounted.voldir = dest
        assert not (tmp_path / "vol").exists() and (dest / "snapfs.db").is_file()
        r = subprocess.run([PYDUMP, "-0", "--quiet", "-f", str(tmp_path / "img"), str(mounted.mnt)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        (tmp_path / "aggr3").mkdir()
        r = snapfs("volume", "move", mounted.mnt, "--to", tmp_path / "aggr3" / "vol", "--keep-identity")
        mounted.voldir = tmp_path / "aggr3" / "vol"
        assert "complete: its identity was kept (the CAB case): incremental dumps by an NDMP application speaking " \
               "Cluster Aware Backup go on from their baselines; other incremental dumps (pydump, NDMP without " \
               "CAB) need a new baseline (level 0)" in r.stdout
        assert client.open_volume(mounted.mnt).volume_identity().generation == 2
    finally:
        for p in (dump, move):
            if p.poll() is None:
                p.kill()
                p.wait()
        dump.stderr.close()


def test_a_volume_move_takes_the_store_to_another_file_system_the_mount_served_throughout(
        mounted: Mounted, state: Path, tmp_path: Path):
    """--to DIR on a tmpfs: a dump started during the transfer runs; the folder is
    copied there and the old one removed; open files, the mount and its control
    channel go on; an incremental needs a new baseline (pydump speaks no CAB)."""
    m = mounted.mnt
    _tree(m)
    dumpdates = tmp_path / "dumpdates"
    r = subprocess.run([PYDUMP, "-0", "-u", "-D", str(dumpdates), "--quiet", "-f", str(tmp_path / "l0"), str(m)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    old = mounted.voldir.resolve()
    # the failures a user can make: one line each, nothing moved
    (tmp_path / "taken").mkdir()
    for to, why in ((tmp_path / "taken", f"{tmp_path / 'taken'}: it exists; name a new folder"),
                    (tmp_path / "vol2", f"it is in the same folder (aggregate) {tmp_path}; a volume move goes to "
                                        "another one"),
                    (m / "inside", f"into {m} itself: name a folder outside it"),
                    (tmp_path / "nowhere" / "vol", f"{tmp_path / 'nowhere'} is not a folder")):
        r = snapfs("volume", "move", m, "--to", to, check=False)
        assert r.returncode == 1 and why in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert (old / "snapfs.db").is_file()
    writer = open(m / "d" / "f0", "r+b")
    reader = open(m / "d" / "f3", "rb")
    with tmpfs_at(tmp_path / "aggr9", "size=128m") as aggr:
        dest = aggr / "vol"
        try:
            move = subprocess.Popen([str(BIN / "snapfs"), "volume", "move", str(m), "--to", str(dest)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    env=dict(os.environ, SNAPFS_EVENT_SECONDS="2"))
            # during the transfer a new session starts and runs (the move then waits for it)
            during = subprocess.run([PYDUMP, "-0", "--quiet", "-f", str(tmp_path / "during"), str(m)],
                                    capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
            assert during.returncode == 0, during.stderr
            assert move.poll() is None
            out, err = move.communicate(timeout=60)
            assert (move.returncode, err) == (0, ""), err
            mounted.voldir = dest
            assert f"volume move of testvol to {dest} complete: its generation is now 2" in out
            assert not old.exists() and (dest / "snapfs.db").is_file() and (dest / "control.sock").exists()
            assert os.stat(dest).st_dev != os.stat(tmp_path).st_dev
            # the mount went on: open files, new writes, the control channel, the volume's own xattr
            assert reader.read(5) == bytes([3]) * 5
            writer.write(b"after the move")
            writer.flush()
            os.fsync(writer.fileno())
            assert (m / "d" / "f0").read_bytes()[:14] == b"after the move"
            (m / "new").write_text("written after\n")
            snapfs("snapshot", "create", m, "moved")
            assert (m / ".snapshot" / "moved" / "new").read_text() == "written after\n"
            assert os.getxattr(m, "user.snapfs.volume") == os.fsencode(str(dest))
            with client.open_volume(m) as c:
                ident = c.volume_identity()
                assert (c.info().path, ident.aggregate, ident.generation) == (str(dest), str(aggr), 2)
            # the next incremental needs a new baseline, in one line
            r = subprocess.run([PYDUMP, "-1", "-u", "-D", str(dumpdates), "-f", str(tmp_path / "l1"), str(m)],
                               capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
            assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
            assert f"the volume was moved (aggr0, now {aggr}) since its level 0 base: run a level 0" in r.stderr
            writer.close()
            reader.close()
            snapfs("unmount", m)
            assert fsck_path(dest).clean
            # unmounted, it moves back (the command opens the volume itself), before the tmpfs goes
            (tmp_path / "aggr0").mkdir()
            snapfs("volume", "move", dest, "--to", tmp_path / "aggr0" / "vol")
            mounted.voldir = tmp_path / "aggr0" / "vol"
            assert not dest.exists()
        finally:
            writer.close()
            reader.close()
            force_unmount(m)


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
    time.sleep(1.01 - time.time() % 1)  # (dump compares whole seconds: the tree is older than the level 0)
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


def test_restore_file_copies_a_lun_back_in_place(mounted: Mounted, state: Path):
    """A LUN restore: the LUN keeps its size (it may not be truncated), its bytes come back."""
    m = mounted.mnt
    snapfs("qtree", "create", m, "q1")
    snapfs("lun", "create", m, "q1/lun0", "--size", "1M", "--ostype", "linux")
    with open(m / "q1" / "lun0", "r+b") as f:
        f.write(b"before" * 1000)
    snapfs("snapshot", "create", m, "lsnap")
    with open(m / "q1" / "lun0", "r+b") as f:
        f.write(b"AFTER!" * 2000)
    r = snapfs("restore-file", m, "lsnap", "q1/lun0")
    assert r.stdout == "restored q1/lun0 of volume testvol from snapshot lsnap\n"
    data = (m / "q1" / "lun0").read_bytes()
    assert len(data) == 1 << 20 and data[:6000] == b"before" * 1000 and data[6000:12000] == b"\0" * 6000
    with client.open_volume(m) as c:
        assert [x.path for x in c.lun_list()] == ["q1/lun0"] and c.restriction_list() == []
