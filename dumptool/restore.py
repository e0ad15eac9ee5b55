"""The restore engine: read an image, then list, extract, rebuild or compare.

An image is read once, front to back (dump-format.md sections 3 and 12.2):
the volume header, the two inode maps, every dumped directory (kept in
memory to name things), then the non-directories in inode order, streamed
to disk slice by slice.  The record counting is :func:`format.walk_chunks`;
volumes are stitched together by :class:`VolumeInput`.

* :meth:`Restore.list` is ``-t``, :meth:`Restore.extract` is ``-x``,
  :meth:`Restore.rebuild` is ``-r`` (with the incremental logic over a
  :class:`~dumptool.symtab.SymbolTable`) and :meth:`Restore.compare` is ``-C``.
* Attributes go on in restore's order: owner, mode, xattrs, times; symlinks
  get no chmod; directories get theirs last, deepest first.
* A refused attribute is one warning line.  A damaged image is resynced at
  the next good header; what was lost is reported and :attr:`Restore.failed`
  is set so that the CLI exits non-zero.  Files already restored are never
  removed because of a later error.
"""

from __future__ import annotations

import dataclasses
import errno as _errno
import functools
import gc
import itertools
import os
import stat
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TextIO

from .beneath import Beneath
from .compression import DecompressingSource
from .errors import DumpError, FormatError, MediumError
from .format import (
    DR_EXTATTRIBUTES,
    DR_METAONLY,
    ROOTINO,
    TP_BSIZE,
    TP_NINDIR,
    ByteOrder,
    Damage,
    Dinode,
    DirEntry,
    Head,
    Header,
    QfaMap,
    Record,
    RecordType,
    assemble_file,
    decode_dev,
    header_byte_order,
    iter_file_slices,
    directory_entries,
    skip_to_header,
    unpack_xattr_payload,
    walk_chunks,
)
from .medium import RecordReader, Source, open_source
from .symtab import SYMTAB_NAME, Checkpointed, DirFix, ResumePoint, SymbolTable

#: Largest EA payload restore applies (dump-format.md 7.1).
XATTR_MAXSIZE = 4096

# how _write_new_regular creates a file, and the file types it asks about
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_S_IFMT, _S_IFDIR, _S_IFREG = 0o170000, stat.S_IFDIR, stat.S_IFREG
_TS_ADDR = int(RecordType.TS_ADDR)



#: The longest symbolic link target (PATH_MAX less its NUL) and the largest file size (off_t):
#: a header saying more is damaged.
_SYMLINK_MAX = 4095
_MAX_FILE_SIZE = 2**63 - 1


class _CompareLimit(Exception):
    """-C reached the compare errors -L allows (restore stops there)."""


class RestoreError(DumpError):
    """A restore cannot go on (bad image start, wrong volume, broken chain)."""


def _gc_paused(method: Callable) -> Callable:
    """Run *method* with the cyclic garbage collector paused.  A pass makes
    next to no reference cycles, but it builds large long-lived tables (the
    directories, the names) that every full collection would walk again,
    a few percent of a restore of many small files; what cyclic garbage
    there is goes at the first collection after."""
    @functools.wraps(method)
    def paused(*args, **kwargs):
        if not gc.isenabled():
            return method(*args, **kwargs)
        gc.disable()
        try:
            return method(*args, **kwargs)
        finally:
            gc.enable()
    return paused


