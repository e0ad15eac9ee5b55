"""The NDMP mover: moves the image between the data connection and the tape.

In mode READ (backup) it reads the data connection and writes tape records
of ``record_size`` bytes (the last one zero-padded); in mode WRITE (restore)
it reads tape records and sends the byte ranges asked for (MOVER_READ over
TCP, :meth:`Mover.request_read` from a local data service).  The image is a
stream numbered from 0; the window ``[window_offset, window_offset +
window_length)`` is the part of it on the current tape, starting where the
head stood when the mover went active (or the window was set while paused).

The data connection is any trio stream: a TCP connection, accepted after
MOVER_LISTEN(TCP) or made by MOVER_CONNECT, or one end of a
:func:`~ndmp.stream.local_stream_pair` handed over by the same session's
data service (:meth:`Mover.attach_local`).  The mover writes no filemarks.

State changes come first, then the NOTIFY post (the DMA follows a post with
MOVER_GET_STATE).  Validation runs arguments, then state, then the tape, as
ndmjob's test-mover probes it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Awaitable, Callable, Protocol

import trio

from tapelib import TapeError

from .drive import MAX_RECORD_SIZE, NdmpTape
from .errors import DevNotOpen, IllegalArgs, IllegalState, NdmpError, PermissionDenied
from .messages import Addr, MoverGetStateReply, NotifyHalted, NotifyMoverPaused
from .protocol import AddrType, Error, LogType, Message, MoverHaltReason, MoverMode, MoverPauseReason, MoverState
from .stream import (LocalStream, accept_one, check_connect_address, close_quietly, local_stream_pair,
                     open_tcp_listener, open_tcp_to)
from .xdr import U64_INVALID

_log = logging.getLogger(__name__)

DEFAULT_RECORD_SIZE = 10240
_RECEIVE_CHUNK = 1024 * 1024
#: Bytes (whole records, at least one) handed to the tape in one worker-thread call during a
#: backup: each call is a thread hop, which costs more than the copy at 10 KiB records.
_WRITE_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class Halted:
    """How a mover operation ended: its reason, the stream offset after the
    last record it wrote, its record size and window offset."""

    operation: int
    reason: MoverHaltReason
    stream_position: int
    record_size: int
    window_offset: int


class MoverHost(Protocol):
    """What the mover needs from its session."""

    @property
    def tape(self) -> NdmpTape | None: ...

    def data_is_idle(self) -> bool: ...

    def local_address(self) -> str: ...

    post: Callable[..., Awaitable[None]]
    log_message: Callable[..., Awaitable[None]]
    nursery: trio.Nursery


class Mover:
    """One session's mover."""

    def __init__(self, host: MoverHost) -> None:
        self._host = host
        self.record_size = DEFAULT_RECORD_SIZE
        #: Counts the mover's operations (each LISTEN or CONNECT begins one), and how the last
        #: one that halted ended (:class:`Halted`).  MOVER_STOP keeps them: a backup's data
        #: service reads them after it (:mod:`ndmp.restartable`).
        self.operation = 0
        self.last_halt: Halted | None = None
        self._reset()

    def _reset(self) -> None:
        self.state = MoverState.IDLE
        self.mode = MoverMode.READ
        self.pause_reason = MoverPauseReason.NA
        self.halt_reason = MoverHaltReason.NA
        self.record_num = 0
        self.bytes_moved = 0
        self.seek_position = 0
        self.bytes_left_to_read = 0
        self.window_offset = 0
        self.window_length = U64_INVALID
        self.addr = Addr(AddrType.LOCAL)
        self._listener: trio.SocketListener | None = None
        self._stream: trio.abc.Stream | None = None
        self._scope: trio.CancelScope | None = None
        self._resume = trio.Event()
        self._read_wanted = trio.Event()
        #: Stream offset at the tape head (backup: of the next record written).
        self._position = 0
        #: Records between the window's start on tape and the head (restore).
        self._tape_index = 0

    # -- state --------------------------------------------------------------
    def get_state(self) -> MoverGetStateReply:
        return MoverGetStateReply(
            error=Error.NO_ERR, mode=self.mode, state=self.state,
            pause_reason=self.pause_reason, halt_reason=self.halt_reason,
            record_size=self.record_size, record_num=self.record_num & 0xFFFFFFFF,
            bytes_moved=self.bytes_moved, seek_position=self.seek_position,
            bytes_left_to_read=self.bytes_left_to_read, window_offset=self.window_offset,
            window_length=self.window_length, data_connection_addr=self.addr)

    @property
    def stream_position(self) -> int:
        """The stream offset after the last record written to tape (backup)."""
        return self._position

    @property
    def busy(self) -> bool:
        """Whether the mover may be using the tape (TAPE ops are refused then)."""
        return self.state == MoverState.ACTIVE

    @property
    def holds_tape(self) -> bool:
        """Whether the tape must stay open (TAPE_CLOSE is refused)."""
        return self.state in (MoverState.ACTIVE, MoverState.LISTEN)

    def _window_end(self) -> int:
        if self.window_length == U64_INVALID or self.window_offset + self.window_length >= U64_INVALID:
            return U64_INVALID
        return self.window_offset + self.window_length

    # -- requests ---------------------------------------------------------------
    def set_record_size(self, length: int) -> None:
        if self.state not in (MoverState.IDLE, MoverState.PAUSED):
            raise IllegalState(f"MOVER_SET_RECORD_SIZE in state {MoverState(self.state).name}")
        if not 1 <= length <= MAX_RECORD_SIZE:
            raise IllegalArgs(f"record size {length} is not within 1 to {MAX_RECORD_SIZE}")
        self.record_size = length

    def set_window(self, offset: int, length: int) -> None:
        if self.state not in (MoverState.IDLE, MoverState.PAUSED):
            raise IllegalState(f"MOVER_SET_WINDOW in state {MoverState(self.state).name}")
        if offset % self.record_size:
            raise IllegalArgs(f"window offset {offset} is not a multiple of the record size {self.record_size}")
        if (length != U64_INVALID and offset + length < U64_INVALID
                and length % self.record_size):
            raise IllegalArgs(f"window length {length} is not a multiple of the record size {self.record_size}")
        self.window_offset = offset
        self.window_length = length
        self.record_num = offset // self.record_size
        self._position = offset
        self._tape_index = 0

    def _check_mode_and_tape(self, mode: int) -> NdmpTape:
        if mode not in (MoverMode.READ, MoverMode.WRITE):
            raise IllegalArgs(f"mover mode {mode} is neither READ nor WRITE")
        return self._tape_for(mode)

    def _tape_for(self, mode: int) -> NdmpTape:
        tape = self._host.tape
        if tape is None:
            raise DevNotOpen("the mover needs an open tape (TAPE_OPEN first)")
        if mode == MoverMode.READ and not tape.writable:
            raise PermissionDenied("a backup (mover mode READ) needs the tape opened read/write")
        return tape

    def _check_idle(self, what: str) -> None:
        if self.state != MoverState.IDLE:
            raise IllegalState(f"{what} in mover state {MoverState(self.state).name}")
        if not self._host.data_is_idle():
            raise IllegalState(f"{what} while the data service is busy")

    async def listen(self, mode: int, addr_type: int) -> Addr:
        if mode not in (MoverMode.READ, MoverMode.WRITE):
            raise IllegalArgs(f"mover mode {mode} is neither READ nor WRITE")
        if addr_type not in (AddrType.LOCAL, AddrType.TCP):
            raise IllegalArgs(f"address type {addr_type} is neither LOCAL nor TCP")
        self._check_idle("MOVER_LISTEN")
        self._tape_for(mode)
        self.operation += 1
        self.mode = MoverMode(mode)
        if addr_type == AddrType.LOCAL:
            self.addr = Addr(AddrType.LOCAL)
        else:
            self._listener, self.addr = await open_tcp_listener(self._host.local_address())
            self._host.nursery.start_soon(self._accept, self._listener)
        self.state = MoverState.LISTEN
        return self.addr

    async def _accept(self, listener: trio.SocketListener) -> None:
        with trio.CancelScope() as scope:
            self._scope = scope
            stream = await accept_one(listener)
            if self._listener is listener:
                self._listener = None
            if stream is None:
                return
            _log.info("mover: data connection from %s", stream.socket.getpeername()[0])
            self._scope = None
            await self._activate(stream)

    def attach_local(self) -> LocalStream:
        """The data service's end of a LOCAL data connection (DATA_CONNECT
        LOCAL): the mover must be listening on LOCAL; it goes active."""
        if self.state != MoverState.LISTEN or self.addr.addr_type != AddrType.LOCAL:
            raise IllegalState("DATA_CONNECT(LOCAL) needs the mover listening on LOCAL")
        ours, theirs = local_stream_pair()
        self._host.nursery.start_soon(self._activate, ours)
        self.state = MoverState.ACTIVE
        return theirs

    async def connect(self, mode: int, addr: Addr,
                      local_connect: Callable[[], LocalStream] | None = None) -> None:
        """MOVER_CONNECT: connect to a listening data service (``local_connect``
        gives the same session's data service end for LOCAL)."""
        if mode not in (MoverMode.READ, MoverMode.WRITE):
            raise IllegalArgs(f"mover mode {mode} is neither READ nor WRITE")
        check_connect_address(addr)
        self._check_idle("MOVER_CONNECT")
        self._tape_for(mode)
        self.operation += 1
        self.mode = MoverMode(mode)
        if addr.addr_type == AddrType.LOCAL:
            if local_connect is None:
                raise IllegalState("MOVER_CONNECT(LOCAL) needs the data service listening on LOCAL")
            stream: trio.abc.Stream = local_connect()
            self.addr = Addr(AddrType.LOCAL)
        else:
            stream, self.addr = await open_tcp_to(addr, "mover")
        self.state = MoverState.ACTIVE
        self._host.nursery.start_soon(self._activate, stream)

    def continue_(self) -> None:
        if self.state != MoverState.PAUSED:
            raise IllegalState(f"MOVER_CONTINUE in state {MoverState(self.state).name}")
        self._tape_for(self.mode)
        self.state = MoverState.ACTIVE
        self.pause_reason = MoverPauseReason.NA
        self._resume.set()

    async def abort(self) -> None:
        if self.state not in (MoverState.LISTEN, MoverState.ACTIVE, MoverState.PAUSED):
            raise IllegalState(f"MOVER_ABORT in state {MoverState(self.state).name}")
        await self._halt(MoverHaltReason.ABORTED)

    def stop(self) -> None:
        if self.state != MoverState.HALTED:
            raise IllegalState(f"MOVER_STOP in state {MoverState(self.state).name}")
        self.record_size = DEFAULT_RECORD_SIZE
        self._reset()

    def read(self, offset: int, length: int) -> None:
        """MOVER_READ: send ``length`` bytes of the stream from ``offset``."""
        if self.state != MoverState.ACTIVE or self.mode != MoverMode.WRITE:
            raise IllegalState("MOVER_READ needs an active mover in mode WRITE")
        if self.bytes_left_to_read:
            raise NdmpError("a MOVER_READ is still being served", Error.READ_IN_PROGRESS_ERR)
        self.request_read(offset, length)

    def request_read(self, offset: int, length: int) -> None:
        """A read range from the local data service (or MOVER_READ)."""
        self.seek_position = offset
        self.bytes_left_to_read = length
        self._read_wanted.set()

    async def close(self) -> None:
        if self.state == MoverState.IDLE:
            raise IllegalState("MOVER_CLOSE in state IDLE")
        if self.state != MoverState.HALTED:
            await self._halt(MoverHaltReason.CONNECT_CLOSED)

    async def shutdown(self) -> None:
        """The session ends: stop whatever runs, quietly."""
        self._cancel()
        await self._close_connection()

    # -- the work ---------------------------------------------------------------
    def _cancel(self) -> None:
        if self._scope is not None:
            self._scope.cancel()
            self._scope = None
        self._resume.set()

    async def _close_connection(self) -> None:
        await close_quietly(self._listener, self._stream)
        self._listener = self._stream = None

    async def _halt(self, reason: MoverHaltReason, why: str = "") -> None:
        """Halt; ``why`` (for a failure) also goes to the DMA as a LOG_MESSAGE."""
        if self.state in (MoverState.HALTED, MoverState.IDLE):
            return
        self.state = MoverState.HALTED
        self.halt_reason = reason
        self.pause_reason = MoverPauseReason.NA
        self.bytes_left_to_read = 0
        self.last_halt = Halted(self.operation, reason, self._position, self.record_size, self.window_offset)
        # Called from the mover's own task too, whose scope is cancelled
        # below: the rest must happen whatever is cancelled.
        with trio.CancelScope(shield=True):
            await self._close_connection()
            _log.info("mover halted: %s (%d records, %d bytes)", reason.name, self.record_num, self.bytes_moved)
            if why:
                await self._host.log_message(f"mover halted ({reason.name}): {why}", LogType.ERROR)
            await self._host.post(Message.NOTIFY_MOVER_HALTED, NotifyHalted(reason))
        self._cancel()

    async def _pause(self, reason: MoverPauseReason, seek_position: int) -> None:
        """Pause and wait for MOVER_CONTINUE (abort and close cancel the wait)."""
        self._resume = trio.Event()
        self.state = MoverState.PAUSED
        self.pause_reason = reason
        self.seek_position = seek_position
        if reason == MoverPauseReason.EOM:
            await self._host.log_message(
                f"mover paused: early warning on the tape after {self.record_num} records "
                f"(stream byte {seek_position}); change the tape and continue", LogType.WARNING)
        await self._host.post(Message.NOTIFY_MOVER_PAUSED, NotifyMoverPaused(reason, seek_position))
        await self._resume.wait()

    async def _activate(self, stream: trio.abc.Stream) -> None:
        if self.state not in (MoverState.LISTEN, MoverState.ACTIVE):
            await stream.aclose()
            return
        self._stream = stream
        self.state = MoverState.ACTIVE
        self._position = self.window_offset
        self._tape_index = 0
        with trio.CancelScope() as scope:
            self._scope = scope
            try:
                if self.mode == MoverMode.READ:
                    await self._backup(stream)
                else:
                    await self._restore(stream)
            except NdmpError as exc:
                _log.error("mover: %s", exc.message)
                await self._halt(MoverHaltReason.MEDIA_ERROR if exc.code in (Error.IO_ERR, Error.EOM_ERR)
                                 else MoverHaltReason.INTERNAL_ERROR, exc.message)
            except TapeError as exc:
                _log.error("mover: %s", exc.message)
                await self._halt(MoverHaltReason.MEDIA_ERROR, exc.message)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                _log.error("mover: data connection failed: %s", exc)
                await self._halt(MoverHaltReason.CONNECT_ERROR, f"data connection failed: {exc}")
            except Exception as exc:
                _log.exception("mover failed")
                await self._halt(MoverHaltReason.INTERNAL_ERROR, f"internal error: {exc!r}")

    async def _backup(self, stream: trio.abc.Stream) -> None:
        """Cut the stream into records as it comes (views of what was received: no copy but of a
        record that straddles two receives) and write them ``_WRITE_BYTES`` at a time, or as
        soon as the stream slows (a receive shorter than asked)."""
        size = self.record_size
        records: list[memoryview] = []
        part = bytearray()  # the start of the next record
        while True:
            chunk = await stream.receive_some(_RECEIVE_CHUNK)
            if not chunk:
                break
            view = memoryview(chunk)
            at = 0
            if part:
                at = min(size - len(part), len(view))
                part += view[:at]
                if len(part) == size:
                    records.append(memoryview(bytes(part)))
                    part = bytearray()
            whole = at + (len(view) - at) // size * size
            records.extend(view[i:i + size] for i in range(at, whole, size))
            part += view[whole:]
            if len(records) * size >= _WRITE_BYTES or (records and len(chunk) < _RECEIVE_CHUNK):
                await self._write_records(records)
                records = []
        if part:
            records.append(memoryview(bytes(part + bytes(size - len(part)))))
        if records:
            await self._write_records(records)
        await self._halt(MoverHaltReason.CONNECT_CLOSED)

    async def _write_records(self, records: list[memoryview]) -> None:
        """Write ``records`` (whole ones, of the record size) in the window, pausing at its end
        and at the tape's early warning until MOVER_CONTINUE."""
        size = self.record_size
        while records:
            room = self._window_end() - self._position
            fit = min(len(records), room // size) if room < U64_INVALID else len(records)
            if fit == 0:
                await self._pause(MoverPauseReason.EOW, self._position)
                continue
            tape = self._tape_for(MoverMode.READ)
            written = await trio.to_thread.run_sync(tape.write_records, records[:fit])
            self.record_num += written
            self.bytes_moved += written * size
            self._position += written * size
            del records[:written]
            if written < fit:
                await self._pause(MoverPauseReason.EOM, self._position)

    async def _restore(self, stream: trio.abc.Stream) -> None:
        self._host.nursery.start_soon(self._watch_peer_close, stream)
        while True:
            await self._read_wanted.wait()
            self._read_wanted = trio.Event()
            while self.bytes_left_to_read:
                await self._send_next(stream)

    async def _watch_peer_close(self, stream: trio.abc.Stream) -> None:
        """A restoring data service closes its end when it has what it needs."""
        try:
            while await stream.receive_some(_RECEIVE_CHUNK):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return  # closed by the mover itself, or reset: the sending side sees it
        if self._stream is stream:
            await self._halt(MoverHaltReason.CONNECT_CLOSED)

    async def _send_next(self, stream: trio.abc.Stream) -> None:
        """Send (part of) the record holding ``seek_position``; pause at a
        filemark, at end of data, or when the wanted byte is outside the window."""
        size = self.record_size
        offset = self.seek_position
        end = self._window_end()
        if offset < self.window_offset or offset >= end:
            await self._pause(MoverPauseReason.SEEK, offset)
            return
        index = (offset - self.window_offset) // size
        tape = self._tape_for(MoverMode.WRITE)
        if index != self._tape_index:
            delta = index - self._tape_index
            resid = (tape.forward_records(delta) if delta > 0 else tape.back_records(-delta))
            self._tape_index = index - (resid if delta > 0 else -resid)
            if resid:
                await self._pause(MoverPauseReason.EOF, offset)
                return
        try:
            data = await trio.to_thread.run_sync(tape.read, size)
        except NdmpError as exc:
            if exc.code in (Error.EOF_ERR, Error.EOM_ERR):
                await self._pause(MoverPauseReason.EOF, offset)
                return
            raise
        self._tape_index += 1
        self.record_num += 1
        skip = offset - (self.window_offset + index * size)
        want = min(self.bytes_left_to_read, end - offset)
        piece = data[skip:skip + want]
        advance = len(piece) if piece else size - skip
        # Account first: the DMA may send its next MOVER_READ as soon as the bytes arrive.
        self.bytes_moved += len(piece)
        self.seek_position = offset + advance
        self.bytes_left_to_read = max(0, self.bytes_left_to_read - advance)
        if piece:
            await stream.send_all(piece)
