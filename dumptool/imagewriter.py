"""The image on its way out: blocks numbered, packed and counted, volumes accounted for.

:class:`ImageWriter` takes what :class:`~dumptool.dump.Dump` makes of each
inode (header items and data runs from :mod:`dumptool.format`, or fields
packed straight to bytes on the fast path) and hands whole blocks to the
:class:`~dumptool.medium.RecordWriter`.  It is that writer's volume change:
it closes a full volume (dump's lines and rates), has the
:class:`~dumptool.volumes.VolumeChanger` mount the next one and writes the
continuation header, naming the inode the new volume begins in.  It tells
the file history observers (:mod:`dumptool.history`) of every directory and
inode as it goes, and prints dump's progress and closing lines.
"""

from __future__ import annotations

import collections
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from .compression import CompressingSink, CompressingVolumes, RecordCompressor, ratio_line
from .format import (
    DR_COMPRESSED,
    TP_BSIZE,
    TP_NINDIR,
    ByteOrder,
    Dinode,
    Header,
    Item,
    RecordType,
    continuation_header,
    end_records,
    inode_records,
    map_records,
    number_blocks,
    qfa_indexes,
)
from .format.constants import DR_INODEINFO, ROOTINO, TAPEBUF_PREFIX, TP_NINOS
from .format.dinode import stat_fields
from .format.header import InodeHeaders
from .history import FileHistory, RecordPosition
from .medium import NewVolume, RecordWriter, Sink, TapePosition, VolumeChange, VolumeRequest
from .traverse import DumpPlan, Node, Stat
from .trees import has_zero_block

if TYPE_CHECKING:
    from .dump import DumpOptions
    from .volumes import VolumeChanger

#: Data blocks handed to the record writer at once (one TS_ADDR's worth).
_RUN_BLOCKS = 512
_ZERO_BLOCK = bytes(TP_BSIZE)
#: Bytes of records a file or pipe output gathers for one ``writev``.
_COALESCE = 256 * 1024
_TS_INODE = RecordType.TS_INODE
_S_IFMT, _S_IFDIR = 0o170000, 0o040000