def _closes_tree(method: Callable) -> Callable:
    """Close the descriptors of the target folder (:class:`Beneath`) when *method* ends."""
    @functools.wraps(method)
    def closing(self: "Restore", *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        finally:
            self._close_tree()
    return closing


# -- input: volumes stitched into one stream of blocks ------------------------------


class VolumeInput:
    """The 1 KiB blocks of a dump, across volumes.

    At the end of a volume before the dump's end, *ask* is called with the
    next volume number and returns a name to open (``None``: no more
    volumes).  Each later volume must start with a TS_TAPE of the right
    number and dump date; its header is dropped and the stream goes on.
    """

    def __init__(self, name: str, *, ask: Callable[[int, str], str | None] | None = None,
                 tape_file: int = 1) -> None:
        self.name = name
        self._ask = ask
        source = open_source(name)
        if tape_file > 1:
            if not source.is_tape:
                source.close()
                raise RestoreError(f"{name}: -s needs a tape drive, not a file or pipe")
            try:
                source.space_files(tape_file - 1)
            except MediumError:
                source.close()
                raise
        #: Told what was lost when a compressed record cannot be decoded (the
        #: restore goes on and resyncs); unset, that stops the restore.
        self.on_damage: Callable[[str], None] | None = None
        self._reader = self._reader_of(source)
        self._first_source = source  # volume 1 as opened (a tape is rewound on it for another pass)
        self.tape_file = tape_file
        self.date: int | None = None
        self.ddate: int | None = None
        self.byte_order = ByteOrder.LITTLE
        #: The number of the volume being read (``-R`` starts at a later one).
        self.volume = 1
        #: Called with the next volume's number before asking for it (-r's checkpoint).
        self.on_volume_end: Callable[[int], None] | None = None

    def _reader_of(self, source: Source, volume: int = 1) -> RecordReader:
        return RecordReader(DecompressingSource(source, self._damaged), volume=volume)

    def _damaged(self, message: str) -> None:
        if self.on_damage is None:
            raise MediumError(message)
        self.on_damage(message)

    def chunks(self, *, identify: bool = True) -> Iterator[bytes]:
        """The blocks from here on, across volumes, as the reads bring them
        (whole blocks, never cut into single ones: :func:`format.walk_chunks`
        walks them).  With *identify* the first block is the dump's first
        header: it tells the byte order and dates."""
        reader = self._reader
        first = identify
        while True:
            while (chunk := self._first_read(reader) if first else reader.read_blocks()) is not None:
                if first:
                    first = False
                    block = chunk[:TP_BSIZE]
                    try:
                        self.byte_order = header_byte_order(block)
                        head = Header.unpack(block, self.byte_order)
                        self.date, self.ddate = head.c_date, head.c_ddate
                    except FormatError:
                        pass
                yield chunk
            if first:  # not one block: an empty file or pipe, a blank tape or one at its end of data
                raise RestoreError("Tape read error on first record")
            nxt = self._next_volume(self.volume + 1)
            if nxt is None:
                return
            self._reader = reader = nxt  # its volume header is already read
            self.volume += 1

    @staticmethod
    def _first_read(reader: RecordReader) -> bytes | None:
        """The first blocks of the dump; a medium that fails there says
        restore's line (with why)."""
        try:
            return reader.read_blocks()
        except MediumError as exc:
            raise RestoreError(f"Tape read error on first record ({exc.message})") from None

    def seek_forward(self, address: int) -> bool:
        """Go to *address* of this volume (a QFA position) if nothing at or
        past it was read yet; whether it did.  The blocks there start with the
        tail of an earlier file: read them with :meth:`after_seek`."""
        here = self._reader.address
        if here is None or address <= here:
            return False
        self._reader.seek(address)
        return True

    def jump_to_volume(self, number: int) -> bool:
        """Leave the rest of this volume unread and go on with the later volume
        *number* (a QFA position there), asking for it as at a volume's end;
        whether it was given.  Its blocks come from :meth:`after_seek`."""
        if number <= self.volume:
            return False
        reader = self._next_volume(number, release=False)
        if reader is None:
            return False
        self._reader = reader  # its volume header is already read
        self.volume = number
        return True

    def after_seek(self) -> Iterator[bytes]:
        """The chunks after :meth:`seek_forward`, from the first header of this dump on."""
        return skip_to_header(self.chunks(identify=False), self.byte_order, self.date or 0)

    @property
    def can_seek(self) -> bool:
        return self._reader.address is not None

    def _next_volume(self, number: int, *, release: bool = True) -> RecordReader | None:
        """The reader of volume *number*, asked for (None: not given).
        ``release``: this volume is read to its end; it is closed before
        asking (else only once the next one is open: the caller reads on
        when none is given)."""
        if self._ask is None or not self._reader.source.can_change_volume:
            return None
        if self.on_volume_end is not None:
            self.on_volume_end(number)
        if release:
            # Let go of the drive before asking, as restore does: the operator
            # may have to change the cartridge in this very drive.
            self._reader.close()
        problem = ""
        while True:
            name = self._ask(number, problem)
            if name is None:
                return None
            try:
                reader = self._reader_of(open_source(name), volume=number)
                block = reader.read_block()
            except MediumError as exc:
                problem = exc.message
                continue
            try:
                head = Header.unpack(block, self.byte_order) if block is not None else None
            except FormatError:
                head = None
            if head is None or head.c_type != RecordType.TS_TAPE:
                problem = f"{name} is not a dump volume"
            elif head.c_date != self.date or head.c_ddate != self.ddate:
                problem = f"{name}: wrong dump date (volume of another dump)"
            elif head.c_volume != number:
                problem = f"{name}: wrong volume ({head.c_volume}), expected volume {number}"
            else:
                self._reader.close()  # idempotent: released already, or now
                return reader
            reader.close()

    def start_again(self) -> None:
        """Go back to the first block of volume 1 for another pass over the
        image (``-i``'s next ``extract``): a file is opened again, a tape
        rewound and spaced to the dump's file (``-s``); a pipe is read only
        once (:class:`RestoreError` says so, and nothing changes)."""
        source = self._reader.source
        if source.is_tape:
            if self.volume != 1:
                raise RestoreError(f"another pass starts on volume 1 and volume {self.volume} is in the drive: "
                                   "quit, mount volume 1 and run pyrestore -i again")
            # as restore would have the operator do: rewind, and space to the dump's file
            self._first_source.rewind()
            if self.tape_file > 1:
                self._first_source.space_files(self.tape_file - 1)
            self._reader = self._reader_of(self._first_source)  # the drive stays open: same source
            return
        try:
            regular = stat.S_ISREG(os.stat(self.name).st_mode)
        except OSError:
            regular = False
        if not regular:
            raise RestoreError(f"{self.name} is a pipe (or not a file): it can be read only once, so a second "
                               "extract pass is impossible; choose everything before one extract, or give "
                               "the image as a file")
        reader = self._reader_of(open_source(self.name))
        self._reader.close()
        self._reader = reader
        self.volume = 1

    def close(self) -> None:
        self._reader.close()


class _Records:
    """Records with one record of look-ahead."""

    __slots__ = ("_it", "_next", "_done")

    def __init__(self, records: Iterator[Record]) -> None:
        self._it = records
        self._next: Record | None = None
        self._done = False

    @property
    def looked_at(self) -> Record | None:
        """The record :meth:`peek` already read, if any (reads nothing)."""
        return self._next

    def retarget(self, records: Iterator[Record]) -> None:
        """Drop the look-ahead and read on from *records* (after a seek)."""
        self._it = records
        self._next = None
        self._done = False

    def peek(self) -> Record | None:
        rec = self._next
        if rec is None and not self._done:
            rec = self._next = next(self._it, None)
            self._done = rec is None
        return rec

    def pop(self) -> Record | None:
        rec = self._next
        if rec is None:
            if self._done:
                return None
            rec = next(self._it, None)
            self._done = rec is None
            return rec
        self._next = None
        return rec


# -- what the image holds ------------------------------------------------------------


class _InodeMap:
    """A TS_CLRI or TS_BITS map kept as its bytes, answering ``ino in map``
    (what :func:`format.parse_inode_map` sets answer, without their 130
    bytes an inode)."""

    __slots__ = ("_bits",)

    def __init__(self, data: bytes) -> None:
        self._bits = data

    def __contains__(self, ino: object) -> bool:
        try:
            return ino > 0 and self._bits[(ino - 1) >> 3] >> ((ino - 1) & 7) & 1 == 1  # type: ignore[operator]
        except (IndexError, TypeError):
            return False


class _EveryInode:
    """A map lost to damage: every inode number is in it."""

    __slots__ = ()

    def __contains__(self, ino: object) -> bool:
        return isinstance(ino, int) and ino > 0


@dataclass
class DirNode:
    """A directory read from the image: its inode copy, entries and xattrs."""

    dinode: Dinode
    entries: list[DirEntry]
    xattrs: list[tuple[bytes, bytes]] = field(default_factory=list)


@dataclass
class Options:
    """The flags that change how the engine works (the CLI fills them)."""

    verbose: bool = False
    dry_run: bool = False          # -N
    unlink: bool = False           # -u
    set_root_modes: bool = False   # -o (for -x: set owner/mode of ".")
    by_inode: bool = False         # -m
    qfa: QfaMap | None = None      # -Q: seek to the files -x wants
    dir_only: bool = False         # -h: a directory named is extracted itself, not its contents
    #: -i: directories on the extraction list without all they hold (each extracted by itself)
    dirs_alone: set[bytes] = field(default_factory=set)
    compare_limit: int = 0         # -L: -C stops at this many compare errors (0: never)
    nul_lines: bool = False        # -0: -t ends each file's line with NUL, not a newline


@dataclass
class Extracted:
    """What the extract passes of one session put on disk (``-i``'s setmodes)."""

    leaves: dict[int, tuple[list[bytes], Dinode, list[tuple[bytes, bytes]]]] = field(default_factory=dict)
    dirs: dict[int, bytes] = field(default_factory=dict)


class Restore:
    """One pass over one image.  Messages go to *out* (listings) and *err*."""

    def __init__(self, source: VolumeInput, options: Options | None = None, *,
                 out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> None:
        self.input = source
        source.on_damage = self.error
        self.opts = options or Options()
        self.out = out
        self.err = err
        #: errors said (:meth:`error`), and the wanted names the image did not bring among them
        self.error_count = 0
        self.not_found: list[str] = []
        self.warnings = 0
        #: -C stopped at the compare errors -L allows
        self.compare_limit_reached = False
        #: -v: the "Create hard link" lines of the pass under way, said after "Add links"
        self._link_lines: list[str] = []
        self._damage_count = 0
        self._ended = False
        self.header: Header | None = None
        # only ever asked ``ino in ...``: a set or an :class:`_InodeMap`
        self.in_use: "set[int] | _InodeMap" = set()
        self.dumped: "set[int] | _InodeMap" = set()
        self.dirs: dict[int, DirNode] = {}
        self._held: list[bytes | memoryview] = []
        self._records = self._walk(source.chunks())
        self._names: dict[int, list[bytes]] | None = None
        self._dirs_done = False
        # -r's progress, for its checkpoints (see rebuild and resume)
        self._pending_leaves: dict[int, list[bytes]] = {}
        self._current: _InProgress | None = None
        self._dir_plan: list[DirFix] | None = None
        self._table = SymbolTable()
        self._table_path = SYMTAB_NAME
        self._applying = (0, 0, 0)  # date, base date and level of the image -r applies
        self._checkpoint_volume = 0  # the volume the last checkpoint waits for
        self._leaf_fd: int | None = None  # the regular file _write_regular left open
        #: -r: the old node of each changed leaf, parked until its record
        #: tells whether it is metadata only (``dump -m``: the node stays).
        self._parked: dict[int, bytes] = {}  # inode -> ./RSTTMPdate/inode
        #: The target folder of the pass under way, every path resolved beneath it.
        self._tree: Beneath | None = None
        self._umask = 0o022
        self._dir_state: dict[bytes, tuple[int, int, int, bool]] = {}  # see _new_file_state
        #: What extract passes wrote, kept when set (``-i``'s setmodes): each
        #: leaf inode's ``(names, dinode, xattrs)`` and the directories' paths.
        self.extracted: Extracted | None = None

    def _walk(self, chunks: Iterable[bytes | memoryview]) -> "_Records":
        return _Records(self._walk_records(chunks))

    def _walk_records(self, chunks: Iterable[bytes | memoryview]) -> Iterator[Record]:
        """The records of *chunks*; :attr:`_held` follows the one under way
        (what a checkpoint saves of a record a volume change cuts)."""
        self._held = []
        return walk_chunks(chunks, on_damage=self._on_damage, held=self._held)

    # -- messages ------------------------------------------------------------------

    def warn(self, message: str) -> None:
        self.warnings += 1
        print(f"pyrestore: {message}", file=self.err)

    @property
    def failed(self) -> bool:
        """Whether any error was said: the restore exits 1."""
        return self.error_count > 0

    def error(self, message: str) -> None:
        self.error_count += 1
        print(f"pyrestore: {message}", file=self.err)

    def _not_found(self, name: str) -> None:
        """An error for a wanted name the image does not bring (restore's "not found on tape")."""
        self.not_found.append(name)
        self.error(f"{name}: not found on the image")

    def _on_damage(self, damage: Damage) -> None:
        self._damage_count += 1
        what = ""
        if damage.inode:
            known = self.names().get(damage.inode, []) if self._dirs_done else []
            what = f" while reading inode {damage.inode}" + (f" ({os.fsdecode(known[0])})" if known else "")
        if damage.truncated:
            self.error(f"{damage.reason}{what}: the image is truncated; {damage.skipped} block(s) lost")
        else:
            self.error(f"{damage.reason}{what}; resynced at the next good header, "
                       f"{damage.skipped} block(s) lost")

    def _verbose(self, message: str) -> None:
        if self.opts.verbose:
            print(message, file=self.out)

    # -- the target folder: nothing outside it is ever created, written or followed ------

    def _beneath(self, target: str) -> Beneath:
        tree = self._tree
        if tree is None or tree.target != target:
            if tree is not None:
                tree.close()
            tree = self._tree = Beneath(target)
        return tree

    def _at(self, target: str, rel: bytes) -> str:
        """A path for ``./rel`` under *target* that reaches it through no
        symbolic link (see :class:`Beneath`); ``OSError`` (``ELOOP``) when one
        is in the way.  Its last component is not resolved: use it with
        ``O_NOFOLLOW``, ``lstat``, ``follow_symlinks=False``."""
        return self._beneath(target).path(rel)

    def _at_or_none(self, target: str, rel: bytes) -> str | None:
        try:
            return self._at(target, rel)
        except OSError:
            return None

    def _close_tree(self) -> None:
        if self._tree is not None:
            self._tree.close()
            self._tree = None

    # -- reading the front of the image -------------------------------------------------

    @_gc_paused
    def read_directories(self) -> None:
        """Read TS_TAPE, the maps and every directory (restore's first phase)."""
        try:
            first = self._records.pop()
        except FormatError as exc:
            raise RestoreError(f"{self.input.name}: not a dump image ({exc.message})") from None
        if first is None or first.header.c_type != RecordType.TS_TAPE:
            raise RestoreError(f"{self.input.name}: not a dump image (no volume header)")
        if first.header.c_volume != 1:
            raise RestoreError(f"{self.input.name} is volume {first.header.c_volume} of the dump, not volume 1")
        self.header = first.header
        for rtype, what in ((RecordType.TS_CLRI, "file removal list"), (RecordType.TS_BITS, "file dump list")):
            rec = self._records.peek()
            while rec is not None and (rec.header.c_type == RecordType.TS_END or rec.header.c_type not in (
                    RecordType.TS_CLRI, RecordType.TS_BITS, RecordType.TS_INODE)):
                self._records.pop()
                if rec.header.c_type == RecordType.TS_END and self._records.peek() is None:
                    self.warn("empty dump image")
                    self._ended = True
                    return
                self.error(f"{self.input.name}: a {rec.header.c_type.name} record at block {rec.index}, before "
                           f"the {what}: damaged; skipped")
                rec = self._records.peek()
            if rec is None:
                raise RestoreError(f"{self.input.name}: cannot find the {what}: damaged image")
            if rec.header.c_type != rtype:
                # lost to damage (the walk said what it skipped): go on without
                # it, as restore does, taking every inode as in the map
                if rtype == RecordType.TS_CLRI:
                    self.error(f"{self.input.name}: the {what} is lost to damage: every inode is taken as "
                               "in use (-r removes nothing)")
                    self.in_use = _EveryInode()
                else:
                    self.error(f"{self.input.name}: the {what} is lost to damage: every file named in the "
                               "directories is looked for on the image")
                    self.dumped = _EveryInode()
                continue
            self._records.pop()
            inos = _InodeMap(bytes(rec.data))
            if rtype == RecordType.TS_CLRI:
                self.in_use = inos
            else:
                self.dumped = inos
        while (rec := self._records.peek()) is not None:
            h = rec.header
            if h.c_type != RecordType.TS_INODE or h.is_extattr or not stat.S_ISDIR(h.c_dinode.mode):
                if h.c_type in (RecordType.TS_ADDR,) or h.is_extattr:
                    self._records.pop()  # orphan of a damaged header
                    continue
                break
            self._records.pop()
            parts = [rec] + list(self._same_inode_addrs(h.c_inumber))
            size = h.c_dinode.size
            # every block (its last one whole: real dump's cut 255-byte name runs on past di_size)
            data = b"".join(block if block is not None else bytes(TP_BSIZE)
                            for offset, block in iter_file_slices(parts) if offset < size)
            order = self.input.byte_order
            lost: list[int] = []
            try:
                entries = directory_entries(data, order, size=size, lost=lost)
            except FormatError as exc:
                self.error(f"directory inode {h.c_inumber}: {exc.message}; the entries that can be read are kept")
                del lost[:]
                entries = directory_entries(data, order, strict=False, skip_bad_entries=True, size=size, lost=lost)
            if lost:
                self.error(f"directory inode {h.c_inumber}: the 255-byte name of inode(s) "
                           f"{', '.join(map(str, lost))} was overwritten by the dump (a fault of Linux dump "
                           "0.4b47); restored as #INODE")
            self.dirs[h.c_inumber] = DirNode(h.c_dinode, entries, self._xattrs_after(h.c_inumber))
        if ROOTINO not in self.dirs:
            raise RestoreError(f"{self.input.name}: the root directory is not on the image")
        self._dirs_done = True

    def _same_inode_addrs(self, ino: int) -> Iterator[Record]:
        while (rec := self._records.peek()) is not None and rec.head.c_type == RecordType.TS_ADDR \
                and rec.head.c_inumber == ino:
            self._records.pop()
            yield rec

    def _xattrs_after(self, ino: int) -> list[tuple[bytes, bytes]]:
        found: list[tuple[bytes, bytes]] = []
        while (rec := self._records.peek()) is not None and rec.head.c_inumber == ino \
                and rec.head.c_flags & DR_EXTATTRIBUTES and rec.head.c_type == RecordType.TS_INODE:
            self._records.pop()
            size = rec.head.size
            if size > XATTR_MAXSIZE:
                self.warn(f"inode {ino}: extended-attribute record of {size} bytes is too big, skipped")
                continue
            try:
                found += unpack_xattr_payload(bytes(rec.data[:size]))
            except FormatError as exc:
                self.warn(f"inode {ino}: extended attributes not restored: {exc.message}")
        return found

    # -- names ---------------------------------------------------------------------

    def tree_edges(self) -> Iterator[tuple[int, bytes, int]]:
        """``(parent, name, child)`` of the image's tree, top-down in dirent order (pre-order)."""
        if ROOTINO not in self.dirs:
            return  # an empty image
        dirs = self.dirs
        seen = {ROOTINO}
        # a stack of (directory, its entries still to walk): no recursion, any depth
        stack = [(ROOTINO, iter(dirs[ROOTINO].entries))]
        while stack:
            parent, entries = stack[-1]
            for entry in entries:
                if entry.name in (b".", b".."):
                    continue
                yield parent, entry.name, entry.ino
                if entry.ino in dirs and entry.ino not in seen:
                    seen.add(entry.ino)
                    stack.append((entry.ino, iter(dirs[entry.ino].entries)))
                    break
            else:
                stack.pop()

    def names(self) -> dict[int, list[bytes]]:
        """Every inode on the image's tree with its ``./path`` names, in listing order."""
        if self._names is None:
            where = {ROOTINO: b"."}
            out: dict[int, list[bytes]] = {ROOTINO: [b"."]}
            for parent, name, child in self.tree_edges():
                path = where[parent] + b"/" + name
                out.setdefault(child, []).append(path)
                if child in self.dirs:
                    where.setdefault(child, path)
            self._names = out
        return self._names

    def listing(self) -> Iterator[tuple[int, bytes]]:
        """``(inode, ./path)`` as ``restore -t`` lists them: dumped inodes only."""
        if ROOTINO in self.dumped or ROOTINO in self.dirs:
            yield ROOTINO, b"."
        where = {ROOTINO: b"."}
        for parent, name, child in self.tree_edges():
            path = where[parent] + b"/" + name
            if child in self.dirs:
                where.setdefault(child, path)
            if child in self.dumped:
                yield child, path

    def lookup(self, path: str) -> int | None:
        """The inode of a ``[./]a/b`` name on the image, or ``None``."""
        ino = ROOTINO
        for part in os.fsencode(path).split(b"/"):
            if part in (b"", b"."):
                continue
            node = self.dirs.get(ino)
            if node is None:
                return None
            match = [e.ino for e in node.entries if e.name == part and e.name not in (b".", b"..")]
            if not match:
                return None
            ino = match[0]
        return ino

    def describe(self) -> list[str]:
        """The header lines ``restore -t`` and ``-v`` print."""
        h = self.header
        assert h is not None
        lines = [f"Dump   date: {time.ctime(h.c_date)}",
                 f"Dumped from: {'the epoch' if h.c_ddate == 0 else time.ctime(h.c_ddate)}"]
        if h.c_host:
            lines.append(f"Level {h.c_level} dump of {os.fsdecode(h.c_filesys)} on "
                         f"{os.fsdecode(h.c_host)}:{os.fsdecode(h.c_dev)}")
            lines.append(f"Label: {os.fsdecode(h.c_label)}")
        return lines

    # -- -t ----------------------------------------------------------------------------

    @_gc_paused
    def list(self, wanted: Iterable[str] = ()) -> None:
        """``-t``: print ``inode<TAB>./path`` for the dumped inodes (under *wanted*)."""
        self.read_directories()
        wanted = list(wanted)
        prefixes = [self._norm(w) for w in wanted]
        for line in self.describe():
            print(line, file=self.out)
        qfa = self.opts.qfa
        if qfa is not None:
            self._check_qfa_date()
            exact = {e.ino: e for e in qfa.entries}
        end = "\0" if self.opts.nul_lines else "\n"
        rows: Iterable[tuple[int, bytes]] = self.listing()
        if prefixes:  # as restore: name by name, each with what is under it
            every = list(rows)
            first = {}
            for i, (_, path) in enumerate(every):
                first.setdefault(path, i)
            rows = []
            for w, p in zip(wanted, prefixes):
                i = first.get(p)
                if i is None:
                    if self.lookup(w) is None:  # restore's line and status: a listing lists what is there
                        print(f"{os.fsdecode(p)} is not on the tape", file=self.err)
                    continue
                j, under = i + 1, p + b"/"
                while j < len(every) and (p == b"." or every[j][1].startswith(under)):  # the walk is depth-first
                    j += 1
                rows.extend(every[i:j])
        for ino, path in rows:
            # -v: restore's "dir "/"leaf" before each line; -Q: the volume and
            # position the map gives the inode (0 0 when it has none)
            kind = ("dir " if ino in self.dirs else "leaf") if self.opts.verbose else ""
            where = ""
            if qfa is not None:
                entry = exact.get(ino)
                where = f"{entry.volume}\t{entry.position}\t" if entry else "0\t0\t"
            self.out.write(f"{kind}{ino:10d}\t{where}{os.fsdecode(path)}{end}")
        self._check_end(read_rest=False)

    @staticmethod
    def _norm(name: str) -> bytes:
        parts = [p for p in os.fsencode(name).split(b"/") if p not in (b"", b".")]
        return b"/".join([b"."] + parts)

    # -- -x ----------------------------------------------------------------------------

    @_gc_paused
    def extract(self, target: str, wanted: Iterable[str] = ()) -> None:
        """``-x``: extract the named files and directories (all when none) under *target*."""
        self._verbose("Verify tape and initialize maps")
        self.read_directories()
        if self.opts.verbose:  # restore -x -v's phases, in its order
            for line in self.describe():
                self._verbose(line)
            self._verbose("Extract directories from tape")
            self._verbose("Initialize symbol table.")
        self.extract_read(target, wanted)

    @_gc_paused
    @_closes_tree
    def extract_read(self, target: str, wanted: Iterable[str] = ()) -> None:
        """Extract after :meth:`read_directories` (``-x`` and the interactive ``extract``)."""
        _check_writable(target, self.opts.dry_run)
        self._check_qfa()
        leaf_names, dir_paths = self.selection(wanted)
        for ino, path in sorted(dir_paths.items(), key=lambda kv: kv[1].count(b"/")):
            if path != b".":
                self._make_dir(target, path)
        if self.extracted is not None:
            self.extracted.dirs.update(dir_paths)
        self._verbose("Extract requested files")
        self._extract_leaves(target, leaf_names)
        self._add_links_said()
        self._verbose("Set directory mode, owner, and times.")
        finish = {ino: p for ino, p in dir_paths.items() if p != b"." or self.opts.set_root_modes}
        self._finish_dirs(target, finish)
        self._check_end(read_rest=True)

    def selection(self, wanted: Iterable[str] = ()) -> tuple[dict[int, list[bytes]], dict[int, bytes]]:
        """``(leaf inode -> ./names, directory inode -> ./path)`` of what
        extracting *wanted* (everything when empty) covers, with the
        directories leading to each name; a name not on the image is an error."""
        wanted = list(wanted)
        names = self.names()
        leaf_names: dict[int, list[bytes]] = {}
        dir_paths: dict[int, bytes] = {}
        if self.opts.by_inode:
            roots = []
            for w in wanted:
                if not w.isdigit() or int(w) not in self.dumped:
                    self._not_found(f"inode {w}")
                    continue
                roots.append((int(w), b"./" + w.encode()))
        else:
            roots = []
            for w in wanted or ["."]:
                ino = self.lookup(w)
                if ino is None or ino not in self.dumped and ino not in self.dirs:
                    self._not_found(os.fsdecode(self._norm(w)))
                    continue
                path = self._norm(w)
                roots.append((ino, path))
                # the directories leading to it
                parts = path.split(b"/")
                for i in range(1, len(parts) - 1):
                    lead = b"/".join(parts[:i + 1])
                    lead_ino = self.lookup(os.fsdecode(lead))
                    if lead_ino in self.dirs:
                        dir_paths.setdefault(lead_ino, lead)
        for ino, path in roots:
            if ino in self.dirs and (self.opts.dir_only or path in self.opts.dirs_alone):
                dir_paths.setdefault(ino, path)
            elif ino in self.dirs:
                self._select_tree(ino, path, dir_paths, leaf_names, names)
            else:
                leaf_names.setdefault(ino, [])
                if path not in leaf_names[ino]:
                    leaf_names[ino].append(path)
        return leaf_names, dir_paths

    def read_again(self) -> None:
        """Start a new pass from the image's first block (``-i``'s next
        extract): the header, maps and directories are read once more.
        :class:`RestoreError` when the input cannot go back (tape, pipe)."""
        self.input.start_again()
        self._records = self._walk(self.input.chunks())
        self._ended = False
        self.dirs, self._names, self._dirs_done = {}, None, False
        self.read_directories()

    @_closes_tree
    def set_modes(self, target: str, dir_paths: dict[int, bytes]) -> None:
        """Owner, mode, xattrs and times again for the files extracted so far
        (:attr:`extracted`) and, deepest first, for the directories in
        *dir_paths* that exist under *target* (``-i``'s setmodes); nothing is read."""
        if self.opts.dry_run:
            return
        for paths, d, xattrs in (self.extracted.leaves.values() if self.extracted else ()):
            for path in paths:
                full = self._at_or_none(target, path)
                st = _lstat(full) if full is not None else None
                if st is not None and stat.S_IFMT(st.st_mode) == d.file_type:
                    self._set_attrs(full, path, d, xattrs)
                    break  # the other names are hard links of it
        self._finish_dirs(target, dir_paths)

    def _select_tree(self, ino: int, path: bytes, dir_paths: dict[int, bytes],
                     leaf_names: dict[int, list[bytes]], names: dict[int, list[bytes]]) -> None:
        dir_paths[ino] = path
        stack = [(path, iter(self.dirs[ino].entries))]  # no recursion: any depth
        while stack:
            path, entries = stack[-1]
            for entry in entries:
                if entry.name in (b".", b".."):
                    continue
                child = path + b"/" + entry.name
                if entry.ino in self.dirs:
                    if entry.ino not in dir_paths:
                        dir_paths[entry.ino] = child
                        stack.append((child, iter(self.dirs[entry.ino].entries)))
                        break
                elif entry.ino in self.dumped:
                    leaf_names.setdefault(entry.ino, []).append(child)
            else:
                stack.pop()

    # -- -r ----------------------------------------------------------------------------

    @_gc_paused
    @_closes_tree
    def rebuild(self, target: str = ".") -> None:
        """``-r``: apply this image to the tree in *target*, keeping ``restoresymtable``.

        A level 0 (``c_ddate`` 0) starts a new table; an incremental needs the
        table of the image it is based on.  Renames, deletions, new entries and
        inode numbers reused for another kind all end as in the source.
        """
        self._verbose("Verify tape and initialize maps")
        self.read_directories()
        assert self.header is not None
        h = self.header
        if self.opts.verbose:  # restore -r -v's phases, in its order
            for line in self.describe():
                self._verbose(line)
            self._verbose("Begin incremental restore" if h.c_ddate else "Begin level 0 restore")
            self._verbose("Initialize symbol table.")
            self._verbose("Extract directories from tape")
            self._verbose("Calculate node updates." if h.c_ddate else "Calculate extraction list.")
        if h.c_ddate and isinstance(self.dumped, _EveryInode):
            raise RestoreError("the file dump list of this incremental is lost to damage: -r cannot tell the "
                               "files it changes from the ones it keeps; nothing was changed (extract with -x)")
        table_path = os.path.join(target, SYMTAB_NAME)
        if h.c_ddate == 0:
            old = SymbolTable()
        else:
            old = SymbolTable.load(table_path)
            if old.resume is not None:
                raise RestoreError(
                    f"{table_path} holds an interrupted restore of the dump of {time.ctime(old.resume.date)}: "
                    f"finish it first with -R and volume {old.resume.volume} of that dump")
            if old.dump_date != h.c_ddate:
                low = "low" if old.dump_date > h.c_ddate else "high"
                raise RestoreError(
                    f"incremental image too {low}: it is based on the dump of {time.ctime(h.c_ddate)}, "
                    f"but the last one restored here is of {time.ctime(old.dump_date)}")
        _check_writable(target, self.opts.dry_run)
        plan = _Rebuild(self, old, target)
        self._table, self._table_path = plan.new, table_path
        self._applying = (h.c_date, h.c_ddate, h.c_level)
        if not self.opts.dry_run:
            self.input.on_volume_end = self._checkpoint
        plan.run()
        self._check_end(read_rest=True)
        self._verbose("Check the symbol table.")
        self._verbose("Check pointing the restore")
        self._save_table(target)

    @_gc_paused
    @_closes_tree
    def resume(self, target: str = ".") -> None:
        """``-R``: go on with a ``-r`` that stopped when it asked for another
        volume (killed, or given none); the input must be that volume.

        The checkpoint ``-r`` wrote in ``restoresymtable`` before asking holds
        the names already made, the files still to extract, the one it was
        writing (with the blocks of its record read so far) and the
        directories' attributes; everything before that volume stays as it is.
        """
        table_path = os.path.join(target, SYMTAB_NAME)
        table = SymbolTable.load(table_path)
        rp = table.resume
        if rp is None:
            raise RestoreError(f"{table_path}: no interrupted restore to resume (the last -r finished)")
        _check_writable(target, self.opts.dry_run)
        order = ByteOrder[rp.byte_order]
        chunks = self.input.chunks()
        try:
            chunk = next(chunks, None)
        except FormatError as exc:
            raise RestoreError(f"{self.input.name}: not a dump volume ({exc.message})") from None
        first = None if chunk is None else chunk[:TP_BSIZE]
        try:
            head = Header.unpack(first, order) if first is not None else None
        except FormatError:
            head = None
        name = self.input.name
        if head is None or head.c_type != RecordType.TS_TAPE:
            raise RestoreError(f"{name}: not a dump volume")
        if head.c_date != rp.date or head.c_ddate != rp.ddate:
            raise RestoreError(f"{name} is a volume of the dump of {time.ctime(head.c_date)}, but the restore "
                               f"to resume is of the dump of {time.ctime(rp.date)}")
        if head.c_volume != rp.volume:
            raise RestoreError(f"{name} is volume {head.c_volume}; the restore stopped before volume "
                               f"{rp.volume}: resume with that one")
        self.header = head
        self.input.volume = rp.volume
        rest = [chunk[TP_BSIZE:]] if chunk is not None and len(chunk) > TP_BSIZE else []
        self._records = self._walk(itertools.chain(rp.head, rest, chunks))
        self._table, self._table_path = table, table_path
        self._applying = (rp.date, rp.ddate, rp.level)
        self._dir_plan = rp.dirs
        if not self.opts.dry_run:
            self.input.on_volume_end = self._checkpoint
        print(f"pyrestore: resuming the restore of the dump of {time.ctime(rp.date)} at volume {rp.volume}",
              file=self.err)
        self._pending_leaves = rp.leaves
        tmp_rel = b"./RSTTMP%d" % rp.date
        tmp_full = self._at(target, tmp_rel)
        if _is_dir(tmp_full):
            for entry in os.scandir(tmp_full):
                if entry.name.isdigit() and int(entry.name) in rp.leaves and not entry.is_dir(follow_symlinks=False):
                    self._parked[int(entry.name)] = tmp_rel + b"/" + os.fsencode(entry.name)
        cur = rp.current
        if cur is not None:
            if not self.opts.dry_run:
                self._clear_after_checkpoint(target, cur)
            self._write_leaf(target, cur.first.header, cur.first, cur.paths,
                             resume=_InProgress(cur.ino, cur.paths, cur.first, cur.base, cur.attrs_only, cur.made))
        self._extract_leaves(target, rp.leaves)
        if not self.opts.dry_run:
            self._drop_parked(tmp_full)
            self._apply_dir_plan(target)
        self._check_end(read_rest=True)
        self._save_table(target)

    def _drop_parked(self, tmp_full: str) -> None:
        """Remove the parked nodes no metadata-only record took back, once
        the image is done.  An image that did not reach its end keeps them:
        a restore stopped at a volume change for -R (which finds them again
        by inode number), a truncated one because their records may have
        been metadata only."""
        if not self._ended:
            if self._parked and not self._checkpoint_volume:
                self.warn(f"the image ended before the records of {len(self._parked)} changed file(s): "
                          f"their earlier copies are kept in {os.path.basename(tmp_full)}/, named by inode number")
            return
        self._parked = {}
        if _is_dir(tmp_full):
            _rmtree(tmp_full)
            if self._tree is not None:
                self._tree.forget()

    def _clear_after_checkpoint(self, target: str, cur: Checkpointed) -> None:
        """Remove what the interrupted -r may have made of the inode it was
        writing *after* its checkpoint (it goes on when told "none"): its
        extra names, and its node when -R makes it again from its first
        record.  Data a checkpoint counts as written stays."""
        again = not cur.attrs_only and not cur.base
        for n, path in enumerate(cur.paths):
            if n == 0 and not again:
                continue
            try:
                full = self._at(target, path)
                if not stat.S_ISDIR(os.lstat(full).st_mode):
                    os.unlink(full)
            except FileNotFoundError:
                pass
            except OSError as exc:
                self.warn(f"{os.fsdecode(path)}: cannot remove before making it again: {exc.strerror}")

    def _save_table(self, target: str) -> None:
        """Record the image just applied (and no checkpoint) in ``restoresymtable``;
        an image that stopped at a volume change keeps its checkpoint instead."""
        if self.opts.dry_run:
            return
        if not self._ended and self._checkpoint_volume:
            self.error(f"the restore stopped before volume {self._checkpoint_volume}: go on with "
                       f"pyrestore -R -f VOLUME-{self._checkpoint_volume} in this directory")
            return
        table = self._table
        table.dump_date, table.base_date, table.level = self._applying
        table.resume = None
        table.save(self._table_path)
        root = next((fix for fix in self._dir_plan or () if fix.path == b"."), None)
        if root is not None:  # writing the table touched ".": its times again
            try:
                os.utime(target, ns=(root.atime_ns, root.mtime_ns))
            except OSError as exc:
                self.warn(f".: cannot set times: {exc.strerror}")

    def _checkpoint(self, volume: int) -> None:
        """Save -r's progress before asking for *volume* (restore's checkpoint
        per reel), so that ``-R`` can go on from that volume."""
        if self._dir_plan is None:
            return  # still reading directories: a -r must start again
        date, ddate, level = self._applying
        order = self.input.byte_order
        cur = self._current
        current = None
        if cur is not None:
            fmt = cur.first.header.c_dinode.file_type
            first = cur.first if fmt != stat.S_IFREG else Record(0, cur.first.header, ())
            current = Checkpointed(cur.ino, cur.paths, first, cur.base, cur.attrs_only, cur.made)
        table = dataclasses.replace(self._table, resume=ResumePoint(
            volume=volume, date=date, ddate=ddate, level=level, byte_order=order.name,
            leaves={ino: list(paths) for ino, paths in self._pending_leaves.items()},
            dirs=list(self._dir_plan), current=current, head=_blocks_of(self._held)))
        table.save(self._table_path)
        self._checkpoint_volume = volume

    def _apply_dir_plan(self, target: str) -> None:
        """Owner, mode, xattrs and times of the dumped directories, the times
        of the others, deepest first (restore's setdirmodes)."""
        for fix in sorted(self._dir_plan or (), key=lambda f: -f.path.count(b"/")):
            full = self._at_or_none(target, fix.path)
            if full is None:
                self.warn(f"{os.fsdecode(fix.path)}: a symbolic link is in its path: attributes not set")
            elif fix.mode is None:
                try:
                    os.utime(full, ns=(fix.atime_ns, fix.mtime_ns), follow_symlinks=False)
                except OSError as exc:
                    self.warn(f"{os.fsdecode(fix.path)}: cannot set times: {exc.strerror}")
            elif _is_dir(full):
                self._set_attrs(full, fix.path, fix, fix.xattrs or [])

    # -- -C ----------------------------------------------------------------------------

    @_gc_paused
    @_closes_tree
    def compare(self, target: str | None = None) -> int:
        """``-C``: compare the image with the tree under *target* (the dumped
        file system's path on the image when None), as restore -C does: its
        header and ``filesys =`` on :attr:`out`, one line per difference on
        :attr:`err`, the leaves in image order, then the directories.  Return
        the number of compare errors (restore's count)."""
        self.read_directories()
        if target is None:
            assert self.header is not None
            target = os.fsdecode(self.header.c_filesys)
        for line in self.describe():
            print(line, file=self.out)
        print(f"filesys = {target}", file=self.out)
        if not os.path.isdir(target):
            raise RestoreError(f"cannot stat directory {target}: no such directory")
        names = self.names()
        diffs = 0

        def counted() -> None:
            nonlocal diffs
            diffs += 1
            if self.opts.compare_limit and diffs >= self.opts.compare_limit:
                raise _CompareLimit

        def report(path: bytes, what: str) -> None:
            print(f"{os.fsdecode(path)}: {what}", file=self.err)
            counted()

        def stat_of(path: bytes) -> tuple[str, os.stat_result] | None:
            nonlocal diffs
            full = self._at_or_none(target, path)
            if full is None:
                report(path, "a symbolic link is in its path (not followed)")
                return None
            st = _lstat(full)
            if st is None:
                print(f"pyrestore: unable to stat {os.fsdecode(path)}: No such file or directory", file=self.err)
                counted()
                return None
            return full, st

        try:
            while (rec := self._records.pop()) is not None:
                h = rec.header
                if h.c_type == RecordType.TS_END:
                    self._ended = True
                    break
                if h.c_type != RecordType.TS_INODE or h.is_extattr:
                    continue
                ino = h.c_inumber
                paths = names.get(ino, [])
                records = [rec] + list(self._same_inode_addrs(ino))
                xattrs = self._xattrs_after(ino)
                if h.c_dinode.file_type == stat.S_IFSOCK:
                    for path in paths:
                        self._verbose(f"skipped socket {os.fsdecode(path)}")
                    continue
                for path in paths:
                    found = stat_of(path)
                    if found is None:
                        continue
                    full, st = found
                    self._verbose(f"comparing {os.fsdecode(path)} (size: {st.st_size}, mode: 0{h.c_dinode.mode:o})")
                    whats = _compare_meta(h.c_dinode, st)
                    if stat.S_IFMT(st.st_mode) == h.c_dinode.file_type:
                        whats += _compare_data(h.c_dinode, st, full, records)
                    for what in whats + _compare_xattrs(full, xattrs):
                        report(path, what)
            self._verbose("Compare directories modes, owner, attributes.")
            for ino, node in self.dirs.items():
                if ino not in self.dumped:
                    continue
                for path in names.get(ino, ()):
                    found = stat_of(path)
                    if found is not None:
                        self._verbose(f"comparing directory {os.fsdecode(path)}")
                        for what in _compare_meta(node.dinode, found[1]) + _compare_xattrs(found[0], node.xattrs):
                            report(path, what)
        except _CompareLimit:
            self.compare_limit_reached = True
            return diffs
        self._check_end(read_rest=False)
        return diffs

    # -- writing -----------------------------------------------------------------------

    def _make_dir(self, target: str, path: bytes) -> None:
        """Make directory ``./path`` (its parent made before).  A symbolic link
        standing there is replaced by the directory (said in one line): it
        must never lead the restore out of the target folder."""
        self._verbose(f"Make node {os.fsdecode(path)}")
        if self.opts.dry_run:
            return
        try:
            parent, name = self._beneath(target).split(path)
            try:
                os.mkdir(name, 0o700, dir_fd=parent)
            except FileExistsError:
                st = os.lstat(name, dir_fd=parent)
                if stat.S_ISLNK(st.st_mode):
                    os.unlink(name, dir_fd=parent)
                    os.mkdir(name, 0o700, dir_fd=parent)
                    self.warn(f"{os.fsdecode(path)}: a symbolic link stood where the image has a directory: "
                              "replaced by the directory")
                elif not stat.S_ISDIR(st.st_mode):
                    if self.opts.unlink:
                        os.unlink(name, dir_fd=parent)
                        os.mkdir(name, 0o700, dir_fd=parent)
                    else:
                        self.error(f"{os.fsdecode(path)}: cannot make directory: a file of that name exists")
        except OSError as exc:
            self.error(f"{os.fsdecode(path)}: cannot make directory: {exc.strerror}")

    def _check_qfa_date(self) -> None:
        qfa = self.opts.qfa
        if qfa is not None and self.header is not None and qfa.date != self.header.c_date:
            raise RestoreError(f"different QFA/dumpdates detected: the QFA file is of the dump of "
                               f"{time.ctime(qfa.date)}, the image of {time.ctime(self.header.c_date)}")

    def _check_qfa(self) -> None:
        qfa = self.opts.qfa
        if qfa is None or self.header is None:
            return
        self._check_qfa_date()
        if not self.input.can_seek:
            self.warn(f"{self.input.name} cannot seek: the QFA file is not used")
            self.opts.qfa = None

    def _seek_to_wanted(self, wanted: list[int], leaf_names: dict[int, list[bytes]]) -> None:
        """``-Q``: go straight to the record the QFA map gives for the next
        wanted inode (*wanted*, descending, is consumed from its end) when it
        lies past what was read; restore's seek, then a resync at the next header.

        Only between two inodes: the record looked at must be the first of
        an inode below the wanted one, so that nothing of a file being
        extracted (its TS_ADDR and EA records) is skipped."""
        while wanted and wanted[-1] not in leaf_names:
            wanted.pop()
        if not wanted:
            return
        ahead = self._records.looked_at
        if ahead is not None and not (ahead.header.c_type == RecordType.TS_INODE and not ahead.header.is_extattr
                                      and ahead.header.c_inumber < wanted[-1]):
            return
        entry = self.opts.qfa.position_for(wanted[-1])
        if entry is None or entry.volume < self.input.volume:
            return
        if entry.volume > self.input.volume:  # straight to that volume, the ones between unread
            if not self.input.jump_to_volume(entry.volume):
                return
            self.input.seek_forward(entry.position)
            self._verbose(f"seek to inode {entry.ino} at {entry.position} of volume {entry.volume}")
            self._records.retarget(self._walk_records(self.input.after_seek()))
        elif self.input.seek_forward(entry.position):
            self._verbose(f"seek to inode {entry.ino} at {entry.position} of volume {entry.volume}")
            self._records.retarget(self._walk_records(self.input.after_seek()))

    def _extract_leaves(self, target: str, leaf_names: dict[int, list[bytes]]) -> None:
        """Stream the non-directory records; write every inode in *leaf_names* under its names."""
        self._pending_leaves = leaf_names
        qfa = self.opts.qfa is not None
        wanted = sorted(leaf_names, reverse=True) if qfa else []
        records = self._records
        fast = not self.opts.dry_run
        self._umask = os.umask(0o022)
        os.umask(self._umask)
        self._dir_state = {}
        self._fast_current = _InProgress(0, [], None)  # type: ignore[arg-type]
        tree = self._beneath(target) if fast else None
        ts_inode, ts_end = RecordType.TS_INODE, RecordType.TS_END
        parked = self._parked
        while True:
            if tree is not None:
                tree.trim()
            if qfa:
                if not leaf_names:
                    self._ended = True  # as restore -Q: done once every wanted file is out
                    return
                self._seek_to_wanted(wanted, leaf_names)
            rec = records.pop()
            if rec is None:
                break
            head = rec.head
            c_type = head.c_type
            if c_type != ts_inode or head.c_flags & DR_EXTATTRIBUTES:
                if c_type == ts_end:
                    self._ended = True
                    self._report_missing(leaf_names)
                    return
                continue
            ino = head.c_inumber
            paths = leaf_names.pop(ino, None)
            mode = head.mode
            if not paths or mode & _S_IFMT == _S_IFDIR:
                self._skip_inode(ino)
                continue
            if parked and ino in parked and not head.c_flags & DR_METAONLY:
                # made anew: the old copy goes first, as restore's
                self._verbose(f"Remove leaf {os.fsdecode(paths[0])}")
                self._drop_node(target, parked.pop(ino))
            if fast and mode & _S_IFMT == _S_IFREG and not head.c_flags & DR_METAONLY \
                    and self._write_new_regular(tree, rec, paths):
                continue
            self._write_leaf(target, rec.header, rec, paths)
        # the image ended without TS_END; _check_end reports it
        if not self._checkpoint_volume:
            self._report_missing(leaf_names)

    def _report_missing(self, leaf_names: dict[int, list[bytes]]) -> None:
        """One line for each file to extract that the image did not bring
        (restore's "not found on tape"): lost to damage, or passed by a seek."""
        for ino, paths in sorted(leaf_names.items()):
            self._not_found(f"{os.fsdecode(paths[0])} (inode {ino})")

    def _skip_inode(self, ino: int) -> None:
        """Read past the rest of inode *ino*'s records (its TS_ADDR and EA records)."""
        for _ in self._same_inode_addrs(ino):
            pass
        self._xattrs_after(ino)

    def _write_new_regular(self, tree: Beneath, first: Record, paths: list[bytes]) -> bool:
        """Write a regular file as a new file (``O_EXCL``), with the fewest
        calls: the mode is given at creation and owner and mode are set only
        where creating the file did not already make them right (see
        :meth:`_new_file_state`).  ``False`` when the name cannot be created
        afresh (it exists, or any other error): :meth:`_write_leaf` then
        does it the general way and reports what goes wrong."""
        head = first.head
        if head.size > _MAX_FILE_SIZE:
            return False  # a damaged size: the general way says so
        path = paths[0]
        parent, _, name = path.rpartition(b"/")
        mode = head.mode & 0o7777
        try:
            parent_fd = tree.dir_fd(parent)
            fd = os.open(name, _NEW_FILE, mode & 0o777, dir_fd=parent_fd)
        except OSError:
            return False
        ino = head.c_inumber
        if self.opts.verbose:
            self._verbose(f"extract file {os.fsdecode(path)}")
        # (one _InProgress for the pass, refilled: a checkpoint copies it)
        self._current = cur = self._fast_current
        cur.ino, cur.paths, cur.first, cur.base, cur.attrs_only, cur.made = ino, paths, first, 0, False, False
        records = self._records
        try:
            size = head.size
            count = head.c_count
            data = first.data
            have = len(data)
            try:
                if 0 < count < TP_NINDIR and have == count * TP_BSIZE and size <= have:
                    # the usual small file: one record, no hole, its data in one write
                    if size:
                        os.write(fd, data[:size] if size < have else data)
                    cur.base = have
                    nxt = records.peek()
                    if nxt is not None and nxt.head.c_inumber == ino and nxt.head.c_type == _TS_ADDR \
                            and self._write_data(fd, None, ino, size, have, path) != size:
                        os.ftruncate(fd, size)  # (more records than c_count said: as _write_data does)
                elif self._write_data(fd, first, ino, size, 0, path) != size:
                    os.ftruncate(fd, size)
                made = True
            except OSError as exc:
                for _ in self._same_inode_addrs(ino):
                    pass
                self.error(f"{os.fsdecode(path)}: cannot create: {exc.strerror}")
                made = False
            cur.attrs_only, cur.made = True, made
            # the next record is nearly always the next inode's: one look says so
            nxt = records.peek()
            if nxt is not None and nxt.head.c_inumber == ino and nxt.head.c_flags & DR_EXTATTRIBUTES:
                xattrs = self._xattrs_after(ino)
            else:
                xattrs = None
            self._current = None
            if not made:
                return True
            state = self._dir_state.get(parent) or self._new_file_state(fd, parent_fd, parent, mode)
            uid, gid = head.uid, head.gid
            if uid != state[0] or gid != state[1]:
                try:
                    os.fchown(fd, uid, gid)
                except OSError as exc:
                    self.warn(f"{os.fsdecode(path)}: cannot set owner {uid}:{gid}: {exc.strerror}")
            if state[3] or mode & state[2]:
                try:
                    os.fchmod(fd, mode)
                except OSError as exc:
                    self.warn(f"{os.fsdecode(path)}: cannot set mode {mode:o}: {exc.strerror}")
            if xattrs:
                self._set_attrs(path, path, head, xattrs, fd, owner=False, perms=False)
            else:
                try:
                    os.utime(fd, ns=(head.atime_sec * 1_000_000_000 + head.atime_usec * 1000,
                                     head.mtime_sec * 1_000_000_000 + head.mtime_usec * 1000))
                except OSError as exc:
                    self.warn(f"{os.fsdecode(path)}: cannot set times: {exc.strerror}")
            if self.extracted is not None:
                self.extracted.leaves[ino] = (list(paths), first.header.c_dinode, xattrs or [])
        finally:
            os.close(fd)
        if len(paths) > 1:
            self._link_others(tree.target, paths)
        return True

    def _new_file_state(self, fd: int, parent_fd: int, parent: bytes, mode: int) -> tuple[int, int, int, bool]:
        """``(uid, gid, masked, acl)`` for files created in directory
        *parent*, asked once per directory by looking at the first one (*fd*,
        just created with the permission bits of *mode*): the owner they
        get, the mode bits creation leaves out (the umask and the special
        bits, never given at creation; all when the first file did not come
        out as the umask says) and whether the directory has a default ACL
        (then creation leaves the permission bits to the ACL).  Directories
        keep their mode and ACLs until the leaves are done, so this holds
        for a whole pass."""
        st = os.fstat(fd)
        try:
            acl = bool(os.getxattr(f"/proc/self/fd/{parent_fd}", "system.posix_acl_default"))
        except OSError:
            acl = False
        masked = self._umask | 0o7000
        if not acl and stat.S_IMODE(st.st_mode) != mode & 0o777 & ~masked:
            masked = 0o7777
        state = self._dir_state[parent] = (st.st_uid, st.st_gid, masked, acl)
        return state

    def _write_data(self, fd: int, first: Record | None, ino: int, size: int, base: int, path: bytes) -> int:
        """Write the data of *first* and the TS_ADDR records of inode *ino*
        after it (only those when *first* is ``None``), the first at byte
        *base*; holes are skipped.  Returns where the last bytes written end."""
        damage_before = self._damage_count
        cur = self._current
        high = 0
        rec = first
        if rec is None:
            rec = self._next_addr(ino)
        while rec is not None:
            head = rec.head
            count = head.c_count
            entries = head.c_addr[:count] if 0 < count < TP_NINDIR else head.c_addr if count > 0 else b""
            end = base + len(entries) * TP_BSIZE
            if 0 not in entries:
                # no hole: the record's blocks in one go, cut at the size
                data = rec.data
                if end > size:
                    data = data[:max(0, size - base)]
                if data:
                    high = base + os.pwrite(fd, data, base)
            else:
                high = self._write_holey(fd, rec, entries, base, size) or high
            base = end
            if cur is not None:
                cur.base = base
            rec = self._next_addr(ino)
            if rec is not None and self._damage_count != damage_before:
                self.error(f"{os.fsdecode(path)} (inode {ino}): data after byte {base} lost to damage; "
                           "the rest of the file reads as holes")
                for _ in self._same_inode_addrs(ino):
                    pass
                break
        return high

    def _next_addr(self, ino: int) -> Record | None:
        """The next record if it is a TS_ADDR of inode *ino* (taken), else ``None``."""
        records = self._records
        rec = records.peek()
        if rec is not None and rec.head.c_type == _TS_ADDR:
            if rec.head.c_inumber != ino:
                # restore reads a TS_ADDR as the continuation of the inode before, whatever it names
                self.error(f"inode {ino}: its continuation record at block {rec.index} names inode "
                           f"{rec.head.c_inumber} (a damaged header): its data is taken as inode {ino}'s")
            return records.pop()
        return None

    @staticmethod
    def _write_holey(fd: int, rec: Record, entries: bytes, base: int, size: int) -> int:
        """Write a record's data around its holes: each run of contiguous
        blocks in one call.  Returns where the last bytes written end (0: none)."""
        data = rec.data
        high = 0
        at = 0          # next data block in ``data``
        run_at = -1     # file offset of the run being gathered
        run_start = 0   # its start in ``data``
        offset = base
        for entry in entries:
            if offset >= size:
                break
            if entry:
                if run_at < 0:
                    run_at, run_start = offset, at
                at += TP_BSIZE
            elif run_at >= 0:
                high = run_at + os.pwrite(fd, data[run_start:at], run_at)
                run_at = -1
            offset += TP_BSIZE
        if run_at >= 0:
            chunk = data[run_start:at]
            if run_at + len(chunk) > size:
                chunk = chunk[:size - run_at]
            high = run_at + os.pwrite(fd, chunk, run_at)
        return high

    def _write_leaf(self, target: str, h: Header, first: Record, paths: list[bytes],
                    resume: "_InProgress | None" = None) -> None:
        """Write one inode under its names.  *resume* continues one a
        checkpoint caught half done (its data from ``resume.base`` on, or only
        its attributes)."""
        ino = h.c_inumber
        d = h.c_dinode
        path = paths[0]
        fmt = d.file_type
        if self.opts.verbose and fmt != stat.S_IFLNK:  # a link says "Create symbolic link" when made
            what = {stat.S_IFIFO: "fifo", stat.S_IFCHR: "special file", stat.S_IFBLK: "special file"}
            self._verbose(f"extract {what.get(fmt, 'file')} {os.fsdecode(path)}")
        made = False
        if self.opts.dry_run:
            self._skip_inode(ino)
            return
        try:
            full = self._at(target, path)
        except OSError as exc:
            self._skip_inode(ino)
            self.error(f"{os.fsdecode(path)}: cannot create: {exc.strerror} (a symbolic link or a file stands "
                       "where the image has a directory)")
            return
        self._current = _InProgress(ino, paths, first) if resume is None else resume
        try:
            if resume is not None and resume.attrs_only:
                made = resume.made
            elif h.is_metaonly:
                for _ in self._same_inode_addrs(ino):
                    pass
                made = self._keep_node(target, full, ino, fmt, path)
            elif fmt == stat.S_IFREG:
                made = self._write_regular(full, h, None if resume else first, path,
                                           resume.base if resume else 0)
            elif fmt == stat.S_IFLNK:
                records = [first] + list(self._same_inode_addrs(ino))
                if first.head.c_count == 0:
                    self.warn(f"{os.fsdecode(path)}: zero length symbolic link (ignored)")
                elif d.size > _SYMLINK_MAX:
                    self.error(f"{os.fsdecode(path)} (inode {ino}): a symbolic link of {d.size} bytes: "
                               "its header is damaged; skipped")
                else:
                    link = assemble_file(records)
                    if 0 in link:
                        self.error(f"{os.fsdecode(path)} (inode {ino}): the symbolic link's target holds a NUL "
                                   "byte: damaged; skipped")
                    else:
                        self._verbose(f"Create symbolic link {os.fsdecode(path)}->{os.fsdecode(link)}")
                        self._clear(full)
                        os.symlink(link, full)
                        made = True
            elif fmt in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK):
                for _ in self._same_inode_addrs(ino):
                    pass
                self._clear(full)
                major, minor = decode_dev(d.rdev)
                os.mknod(full, fmt | 0o600, os.makedev(major, minor) if fmt in (stat.S_IFCHR, stat.S_IFBLK) else 0)
                made = True
            else:
                for _ in self._same_inode_addrs(ino):
                    pass
                self.error(f"{os.fsdecode(path)} (inode {ino}): unknown file type {fmt:#o} (a damaged header), "
                           "skipped")
        except OSError as exc:
            for _ in self._same_inode_addrs(ino):
                pass
            self.error(f"{os.fsdecode(path)}: cannot create: {exc.strerror}")
        self._current.attrs_only, self._current.made = True, made
        # a regular file just written is still open: its attributes go on
        # through the descriptor (no path lookups)
        fd, self._leaf_fd = self._leaf_fd, None
        try:
            xattrs = self._xattrs_after(ino)
            self._current = None
            if not made:
                return
            self._set_attrs(full, path, d, xattrs, fd)
            if self.extracted is not None:
                self.extracted.leaves[ino] = (list(paths), d, xattrs)
        finally:
            if fd is not None:
                os.close(fd)
        self._link_others(target, paths)

    def _keep_node(self, target: str, full: str, ino: int, fmt: int, path: bytes) -> bool:
        """A metadata-only inode (``dump -m``): the node restored before
        keeps its data and gets the new attributes.  Under -r it is the one
        parked when its old names went, moved to *full*; otherwise whatever
        of that kind is at *full*.  False when there is none (as restore,
        which then has nothing to apply them to)."""
        parked_rel = self._parked.pop(ino, None)
        if parked_rel is not None:
            try:
                parked = self._at(target, parked_rel)
                if stat.S_IFMT(os.lstat(parked).st_mode) == fmt:
                    self._clear(full)
                    os.rename(parked, full)
                    return True
            except (FileNotFoundError, NotADirectoryError):
                pass
        try:
            if stat.S_IFMT(os.lstat(full).st_mode) == fmt:
                return True
        except FileNotFoundError:
            pass
        self._verbose(f"file {os.fsdecode(path)} is metadata only: no earlier copy to apply it to")
        return False

    def _drop_node(self, target: str, rel: bytes) -> None:
        try:
            os.unlink(self._at(target, rel))
        except OSError as exc:
            self.warn(f"{os.fsdecode(rel)}: cannot remove the old copy: {exc.strerror}")

    def _add_links_said(self) -> None:
        self._verbose("Add links")
        for line in self._link_lines:
            self._verbose(line)
        self._link_lines = []

    def _in_walk_order(self, paths: list[bytes]) -> list[bytes]:
        """The names of one inode in the order a depth-first walk of the
        directories in entry order meets them (restore extracts the first)."""
        def key(path: bytes) -> list[int]:
            ino, out = ROOTINO, []
            for part in path.split(b"/")[1:]:
                node = self.dirs.get(ino)
                if node is None:
                    break
                index = next((i for i, e in enumerate(node.entries) if e.name == part), len(node.entries))
                out.append(index)
                ino = node.entries[index].ino if index < len(node.entries) else 0
            return out
        return sorted(paths, key=key)

    def _link_others(self, target: str, paths: list[bytes]) -> None:
        """Make ``paths[1:]`` hard links of ``paths[0]`` (the inode's first name)."""
        for other in paths[1:]:
            if self.opts.verbose:  # said after "Add links", where restore makes them
                self._link_lines.append(f"Create hard link {os.fsdecode(other)}->{os.fsdecode(paths[0])}")
            try:
                ofull = self._at(target, other)
                self._clear(ofull)
                os.link(self._at(target, paths[0]), ofull, follow_symlinks=False)
            except OSError as exc:
                self.error(f"{os.fsdecode(other)}: cannot link to {os.fsdecode(paths[0])}: {exc.strerror}")

    def _clear(self, full: str) -> None:
        """Make room for a new node: remove an old non-directory (restore's -u, always for our own work)."""
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            raise OSError(_errno.EISDIR, "a directory of that name exists")
        if not self.opts.unlink:
            raise OSError(_errno.EEXIST, "file exists (use -u to replace it)")
        os.unlink(full)

    def _write_regular(self, full: str, h: Header, first: Record | None, path: bytes, base: int = 0) -> bool:
        """Write a regular file's data; *first* ``None`` goes on with a file
        whose bytes before *base* a checkpointed restore already wrote."""
        ino = h.c_inumber
        d = h.c_dinode
        if self.opts.unlink and first is not None:
            self._clear(full)
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_TRUNC if first is not None else 0)
        fd = os.open(full, flags, 0o600)
        try:
            size = d.size
            if size > _MAX_FILE_SIZE:
                self.error(f"{os.fsdecode(path)} (inode {ino}): a size of {size} bytes is impossible (a damaged "
                           "header): only the data blocks on the image are restored")
                self._write_data(fd, first, ino, _MAX_FILE_SIZE, base, path)
                size = -1
            else:
                high = self._write_data(fd, first, ino, size, base, path)
            if size >= 0 and (first is None or high != size):
                os.ftruncate(fd, size)
        except BaseException:
            os.close(fd)
            raise
        self._leaf_fd = fd  # _write_leaf sets the attributes through it, then closes it
        return True

    def _set_attrs(self, full: "str | bytes", path: bytes, d: "Dinode | DirFix | Head",
                   xattrs: list[tuple[bytes, bytes]], fd: int | None = None, *,
                   owner: bool = True, perms: "bool | int" = True) -> None:
        """Owner, mode, xattrs and times of *full* (through *fd*, open on it,
        if given).  Without *owner* or *perms* the owner or the mode is known
        to be right already and is not set."""
        mode = d.mode
        if owner:
            try:
                if fd is None:
                    os.chown(full, d.uid, d.gid, follow_symlinks=False)
                else:
                    os.fchown(fd, d.uid, d.gid)
            except OSError as exc:
                self.warn(f"{os.fsdecode(path)}: cannot set owner {d.uid}:{d.gid}: {exc.strerror}")
        if perms and not stat.S_ISLNK(mode):
            try:
                if fd is None:
                    _chmod_nofollow(full, stat.S_IMODE(mode))
                else:
                    os.fchmod(fd, stat.S_IMODE(mode))
            except OSError as exc:
                self.warn(f"{os.fsdecode(path)}: cannot set mode {stat.S_IMODE(mode):o}: {exc.strerror}")
        for xname, value in xattrs:
            try:
                if fd is None:
                    os.setxattr(full, xname, value, follow_symlinks=False)
                else:
                    os.setxattr(fd, xname, value)
            except OSError as exc:
                self.warn(f"{os.fsdecode(path)}: cannot set extended attribute {os.fsdecode(xname)}: "
                          f"{exc.strerror}")
        try:
            if fd is None:
                os.utime(full, ns=(d.atime_ns, d.mtime_ns), follow_symlinks=False)
            else:
                os.utime(fd, ns=(d.atime_ns, d.mtime_ns))
        except OSError as exc:
            self.warn(f"{os.fsdecode(path)}: cannot set times: {exc.strerror}")

    def _finish_dirs(self, target: str, dir_paths: dict[int, bytes]) -> None:
        """Owner, mode, xattrs and times of the directories, deepest first (restore's setdirmodes)."""
        if self.opts.dry_run:
            return
        for ino, path in sorted(dir_paths.items(), key=lambda kv: -kv[1].count(b"/")):
            node = self.dirs.get(ino)
            if node is None:
                continue
            full = self._at_or_none(target, path)
            if full is not None and _is_dir(full):
                self._set_attrs(full, path, node.dinode, node.xattrs)

    def _check_end(self, *, read_rest: bool) -> None:
        if read_rest and not self._ended:
            while (rec := self._records.pop()) is not None:
                if rec.header.c_type == RecordType.TS_END:
                    self._ended = True
                    break
        if read_rest and not self._ended:
            self.error(f"{self.input.name}: the image ends without an end-of-dump record: "
                       "it is truncated; everything before the end was restored")


