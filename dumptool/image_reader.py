"""One pass over the records of a dump image (restore's tape.c: the
reading side of the image).

:class:`ImageReader` walks the records the volumes bring
(:func:`format.walk_chunks`), one record of look-ahead: first the front of
the image (the volume header, the two inode maps and every directory,
restore's first phase), then each inode's records as the extraction or the
compare asks (its TS_ADDR continuations, its extended attributes).  A
damaged image is resynced at the next good header and what was lost is an
error; the end of the image (TS_END) is remembered.
"""

from __future__ import annotations

import itertools
import os
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from .errors import FormatError, MediumError
from .format import (
    DR_EXTATTRIBUTES,
    ROOTINO,
    TP_BSIZE,
    ByteOrder,
    Damage,
    Header,
    QfaMap,
    RecordType,
    Segment,
    directory_entries,
    iter_file_slices,
    other_dump,
    unpack_xattr_payload,
    walk_chunks,
)
from .format.pass5 import EXT_PASS5, Entry, read_pass5
from .directories import DirNode, EveryInode, ImageTree, InodeMap, Inodes
from .restore_report import Report, RestoreError
from .symtab import ResumePoint
from .volume_input import VolumeInput

if TYPE_CHECKING:
    from .offsetmap import HistoryLocator

#: Largest EA payload restore applies (dump-format.md 7.1).
XATTR_MAXSIZE = 4096

_TS_ADDR = int(RecordType.TS_ADDR)


class LookAhead:
    """Records with one record of look-ahead."""

    __slots__ = ("_it", "_next", "_done")

    def __init__(self, records: Iterator[Segment]) -> None:
        self._it = records
        self._next: Segment | None = None
        self._done = False

    @property
    def looked_at(self) -> Segment | None:
        """The record :meth:`peek` already read, if any (reads nothing)."""
        return self._next

    def retarget(self, records: Iterator[Segment]) -> None:
        """Drop the look-ahead and read on from *records* (after a seek)."""
        self._it = records
        self._next = None
        self._done = False

    def peek(self) -> Segment | None:
        rec = self._next
        if rec is None and not self._done:
            rec = self._next = next(self._it, None)
            self._done = rec is None
        return rec

    def pop(self) -> Segment | None:
        rec = self._next
        if rec is None:
            if self._done:
                return None
            rec = next(self._it, None)
            self._done = rec is None
            return rec
        self._next = None
        return rec


