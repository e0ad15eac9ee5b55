"""NDMP DATA backups and recovers count as dump and restore sessions, with
pydump's and pyrestore's (dumptool.sessions): over the limit a DATA_START
is answered NO_MEM_ERR at once, logged in one line, and changes nothing;
the slot is held while the operation runs and given back when it ends."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest
from dma import Dma
from pyndmpd_process import LoadedDrive, _start, load_drive, module_shelf  # noqa: F401

from conftest import console_script
from dumptool.sessions import running_sessions, session_slot
from ndmp.messages import (
    Addr,
    DataConnectRequest,
    DataStartBackupRequest,
    DataStartRecoverRequest,
    MoverListenRequest,
    MoverSetRecordSizeRequest,
    MoverSetWindowRequest,
    Pval,
    TapeOpenRequest,
)
from ndmp.protocol import AddrType, DataHaltReason, DataState, Error, Message, MoverMode, MoverState
from tapelib import Shelf

RECORD = 10240


def _wait(what: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def _backup_connected(dma: Dma, device: str, window: int) -> None:
    """TAPE_OPEN .. DATA_CONNECT(LOCAL) of a backup whose mover's window holds *window* bytes."""
    assert dma.call(Message.TAPE_OPEN, TapeOpenRequest(device, 1)).error == Error.NO_ERR
    assert dma.call(Message.MOVER_SET_RECORD_SIZE, MoverSetRecordSizeRequest(RECORD)).error == Error.NO_ERR
    assert dma.call(Message.MOVER_SET_WINDOW, MoverSetWindowRequest(0, window)).error == Error.NO_ERR
    assert dma.call(Message.MOVER_LISTEN, MoverListenRequest(MoverMode.READ, AddrType.LOCAL)).error == Error.NO_ERR
    assert dma.call(Message.DATA_CONNECT, DataConnectRequest(Addr(AddrType.LOCAL))).error == Error.NO_ERR


def test_data_start_over_the_session_limit_is_no_mem_err(module_shelf: Shelf,  # noqa: F811
                                                         load_drive: Callable[..., LoadedDrive],  # noqa: F811
                                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNAPDUMP_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("SNAPDUMP_MAX_SESSIONS", "1")
    src = tmp_path / "src"
    src.mkdir()
    (src / "big").write_bytes(os.urandom(32 << 20))  # more than the window and the buffers between (~10 MiB)
    server = _start(["--shelf", str(module_shelf.path), "--volume", str(tmp_path),
                     "--dumpdates", str(tmp_path / "dumpdates")])
    backup = recover = None
    try:
        env = [Pval("FILESYSTEM", str(src)), Pval("LEVEL", "0"), Pval("UPDATE", "n")]
        backup = Dma.connect(server.port)
        _backup_connected(backup, load_drive().nst, window=RECORD)
        with session_slot("restore", "/elsewhere"):  # a pyrestore holds the only slot
            reply = backup.call(Message.DATA_START_BACKUP, DataStartBackupRequest("dump", env))
            assert reply.error == Error.NO_MEM_ERR
            assert backup.call(Message.DATA_GET_STATE).body.state == DataState.CONNECTED  # nothing changed
            server.wait_for_log(r"DATA_START_BACKUP: NO_MEM_ERR: too many dump and restore sessions: 1 of 1 "
                                r"running \(SNAPDUMP_MAX_SESSIONS=1\); try again later$")
        # the slot is free: the backup starts, and holds the slot while its mover waits at the window's end
        assert backup.call(Message.DATA_START_BACKUP, DataStartBackupRequest("dump", env)).error == Error.NO_ERR
        _wait(lambda: backup.call(Message.MOVER_GET_STATE).body.state == MoverState.PAUSED)
        assert [(s.kind, s.pid, s.path) for s in running_sessions()] == [("dump", server.process.pid, str(src))]
        dumped = subprocess.run([console_script("pydump"), "-0", "--quiet", "-f", str(tmp_path / "img"), str(src)],
                                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        assert dumped.returncode == 1 and "too many dump and restore sessions: 1 of 1" in dumped.stderr
        assert not (tmp_path / "img").exists()
        # a recover on another connection of the same server is refused too
        recover = Dma.connect(server.port)
        assert recover.call(Message.TAPE_OPEN, TapeOpenRequest(load_drive().nst, 0)).error == Error.NO_ERR
        assert recover.call(Message.MOVER_LISTEN,
                            MoverListenRequest(MoverMode.WRITE, AddrType.LOCAL)).error == Error.NO_ERR
        assert recover.call(Message.DATA_CONNECT, DataConnectRequest(Addr(AddrType.LOCAL))).error == Error.NO_ERR
        dest = tmp_path / "dest"
        dest.mkdir()
        reply = recover.call(Message.DATA_START_RECOVER, DataStartRecoverRequest([Pval("PREFIX", str(dest))], [],
                                                                                  "dump"))
        assert reply.error == Error.NO_MEM_ERR
        assert recover.call(Message.DATA_GET_STATE).body.state == DataState.CONNECTED
        server.wait_for_log(r"DATA_START_RECOVER: NO_MEM_ERR: too many dump and restore sessions")
        # the backup aborted: its engine returns and the slot is given back
        assert backup.call(Message.DATA_ABORT).error == Error.NO_ERR
        state = backup.call(Message.DATA_GET_STATE).body
        assert (state.state, state.halt_reason) == (DataState.HALTED, DataHaltReason.ABORTED)
        _wait(lambda: running_sessions() == [])
    finally:
        for dma in (backup, recover):
            if dma is not None:
                dma.close()
        print("pyndmpd log:", *server.log(), sep="\n")
        server.process.terminate()
        server.process.wait(10)
    _wait(lambda: running_sessions() == [])