def _rmtree(path: str) -> None:
    import shutil  # only an incremental removes trees: not imported for every run

    shutil.rmtree(path, ignore_errors=True)


def _blocks_of(pieces: list[bytes | memoryview]) -> list[bytes]:
    """The 1 KiB blocks of *pieces* (whole blocks each)."""
    return [bytes(p[at:at + TP_BSIZE]) for p in pieces for at in range(0, len(p), TP_BSIZE)]


def _chmod_nofollow(path: "str | bytes", mode: int) -> None:
    """chmod of *path* itself: a symbolic link put there since is not followed
    (through an ``O_PATH`` descriptor of the node; a link refuses the chmod)."""
    fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.chmod(f"/proc/self/fd/{fd}", mode)
    finally:
        os.close(fd)


def _is_dir(path: str) -> bool:
    """A directory itself (not a symbolic link to one)."""
    st = _lstat(path)
    return st is not None and stat.S_ISDIR(st.st_mode)


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None


def _check_writable(target: str, dry_run: bool) -> None:
    if dry_run:
        return
    if not os.path.isdir(target):
        raise RestoreError(f"target directory {target} does not exist or is not a directory")
    try:
        for n in itertools.count():
            probe = os.path.join(target, f".pyrestore-probe{os.getpid()}.{n}")
            try:
                os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                break
            except FileExistsError:
                continue
        os.unlink(probe)
    except OSError as exc:
        raise RestoreError(f"cannot write in target directory {target}: {exc.strerror}") from None


