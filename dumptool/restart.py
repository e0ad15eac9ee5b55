"""``pydump --restart ID -f NEXT``: an interrupted dump goes on as its next volume.

A restartable context (:mod:`dumptool.contexts`) names the volume the dump
was writing, the end of its last complete record there (block ``L``), and
the inode block ``L`` falls in, which starts at block ``X``.  The restart:

1. checks ONTAP's three conditions (aborted in stage IV, its snapshot still
   there, file history kept) and says in one line which one fails;
2. cuts the interrupted volume back to ``L`` where it is a file (what was
   written after the checkpoint is written again), or, on the same cartridge,
   ends that tape file with a filemark at ``L``;
3. walks the held snapshot again and checks that it gives the same inodes in
   the same order (the plan's digest: "Offset Verify");
4. writes the dump again from inode ``X`` on, dropping blocks ``X`` to
   ``L - 1`` (they are on the interrupted volume), and starts the next volume
   at ``L`` with a ``TS_TAPE`` naming volume N+1 and ``c_firstrec`` = the
   blocks restore has read by then, as at any volume change: restore (ours
   and Linux's) reads the volumes in order and gets exactly the stream an
   uninterrupted dump writes, cut in one more place.

The stream written again is the same as the first time: the snapshot does
not change, the inodes are numbered alike, and every header's ``c_tapea``
follows from the same start.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Callable

from .contexts import Context, ContextKeeper, ContextStore, fingerprint, snapshot_names
from .dump import Dump, DumpOptions
from .errors import DumpError, RestartError
from tapelib import is_tape_device
from .filer import dump_source
from .format import TP_BSIZE
from .imagewriter import ImageWriter
from .medium import RecordWriter, Sink, VolumeRequest
from .volumes import VolumeChanger


class ResumingWriter(RecordWriter):
    """A record writer that starts numbering at ``first_block`` but writes
    nothing before block ``resume_at``; there it writes ``header(resume_at)``
    (the new volume's ``TS_TAPE``, taking no number) and goes on as usual."""

    def __init__(self, sink: Sink, ntrec: int, volume_change, *, first_block: int, volume: int,
                 unnumbered: int, resume_at: int, header: Callable[[int], bytes], coalesce: int) -> None:
        super().__init__(sink, ntrec, volume_change, first_block=first_block, volume=volume, coalesce=coalesce)
        self._unnumbered = unnumbered
        self._resume_at: int | None = resume_at
        self._header = header

    @property
    def resuming(self) -> bool:
        """Whether blocks are still being dropped."""
        return self._resume_at is not None

    def write(self, block: bytes) -> int:
        if self._resume_at is None:
            return super().write(block)
        return self._skip((block,), len(block))

    def write_parts(self, parts: tuple[bytes, ...] | list[bytes], size: int) -> int:
        if self._resume_at is None:
            return super().write_parts(parts, size)
        return self._skip(parts, size)

    def _skip(self, parts: tuple[bytes, ...] | list[bytes], size: int) -> int:
        first = self._next_block
        blocks = size // TP_BSIZE
        at = self._resume_at
        if first + blocks <= at:
            self._next_block = first + blocks
            return first
        data = b"".join(parts)
        self._next_block = at
        self._resume_at = None
        head = self._header(at)
        super().write(head)
        taken = len(head) // TP_BSIZE
        self._next_block -= taken  # the header repeats block at's number, as a replay's does
        self._unnumbered += taken
        super().write(data[(at - first) * TP_BSIZE:])
        return first


def _refuse(message: str) -> RestartError:
    return RestartError(f"cannot restart: {message}")


def check_output(ctx: Context, output: str) -> None:
    """The new volume may not go over the interrupted one, nor over a file holding data."""
    cp = ctx.checkpoint
    if output == "-" or is_tape_device(output):
        return
    try:
        st = os.stat(output)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise _refuse(f"{output}: {exc.strerror}") from None
    if cp.file_id is not None and (st.st_dev, st.st_ino) == tuple(cp.file_id):
        raise _refuse(f"{output} holds volume {cp.volume} of this dump (the interrupted one): give the next "
                      "volume another file")
    if stat.S_ISREG(st.st_mode) and st.st_size:
        raise _refuse(f"{output} holds {st.st_size} bytes of earlier data: move it away, or give a new name")


def cut_interrupted_volume(ctx: Context, warn: Callable[[str], None]) -> None:
    """Make the interrupted volume end with its last complete record, as the
    context saved it: a file is cut there (what followed is written again on
    the next volume)."""
    cp = ctx.checkpoint
    if cp.is_tape or cp.medium_address is None or cp.file_id is None:
        return
    try:
        st = os.stat(cp.medium)
    except OSError:
        st = None
    if st is None or (st.st_dev, st.st_ino) != tuple(cp.file_id):
        warn(f"volume {cp.volume} ({cp.medium}) is not where the dump left it: the copy restored from must be "
             f"cut to its first {cp.medium_address} bytes")
        return
    if st.st_size < cp.medium_address:
        raise _refuse(f"volume {cp.volume} ({cp.medium}) holds {st.st_size} bytes, fewer than the "
                      f"{cp.medium_address} its context names: it was changed since")
    if st.st_size > cp.medium_address:
        try:
            fd = os.open(cp.medium, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.ftruncate(fd, cp.medium_address)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise _refuse(f"cannot cut volume {cp.volume} ({cp.medium}) back to its last complete record: "
                          f"{exc.strerror}") from None


def end_tape_file(ctx: Context, output: str, say: Callable[[str], None]) -> None:
    """On the cartridge the dump was writing (same drive, same cartridge):
    end the interrupted tape file with a filemark after its last complete
    record, so the next volume follows it as the next tape file."""
    from tapelib import TapeError
    from tapelib.device import open_device

    cp = ctx.checkpoint
    if not cp.is_tape or cp.medium_address is None or os.path.abspath(output) != os.path.abspath(cp.medium):
        return
    barcode = loaded_barcode(output)
    if barcode is None or barcode != cp.barcode:
        return
    try:
        drive = open_device(output, writable=True)
        try:
            drive.seek(cp.medium_address)
            drive.write_filemarks(1)
        finally:
            drive.close()
    except TapeError as exc:
        raise _refuse(f"{output}: cannot end the interrupted tape file: {exc.message}") from None
    say(f"volume {cp.volume} on {barcode} ends at its last complete record (a filemark written after it); "
        f"volume {cp.volume + 1} follows it")


def loaded_barcode(device: str) -> str | None:
    """The barcode of the cartridge in a shelf drive device (None: not a shelf drive, or empty)."""
    from pathlib import Path

    from tapelib import Shelf, TapeError
    from tapelib.devicefile import read_device_marker

    if not os.path.isfile(device):
        return None
    try:
        marker = read_device_marker(Path(device))
        if marker is None:
            return None
        return Shelf(Path(device).parent).status().drives[marker[0]].barcode
    except (TapeError, OSError, IndexError):
        return None


def restart(store: ContextStore, cid: str, output: str, *, quiet: bool, never_ask: bool,
            say: Callable[[str], None], warn: Callable[[str], None]) -> None:
    """Restart context ``cid`` as its next volume on ``output``."""
    ctx = store.load(cid)
    names = snapshot_names(ctx.mount)
    if names is None:
        raise _refuse(f"{ctx.mount} is not a mounted snapfs volume: mount it again, then restart")
    refusal = ctx.refusal(names)
    if refusal is not None:
        raise _refuse(refusal)
    try:
        fd = store.lock(cid)
    except DumpError as exc:
        raise _refuse(exc.message) from None
    try:
        ctx = store.load(cid)  # as it is now that it is ours
        refusal = ctx.refusal(snapshot_names(ctx.mount))
        if refusal is not None:
            raise _refuse(refusal)
        _restart(store, ctx, output, quiet=quiet, never_ask=never_ask, say=say, warn=warn)
    finally:
        os.close(fd)


def restart_options(ctx: Context, output: str, *, quiet: bool, never_ask: bool,
                    progress_interval: float) -> DumpOptions:
    """The dump options of the interrupted dump ``ctx``, writing ``output``."""
    o = ctx.options
    source = os.path.join(ctx.mount, ctx.rel) if ctx.rel else ctx.mount
    return DumpOptions(
        source=source, output=output, level=ctx.level, ntrec=o["ntrec"], dumpdates=o["dumpdates"],
        update=o["update"], base_date=ctx.base_date, label=o["label"], quiet=quiet, never_ask=never_ask,
        exclude=frozenset(o["exclude"]), metaonly=o["metaonly"], honor_level=o["honor_level"],
        frozen_at=ctx.date, progress_interval=progress_interval)


def _restart(store: ContextStore, ctx: Context, output: str, *, quiet: bool, never_ask: bool,
             say: Callable[[str], None], warn: Callable[[str], None]) -> None:
    cp = ctx.checkpoint
    check_output(ctx, output)
    ctx.take_for_restart()
    store.save(ctx)
    options = restart_options(ctx, output, quiet=quiet, never_ask=never_ask, progress_interval=300.0)
    cut_interrupted_volume(ctx, warn)
    end_tape_file(ctx, output, say)
    talk_say = None if quiet else say
    keeper = ContextKeeper(store, context=ctx, say=say, warn=warn)
    with dump_source(options, ctx.snapshot, say=talk_say, warn=warn, on_snapshot=keeper.observe) as (opts, talk):
        opts = dataclasses.replace(opts, history=opts.history + keeper.histories())
        dump = Dump(opts, say=talk, warn=warn)
        (talk or (lambda line: None))(f"restarting context {ctx.id}: volume {cp.volume + 1} goes on from block "
                                      f"{cp.medium_block}, writing inode {cp.ino} again from its start")
        keeper.run(dump, resumer(ctx))


def resumer(ctx: Context) -> Callable[[Dump], tuple[ImageWriter, int]]:
    """:meth:`Dump.steps`'s ``resume`` for a restart of ``ctx`` (pydump's, and pyndmpd's)."""
    cp = ctx.checkpoint

    def resume(dump: Dump) -> tuple[ImageWriter, int]:
        if fingerprint(dump.plan) != ctx.fingerprint:
            raise _refuse(f"the snapshot {ctx.snapshot} no longer maps to the same inodes in the same order "
                          "(Offset Verify failed: was the inode map of the dumpdates file changed since?)")
        opts = dump.options
        changer = VolumeChanger(opts, say=dump.say, warn=dump.warn, notify=dump.notify)
        out = ImageWriter(dump.tape, opts, changer, compressor=None, estimate=dump.estimate, say=dump.say)
        volume = cp.volume + 1

        def header(at: int) -> bytes:
            return out.new_volume_header(VolumeRequest(volume, at, replay=(b"",), firstrec=at + cp.unnumbered))

        out.resume(dump.plan, lambda sink, coalesce: ResumingWriter(
            sink, opts.ntrec, out, first_block=cp.resume_block, volume=volume, unnumbered=cp.unnumbered,
            resume_at=cp.medium_block, header=header, coalesce=coalesce))
        return out, cp.index

    return resume
