"""The dump engine: map, write directories, write files, write the end.

A :class:`Dump` runs dump's stages as an explicit generator of work
(:meth:`Dump.steps`): each step yields a :class:`Cursor` naming the stage, how
many inodes of it are written and where the tape stands, so a caller can
show progress, stop between steps, or (later) save the cursor to restart.

Layout comes from :mod:`dumptool.format` (headers, maps, inode records,
directories, xattr payloads); what is read, from a :class:`~dumptool.trees.Tree`
(the live tree by default: :mod:`dumptool.livetree`); what to dump, from
:mod:`dumptool.traverse`; increment chains and inode numbers from
:mod:`dumptool.dumpdates`.  Blocks go out through
:class:`~dumptool.imagewriter.ImageWriter` (volumes: :mod:`dumptool.volumes`;
``-Q`` and ``-A``: :mod:`dumptool.history`).

Holes stay holes; xattrs of every namespace (``user.``, ``trusted.``,
``security.`` and the POSIX ACLs ``system.posix_acl_access``/``_default``) are
written as one EA record per inode (restore keeps only the last one of a
directory).
"""

from __future__ import annotations

import dataclasses
import enum
import gc
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

from .compression import RecordCompressor
from .dumpdates import DEFAULT_DUMPDATES, DumpDates, InodeMap, check_level
from .errors import DumpError, FormatLimitError, engine_entry
from .format import (
    DR_COMPRESSED,
    LBLSIZE,
    NAMELEN,
    TP_BSIZE,
    TP_NINDIR,
    Dinode,
    Header,
    RecordType,
    Slice,
    build_directory,
    file_slices,
    inode_records,
    symlink_slices,
    volume_header,
    xattr_records,
)
from .history import FileHistory, QfaWriter, TocArchive, resume_histories
from .offsetmap import OffsetMapWriter
from .imagewriter import ImageWriter
from .livetree import LiveTree, live_path, snapshot_time
from .pass5 import Pass5Gatherer, ea_payload
from .medium import RecordWriter, TapePosition, check_blocking_factor
from .traverse import DumpPlan, FreshNumbering, Node, estimate_blocks, map_blocks, plan_dump
from .trees import Tree
from .volumes import VolumeChanger

_ZERO_BLOCK = bytes(TP_BSIZE)
#: The file bytes one header maps.
_GROUP_BYTES = TP_NINDIR * TP_BSIZE
_tuple_new = tuple.__new__
_TS_INODE = RecordType.TS_INODE
_S_IFMT, _S_IFREG = 0o170000, stat.S_IFREG


class Stage(enum.Enum):
    """dump's passes, in order."""

    MAP = "map"
    DIRECTORIES = "directories"
    FILES = "files"
    END = "end"
    DONE = "done"


