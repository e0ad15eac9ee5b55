"""Volume events meet NDMP DATA sessions as they meet pydump's (issue 15): a
backup running in pyndmpd on a snapfs volume is a session the vetoes name;
--override-vetoes (and --automatic) aborts that session alone -- the data
service halts ABORTED with a LOG_MESSAGE naming the event, the slot is let
go -- while the server, never signalled, keeps serving; a DATA_START while
the volume is in a switchover is refused with one log line."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Callable

import pytest
from dma import Dma
from pyndmpd_process import LoadedDrive, _start, load_drive, module_shelf  # noqa: F401
from test_data_filer import BIN, snapshots, volume  # noqa: F401
from test_data import _assert_cut_short
from test_data_sessions import RECORD, _backup_connected, _wait

from dumptool.sessions import running_sessions
from ndmp.messages import DataStartBackupRequest, Pval
from ndmp.protocol import DataHaltReason, DataState, Error, LogType, Message, MoverState
from tapelib import Shelf

pytestmark = pytest.mark.fuse


@pytest.fixture
def server(module_shelf: Shelf, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, volume: Path):  # noqa: F811
    monkeypatch.setenv("SNAPDUMP_STATE_DIR", str(tmp_path / "state"))
    started = _start(["--shelf", str(module_shelf.path), "--volume", str(volume),
                      "--dumpdates", str(tmp_path / "dumpdates")])
    yield started
    print("pyndmpd log:", *started.log(), sep="\n")
    started.process.terminate()
    started.process.wait(10)


def _snapfs(*args: str | Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "snapfs"), *map(str, args)], capture_output=True, text=True, timeout=60,
                          env=env)


def _availability(volume: Path) -> str:
    from snapfs import client

    with client.open_volume(volume) as c:
        return c.availability()


def _posts(dma: Dma, code: int) -> list:
    return [body for c, body in dma.posts if c == code]


def test_override_vetoes_aborts_the_ndmp_backup_alone(server, volume: Path, tmp_path: Path,  # noqa: F811
                                                       load_drive: Callable[..., LoadedDrive]) -> None:
    (volume / "qt" / "big").write_bytes(os.urandom(24 << 20))  # more than the window and the buffers between (~10 MiB)
    backup = Dma.connect(server.port)
    other = None
    tape = load_drive()
    try:
        _backup_connected(backup, tape.nst, window=40 * RECORD)  # stage IV begins on this tape
        env = [Pval("FILESYSTEM", str(volume)), Pval("LEVEL", "0"), Pval("UPDATE", "n")]
        assert backup.call(Message.DATA_START_BACKUP, DataStartBackupRequest("dump", env)).error == Error.NO_ERR
        _wait(lambda: backup.call(Message.MOVER_GET_STATE).body.state == MoverState.PAUSED)
        pid = server.process.pid
        # vetoed without the override, naming the NDMP session
        r = _snapfs("failover", volume, "--takeover")
        assert r.returncode == 1 and f"vetoed: dump and restore sessions run on it: pid {pid} slot 0 (NDMP dump)" \
            in r.stderr, r.stderr
        r = _snapfs("failover", volume, "--takeover", "--override-vetoes")
        assert r.returncode == 0, r.stderr
        assert f"storage failover takeover: aborted pid {pid} slot 0 (NDMP dump) on volume ndmpvol" in r.stdout
        # the server lives, the session's data service halted ABORTED and said why
        assert server.process.poll() is None
        state = backup.call(Message.DATA_GET_STATE).body
        assert (state.state, state.halt_reason) == (DataState.HALTED, DataHaltReason.ABORTED)
        logs = [p.entry for p in _posts(backup, Message.LOG_MESSAGE) if p.log_type == LogType.ERROR]
        assert any("aborted by storage failover takeover of volume ndmpvol (--override-vetoes)" in line
                   for line in logs), logs
        assert _posts(backup, Message.NOTIFY_DATA_HALTED)[-1].reason == DataHaltReason.ABORTED
        server.wait_for_log(r"data: backup aborted by storage failover takeover of volume ndmpvol")
        assert running_sessions() == []  # the slot was let go before the event went on
        # its context stays, not restartable, as a pydump's would
        got = {p.name: p.value for p in backup.call(Message.DATA_GET_ENV).body.env}
        assert got["RESTARTABLE"] == "n" and "aborted by the storage failover takeover" in got["RESTART_REFUSAL"]
        r = subprocess.run([str(BIN / "pydump"), "--contexts", got["RESTART_CONTEXT"]], capture_output=True,
                           text=True, timeout=60, env=dict(os.environ, SNAPDUMP_STATE_DIR=str(tmp_path / "state")))
        assert "Is Context Restartable?: false" in r.stdout, r.stdout + r.stderr
        assert backup.call(Message.DATA_STOP).error == Error.NO_ERR
        assert backup.call(Message.MOVER_ABORT).error == Error.NO_ERR
        # the same server serves a new session at once; a restart of that context is refused
        other = Dma.connect(server.port)
        _backup_connected(other, load_drive().nst, window=40 * RECORD)
        reply = other.call(Message.DATA_START_BACKUP, DataStartBackupRequest(
            "dump", [Pval("RESTART_CONTEXT", got["RESTART_CONTEXT"])]))
        assert reply.error == Error.ILLEGAL_ARGS_ERR
        server.wait_for_log(r"DATA_START_BACKUP: ILLEGAL_ARGS_ERR: cannot restart: the dump of context \S+ was "
                            r"aborted by the storage failover takeover")
    finally:
        for dma in (backup, other):
            if dma is not None:
                dma.close()
    # what reached the tape has no end-of-dump record: nobody takes it for a whole image
    tape.wait_released(20, "the DMA went away")
    _assert_cut_short(tape, tmp_path)


def test_a_data_start_during_a_switchover_is_refused(server, volume: Path,  # noqa: F811
                                                      load_drive: Callable[..., LoadedDrive]) -> None:
    dma = Dma.connect(server.port)
    event = subprocess.Popen([str(BIN / "snapfs"), "failover", str(volume), "--switchover"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ, SNAPFS_EVENT_SECONDS="3"))
    try:
        _backup_connected(dma, load_drive().nst, window=RECORD)
        _wait(lambda: _availability(volume) == "switchover")
        env = [Pval("FILESYSTEM", str(volume / "qt")), Pval("LEVEL", "0"), Pval("UPDATE", "n")]
        reply = dma.call(Message.DATA_START_BACKUP, DataStartBackupRequest("dump", env))
        assert reply.error != Error.NO_ERR
        assert dma.call(Message.DATA_GET_STATE).body.state == DataState.CONNECTED  # nothing started
        line = server.wait_for_log(r"DATA_START_BACKUP: \w+: .*switchover")
        assert [x for x in server.log() if "DATA_START_BACKUP" in x] == [line]
        assert running_sessions() == []
    finally:
        out, err = event.communicate(timeout=30)
        dma.close()
    assert event.returncode == 0, err


def test_override_vetoes_aborts_a_backup_whose_mover_still_writes(server, volume: Path, tmp_path: Path,  # noqa: F811
                                                                   load_drive: Callable[..., LoadedDrive]) -> None:
    """The data service has handed the mover all of the stream (it halted SUCCESSFUL) but the
    mover waits at the end of its tape: the session still runs; the override aborts the mover,
    so the tape gets no end-of-dump record, and the context is not restartable."""
    (volume / "qt" / "mid").write_bytes(os.urandom(900_000))  # more than the window, less than the buffers
    tape = load_drive()
    dma = Dma.connect(server.port)
    try:
        _backup_connected(dma, tape.nst, window=40 * RECORD)
        env = [Pval("FILESYSTEM", str(volume)), Pval("LEVEL", "0"), Pval("UPDATE", "n")]
        assert dma.call(Message.DATA_START_BACKUP, DataStartBackupRequest("dump", env)).error == Error.NO_ERR
        _wait(lambda: dma.call(Message.DATA_GET_STATE).body.halt_reason == DataHaltReason.SUCCESSFUL)
        assert dma.call(Message.MOVER_GET_STATE).body.state == MoverState.PAUSED
        assert [s.kind for s in running_sessions()] == ["dump"]
        r = _snapfs("volume", "offline", volume, "--override-vetoes")
        assert r.returncode == 0, r.stderr
        mover = dma.call(Message.MOVER_GET_STATE).body
        assert (mover.state, mover.halt_reason) == (MoverState.HALTED, 2)  # ABORTED
        logs = [p.entry for p in _posts(dma, Message.LOG_MESSAGE) if p.log_type == LogType.ERROR]
        assert any("backup aborted by volume offline of volume ndmpvol (--override-vetoes)" in line
                   for line in logs), logs
        got = {p.name: p.value for p in dma.call(Message.DATA_GET_ENV).body.env}
        assert got["RESTARTABLE"] == "n" and "aborted by the volume offline" in got["RESTART_REFUSAL"], got
    finally:
        dma.close()
        _snapfs("volume", "online", volume)
    tape.wait_released(20, "the DMA went away")
    _assert_cut_short(tape, tmp_path)


def test_override_vetoes_aborts_an_ndmp_recover_alone(server, volume: Path,  # noqa: F811
                                                       load_drive: Callable[..., LoadedDrive]) -> None:
    """A recover onto the volume is a restore session the vetoes name and the override aborts."""
    from ndmp.messages import DataStartRecoverRequest, MoverListenRequest, MoverSetWindowRequest, TapeMtioRequest
    from ndmp.messages import Addr, DataConnectRequest, TapeOpenRequest
    from ndmp.protocol import AddrType, MoverMode, MtioOp

    tape = load_drive()
    dma = Dma.connect(server.port)
    try:
        _backup_connected(dma, tape.nst, window=0xFFFFFFFFFFFFFFFF)
        env = [Pval("FILESYSTEM", str(volume / "qt")), Pval("LEVEL", "0"), Pval("UPDATE", "n"), Pval("HIST", "n")]
        assert dma.call(Message.DATA_START_BACKUP, DataStartBackupRequest("dump", env)).error == Error.NO_ERR
        _wait(lambda: dma.call(Message.MOVER_GET_STATE).body.state == MoverState.HALTED)
        assert dma.call(Message.TAPE_MTIO, TapeMtioRequest(MtioOp.EOF, 2)).error == Error.NO_ERR
        for code in (Message.DATA_STOP, Message.MOVER_STOP, Message.TAPE_CLOSE):
            assert dma.call(code).error == Error.NO_ERR
        # the recover: the mover's window holds one record, so it pauses (SEEK) and the recover waits
        assert dma.call(Message.TAPE_OPEN, TapeOpenRequest(tape.nst, 0)).error == Error.NO_ERR
        assert dma.call(Message.TAPE_MTIO, TapeMtioRequest(MtioOp.REW, 1)).error == Error.NO_ERR
        assert dma.call(Message.MOVER_SET_WINDOW, MoverSetWindowRequest(0, RECORD)).error == Error.NO_ERR
        assert dma.call(Message.MOVER_LISTEN, MoverListenRequest(MoverMode.WRITE, AddrType.LOCAL)).error == 0
        assert dma.call(Message.DATA_CONNECT, DataConnectRequest(Addr(AddrType.LOCAL))).error == Error.NO_ERR
        reply = dma.call(Message.DATA_START_RECOVER, DataStartRecoverRequest(
            [Pval("PREFIX", str(volume / "back"))], [], "dump"))
        assert reply.error == Error.NO_ERR
        _wait(lambda: dma.call(Message.MOVER_GET_STATE).body.state == MoverState.PAUSED)
        assert [s.kind for s in running_sessions()] == ["restore"]
        r = _snapfs("failover", volume, "--relocate", "--override-vetoes")
        assert r.returncode == 0, r.stderr
        state = dma.call(Message.DATA_GET_STATE).body
        assert (state.state, state.halt_reason) == (DataState.HALTED, DataHaltReason.ABORTED)
        logs = [p.entry for p in _posts(dma, Message.LOG_MESSAGE) if p.log_type == LogType.ERROR]
        assert any("aborted by aggregate relocation of volume ndmpvol (--override-vetoes)" in line
                   for line in logs), logs
        server.wait_for_log(r"data: recover aborted by aggregate relocation")
        assert running_sessions() == [] and server.process.poll() is None
    finally:
        dma.close()
