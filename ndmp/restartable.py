"""Restartable NDMP backups: the context a DATA backup of a snapfs path
interrupted in stage IV leaves behind, and the DATA_START_BACKUP that goes
on from it as the dump's next volume.

The contexts are pydump's (:mod:`dumptool.contexts`: the same folder, ``pydump
--contexts`` lists them, ``pydump --delete-context`` deletes them), with one
difference: the medium is not ours.  The image goes into the data connection
and a mover -- this session's, or another server's -- writes it to tape, so
what is safely on the medium is known only when the backup has halted:

* the bytes the data service handed to the connection whole;
* with a LOCAL mover, also what that mover wrote to its tape (a mover
  paused at the end of the medium holds records it never wrote).

So :class:`NdmpContextKeeper` does not checkpoint as the dump goes: it keeps
where each file of stage IV starts, and :meth:`NdmpContextKeeper.finalize`,
once the halt is known, names the restart point: the largest offset of the
stream, no further than either count, a whole number of 1 KiB blocks and --
with a LOCAL mover -- of the mover's records from its window's start.  The
DMA reads it in DATA_GET_ENV (:data:`RESTART_CONTEXT`,
:data:`RESTART_OFFSET`, :data:`RESTARTABLE`): it must make the interrupted
tape end there (the stream's bytes up to the offset, nothing after: for a
mover that zero-padded its last record, back space over it and write the
filemarks) and gives ``RESTART_CONTEXT=ID`` in the env of a new
DATA_START_BACKUP, whose stream is then the next volume, as ``pydump
--restart`` writes it.
"""

from __future__ import annotations

import array
import bisect
import math
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from dumptool.contexts import (NDMP_MEDIUM, Checkpoint, Context, ContextKeeper, ContextStore, State, Status,
                               give_back, snapshot_names)
from dumptool.dump import DumpOptions, Stage
from dumptool.errors import DumpError, RestartError
from dumptool.restart import restart_options as dump_restart_options
from dumptool.format import TP_BSIZE
from snapdump.numerals import is_decimal

from .errors import EngineCancelled, IllegalArgs

if TYPE_CHECKING:
    from dumptool.dump import Cursor, Dump

#: DATA_GET_ENV after a halted backup, and DATA_START_BACKUP's env for a restart.
RESTART_CONTEXT = "RESTART_CONTEXT"
#: The stream offset (bytes) the interrupted tape must end at; the restart goes on from there.
RESTART_OFFSET = "RESTART_OFFSET"
#: y when the context can be restarted, n (and why, in RESTART_REFUSAL) when not.
RESTARTABLE = "RESTARTABLE"
RESTART_REFUSAL = "RESTART_REFUSAL"
#: The volume (1, 2, ...) the interrupted stream was and the restart's stream will be.
RESTART_VOLUME = "RESTART_VOLUME"
#: The medium a context names: the stream of an NDMP DATA backup.
MEDIUM = NDMP_MEDIUM


