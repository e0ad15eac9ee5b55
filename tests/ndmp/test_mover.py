"""The mover moving an image between a TCP data connection and the tape:
backup (mode READ) with the last record padded, restore (mode WRITE) of
the byte ranges MOVER_READ asks for, pauses at the window's end, at a
filemark and at early warning, with their NOTIFY posts."""

from __future__ import annotations

import os
import socket
import time

import pytest

from dma import Dma
from ndmp.messages import (
    MoverListenRequest,
    MoverReadRequest,
    MoverSetRecordSizeRequest,
    MoverSetWindowRequest,
    TapeMtioRequest,
    TapeOpenRequest,
    TapeReadRequest,
)
from ndmp.protocol import (
    AddrType,
    Error,
    LogType,
    Message,
    MoverHaltReason,
    MoverMode,
    MoverPauseReason,
    MoverState,
    MtioOp,
)
from ndmp.xdr import U64_INVALID
from pyndmpd_process import LoadedDrive, NdmpServer, load_drive, module_shelf, ndmp_server, tape  # noqa: F401

RECORD = 10240


def ok(reply) -> None:
    assert reply.error == Error.NO_ERR, reply


def open_tape(dma: Dma, device: str, mode: int = 1) -> None:
    ok(dma.call(Message.TAPE_OPEN, TapeOpenRequest(device, mode)))


def listen(dma: Dma, mode: MoverMode, window: tuple[int, int] = (0, U64_INVALID)) -> socket.socket:
    """SET_RECORD_SIZE, SET_WINDOW, LISTEN(TCP); connect to the address given."""
    ok(dma.call(Message.MOVER_SET_RECORD_SIZE, MoverSetRecordSizeRequest(RECORD)))
    ok(dma.call(Message.MOVER_SET_WINDOW, MoverSetWindowRequest(*window)))
    reply = dma.call(Message.MOVER_LISTEN, MoverListenRequest(mode, AddrType.TCP))
    ok(reply)
    addr = reply.body.connect_addr
    assert addr.addr_type == AddrType.TCP and len(addr.tcp) == 1
    assert addr.tcp[0].ip_addr == 0x7F000001  # the address the DMA used, never 0.0.0.0
    return socket.create_connection(("127.0.0.1", addr.tcp[0].port), timeout=10)


def mover_state(dma: Dma):
    return dma.call(Message.MOVER_GET_STATE).body


def wait_post(dma: Dma, code: Message):
    while True:
        got, body = dma.next_post()
        if got == code:
            return body


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, f"data connection closed after {len(data)} of {n} bytes"
        data += chunk
    return data


def backup(dma: Dma, image: bytes, window: tuple[int, int] = (0, U64_INVALID)) -> socket.socket:
    data = listen(dma, MoverMode.READ, window)
    data.sendall(image)
    data.shutdown(socket.SHUT_WR)
    return data


def backed_up(server: NdmpServer, tape: LoadedDrive, image: bytes) -> tuple[Dma, object]:
    """A new DMA that opened ``tape`` and backed ``image`` up through the
    mover, and the NOTIFY_MOVER_HALTED that ended it."""
    dma = Dma.connect(server.port)
    open_tape(dma, tape.nst)
    backup(dma, image).close()
    return dma, wait_post(dma, Message.NOTIFY_MOVER_HALTED)


@pytest.fixture
def image() -> bytes:
    return os.urandom(25000)


def test_backup_writes_whole_records_and_pads_the_last(ndmp_server: NdmpServer, tape: LoadedDrive,
                                                       image: bytes) -> None:
    dma, halted = backed_up(ndmp_server, tape, image)
    assert halted.reason == MoverHaltReason.CONNECT_CLOSED
    state = mover_state(dma)
    assert (state.state, state.halt_reason, state.pause_reason) == (
        MoverState.HALTED, MoverHaltReason.CONNECT_CLOSED, MoverPauseReason.NA)
    assert (state.record_num, state.bytes_moved) == (3, 3 * RECORD)
    ok(dma.call(Message.MOVER_STOP))
    state = mover_state(dma)
    assert (state.state, state.halt_reason, state.record_num, state.record_size) == (MoverState.IDLE, 0, 0, RECORD)
    # The tape: three records and no filemark (the DMA writes those).
    ok(dma.call(Message.TAPE_MTIO, TapeMtioRequest(MtioOp.REW, 1)))
    records = [dma.call(Message.TAPE_READ, TapeReadRequest(65536)) for _ in range(4)]
    assert [r.error for r in records] == [Error.NO_ERR] * 3 + [Error.EOM_ERR]
    assert b"".join(r.body.data_in for r in records) == image + bytes(3 * RECORD - len(image))


def test_restore_sends_the_ranges_asked_and_pauses_at_the_filemark(ndmp_server: NdmpServer, tape: LoadedDrive,
                                                                    image: bytes) -> None:
    dma, _ = backed_up(ndmp_server, tape, image)
    ok(dma.call(Message.MOVER_STOP))
    ok(dma.call(Message.TAPE_MTIO, TapeMtioRequest(MtioOp.EOF, 2)))
    ok(dma.call(Message.TAPE_MTIO, TapeMtioRequest(MtioOp.REW, 1)))
    data = listen(dma, MoverMode.WRITE)
    time.sleep(0.05)
    assert mover_state(dma).state == MoverState.ACTIVE
    ok(dma.call(Message.MOVER_READ, MoverReadRequest(15000, 100)))  # seeks forward into record 1
    assert recv_exact(data, 100) == image[15000:15100]
    ok(dma.call(Message.MOVER_READ, MoverReadRequest(5, 10)))  # and back to record 0
    assert recv_exact(data, 10) == image[5:15]
    ok(dma.call(Message.MOVER_READ, MoverReadRequest(0, U64_INVALID)))  # everything
    assert recv_exact(data, 3 * RECORD) == image + bytes(3 * RECORD - len(image))
    paused = wait_post(dma, Message.NOTIFY_MOVER_PAUSED)
    assert (paused.reason, paused.seek_position) == (MoverPauseReason.EOF, 3 * RECORD)
    state = mover_state(dma)
    assert (state.state, state.pause_reason, state.halt_reason) == (MoverState.PAUSED, MoverPauseReason.EOF, 0)
    ok(dma.call(Message.MOVER_CLOSE))
    assert wait_post(dma, Message.NOTIFY_MOVER_HALTED).reason == MoverHaltReason.CONNECT_CLOSED
    data.settimeout(10)
    assert data.recv(10) == b""  # the mover closed the data connection
    ok(dma.call(Message.MOVER_STOP))


