"""The dump engine as the DATA service sees it: a backup of a path into a
byte stream, a recover of names from a byte stream.

The engine is dumptool's :class:`~dumptool.dump.Dump` (a plain BSD
dump image, as ``pydump`` writes) and :class:`~dumptool.restore.Restore`
(as ``pyrestore -x``), used through their public options only.  A backup
of a path on a snapfs mount goes through :func:`dumptool.filer.dump_source`
as pydump's does: it reads its own ``snapshot_for_backup.N`` straight from
the store, checks an incremental's base, skips (and LOGs) files under client
I/O restriction.  Three calls:

* :meth:`DumpEngine.backup` -- ``write`` receives the image as it is made;
  the result carries the dump date and the file history (:class:`FileEntry`:
  names, stats and ``fh_info`` positions for direct access recovery);
* :meth:`DumpEngine.recover` -- the image comes from ``fetch(offset,
  length)`` (a byte range of the stream, ``None`` = to the end); with
  ``direct`` and names whose ``fh_info`` is known, only the front of the
  image (maps and directories) and each wanted file's own records are read,
  one range after the other (direct access recovery, DAR);
* :meth:`DumpEngine.list_history` -- the file history of an image (for
  DATA_START_RECOVER_FILEHIST).

The image goes through a spool file: dump writes it and the backup sends it
on as it grows (punching out what was sent, so the spool stays small).  The
file history comes from the dump itself (:class:`ImageIndex`, a
:class:`~dumptool.history.FileHistory` observer: names, attributes, and the
stream block of each file's header).  A recover spools what it reads and
restores from there; a direct access recover spools a shorter image made of
the front and the wanted files' records (restore reads it from start to end,
as it would the whole image).

``fh_info`` (opaque to a DMA) is ``front << 32 | position``, both in 1 KiB
blocks: ``position`` is the block of the file's header in the stream,
``front`` how much of the image's start (volume header, maps, directories)
a recover reads first (up to the first non-directory's header).  A file's
records run from its header to the next header of another inode: a recover
walks them header by header, asking for each stretch up to the end of the
dump record holding the next header (never past the image's end).
Directories and images past 4 TiB get all-ones (unknown), and so does any
name a DMA has no position for: such a name, one whose position is not its
file's header (a stale index) or a directory, makes the recover read the
image through from the front on.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import dataclasses
import os
import stat
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import BinaryIO, NamedTuple
from dataclasses import dataclass, field

from dumptool.contexts import Context
from dumptool.dump import Dump, DumpOptions
from dumptool.errors import DumpError
from dumptool.filer import dump_source
from dumptool.errors import FormatError
from dumptool.format import (MAXNTREC, TP_BSIZE, ByteOrder, Dirent, Header, RecordType, build_directory,
                             header_byte_order, timeval_from_ns, walk_chunks)
from dumptool.format.pass5 import EXT_PASS5
from dumptool.history import RecordPosition
from dumptool.traverse import DumpPlan, Stat
from dumptool.restore import Options as RestoreOptions
from dumptool.restore import Extracted, Restore, VolumeInput

from .errors import EngineCancelled, EngineError
from .restartable import NdmpContextKeeper, restart_options, restart_resumer

U64_INVALID = 0xFFFFFFFFFFFFFFFF
#: The root directory's inode number in a dump image.
ROOT_NODE = 2
#: Dump's blocking factor for NDMP images whose mover is another server's (records of 10
#: KiB, as ndmjob's default); a LOCAL mover's record size sets it (:func:`blocking_factor`).
NTREC = 10
#: The blocking factors a LOCAL mover's record size may set (records of 4 to 256 KiB).
MIN_NTREC, MAX_NTREC = 4, 256
_SEND_CHUNK = 1024 * 1024
#: Seconds the sending side waits for the dump to write more (a stop is seen within that).
_SPOOL_WAIT = 0.02
_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02


@dataclass(frozen=True)
class BackupRequest:
    path: str
    level: int = 0
    update: bool = True
    base_date: int | None = None
    dumpdates: str | None = None
    #: A restartable context to go on from (:mod:`ndmp.restartable`): the stream is its next volume.
    restart_of: Context | None = None
    #: The image's blocking factor (1 KiB blocks per record).
    ntrec: int = NTREC


def blocking_factor(record_size: int) -> int | None:
    """The dump blocking factor a mover record size of ``record_size`` bytes
    sets (record size / 1 KiB), or None when it is none from 4 to 256."""
    ntrec, rest = divmod(record_size, TP_BSIZE)
    return ntrec if not rest and MIN_NTREC <= ntrec <= MAX_NTREC else None


class NodeStat(NamedTuple):
    """What file history tells of an inode (a tuple: a backup makes one per inode)."""

    mode: int
    uid: int
    gid: int
    size: int
    mtime: int
    atime: int
    ctime: int
    nlink: int

    @classmethod
    def of(cls, st: os.stat_result | Stat) -> "NodeStat":
        """As the inode's dump header tells it (whole seconds, within the format's range)."""
        return cls(st.st_mode, st.st_uid, st.st_gid, st.st_size, timeval_from_ns(st.st_mtime_ns)[0],
                   timeval_from_ns(st.st_atime_ns)[0], timeval_from_ns(st.st_ctime_ns)[0], st.st_nlink)


class FileEntry(NamedTuple):
    """One name of one inode in the image: ``node`` in directory ``parent`` (a tuple: a backup
    makes one per name)."""

    node: int
    parent: int
    name: str
    stat: NodeStat | None
    fh_info: int = U64_INVALID
    #: Whether the node is a directory (known also when ``stat`` is not).
    directory: bool = False


@dataclass
class BackupResult:
    date: int
    base_date: int
    bytes: int
    entries: list[FileEntry] = field(default_factory=list)
    #: dump's warnings (a file that changed or vanished while it was read...).
    warnings: list[str] = field(default_factory=list)
    #: The byte offset of the image's Pass V record (xattrs too big for their
    #: file's EA record), ``None`` when it has none: the env's ``ACL_START``.
    acl_start: int | None = None


@dataclass(frozen=True)
class RecoverName:
    """A name-list entry: ``original`` (relative to the image's root) goes to ``destination``."""

    original: str
    destination: str
    fh_info: int = U64_INVALID


@dataclass
class RecoverResult:
    #: Whether each name (same order) was restored.
    restored: list[bool]
    messages: list[str]
    failed: bool
    bytes_read: int
    #: The byte ranges of the image asked for (1: read through from the start).
    ranges: int = 1
    #: How the image was read (a direct access recover that fell back to reading through says why).
    notes: list[str] = field(default_factory=list)


Fetch = Callable[[int, int | None], Iterator[bytes]]


def _punch(fd: int, offset: int, length: int) -> None:
    """Free ``length`` bytes of a spool file from ``offset`` (best effort)."""
    if length <= 0 or _libc is None:
        return
    _libc.fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE,
                    ctypes.c_long(offset), ctypes.c_long(length))