class NdmpContextKeeper(ContextKeeper):
    """A :class:`~dumptool.contexts.ContextKeeper` for one NDMP backup (a
    new one, or the restart of ``context``); ``stopped`` set from outside
    ends the dump between two steps (:class:`~ndmp.errors.EngineCancelled`)."""

    def __init__(self, store: ContextStore, stopped: threading.Event, *, context: Context | None = None,
                 say: Callable[[str], None], warn: Callable[[str], None]) -> None:
        super().__init__(store, file_history=True, context=context, say=say, warn=warn)
        self.stopped = stopped
        #: Stage IV's inodes: their index in the dump's order and the block each starts at.
        self._indexes = array.array("q")
        self._starts = array.array("q")
        self._plan_inodes: Callable[[int], int] | None = None
        #: The stream of this run: block number of its first byte, headers that took no number there.
        self._base = 0 if context is None else context.checkpoint.medium_block
        self._headers = 0 if context is None else 1
        self._seed = context is not None
        self._writer = None
        self.dump_done = False
        self.aborted = False
        self.why = ""

    # -- as the dump goes -----------------------------------------------------------
    def _step(self, dump: Dump, cursor: Cursor) -> None:
        if self.stopped.is_set():
            raise EngineCancelled("the backup was stopped")
        stage = cursor.stage
        if stage is Stage.MAP:
            self._ndirs = len(dump.plan.directories)
            self._total = self._ndirs + len(dump.plan.files)
            plan = dump.plan
            self._plan_inodes = lambda i: plan.directories[i] if i < self._ndirs else plan.files[i - self._ndirs]
            return
        if stage is Stage.END:
            self._completed()  # the dump ended; its stream may not have been sent yet
            return
        if stage is Stage.DIRECTORIES and cursor.done == self._ndirs:  # where the first file starts
            self._indexes.append(self._ndirs)
            self._starts.append(cursor.next_block)
            return
        if stage is not Stage.FILES:
            return
        if self._seed:  # a restart: the inode it writes again starts before the new volume
            self._seed = False
            cp = self.ctx.checkpoint
            self._indexes.append(cp.index)
            self._starts.append(cp.resume_block)
        index = self._ndirs + cursor.done
        if self.ctx is None:
            self._begin(dump)
            self.ctx.options["medium"] = MEDIUM
            self.store.save(self.ctx)
        self._writer = dump.writer
        if index < self._total:
            self._indexes.append(index)
            self._starts.append(cursor.next_block)

    def _aborted(self, exc: BaseException) -> None:
        """The dump stopped: nothing is decided before :meth:`finalize` (the
        context stays busy, its snapshot kept)."""
        ctx, snap = self.ctx, self.snap
        if ctx is None or snap is None:
            return
        if isinstance(exc, RestartError):
            ctx.status = Status.ABORTED
            self.store.save(ctx)
            snap.created = False
            return
        snap.created = False  # kept until finalize says
        self.aborted = True
        self.why = getattr(exc, "message", None) or str(exc) or type(exc).__name__

    def _completed(self) -> None:
        """The dump wrote its end, which is not the end of the backup: the
        stream may still be on its way to the tape.  The snapshot is kept
        until :meth:`complete` (or :meth:`finalize`)."""
        self.dump_done = True
        if self.ctx is not None and self.snap is not None:
            self.snap.created = False

    def complete(self) -> None:
        """The backup ended well (the data halted SUCCESSFUL): the context is
        removed, the snapshot given back (deleted when the dump made it)."""
        ctx, self.ctx = self.ctx, None
        self.snap = None
        if ctx is None:
            return
        if self.offsets is not None:
            self.offsets.close()
        try:
            give_back(ctx.mount, ctx.snapshot, ctx.holder, delete=ctx.auto_created)
        except DumpError as exc:
            self.warn(exc.message)
        self.store.remove(ctx.id)

    def sending_failed(self, exc: BaseException | None) -> None:
        """The backup did not end well although the dump may have (its stream
        did not all reach the tape): as an abort."""
        if self.ctx is None or self.aborted:
            return
        if self.snap is not None:
            self.snap.created = False
        self.aborted = True
        if exc is not None:
            self.why = getattr(exc, "message", None) or str(exc) or type(exc).__name__

    # -- once the halt is known -----------------------------------------------------------
    def finalize(self, sent: int, tape: int | None, record: int | None, window_offset: int,
                 vetoed: str, reason: str) -> Context | None:
        """Name the restart point of an aborted backup (see the module's text)
        and save the context: ``sent`` bytes handed over whole, ``tape`` the
        bytes of the stream a LOCAL mover wrote (None: not known here),
        ``record`` its record size from ``window_offset``.  The context,
        or None when there is none to keep (given back)."""
        ctx = self.ctx
        if ctx is None or not self.aborted:
            return None
        self.aborted = False
        end = sent if tape is None else min(sent, tape)
        offset = _restart_offset(end, record, window_offset)
        point = self._point(offset)
        if point is None and ctx.checkpoint is None:  # as pydump's: nothing to go on from, nothing kept
            return self._forget(ctx)
        if point is not None:
            index, resume_block, medium_block = point
            writer = self._writer
            ctx.checkpoint = Checkpoint(
                volume=writer.volume if writer is not None else 1, index=index, ino=self._plan_inodes(index),
                resume_block=resume_block, medium_block=medium_block,
                unnumbered=writer.unnumbered if writer is not None else 0, medium=MEDIUM, medium_address=None,
                is_tape=False)
            ctx.options.update(restart_offset=offset, restart_base=self._base, restart_headers=self._headers)
        elif ctx.checkpoint is not None and ctx.restarts:
            self.say(f"context {ctx.id}: the restart wrote nothing past its volume header; the restart point "
                     "stays as it was")
        ctx.status = Status.ABORTED
        ctx.state = State.RESTARTABLE
        ctx.reason = reason or self.why
        ctx.vetoed = vetoed
        ctx.pid = os.getpid()
        self.store.save(ctx)
        if self.offsets is not None:
            self.offsets.close()
        self.ctx = None
        return ctx

    def _point(self, offset: int) -> tuple[int, int, int] | None:
        """(index, first block, cut block) of the inode the cut at stream byte ``offset`` falls in."""
        block = self._base + offset // TP_BSIZE - self._headers
        if offset <= 0 or block <= self._base or not self._starts or self._plan_inodes is None:
            return None
        found = bisect.bisect_right(self._starts, block) - 1  # the starts grow with the index
        if found < 0:
            return None
        return self._indexes[found], self._starts[found], block

    def _forget(self, ctx: Context) -> None:
        """Nothing to go on from: the snapshot given back, the context removed."""
        try:
            give_back(ctx.mount, ctx.snapshot, ctx.holder, delete=ctx.auto_created)
        except DumpError as exc:
            self.warn(exc.message)
        if self.offsets is not None:
            self.offsets.close()
        self.store.remove(ctx.id)
        self.ctx = None
        return None