def test_backup_pauses_at_the_window_end_and_continues_in_the_next(ndmp_server: NdmpServer, tape: LoadedDrive,
                                                                  image: bytes) -> None:
    nst0 = tape.nst
    dma = Dma.connect(ndmp_server.port)
    open_tape(dma, nst0)
    backup(dma, image, window=(0, 2 * RECORD)).close()
    paused = wait_post(dma, Message.NOTIFY_MOVER_PAUSED)
    assert (paused.reason, paused.seek_position) == (MoverPauseReason.EOW, 2 * RECORD)
    assert mover_state(dma).record_num == 2
    ok(dma.call(Message.MOVER_SET_WINDOW, MoverSetWindowRequest(2 * RECORD, U64_INVALID)))
    ok(dma.call(Message.MOVER_CONTINUE))
    assert wait_post(dma, Message.NOTIFY_MOVER_HALTED).reason == MoverHaltReason.CONNECT_CLOSED
    assert mover_state(dma).record_num == 3


def test_backup_pauses_at_early_warning_and_abort_leaves_whole_records(ndmp_server: NdmpServer,
                                                                       load_drive) -> None:
    small = load_drive(capacity=256 * 1024, early_warning=64 * 1024)
    dma = Dma.connect(ndmp_server.port)
    open_tape(dma, small.nst)
    data = listen(dma, MoverMode.READ)
    data.sendall(os.urandom(400 * 1024))
    log = wait_post(dma, Message.LOG_MESSAGE)
    assert log.log_type == LogType.WARNING and "early warning" in log.entry
    paused = wait_post(dma, Message.NOTIFY_MOVER_PAUSED)
    assert paused.reason == MoverPauseReason.EOM
    state = mover_state(dma)
    assert state.state == MoverState.PAUSED and paused.seek_position == state.record_num * RECORD
    ok(dma.call(Message.MOVER_ABORT))
    assert wait_post(dma, Message.NOTIFY_MOVER_HALTED).reason == MoverHaltReason.ABORTED
    data.close()
    ok(dma.call(Message.MOVER_STOP))
    ok(dma.call(Message.TAPE_MTIO, TapeMtioRequest(MtioOp.REW, 1)))
    lengths = []
    while (r := dma.call(Message.TAPE_READ, TapeReadRequest(65536))).error == Error.NO_ERR:
        lengths.append(len(r.body.data_in))
    assert r.error == Error.EOM_ERR
    assert lengths == [RECORD] * state.record_num


def test_restore_halts_when_the_data_side_closes(ndmp_server: NdmpServer, tape: LoadedDrive) -> None:
    nst0 = tape.nst
    dma = Dma.connect(ndmp_server.port)
    open_tape(dma, nst0, mode=0)
    data = listen(dma, MoverMode.WRITE)
    data.close()
    assert wait_post(dma, Message.NOTIFY_MOVER_HALTED).reason == MoverHaltReason.CONNECT_CLOSED
    assert mover_state(dma).state == MoverState.HALTED


def test_tape_is_the_movers_while_active(ndmp_server: NdmpServer, tape: LoadedDrive) -> None:
    nst0 = tape.nst
    dma = Dma.connect(ndmp_server.port)
    open_tape(dma, nst0)
    data = listen(dma, MoverMode.READ)
    time.sleep(0.05)
    assert dma.call(Message.TAPE_MTIO, TapeMtioRequest(MtioOp.REW, 1)).error == Error.ILLEGAL_STATE_ERR
    assert dma.call(Message.TAPE_CLOSE).error == Error.ILLEGAL_STATE_ERR
    assert dma.call(Message.TAPE_GET_STATE).error == Error.NO_ERR
    data.close()
    wait_post(dma, Message.NOTIFY_MOVER_HALTED)
    ok(dma.call(Message.TAPE_CLOSE))


def test_record_sizes_from_one_byte_to_256_kib(ndmp_server: NdmpServer) -> None:
    dma = Dma.connect(ndmp_server.port)
    for size, error in ((1, Error.NO_ERR), (256 * 1024, Error.NO_ERR), (256 * 1024 + 1, Error.ILLEGAL_ARGS_ERR),
                        (0, Error.ILLEGAL_ARGS_ERR)):
        assert dma.call(Message.MOVER_SET_RECORD_SIZE, MoverSetRecordSizeRequest(size)).error == error, size
    assert mover_state(dma).record_size == 256 * 1024  # the last size accepted
    dma.close()


def test_the_blocking_factor_a_record_size_sets() -> None:
    from ndmp.engine import blocking_factor

    assert [blocking_factor(n * 1024) for n in (4, 10, 64, 256)] == [4, 10, 64, 256]
    assert [blocking_factor(size) for size in (3 * 1024, 257 * 1024, 10240 + 512, 512)] == [None] * 4
