"""File history: what a dump tells of the files it writes, as it writes them.

A :class:`FileHistory` observer hears, in image order, the front of the
image (volume header and maps), each directory (its entries and its
blocks), each other inode with the position of its first record, and the
trailer.  Two implement it here: :class:`QfaWriter` (``dump -Q``: the
record each file starts in, for restore's quick file access) and
:class:`TocArchive` (``dump -A``: the image without file data, which
``restore -t/-i -A`` read instead of the medium).  The offset map, restartable
dumps and NDMP's file history are meant to be observers too.

Blocks handed to observers are as an uncompressed image holds them (a
header's ``DR_COMPRESSED`` off), before any compression.

Pass V (:mod:`dumptool.format.pass5`): an observer that has a method
``add_pass5(ino, position)`` is told, once, where the Pass V record starts
(``ino``: its carrier, the last file; ``position``: a :class:`RecordPosition`),
just before it is written, so that a direct-access restore can seek to it
(ONTAP's ``ACL_START``).  The method is optional: the dump asks for it with
``getattr``, so observers without it need no change.

A restarted dump (:mod:`dumptool.restart`) writes no front and only part
of the image: it keeps the observers that have a method
``resumed(front, plan, first)`` (the offset map, NDMP's index) and calls it
instead of ``begin`` (``front``: the volume header alone; ``plan``: the
dump's :class:`~dumptool.traverse.DumpPlan`; ``first``: the index, in the
order directories then files, of the first inode written again), then
goes on as usual; the others are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Callable, Protocol

from .errors import DumpError
from .format import Dirent, QfaEntry, note_pass5, qfa_line, qfa_preamble
from .traverse import Stat

if TYPE_CHECKING:
    from .medium import RecordWriter


def close_quietly(file: "IO | None") -> None:
    """Close *file* (None: nothing) when a dump ends another way: what it
    kept is of no use any more, so a failing close says nothing."""
    if file is not None:
        try:
            file.close()
        except OSError:
            pass


def resume_histories(observers: Sequence[object], heard_by: list, front: bytes, plan: object, first: int) -> None:
    """A restart's file history: of ``observers`` (a dump's ``history``), those
    that can go on (with ``resumed``: the offset map its context kept, NDMP's
    index) join ``heard_by`` (the writer's) and are told of the image and of
    what the restart does not write again.  The others (-A, -Q) are left out:
    they would tell half an image."""
    going_on = [h for h in observers if hasattr(h, "resumed")]
    heard_by.extend(going_on)
    for history in going_on:
        history.resumed(front, plan, first)  # type: ignore[attr-defined]


class RecordPosition:
    """Where an inode's first record goes: ``volume``, ``block`` (the
    ``c_tapea`` of its header), ``record`` (the record's number in the
    volume, from 0) and :attr:`address` (where the record starts as the
    medium counts: a tape's logical block, a file's byte offset; asked of
    the medium only when an observer wants it)."""

    __slots__ = ("volume", "block", "record", "_writer")

    def __init__(self, writer: RecordWriter, block: int | None = None) -> None:
        """``block``: ``writer.next_block``, when the caller has it at hand (one property fewer)."""
        self.volume = writer.volume
        self.block = writer.next_block if block is None else block
        self.record = writer.record_index
        self._writer = writer

    @property
    def address(self) -> int | None:
        """None where the medium cannot tell (a pipe)."""
        return self._writer.address

    @property
    def step(self) -> int | None:
        """How far apart two records are as :attr:`address` counts them
        (a tape: 1 block; an uncompressed file: the record size); None
        where records differ in size (a compressed image)."""
        writer = self._writer
        if writer.compressed:
            return None
        return 1 if writer.sink.is_tape else writer.record_size

    @property
    def is_tape(self) -> bool:
        return self._writer.sink.is_tape

    @property
    def tape_file(self) -> int:
        """The tape file number of this volume on its cartridge (0 on a file)."""
        return self._writer.position.file_number if self._writer.sink.is_tape else 0

    @property
    def medium(self) -> str:
        """The name of the medium the record goes to."""
        return self._writer.sink.name


class FileHistory(Protocol):
    """An observer of a dump's files, told of each as it is written."""

    def begin(self, front: bytes) -> None:
        """The image's first blocks: the volume header and the two inode maps."""
        ...

    def add_dir(self, ino: int, entries: Sequence[Dirent], blocks: bytes) -> None:
        """Directory ``ino`` written: its ``entries`` (without ``.`` and
        ``..``) and its blocks (headers and data, not its xattrs)."""
        ...

    def add_node(self, ino: int, node: Stat, position: RecordPosition) -> None:
        """Inode ``ino`` (not a directory) about to be written, its header first at ``position``."""
        ...

    def finish(self, trailer: bytes) -> None:
        """The dump is complete (``trailer``: its ``TS_END`` blocks); a
        failure that makes the history useless raises :class:`DumpError`."""
        ...

    def close(self) -> None:
        """Release what is held (after :meth:`finish`, or when the dump failed)."""
        ...