class Cursor(NamedTuple):
    """Where a dump stands: ``done`` inodes of ``stage`` written (all inodes
    mapped for MAP), and ``next_block``, the ``c_tapea`` the next block gets.
    :attr:`Dump.position` tells where that block goes on the medium.  (A
    named tuple: one is made per inode, and a tuple is the cheapest to make.)"""

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
    tree: Tree | None = None              # what to read (None: the live tree at source; the caller closes its own)
    history: tuple[FileHistory, ...] = ()  # more file history observers (after -A's and -Q's)
    before_record: Callable[[str, int, int], None] | None = None  # -u: called (path, level, date) before dumpdates
    file_history: bool = True             # keep the offset map in the state folder (dumptool.offsetmap)


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
        self.say = say or (lambda line: None)
        self.warn = warn or (lambda line: None)
        #: What the dump reads (built in Pass I when the options give none).
        self.tree: Tree | None = options.tree
        self._own_tree = False
        self.source = options.tree.root if options.tree is not None else os.path.abspath(options.source)
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
        #: Where the blocks go (once Pass III starts).
        self.out: ImageWriter | None = None
        self.cursor = Cursor(Stage.MAP)
        self._inomap = None
        self._estimate = 0
        self._frozen = False                   # objects frozen out of the cyclic collector (_map)
        #: -z/-j: frames the records and counts the bytes written.
        self.compressor = (RecordCompressor(options.compress, options.compress_level)
                           if options.compress is not None else None)
        self._read_errors = 0                  # files that could not be read (-I)
        self.pass5: Pass5Gatherer | None = None  # what goes after the files (Pass V)

    # -- the stages ---------------------------------------------------------------
    def run(self) -> Cursor:
        """Run every stage; the final cursor."""
        for cursor in self.steps():
            self.cursor = cursor
        return self.cursor

    @engine_entry
    def steps(self, resume: Callable[[Dump], tuple[ImageWriter, int]] | None = None) -> Iterator[Cursor]:
        """The dump as a generator: one cursor per unit of work done.

        ``resume`` restarts an interrupted dump (:mod:`dumptool.restart`):
        once the inodes are mapped and the volume header made, it gives the
        image writer to go on with and the index (directories, then files)
        of the first inode to write again."""
        try:
            yield from self._steps(resume)
        except BaseException:
            if self.out is not None:
                try:
                    self.out.writer.abort()
                except DumpError:
                    pass
            raise
        finally:
            if self._frozen:
                self._frozen = False
                gc.unfreeze()
            self._close_tree()
            if self._inomap is not None:
                self._inomap.close()
            if self.out is not None:
                self.out.close()

    @property
    def estimate(self) -> int:
        """dump's estimate of the blocks it writes (once Passes I and II ran)."""
        return self._estimate

    @property
    def writer(self) -> RecordWriter | None:
        """The record writer, once writing started."""
        return self.out.writer if self.out is not None else None

    @property
    def position(self) -> TapePosition | None:
        """Where the next record goes (volume, tape file and block), once writing started."""
        return self.out.position if self.out is not None else None

    def progress_line(self) -> str:
        """dump's estimate of what is left (``78.61% done at 333 kB/s, finished in 0:01``)."""
        return self.out.progress_line() if self.out is not None else "0.00% done, finished in 0:00"

    def _steps(self, resume: Callable[[Dump], tuple[ImageWriter, int]] | None) -> Iterator[Cursor]:
        self._map()
        yield Cursor(Stage.MAP, len(self.plan.nodes))
        if resume is None:
            self._start()
            first = 0
        else:
            self.tape = first_volume_header(self.options, self.filesys, self.date, self.base_date,
                                              compressed=self.compressor is not None, warn=self._warn)
            self.out, first = resume(self)
            resume_histories(self.options.history, self.out.histories, self.tape.pack(), self.plan, first)
            self.pass5 = Pass5Gatherer(self.tree, self._warn)
            self.pass5.regather(self.plan, first)
        plan = self.plan
        verbose = self.options.verbose
        ndirs = len(plan.directories)
        if first < ndirs:
            self.say("dumping (Pass III) [directories]")
        for n, ino in enumerate(plan.directories[first:], first + 1):
            if verbose:
                self.say(f"dumping directory inode {ino}")
            self._dump_inode(plan.nodes[ino])
            yield self._cursor(Stage.DIRECTORIES, n)
        self.say("dumping (Pass IV) [regular files]")
        nodes, dump_file, dump_inode, cursor = plan.nodes, self._dump_file, self._dump_inode, self._cursor
        files = Stage.FILES
        meta = plan.metaonly
        carrier: Node | None = None
        out = self.out
        for n, ino in enumerate(plan.files[max(0, first - ndirs):], max(0, first - ndirs) + 1):
            node = nodes[ino]
            if verbose:
                self.say(f"dumping regular inode {ino}" + (" (meta only)" if meta and ino in meta else ""))
            before = out.written
            if meta and ino in meta:
                self._dump_metaonly(node)
            elif node.st_mode & _S_IFMT == _S_IFREG:
                dump_file(node)
            else:
                dump_inode(node)
            if out.written != before:
                carrier = node
            yield cursor(files, n)
        self.pass5.write(carrier, self.out, self.tape, self.say)
        self.out.finish(self.date)
        yield self._cursor(Stage.END, 1)
        self._record()
        yield Cursor(Stage.DONE, 0, self.out.written)

    def _cursor(self, stage: Stage, done: int) -> Cursor:
        return _tuple_new(Cursor, (stage, done, self.out.writer.next_block if self.out else 0))

    # -- Pass I and II: what to dump -----------------------------------------------
    def _map(self) -> None:
        opts = self.options
        dates = DumpDates(opts.dumpdates)
        self.base_date, self._base_level = _base(opts, dates, self.filesys, self.date, self.snapshot_date, self._warn)
        if self.tree is None:
            self.tree = LiveTree(self.source, self._warn)
            self._own_tree = True
        if opts.level > 0 or opts.update:
            self._inomap = dates.inode_map(self.filesys)
            numbering = self._inomap
        else:
            numbering = FreshNumbering()
        self.say(f"Date of this level {opts.level} dump: {time.ctime(self.date)}")
        if self.snapshot_date is not None:
            self.say("(the time the snapshot's data froze)")
        if self.base_date:
            self.say(f"Date of last level {self._base_level} dump: {time.ctime(self.base_date)}")
        self.say(f"Dumping {self.source} (an unlisted file system) to {opts.output}")
        self.say(f"Label: {opts.label}")
        self.say(f"Writing {opts.ntrec} Kilobyte records")
        if self.compressor is not None:
            self.say(f"Compressing output at transformation level {self.compressor.level} ({self.compressor.name})")
        # ONTAP folds stage I into II for a whole volume or qtree (a snapfs tree's scope)
        folded = getattr(self.tree, "scope", None) in ("volume", "qtree")
        self.say("mapping (Pass I+II) [regular files and directories]" if folded
                 else "mapping (Pass I) [regular files]")
        # The plan is a few objects per inode, none in a cycle: the cyclic
        # collector, run every 700 of them, would walk the growing plan again
        # and again (a sixth of a dump of small files), and once it is built,
        # it is frozen out of the collector's sight until the dump ends.
        collecting = gc.isenabled()
        gc.disable()
        try:
            nodump = opts.level >= opts.honor_level  # dump's rule (its nonodump is level < honorlevel)
            chain = _chain(self._inomap, self.base_date, given=opts.base_date is not None)
            nodes = self.tree.walk(numbering, exclude=opts.exclude, nodump=nodump)
            if not folded:
                self.say("mapping (Pass II) [directories]")
            force = set(getattr(self.tree, "forced", ())) | _new_to_chain(self._inomap, chain, nodes,
                                                                           self.base_date, self.say)
            self.plan = plan_dump(nodes, numbering.maxino, self.base_date, metaonly=opts.metaonly, nodump=nodump,
                                  flags=self.tree.flags, force=force, skip=getattr(self.tree, "unchanged", ()))
        finally:
            if collecting:
                gc.enable()
        gc.freeze()
        self._frozen = True
        self._tapesize = estimate_blocks(self.plan, self.tree.block_size())
        ntrec, limit = opts.ntrec, opts.volume_blocks
        if not limit or opts.output == "-":
            self._estimate = self._tapesize + 1 + ntrec  # a map header and the trailer blocks
            self.say(f"estimated {self._estimate} blocks.")
        else:  # dump's count for -B: a header and the maps again on each further volume
            per_volume = limit // ntrec * ntrec if self.compressor is None else limit
            volumes = self._tapesize / max(per_volume, 1)
            extra = int(volumes)  # dump's etapes - 1
            self._estimate = self._tapesize + extra * (map_blocks(self.plan) + 1) + extra + 1 + ntrec
            self.say(f"estimated {self._estimate} blocks on {volumes:3.2f} tape(s).")
        if self._inomap is not None:
            self._inomap.prune((n.st.st_dev, n.st.st_ino) for n in nodes.values())

    @engine_entry
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
            self._close_tree()
        return (self._tapesize + 1 + self.options.ntrec) * TP_BSIZE

    # -- writing -------------------------------------------------------------------
    def _start(self) -> None:
        opts = self.options
        self.tape = first_volume_header(self.options, self.filesys, self.date, self.base_date,
                                              compressed=self.compressor is not None, warn=self._warn)
        changer = VolumeChanger(opts, say=self.say, warn=self._warn, notify=self.notify)
        self.out = out = ImageWriter(self.tape, opts, changer, compressor=self.compressor, estimate=self._estimate,
                                     say=self.say)
        if opts.toc:
            out.histories.append(TocArchive(opts.toc, say=self.say, warn=self._warn))
        if opts.qfa:
            out.histories.append(QfaWriter(opts.qfa, self.date, say=self.say, warn=self._warn))
        if opts.file_history and not any(isinstance(h, OffsetMapWriter) for h in opts.history):
            out.histories.append(OffsetMapWriter(warn=self._warn))  # (a restartable context brings its own)
        out.histories.extend(opts.history)
        self.pass5 = Pass5Gatherer(self.tree, self._warn)
        out.start(self.plan)

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
        flags = self.tree.flags(node)
        self.out.tap()
        if self.out.headers is not None:
            size = len(data)
            if size % TP_BSIZE:
                data += bytes(TP_BSIZE - size % TP_BSIZE)
            view = memoryview(data)
            self.out.put_blocks(ino, node, len(data) // TP_BSIZE, lambda start, size: view[start:start + size],
                                holes=False, flags=flags, size=size)
            dinode = None
        else:
            dinode = Dinode.from_stat(node, flags=flags, size=len(data))
            self.out.emit(inode_records(self.tape, ino, dinode, file_slices(data, holes=False)))
        blocks = self.out.tapped()
        for history in self.out.histories:
            history.add_dir(ino, node.entries or (), blocks)
        self._dump_xattrs(node, dinode, flags, is_dir=True)

    def _dump_file(self, node: Node) -> None:
        ino = node.ino
        try:
            file = self.tree.open(node)
        except OSError as exc:
            self._unreadable(node, exc)
            return
        out = self.out
        try:
            flags = file.flags
            size = node.st_size
            dinode = None
            tail = size % TP_BSIZE != 0  # a partial last slice: always data (see _tail_as_data)
            if node.st_blocks * 512 < size:  # holes to skip
                dinode = Dinode.from_stat(node, flags=flags)
                out.emit(inode_records(self.tape, ino, dinode, _tail_as_data(file.slices(size), size)))
            elif out.headers is None:  # -B: block by block
                dinode = Dinode.from_stat(node, flags=flags)
                slices = file.slices(size, seek_holes=False)
                out.emit(inode_records(self.tape, ino, dinode, _tail_as_data(slices, size)))
            elif size <= _GROUP_BYTES:  # most files: one read, one header
                n = -(-size // TP_BSIZE)
                out.put_group(_TS_INODE, ino, node, n, file.read(0, n * TP_BSIZE) if n else b"", True, tail=tail,
                              flags=flags)
            else:
                out.put_blocks(ino, node, -(-size // TP_BSIZE), file.read, tail=tail, flags=flags)
            values = file.xattrs()
        finally:
            file.close()
        pass5 = self.pass5
        if pass5 is not None:
            pass5.extras(node, False)
        if values:
            payload = ea_payload(node, values, pass5, self._warn)
            if payload:
                out.emit(xattr_records(self.tape, ino, dinode or Dinode.from_stat(node, flags=flags), payload))

    def _unreadable(self, node: Node, exc: OSError) -> None:
        """A regular file that cannot be opened: warned about and dumped as a
        hole with its attributes, until more than ``-I`` files failed."""
        flags = self.tree.flags(node)
        self._warn(f"cannot read {os.fsdecode(node.path)}: {exc.strerror}; dumped as a hole")
        self._read_errors += 1
        limit = self.options.read_errors
        if limit and self._read_errors > limit:
            raise DumpError(f"more than {limit} files could not be read from {self.source} (-I {limit}): "
                            "the ENTIRE dump is aborted")
        dinode = Dinode.from_stat(node, flags=flags)
        self.out.emit(inode_records(self.tape, node.ino, dinode))
        self._dump_xattrs(node, dinode, flags)

    def _dump_metaonly(self, node: Node) -> None:
        """``dump -m``'s record of an inode whose contents did not change:
        one ``DR_METAONLY`` header (``di_size`` 0, no data), then its xattrs.
        restore sets the owner, mode, times, flags and xattrs and keeps the
        data it restored before."""
        flags = self.tree.flags(node)
        try:
            dinode = Dinode.from_stat(node, flags=flags)
        except FormatLimitError as exc:
            self._warn(f"{os.fsdecode(node.path)} skipped: {exc}")
            return
        self.out.emit(inode_records(self.tape, node.ino, dinode, metaonly=True))
        self._dump_xattrs(node, dinode, flags)

    def _dump_other(self, node: Node) -> None:
        """A symbolic link, a device, a fifo or a socket."""
        st = node.st
        if stat.S_ISLNK(st.st_mode):
            try:
                target = self.tree.readlink(node)
                slices = symlink_slices(target)
            except (OSError, FormatLimitError) as exc:
                self._warn(f"symbolic link {os.fsdecode(node.path)} skipped: {getattr(exc, 'strerror', None) or exc}")
                return
            dinode = Dinode.from_stat(st, size=len(target))
            self.out.emit(inode_records(self.tape, node.ino, dinode, slices))
        else:
            try:
                dinode = Dinode.from_stat(st)
            except FormatLimitError as exc:
                self._warn(f"{os.fsdecode(node.path)} skipped: {exc}")
                return
            self.out.emit(inode_records(self.tape, node.ino, dinode))
        self._dump_xattrs(node, dinode, 0)

    def _dump_xattrs(self, node: Node, dinode: Dinode | None, flags: int, *, is_dir: bool = False) -> None:
        if self.pass5 is not None:
            self.pass5.extras(node, is_dir)
        values = self.tree.xattrs(node)
        payload = ea_payload(node, values, self.pass5, self._warn) if values else None
        if payload:
            self.out.emit(xattr_records(self.tape, node.ino, dinode or Dinode.from_stat(node, flags=flags), payload))

    def _close_tree(self) -> None:
        if self._own_tree and self.tree is not None:
            self._own_tree = False
            self.tree.close()

    def _record(self) -> None:
        if self._inomap is not None and self.options.update:
            self._inomap.mark(self.date)
            self._inomap.save()
        if self.options.update:
            if self.options.before_record is not None:
                self.options.before_record(self.filesys, self.options.level, self.date)
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


def _base(opts: DumpOptions, dates: DumpDates, filesys: str, date: int, snapshot_date: int | None,
          warn: Callable[[str], None]) -> tuple[int, int | str]:
    """The base date and level of a dump dated ``date`` (0 for a level 0): ``-T``'s, else the
    dumpdates file's.  With ``-u``, a dumpdates file that cannot take the dump's line is refused
    now, not after the dump, and so is a dump dated before its base (recorded, it would be the
    base of the next incremental); without, that is a warning."""
    base_date, base_level = opts.base_date or 0, "lower"
    if opts.base_date is None and opts.level > 0:
        base = dates.base_for(filesys, opts.level)
        base_date, base_level = base.date, base.level
    if opts.update:
        dates.records()
    if base_date and date < base_date:
        problem = (f"{'the snapshot' if snapshot_date is not None else 'this dump'} is older than the level "
                   f"{base_level} dump this one is based on ({time.ctime(base_date)})")
        if opts.update:
            raise DumpError(f"{problem}: an incremental of it cannot be recorded (-u); dump a newer snapshot, "
                            "or run a level 0")
        warn(f"{problem}: it can hold nothing newer")
    return base_date, base_level


def _chain(inomap: InodeMap | None, base_date: int, *, given: bool) -> tuple[int, tuple[int, int] | None] | None:
    """Before the walk of an incremental: the first dump number its base's chain does not hold,
    and the top the inode map knew.  A base the map has no mark for: from dumpdates (a map from
    before marks), at least the numbers given now; ``given`` (``-T``, NDMP's BASE_DATE), none:
    files are then taken by their times alone, as dump takes them."""
    if not base_date or inomap is None:
        return None
    start = inomap.chain_start(base_date)
    if start is None and not given:
        start = inomap.maxino + 1
    return None if start is None else (start, inomap.root)


def _new_to_chain(inomap: InodeMap | None, chain: tuple[int, tuple[int, int] | None] | None,
                  nodes: dict[int, Node], base_date: int, say: Callable[[str], None]) -> set[int]:
    """What an incremental takes whole because its base's chain never held it (a directory
    moved in from outside the dumped path brings files older than the base; so does one
    unreadable then): the numbers from ``chain``'s start on (see :func:`_chain`)."""
    if chain is None or inomap is None:
        return set()
    fresh = inomap.new_to_chain(*chain, nodes)
    since = base_date * 1_000_000_000
    older = sum(1 for ino in fresh if nodes[ino].st_ctime_ns < since and nodes[ino].st_mtime_ns < since)
    if older:
        say(f"{older} inode{'s' if older > 1 else ''} new to this chain with times before its base (moved in, "
            "or unreadable then): dumped whole")
    return fresh


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


def first_volume_header(opts: DumpOptions, filesys: str, date: int, base_date: int, *, compressed: bool,
                        warn: Callable[[str], None]) -> Header:
    """Volume 1's ``TS_TAPE``, which every header of the dump derives from."""
    label = opts.label.encode("utf-8", "surrogateescape")
    if len(label) >= LBLSIZE:
        warn(f"label {opts.label!r} is longer than {LBLSIZE - 1} bytes: cut")
        label = label[:LBLSIZE - 1]
    source = os.fsencode(filesys)[:NAMELEN - 1]
    tape = volume_header(
        date=date, ddate=base_date, level=opts.level, label=label or b"none",
        filesys=source, dev=source, host=os.uname().nodename.encode()[:NAMELEN - 1], ntrec=opts.ntrec,
    )
    if compressed:
        tape = tape.derive(c_flags=tape.c_flags | DR_COMPRESSED)
    return tape
