"""The TAPE service's semantics, as NDMP v4 defines them (ndmjob's T-BR,
T-BWR, T-READ phases, which its own client cannot reach): a read at a
filemark answers EOF and stays in front of it, end of data is EOM, spacing
stops at the ends with a residual count, nothing writes filemarks by itself."""

from __future__ import annotations

import pytest

from dma import Dma
from ndmp.messages import (
    TapeMtioRequest,
    TapeOpenRequest,
    TapeReadRequest,
    TapeWriteRequest,
)
from ndmp.protocol import Error, Message, MtioOp
from pyndmpd_process import LoadedDrive, NdmpServer, load_drive, module_shelf, ndmp_server, tape  # noqa: F401
from tapelib.cartridge import BlockKind

UNKNOWN = 0xFFFFFFFF


@pytest.fixture
def dma(ndmp_server: NdmpServer, tape: LoadedDrive) -> Dma:
    d = Dma.connect(ndmp_server.port)
    assert d.call(Message.TAPE_OPEN, TapeOpenRequest(tape.nst, 1)).error == Error.NO_ERR
    return d


def mtio(dma: Dma, op: MtioOp, count: int = 1) -> int:
    reply = dma.call(Message.TAPE_MTIO, TapeMtioRequest(op, count))
    assert reply.error == Error.NO_ERR, reply
    return reply.body.resid_count


def write(dma: Dma, data: bytes) -> None:
    reply = dma.call(Message.TAPE_WRITE, TapeWriteRequest(data))
    assert (reply.error, reply.body.count) == (Error.NO_ERR, len(data))


def read(dma: Dma, count: int) -> tuple[int, bytes]:
    reply = dma.call(Message.TAPE_READ, TapeReadRequest(count))
    return reply.error, reply.body.data_in


def where(dma: Dma) -> tuple[int, int]:
    body = dma.call(Message.TAPE_GET_STATE).body
    assert body.error == Error.NO_ERR
    return body.file_num, body.blockno


def test_read_at_a_filemark_answers_eof_and_stays_in_front_of_it(dma: Dma) -> None:
    write(dma, b"a" * 1024)
    mtio(dma, MtioOp.EOF, 1)
    write(dma, b"b" * 512)
    mtio(dma, MtioOp.REW)
    assert read(dma, 2048) == (Error.NO_ERR, b"a" * 1024)  # the whole record, no more
    assert where(dma) == (0, 1)
    assert read(dma, 1024) == (Error.EOF_ERR, b"")
    assert where(dma) == (0, UNKNOWN)  # file unchanged; block unknown right after EOF
    assert read(dma, 1024) == (Error.EOF_ERR, b"")  # still in front of the filemark
    assert mtio(dma, MtioOp.FSF, 1) == 0
    assert where(dma) == (1, 0)
    assert read(dma, 100) == (Error.NO_ERR, b"b" * 100)  # a short read passes the whole record
    assert read(dma, 100) == (Error.EOM_ERR, b"")
    assert read(dma, 100) == (Error.EOM_ERR, b"")


def test_read_counts_zero_and_too_large(dma: Dma) -> None:
    write(dma, b"x" * 10)
    mtio(dma, MtioOp.REW)
    assert read(dma, 0) == (Error.NO_ERR, b"")
    assert read(dma, 0x80000000)[0] == Error.ILLEGAL_ARGS_ERR
    assert where(dma) == (0, 0)


def test_spacing_stops_at_the_ends_with_residual_counts(dma: Dma) -> None:
    assert mtio(dma, MtioOp.BSR, 100) == 100
    assert mtio(dma, MtioOp.BSF, 100) == 100
    mtio(dma, MtioOp.EOF, 1)
    assert mtio(dma, MtioOp.BSF, 100) == 99
    assert where(dma) == (0, 0)
    assert mtio(dma, MtioOp.FSF, 100) == 99
    assert where(dma) == (1, 0)
    assert read(dma, 512)[0] == Error.EOM_ERR
    mtio(dma, MtioOp.REW)
    write(dma, b"r" * 512)
    assert mtio(dma, MtioOp.BSR, 100) == 99
    assert mtio(dma, MtioOp.FSR, 100) == 99
    assert mtio(dma, MtioOp.FSR, 100) == 100
    assert mtio(dma, MtioOp.FSF, 100) == 100


def test_records_skip_but_never_cross_a_filemark(dma: Dma) -> None:
    for n in range(3):
        write(dma, bytes([n]) * 100)
    mtio(dma, MtioOp.EOF, 1)
    write(dma, b"z" * 100)
    mtio(dma, MtioOp.REW)
    assert mtio(dma, MtioOp.FSR, 1000) == 997
    assert where(dma) == (0, 3)
    assert read(dma, 100)[0] == Error.EOF_ERR
    assert mtio(dma, MtioOp.BSR, 2) == 0
    assert read(dma, 100) == (Error.NO_ERR, b"\x01" * 100)
    mtio(dma, MtioOp.FSF, 1)
    assert mtio(dma, MtioOp.BSR, 5) == 5  # just after the filemark: nothing to back over
    assert mtio(dma, MtioOp.BSF, 1) == 0
    assert where(dma) == (0, 3)  # on the BOT side of the filemark, block counted