def _restart_offset(end: int, record: int | None, window_offset: int) -> int:
    """The largest offset up to ``end`` that is whole 1 KiB blocks and (with
    ``record``) whole records from ``window_offset``."""
    if end <= 0:
        return 0
    if not record:
        return end // TP_BSIZE * TP_BSIZE
    if end < window_offset:
        return 0
    step = record * TP_BSIZE // math.gcd(record, TP_BSIZE)  # lcm: whole records that are whole blocks
    start = window_offset
    while start % TP_BSIZE and start + record <= end:  # the first record end on a block boundary
        start += record
    if start % TP_BSIZE:
        return 0
    return start + (end - start) // step * step


def restart_env(ctx: Context) -> dict[str, str]:
    """What DATA_GET_ENV adds after a backup that left ``ctx``."""
    refusal = ctx.refusal(snapshot_names(ctx.mount))
    out = {RESTART_CONTEXT: ctx.id, RESTARTABLE: "n" if refusal else "y"}
    if ctx.checkpoint is not None:
        out[RESTART_OFFSET] = str(ctx.options.get("restart_offset", 0))
        out[RESTART_VOLUME] = str(ctx.checkpoint.volume)
    if refusal:
        out[RESTART_REFUSAL] = refusal
    return out


def load_for_restart(store: ContextStore, cid: str, offset: str | None = None) -> tuple[Context, int]:
    """Context ``cid``, checked restartable and locked for this restart (close
    the descriptor returned to let go), its restart point moved back to
    ``offset`` when given (:func:`lower_restart_point`); IllegalArgs saying why not."""
    try:
        ctx = store.load(cid)
    except DumpError as exc:
        raise IllegalArgs(f"{RESTART_CONTEXT}={cid}: {exc.message}") from None
    if ctx.options.get("medium") != MEDIUM:
        raise IllegalArgs(f"{RESTART_CONTEXT}={cid}: a context of pydump (restart it with pydump --restart)")
    names = snapshot_names(ctx.mount)
    if names is None:
        raise IllegalArgs(f"{RESTART_CONTEXT}={cid}: {ctx.mount} is not a mounted snapfs volume")
    refusal = ctx.refusal(names)
    if refusal is not None:
        raise IllegalArgs(f"cannot restart: {refusal}")
    try:
        fd = store.lock(cid)
    except DumpError as exc:
        raise IllegalArgs(f"cannot restart: {exc.message}") from None
    try:
        ctx = store.load(cid)
        refusal = ctx.refusal(snapshot_names(ctx.mount))
        if refusal is not None:
            raise IllegalArgs(f"cannot restart: {refusal}")
        if offset is not None:
            if not is_decimal(offset):
                raise IllegalArgs(f"{RESTART_OFFSET}={offset}: not a byte offset")
            lower_restart_point(store, ctx, int(offset))
        ctx.take_for_restart()
        store.save(ctx)
    except BaseException:
        os.close(fd)
        raise
    return ctx, fd