class ImageReader:
    """The records of one image from *source*, read once front to back
    (:meth:`start_again` begins another pass); what goes wrong is said to
    *report*.  After :meth:`read_front`: :attr:`header`, the maps
    :attr:`in_use` (TS_CLRI) and :attr:`dumped` (TS_BITS), and the
    directories (:attr:`dirs`, named by :attr:`tree`)."""

    def __init__(self, source: VolumeInput, report: Report) -> None:
        self.input = source
        self.report = report
        source.on_damage = report.error
        self.header: Header | None = None
        # only ever asked ``ino in ...``: a set or an :class:`InodeMap`
        self.in_use: Inodes = set()
        self.dumped: Inodes = set()
        self.dirs: dict[int, DirNode] = {}
        self.tree = ImageTree(self.dirs, self.dumped)
        #: the walk met TS_END
        self.ended = False
        #: damage met so far (an inode whose data it cuts says so)
        self.damage_count = 0
        #: the blocks of the record under way (what a checkpoint saves of a record a volume change cuts)
        self.held: list[bytes | memoryview] = []
        self._dirs_done = False
        #: the entries of the image's Pass V record (:mod:`dumptool.format.pass5`), once read
        self.pass5: list[Entry] = []
        #: whether the walk met a Pass V record
        self.pass5_seen = False
        #: where Pass V's big values are kept (:class:`~dumptool.format.pass5.Spooled`), once one is read
        self._spool: "tempfile._TemporaryFileWrapper | None" = None
        #: a seek landed where the map did not say: no more seeks
        self.history_stale = False
        self.records = LookAhead(self.walk(source.chunks()))

    def walk(self, chunks: Iterable[bytes | memoryview]) -> Iterator[Segment]:
        """The records of *chunks*; :attr:`held` follows the one under way."""
        self.held = []
        return walk_chunks(chunks, on_damage=self._on_damage, held=self.held)

    def _on_damage(self, damage: Damage) -> None:
        self.damage_count += 1
        what = ""
        if damage.inode:
            known = self.tree.names().get(damage.inode, []) if self._dirs_done else []
            what = f" while reading inode {damage.inode}" + (f" ({os.fsdecode(known[0])})" if known else "")
        if damage.truncated:
            self.report.error(f"{damage.reason}{what}: the image is truncated; {damage.skipped} block(s) lost")
        else:
            self.report.error(f"{damage.reason}{what}; resynced at the next good header, "
                              f"{damage.skipped} block(s) lost")

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

    # -- the front: volume header, maps, directories -------------------------------------

    def read_front(self) -> None:
        """Read TS_TAPE, the maps and every directory (restore's first phase)."""
        try:
            first = self.records.pop()
        except FormatError as exc:
            raise RestoreError(f"{self.input.name}: not a dump image ({exc.message})") from None
        if first is None or first.header.c_type != RecordType.TS_TAPE:
            raise RestoreError(f"{self.input.name}: not a dump image (no volume header)")
        if first.header.c_volume != 1:
            raise RestoreError(f"{self.input.name} is volume {first.header.c_volume} of the dump, not volume 1")
        self.header = first.header
        for rtype, what in ((RecordType.TS_CLRI, "file removal list"), (RecordType.TS_BITS, "file dump list")):
            rec = self.records.peek()
            while rec is not None and (rec.header.c_type == RecordType.TS_END or rec.header.c_type not in (
                    RecordType.TS_CLRI, RecordType.TS_BITS, RecordType.TS_INODE)):
                self.records.pop()
                if rec.header.c_type == RecordType.TS_END and self.records.peek() is None:
                    self.report.warn("empty dump image")
                    self.ended = True
                    return
                self.report.error(f"{self.input.name}: a {rec.header.c_type.name} record at block {rec.index}, before "
                                  f"the {what}: damaged; skipped")
                rec = self.records.peek()
            if rec is None:
                raise RestoreError(f"{self.input.name}: cannot find the {what}: damaged image")
            if rec.header.c_type != rtype:
                # lost to damage (the walk said what it skipped): go on without
                # it, as restore does, taking every inode as in the map
                if rtype == RecordType.TS_CLRI:
                    self.report.error(f"{self.input.name}: the {what} is lost to damage: every inode is taken as "
                                      "in use (-r removes nothing)")
                    self.in_use = EveryInode()
                else:
                    self.report.error(f"{self.input.name}: the {what} is lost to damage: every file named in the "
                                      "directories is looked for on the image")
                    self.dumped = self.tree.dumped = EveryInode()
                continue
            self.records.pop()
            inos = InodeMap(bytes(rec.data))
            if rtype == RecordType.TS_CLRI:
                self.in_use = inos
            else:
                self.dumped = self.tree.dumped = inos
        while (rec := self.records.peek()) is not None:
            h = rec.header
            if h.c_type != RecordType.TS_INODE or h.is_extattr or not stat.S_ISDIR(h.c_dinode.mode):
                if h.c_type in (RecordType.TS_ADDR,) or h.is_extattr:
                    self.records.pop()  # orphan of a damaged header
                    continue
                break
            self.records.pop()
            parts = [rec] + list(self.same_inode_addrs(h.c_inumber))
            size = h.c_dinode.size
            # every block (its last one whole: real dump's cut 255-byte name runs on past di_size)
            data = b"".join(block if block is not None else bytes(TP_BSIZE)
                            for offset, block in iter_file_slices(parts) if offset < size)
            order = self.input.byte_order
            lost: list[int] = []
            try:
                entries = directory_entries(data, order, size=size, lost=lost)
            except FormatError as exc:
                self.report.error(f"directory inode {h.c_inumber}: {exc.message}; "
                                  "the entries that can be read are kept")
                del lost[:]
                entries = directory_entries(data, order, strict=False, skip_bad_entries=True, size=size, lost=lost)
            if lost:
                self.report.error(f"directory inode {h.c_inumber}: the 255-byte name of inode(s) "
                                  f"{', '.join(map(str, lost))} was overwritten by the dump (a fault of Linux dump "
                                  "0.4b47); restored as #INODE")
            self.dirs[h.c_inumber] = DirNode(h.c_dinode, entries, self.xattrs_after(h.c_inumber))
        if ROOTINO not in self.dirs:
            raise RestoreError(f"{self.input.name}: the root directory is not on the image")
        self._dirs_done = True

    def same_inode_addrs(self, ino: int) -> Iterator[Segment]:
        while (rec := self.records.peek()) is not None and rec.head.c_type == RecordType.TS_ADDR \
                and rec.head.c_inumber == ino:
            self.records.pop()
            yield rec

    def xattrs_after(self, ino: int) -> list[tuple[bytes, bytes]]:
        found: list[tuple[bytes, bytes]] = []
        while (rec := self.records.peek()) is not None and rec.head.c_inumber == ino \
                and rec.head.c_flags & DR_EXTATTRIBUTES and rec.head.c_type == RecordType.TS_INODE:
            self.records.pop()
            if rec.header.c_extattributes == EXT_PASS5:
                self.take_pass5(rec)
                continue
            size = rec.head.size
            if size > XATTR_MAXSIZE:
                self.report.warn(f"inode {ino}: extended-attribute record of {size} bytes is too big, skipped")
                continue
            try:
                found += unpack_xattr_payload(bytes(rec.data[:size]))
            except FormatError as exc:
                self.report.warn(f"inode {ino}: extended attributes not restored: {exc.message}")
        return found

    def take_pass5(self, rec: Segment) -> None:
        """Read the Pass V record *rec* starts (taken from the records) and its continuations,
        its entries taken as the blocks come: a big value goes to the spool file in chunks
        (:func:`~dumptool.format.pass5.read_pass5`), never whole in memory."""
        parts = self._pass5_data(rec)
        self.pass5_seen = True
        if self._spool is None:
            self._spool = tempfile.NamedTemporaryFile(prefix="pyrestore-pass5-")
        try:
            for entry in read_pass5(parts, self._spool):
                self.pass5.append(entry)
        except FormatError as exc:
            self.report.error(f"the Pass V record (ACLs, streams and filer records) cannot be read: {exc.message}")
        except OSError as exc:
            self.report.error(f"the Pass V record (ACLs, streams and filer records) cannot be read: "
                              f"spool file {self._spool.name}: {exc.strerror}")
        for _ in parts:  # the continuations the entries did not need (padding)
            pass

    def _pass5_data(self, rec: Segment) -> Iterator[bytes]:
        """The payload of the Pass V record *rec* starts, a record's data at a time (holes as
        zeros, missing blocks at the end too, nothing past ``di_size``); its continuations
        are taken from the records as they are needed."""
        size = rec.head.size
        at = 0
        for part in itertools.chain((rec,), self.same_inode_addrs(rec.head.c_inumber)):
            data, k, pieces = part.data, 0, []
            for entry in part.header.addr_entries:
                if entry:
                    pieces.append(data[k:k + TP_BSIZE])
                    k += TP_BSIZE
                else:
                    pieces.append(bytes(TP_BSIZE))
            chunk = b"".join(pieces)[:max(0, size - at)]
            at += len(chunk)
            if chunk:
                yield chunk
        if at < size:
            yield bytes(size - at)

    def skip_inode(self, ino: int) -> None:
        """Read past the rest of inode *ino*'s records (its TS_ADDR and EA records)."""
        for _ in self.same_inode_addrs(ino):
            pass
        self.xattrs_after(ino)

    def next_addr(self, ino: int) -> Segment | None:
        """The next record if it is a TS_ADDR of inode *ino* (taken), else ``None``."""
        records = self.records
        rec = records.peek()
        if rec is not None and rec.head.c_type == _TS_ADDR:
            if rec.head.c_inumber != ino:
                # restore reads a TS_ADDR as the continuation of the inode before, whatever it names
                self.report.error(f"inode {ino}: its continuation record at block {rec.index} names inode "
                                  f"{rec.head.c_inumber} (a damaged header): its data is taken as inode {ino}'s")
            return records.pop()
        return None

    def check_end(self, *, read_rest: bool) -> None:
        """With *read_rest*, read on to TS_END; an image without one is an error."""
        if read_rest and not self.ended:
            while (rec := self.records.pop()) is not None:
                if rec.header.c_type == RecordType.TS_END:
                    self.ended = True
                    break
        if read_rest and not self.ended:
            self.report.error(f"{self.input.name}: the image ends without an end-of-dump record: "
                              "it is truncated; everything before the end was restored")

    # -- -Q: straight to a wanted file ---------------------------------------------------

    def check_qfa_date(self, qfa: QfaMap) -> None:
        """:class:`RestoreError` unless the QFA map *qfa* is of this image's dump."""
        if self.header is not None and qfa.date != self.header.c_date:
            raise RestoreError(f"different QFA/dumpdates detected: the QFA file is of the dump of "
                               f"{time.ctime(qfa.date)}, the image of {time.ctime(self.header.c_date)}")

    def seek_to_wanted(self, qfa: QfaMap, wanted: list[int], leaf_names: dict[int, list[bytes]]) -> None:
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
        ahead = self.records.looked_at
        if ahead is not None and not (ahead.header.c_type == RecordType.TS_INODE and not ahead.header.is_extattr
                                      and ahead.header.c_inumber < wanted[-1]):
            return
        if self.history_stale:
            return
        self._seek_to(qfa, qfa.position_for(wanted[-1]))

    def seek_to_pass5(self, where: QfaMap | HistoryLocator | None) -> bool:
        """After the last wanted file of a direct-access ``-x``: True to read on to
        the end, which takes the image's Pass V record -- from there when *where* (a
        ``-Q`` map or the file history) says where it starts, from here when nothing
        does (*where* None, or a stale history: the image is read whole); False when
        *where* says the image has none."""
        if where is None or self.history_stale:
            return True
        if where.pass5 is None:
            return where.pass5_unplaced
        self._seek_to(where, where.pass5)
        return True

    def _seek_to(self, qfa: QfaMap, entry: "object | None") -> None:
        """The seek to *entry*'s record (a QFA or file history entry), when it lies ahead."""
        source = self.input
        if entry is None or entry.volume < source.volume:
            return
        checked = getattr(qfa, "falls_back", False)  # the file history (not a -Q map): checked where it lands
        try:
            if entry.volume > source.volume:  # straight to that volume, the ones between unread
                if not source.jump_to_volume(entry.volume):
                    return
                address = qfa.address_of(entry, source.volume_starts.get(entry.volume), tape=source.is_tape)
                if address is None:
                    self.records.retarget(self.walk(source.after_seek()))
                    return
                source.seek_forward(address)
            else:
                address = qfa.address_of(entry, source.volume_starts.get(entry.volume), tape=source.is_tape)
                if address is None or not source.seek_forward(address):
                    return
        except MediumError:
            if not checked:
                raise
            self._history_is_stale(qfa.path)
            return
        self.report.verbose(f"seek to inode {entry.ino} at {address} of volume {entry.volume}")
        self.records.retarget(self.walk(source.after_seek()))
        if checked:
            try:
                landed = self.records.peek()
            except (MediumError, FormatError):
                landed = None
            if landed is None or landed.header.c_inumber > entry.ino:
                self._history_is_stale(qfa.path)

    def _history_is_stale(self, name: object) -> None:
        """A seek did not land where the map said: warn once and read the
        image whole from its start (the files extracted so far stay)."""
        self.history_stale = True
        self.report.warn(f"{name} does not match the image (stale file history): reading the whole image")
        try:
            self.input.start_again()
        except RestoreError:
            raise RestoreError(f"{name} does not match the image and the image cannot be read again from its "
                               "start here: restore with --no-file-history") from None
        self.records.retarget(self.walk(self.input.chunks()))

    # -- other passes ----------------------------------------------------------------------

    def start_again(self) -> None:
        """Start a new pass from the image's first block (``-i``'s next
        extract): the header, maps and directories are read once more.
        :class:`RestoreError` when the input cannot go back (tape, pipe)."""
        self.input.start_again()
        self.records = LookAhead(self.walk(self.input.chunks()))
        self.ended = False
        self.dirs, self._dirs_done = {}, False
        self.tree = ImageTree(self.dirs, self.dumped)
        self.read_front()

    def resume_at(self, rp: ResumePoint) -> None:
        """Go on with the volume a ``-r`` stopped before (:class:`ResumePoint`
        *rp*): the input must be that volume of that dump; the walk starts
        with the blocks of the record the volume change cut."""
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
        other = other_dump(head, rp.tape) if rp.tape is not None else ""
        if other:  # another dump started in the same second
            raise RestoreError(f"{name} is a volume of another dump than the restore to resume ({other})")
        if head.c_volume != rp.volume:
            raise RestoreError(f"{name} is volume {head.c_volume}; the restore stopped before volume "
                               f"{rp.volume}: resume with that one")
        self.header = head
        self.input.volume = rp.volume
        self.input.blocks_read = None  # counted from volume 1: unknown from here
        rest = [chunk[TP_BSIZE:]] if chunk is not None and len(chunk) > TP_BSIZE else []
        self.records = LookAhead(self.walk(itertools.chain(rp.head, rest, chunks)))

    def held_blocks(self) -> list[bytes]:
        """The 1 KiB blocks of the record under way (whole blocks each)."""
        return [bytes(p[at:at + TP_BSIZE]) for p in self.held for at in range(0, len(p), TP_BSIZE)]