def _compare_meta(d: Dinode, st: os.stat_result) -> list[str]:
    """restore -C's lines for the mode (with the type) and owner of one node."""
    out = []
    mode = d.mode if not stat.S_ISLNK(d.mode) else st.st_mode  # a link's mode is not compared
    if st.st_mode != mode:
        out.append(f"mode changed from 0{d.mode & 0o7777:o} to 0{st.st_mode & 0o7777:o}.")
    if st.st_uid != d.uid:
        out.append(f"uid changed from {d.uid} to {st.st_uid}.")
    if st.st_gid != d.gid:
        out.append(f"gid changed from {d.gid} to {st.st_gid}.")
    return out


def _compare_xattrs(full: str, xattrs: list[tuple[bytes, bytes]]) -> list[str]:
    """restore -C's lines for the extended attributes of one node."""
    out = []
    try:
        on_disk = {os.fsencode(n): os.getxattr(full, n, follow_symlinks=False)
                   for n in os.listxattr(full, follow_symlinks=False)}
    except OSError:
        on_disk = {}
    tape = dict(xattrs)
    if len(on_disk) != len(tape):
        out.append(f"file does not have the same number of attributes ({len(on_disk)}) as the tape ({len(tape)}).")
    else:
        for n, v in tape.items():
            if n not in on_disk:
                out.append(f"EA {os.fsdecode(n)} from tape not found on disk")
            elif on_disk[n] != v:
                out.append(f"EA {os.fsdecode(n)} value changed from {_ea_text(v)} on tape to "
                           f"{_ea_text(on_disk[n])} on disk")
    return out