class QfaWriter:
    """``dump -Q FILE``: a line for each record a file's header starts in
    (the first inode of each record), for ``restore -Q``."""

    def __init__(self, name: str, date: int, *, say: Callable[[str], None], warn: Callable[[str], None]) -> None:
        self.name = name
        self.warn = warn
        self.date = date
        self._last: tuple[int, int] | None = None  # (volume, position) of the last line
        self._pass5: QfaEntry | None = None  # where Pass V starts: the fourth line, at the end
        say(f"writing QFA positions to {name}")
        try:
            self._file: IO[str] | None = open(name, "w", encoding="ascii")
            self._file.write(qfa_preamble(date))
        except OSError as exc:
            raise DumpError(f"cannot write the QFA file {name}: {exc.strerror}") from None

    def begin(self, front: bytes) -> None:
        pass

    def add_dir(self, ino: int, entries: Sequence[Dirent], blocks: bytes) -> None:
        pass

    def add_node(self, ino: int, node: Stat, position: RecordPosition) -> None:
        if self._file is None:
            return
        address = position.address
        if address is None:
            self.warn(f"{position.medium}: the medium cannot tell its position: the QFA file {self.name} stops here")
            self.close()
            return
        where = (position.volume, address)
        if where == self._last:
            return  # dump names the first inode of a record
        self._last = where
        try:
            self._file.write(qfa_line(QfaEntry(ino, *where)))
        except OSError as exc:
            raise DumpError(f"cannot write the QFA file {self.name}: {exc.strerror}") from None

    def add_pass5(self, ino: int, position: RecordPosition) -> None:
        """Pass V starts at *position* (carrier *ino*): said in the map's fourth line when it ends."""
        if self._file is not None and position.address is not None:
            self._pass5 = QfaEntry(ino, position.volume, position.address)

    def finish(self, trailer: bytes) -> None:
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except OSError as exc:
                raise DumpError(f"cannot write the QFA file {self.name}: {exc.strerror}") from None
            if self._pass5 is not None:
                self._write_pass5(self._pass5)

    def _write_pass5(self, pass5: QfaEntry) -> None:
        """Pass V's position into the map's fourth line; when that fails the map
        stays as it is (pyrestore -Q then finds Pass V another way): one warning."""
        try:
            note_pass5(self.name, self.date, pass5)
        except OSError as exc:
            self.warn(f"cannot note Pass V's position in the QFA file {self.name}: {exc.strerror}")

    def close(self) -> None:
        close_quietly(self._file)
        self._file = None


class TocArchive:
    """``dump -A FILE``: the blocks of the volume header, the maps, the
    directories and the end, as they go on the medium but never
    compressed.  A write error stops the archive with a warning; the dump
    goes on."""

    def __init__(self, name: str, *, say: Callable[[str], None], warn: Callable[[str], None]) -> None:
        self.name = name
        self.say = say
        self.warn = warn
        self._done = False
        try:
            self._file: IO[bytes] | None = open(name, "wb")
        except OSError as exc:
            raise DumpError(f"Cannot open {name} for writing: {exc.strerror}") from None

    def begin(self, front: bytes) -> None:
        self._write(front)

    def add_dir(self, ino: int, entries: Sequence[Dirent], blocks: bytes) -> None:
        self._write(blocks)

    def add_node(self, ino: int, node: Stat, position: RecordPosition) -> None:
        pass

    def finish(self, trailer: bytes) -> None:
        self._write(trailer)
        file, self._file = self._file, None
        if file is None:
            return
        try:
            file.close()
        except OSError as exc:
            self.warn(f"error writing archive file {self.name}: {exc.strerror}")
            return
        self._done = True

    def close(self) -> None:
        """Says "Archiving dump to FILE" once the archive is complete."""
        close_quietly(self._file)
        self._file = None
        if self._done:
            self._done = False
            self.say(f"Archiving dump to {self.name}")

    def _write(self, data: bytes) -> None:
        if self._file is None or not data:
            return
        try:
            self._file.write(data)
        except OSError as exc:
            self.warn(f"error writing archive file {self.name}: {exc.strerror}; it stops here")
            close_quietly(self._file)
            self._file = None