def lower_restart_point(store: ContextStore, ctx: Context, offset: int) -> None:
    """A DMA whose tape holds less of the stream than ``RESTART_OFFSET`` said
    (a remote mover, three-way) gives the offset its tape really ends at:
    the restart point moves back there, to the file its offset map
    (``ID.fh``) says that block falls in.  IllegalArgs when it cannot."""
    cp = ctx.checkpoint
    named = int(ctx.options.get("restart_offset", 0))
    if offset == named:
        return
    if offset > named or offset % TP_BSIZE:
        raise IllegalArgs(f"{RESTART_OFFSET}={offset}: give whole 1 KiB blocks, no more than the {named} "
                          "DATA_GET_ENV named")
    cut = int(ctx.options.get("restart_base", 0)) + offset // TP_BSIZE - int(ctx.options.get("restart_headers", 0))
    best: tuple[int, int] | None = None
    try:
        with open(store.offsets_path(ctx.id), "rb") as lines:
            for line in lines:  # the offset map's lines: ino volume tape_file record block ...
                f = line.split(b"\t", 5)
                if not line.endswith(b"\n") or len(f) < 6:
                    break  # torn where the backup stopped
                ino, volume, block = int(f[0]), int(f[1]), int(f[4])
                if volume == cp.volume and block <= cut and (best is None or block >= best[1]):
                    best = (ino, block)
    except (OSError, ValueError):
        best = None
    if best is None or cut <= int(ctx.options.get("restart_base", 0)):
        raise IllegalArgs(f"{RESTART_OFFSET}={offset}: no file of stage IV starts before it on volume "
                          f"{cp.volume}: the backup cannot go on from there")
    cp.ino, cp.resume_block, cp.medium_block, cp.index = best[0], best[1], cut, -1  # the index: from the plan
    ctx.options["restart_offset"] = offset
    store.save(ctx)


def restart_resumer(ctx: Context) -> Callable:
    """:func:`dumptool.restart.resumer`, the checkpoint's index found in the
    plan first when :func:`lower_restart_point` moved it."""
    from dumptool.restart import resumer

    def resume(dump: Dump):
        cp = ctx.checkpoint
        if cp.index < 0:
            plan = dump.plan
            try:
                cp.index = len(plan.directories) + list(plan.files).index(cp.ino)
            except ValueError:
                raise RestartError(f"cannot restart: inode {cp.ino} is not among the snapshot's files") from None
        return resumer(ctx)(dump)

    return resume


def restart_options(ctx: Context, output: str) -> DumpOptions:
    """The dump options of the interrupted backup, writing ``output`` (quiet: a DMA asks nothing)."""
    return dump_restart_options(ctx, output, quiet=True, never_ask=True, progress_interval=0)