def _ea_text(value: bytes) -> str:
    return value.rstrip(b"\0").decode("utf-8", "replace")


def _compare_data(d: Dinode, st: os.stat_result, full: str, records: list[Record]) -> list[str]:
    """restore -C's line for the contents of one node of the same type on disk."""
    if records[0].header.is_metaonly:
        return []  # no data on the image to compare (dump -m)
    if d.file_type in (stat.S_IFCHR, stat.S_IFBLK):
        major, minor = decode_dev(d.rdev)
        if os.major(st.st_rdev) != major or os.minor(st.st_rdev) != minor:
            return [f"device changed from {major},{minor} to {os.major(st.st_rdev)},{os.minor(st.st_rdev)}."]
        return []
    if d.file_type == stat.S_IFLNK:
        if d.size > _SYMLINK_MAX:
            return [f"symbolic link of {d.size} bytes on the image: its header is damaged"]
        try:
            on_disk, on_tape = os.fsencode(os.readlink(full)), assemble_file(records)
        except OSError as exc:
            return [f"cannot read link: {exc.strerror}"]
        if on_disk != on_tape:
            return [f"symbolic link changed from {os.fsdecode(on_tape)} to {os.fsdecode(on_disk)}."]
        return []
    if d.file_type != stat.S_IFREG:
        return []
    # as restore compares: piece by piece in image order, a short read is a
    # size change, then anything left on disk after the image's data is one too
    try:
        with open(full, "rb") as f:
            for offset, block in iter_file_slices(records):
                if offset >= d.size:
                    break
                want = (block if block is not None else bytes(TP_BSIZE))[:min(TP_BSIZE, d.size - offset)]
                f.seek(offset)
                got = f.read(len(want))
                if len(got) != len(want):
                    return ["size has changed."]
                if got != want:
                    return ["tape and disk copies are different"]
    except OSError as exc:
        return [f"cannot read: {exc.strerror}"]
    if st.st_size != d.size:
        return ["size has changed."]
    return []