_libc_name = ctypes.util.find_library("c")
_libc = ctypes.CDLL(_libc_name, use_errno=True) if _libc_name else None


def load_engine() -> None:
    """Import what the first backup of a snapfs path would: dumptool reads
    snapfs lazily (pydump on a plain folder starts without it), and a server
    pays for that once at its start, not in the first DMA's backup."""
    import dumptool.snaptree  # noqa: F401
    import snapfs.client  # noqa: F401
    import snapfs.luns  # noqa: F401
    import snapfs.reader  # noqa: F401


class DumpEngine:
    """Backups and recovers with dumptool, spooling in ``spool_dir``."""

    def __init__(self, spool_dir: str | None = None) -> None:
        self.spool_dir = spool_dir

    # -- backup ------------------------------------------------------------------
    def backup(self, request: BackupRequest, write: Callable[[bytes], None],
               stopped: threading.Event, keeper: NdmpContextKeeper | None = None) -> BackupResult:
        """Dump ``request.path``; every byte of the image goes to ``write`` in
        order.  ``stopped`` set from outside ends the dump between two steps
        (:class:`~ndmp.errors.EngineCancelled`); the stream then has no end-of-dump record, so
        nobody can take it for a whole image.  ``keeper`` keeps the restartable
        context of a dump of a snapfs path (and runs ``request.restart_of``)."""
        path = os.path.abspath(request.path)
        if not os.path.isdir(path):
            raise EngineError(f"FILESYSTEM {request.path}: not a directory")
        with tempfile.TemporaryDirectory(prefix="pyndmpd-backup-", dir=self.spool_dir) as spool, \
                contextlib.ExitStack() as source:
            image = os.path.join(spool, "image")
            index = ImageIndex()
            options = DumpOptions(source=path, output=image, level=request.level, ntrec=request.ntrec,
                                  update=request.update, base_date=request.base_date, quiet=True,
                                  never_ask=True, progress_interval=0, history=(index,))
            if request.dumpdates:
                options.dumpdates = request.dumpdates
            restart = request.restart_of
            if restart is not None:
                options = dataclasses.replace(restart_options(restart, image), history=(index,))
            warnings: list[str] = []
            try:
                # on snapfs: a snapshot_for_backup.N read by the filer's engine (the path's scope:
                # volume, qtree or subtree), held until the dump ends; else the live tree
                options, _say = source.enter_context(dump_source(
                    options, restart.snapshot if restart is not None else None, warn=warnings.append,
                    on_snapshot=keeper.observe if keeper is not None else None))
                if keeper is not None:
                    options = dataclasses.replace(options, history=options.history + keeper.histories())
                if restart is not None and (keeper is None or not keeper.active):
                    raise EngineError(f"the restart of context {restart.id} needs its snapshot")
                dump = Dump(options, warn=warnings.append)
            except DumpError as exc:
                raise EngineError(exc.message) from None
            outcome: list[BaseException] = []
            done = threading.Event()

            def run() -> None:
                try:
                    if keeper is not None and keeper.active:  # it checks ``stopped`` at each step
                        keeper.run(dump, restart_resumer(restart) if restart is not None else None)
                        return
                    for _cursor in dump.steps():
                        if stopped.is_set():
                            raise EngineCancelled("the backup was stopped")
                except BaseException as exc:  # handed to the sending side
                    outcome.append(exc)
                finally:
                    done.set()

            worker = threading.Thread(target=run, name="pyndmpd-dump", daemon=True)
            open(image, "wb").close()
            fd = os.open(image, os.O_RDWR)  # read and punch out what was sent
            worker.start()
            sent = 0
            try:
                while True:  # the image as dump writes it, sent on
                    finished = done.is_set()
                    chunk = os.pread(fd, _SEND_CHUNK, sent)
                    if chunk:
                        write(chunk)
                        _punch(fd, sent, len(chunk))
                        sent += len(chunk)
                        continue
                    if finished or stopped.is_set():
                        break
                    done.wait(_SPOOL_WAIT)  # for more of the image; the dump's end wakes it at once
            except BaseException:
                stopped.set()
                raise
            finally:
                worker.join()
                os.close(fd)
            if outcome:
                exc = outcome[0]
                if isinstance(exc, EngineCancelled):
                    raise exc
                if isinstance(exc, DumpError):
                    raise EngineError(exc.message) from None
                raise EngineError(f"the dump failed: {exc!r}") from exc
            if stopped.is_set():
                raise EngineCancelled("the backup was stopped")
            if not index.ended:
                raise EngineError("the image has no end-of-dump record: it is not complete")
            entries = index.history()
            acl_start = None if index.pass5 is None else index.pass5 * TP_BSIZE
            return BackupResult(dump.date, dump.base_date, sent, entries, warnings, acl_start)

    # -- recover -----------------------------------------------------------------
    def recover(self, fetch: Fetch, names: list[RecoverName], *, direct: bool,
                prefix: str | None = None, acl_start: int | None = None) -> RecoverResult:
        """Restore ``names`` (everything under ``prefix`` when empty);
        ``acl_start``: where the image's Pass V record is (a direct access
        recover reads it too, for the wanted files' xattrs it holds)."""
        with tempfile.TemporaryDirectory(prefix="pyndmpd-recover-", dir=self.spool_dir) as spool:
            image = os.path.join(spool, "image")
            front = _front(names) if direct and names else None
            reader = _ImageRanges(fetch)
            notes: list[str] = []
            with open(image, "wb") as out:
                if front is None:
                    reader.copy_rest(0, out)
                else:
                    _spool_direct(reader, names, front, acl_start, out, image, notes)
            messages: list[str] = []
            # the positions are the DMA's fh_info (its -J index), not the offset map
            restore = Restore(VolumeInput(image), RestoreOptions(file_history=False), warn=messages.append,
                              tell=messages.append)
            restored = [False] * len(names)
            try:
                restore.read_directories()
                if not names:
                    if not prefix:
                        raise EngineError("nothing to restore into: no name list and no PREFIX")
                    os.makedirs(prefix, exist_ok=True)
                    restore.extract_read(prefix, [])
                else:
                    restored = self._extract_names(restore, names)
            except DumpError as exc:
                raise EngineError(exc.message) from None
            # A wanted name the image does not bring is reported per name (LOG_FILE
            # FAILED_NOT_FOUND); only other trouble fails the whole recover.
            failed = restore.error_count > len(restore.not_found)
            return RecoverResult(restored, messages, failed, reader.bytes, reader.requests, notes)

    def _extract_names(self, restore: Restore, names: list[RecoverName]) -> list[bool]:
        """Each name under the directory its destination implies (a renamed
        one through a scratch directory next to its destination)."""
        targets: dict[str, list[tuple[int, str]]] = {}
        renames: list[tuple[int, str, str]] = []
        for i, name in enumerate(names):
            original = name.original.strip("/")
            destination = os.path.normpath(name.destination)
            if not original:
                targets.setdefault(destination, []).append((i, "."))
            elif destination.endswith("/" + original):
                targets.setdefault(destination[:-len(original) - 1] or "/", []).append((i, original))
            else:
                renames.append((i, original, destination))
        restored = [False] * len(names)
        wanted: list[tuple[str, list[tuple[int, str]]]] = list(targets.items())
        scratch: list[tuple[int, str, str, str]] = []
        for i, original, destination in renames:
            parent = os.path.dirname(destination) or "/"
            os.makedirs(parent, exist_ok=True)
            tmp = tempfile.mkdtemp(prefix=".pyndmpd-", dir=parent)
            scratch.append((i, original, destination, tmp))
            wanted.append((tmp, [(i, original)]))
        first = True
        for target, items in wanted:
            found = [(i, o, ino) for i, o in items if (ino := restore.lookup(o)) is not None]
            if not found:
                continue
            if not first:
                restore.read_again()
            first = False
            os.makedirs(target, exist_ok=True)
            existed = {i: os.path.lexists(os.path.join(target, o)) for i, o, _ino in found}
            restore.extracted = Extracted()
            restore.extract_read(target, [o for _, o, _ino in found])
            done = restore.extracted
            for i, original, ino in found:
                # written by this restore: a file it reports, or a name that was not there before
                restored[i] = (ino in done.leaves or ino in done.dirs
                               or (not existed[i] and os.path.lexists(os.path.join(target, original))))
        for i, original, destination, tmp in scratch:
            source = os.path.join(tmp, original)
            if restored[i]:
                try:
                    os.replace(source, destination)
                except OSError:
                    restored[i] = False
            _remove_tree(tmp)
        return restored

    # -- file history of an image ------------------------------------------------------
    def list_history(self, fetch: Fetch) -> list[FileEntry]:
        """The names and inodes of an image, for DATA_START_RECOVER_FILEHIST."""
        with tempfile.TemporaryDirectory(prefix="pyndmpd-list-", dir=self.spool_dir) as spool:
            image = os.path.join(spool, "image")
            with open(image, "wb") as out:
                for chunk in fetch(0, None):
                    out.write(chunk)
            restore = Restore(VolumeInput(image), RestoreOptions(file_history=False))
            try:
                restore.read_directories()
            except DumpError as exc:
                raise EngineError(exc.message) from None
            stats = _image_stats(image)
            entries = [FileEntry(ROOT_NODE, ROOT_NODE, ".", stats.get(ROOT_NODE), directory=True)]
            for parent, name, ino in restore.tree_edges():
                entries.append(FileEntry(ino, parent, os.fsdecode(name), stats.get(ino), directory=ino in restore.dirs))
            return entries


