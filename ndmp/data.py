"""The NDMP data service: runs the dump engine between the file system and
the data connection.

A backup (DATA_START_BACKUP) dumps the ``FILESYSTEM`` env path into the
data connection, posts the file history (FH_ADD_DIR, FH_ADD_NODE) and
halts; a recover (DATA_START_RECOVER) reads the image from the data
connection -- asking for byte ranges: :meth:`~ndmp.mover.Mover.request_read`
of the same session's mover with LOCAL, NOTIFY_DATA_READ to the DMA over
TCP -- restores the name list and posts one LOG_FILE per name;
DATA_START_RECOVER_FILEHIST posts the image's file history only.  The
engine (:mod:`ndmp.engine`) runs in a worker thread; the session keeps
answering meanwhile.

The data connection is LOCAL (:meth:`Mover.attach_local`, or the mover's
MOVER_CONNECT to our DATA_LISTEN(LOCAL)) or TCP (DATA_CONNECT to another
server's mover, or DATA_LISTEN(TCP)).  State changes come first, then the
NOTIFY post.  A backup that does not end well leaves no end-of-dump record
in the stream: nobody can take the part on tape for a whole image.

Each backup and recover holds a dump or restore session slot
(:mod:`dumptool.sessions`, counted with pydump's and pyrestore's) from its
DATA_START until its engine returns; over the limit the DATA_START is
answered NO_MEM_ERR and nothing changes state.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from dumptool.contexts import Context, ContextStore
from dumptool.errors import DumpError, SessionError, SessionLimitError
from dumptool.format import MAX_DATE, TP_BSIZE
from dumptool.sessions import Session as SessionSlot
from dumptool.sessions import abort_pending, abort_reason, session_slot
from snapdump.numerals import is_decimal

from .engine import (MAX_NTREC, MIN_NTREC, NTREC, U64_INVALID, BackupRequest, DumpEngine, FileEntry, RecoverName,
                     blocking_factor, history_stats)
from .restartable import RESTART_CONTEXT, RESTART_OFFSET, NdmpContextKeeper, load_for_restart, restart_env
from .filehistory import dir_bodies, node_bodies
from .errors import EngineCancelled, EngineError, IllegalArgs, IllegalState, NdmpError, SessionLimit
from .messages import (
    Addr,
    DataGetStateReply,
    LogFile,
    Name,
    NotifyDataRead,
    NotifyHalted,
    Pval,
)
from .protocol import (
    DATA_STATE_EST_BYTES_REMAIN_UNS,
    DATA_STATE_EST_TIME_REMAIN_UNS,
    AddrType,
    DataHaltReason,
    DataOperation,
    DataState,
    Error,
    LogType,
    Message,
    MoverHaltReason,
    MoverMode,
    MoverState,
    RecoveryStatus,
)
from .stream import (LocalStream, accept_one, check_connect_address, close_quietly, local_stream_pair,
                     open_tcp_listener, open_tcp_to)

if TYPE_CHECKING:
    from .session import Session

_log = logging.getLogger(__name__)

BUTYPE = "dump"
_RECEIVE_CHUNK = 256 * 1024
#: Bytes of the image handed to a TCP data connection between two counts of what was sent whole.
_COUNTED_PIECE = 64 * 1024
#: Seconds a DATA_START waits for the accept of a connection the peer has made.
_ACCEPT_WAIT = 5.0
#: Seconds a halted backup waits for its LOCAL mover to stop before naming its restart point.
_SETTLE_WAIT = 5.0
#: Seconds between two looks for a volume event's abort note while an operation runs.
_VETO_POLL = 0.1
_TRUE = {"y", "yes", "t", "true", "1"}
_FALSE = {"n", "no", "f", "false", "0"}


def _flag(env: dict[str, str], name: str, default: bool) -> bool:
    value = env.get(name)
    if value is None or value == "":
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise IllegalArgs(f"{name}={value}: not y or n")


def _history_wanted(env: dict[str, str]) -> bool:
    """HIST: y or d (dir/node file history, the default) or n (none); f,
    file-based history, is not offered (the butype info says so)."""
    value = (env.get("HIST") or "y").lower()
    if value == "f":
        raise IllegalArgs("HIST=f: file-based history is not offered; use HIST=y (dir/node) or n")
    if value == "d":
        return True
    return _flag(env, "HIST", True)


def _acl_start(env: dict[str, str]) -> int | None:
    """ACL_START: the byte offset of the image's Pass V record, as a backup's env hands it back."""
    value = env.get("ACL_START") or ""
    if not value:
        return None
    if not is_decimal(value):
        raise IllegalArgs(f"ACL_START={value}: not a byte offset")
    return int(value)


def _slot(kind: str, path: str) -> SessionSlot:
    """A dump or restore session slot, counted with pydump's and pyrestore's
    (:mod:`dumptool.sessions`); over the limit, NO_MEM_ERR at once."""
    on = path
    while on and not os.path.lexists(on) and os.path.dirname(on) != on:
        on = os.path.dirname(on)  # a restore's destination made as it goes: its volume is its parent's
    try:
        return session_slot(kind, path, on=on, shared=True)
    except SessionLimitError as exc:
        raise SessionLimit(exc.message) from None
    except SessionError as exc:
        raise NdmpError(exc.message) from None


@dataclass
class _Backup:
    """One backup's facts for its restartable context, kept apart from the
    service's state (which DATA_STOP resets while the context is settled)."""

    keeper: NdmpContextKeeper
    local: bool
    #: The LOCAL mover's operation writing this backup (:attr:`ndmp.mover.Mover.operation`).
    mover_operation: int = 0
    sent: int = 0
    halt_reason: DataHaltReason = DataHaltReason.NA
    vetoed: str = ""
    context_left: Context | None = None
    settled: trio.Event = field(default_factory=trio.Event)