# -- -r: the incremental plan ----------------------------------------------------------


_TMP = -1  # "parent" of a node parked in the temporary directory


@dataclass(slots=True)
class _InProgress:
    """The inode -r is writing: its first record, how many bytes of its data
    are on disk (``base``), and whether only its attributes are left."""

    ino: int
    paths: list[bytes]
    first: Record
    base: int = 0
    attrs_only: bool = False
    made: bool = False


class _Rebuild:
    """Apply one image on top of the tree a symbol table describes.

    Names are edges ``(parent, name, child)``.  Edges in both trees stay;
    old-only edges are removed (a surviving node is parked in a temporary
    directory, a deleted one removed); new-only edges are made top-down
    (parked nodes moved back, new directories made, dumped leaves extracted,
    unchanged leaves linked).  A dumped leaf is always extracted afresh, and
    an inode number that changed kind counts as deleted plus new.
    """

    def __init__(self, r: Restore, old: SymbolTable, target: str) -> None:
        self.r = r
        self.old = old
        self.target = target
        h = r.header
        assert h is not None
        self.tmp_name = f"RSTTMP{h.c_date}"
        new_dirs: dict[int, list[tuple[bytes, int]]] = {}
        for ino, entries in old.dirs.items():
            if ino in r.in_use and not (ino in r.dumped and ino not in r.dirs):
                new_dirs[ino] = list(entries)
        for ino, node in r.dirs.items():
            new_dirs[ino] = [(e.name, e.ino) for e in node.entries if e.name not in (b".", b"..")]
        self.new = SymbolTable(dirs=new_dirs, dir_times=dict(old.dir_times))
        for ino, node in r.dirs.items():
            self.new.dir_times[ino] = (node.dinode.atime_ns, node.dinode.mtime_ns)
        new_edges = list(self.new.edges())
        in_use, dumped, dirs = r.in_use, r.dumped, r.dirs
        new_edges = [edge for edge in new_edges if edge[2] in in_use or edge[2] in dumped or edge[2] in dirs]
        reachable = {ROOTINO} | {c for _, _, c in new_edges}
        self.new.dirs = {ino: [(n, c) for n, c in new_dirs[ino] if c in reachable]
                         for ino in reachable if ino in new_dirs}
        for ino in list(self.new.dir_times):
            if ino not in self.new.dirs:
                del self.new.dir_times[ino]
        self.new_edges = new_edges
        self.old_edges = list(old.edges())

    def _survives(self, ino: int) -> bool:
        """Was in the old tree and is the same node in the new one (maybe renamed)."""
        r = self.r
        if ino == ROOTINO:
            return True
        if ino not in r.in_use:
            return False
        was_dir = self.old.is_dir(ino)
        is_dir = ino in self.new.dirs or ino in r.dirs
        if was_dir != is_dir:
            return False
        if not is_dir and ino in r.dumped:
            return False  # a changed leaf: extracted afresh
        return True

    def _changed_leaf(self, ino: int) -> bool:
        """A leaf of the old tree that this image dumps again as a leaf."""
        r = self.r
        return ino in r.dumped and ino in r.in_use and ino not in r.dirs and ino not in self.new.dirs

    def run(self) -> None:
        r = self.r
        dry = r.opts.dry_run
        # (a first -r has no old tree: nothing to compare, keep or remove)
        old_set = set(self.old_edges)
        new_set = set(self.new_edges) if old_set else set()
        new_nodes = {c for _, _, c in self.new_edges} | {ROOTINO} if old_set else {ROOTINO}
        kept = {e for e in old_set & new_set if self._survives(e[2])}
        # where each directory currently is: (parent, name) or (_TMP, ino)
        where: dict[int, tuple[int, bytes]] = {}
        for p, n, c in self.old_edges:
            if self.old.is_dir(c):
                where.setdefault(c, (p, n))
        leaf_at: dict[int, tuple[int, bytes]] = {}
        for p, n, c in kept:
            if not self.old.is_dir(c):
                leaf_at[c] = (p, n)

        # Paths are built from bytes, each directory's once (``prefix``, kept
        # until a directory moves): relpath and join per file were a fifth
        # of a restore of many small files.
        prefixes: dict[int, bytes] = {ROOTINO: b"./"}
        tmp_b = os.fsencode(self.tmp_name)

        def prefix(ino: int) -> bytes:
            """``./a/b/`` of directory *ino* as it is now."""
            got = prefixes.get(ino)
            if got is None:
                p, n = where[ino]
                if p == _TMP:
                    got = b"./" + tmp_b + b"/" + str(ino).encode() + b"/"
                else:
                    got = prefix(p) + n + b"/"
                prefixes[ino] = got
            return got

        # every path goes through r._at: beneath the target, no symbolic link followed
        target = self.target
        tree = r._beneath(target)

        def move(ino: int, to: tuple[int, bytes]) -> None:
            if ino in where:
                prefixes.clear()
                prefixes[ROOTINO] = b"./"
                tree.forget()  # a directory moved: the descriptors kept by path are stale
            where[ino] = to

        def loc(ino: int) -> str:
            return r._at(target, prefix(ino)[:-1])

        def rel(p: int, n: bytes) -> bytes:
            return prefix(p) + n

        def full_of(p: int, n: bytes) -> str:
            return r._at(target, prefix(p) + n)

        def parked_rel(c: int) -> bytes:
            return b"./" + tmp_b + b"/%d" % c

        tmp_full = r._at(target, b"./" + tmp_b)
        removed = [e for e in self.old_edges if e not in kept]
        if removed and not dry:
            try:
                os.mkdir(tmp_full, 0o700)
            except FileExistsError:
                if not _is_dir(tmp_full):
                    raise RestoreError(f"{os.path.join(target, self.tmp_name)} is in the way (not a directory): "
                                       "remove it and run again") from None
        doomed_dirs = []
        for p, n, c in removed:
            survives = self._survives(c) and c in new_nodes
            try:
                full = full_of(p, n)
                if survives and self.old.is_dir(c):
                    r._verbose(f"rename {os.fsdecode(rel(p, n))} to {self.tmp_name}/{c}")
                    if not dry:
                        os.rename(full, r._at(target, parked_rel(c)))
                    move(c, (_TMP, b""))
                elif survives and c not in leaf_at:
                    if not dry:
                        os.rename(full, r._at(target, parked_rel(c)))
                    leaf_at[c] = (_TMP, b"")
                elif self.old.is_dir(c):
                    doomed_dirs.append(c)
                elif not dry and c not in r._parked and self._changed_leaf(c) and c in new_nodes:
                    # dumped again: kept aside until its record says whether
                    # it is metadata only (then this node stays)
                    os.rename(full, r._at(target, parked_rel(c)))
                    r._parked[c] = parked_rel(c)
                else:
                    r._verbose(f"Remove leaf {os.fsdecode(rel(p, n))}")
                    if not dry:
                        os.unlink(full)
            except FileNotFoundError:
                r.warn(f"{os.fsdecode(rel(p, n))}: already gone from the restored tree")
            except OSError as exc:
                r.error(f"{os.fsdecode(rel(p, n))}: cannot remove or rename: {exc.strerror}")
        for c in doomed_dirs:
            r._verbose(f"Remove node {os.fsdecode(prefix(c)[2:-1])}")
            if not dry:
                try:
                    _rmtree(loc(c))
                except (FileNotFoundError, NotADirectoryError):
                    pass  # gone with a directory above it
                except OSError as exc:
                    r.error(f"{os.fsdecode(prefix(c)[2:-1])}: cannot remove: {exc.strerror}")
                tree.forget()
        # make the new names, top-down
        leaf_names: dict[int, list[bytes]] = {}
        linked: list[int] = []  # inodes of more than one name
        new_dirs, dumped = self.new.dirs, r.dumped
        for edge in self.new_edges:
            if kept and edge in kept:
                continue
            p, n, c = edge
            is_dir = c in new_dirs
            if is_dir and c in where and where[c][0] == _TMP:
                r._verbose(f"rename {self.tmp_name}/{c} to {os.fsdecode(rel(p, n))}")
                if not dry:
                    try:
                        os.rename(r._at(target, parked_rel(c)), full_of(p, n))
                    except OSError as exc:
                        r.error(f"{os.fsdecode(rel(p, n))}: cannot move back from {self.tmp_name}: {exc.strerror}")
                move(c, (p, n))
            elif is_dir:
                move(c, (p, n))
                r._make_dir(self.target, rel(p, n))
            elif c in dumped:
                path = (prefixes.get(p) or prefix(p)) + n
                names = leaf_names.get(c)
                if names is None:
                    leaf_names[c] = [path]
                else:
                    names.append(path)
                    linked.append(c)
            elif c in leaf_at:
                lp, ln = leaf_at[c]
                r._verbose(f"link {os.fsdecode(rel(p, n))}")
                if not dry:
                    try:
                        full = full_of(p, n)
                        src = r._at(target, parked_rel(c)) if lp == _TMP else full_of(lp, ln)
                        os.link(src, full, follow_symlinks=False)
                    except OSError as exc:
                        r.error(f"{os.fsdecode(rel(p, n))}: cannot link: {exc.strerror}")
            else:
                r.error(f"{os.fsdecode(rel(p, n))} (inode {c}) is neither on this image nor restored before")
        if _is_dir(tmp_full) and not dry and not r._parked:
            _rmtree(tmp_full)
            tree.forget()
        if not dry:
            # directories: the dumped ones get their attributes, the others their times back
            dir_paths = {ino: rel(*where[ino]) for ino in self.new.dirs if ino != ROOTINO and ino in where}
            dir_paths[ROOTINO] = b"."
            fixes = []
            for ino, path in dir_paths.items():
                node = r.dirs.get(ino)
                if node is not None:
                    d = node.dinode
                    fixes.append(DirFix(path, d.atime_ns, d.mtime_ns, d.uid, d.gid, d.mode, list(node.xattrs)))
                elif ino in self.new.dir_times:
                    fixes.append(DirFix(path, *self.new.dir_times[ino]))
            r._dir_plan = fixes
        # what the planning needed goes before the leaves stream in (peak memory)
        del new_set, old_set, new_nodes, kept, leaf_at, removed
        self.new_edges = self.old_edges = []
        self.old = SymbolTable()
        for c in linked:  # the name restore extracts first, the others linked to it
            leaf_names[c] = r._in_walk_order(leaf_names[c])
        r._verbose("Extract new leaves.")
        r._verbose("Check pointing the restore")
        r._extract_leaves(self.target, leaf_names)
        r._add_links_said()
        r._verbose("Set directory mode, owner, and times.")
        if not dry:
            r._drop_parked(tmp_full)
            r._apply_dir_plan(self.target)
