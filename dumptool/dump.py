"""The dump engine: map, write directories, write files, write the end.

A :class:`Dump` runs dump's stages as an explicit generator of work
(:meth:`Dump.steps`): each step yields a :class:`Cursor` naming the stage, how
many inodes of it are written and where the tape stands, so a caller can
show progress, stop between steps, or (later) save the cursor to restart.

Layout comes from :mod:`dumptool.format` (headers, maps, inode records,
directories, xattr payloads); records move through
:class:`~dumptool.medium.RecordWriter`; what to dump comes from
:mod:`dumptool.traverse`; increment chains and inode numbers from
:mod:`dumptool.dumpdates`.

File data is read with ``SEEK_DATA``/``SEEK_HOLE`` so holes stay holes;
xattrs are read in every namespace (``user.``, ``trusted.``, ``security.``
and the POSIX ACLs ``system.posix_acl_access``/``_default``) and written as
one EA record per inode (restore keeps only the last one of a directory).
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import errno as _errno
import gc
import os
import shlex
import stat
import struct
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from tapelib import EndOfMedium, TapeError
from tapelib.devicefile import read_device_marker

from .compression import CompressingSink, CompressingVolumes, RecordCompressor, ratio_line
from .dumpdates import DEFAULT_DUMPDATES, DumpDates, check_level
from .errors import DumpError, FormatLimitError, MediumError
from .format import (
    DR_COMPRESSED,
    LBLSIZE,
    NAMELEN,
    TP_BSIZE,
    TP_NINDIR,
    ByteOrder,
    Dinode,
    Header,
    Item,
    QfaEntry,
    RecordType,
    Slice,
    build_directory,
    continuation_header,
    data_slice,
    end_records,
    file_slices,
    inode_records,
    map_records,
    number_blocks,
    pack_xattr_block,
    qfa_indexes,
    qfa_line,
    qfa_preamble,
    split_xattr_name,
    symlink_slices,
    volume_header,
    xattr_records,
)
from .format.constants import DR_INODEINFO, ROOTINO, TAPEBUF_PREFIX, TP_NINOS
from .format.dinode import stat_fields
from .format.header import InodeHeaders
from .operator import Terminal, open_terminal
from .medium import (NewVolume, RecordWriter, Sink, SinkWrapper, TapePosition, VolumeChange, VolumeRequest,
                     check_blocking_factor, open_sink, volume_file)
from .traverse import (DumpPlan, FreshNumbering, Node, fd_inode_flags, inode_flags, live_path, plan_dump,
                       snapshot_time, walk_tree)

if TYPE_CHECKING:
    from tapelib import Shelf

#: Read size for file data (a multiple of TP_BSIZE).
_READ_CHUNK = 64 * TP_BSIZE
#: Data blocks handed to the record writer at once (one TS_ADDR's worth).
_RUN_BLOCKS = 512
_ZERO_BLOCK = bytes(TP_BSIZE)
#: The file bytes one header maps.
_GROUP_BYTES = TP_NINDIR * TP_BSIZE
#: Bytes of records a file or pipe output gathers for one ``writev``.
_COALESCE = 256 * 1024
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
_NOATIME = getattr(os, "O_NOATIME", 0)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_PATH", 0)


_new = object.__new__
_TS_INODE = RecordType.TS_INODE


class Stage(enum.Enum):
    """dump's passes, in order."""

    MAP = "map"
    DIRECTORIES = "directories"
    FILES = "files"
    END = "end"
    DONE = "done"


@dataclasses.dataclass(frozen=True)
class Cursor:
    """Where a dump stands: ``done`` inodes of ``stage`` written (all inodes
    mapped for MAP), and ``next_block``, the ``c_tapea`` the next block gets.
    :attr:`Dump.position` tells where that block goes on the medium."""

    stage: Stage
    done: int = 0
    next_block: int = 0


@dataclasses.dataclass
class DumpOptions:
    """What ``pydump`` asks for (see :mod:`dumptool.cli.pydump`)."""

    source: str
    output: str
    level: int = 0
    ntrec: int = 10
    dumpdates: str = DEFAULT_DUMPDATES
    update: bool = False
    base_date: int | None = None          # -T: the base date given directly
    label: str = "none"
    quiet: bool = False
    volume_blocks: int | None = None      # -B: 1 KiB blocks per volume
    multivolume: bool = False             # -M: -f is a prefix, files prefix001...
    toc: str | None = None                # -A: the archive file (dump's table of contents, read by restore -A)
    qfa: str | None = None                # -Q: the quick file access map
    exclude: frozenset[int] = frozenset()  # -e/-E: dump inode numbers
    progress_interval: float = 5.0
    never_ask: bool = False               # --no-prompt: never prompt for the next volume
    compress: int | None = None           # -z/-j: COMPRESS_ZLIB or COMPRESS_BZLIB
    compress_level: int = 2               # their level, 1 to 9
    metaonly: bool = False                # -m: changed but unmodified inodes as metadata only
    honor_level: int = 1                  # -h: the nodump flag is honoured at levels from this one up
    frozen_at: int | None = None          # --snapshot-date: the source is a read-only tree frozen then
    scratch: frozenset[str] = frozenset()  # --scratch: barcodes a volume change may overwrite
    verbose: bool = False                 # -v: a line per inode dumped
    eot_script: str | None = None         # -F: run at each volume change as SCRIPT DEVICE VOLUME
    read_errors: int = 32                 # -I: files that cannot be read before the dump stops (0: no limit)
    notify: bool = False                  # -n: operator alerts ("CHANGE DUMP VOLUMES!") printed too