def test_no_filemark_is_written_on_close_or_rewind(dma: Dma, tape: LoadedDrive) -> None:
    write(dma, b"q" * 4096)
    mtio(dma, MtioOp.REW)
    write(dma, b"w" * 4096)
    assert dma.call(Message.TAPE_CLOSE).error == Error.NO_ERR
    drive = tape.shelf.open_drive(tape.index)
    cart = drive.cartridge
    first = cart.block_at(0)
    assert first.kind is BlockKind.RECORD and first.length == 4096
    assert cart.block_at(first.end).kind is BlockKind.EOD
    drive.close()


def test_position_is_kept_for_the_next_session_and_the_shelf(dma: Dma, tape: LoadedDrive,
                                                             ndmp_server: NdmpServer) -> None:
    write(dma, b"1" * 100)
    mtio(dma, MtioOp.EOF, 1)
    write(dma, b"2" * 100)
    write(dma, b"3" * 100)
    mtio(dma, MtioOp.BSR, 1)
    assert dma.call(Message.TAPE_CLOSE).error == Error.NO_ERR
    status = tape.shelf.open_drive(tape.index)
    assert (status.status().file_number, status.status().block_number) == (1, 1)
    status.close()
    again = Dma.connect(ndmp_server.port)
    assert again.call(Message.TAPE_OPEN, TapeOpenRequest(tape.nst, 0)).error == Error.NO_ERR
    assert where(again) == (1, 1)
    assert read(again, 100) == (Error.NO_ERR, b"3" * 100)


def test_rewinding_device_rewinds_at_close(ndmp_server: NdmpServer, tape: LoadedDrive) -> None:
    st0 = tape.st
    dma = Dma.connect(ndmp_server.port)
    assert dma.call(Message.TAPE_OPEN, TapeOpenRequest(st0, 1)).error == Error.NO_ERR
    write(dma, b"x" * 100)
    state = dma.call(Message.TAPE_GET_STATE).body
    assert state.flags & 0x08 == 0  # NOREWIND is not set for st0
    assert dma.call(Message.TAPE_CLOSE).error == Error.NO_ERR
    assert dma.call(Message.TAPE_OPEN, TapeOpenRequest(st0, 0)).error == Error.NO_ERR
    assert where(dma) == (0, 0)


def test_open_errors(ndmp_server: NdmpServer, tape: LoadedDrive) -> None:
    shelf, nst0 = tape.shelf, tape.nst
    dma = Dma.connect(ndmp_server.port)
    assert dma.call(Message.TAPE_OPEN, TapeOpenRequest(str(shelf.path / "bogus"), 0)).error == Error.NO_DEVICE_ERR
    empty = str(shelf.device_path(shelf.drive_count - 1, rewind=False))  # never loaded
    assert dma.call(Message.TAPE_OPEN, TapeOpenRequest(empty, 0)).error == Error.NO_TAPE_LOADED_ERR
    shelf.set_write_protect(tape.barcode, True)
    assert dma.call(Message.TAPE_OPEN, TapeOpenRequest(nst0, 1)).error == Error.WRITE_PROTECT_ERR
    assert dma.call(Message.TAPE_OPEN, TapeOpenRequest(nst0, 0)).error == Error.NO_ERR
    state = dma.call(Message.TAPE_GET_STATE).body
    assert state.flags & 0x10  # WR_PROT
    assert dma.call(Message.TAPE_MTIO, TapeMtioRequest(MtioOp.EOF, 1)).error == Error.PERMISSION_ERR


def test_write_in_early_warning_is_eom_and_writes_nothing(ndmp_server: NdmpServer, load_drive) -> None:
    small = load_drive(capacity=256 * 1024, early_warning=64 * 1024)
    dma = Dma.connect(ndmp_server.port)
    assert dma.call(Message.TAPE_OPEN, TapeOpenRequest(small.nst, 1)).error == Error.NO_ERR
    written = 0
    while True:
        reply = dma.call(Message.TAPE_WRITE, TapeWriteRequest(b"e" * 10240))
        if reply.error != Error.NO_ERR:
            break
        written += 1
    assert reply.error == Error.EOM_ERR and reply.body.count == 0
    assert written == (192 * 1024) // (10240 + 6) + 1  # the record that entered the zone was written
    assert where(dma) == (0, written)
    assert mtio(dma, MtioOp.EOF, 2) == 0  # filemarks still fit


def test_off_rewinds_and_unloads_until_the_changer_loads_it_again(dma: Dma, tape: LoadedDrive) -> None:
    nst0 = tape.nst
    write(dma, b"x" * 100)
    assert mtio(dma, MtioOp.OFF) == 0
    assert read(dma, 100)[0] == Error.NO_TAPE_LOADED_ERR
    assert dma.call(Message.TAPE_MTIO, TapeMtioRequest(MtioOp.TUR, 1)).error == Error.NO_TAPE_LOADED_ERR
    assert dma.call(Message.TAPE_CLOSE).error == Error.NO_ERR
    assert dma.call(Message.TAPE_OPEN, TapeOpenRequest(nst0, 0)).error == Error.NO_TAPE_LOADED_ERR
    drive = tape.shelf.open_drive(tape.index)
    drive.load()
    drive.close()
    assert dma.call(Message.TAPE_OPEN, TapeOpenRequest(nst0, 0)).error == Error.NO_ERR
    assert mtio(dma, MtioOp.TUR) == 0
    assert where(dma) == (0, 0)
    assert read(dma, 100) == (Error.NO_ERR, b"x" * 100)