class ImageWriter:
    """Writes one dump's image, starting volume 1 (from ``changer``) at once.

    ``tape`` is the volume header every header derives from; ``estimate``
    dump's estimate in blocks (for the progress lines); ``say`` receives
    dump's operator lines."""

    def __init__(self, tape: Header, options: DumpOptions, changer: VolumeChanger, *,
                 compressor: RecordCompressor | None, estimate: int, say: Callable[[str], None]) -> None:
        self.tape = tape
        self.options = options
        self.changer = changer
        self.compressor = compressor
        self.say = say
        self.histories: list[FileHistory] = []
        self._estimate = estimate
        self._quiet = options.quiet or not options.progress_interval
        self._limit = options.volume_blocks or 0
        self._nodes: dict[int, Node] = {}
        self._recent: collections.deque[tuple[int, Header | bytes]] = collections.deque(maxlen=4096)
        self._tap: list[bytes] | None = None   # blocks kept for the file history
        self._ending = False
        #: Blocks written so far.
        self.written = 0
        self._volume_blocks = 0
        self._volume_first_block = 0           # c_tapea of the current volume's TS_TAPE
        self._rates: list[int] = []            # each closed volume's transfer rate, kB/s
        self._volinfo = [0, ROOTINO]           # -A: the first inode of each volume (c_inos of TS_END)
        sink = changer.first()
        first: Sink = sink
        change: VolumeChange = self
        if compressor is not None:  # -z/-j: every volume's sink compresses
            first = CompressingSink(sink, compressor, _COALESCE)
            change = CompressingVolumes(self, compressor, _COALESCE)
        self.writer = RecordWriter(first, options.ntrec, change, coalesce=_COALESCE)
        #: Packs file and directory headers straight to bytes (None under -B,
        #: where every block goes through the volume check one at a time).
        self.headers: InodeHeaders | None = None
        self._keep_recent = False              # whether packed headers go to _recent too
        if not self._limit:
            self.headers = InodeHeaders(next(inode_records(tape, 0, Dinode())))
            # Only a tape can fill up and need the header a new volume interrupts.
            self._keep_recent = sink.is_tape
        self._started = time.monotonic()
        self._last_progress = self._started
        self._volume_started = int(time.time())  # dump's whole seconds

    @property
    def position(self) -> TapePosition:
        """Where the next record goes (volume, tape file and block)."""
        return self.writer.position

    def start(self, plan: DumpPlan) -> None:
        """Volume 1's header and the two maps."""
        self._nodes = plan.nodes
        self.say(f"Volume 1 started with block 1 at: {time.ctime(self._volume_started)}")
        self.tap()
        self.emit([self.tape])
        self.emit(map_records(self.tape, RecordType.TS_CLRI, plan.in_use, plan.maxino))
        self.emit(map_records(self.tape, RecordType.TS_BITS, plan.dumped, plan.maxino))
        front = self.tapped()
        for history in self.histories:
            history.begin(front)

    def resume(self, plan: DumpPlan, make_writer: Callable[[Sink, int], RecordWriter]) -> None:
        """Go on with ``make_writer(sink, coalesce)`` instead of volume 1's
        writer (a restarted dump, :mod:`dumptool.restart`): no header or maps
        are written; the headers written are kept, for the one its new
        volume's ``TS_TAPE`` cuts."""
        self.writer = make_writer(self.writer.sink, _COALESCE)
        self._nodes = plan.nodes
        self._keep_recent = True

    def tap(self) -> None:
        """Keep a copy of the blocks written from now (for the file history)."""
        if self.histories:
            self._tap = []

    def tapped(self) -> bytes:
        """The blocks written since :meth:`tap` (as an uncompressed image has them)."""
        tap, self._tap = self._tap, None
        return b"".join(tap) if tap else b""

    def _keep(self, data: bytes, header: bool = False) -> None:
        if header and self.compressor is not None:  # as uncompressed: DR_COMPRESSED off
            h = Header.unpack(data, ByteOrder.LITTLE)
            data = h.derive(c_flags=h.c_flags & ~DR_COMPRESSED).pack()
        self._tap.append(data)

    def _node(self, ino: int, block: int | None = None) -> None:
        """The file histories hear of file ``ino``, whose header goes to ``block`` (the
        writer's next, when not given)."""
        position = RecordPosition(self.writer, block)
        node = self._nodes[ino]
        for history in self.histories:
            history.add_node(ino, node, position)

    # -- blocks --------------------------------------------------------------------------
    def emit(self, items: Iterable[Item]) -> None:
        """Header items and data blocks (runs of whole blocks too), in order."""
        if self._limit:
            self._emit_each(_single_blocks(items))
            return
        # Without -B nothing happens between two data blocks, so runs of them
        # go to the writer in one piece: a per-block trip through the writer
        # cost more than reading the file (bench/dump_restore.py).  A data
        # item may itself hold several blocks (inode_records given runs).
        run: list[bytes] = []
        size = 0
        for item in items:
            if isinstance(item, Header):
                if run:
                    self._emit_run(run)
                    run = []
                    size = 0
                self._emit_each((item,))
            elif len(item) >= _RUN_BLOCKS * TP_BSIZE // 8:
                if run:  # a big run goes as it is, not copied into a bigger one
                    self._emit_run(run)
                    run = []
                    size = 0
                self._emit_run([item])
            else:
                run.append(item)
                size += len(item)
                if size >= _RUN_BLOCKS * TP_BSIZE:
                    self._emit_run(run)
                    run = []
                    size = 0
        if run:
            self._emit_run(run)

    def _emit_run(self, run: list[bytes]) -> None:
        data = run[0] if len(run) == 1 else b"".join(run)
        if not data or len(data) % TP_BSIZE or any(len(item) % TP_BSIZE for item in run):
            self._emit_each(run)  # number_blocks names the bad block
            return
        blocks = len(data) // TP_BSIZE
        if self._tap is not None:
            self._keep(data)
        self.writer.write(data)
        self.written += blocks
        self._volume_blocks += blocks
        self._progress()

    def _emit_each(self, items: Iterable[Item]) -> None:
        writer = self.writer
        for item in items:
            tapea = writer.next_block
            if isinstance(item, Header):
                self._recent.append((tapea, item))
                if self.histories and qfa_indexes(item, self.tape.c_date):
                    self._node(item.c_inumber)
            for block in number_blocks([item], tapea):
                if self._tap is not None:
                    self._keep(block, isinstance(item, Header))
                writer.write(block)
            self.written += 1
            self._volume_blocks += 1
            limit = self._limit
            if limit and not self._ending and writer.blocks_pending == 0 and self._volume_full(limit):
                writer.change_volume()
            self._progress()

    def _volume_full(self, limit: int) -> bool:
        """Whether the next record might take the volume past ``-B`` *limit*
        KiB: uncompressed, a record's blocks; compressed, the bytes written
        to it plus the longest a record can be (a stored one behind its
        prefix), so a volume never exceeds the limit."""
        writer = self.writer
        if self.compressor is None:
            return self._volume_blocks + writer.ntrec > limit
        return self.compressor.volume_bytes + writer.record_size + TAPEBUF_PREFIX > limit * TP_BSIZE

    def put_blocks(self, ino: int, st: Stat, count: int, read: Callable[[int, int], bytes], *,
                   holes: bool = True, tail: bool = False, flags: int = 0, size: int | None = None) -> None:
        """An inode's headers and data, packed straight to bytes: ``count``
        slices, read ``TP_NINDIR`` (one header's worth) at a time with
        ``read(offset, size)``; all-zero slices become holes when ``holes``,
        but the last one stays data when ``tail`` (it is partial).  The inode
        copy: ``stat_fields(st, flags=flags, size=size)``."""
        c_type = RecordType.TS_INODE
        done = 0
        while True:
            n = min(count - done, TP_NINDIR)
            self.put_group(c_type, ino, st, n, read(done * TP_BSIZE, n * TP_BSIZE) if n else b"", holes,
                           tail=tail and done + n >= count, flags=flags, size=size)
            done += n
            if done >= count:
                break
            c_type = RecordType.TS_ADDR

    def put_group(self, c_type: RecordType, ino: int, st: Stat, n: int, data: bytes, holes: bool = True, *,
                  tail: bool = False, flags: int = 0, size: int | None = None) -> None:
        """One header (``c_type``) and the ``n`` slices it maps, in ``data``;
        ``tail``: the last slice is a file's partial last one, kept as data.
        The inode copy: ``stat_fields(st, flags=flags, size=size)``."""
        headers = self.headers
        # (a block that starts with a nonzero byte is no hole: most data needs no has_zero_block)
        if holes and data[::TP_BSIZE].find(0) >= 0 and has_zero_block(data):
            addr, data = _without_zero_blocks(data, keep_last=tail)
        else:
            addr = headers.data_addr(n)
        writer = self.writer
        tapea = writer.next_block
        if self.histories and c_type is _TS_INODE and st.st_mode & _S_IFMT != _S_IFDIR:
            self._node(ino, tapea)
        head = headers.pack(c_type, tapea, ino, stat_fields(st, flags=flags, size=size), n, addr)
        if self._tap is not None:
            self._keep(b"".join(head), True)
            if data:
                self._keep(data)
        if self._keep_recent:
            self._recent.append((tapea, b"".join(head)))
        if data:
            size = len(data)
            writer.write_parts((*head, data), TP_BSIZE + size)
            blocks = 1 + size // TP_BSIZE
        else:
            writer.write_parts(head, TP_BSIZE)
            blocks = 1
        self.written += blocks
        self._volume_blocks += blocks
        if not self._quiet:
            self._progress()

    # -- progress ------------------------------------------------------------------------
    def _progress(self) -> None:
        if self._quiet:
            return
        now = time.monotonic()
        if now - self._last_progress < self.options.progress_interval:
            return
        self._last_progress = now
        self.say(self.progress_line())

    def progress_line(self) -> str:
        """dump's estimate of what is left (``78.61% done at 333 kB/s, finished in 0:01``)."""
        written = self.written
        estimate = max(self._estimate, written, 1)
        elapsed = time.monotonic() - self._started
        left = int(elapsed / written * estimate - elapsed) if written else 0
        share = written * 100.0 / estimate
        seconds = int(time.time()) - self._volume_started
        if seconds > 0:
            rate = (self.writer.next_block - self._volume_first_block) // seconds
            return f"{share:3.2f}% done at {rate} kB/s, finished in {left // 3600}:{left % 3600 // 60:02d}"
        return f"{share:3.2f}% done, finished in {left // 3600}:{left % 3600 // 60:02d}"

    # -- volumes -------------------------------------------------------------------------
    def next_volume(self, request: VolumeRequest) -> NewVolume:
        """The record writer's volume change: close the full volume, mount the next, its header."""
        current = self.writer.sink.name
        self.volume_closed(current, request.volume - 1, request.first_block)
        sink = self.changer.mount(request.volume, current)
        return NewVolume(sink, self.new_volume_header(request))

    def volume_closed(self, name: str, volume: int, end_block: int) -> None:
        """dump's lines for a volume that ends before block ``end_block``:
        "Closing", "completed at", its size, how long it took and its rate."""
        if name != "standard output":
            self.say(f"Closing {name}")
        now = int(time.time())
        blocks = end_block - self._volume_first_block
        self.say(f"Volume {volume} completed at: {time.ctime(now)}")
        if self.compressor is None:
            self.say(f"Volume {volume} {blocks} blocks ({blocks / 1024:.2f}MB)")
        taken = now - self._volume_started
        if taken > 0:
            kb = self.compressor.volume_bytes // 1024 if self.compressor is not None else blocks
            rate = kb // taken
            self._rates.append(rate)
            self.say(f"Volume {volume} took {taken // 3600}:{taken % 3600 // 60:02d}:{taken % 60:02d}")
            self.say(f"Volume {volume} transfer rate: {rate} kB/s")
        if self.compressor is not None:
            self.say(f"Volume {volume} " + ratio_line(blocks, self.compressor.volume_bytes))

    def interrupted_at(self, first_block: int, replay: bool) -> tuple[Header, int]:
        """The header whose blocks a new volume starting at ``first_block``
        cuts, and how many of its blocks follow the new volume's header."""
        for tapea, header in reversed(self._recent):
            if tapea < first_block or (replay and tapea == first_block):
                if not isinstance(header, Header):  # packed straight to bytes
                    header = Header.unpack(header, ByteOrder.LITTLE)
                if tapea == first_block:
                    return header, 0
                return header, max(0, tapea + header.data_block_count() + 1 - first_block)
        return self.tape, 0

    def new_volume_header(self, request: VolumeRequest) -> bytes:
        """The ``TS_TAPE`` header volume ``request.volume`` starts with."""
        interrupted, remaining = self.interrupted_at(request.first_block, bool(request.replay))
        header = continuation_header(self.tape, request.volume, request.first_block, interrupted, remaining,
                                     request.first_record)
        self._volume_first_block = request.first_block
        self._volume_started = int(time.time())
        self.say(f"Volume {request.volume} started with block {request.first_block + 1} at: "
                 f"{time.ctime(self._volume_started)}")
        self.say(f"Volume {request.volume} begins with blocks from inode {interrupted.c_inumber}")
        if request.volume < TP_NINOS:
            del self._volinfo[request.volume:]
            self._volinfo += [0] * (request.volume - len(self._volinfo)) + [interrupted.c_inumber]
        self._volume_blocks = 0
        return header.pack()

    # -- the end -------------------------------------------------------------------------
    def finish(self, date: int) -> None:
        """The ``TS_END`` blocks, the last volume closed, dump's closing lines
        (``date``: the dump's), and the file history finished."""
        self._ending = True
        writer = self.writer
        end = self.tape
        if self.options.toc:  # dump's volinfo: the first inode of each volume, for restore -A
            inos = (self._volinfo + [0] * TP_NINOS)[:TP_NINOS]
            end = end.derive(c_flags=end.c_flags | DR_INODEINFO, c_addr=struct.pack(f"<{TP_NINOS}i", *inos))
        # TS_END blocks fill the last record.  How many is what the writer
        # has pending, not c_tapea: once a full tape made it replay a record
        # after the next volume's header, the records are one block off the
        # numbers.  And the record the first TS_END blocks go into may itself
        # meet the end of the tape: replayed on the next volume, its last
        # block is left over, and more TS_END blocks fill that record too.
        self.tap()
        while True:
            self.emit(end_records(end, writer.blocks_pending))
            if not writer.blocks_pending:
                break
        trailer = self.tapped()
        name = writer.sink.name
        writer.finish()
        for history in self.histories:
            history.finish(trailer)
        blocks = writer.next_block
        self.volume_closed(name, writer.volume, blocks)
        to_pipe = self.options.output == "-"
        self.say(f"{blocks} blocks ({blocks / 1024:.2f}MB)" + ("" if to_pipe else f" on {writer.volume} volume(s)"))
        seconds = int(time.monotonic() - self._started)
        self.say("finished in less than a second" if seconds < 1 else f"finished in {seconds} seconds, "
                 f"throughput {blocks // seconds} kBytes/sec")
        self.say(f"Date of this level {self.options.level} dump: {time.ctime(date)}")
        self.say(f"Date this dump completed:  {time.ctime()}")
        self.say(f"Average transfer rate: {sum(self._rates) // writer.volume} kB/s")
        if self.compressor is not None:
            self.say("Wrote " + ratio_line(blocks, self.compressor.bytes_written))
        self.close()

    def close(self) -> None:
        """Let go of the file history (its last lines said, when it is complete)."""
        for history in self.histories:
            history.close()


def _without_zero_blocks(data: bytes, *, keep_last: bool = False) -> tuple[bytes, bytes]:
    """``(c_addr, data)`` for whole slices some of which are all zero: those
    become holes (0 in the map) and leave the data, but the last slice stays
    data when ``keep_last``."""
    addr = bytearray(TP_NINDIR)
    kept = []
    last = len(data) - TP_BSIZE
    for i, start in enumerate(range(0, len(data), TP_BSIZE)):
        block = data[start:start + TP_BSIZE]
        if block != _ZERO_BLOCK or (keep_last and start == last):
            addr[i] = 1
            kept.append(block)
    return bytes(addr), b"".join(kept)


def _single_blocks(items: Iterable[Item]) -> Iterator[Item]:
    """*items* with every run of data blocks cut into 1 KiB blocks."""
    for item in items:
        if isinstance(item, Header) or len(item) <= TP_BSIZE or len(item) % TP_BSIZE:
            yield item
        else:
            for i in range(0, len(item), TP_BSIZE):
                yield item[i:i + TP_BSIZE]