def _image_stats(image: str) -> dict[int, NodeStat]:
    """Each inode's attributes, from the TS_INODE headers of an image file."""
    def chunks() -> Iterator[bytes]:
        with open(image, "rb") as f:
            while chunk := f.read(_SEND_CHUNK):
                yield chunk[:len(chunk) // TP_BSIZE * TP_BSIZE]

    stats: dict[int, NodeStat] = {}
    for record in walk_chunks(chunks(), on_damage=lambda _damage: None):
        header = record.header
        if header.c_type == RecordType.TS_INODE and not header.is_extattr:
            d = header.c_dinode
            stats[header.c_inumber] = NodeStat(d.mode, d.uid, d.gid, d.size, d.mtime_sec, d.atime_sec,
                                               d.ctime_sec, d.nlink)
        elif header.c_type == RecordType.TS_END:
            break
    return stats


def _remove_tree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _front(names: list[RecoverName]) -> int | None:
    """The bytes of the image's front a direct access recover reads first
    (from the names' ``fh_info``), or ``None`` when no name has a position
    (read the image through)."""
    known = [n.fh_info >> 32 for n in names if n.fh_info != U64_INVALID]
    if not known or not 0 < max(known) < 1 << 32:
        return None
    return max(known) * TP_BSIZE


def _record_end(block: int, ntrec: int) -> int:
    """The byte offset where the dump record (of ``ntrec`` blocks) holding
    ``block`` ends: a read up to there stays inside the image (dump writes
    whole records)."""
    return (block // ntrec + 1) * ntrec * TP_BSIZE


class _ImageRanges:
    """Reads the image forward by byte offset through ``fetch``, one range
    per request, keeping what was fetched past the last piece taken (the
    next piece often starts there)."""

    def __init__(self, fetch: Fetch) -> None:
        self._fetch = fetch
        self._base = 0  # the image offset of _buf[0]
        self._buf = bytearray()
        self.bytes = 0
        self.requests = 0

    def take(self, offset: int, length: int, *, through: int) -> bytes:
        """``image[offset:offset + length]``; what is missing is asked for up
        to ``through`` (at least to the end of the piece)."""
        if not self._base <= offset <= self._base + len(self._buf):
            self._base, self._buf = offset, bytearray()  # a seek
        del self._buf[:offset - self._base]
        self._base = offset
        have = offset + len(self._buf)
        if offset + length > have:
            self.requests += 1
            for chunk in self._fetch(have, max(through, offset + length) - have):
                self._buf += chunk
                self.bytes += len(chunk)
        if len(self._buf) < length:
            raise EngineError(f"the image ends at byte {self._base + len(self._buf)}, inside a record "
                              f"the file history places before byte {offset + length}")
        return bytes(self._buf[:length])

    def copy_rest(self, offset: int, out: BinaryIO) -> None:
        """The image from ``offset`` to its end, to ``out``."""
        self.requests += 1
        for chunk in self._fetch(offset, None):
            out.write(chunk)
            self.bytes += len(chunk)
        self._base, self._buf = 0, bytearray()


def _spool_direct(reader: _ImageRanges, names: list[RecoverName], front: int, acl_start: int | None,
                  out: BinaryIO, image: str, notes: list[str]) -> None:
    """The front, then each wanted file's records (by its ``fh_info``), the
    Pass V record (at ``acl_start``) and an end-of-dump record to ``out``;
    or, when a name cannot be placed, the front and everything after it
    (read through)."""
    out.write(reader.take(0, front, through=front))
    out.flush()
    headers, why = _headers_of(image, names)
    if why is None:
        first = _first_block(image)
        order = header_byte_order(first)
        ntrec = Header.unpack(first, order).c_ntrec
        if not 1 <= ntrec <= MAXNTREC:
            ntrec = NTREC
        for offset, ino in sorted(headers.items()):
            if not _copy_records(reader, offset, order, ntrec, out, lambda h, ino=ino: h.c_inumber == ino
                                 and h.c_type == RecordType.TS_INODE and not h.is_extattr):
                why = f"the position the name list gives inode {ino} is not its file's (a stale index?)"
                break
        else:
            if acl_start is not None and headers and not (acl_start > max(headers) and _copy_records(
                    reader, acl_start, order, ntrec, out, lambda h: h.is_extattr and h.c_extattributes == EXT_PASS5)):
                why = f"ACL_START={acl_start} is not where the image's Pass V record is"
            else:
                out.write(_end_record(first, order))
                return
    notes.append(f"direct access recover: {why}: reading the image through from byte {front}")
    out.seek(front)
    out.truncate()
    reader.copy_rest(front, out)


def _first_block(image: str) -> bytes:
    with open(image, "rb") as f:
        return f.read(TP_BSIZE)


def _headers_of(image: str, names: list[RecoverName]) -> tuple[dict[int, int], str | None]:
    """``{header byte offset: inode}`` of the wanted files, from the front in
    ``image`` (the directories tell each name's inode); or why not: a name
    without a position, a directory (its files have theirs in no name list)."""
    image_front = os.path.getsize(image)
    source = VolumeInput(image)
    try:
        front = Restore(source, RestoreOptions(file_history=False), warn=lambda _line: None,
                        tell=lambda _line: None)
        front.read_directories()
        headers: dict[int, int] = {}
        for name in names:
            ino = front.lookup(name.original.strip("/"))
            if ino is None or ino not in front.dumped:
                continue  # not on the image: the restore says so, name by name
            if ino in front.dirs or not name.original.strip("/"):
                return {}, f"{name.original} is a directory"
            if name.fh_info == U64_INVALID:
                return {}, f"{name.original} has no position (fh_info -1)"
            offset = (name.fh_info & 0xFFFFFFFF) * TP_BSIZE
            if headers.setdefault(offset, ino) != ino or offset < image_front:
                return {}, f"the position of {name.original} is not its file's (a stale index?)"
        return headers, None
    except DumpError as exc:
        raise EngineError(exc.message) from None
    finally:
        source.close()


def _copy_records(reader: _ImageRanges, offset: int, order: ByteOrder, ntrec: int, out: BinaryIO,
                  starts: Callable[[Header], bool]) -> bool:
    """Copy an inode's records from its header at ``offset`` to ``out``:
    that header (which ``starts`` must accept: the file's TS_INODE, or the
    Pass V record), its TS_ADDR and EA records, each with its data, up to
    the next header of anything else; False (nothing copied) when
    ``offset`` holds no such header."""
    block = offset // TP_BSIZE
    ino = None
    while True:
        raw = reader.take(block * TP_BSIZE, TP_BSIZE, through=_record_end(block, ntrec))
        try:
            head = Header.unpack(raw, order)
        except FormatError:
            return ino is not None  # damage after the start: restore reads it and says so
        if ino is None:
            if not starts(head):
                return False
            ino = head.c_inumber
        elif not (head.c_inumber == ino and (head.c_type == RecordType.TS_ADDR
                                             or (head.is_extattr and head.c_extattributes != EXT_PASS5))):
            return True
        count = head.data_block_count()
        out.write(reader.take(block * TP_BSIZE, (1 + count) * TP_BSIZE,
                              through=_record_end(block + 1 + count, ntrec)))
        block += 1 + count


def _end_record(first: bytes, order: ByteOrder) -> bytes:
    """An end-of-dump record (TS_END) of the image whose volume header is ``first``."""
    head = Header.unpack(first, order)
    return head.derive(c_type=RecordType.TS_END, c_inumber=0, c_count=0, c_addr=bytes(512)).pack(order)


class ImageIndex:
    """The file history of a backup, as the dump tells it (a
    :class:`~dumptool.history.FileHistory` observer): each inode's
    attributes, the directories' entries, and where the record holding each
    file's header starts in the stream (for ``fh_info``)."""

    def __init__(self) -> None:
        self.stats: dict[int, NodeStat] = {}
        self.dirs: dict[int, list[tuple[int, bytes]]] = {}
        self.positions: dict[int, int] = {}
        self.first_file: int | None = None
        #: The block of the Pass V record, if the image has one.
        self.pass5: int | None = None
        self.ended = False
        #: A restarted backup's (its stream is a later volume: no position is told, DIRECT=n).
        self.restarted = False

    def begin(self, front: bytes) -> None:
        pass

    def resumed(self, front: bytes, plan: DumpPlan, first: int) -> None:
        """A restarted backup (:mod:`ndmp.restartable`): its file history is
        still the whole image's (the interrupted run sent none), told from
        the plan for what the restart does not write again, without
        positions (the stream is the dump's next volume)."""
        self.restarted = True
        nodes = plan.nodes
        for n, ino in enumerate(plan.directories):
            node = nodes[ino]
            if n < first:  # (from its index on, written again: add_dir tells it)
                size = len(build_directory(ino, node.parent, node.entries or ()))
                self.stats[ino] = NodeStat.of(node)._replace(size=size)
                self.dirs[ino] = [(e.ino, e.name) for e in node.entries or ()]
        for ino in plan.files[:max(0, first - len(plan.directories))]:
            self.stats[ino] = NodeStat.of(nodes[ino])

    def add_dir(self, ino: int, entries: Sequence[Dirent], blocks: bytes) -> None:
        d = Header.unpack(blocks[:TP_BSIZE], ByteOrder.LITTLE).c_dinode  # its size as dumped
        self.stats[ino] = NodeStat(d.mode, d.uid, d.gid, d.size, d.mtime_sec, d.atime_sec, d.ctime_sec, d.nlink)
        self.dirs[ino] = [(e.ino, e.name) for e in entries]

    def add_node(self, ino: int, node: Stat, position: RecordPosition) -> None:
        self.stats[ino] = NodeStat.of(node)
        self.positions[ino] = position.block  # one volume: the header's block in the stream
        if self.first_file is None:
            self.first_file = position.block

    def add_pass5(self, ino: int, position: RecordPosition) -> None:
        self.pass5 = position.block

    def finish(self, trailer: bytes) -> None:
        self.ended = True

    def close(self) -> None:
        pass

    def history(self) -> list[FileEntry]:
        """The root (``.``) first, then every dumped name, directory by
        directory from the root; fh_info for every non-directory."""
        front = self.first_file  # everything before the first file's header: maps and directories
        entries = [FileEntry(ROOT_NODE, ROOT_NODE, ".", self.stats.get(ROOT_NODE), directory=True)]
        seen = {ROOT_NODE}
        todo = [ROOT_NODE]
        while todo:
            parent = todo.pop(0)
            for ino, name in self.dirs.get(parent, ()):
                if ino not in self.stats:
                    continue  # not on this image (an incremental's unchanged file)
                is_dir = ino in self.dirs
                fh_info = U64_INVALID
                where = self.positions.get(ino)
                if where is not None and front is not None and where < 1 << 32 and front < 1 << 32 \
                        and not self.restarted:
                    fh_info = front << 32 | where
                entries.append(FileEntry(ino, parent, os.fsdecode(name), self.stats[ino], fh_info, directory=is_dir))
                if is_dir and ino not in seen:
                    seen.add(ino)
                    todo.append(ino)
        return entries


def history_stats(entries: Iterable[FileEntry]) -> dict[int, FileEntry]:
    """One entry per node (the first name of each), for ADD_NODE."""
    nodes: dict[int, FileEntry] = {}
    for entry in entries:
        nodes.setdefault(entry.node, entry)
    return nodes
