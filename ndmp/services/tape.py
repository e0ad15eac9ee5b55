"""TAPE: direct access to a served drive, with NDMP's semantics (see
:mod:`ndmp.drive`).  Checks run arguments first, then the open tape, then
the mover (which owns the tape while it is active)."""

from __future__ import annotations


import trio

from ..drive import MAX_RECORD_SIZE, NdmpTape
from ..errors import DevNotOpen, IllegalArgs, IllegalState, NdmpError, PermissionDenied
from ..messages import (
    ErrorReply,
    TapeGetStateReply,
    TapeMtioReply,
    TapeMtioRequest,
    TapeOpenRequest,
    TapeReadReply,
    TapeReadRequest,
    TapeWriteReply,
    TapeWriteRequest,
)
from ..protocol import (
    TAPE_STATE_BLOCK_SIZE_UNS,
    TAPE_STATE_BLOCKNO_UNS,
    TAPE_STATE_FILE_NUM_UNS,
    TAPE_STATE_NOREWIND,
    TAPE_STATE_SOFT_ERRORS_UNS,
    TAPE_STATE_SPACE_REMAIN_UNS,
    TAPE_STATE_TOTAL_SPACE_UNS,
    TAPE_STATE_WR_PROT,
    Error,
    Message,
    MtioOp,
    TapeOpenMode,
)
from ..xdr import U32_INVALID, U64_INVALID
from . import Service, answers

_ALL_UNSUPPORTED = (TAPE_STATE_FILE_NUM_UNS | TAPE_STATE_SOFT_ERRORS_UNS | TAPE_STATE_BLOCK_SIZE_UNS
                    | TAPE_STATE_BLOCKNO_UNS | TAPE_STATE_TOTAL_SPACE_UNS | TAPE_STATE_SPACE_REMAIN_UNS)


class TapeService(Service):
    def _open_tape(self) -> NdmpTape:
        tape = self.session.tape
        if tape is None:
            raise DevNotOpen("no tape is open (TAPE_OPEN first)")
        return tape

    def _tape_for_io(self) -> NdmpTape:
        tape = self._open_tape()
        if self.session.mover.busy:
            raise IllegalState("the mover is using the tape")
        return tape

    @answers(Message.TAPE_OPEN)
    async def open(self, request: TapeOpenRequest) -> ErrorReply:
        if request.mode not in (TapeOpenMode.READ, TapeOpenMode.RDWR, TapeOpenMode.RAW):
            raise IllegalArgs(f"tape open mode {request.mode} is not READ, RDWR or RAW")
        session = self.session
        if session.tape is not None:
            raise NdmpError(f"{session.tape.device.name} is already open in this session", Error.DEVICE_OPENED_ERR)
        device = session.context.drives.lookup(request.device)
        if device is None:
            raise NdmpError(f"{request.device}: no such tape device here", Error.NO_DEVICE_ERR)
        writable = request.mode != TapeOpenMode.READ
        session.tape = await trio.to_thread.run_sync(NdmpTape, device, writable)
        session.log.info("%s: opened %s %s", session.peer, device.name, "read/write" if writable else "read-only")
        return ErrorReply(Error.NO_ERR)

    @answers(Message.TAPE_CLOSE)
    async def close(self, _request: None) -> ErrorReply:
        tape = self._open_tape()
        if self.session.mover.holds_tape:
            raise IllegalState("the mover is using the tape (stop or abort it first)")
        self.session.tape = None
        await trio.to_thread.run_sync(tape.close)
        return ErrorReply(Error.NO_ERR)

    @answers(Message.TAPE_GET_STATE)
    async def get_state(self, _request: None) -> TapeGetStateReply:
        tape = self.session.tape
        if tape is None:
            return TapeGetStateReply(
                unsupported=_ALL_UNSUPPORTED, error=Error.DEV_NOT_OPEN_ERR, file_num=U32_INVALID,
                soft_errors=U32_INVALID, block_size=U32_INVALID, blockno=U32_INVALID,
                total_space=U64_INVALID, space_remain=U64_INVALID)
        state = tape.state()
        flags = (TAPE_STATE_WR_PROT if state.write_protected else 0) | (
            0 if state.rewind else TAPE_STATE_NOREWIND)
        return TapeGetStateReply(
            unsupported=0, error=Error.NO_ERR, flags=flags, file_num=state.file_num,
            soft_errors=0, block_size=0,
            blockno=U32_INVALID if state.blockno is None else state.blockno,
            total_space=state.total_space, space_remain=state.space_remain)

    @answers(Message.TAPE_MTIO)
    async def mtio(self, request: TapeMtioRequest) -> TapeMtioReply:
        op, count = request.tape_op, request.count
        if op not in tuple(MtioOp):
            raise IllegalArgs(f"unknown tape operation {op}")
        tape = self._tape_for_io()
        op = MtioOp(op)
        actions = {
            MtioOp.FSF: tape.forward_files,
            MtioOp.BSF: tape.back_files,
            MtioOp.FSR: tape.forward_records,
            MtioOp.BSR: tape.back_records,
            MtioOp.EOF: tape.write_filemarks,
        }
        if op in actions:
            if op == MtioOp.EOF and not tape.writable:
                raise PermissionDenied("cannot write filemarks: the tape was opened read-only")
            resid = await trio.to_thread.run_sync(actions[op], count)
        elif op == MtioOp.REW:
            tape.rewind()
            resid = 0
        elif op == MtioOp.OFF:
            tape.unload()
            resid = 0
        else:
            tape.test_unit_ready()
            resid = 0
        return TapeMtioReply(Error.NO_ERR, resid)

    @answers(Message.TAPE_WRITE)
    async def write(self, request: TapeWriteRequest) -> TapeWriteReply:
        tape = self._tape_for_io()
        data = request.data_out
        if not tape.writable:
            raise PermissionDenied("the tape was opened read-only")
        if not data:
            return TapeWriteReply(Error.NO_ERR, 0)
        if len(data) > MAX_RECORD_SIZE:
            raise IllegalArgs(f"a record of {len(data)} bytes is longer than {MAX_RECORD_SIZE}")
        count = await trio.to_thread.run_sync(tape.write, data)
        return TapeWriteReply(Error.NO_ERR, count)

    @answers(Message.TAPE_READ)
    async def read(self, request: TapeReadRequest) -> TapeReadReply:
        tape = self._tape_for_io()
        if request.count == 0:
            return TapeReadReply(Error.NO_ERR, b"")
        if request.count > MAX_RECORD_SIZE:
            raise IllegalArgs(f"a read of {request.count} bytes is longer than {MAX_RECORD_SIZE}")
        data = await trio.to_thread.run_sync(tape.read, request.count)
        return TapeReadReply(Error.NO_ERR, data)

    @answers(Message.TAPE_EXECUTE_CDB)
    async def execute_cdb(self, _request: object) -> ErrorReply:
        raise NdmpError("TAPE_EXECUTE_CDB: loopback drives take no SCSI commands", Error.NOT_SUPPORTED_ERR)
