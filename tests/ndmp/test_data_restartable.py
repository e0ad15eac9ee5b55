"""Restartable NDMP backups (issue 15): a DATA backup of a snapfs volume
aborted in stage IV leaves a context pydump lists; DATA_GET_ENV after the
halt says how to restart it (RESTART_CONTEXT, RESTART_OFFSET); the DMA ends
the interrupted tape there and a DATA_START_BACKUP with RESTART_CONTEXT
writes the next volume; both volumes, read in order by pyrestore and by the
real restore, give the volume's tree.  The DMA is tests/ndmp/dma.py: ndmjob
cannot restart."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Callable

import pytest
from conftest import answering
from dma import Dma
from pyndmpd_process import LoadedDrive, _start, load_drive, module_shelf  # noqa: F401
from test_data import tape_image
from test_data_filer import BIN, snapshots, volume  # noqa: F401
from test_data_sessions import RECORD, _wait
from test_data_vetoes import _posts, _snapfs, server  # noqa: F401

from ndmp.messages import (
    Addr,
    DataConnectRequest,
    DataStartBackupRequest,
    MoverListenRequest,
    MoverSetRecordSizeRequest,
    MoverSetWindowRequest,
    Pval,
    TapeMtioRequest,
    TapeOpenRequest,
)
from ndmp.protocol import AddrType, DataHaltReason, DataState, Error, Message, MoverMode, MoverState, MtioOp
from ndmp.xdr import U64_INVALID

pytestmark = pytest.mark.fuse

WINDOW = 40 * RECORD  # the first tape takes this much, then the mover pauses (EOW) and the DMA gives up


def _tree(root: Path) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".snapshot"]
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if rel == "restoresymtable":
                continue
            st = p.lstat()
            data = p.read_bytes() if p.is_file() and not p.is_symlink() else None
            out[rel] = (st.st_mode, data)
    return out


def _fill(root: Path) -> None:
    for d in range(3):
        (root / f"d{d}").mkdir()
        for i in range(10):
            (root / f"d{d}" / f"f{i}").write_bytes(os.urandom(60_000 + 1000 * i))
    (root / "small.txt").write_text("small\n")


def _start_backup(dma: Dma, device: str, window: int, env: list[Pval]) -> None:
    assert dma.call(Message.TAPE_OPEN, TapeOpenRequest(device, 1)).error == Error.NO_ERR
    assert dma.call(Message.MOVER_SET_RECORD_SIZE, MoverSetRecordSizeRequest(RECORD)).error == Error.NO_ERR
    assert dma.call(Message.MOVER_SET_WINDOW, MoverSetWindowRequest(0, window)).error == Error.NO_ERR
    assert dma.call(Message.MOVER_LISTEN, MoverListenRequest(MoverMode.READ, AddrType.LOCAL)).error == Error.NO_ERR
    assert dma.call(Message.DATA_CONNECT, DataConnectRequest(Addr(AddrType.LOCAL))).error == Error.NO_ERR
    assert dma.call(Message.DATA_START_BACKUP, DataStartBackupRequest("dump", env)).error == Error.NO_ERR


def _env_of(dma: Dma) -> dict[str, str]:
    reply = dma.call(Message.DATA_GET_ENV)
    assert reply.error == Error.NO_ERR
    return {p.name: p.value for p in reply.body.env}


def _end_tape_at(dma: Dma, offset: int) -> None:
    """What a DMA does before a restart: the interrupted tape ends at the stream offset
    the data service named (back over whatever the mover wrote past it), then filemarks."""
    mover = dma.call(Message.MOVER_GET_STATE).body
    end = mover.window_offset + mover.bytes_moved
    assert end >= offset and (end - offset) % RECORD == 0, (end, offset)
    if end > offset:
        reply = dma.call(Message.TAPE_MTIO, TapeMtioRequest(MtioOp.BSR, (end - offset) // RECORD))
        assert (reply.error, reply.body.resid_count) == (Error.NO_ERR, 0)
    assert dma.call(Message.TAPE_MTIO, TapeMtioRequest(MtioOp.EOF, 2)).error == Error.NO_ERR


def _finish(dma: Dma) -> None:
    assert dma.call(Message.DATA_STOP).error == Error.NO_ERR
    assert dma.call(Message.MOVER_STOP).error == Error.NO_ERR
    assert dma.call(Message.TAPE_CLOSE).error == Error.NO_ERR


def _contexts(state: Path, *args: str) -> str:
    if args == ("",):
        return ""
    r = subprocess.run([str(BIN / "pydump"), "--contexts", *args], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, SNAPDUMP_STATE_DIR=str(state)))
    assert r.returncode == 0, r.stderr
    return r.stdout


def _only_context(state: Path) -> str:
    """The id of the one context ``pydump --contexts`` lists ("" while there is none)."""
    lines = _contexts(state).splitlines()
    return lines[-1].split()[1] if len(lines) == 3 else ""


@pytest.mark.parametrize("how", ["data-abort", "end-of-media", "dma-vanishes"])
def test_an_interrupted_ndmp_backup_restarts_as_its_next_volume(server, volume: Path, tmp_path: Path,  # noqa: F811
                                                                 load_drive: Callable[..., LoadedDrive],
                                                                 how: str) -> None:
    _fill(volume)
    expected = _tree(volume)
    state = tmp_path / "state"
    env = [Pval("FILESYSTEM", str(volume)), Pval("LEVEL", "0"), Pval("UPDATE", "n"), Pval("HIST", "n")]
    if how == "end-of-media":
        first = load_drive(capacity=700 * 1024, early_warning=64 * 1024)
    else:
        first = load_drive()
    second = load_drive()
    dma = Dma.connect(server.port)
    try:
        _start_backup(dma, first.nst, U64_INVALID if how == "end-of-media" else WINDOW, env)
        _wait(lambda: dma.call(Message.MOVER_GET_STATE).body.state == MoverState.PAUSED)
        if how == "dma-vanishes":
            dma.close()
            _wait(lambda: "NDMP Restart Offset" in _contexts(state, _only_context(state)))
            cid = _only_context(state)
            shown = _contexts(state, cid)
            offset = int(shown.split("NDMP Restart Offset: ")[1].split()[0])
            first.wait_released(10, "the vanished DMA's session")
            assert len(tape_image(first)) == offset  # the mover wrote the whole window, no more
            dma = Dma.connect(server.port)
        else:
            # the first tape is full (the window's end, early warning), the DMA has no other: it gives up
            # (the data service may have handed the mover all of the stream already: it halted SUCCESSFUL)
            if how == "data-abort":
                assert dma.call(Message.DATA_ABORT).error in (Error.NO_ERR, Error.ILLEGAL_STATE_ERR)
            assert dma.call(Message.MOVER_ABORT).error == Error.NO_ERR
            _wait(lambda: dma.call(Message.DATA_GET_STATE).body.state == DataState.HALTED)
            got = _env_of(dma)
            cid, offset = got["RESTART_CONTEXT"], int(got["RESTART_OFFSET"])
            assert got["RESTARTABLE"] == "y" and got["RESTART_VOLUME"] == "1", got
            assert 0 < offset <= (WINDOW if how == "data-abort" else 700 * 1024) and offset % RECORD == 0, got
            _end_tape_at(dma, offset)
            _finish(dma)
        # pydump lists it, restartable, its snapshot held
        assert cid in _contexts(state)
        shown = _contexts(state, cid)
        assert "Is Context Restartable?: true" in shown and "Dump Path" in shown, shown
        held = snapshots(volume)
        assert any(f"restartable-{cid}" in holders for holders in held.values()), held
        if how == "data-abort":  # a LOCAL mover of another record size would cut the image's records
            assert dma.call(Message.TAPE_OPEN, TapeOpenRequest(second.nst, 1)).error == Error.NO_ERR
            assert dma.call(Message.MOVER_SET_RECORD_SIZE, MoverSetRecordSizeRequest(RECORD * 2)).error \
                == Error.NO_ERR
            assert dma.call(Message.MOVER_LISTEN, MoverListenRequest(MoverMode.READ, AddrType.LOCAL)).error \
                == Error.NO_ERR
            assert dma.call(Message.DATA_CONNECT, DataConnectRequest(Addr(AddrType.LOCAL))).error == Error.NO_ERR
            refused = dma.call(Message.DATA_START_BACKUP, DataStartBackupRequest("dump", [Pval("RESTART_CONTEXT", cid)]))
            assert refused.error == Error.ILLEGAL_ARGS_ERR
            assert dma.call(Message.DATA_ABORT).error == Error.NO_ERR
            # (the mover halted with the data connection, or is told to)
            assert dma.call(Message.MOVER_ABORT).error in (Error.NO_ERR, Error.ILLEGAL_STATE_ERR)
            _wait(lambda: dma.call(Message.MOVER_GET_STATE).body.state == MoverState.HALTED)
            _finish(dma)
            assert "Is Context Restartable?: true" in _contexts(state, cid)  # nothing taken from it
        # the restart: the next volume, on the second tape
        _start_backup(dma, second.nst, U64_INVALID, [Pval("RESTART_CONTEXT", cid)])
        _wait(lambda: dma.call(Message.DATA_GET_STATE).body.state == DataState.HALTED)
        _wait(lambda: dma.call(Message.MOVER_GET_STATE).body.state == MoverState.HALTED)
        assert dma.call(Message.DATA_GET_STATE).body.halt_reason == DataHaltReason.SUCCESSFUL
        done = _env_of(dma)
        assert "RESTART_CONTEXT" not in done and (done["HIST"], done["DIRECT"]) == ("y", "n"), done
        assert dma.call(Message.TAPE_MTIO, TapeMtioRequest(MtioOp.EOF, 2)).error == Error.NO_ERR
        _finish(dma)
        # the restart's file history (HIST=y by default) names every file of the image, before the
        # restart point too (the interrupted run sent none), without positions (DIRECT=n)
        named = {name.unix_name for body in _posts(dma, Message.FH_ADD_DIR) for d in body.dirs for name in d.names}
        assert named == {Path(rel).name for rel in expected} | {".", ".."}, named
        nodes = [n for body in _posts(dma, Message.FH_ADD_NODE) for n in body.nodes]
        assert len(nodes) == len(expected) + 1 and {n.fh_info for n in nodes} == {U64_INVALID}
        logs = [p.entry for p in _posts(dma, Message.LOG_MESSAGE)]
        assert any(f"restart of context {cid} done: volume 2" in line for line in logs), logs
    finally:
        dma.close()
    # the context is gone, its snapshot given back
    _wait(lambda: "There are no entries" in _contexts(state))
    _wait(lambda: snapshots(volume) == {})
    vol1, vol2 = tmp_path / "vol1", tmp_path / "vol2"
    first.wait_released(10, "the session's TAPE_CLOSE")
    vol1.write_bytes(tape_image(first))
    vol2.write_bytes(tape_image(second))
    assert vol1.stat().st_size == offset
    # read in order, by pyrestore and by the real restore: the volume's tree
    for reader, question in ((str(BIN / "pyrestore"), b"enter its path ('none' if there is none): "),
                             ("/sbin/restore", b"otherwise enter tape name")):
        out = tmp_path / f"out-{Path(reader).name}"
        out.mkdir()
        scratch = tmp_path / f"tmp-{Path(reader).name}"
        scratch.mkdir()
        flags = ["-r", "-y"] if reader == "/sbin/restore" else ["-r"]
        _answer_each(reader, flags, [vol1, vol2], out, question, scratch)
        assert _tree(out) == expected, reader


def test_a_three_way_backup_restarts_from_where_the_remote_tape_ends(server, volume: Path,  # noqa: F811
                                                                     module_shelf, tmp_path: Path,  # noqa: F811
                                                                     load_drive: Callable[..., LoadedDrive]) -> None:
    """Data on one pyndmpd, mover and tape on another: the data service knows
    only what it sent; the DMA gives back the offset its remote tape ends at
    (RESTART_OFFSET, lower), and the restart goes on from there."""
    _fill(volume)
    # more than the TCP buffers between the two hold: the data service cannot end before the mover
    (volume / "big").write_bytes(os.urandom(24 << 20))  # (the mover reads 1 MiB and writes 2 MiB at a time)
    expected = _tree(volume)
    tape_server = _start(["--shelf", str(module_shelf.path)])
    first, second = load_drive(), load_drive(capacity=64 << 20)
    data, tape = Dma.connect(server.port), Dma.connect(tape_server.port)

    def backup(device: str, window: int, env: list[Pval]) -> None:
        assert tape.call(Message.TAPE_OPEN, TapeOpenRequest(device, 1)).error == Error.NO_ERR
        assert tape.call(Message.MOVER_SET_RECORD_SIZE, MoverSetRecordSizeRequest(RECORD)).error == Error.NO_ERR
        assert tape.call(Message.MOVER_SET_WINDOW, MoverSetWindowRequest(0, window)).error == Error.NO_ERR
        listen = tape.call(Message.MOVER_LISTEN, MoverListenRequest(MoverMode.READ, AddrType.TCP))
        assert listen.error == Error.NO_ERR
        assert data.call(Message.DATA_CONNECT, DataConnectRequest(listen.body.connect_addr)).error == Error.NO_ERR
        assert data.call(Message.DATA_START_BACKUP, DataStartBackupRequest("dump", env)).error == Error.NO_ERR

    try:
        backup(first.nst, WINDOW, [Pval("FILESYSTEM", str(volume)), Pval("LEVEL", "0"), Pval("UPDATE", "n"),
                                   Pval("HIST", "n")])
        _wait(lambda: tape.call(Message.MOVER_GET_STATE).body.state == MoverState.PAUSED)
        assert data.call(Message.DATA_ABORT).error in (Error.NO_ERR, Error.ILLEGAL_STATE_ERR)
        assert tape.call(Message.MOVER_ABORT).error == Error.NO_ERR
        _wait(lambda: data.call(Message.DATA_GET_STATE).body.state == DataState.HALTED)
        got = _env_of(data)
        cid, sent = got["RESTART_CONTEXT"], int(got["RESTART_OFFSET"])
        mover = tape.call(Message.MOVER_GET_STATE).body
        on_tape = mover.window_offset + mover.bytes_moved
        assert on_tape == WINDOW < sent, (on_tape, sent)  # the data service sent more than the tape took
        assert tape.call(Message.TAPE_MTIO, TapeMtioRequest(MtioOp.EOF, 2)).error == Error.NO_ERR
        for dma in (data, tape):
            _stop(dma)
        assert tape.call(Message.TAPE_CLOSE).error == Error.NO_ERR
        # a restart from further than the DMA's tape holds is its business; lower is checked
        backup(second.nst, U64_INVALID, [Pval("RESTART_CONTEXT", cid), Pval("RESTART_OFFSET", str(on_tape))])
        _wait(lambda: data.call(Message.DATA_GET_STATE).body.state == DataState.HALTED)
        _wait(lambda: tape.call(Message.MOVER_GET_STATE).body.state == MoverState.HALTED)
        assert data.call(Message.DATA_GET_STATE).body.halt_reason == DataHaltReason.SUCCESSFUL
        assert tape.call(Message.TAPE_MTIO, TapeMtioRequest(MtioOp.EOF, 2)).error == Error.NO_ERR
        for dma in (data, tape):
            _stop(dma)
        assert tape.call(Message.TAPE_CLOSE).error == Error.NO_ERR
    finally:
        data.close()
        tape.close()
        print("tape server log:", *tape_server.log(), sep="\n")
        tape_server.process.terminate()
        tape_server.process.wait(10)
    vol1, vol2 = tmp_path / "vol1", tmp_path / "vol2"
    vol1.write_bytes(tape_image(first))
    vol2.write_bytes(tape_image(second))
    assert vol1.stat().st_size == on_tape
    out = tmp_path / "out"
    out.mkdir()
    _answer_each("/sbin/restore", ["-r", "-y"], [vol1, vol2], out, b"otherwise enter tape name", tmp_path)
    assert _tree(out) == expected


def _stop(dma: Dma) -> None:
    """DATA_STOP or MOVER_STOP, whichever this session runs."""
    if dma.call(Message.DATA_GET_STATE).body.state == DataState.HALTED:
        assert dma.call(Message.DATA_STOP).error == Error.NO_ERR
    if dma.call(Message.MOVER_GET_STATE).body.state == MoverState.HALTED:
        assert dma.call(Message.MOVER_STOP).error == Error.NO_ERR


def test_a_restarted_ndmp_backup_interrupted_again_restarts_as_a_third_volume(
        server, volume: Path, tmp_path: Path, load_drive: Callable[..., LoadedDrive]) -> None:  # noqa: F811
    _fill(volume)
    expected = _tree(volume)
    env = [Pval("FILESYSTEM", str(volume)), Pval("LEVEL", "0"), Pval("UPDATE", "n"), Pval("HIST", "n")]
    tapes = [load_drive() for _ in range(3)]
    offsets = []
    dma = Dma.connect(server.port)
    try:
        for n, tape in enumerate(tapes):
            _start_backup(dma, tape.nst, WINDOW if n < 2 else U64_INVALID,
                          env if n == 0 else [Pval("RESTART_CONTEXT", cid)])
            if n < 2:  # the window's end: given up
                _wait(lambda: dma.call(Message.MOVER_GET_STATE).body.state == MoverState.PAUSED)
                assert dma.call(Message.DATA_ABORT).error in (Error.NO_ERR, Error.ILLEGAL_STATE_ERR)
                assert dma.call(Message.MOVER_ABORT).error == Error.NO_ERR
                _wait(lambda: dma.call(Message.DATA_GET_STATE).body.state == DataState.HALTED)
                got = _env_of(dma)
                cid = got["RESTART_CONTEXT"]
                assert (got["RESTARTABLE"], got["RESTART_VOLUME"]) == ("y", str(n + 1)), got
                offsets.append(int(got["RESTART_OFFSET"]))
                _end_tape_at(dma, offsets[-1])
            else:
                _wait(lambda: dma.call(Message.MOVER_GET_STATE).body.state == MoverState.HALTED)
                assert dma.call(Message.DATA_GET_STATE).body.halt_reason == DataHaltReason.SUCCESSFUL
                assert dma.call(Message.TAPE_MTIO, TapeMtioRequest(MtioOp.EOF, 2)).error == Error.NO_ERR
            _finish(dma)
    finally:
        dma.close()
    paths = []
    for n, tape in enumerate(tapes):
        paths.append(tmp_path / f"vol{n + 1}")
        paths[-1].write_bytes(tape_image(tape))
    assert [p.stat().st_size for p in paths[:2]] == offsets
    for reader, question in ((str(BIN / "pyrestore"), b"enter its path ('none' if there is none): "),
                             ("/sbin/restore", b"otherwise enter tape name")):
        out = tmp_path / f"out-{Path(reader).name}"
        out.mkdir()
        flags = ["-r", "-y"] if reader == "/sbin/restore" else ["-r"]
        proc_out = _answer_each(reader, flags, paths, out, question, tmp_path)
        assert _tree(out) == expected, (reader, proc_out)


def _answer_each(reader: str, flags: list[str], paths: list[Path], out: Path, question: bytes,
                 tmp_path: Path) -> str:
    """Restore from volume 1, answering each volume question with the next volume's path."""
    return answering([reader, *flags, "-f", str(paths[0])], out, dict(os.environ, TMPDIR=str(tmp_path)), question,
                     lambda n: str(paths[n]).encode() + b"\n", len(paths) - 1)


def test_the_restart_offset_is_whole_blocks_and_whole_records_of_the_window() -> None:
    from ndmp.restartable import _restart_offset

    assert _restart_offset(409600, 10240, 0) == 409600
    assert _restart_offset(415000, 10240, 0) == 409600  # a record the mover padded is not counted
    assert _restart_offset(415000, None, 0) == 414720   # three-way: whole 1 KiB blocks of what was sent
    assert _restart_offset(5000, 1536, 0) == 3072       # records of 1.5 KiB: every second one ends a block
    assert _restart_offset(100000, 1536, 1536) == 98304  # from the window's start: 63 records
    assert _restart_offset(0, 10240, 0) == 0