class DataService:
    """One session's data service."""

    def __init__(self, session: "Session", engine: DumpEngine) -> None:
        self._session = session
        self._engine = engine
        self._closing = False  # the session ends
        self._reset()

    def _reset(self) -> None:
        self.state = DataState.IDLE
        self.operation = DataOperation.NOACTION
        self.halt_reason = DataHaltReason.NA
        self.bytes_processed = 0
        self.read_offset = 0
        self.read_length = 0
        self.addr = Addr(AddrType.LOCAL)
        self.env: list[Pval] = []
        self._listener: trio.SocketListener | None = None
        self._stream: trio.abc.Stream | None = None
        self._stopped = threading.Event()
        self._accepted = trio.Event()
        #: A backup's restartable context (of a snapfs path): its keeper and what it left.
        self._backup_run: _Backup | None = None

    # -- state ------------------------------------------------------------------
    def get_state(self) -> DataGetStateReply:
        return DataGetStateReply(
            unsupported=DATA_STATE_EST_BYTES_REMAIN_UNS | DATA_STATE_EST_TIME_REMAIN_UNS,
            error=Error.NO_ERR, operation=self.operation, state=self.state, halt_reason=self.halt_reason,
            bytes_processed=self.bytes_processed, est_bytes_remain=U64_INVALID, est_time_remain=0xFFFFFFFF,
            data_connection_addr=self.addr, read_offset=self.read_offset, read_length=self.read_length)

    # -- connection ---------------------------------------------------------------
    async def listen(self, addr_type: int) -> Addr:
        if addr_type not in (AddrType.LOCAL, AddrType.TCP):
            raise IllegalArgs(f"address type {addr_type} is neither LOCAL nor TCP")
        if self.state != DataState.IDLE:
            raise IllegalState(f"DATA_LISTEN in data state {DataState(self.state).name}")
        if self._session.mover.state != MoverState.IDLE:
            raise IllegalState("DATA_LISTEN while the mover is busy")
        if addr_type == AddrType.LOCAL:
            self.addr = Addr(AddrType.LOCAL)
        else:
            self._listener, self.addr = await open_tcp_listener(self._session.local_address())
            self._session.nursery.start_soon(self._accept, self._listener)
        self.state = DataState.LISTEN
        return self.addr

    async def _accept(self, listener: trio.SocketListener) -> None:
        stream = await accept_one(listener)
        if self._listener is listener:
            self._listener = None
        if stream is None:
            return
        if self.state != DataState.LISTEN:
            await stream.aclose()
            return
        _log.info("data: connection from %s", stream.socket.getpeername()[0])
        self._stream = stream
        self.state = DataState.CONNECTED
        self._accepted.set()

    def local_connect(self) -> LocalStream:
        """The mover's end when it does MOVER_CONNECT(LOCAL) to our DATA_LISTEN(LOCAL)."""
        if self.state != DataState.LISTEN or self.addr.addr_type != AddrType.LOCAL:
            raise IllegalState("MOVER_CONNECT(LOCAL) needs the data service listening on LOCAL")
        ours, theirs = local_stream_pair()
        self._stream = ours
        self.state = DataState.CONNECTED
        return theirs

    @property
    def listening_local(self) -> bool:
        return self.state == DataState.LISTEN and self.addr.addr_type == AddrType.LOCAL

    async def connect(self, addr: Addr) -> None:
        check_connect_address(addr)
        if self.state != DataState.IDLE:
            raise IllegalState(f"DATA_CONNECT in data state {DataState(self.state).name}")
        if addr.addr_type == AddrType.LOCAL:
            self._stream = self._session.mover.attach_local()
            self.addr = Addr(AddrType.LOCAL)
        else:
            self._stream, self.addr = await open_tcp_to(addr, "data")
        self.state = DataState.CONNECTED

    # -- operations -------------------------------------------------------------------
    def _check_start(self, butype: str, mode: MoverMode) -> None:
        if butype != BUTYPE:
            raise IllegalArgs(f"backup type {butype!r} is not supported (only {BUTYPE!r})")
        if self.state != DataState.CONNECTED:
            raise IllegalState(f"DATA_START in data state {DataState(self.state).name}")
        mover = self._session.mover
        if self.addr.addr_type == AddrType.LOCAL and (mover.state != MoverState.ACTIVE or mover.mode != mode):
            raise IllegalState(f"the local mover is not active in mode {mode.name}")

    def _backup_request(self, env: dict[str, str]) -> BackupRequest:
        path = env.get("FILESYSTEM", "")
        if not path:
            raise IllegalArgs("the env has no FILESYSTEM (the path to back up)")
        path = self._session.context.config.check_path(path)
        level_text = env.get("LEVEL", "0") or "0"
        if not is_decimal(level_text) or not 0 <= int(level_text) <= 31:
            raise IllegalArgs(f"LEVEL={level_text}: not a level from 0 to 31")
        base_date: int | None = None
        base = env.get("BASE_DATE", "-1") or "-1"
        try:
            base_value = int(base)
        except ValueError:
            raise IllegalArgs(f"BASE_DATE={base}: not a number") from None
        if base_value > MAX_DATE:
            raise IllegalArgs(f"BASE_DATE={base}: out of range (a dump's dates end in January 2038)")
        if base_value > 0:
            base_date = base_value
        if env.get("TYPE", BUTYPE) not in ("", BUTYPE):
            raise IllegalArgs(f"TYPE={env['TYPE']}: this backup type is {BUTYPE}")
        _history_wanted(env)
        _flag(env, "DIRECT", False)  # checked only: every backup supports direct access
        ntrec = NTREC  # another server's mover: its record size is the DMA's to know
        if self.addr.addr_type == AddrType.LOCAL:
            size = self._session.mover.record_size
            found = blocking_factor(size)
            if found is None:
                raise IllegalArgs(f"the mover's record size {size} sets no dump blocking factor "
                                  f"(records of {MIN_NTREC} to {MAX_NTREC} KiB)")
            ntrec = found
        return BackupRequest(path, int(level_text), update=_flag(env, "UPDATE", True), base_date=base_date,
                             dumpdates=self._session.context.config.dumpdates, ntrec=ntrec)

    def _check_restart_records(self, cid: str, ntrec: object) -> None:
        """A restart goes on with the interrupted image's records: a LOCAL mover must write that size
        (another record size would cut the image's records where its volume header says they do not end)."""
        if self.addr.addr_type != AddrType.LOCAL or not isinstance(ntrec, int):
            return
        size = self._session.mover.record_size
        if size != ntrec * TP_BSIZE:
            raise IllegalArgs(f"{RESTART_CONTEXT}={cid}: the image's records are {ntrec * TP_BSIZE} bytes; "
                              f"set the mover's record size to that (it is {size})")

    def _restart_path(self, cid: str) -> str:
        """The path the backup of context ``cid`` dumps (served here)."""
        try:
            ctx = ContextStore().load(cid)
        except DumpError as exc:
            raise IllegalArgs(f"{RESTART_CONTEXT}={cid}: {exc.message}") from None
        self._check_restart_records(cid, ctx.options.get("ntrec"))
        return self._session.context.config.check_path(os.path.join(ctx.mount, ctx.rel) if ctx.rel else ctx.mount)

    async def _peer_connecting(self) -> None:
        """A DMA starts the operation as soon as the peer's MOVER_CONNECT to our
        DATA_LISTEN(TCP) returns: give our accept the moment it still needs."""
        if self.state == DataState.LISTEN and self.addr.addr_type == AddrType.TCP:
            with trio.move_on_after(_ACCEPT_WAIT):
                await self._accepted.wait()

    async def start_backup(self, butype: str, env: list[Pval]) -> None:
        await self._peer_connecting()
        self._check_start(butype, MoverMode.READ)
        values = {p.name: p.value for p in env}
        restart_id = values.get(RESTART_CONTEXT, "")
        if restart_id:
            path = self._restart_path(restart_id)
        else:
            request = self._backup_request(values)
            path = request.path
        hist = _history_wanted(values)
        slot = _slot("dump", path)
        restarting, lock = None, None
        try:
            if restart_id:
                restarting, lock = await trio.to_thread.run_sync(load_for_restart, ContextStore(), restart_id,
                                                                 values.get(RESTART_OFFSET) or None)
                request = BackupRequest(path, restarting.level, update=bool(restarting.options.get("update")),
                                        base_date=restarting.base_date, restart_of=restarting)
                # (its file history is the whole image's, without positions: DIRECT=n)
        except BaseException:
            slot.release()
            raise
        self.env = list(env)
        self.operation = DataOperation.BACKUP
        self.state = DataState.ACTIVE
        self._stopped = threading.Event()
        keeper = NdmpContextKeeper(ContextStore(), self._stopped, context=restarting,
                                   say=lambda line: _log.info("data: %s", line),
                                   warn=lambda line: _log.warning("data: %s", line))
        self._backup_run = _Backup(keeper, local=self.addr.addr_type == AddrType.LOCAL,
                                   mover_operation=self._session.mover.operation)
        self._start_holding(slot, self._backup, request, hist, lock=lock)

    async def start_recover(self, env: list[Pval], nlist: list[Name], butype: str, filehist: bool) -> None:
        await self._peer_connecting()
        self._check_start(butype, MoverMode.WRITE)
        values = {p.name: p.value for p in env}
        direct = _flag(values, "DIRECT", False)
        acl_start = _acl_start(values)
        config = self._session.context.config
        names = []
        for name in nlist:
            destination = name.destination_path
            if name.name:
                destination = destination.rstrip("/") + "/" + name.name
            if not filehist:
                destination = config.check_destination(destination)
            names.append(RecoverName(name.original_path, destination, name.fh_info))
        prefix = values.get("PREFIX") or None
        if not filehist and not names:
            if not prefix:
                raise IllegalArgs("an empty name list needs PREFIX (where to restore everything)")
            prefix = config.check_destination(prefix)
        slot = _slot("restore", prefix or (names[0].destination if names else ""))
        self.env = list(env)
        self.operation = DataOperation.RECOVER_FILEHIST if filehist else DataOperation.RECOVER
        self.state = DataState.ACTIVE
        self._stopped = threading.Event()
        if filehist:
            self._start_holding(slot, self._list)
        else:
            self._start_holding(slot, self._recover, names, direct, prefix, acl_start)

    def _start_holding(self, slot: SessionSlot, work: Callable[..., Awaitable[None]], *args: object,
                       lock: int | None = None) -> None:
        """Run *work* in the session's nursery; the slot is given back when it
        ends (when the engine's thread has returned, after a halt too).
        Meanwhile the slot's abort note is watched for (:meth:`_watch_veto`)."""
        run = self._backup_run if work == self._backup else None

        async def holding() -> None:
            try:
                async with trio.open_nursery() as inner:
                    inner.start_soon(self._watch_veto, slot)
                    await work(*args)
                    inner.cancel_scope.cancel()
            finally:
                try:
                    with trio.CancelScope(shield=True):
                        await self._settle(run, lock, slot)
                finally:
                    if run is not None:
                        run.settled.set()
                    slot.release()

        try:
            self._session.nursery.start_soon(holding)
        except BaseException:
            slot.release()
            raise

    async def _settle(self, run: _Backup | None, lock: int | None, slot: SessionSlot) -> None:
        """After a backup's engine returned: an aborted one names its restart
        point (:meth:`NdmpContextKeeper.finalize`) from what was sent whole
        and, with a LOCAL mover, what the mover wrote once it stopped; a
        restart's context ``lock`` is let go.  A volume event's abort meanwhile
        (the mover still writing a stream the data service ended) ends it as
        not restartable."""
        if run is None:
            return
        keeper = run.keeper
        try:
            mover = self._session.mover
            succeeded = run.halt_reason == DataHaltReason.SUCCESSFUL
            tape = record = None
            window = 0
            if run.local:  # the mover writes what it holds; after a success, all of the stream
                busy = (MoverState.ACTIVE, MoverState.PAUSED) if succeeded else (MoverState.ACTIVE,)

                def writing() -> bool:
                    return mover.operation == run.mover_operation and mover.state in busy

                with trio.move_on_after(math.inf if succeeded else _SETTLE_WAIT):
                    while writing() and not self._closing:
                        if abort_pending(os.getpid(), slot.slot):
                            run.vetoed = abort_reason(os.getpid(), slot.slot) or "a volume event"
                            _log.warning("data: the backup's stream, still being written, aborted by %s",
                                         run.vetoed)
                            await self._session.log_message(f"backup aborted by {run.vetoed}", LogType.ERROR)
                            if writing():  # its tape gets no more of the stream (nor its end)
                                await mover.abort()
                            break
                        await trio.sleep(0.02)
                halted = mover.last_halt
                if halted is not None and halted.operation == run.mover_operation:
                    mover_end, tape, record, window = (halted.reason, halted.stream_position, halted.record_size,
                                                       halted.window_offset)
                else:  # still at it (paused, or the wait ran out)
                    mover_end, tape, record, window = None, mover.stream_position, mover.record_size, \
                        mover.window_offset
                succeeded = succeeded and not run.vetoed and mover_end == MoverHaltReason.CONNECT_CLOSED
            if succeeded:
                await trio.to_thread.run_sync(keeper.complete)
                return
            keeper.sending_failed(None)  # what the engine handed over did not all reach the tape
            if not keeper.aborted:
                return
            reason = f"data halted {DataHaltReason(run.halt_reason).name}"
            ctx = await trio.to_thread.run_sync(
                lambda: keeper.finalize(run.sent, tape, record, window, run.vetoed, reason))
            run.context_left = ctx
            if ctx is not None:
                _log.info("data: context %s left at stream byte %s (%s)", ctx.id,
                          ctx.options.get("restart_offset", "?"), "not restartable" if ctx.vetoed else "restartable")
        finally:
            if lock is not None:
                os.close(lock)

    async def _watch_veto(self, slot: SessionSlot) -> None:
        """A volume event's ``--override-vetoes`` or ``--automatic``
        (:mod:`snapfs.vetoes`) aborts this operation alone: it leaves a note
        for this process and slot; the operation halts ABORTED with a
        LOG_MESSAGE naming the event, and the slot is let go as the engine
        returns.  The server is not signalled and serves the others."""
        pid = os.getpid()
        while slot.held:
            await trio.sleep(_VETO_POLL)
            if abort_pending(pid, slot.slot):
                reason = abort_reason(pid, slot.slot) or "a volume event"
                if self._backup_run is not None:
                    self._backup_run.vetoed = reason
                _log.warning("data: %s aborted by %s", self.operation.name.lower(), reason)
                await self._halt(DataHaltReason.ABORTED, f"aborted by {reason}")
                return

    async def abort(self) -> None:
        if self.state not in (DataState.LISTEN, DataState.CONNECTED, DataState.ACTIVE):
            raise IllegalState(f"DATA_ABORT in data state {DataState(self.state).name}")
        await self._halt(DataHaltReason.ABORTED)

    def stop(self) -> None:
        if self.state != DataState.HALTED:
            raise IllegalState(f"DATA_STOP in data state {DataState(self.state).name}")
        self._reset()

    async def get_env(self) -> list[Pval]:
        """The env as run; after a halt that left a restartable context, what
        a DMA needs to restart it (:func:`ndmp.restartable.restart_env`)."""
        if self.state == DataState.IDLE or self.operation != DataOperation.BACKUP:
            raise IllegalState("DATA_GET_ENV needs a backup (running or halted)")
        env = list(self.env)
        run = self._backup_run
        if self.state != DataState.HALTED or run is None:
            return env
        mover = self._session.mover
        if not (run.halt_reason == DataHaltReason.SUCCESSFUL and run.local
                and mover.state in (MoverState.ACTIVE, MoverState.PAUSED)):  # else still writing: nothing to say
            with trio.move_on_after(_SETTLE_WAIT * 2):
                await run.settled.wait()
        ctx = run.context_left
        if ctx is None:
            return env
        extra = await trio.to_thread.run_sync(restart_env, ctx)
        return [p for p in env if p.name not in extra] + [Pval(k, v) for k, v in extra.items()]

    async def shutdown(self) -> None:
        """The session ends: stop whatever runs, quietly."""
        self._closing = True
        self._stopped.set()
        await self._close_connection()

    # -- the work ---------------------------------------------------------------------
    async def _close_connection(self) -> None:
        await close_quietly(self._listener, self._stream)
        self._listener = self._stream = None

    async def _halt(self, reason: DataHaltReason, why: str = "") -> None:
        if self.state in (DataState.HALTED, DataState.IDLE):
            return
        self._stopped.set()
        self.state = DataState.HALTED
        self.halt_reason = reason
        if self._backup_run is not None:
            self._backup_run.halt_reason = reason
        with trio.CancelScope(shield=True):
            _log.info("data halted: %s (%d bytes)", reason.name, self.bytes_processed)
            if why:
                await self._session.log_message(f"data halted ({reason.name}): {why}", LogType.ERROR)
            await self._session.post(Message.NOTIFY_DATA_HALTED, NotifyHalted(reason))
            # then the image stream ends: a mover at its other end writes the last record and
            # halts after this post, as the DMA expects them (ndmjob: no 2 s wait for a notice)
            await self._close_connection()

    async def _run(self, work: Callable[[], Awaitable[None]]) -> None:
        try:
            await work()
        except EngineCancelled:
            await self._halt(DataHaltReason.ABORTED)
        except EngineError as exc:
            _log.error("data: %s", exc.message)
            await self._halt(DataHaltReason.INTERNAL_ERROR, exc.message)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            if self.state == DataState.ACTIVE:  # (the session said it once when its DMA went away)
                (_log.info if self._closing else _log.error)("data: data connection failed: %s", exc)
                await self._halt(DataHaltReason.CONNECT_ERROR, f"data connection failed: {exc}")
        except Exception as exc:
            _log.exception("data service failed")
            await self._halt(DataHaltReason.INTERNAL_ERROR, f"internal error: {exc!r}")

    async def _backup(self, request: BackupRequest, hist: bool) -> None:
        run = self._backup_run
        assert run is not None

        async def work() -> None:
            stream = self._stream
            assert stream is not None

            async def send(data: bytes) -> None:
                # counted as it goes: a DMA that gives up at a paused mover holds part of a big piece,
                # and the restart point is what was handed over whole (RESTART_OFFSET)
                if isinstance(stream, LocalStream):  # (the LOCAL mover's tape count bounds it there)
                    await stream.send_all(data)
                    self.bytes_processed += len(data)
                    run.sent += len(data)
                    return
                view = memoryview(data)
                for at in range(0, len(view), _COUNTED_PIECE):
                    piece = view[at:at + _COUNTED_PIECE]
                    await stream.send_all(piece)
                    self.bytes_processed += len(piece)
                    run.sent += len(piece)

            def write(data: bytes) -> None:
                trio.from_thread.run(send, data)

            result = await trio.to_thread.run_sync(self._engine.backup, request, write, self._stopped, run.keeper)
            if self.state != DataState.ACTIVE:
                return
            if hist:
                await self._post_history(result.entries)
            self.env = self._backup_env(request, result.date, result.base_date, result.acl_start)
            for line in result.warnings:
                await self._session.log_message(line, LogType.WARNING)
            if request.restart_of is not None:
                cp = request.restart_of.checkpoint
                await self._session.log_message(
                    f"restart of context {request.restart_of.id} done: volume {cp.volume + 1} of the dump of "
                    f"{request.path} at level {request.level}, from stream block {cp.medium_block}: "
                    f"{result.bytes} bytes")
            else:
                await self._session.log_message(
                    f"dump of {request.path} at level {request.level} done: {result.bytes} bytes, "
                    f"{len(history_stats(result.entries))} inodes")
            await self._halt(DataHaltReason.SUCCESSFUL)

        await self._run(work)

    def _backup_env(self, request: BackupRequest, date: int, base_date: int, acl_start: int | None) -> list[Pval]:
        """The env as run, with defaults and what the next incremental needs (doc 6.5)."""
        given = {p.name: p.value for p in self.env if not p.name.startswith("RESTART")}
        out = dict(given)
        out.update({"FILESYSTEM": given.get("FILESYSTEM", request.path), "TYPE": BUTYPE,
                    "LEVEL": str(request.level), "UPDATE": "y" if request.update else "n",
                    "HIST": given.get("HIST") or "y", "DUMP_DATE": str(date),
                    "DIRECT": "n" if request.restart_of is not None else "y",
                    "BASE_DATE": str(base_date) if request.base_date else given.get("BASE_DATE", "-1") or "-1",
                    "PATHNAME_SEPARATOR": "/", "NDMP_VERSION": "4"})
        out.pop("ACL_START", None)
        if acl_start is not None:
            out["ACL_START"] = str(acl_start)
        return [Pval(k, v) for k, v in out.items()]

    async def _post_history(self, entries: list[FileEntry]) -> None:
        for body in dir_bodies(entries):
            await self._session.post_encoded(Message.FH_ADD_DIR, body)
        for body in node_bodies(entries):
            await self._session.post_encoded(Message.FH_ADD_NODE, body)

    def _fetch(self, offset: int, length: int | None) -> Iterator[bytes]:
        """In the engine's thread: a byte range of the image from the mover."""
        stream = self._stream
        assert stream is not None
        trio.from_thread.run(self._ask_read, offset, U64_INVALID if length is None else length)
        left = length
        while left is None or left > 0:
            if self._stopped.is_set():
                raise EngineCancelled("the recover was stopped")
            data = trio.from_thread.run(stream.receive_some, _RECEIVE_CHUNK if left is None
                                        else min(_RECEIVE_CHUNK, left))
            if not data:
                return
            self.bytes_processed += len(data)
            if left is not None:
                left -= len(data)
            yield data

    async def _ask_read(self, offset: int, length: int) -> None:
        self.read_offset, self.read_length = offset, length
        if self.addr.addr_type == AddrType.LOCAL:
            self._session.mover.request_read(offset, length)
        else:
            await self._session.post(Message.NOTIFY_DATA_READ, NotifyDataRead(offset, length))

    async def _recover(self, names: list[RecoverName], direct: bool, prefix: str | None,
                       acl_start: int | None) -> None:
        async def work() -> None:
            result = await trio.to_thread.run_sync(
                lambda: self._engine.recover(self._fetch, names, direct=direct, prefix=prefix, acl_start=acl_start))
            if self.state != DataState.ACTIVE:
                return
            for line in result.messages:
                await self._session.log_message(line, LogType.ERROR)
            for line in result.notes:
                await self._session.log_message(line, LogType.WARNING)
            read = f"recover read {result.bytes_read} bytes of the image in {result.ranges} range(s)"
            _log.info("data: %s", read)
            await self._session.log_message(read)
            for name, ok in zip(names, result.restored):
                await self._session.post(Message.LOG_FILE, LogFile(
                    name.original, RecoveryStatus.SUCCESSFUL if ok else RecoveryStatus.FAILED_NOT_FOUND))
            await self._close_connection()
            if result.failed:
                await self._halt(DataHaltReason.INTERNAL_ERROR, "the restore met errors (see the log)")
            else:
                await self._halt(DataHaltReason.SUCCESSFUL)

        await self._run(work)

    async def _list(self) -> None:
        async def work() -> None:
            entries = await trio.to_thread.run_sync(self._engine.list_history, self._fetch)
            if self.state != DataState.ACTIVE:
                return
            await self._close_connection()
            await self._post_history(entries)
            await self._halt(DataHaltReason.SUCCESSFUL)

        await self._run(work)