class Dump:
    """One dump run.  ``say`` receives dump's operator lines (without the
    ``  DUMP: `` prefix); ``warn`` warnings (printed even when quiet)."""

    def __init__(self, options: DumpOptions, say: Callable[[str], None] | None = None,
                 warn: Callable[[str], None] | None = None) -> None:
        check_level(options.level)
        check_blocking_factor(options.ntrec)
        if options.volume_blocks is not None and options.volume_blocks < 2 * options.ntrec:
            raise DumpError(f"-B {options.volume_blocks} is too small: a volume holds at least two records "
                            f"({2 * options.ntrec} blocks at -b {options.ntrec})")
        self.options = options
        self._quiet = options.quiet or not options.progress_interval
        self.say = say or (lambda line: None)
        self.warn = warn or (lambda line: None)
        self.source = os.path.abspath(options.source)
        #: What dumpdates, the inode map and c_filesys name: the live path of a snapshot view.
        self.filesys = live_path(self.source)
        #: The dump date (c_date, and the dumpdates line under -u): when the
        #: data froze for a snapshot (snapfs's creation time, or
        #: --snapshot-date), else now, as dump does for a live tree.
        self.snapshot_date = options.frozen_at if options.frozen_at is not None else snapshot_time(self.source)
        self.date = int(time.time()) if self.snapshot_date is None else self.snapshot_date
        self.base_date = 0
        self._base_level: int | str = "lower"
        self.plan: DumpPlan | None = None
        self.tape: Header | None = None
        self.writer: RecordWriter | None = None
        self.cursor = Cursor(Stage.MAP)
        self._inomap = None
        self._recent: collections.deque[tuple[int, Header | bytes]] = collections.deque(maxlen=4096)
        self._volume_blocks = 0
        self._ending = False
        self._estimate = 0
        self._written = 0
        self._started = 0.0
        self._last_progress = 0.0
        self._volumes_done: list[int] = []
        self._qfa = None                       # -Q: the open map file
        self._qfa_last: tuple[int, int] | None = None  # (volume, position) of its last line
        #: Packs file and directory headers straight to bytes (None under -B,
        #: where every block goes through the volume check one at a time).
        self._headers: InodeHeaders | None = None
        self._keep_recent = False              # whether packed headers go to _recent too
        self._folder: bytes | None = None      # the directory _folder_fd holds open
        self._folder_fd: int | None = None
        self._frozen = False                   # objects frozen out of the cyclic collector (_map)
        #: -z/-j: frames the records and counts the bytes written.
        self.compressor = (RecordCompressor(options.compress, options.compress_level)
                           if options.compress is not None else None)
        self._volume_first_block = 0           # c_tapea of the current volume's TS_TAPE
        self._volume_started = 0               # time() the current volume started (dump's whole seconds)
        self._volume_bytes = 0                 # bytes written before the current volume (uncompressed count)
        self._rates: list[int] = []            # each closed volume's transfer rate, kB/s
        self._volinfo = [0, ROOTINO]           # -A: the first inode of each volume (c_inos of TS_END)
        self._toc_file = None                  # -A: the open archive file
        self._toc_on = True                    # whether the blocks written now go to the archive too
        self._read_errors = 0                  # files that could not be read (-I)

    # -- the stages ---------------------------------------------------------------
    def run(self) -> Cursor:
        """Run every stage; the final cursor."""
        for cursor in self.steps():
            self.cursor = cursor
        return self.cursor

    def steps(self) -> Iterator[Cursor]:
        """The dump as a generator: one cursor per unit of work done."""
        try:
            yield from self._steps()
        except BaseException:
            if self.writer is not None:
                try:
                    self.writer.abort()
                except DumpError:
                    pass
            raise
        finally:
            if self._frozen:
                self._frozen = False
                gc.unfreeze()
            self._set_folder(None)
            if self._inomap is not None:
                self._inomap.close()
            if self._qfa is not None:
                self._qfa.close()
            self._close_toc(quiet=True)

    @property
    def position(self) -> TapePosition | None:
        """Where the next record goes (volume, tape file and block), once writing started."""
        return self.writer.position if self.writer is not None else None

    def _steps(self) -> Iterator[Cursor]:
        self._map()
        yield Cursor(Stage.MAP, len(self.plan.nodes))
        self._start()
        plan = self.plan
        self.say("dumping (Pass III) [directories]")
        verbose = self.options.verbose
        for n, ino in enumerate(plan.directories, 1):
            if verbose:
                self.say(f"dumping directory inode {ino}")
            self._dump_inode(plan.nodes[ino])
            yield self._cursor(Stage.DIRECTORIES, n)
        self._toc_on = False  # the archive holds the directories, then the end (dump's -A file)
        self.say("dumping (Pass IV) [regular files]")
        nodes, dump_file, dump_inode, cursor = plan.nodes, self._dump_file, self._dump_inode, self._cursor
        files = Stage.FILES
        meta = plan.metaonly
        for n, ino in enumerate(plan.files, 1):
            node = nodes[ino]
            if verbose:
                self.say(f"dumping regular inode {ino}" + (" (meta only)" if meta and ino in meta else ""))
            if meta and ino in meta:
                self._dump_metaonly(node)
            elif node.st_mode & 0o170000 == stat.S_IFREG:
                dump_file(node)
            else:
                dump_inode(node)
            yield cursor(files, n)
        self._end()
        yield self._cursor(Stage.END, 1)
        self._record()
        yield Cursor(Stage.DONE, 0, self._written)

    def _cursor(self, stage: Stage, done: int) -> Cursor:
        # Cursor(...) without the frozen dataclass's __init__: one per inode.
        cursor = _new(Cursor)
        cursor.__dict__.update(stage=stage, done=done, next_block=self.writer.next_block if self.writer else 0)
        return cursor

    # -- Pass I and II: what to dump -----------------------------------------------
    def _map(self) -> None:
        opts = self.options
        dates = DumpDates(opts.dumpdates)
        if opts.base_date is not None:
            self.base_date = opts.base_date
        elif opts.level > 0:
            base = dates.base_for(self.filesys, opts.level)
            self.base_date, self._base_level = base.date, base.level
        if not os.path.isdir(self.source):
            what = "no such directory" if not os.path.exists(self.source) else "not a directory"
            raise DumpError(f"cannot dump {self.source}: {what}")
        if opts.level > 0 or opts.update:
            self._inomap = dates.inode_map(self.filesys)
            numbering = self._inomap
        else:
            numbering = FreshNumbering()
        self.say(f"Date of this level {opts.level} dump: {time.ctime(self.date)}")
        if self.snapshot_date is not None:
            self.say("(the time the snapshot's data froze)")
        if self.snapshot_date is not None and self.base_date and self.snapshot_date < self.base_date:
            self._warn(f"the snapshot is older than the level {self._base_level} dump this one is based on: "
                       "it can hold nothing newer")
        if self.base_date:
            self.say(f"Date of last level {self._base_level} dump: {time.ctime(self.base_date)}")
        self.say(f"Dumping {self.source} (an unlisted file system) to {opts.output}")
        self.say(f"Label: {opts.label}")
        self.say(f"Writing {opts.ntrec} Kilobyte records")
        if self.compressor is not None:
            self.say(f"Compressing output at transformation level {self.compressor.level} ({self.compressor.name})")
        self.say("mapping (Pass I) [regular files]")
        # The plan is a few objects per inode, none in a cycle: the cyclic
        # collector, run every 700 of them, would walk the growing plan again
        # and again (a sixth of a dump of small files), and once it is built,
        # it is frozen out of the collector's sight until the dump ends.
        collecting = gc.isenabled()
        gc.disable()
        try:
            nodump = opts.level >= opts.honor_level  # dump's rule (its nonodump is level < honorlevel)
            nodes = walk_tree(self.source, numbering, exclude=opts.exclude, warn=self._warn, nodump=nodump)
            self.say("mapping (Pass II) [directories]")
            self.plan = plan_dump(nodes, numbering.maxino, self.base_date, metaonly=opts.metaonly, nodump=nodump)
        finally:
            if collecting:
                gc.enable()
        gc.freeze()
        self._frozen = True
        self._tapesize = self._estimate_blocks()
        ntrec, limit = opts.ntrec, opts.volume_blocks
        if not limit or opts.output == "-":
            self._estimate = self._tapesize + 1 + ntrec  # a map header and the trailer blocks
            self.say(f"estimated {self._estimate} blocks.")
        else:  # dump's count for -B: a header and the maps again on each further volume
            per_volume = limit // ntrec * ntrec if self.compressor is None else limit
            volumes = self._tapesize / max(per_volume, 1)
            extra = int(volumes)  # dump's etapes - 1
            self._estimate = self._tapesize + extra * (self._map_blocks() + 1) + extra + 1 + ntrec
            self.say(f"estimated {self._estimate} blocks on {volumes:3.2f} tape(s).")
        if self._inomap is not None:
            self._inomap.prune((n.st.st_dev, n.st.st_ino) for n in nodes.values())

    def size_estimate(self) -> int:
        """``dump -S``: the bytes the image is expected to take, as dump
        reckons them (Passes I and II only: nothing is written or recorded)."""
        try:
            self._map()
        finally:
            if self._frozen:
                self._frozen = False
                gc.unfreeze()
            if self._inomap is not None:
                self._inomap.close()
                self._inomap = None
        return (self._tapesize + 1 + self.options.ntrec) * TP_BSIZE

    def _map_blocks(self) -> int:
        """The blocks of one inode map (dump's ``howmany(mapsize, TP_BSIZE)``)."""
        return -(-(self.plan.maxino + 1) // (8 * TP_BSIZE))

    def _estimate_blocks(self) -> int:
        """dump's ``tapesize`` after Pass II: the two maps with their
        headers, and for each inode to dump its ``blockest``: a header, its
        allocated blocks (at most its size, in the file system's blocks),
        half of them for a directory, and the TS_ADDR headers past the
        direct blocks; one block for a device, fifo or socket."""
        plan = self.plan
        nodes = plan.nodes
        try:
            fs_block = os.statvfs(self.source).f_bsize or 4096
        except OSError:
            fs_block = 4096
        per_block = max(fs_block // TP_BSIZE, 1)
        direct = 12 * fs_block  # NDADDR file system blocks
        total = 2 * (self._map_blocks() + 1)
        for ino in plan.directories + plan.files:
            node = nodes[ino]
            fmt = node.st_mode & 0o170000
            if fmt not in (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK):
                total += 1
                continue
            size = node.st_size
            blkest = -(-node.st_blocks * 512 // fs_block) * per_block
            sizeest = -(-size // fs_block) * per_block
            blkest = min(blkest, sizeest)
            if fmt == stat.S_IFDIR:
                blkest //= 2
                sizeest //= 2
            if size > direct:
                blkest += -(-(sizeest - direct // TP_BSIZE) // TP_NINDIR)
            total += blkest + 1
        return total

    # -- writing -------------------------------------------------------------------
    def _start(self) -> None:
        opts = self.options
        label = opts.label.encode("utf-8", "surrogateescape")
        if len(label) >= LBLSIZE:
            self._warn(f"label {opts.label!r} is longer than {LBLSIZE - 1} bytes: cut")
            label = label[:LBLSIZE - 1]
        source = os.fsencode(self.filesys)[:NAMELEN - 1]
        self.tape = volume_header(
            date=self.date, ddate=self.base_date, level=opts.level, label=label or b"none",
            filesys=source, dev=source, host=os.uname().nodename.encode()[:NAMELEN - 1], ntrec=opts.ntrec,
        )
        if self.compressor is not None:
            self.tape = self.tape.derive(c_flags=self.tape.c_flags | DR_COMPRESSED)
        first = self._volume_name(1) if opts.multivolume else opts.output
        sink = _open_output(first)
        changer = _VolumeChanger(self, sink.is_tape)
        changer.note_file(first)
        change: VolumeChange = changer
        if self.compressor is not None:  # -z/-j: every volume's sink compresses
            sink = CompressingSink(sink, self.compressor, _COALESCE)
            change = CompressingVolumes(changer, self.compressor, _COALESCE)
        self.writer = RecordWriter(sink, opts.ntrec, change, coalesce=_COALESCE)
        if not opts.volume_blocks:
            self._headers = InodeHeaders(next(inode_records(self.tape, 0, Dinode())))
            # Only a tape can fill up and need the header a new volume interrupts.
            self._keep_recent = sink.is_tape
        self._started = time.monotonic()
        self._last_progress = self._started
        self._volume_started = int(time.time())
        if opts.multivolume:
            self.say(f"Dumping volume 1 on {first}")
        self._open_toc()
        self._open_qfa()
        self.say(f"Volume 1 started with block 1 at: {time.ctime(self._volume_started)}")
        plan = self.plan
        self._emit([self.tape])
        self._emit(map_records(self.tape, RecordType.TS_CLRI, plan.in_use, plan.maxino))
        self._emit(map_records(self.tape, RecordType.TS_BITS, plan.dumped, plan.maxino))

    def _volume_name(self, volume: int) -> str:
        return volume_file(self.options.output, volume)

    def _emit(self, items: Iterable[Item]) -> None:
        if self.options.volume_blocks:
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
        if self._toc_file is not None and self._toc_on:
            self._archive(data)
        self.writer.write(data)
        self._written += blocks
        self._volume_blocks += blocks
        self._progress()

    def _emit_each(self, items: Iterable[Item]) -> None:
        writer = self.writer
        for item in items:
            tapea = writer.next_block
            if isinstance(item, Header):
                self._recent.append((tapea, item))
                if self._qfa is not None and qfa_indexes(item, self.date):
                    self._qfa_mark(item.c_inumber)
            for block in number_blocks([item], tapea):
                if self._toc_file is not None and self._toc_on:
                    self._archive(block, isinstance(item, Header))
                writer.write(block)
            self._written += 1
            self._volume_blocks += 1
            limit = self.options.volume_blocks
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

    def _open_qfa(self) -> None:
        """Start the ``-Q`` map, as dump does before the first volume."""
        name = self.options.qfa
        if not name:
            return
        self.say(f"writing QFA positions to {name}")
        try:
            self._qfa = open(name, "w", encoding="ascii")
            self._qfa.write(qfa_preamble(self.date))
        except OSError as exc:
            raise DumpError(f"cannot write the QFA file {name}: {exc.strerror}") from None

    def _qfa_mark(self, ino: int) -> None:
        """A line for the record this inode's header goes into, unless an
        earlier header already named that record (dump names the first)."""
        writer = self.writer
        position = writer.address
        if position is None:
            self._warn(f"{writer.sink.name}: the medium cannot tell its position: the QFA file "
                       f"{self.options.qfa} stops here")
            self._qfa.close()
            self._qfa = None
            return
        where = (writer.volume, position)
        if where == self._qfa_last:
            return
        self._qfa_last = where
        try:
            self._qfa.write(qfa_line(QfaEntry(ino, *where)))
        except OSError as exc:
            raise DumpError(f"cannot write the QFA file {self.options.qfa}: {exc.strerror}") from None

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
        written = self._written
        estimate = max(self._estimate, written, 1)
        elapsed = time.monotonic() - self._started
        left = int(elapsed / written * estimate - elapsed) if written else 0
        share = written * 100.0 / estimate
        seconds = int(time.time()) - self._volume_started
        if seconds > 0:
            rate = (self.writer.next_block - self._volume_first_block) // seconds if self.writer else 0
            return f"{share:3.2f}% done at {rate} kB/s, finished in {left // 3600}:{left % 3600 // 60:02d}"
        return f"{share:3.2f}% done, finished in {left // 3600}:{left % 3600 // 60:02d}"

    def _dump_inode(self, node: Node) -> None:
        mode = node.st_mode
        if stat.S_ISREG(mode):
            self._dump_file(node)
        elif stat.S_ISDIR(mode):
            self._dump_directory(node)
        else:
            self._dump_other(node)

    def _dump_directory(self, node: Node) -> None:
        ino = node.ino
        data = build_directory(ino, node.parent, node.entries or ())
        flags = inode_flags(node.path, node)
        if self._headers is not None:
            fields = stat_fields(node, flags=flags, size=len(data))
            if len(data) % TP_BSIZE:
                data += bytes(TP_BSIZE - len(data) % TP_BSIZE)
            view = memoryview(data)
            self._put_blocks(ino, fields, len(data) // TP_BSIZE, lambda start, size: view[start:start + size],
                             holes=False)
            dinode = None
        else:
            dinode = Dinode.from_stat(node, flags=flags, size=len(data))
            self._emit(inode_records(self.tape, ino, dinode, file_slices(data, holes=False)))
        archiving, self._toc_on = self._toc_on, False
        try:
            self._dump_xattrs(node, dinode, flags)
        finally:
            self._toc_on = archiving

    def _dump_file(self, node: Node) -> None:
        ino = node.ino
        try:
            fd = self._open_file(node)
        except OSError as exc:
            flags = inode_flags(node.path, node)
            self._warn(f"cannot read {os.fsdecode(node.path)}: {exc.strerror}; dumped as a hole")
            self._read_errors += 1
            limit = self.options.read_errors
            if limit and self._read_errors > limit:
                raise DumpError(f"more than {limit} files could not be read from {self.source} (-I {limit}): "
                                "the ENTIRE dump is aborted")
            dinode = Dinode.from_stat(node, flags=flags)
            self._emit(inode_records(self.tape, ino, dinode))
            self._dump_xattrs(node, dinode, flags)
            return
        try:
            # The flags come from the descriptor the data is read with.
            flags = fd_inode_flags(fd)
            size = node.st_size
            dinode = None
            tail = size % TP_BSIZE != 0  # a partial last slice: always data (see _tail_as_data)
            if node.st_blocks * 512 < size:  # holes to skip
                dinode = Dinode.from_stat(node, flags=flags)
                self._emit(inode_records(self.tape, ino, dinode, _tail_as_data(_data_slices(fd, size), size)))
            elif self._headers is None:  # -B: block by block
                dinode = Dinode.from_stat(node, flags=flags)
                slices = _small_file_slices(fd, size) if size <= _READ_CHUNK else \
                    _data_slices(fd, size, seek_holes=False)
                self._emit(inode_records(self.tape, ino, dinode, _tail_as_data(slices, size)))
            elif size <= _GROUP_BYTES:  # most files: one read, one header
                want = -(-size // TP_BSIZE) * TP_BSIZE
                data = os.pread(fd, want, 0) if want else b""
                if len(data) != want:
                    data = data.ljust(want, b"\0")  # the file shrank since the walk
                self._put_group(_TS_INODE, ino, stat_fields(node, flags=flags), want // TP_BSIZE, data, tail=tail)
            else:
                self._put_blocks(ino, stat_fields(node, flags=flags), -(-size // TP_BSIZE),
                                 lambda start, want: _pread_full(fd, want, start), tail=tail)
            try:
                names = os.listxattr(fd)
            except OSError as exc:
                names = self._xattr_list_failed(node, exc)
            payload = self._xattr_payload(node, fd, names) if names else None
        finally:
            os.close(fd)
        if payload:
            self._emit(xattr_records(self.tape, ino, dinode or Dinode.from_stat(node, flags=flags), payload))

    def _dump_metaonly(self, node: Node) -> None:
        """``dump -m``'s record of an inode whose contents did not change:
        one ``DR_METAONLY`` header (``di_size`` 0, no data), then its xattrs.
        restore sets the owner, mode, times, flags and xattrs and keeps the
        data it restored before."""
        flags = inode_flags(node.path, node)
        try:
            dinode = Dinode.from_stat(node, flags=flags)
        except FormatLimitError as exc:
            self._warn(f"{os.fsdecode(node.path)} skipped: {exc}")
            return
        self._emit(inode_records(self.tape, node.ino, dinode, metaonly=True))
        self._dump_xattrs(node, dinode, flags)

    def _dump_other(self, node: Node) -> None:
        """A symbolic link, a device, a fifo or a socket."""
        st = node.st
        if stat.S_ISLNK(st.st_mode):
            try:
                target = os.readlink(node.path)
                slices = symlink_slices(target)
            except (OSError, FormatLimitError) as exc:
                self._warn(f"symbolic link {os.fsdecode(node.path)} skipped: {getattr(exc, 'strerror', None) or exc}")
                return
            dinode = Dinode.from_stat(st, size=len(target))
            self._emit(inode_records(self.tape, node.ino, dinode, slices))
        else:
            try:
                dinode = Dinode.from_stat(st)
            except FormatLimitError as exc:
                self._warn(f"{os.fsdecode(node.path)} skipped: {exc}")
                return
            self._emit(inode_records(self.tape, node.ino, dinode))
        self._dump_xattrs(node, dinode, 0)

    def _dump_xattrs(self, node: Node, dinode: Dinode | None, flags: int) -> None:
        payload = self._xattr_payload(node)
        if payload:
            self._emit(xattr_records(self.tape, node.ino, dinode or Dinode.from_stat(node, flags=flags), payload))

    def _put_blocks(self, ino: int, fields: tuple[int, ...], count: int,
                    read: Callable[[int, int], bytes], *, holes: bool = True, tail: bool = False) -> None:
        """An inode's headers and data, packed straight to bytes: ``count``
        slices, read ``TP_NINDIR`` (one header's worth) at a time with
        ``read(offset, size)``; all-zero slices become holes when ``holes``,
        but the last one stays data when ``tail`` (it is partial)."""
        c_type = RecordType.TS_INODE
        done = 0
        while True:
            n = min(count - done, TP_NINDIR)
            self._put_group(c_type, ino, fields, n, read(done * TP_BSIZE, n * TP_BSIZE) if n else b"", holes,
                            tail=tail and done + n >= count)
            done += n
            if done >= count:
                break
            c_type = RecordType.TS_ADDR

    def _put_group(self, c_type: RecordType, ino: int, fields: tuple[int, ...], n: int, data: bytes,
                   holes: bool = True, *, tail: bool = False) -> None:
        """One header (``c_type``) and the ``n`` slices it maps, in ``data``;
        ``tail``: the last slice is a file's partial last one, kept as data."""
        headers = self._headers
        if holes and _has_zero_block(data):
            addr, data = _without_zero_blocks(data, keep_last=tail)
        else:
            addr = headers.data_addr(n)
        writer = self.writer
        tapea = writer.next_block
        if c_type is _TS_INODE and self._qfa is not None and not stat.S_ISDIR(fields[0]):
            self._qfa_mark(ino)
        head = headers.pack(c_type, tapea, ino, fields, n, addr)
        if self._toc_file is not None and self._toc_on:
            self._archive(b"".join(head), True)
            if data:
                self._archive(data)
        if self._keep_recent:
            self._recent.append((tapea, b"".join(head)))
        if data:
            size = len(data)
            writer.write_parts((*head, data), TP_BSIZE + size)
            blocks = 1 + size // TP_BSIZE
        else:
            writer.write_parts(head, TP_BSIZE)
            blocks = 1
        self._written += blocks
        self._volume_blocks += blocks
        if not self._quiet:
            self._progress()

    def _open_file(self, node: Node) -> int:
        """A read descriptor for a regular file, opened by name in its
        directory (held open while the files of one directory follow)."""
        folder, name = node.location
        if name is None:
            return _open_for_reading(node.path)
        if folder is not self._folder:
            self._set_folder(folder)
        if self._folder_fd is None:
            return _open_for_reading(node.path)
        try:
            return os.open(name, _READ_FLAGS | _NOATIME, dir_fd=self._folder_fd)
        except PermissionError:
            return os.open(name, _READ_FLAGS, dir_fd=self._folder_fd)

    def _set_folder(self, folder: bytes | None) -> None:
        if self._folder_fd is not None:
            os.close(self._folder_fd)
            self._folder_fd = None
        self._folder = folder
        if folder is not None:
            try:
                self._folder_fd = os.open(folder, _DIR_FLAGS)
            except OSError:
                pass  # the files get opened by their whole path

    def _xattr_list_failed(self, node: Node, exc: OSError) -> list[str]:
        if exc.errno not in (_errno.ENOTSUP, _errno.ENOENT):
            self._warn(f"cannot list extended attributes of {os.fsdecode(node.path)}: {exc.strerror}")
        return []

    def _xattr_payload(self, node: Node, fd: int | None = None, names: list[str] | None = None) -> bytes | None:
        """The EA payload of ``node`` (read through ``fd`` when given, whose
        attribute ``names`` may be listed already), or None when it has none."""
        path = node.path if fd is None else fd
        if names is None:
            try:
                names = os.listxattr(path, follow_symlinks=False) if fd is None else os.listxattr(fd)
            except OSError as exc:
                names = self._xattr_list_failed(node, exc)
        if not names:
            return None
        values = {}
        for name in names:
            try:
                split_xattr_name(name)
            except FormatLimitError as exc:
                self._warn(f"{os.fsdecode(node.path)}: {exc}")
                continue
            try:
                values[name] = (os.getxattr(path, name, follow_symlinks=False) if fd is None
                                else os.getxattr(fd, name))
            except OSError as exc:
                self._warn(f"cannot read extended attribute {name} of {os.fsdecode(node.path)}: {exc.strerror}")
        if not values:
            return None
        try:
            return pack_xattr_block(values)
        except DumpError as exc:
            self._warn(f"extended attributes of {os.fsdecode(node.path)} not dumped: {exc}")
            return None

    def _end(self) -> None:
        self._ending = True
        self._toc_on = True  # the archive ends with the TS_END blocks
        writer = self.writer
        end = self.tape
        if self._toc_file is not None:  # dump's volinfo: the first inode of each volume, for restore -A
            inos = (self._volinfo + [0] * TP_NINOS)[:TP_NINOS]
            end = end.derive(c_flags=end.c_flags | DR_INODEINFO, c_addr=struct.pack(f"<{TP_NINOS}i", *inos))
        # TS_END blocks fill the last record.  How many is what the writer
        # has pending, not c_tapea: once a full tape made it replay a record
        # after the next volume's header, the records are one block off the
        # numbers.  And the record the first TS_END blocks go into may itself
        # meet the end of the tape: replayed on the next volume, its last
        # block is left over, and more TS_END blocks fill that record too.
        while True:
            self._emit(end_records(end, writer.blocks_pending))
            if not writer.blocks_pending:
                break
        name = writer.sink.name
        writer.finish()
        if self._qfa is not None:
            try:
                self._qfa.close()
            except OSError as exc:
                raise DumpError(f"cannot write the QFA file {self.options.qfa}: {exc.strerror}") from None
            self._qfa = None
        blocks = writer.next_block
        self._volumes_done.append(writer.volume)
        self.volume_closed(name, writer.volume, blocks)
        to_pipe = self.options.output == "-"
        self.say(f"{blocks} blocks ({blocks / 1024:.2f}MB)" + ("" if to_pipe else f" on {writer.volume} volume(s)"))
        seconds = int(time.monotonic() - self._started)
        self.say("finished in less than a second" if seconds < 1 else f"finished in {seconds} seconds, "
                 f"throughput {blocks // seconds} kBytes/sec")
        self.say(f"Date of this level {self.options.level} dump: {time.ctime(self.date)}")
        self.say(f"Date this dump completed:  {time.ctime()}")
        self.say(f"Average transfer rate: {sum(self._rates) // writer.volume} kB/s")
        if self.compressor is not None:
            self.say("Wrote " + ratio_line(blocks, self.compressor.bytes_written))
        self._close_toc()

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

    # -- the archive file (-A) -------------------------------------------------------
    def _open_toc(self) -> None:
        """dump's archive file: the blocks of the volume header, the maps,
        the directories (without their EA records) and the end, as they go
        on the medium but never compressed; ``restore -t -A FILE`` and
        ``restore -i -A FILE`` read it instead of the tape."""
        name = self.options.toc
        if not name:
            return
        try:
            self._toc_file = open(name, "wb")
        except OSError as exc:
            raise DumpError(f"Cannot open {name} for writing: {exc.strerror}") from None

    def _archive(self, data: bytes, header: bool = False) -> None:
        if header and self.compressor is not None:  # dump's archive is plain: DR_COMPRESSED off
            h = Header.unpack(data, ByteOrder.LITTLE)
            data = h.derive(c_flags=h.c_flags & ~DR_COMPRESSED).pack()
        try:
            self._toc_file.write(data)
        except OSError as exc:
            self._warn(f"error writing archive file {self.options.toc}: {exc.strerror}; it stops here")
            self._close_toc(quiet=True)

    def _close_toc(self, quiet: bool = False) -> None:
        toc, self._toc_file = self._toc_file, None
        if toc is None:
            return
        try:
            toc.close()
        except OSError as exc:
            self._warn(f"error writing archive file {self.options.toc}: {exc.strerror}")
            return
        if not quiet:
            self.say(f"Archiving dump to {self.options.toc}")

    def _record(self) -> None:
        if self._inomap is not None and self.options.update:
            self._inomap.save()
        if self.options.update:
            DumpDates(self.options.dumpdates).record(self.filesys, self.options.level, self.date)
            self.say(f"Updated dumpdates ({self.options.dumpdates}) for level {self.options.level}")
        self.notify("DUMP IS DONE!")
        self.say("DUMP IS DONE")

    def _warn(self, message: str) -> None:
        self.warn(message)

    def notify(self, message: str) -> None:
        """dump -n's alert to the operators, printed with the operator lines."""
        if self.options.notify:
            self.say(f"Message to the operators: {message}")

    # -- volume changes --------------------------------------------------------------
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


class _FullTapeSink(SinkWrapper):
    """A tape sink that, once the medium said it is full, lets its close fail
    quietly: a full cartridge may refuse even its closing filemark, and
    restore stops at the end of data all the same."""

    def __init__(self, inner: Sink) -> None:
        super().__init__(inner)
        self._full = False

    def write_record(self, record: bytes) -> None:
        try:
            self.inner.write_record(record)
        except EndOfMedium:
            self._full = True
            raise

    def close(self) -> None:
        try:
            self.inner.close()
        except MediumError:
            if not self._full:
                raise


def _open_output(name: str) -> Sink:
    sink = open_sink(name)
    return _FullTapeSink(sink) if sink.is_tape else sink


class _VolumeChanger:
    """Mounts volume n+1: the next file of a ``-M`` set, the next cartridge
    of a shelf (by slot order), or, on a tape nothing can change by itself
    (a Linux st drive, a shelf with no cartridge left), whatever the operator
    mounts when asked on the terminal as dump asks.  Without a terminal, or
    under ``--no-prompt``, it fails clearly.

    Nothing is overwritten unasked: from the slots only a blank cartridge
    (no data at all) is taken, or one ``--scratch`` names; a used, a
    write-protected or an unreadable one is passed over with a warning and
    left as it was.  A cartridge the operator loads by hand that holds data
    is taken only once the operator says it may be overwritten, and never a
    volume of this same dump.  (The first volume goes where the operator
    put the drive, as with dump.)"""

    def __init__(self, dump: Dump, is_tape: bool) -> None:
        self.dump = dump
        self.is_tape = is_tape
        self._used: set[str] = set()   # this dump's cartridges
        self._files: dict[tuple[int, int], int] = {}  # this dump's volume files: (dev, ino) -> volume

    def note_file(self, name: str, volume: int = 1) -> None:
        """Remember that the regular file *name* holds *volume* of this dump."""
        try:
            st = os.stat(name)
        except OSError:
            return
        if stat.S_ISREG(st.st_mode):
            self._files[(st.st_dev, st.st_ino)] = volume

    def next_volume(self, request: VolumeRequest) -> NewVolume:
        dump = self.dump
        opts = dump.options
        current = dump.writer.sink.name
        dump.volume_closed(current, request.volume - 1, request.first_block)
        ready = self._run_script(current, request.volume - 1) == 0
        if opts.multivolume:
            name = dump._volume_name(request.volume)
            dump.say(f"Dumping volume {request.volume} on {name}")
            sink = open_sink(name)
            self.note_file(name, request.volume)
        elif self.is_tape:
            sink = self._next_cartridge(request.volume, ready)
        else:
            sink = self._next_file(current, request.volume, ready)
        header = dump.new_volume_header(request)
        return NewVolume(sink, header)

    def _run_script(self, device: str, volume: int) -> int:
        """dump's ``-F`` script, run as ``SCRIPT DEVICE VOLUME`` for the
        volume just full: 0, the next volume is ready; 1, go on as without
        a script; anything else stops the dump (1 when there is no script)."""
        script = self.dump.options.eot_script
        if not script:
            return 1
        self.dump.say(f"Launching {script}")
        try:  # its output goes to stderr: stdout may carry the image
            code = subprocess.run(["/bin/sh", "-c", f"{script} {shlex.quote(device)} {volume}"],
                                  stdin=subprocess.DEVNULL, stdout=2).returncode
        except OSError as exc:
            raise MediumError(f"cannot run the end of tape script {script}: {exc.strerror}") from None
        if code not in (0, 1):
            raise MediumError(f"Dump aborted by the end of tape script {script} (exit status {code})")
        return code

    def _next_file(self, current: str, volume: int, ready: bool) -> Sink:
        """Volume *volume* of a ``-B`` dump to a plain file (no ``-M``): the
        operator moves the full volume away and says yes (the next one goes
        to the same name, as with dump), or types the name of a new file.
        A file holding a volume of this dump, or any data, is never
        overwritten."""
        opts = self.dump.options
        full = f"{current}: volume {volume - 1} is full (-B {opts.volume_blocks})"
        if opts.output == "-":
            raise MediumError(f"{full}: standard output cannot change volumes: use -M (a file per volume)",
                              _errno.ENOSPC)
        if ready:  # the -F script made the next volume ready
            refusal = self._file_refusal(current)
            if refusal:
                raise MediumError(f"{full} and the end of tape script left it in place: {refusal}", _errno.ENOSPC)
            return self._open_file(current, volume)
        remedy = "use -M (a file per volume), or -F SCRIPT to move full volumes away"
        if opts.never_ask:
            raise MediumError(f"{full}; -q or --no-prompt forbids asking for volume {volume}: {remedy}", _errno.ENOSPC)
        tty = open_terminal()
        if tty is None:
            raise MediumError(f"{full}; no terminal to ask for volume {volume} on: {remedy}", _errno.ENOSPC)
        self.dump.notify("CHANGE DUMP VOLUMES!")
        with tty:
            tty.write(f"  DUMP: Change Volumes: Mount volume #{volume}\n"
                      f"  DUMP: {current} holds volume {volume - 1}: move it away and answer yes (volume "
                      f"{volume} goes to {current} again), or type the name of a new file for volume {volume}\n")
            while True:
                answer = tty.ask('  DUMP: Is the new volume mounted and ready to go?: ("yes" or "no") ')
                if answer is None or answer.lower() in ("no", "n"):
                    raise MediumError(f"{current}: volume {volume} not mounted: the ENTIRE dump is aborted",
                                      _errno.ENOSPC)
                name = current if answer.lower() in ("yes", "y") else os.path.expanduser(answer)
                if not name:
                    tty.write('  DUMP: "yes", "no" or a file name?\n')
                    continue
                refusal = self._file_refusal(name)
                if refusal:
                    tty.write(f"  DUMP: {refusal}\n")
                    continue
                try:
                    return self._open_file(name, volume)
                except (DumpError, TapeError) as exc:
                    tty.write(f"  DUMP: cannot open {name}: {getattr(exc, 'message', exc)}\n")

    def _file_refusal(self, name: str) -> str | None:
        """Why *name* may not take the next volume (None: it may)."""
        try:
            st = os.stat(name)
        except FileNotFoundError:
            return None
        except OSError as exc:
            return f"{name}: {exc.strerror}"
        held = self._files.get((st.st_dev, st.st_ino))
        if held is not None:
            return f"{name} holds volume {held} of this dump: move it away first, or give a new name"
        if stat.S_ISREG(st.st_mode) and st.st_size:
            return f"{name} holds {st.st_size} bytes of earlier data: move it away, or give a new name"
        return None

    def _open_file(self, name: str, volume: int) -> Sink:
        sink = _open_output(name)
        self.note_file(name, volume)
        self.dump.say(f"Volume {volume} goes to {name}")
        return sink

    def _shelf_drive(self) -> tuple[Shelf, int] | None:
        """The shelf and drive number of a shelf device output, else None."""
        device = self.dump.options.output
        marker = read_device_marker(Path(device)) if os.path.isfile(device) else None
        if marker is None:
            return None
        from tapelib import Shelf

        return Shelf(Path(device).parent), marker[0]

    def _next_cartridge(self, volume: int, ready: bool = False) -> Sink:
        device = self.dump.options.output
        if ready:  # the -F script changed the cartridge: check it as an operator's
            refusal = self._script_mount_refusal()
            if refusal:
                raise MediumError(f"{device}: the end of tape script mounted a cartridge pydump may not write "
                                  f"volume {volume} on: {refusal}", _errno.ENOSPC)
            return _open_output(device)
        try:
            found = self._shelf_drive()
            if found is None:
                return self._ask_operator(volume, f"{device}: end of tape on volume {volume - 1}")
            shelf, drive = found
            barcode, slot = shelf.unload(drive)
            self._used.add(barcode)
            slots = shelf.status().slots
            order = list(range(slot + 1, len(slots) + 1)) + list(range(1, slot + 1))
            passed_over = False
            for candidate in order:
                name = slots[candidate - 1]
                if name is None or name in self._used:
                    continue
                unfit, used = self._survey(shelf, name)
                if unfit is None and used and name not in self.dump.options.scratch:
                    unfit = (f"it holds {used} bytes of earlier data (pydump takes only blank cartridges, "
                             "and those --scratch names)")
                if unfit is not None:
                    self.dump.warn(f"passing over {name} in slot {candidate}: {unfit}")
                    passed_over = True
                    continue
                shelf.load(candidate, drive)
                self._used.add(name)
                self.dump.say(f"Changing volumes: loaded {name} from slot {candidate} into drive {drive}")
                break
            else:
                if passed_over:
                    return self._ask_operator(
                        volume, f"{device}: end of tape on volume {volume - 1} and no blank cartridge in the "
                        "shelf's slots", remedy="add a blank one (pytape new), or name one that may be "
                        "overwritten with --scratch, and dump again")
                return self._ask_operator(
                    volume, f"{device}: end of tape on volume {volume - 1} and no other cartridge in the "
                    "shelf's slots", remedy="add one (pytape new) and dump again")
        except TapeError as exc:
            raise MediumError(f"{device}: cannot change cartridges: {exc.message}", exc.errno) from None
        return _open_output(device)

    def _survey(self, shelf: Shelf, barcode: str) -> tuple[str | None, int]:
        """What stops cartridge ``barcode`` from taking a volume whatever
        anyone says (None: nothing), and how many bytes of data it holds
        (0: blank; data may be overwritten only where the operator said so)."""
        from tapelib import Cartridge

        path = shelf.cartridge_path(barcode)
        try:
            cartridge = Cartridge(path, writable=False)
        except TapeError as exc:
            return f"unreadable ({exc.message})", 0
        try:
            if cartridge.write_protected:
                return "it is write-protected", 0
            # Bytes past the end of data (a torn record, damage) count as data too.
            return None, max(cartridge.end, path.stat().st_size)
        except OSError as exc:
            return f"unreadable ({exc.strerror})", 0
        finally:
            cartridge.close()

    def _ask_operator(self, volume: int, problem: str, remedy: str = "use a larger tape or a shelf drive") -> Sink:
        """dump's "Change Volumes" dialogue on /dev/tty; the reopened device once the operator says yes."""
        device = self.dump.options.output
        if self.dump.options.never_ask:
            raise MediumError(f"{problem}; -q or --no-prompt forbids asking for volume {volume}: {remedy}", _errno.ENOSPC)
        tty = open_terminal()
        if tty is None:
            raise MediumError(f"{problem}; no terminal to ask for volume {volume} on: {remedy}", _errno.ENOSPC)
        self.dump.notify("CHANGE DUMP VOLUMES!")
        with tty:
            tty.write(f"  DUMP: {problem}\n  DUMP: Change Volumes: Mount volume #{volume}\n")
            while True:
                answer = tty.ask('  DUMP: Is the new volume mounted and ready to go?: ("yes" or "no") ')
                if answer is None or answer.lower() in ("no", "n"):
                    raise MediumError(f"{device}: volume {volume} not mounted: the ENTIRE dump is aborted",
                                      _errno.ENOSPC)
                if answer.lower() not in ("yes", "y"):
                    tty.write('  DUMP: "yes" or "no"?\n')
                    continue
                refusal, barcode = self._check_mounted(tty)
                if refusal:
                    tty.write(f"  DUMP: {refusal}\n  DUMP: Change Volumes: Mount volume #{volume}\n")
                    continue
                try:
                    sink = _open_output(device)
                except (DumpError, TapeError) as exc:
                    tty.write(f"  DUMP: cannot open {device}: {getattr(exc, 'message', exc)}\n")
                    continue
                if barcode is not None:
                    self._used.add(barcode)
                self.dump.say(f"Volume {volume} mounted on {device} by the operator")
                return sink

    def _script_mount_refusal(self) -> str | None:
        """Why the cartridge a ``-F`` script mounted may not take a volume (None: it may)."""
        try:
            found = self._shelf_drive()
            if found is None:
                return None  # a drive that cannot tell what it holds: the script's word
            shelf, drive = found
            barcode = shelf.status().drives[drive].barcode
            if barcode is None:
                return f"drive {drive} is empty"
            if barcode in self._used:
                return f"{barcode} holds a volume of this dump"
            unfit, used = self._survey(shelf, barcode)
        except TapeError as exc:
            return exc.message
        if unfit is not None:
            return f"{barcode}: {unfit}"
        if used and barcode not in self.dump.options.scratch:
            return f"{barcode} holds {used} bytes of earlier data (name it with --scratch to overwrite it)"
        self._used.add(barcode)
        return None

    def _check_mounted(self, tty: Terminal) -> tuple[str | None, str | None]:
        """On a shelf drive, why the cartridge the operator mounted may not
        take the volume (None: it may), and its barcode.  One with data on
        it is asked about: the operator must say it may be overwritten."""
        try:
            found = self._shelf_drive()
            if found is None:
                return None, None  # a drive that cannot tell what it holds: the operator's word
            shelf, drive = found
            barcode = shelf.status().drives[drive].barcode
            if barcode is None:
                return f"drive {drive} is empty", None
            if barcode in self._used:
                return f"{barcode} holds a volume of this dump: mount another cartridge", barcode
            unfit, used = self._survey(shelf, barcode)
        except TapeError as exc:
            return exc.message, None
        if unfit is not None:
            return f"{barcode}: {unfit}", barcode
        if used and barcode not in self.dump.options.scratch:
            answer = tty.ask(f"  DUMP: {barcode} holds {used} bytes of earlier data: overwrite it? "
                             '("yes" or "no") ')
            if answer is None or answer.lower() not in ("yes", "y"):
                return f"{barcode} left as it is", barcode
        return None, barcode


def _open_for_reading(path: bytes) -> int:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        return os.open(path, flags | getattr(os, "O_NOATIME", 0))
    except PermissionError:
        return os.open(path, flags)


def _pread_full(fd: int, size: int, offset: int) -> bytes:
    """``size`` bytes of the file from ``offset``, zero-filled past its end
    (the file shrank since the walk)."""
    data = os.pread(fd, size, offset)
    return data if len(data) == size else data.ljust(size, b"\0")


def _has_zero_block(data: bytes) -> bool:
    """Whether one of the 1 KiB blocks ``data`` is cut into is all zeros.

    Only blocks whose first byte is zero are compared, so this costs about
    0.6 µs for 64 KiB where searching for a 1 KiB needle costs ten times that
    (the search also looks at every unaligned offset)."""
    heads = data[::TP_BSIZE]
    i = heads.find(0)
    while i >= 0:
        start = i * TP_BSIZE
        if data[start:start + TP_BSIZE] == _ZERO_BLOCK:
            return True
        i = heads.find(0, i + 1)
    return False


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


def _tail_as_data(slices: Iterable[Slice], size: int) -> Iterator[Slice]:
    """*slices* of a file of ``size`` bytes with its last slice, when it is
    partial, written as data even if it is all zero.

    Linux restore 0.4b47 writes a file through a buffer of data blocks that
    it flushes when a hole comes; it cuts that flush to the bytes left at the
    hole, so a partial last slice mapped as a hole right after data loses
    the end of that data (1,024 × ``A`` + one NUL came back as ``A`` and
    1,024 NULs; ``restore -C`` calls it different).  Linux dump maps every
    allocated fs block as data, so its images never have that shape."""
    if not size % TP_BSIZE:
        yield from slices
        return
    last = size // TP_BSIZE  # the index of the partial slice
    k = 0
    for item in slices:
        if item is None:
            yield _ZERO_BLOCK if k == last else None
            k += 1
        else:
            yield item
            k += len(item) // TP_BSIZE
    while k <= last:  # slices stopped short: holes up to the tail, which is data
        yield _ZERO_BLOCK if k == last else None
        k += 1


def _single_blocks(items: Iterable[Item]) -> Iterator[Item]:
    """*items* with every run of data blocks cut into 1 KiB blocks."""
    for item in items:
        if isinstance(item, Header) or len(item) <= TP_BSIZE or len(item) % TP_BSIZE:
            yield item
        else:
            for i in range(0, len(item), TP_BSIZE):
                yield item[i:i + TP_BSIZE]


def _small_file_slices(fd: int, size: int) -> list[Slice]:
    """What ``_data_slices(fd, size, seek_holes=False)`` yields for a file of
    at most one read chunk, read at once (most files are small)."""
    want = -(-size // TP_BSIZE) * TP_BSIZE
    if not want:
        return []
    chunk = os.pread(fd, want, 0)
    if len(chunk) < want:
        chunk = chunk.ljust(want, b"\0")  # the file shrank since the walk
    if _has_zero_block(chunk):
        return [data_slice(chunk[i:i + TP_BSIZE]) for i in range(0, want, TP_BSIZE)]
    return [chunk]


def _data_slices(fd: int, size: int, *, seek_holes: bool = True) -> Iterator[Slice]:
    """The slices of an open file of ``size`` bytes, holes found with
    SEEK_DATA/SEEK_HOLE left unread (None).  Data with no all-zero block
    comes as runs of whole slices (a chunk read at once).  ``seek_holes``
    False reads everything (a file with as many blocks as bytes has no
    hole to skip); all-zero blocks become holes either way."""
    pos = 0
    while pos < size:
        if not seek_holes:
            data = pos
        else:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == _errno.ENXIO:
                    data = size  # a hole to the end
                else:
                    data = pos   # no hole support: read everything
        hole_end = min(data, size) // TP_BSIZE * TP_BSIZE
        while pos < hole_end:
            yield None
            pos += TP_BSIZE
        if pos >= size:
            return
        try:
            end = os.lseek(fd, max(data, pos), os.SEEK_HOLE) if seek_holes else size
        except OSError:
            end = size
        end = min(-(-end // TP_BSIZE) * TP_BSIZE, -(-size // TP_BSIZE) * TP_BSIZE)
        if end <= pos:
            end = pos + TP_BSIZE
        while pos < end:
            want = min(_READ_CHUNK, end - pos)
            chunk = os.pread(fd, want, pos)
            if len(chunk) < want:
                chunk = chunk.ljust(want, b"\0")  # the file shrank while we read it
            if _has_zero_block(chunk):  # data_slice makes that block a hole
                for i in range(0, want, TP_BSIZE):
                    yield data_slice(chunk[i:i + TP_BSIZE])
            else:
                yield chunk  # want is whole slices: end and pos are
            pos += want
