"""The offset map: where each file of a dump starts on the medium (file history).

Every dump (``pydump``, and the NDMP engine's, which runs the same
:class:`~dumptool.dump.Dump`) writes one through :class:`OffsetMapWriter`, a
:class:`~dumptool.history.FileHistory` observer, into the state folder beside
the dumpdates: :func:`history_dir`, ``<state dir>/history`` (the folder of
:func:`dumptool.sessions.state_dir`: ``/var/lib/snapdump`` or
``$SNAPDUMP_STATE_DIR``).  The map is named by :func:`image_id` (and the kind of medium), made from
the image's volume header alone (any volume's), so ``pyrestore -x`` finds it
by itself and goes straight to each wanted file's record
(:class:`HistoryLocator`).  NDMP's file history (FH ``add_dir``/``add_node``
with ``fh_info``) hears the same observer calls (``ndmp.engine.ImageIndex``).

The API for others (issue 14's restartable dumps, the engine's Pass V):

* ``OffsetMap.find(header)`` -> the map of an image (None: none kept);
  ``.check(header)`` raises :class:`StaleHistory` unless it is that image's;
  ``.entry(ino)`` -> :class:`Entry` (volume, tape_file, record, block,
  address, size, path) by bisection; ``.entries()`` all, in inode order;
  ``.meta`` (first line), ``.end`` (last line, with ``extra``);
* ``mark_position(image_writer.histories, name, RecordPosition(writer))``:
  a named position that is not a file's (Pass V records), kept in the end
  line's ``extra``.

The format (``<image id>.<block|byte|pipe>.fh``, version 1): a text file written as the dump
goes, sorted by inode number (dump writes inodes in ascending order):

* line 1: ``# snapdump file history 1 {JSON}``: the image: ``date``,
  ``ddate``, ``level``, ``filesys``, ``host``, ``label``, ``ntrec`` (the
  volume header's), ``compressed``, ``unit`` (``"byte"``: addresses are byte
  offsets in a file; ``"block"``: a tape drive's logical block,
  ``MTIOCPOS``; ``null``: a pipe, none);
* one line per non-directory inode, tab-separated:
  ``ino volume tape_file record block address size path``: the volume (from
  1), the tape file number of that volume on its cartridge (0 on a file),
  the record (from 0, in that volume) holding the inode's header, the
  header's block number (``c_tapea``), the record's address (``-`` when
  unknown), the file's size and its first path (``./a/b``; a backslash, tab
  or newline in it escaped as ``\\\\``, ``\\t``, ``\\n``);
* last line: ``# end {JSON}``: ``files`` (node lines), ``volumes``,
  ``sorted``, ``unit`` and ``extra``: named positions other than files, each
  ``{volume, tape_file, record, block, address}``.

The map is written as ``<id>.fh.<pid>.part`` and renamed whole once the dump
ends: a dump that fails leaves none.  Why text: one buffered ``write`` per
file (about 3 us a file measured here: 3 s for a million-file dump), no
database to open, greppable; and a lookup bisects the file's bytes through
``mmap`` (a thousand lookups in a million-line map take 0.04 s here).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .errors import DumpError, FormatError
from .format import ROOTINO, TP_BSIZE, Dirent, Header, header_byte_order
from .format.constants import DR_COMPRESSED
from .history import RecordPosition
from .traverse import DumpPlan, Stat

#: The first words of a map's first line.
MAGIC = b"# snapdump file history 1 "
_END = b"# end "
#: The file name's extension.
SUFFIX = ".fh"


def final_path(path: Path, unit: str | None) -> Path:
    """``<id>.<unit>.fh``: the map of a dump to a tape (``block``), a file
    (``byte``) or a pipe (``pipe``)."""
    return path.with_name(f"{path.name[:-len(SUFFIX)]}.{unit or 'pipe'}{SUFFIX}")


def history_dir() -> Path:
    """Where the offset maps live: ``<state dir>/history``."""
    from .sessions import state_dir  # the state folder's rules live there

    return state_dir() / "history"


def image_id(header: Header) -> str:
    """The id of the image whose volume header (``TS_TAPE``) is *header*: its
    dump date, level, and a digest of host, file system and label (the same
    on every volume of the image, so any volume names it)."""
    digest = hashlib.sha1(b"\0".join((header.c_host, header.c_filesys, header.c_label))).hexdigest()[:12]
    return f"{header.c_date}-L{header.c_level}-{digest}"


#: Whether a name needs escaping: one search (``b"\\" in path`` tries the bytes as an int
#: first, a TypeError raised and cleared each time: three of them cost more than the line).
_NEEDS_ESCAPE = re.compile(rb"[\\\t\n]").search


def _escape(path: bytes) -> bytes:
    if _NEEDS_ESCAPE(path) is not None:
        path = path.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\n", b"\\n")
    return path


def _unescape(text: bytes) -> bytes:
    if b"\\" not in text:
        return text
    out, i = bytearray(), 0
    while i < len(text):
        c = text[i:i + 1]
        if c == b"\\" and i + 1 < len(text):
            out += {b"t": b"\t", b"n": b"\n"}.get(text[i + 1:i + 2], text[i + 1:i + 2])
            i += 2
        else:
            out += c
            i += 1
    return bytes(out)


@dataclass(frozen=True)
class Entry:
    """Where inode ``ino``'s first record is: ``volume`` (from 1), the
    ``tape_file`` of that volume, its ``record`` in the volume (from 0),
    ``block`` (``c_tapea``) and ``address`` (the medium's: a byte offset or
    a tape's logical block; None unknown), the file's ``size``."""

    ino: int
    volume: int
    tape_file: int
    record: int
    block: int
    address: int | None
    size: int = 0
    path: bytes = b""


class OffsetMapWriter:
    """The :class:`~dumptool.history.FileHistory` observer that writes an
    offset map into *folder* (:func:`history_dir` by default).  Nothing it
    meets stops the dump: a map that cannot be written is said once through
    *warn* and dropped (the image is what matters)."""

    def __init__(self, *, warn: Callable[[str], None], folder: Path | None = None,
                 kept: Path | None = None, cut: int = 0) -> None:
        """*kept*: go on with the map a restartable context kept there
        (:meth:`keep`), a restart's: its lines for blocks before *cut* (the
        restart point, already on an earlier volume) stay, the rest are
        written again, and the lines the restart would write before *cut*
        are not."""
        self.warn = warn
        self.folder = folder
        self.path: Path | None = None
        self._partial: Path | None = None
        self._kept = kept is not None          # the partial is a context's: a failed dump keeps it
        self._continue = kept
        self._cut = cut
        self._meta: dict[str, object] = {}
        self._file: IO[bytes] | None = None
        self._names: dict[int, tuple[int, bytes, bytes]] = {}  # child inode -> (parent, name, escaped name)
        self._dir_paths: dict[int, bytes] = {ROOTINO: b"."}
        self._unit: str | None = None
        self._base: tuple[int, int, int] | None = None    # (volume, address of its record 0, step)
        self._tape_files: dict[int, int] = {}
        self._last: tuple[int, int, int | None, tuple[bytes, bytes]] | None = None  # (volume, record, address, ...)
        self._escaped: dict[int, bytes] = {}  # directory -> its path as the lines write it
        self._count = 0
        self._last_ino = 0
        self._sorted = True
        self._volumes = 0
        self._extra: dict[str, dict[str, int | None]] = {}

    # -- FileHistory -------------------------------------------------------------------

    def begin(self, front: bytes) -> None:
        first = front[:TP_BSIZE]
        try:
            head = Header.unpack(first, header_byte_order(first))
        except FormatError:  # not ours to judge (the dump says what is wrong): no map
            return
        folder = self.folder if self.folder is not None else history_dir()
        self.path = folder / (image_id(head) + SUFFIX)  # named for its medium at the end (final_path)
        meta = {"date": head.c_date, "ddate": head.c_ddate, "level": head.c_level,
                "filesys": os.fsdecode(head.c_filesys), "host": os.fsdecode(head.c_host),
                "label": os.fsdecode(head.c_label), "ntrec": head.c_ntrec,
                "compressed": False}  # (the front comes as uncompressed: the first position tells)
        self._meta = meta
        try:
            folder.mkdir(parents=True, exist_ok=True)
            remove_stale_parts(folder)
            if self._continue is not None:
                self._partial = self._continue
                self._file = self._go_on(self._continue)
            else:
                self._partial = self.path.with_name(f"{self.path.name}.{os.getpid()}.part")
                self._file = open(self._partial, "wb", buffering=1 << 20)
        except OSError as exc:
            self._drop(f"cannot write the file history in {folder}: {exc.strerror}")

    def _go_on(self, path: Path) -> IO[bytes]:
        """Open the map a context kept at *path*, cut before the first line
        of a block from the restart point on (and before a line a kill tore)."""
        file = open(path, "r+b", buffering=1 << 20)
        try:
            data = file.read()
            keep = 0
            cut = self._cut
            while keep < len(data):
                end = data.find(b"\n", keep)
                if end < 0:
                    break  # torn by the kill
                f = data[keep:end].split(b"\t", 6)
                if int(f[4]) >= cut:
                    break
                ino, volume = int(f[0]), int(f[1])
                if ino <= self._last_ino:
                    self._sorted = False
                self._last_ino = ino
                self._tape_files.setdefault(volume, int(f[2]))
                self._volumes = max(self._volumes, volume)
                self._count += 1
                keep = end + 1
            file.seek(keep)
            file.truncate()
        except (ValueError, IndexError):
            file.close()
            raise OSError(0, f"{path} is damaged") from None
        except BaseException:
            file.close()
            raise
        return file

    def keep(self, path: Path) -> bool:
        """Move the map being written to *path* (a restartable context's,
        :mod:`dumptool.contexts`), where a failed dump leaves it for its
        restart to go on with; False (said once) when it cannot."""
        if self._file is None or self._partial is None:
            return False
        try:
            os.replace(self._partial, path)
        except OSError as exc:
            self.warn(f"cannot keep the file history with the restartable context ({path}): {exc.strerror}")
            return False
        self._partial, self._kept = path, True
        return True

    def sync(self) -> bool:
        """Flush the lines written to the disk (a context's checkpoint); False when the map was dropped."""
        file = self._file
        if file is None:
            return False
        try:
            file.flush()
            os.fsync(file.fileno())
        except OSError as exc:
            self._drop(f"cannot write the file history {self._partial}: {exc.strerror}")
            return False
        return True

    def resumed(self, front: bytes, plan: DumpPlan, first: int) -> None:
        """A restart (:meth:`Dump._resume_histories <dumptool.dump.Dump>`):
        *front* is the image's volume header; the directories before index
        *first* are not written again, their names are told here."""
        self.begin(front)
        for ino in plan.directories[:first]:
            self.add_dir(ino, plan.nodes[ino].entries or (), b"")

    def add_dir(self, ino: int, entries: Sequence[Dirent], blocks: bytes) -> None:
        if self._file is None:
            return
        names = self._names
        # (parent, name, the name as a line writes it): one search for the names of the
        # whole directory tells whether any needs escaping (most: none)
        escaping = _NEEDS_ESCAPE(b"/".join([e.name for e in entries])) is not None
        for e in entries:
            if e.ino not in names and e.ino != ino:
                names[e.ino] = (ino, e.name, _escape(e.name) if escaping else e.name)

    def _dir_path(self, ino: int) -> bytes | None:
        """The ``./`` path of directory *ino* (every directory is known before the first file)."""
        paths = self._dir_paths
        chain: list[int] = []
        while ino not in paths:
            up = self._names.get(ino)
            if up is None or ino in chain:
                return None
            chain.append(ino)
            ino = up[0]
        path = paths[ino]
        for child in reversed(chain):
            path = paths[child] = path + b"/" + self._names[child][1]
        return path

    def add_node(self, ino: int, node: Stat, position: RecordPosition) -> None:
        file = self._file
        if file is None:
            return
        if self._cut:  # a restart: written before the restart point, its line is kept already
            if position.block < self._cut:
                return
            self._cut = 0
        volume, record = position.volume, position.record
        last = self._last
        if last is not None and last[0] == volume and last[1] == record:
            middle = last[3]
        else:  # a new record: its address, and the line's fields it shares with the others in it
            address = self._address(position)
            if volume not in self._tape_files:
                self._tape_files[volume] = position.tape_file
                self._volumes = max(self._volumes, volume)
            middle = (b"\t%d\t%d\t%d\t" % (volume, self._tape_files[volume], record),
                      b"\t-\t" if address is None else b"\t%d\t" % address)
            self._last = (volume, record, address, middle)
        if ino <= self._last_ino:
            self._sorted = False
        self._last_ino = ino
        entry = self._names.pop(ino, None)
        parent = None
        if entry is not None:
            parent = self._escaped.get(entry[0])
            if parent is None:
                parent = self._escaped_path(entry[0])
        try:
            if parent is None:
                file.write(b"%d%s%d%s%d\t\n" % (ino, middle[0], position.block, middle[1], node.st_size))
            else:
                file.write(b"%d%s%d%s%d\t%s/%s\n" % (ino, middle[0], position.block, middle[1], node.st_size,
                                                    parent, entry[2]))
        except OSError as exc:
            self._drop(f"cannot write the file history {self._partial}: {exc.strerror}")
            return
        self._count += 1

    def _escaped_path(self, ino: int) -> bytes | None:
        """:meth:`_dir_path` escaped for a line (kept: the files of a directory share it)."""
        path = self._dir_paths.get(ino) or self._dir_path(ino)
        if path is not None:
            path = self._escaped[ino] = _escape(path)
        return path

    def mark(self, name: str, position: RecordPosition) -> None:
        """Keep a named position of the image other than a file's (the
        snapfs engine's Pass V records): the end line's ``extra``."""
        self._extra[name] = {"volume": position.volume, "tape_file": position.tape_file,
                             "record": position.record, "block": position.block,
                             "address": self._address(position)}

    def add_pass5(self, ino: int, position: RecordPosition) -> None:
        """The snapfs engine's Pass V record (carried by inode *ino*) starts at *position*."""
        self.mark("pass5", position)
        self._extra["pass5"]["ino"] = ino

    def finish(self, trailer: bytes) -> None:
        file, self._file = self._file, None
        if file is None:
            return
        end = {"files": self._count, "volumes": self._volumes, "sorted": self._sorted, "unit": self._unit,
               "extra": self._extra}
        try:
            file.write(_END + json.dumps(end, sort_keys=True).encode() + b"\n")
            file.close()
            text = MAGIC + json.dumps({**self._meta, "unit": self._unit}, sort_keys=True).encode() + b"\n"
            # the first line goes in front now that the unit is known, and the
            # map appears whole under its name (a rename) or not at all
            done = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            with open(self._partial, "rb") as body, open(done, "wb") as out:
                out.write(text)
                while chunk := body.read(1 << 20):
                    out.write(chunk)
            self.path = final_path(self.path, self._unit)
            os.replace(done, self.path)
            if not self._kept:  # (a context's goes with the context: NDMP may still restart it)
                os.unlink(self._partial)
        except OSError as exc:
            for leftover in (done,) if self._kept else (self._partial, done):
                try:
                    os.unlink(leftover)
                except OSError:
                    pass
            self._drop(f"cannot write the file history {self.path}: {exc.strerror}")
        self._names.clear()

    def close(self) -> None:
        file, self._file = self._file, None
        if file is not None:  # the dump failed: no map (a context's stays, for its restart)
            try:
                file.close()
                if not self._kept:
                    os.unlink(self._partial)
            except OSError:
                pass

    # -- internals -----------------------------------------------------------------------

    def _address(self, position: RecordPosition) -> int | None:
        """The medium's address of *position*'s record: asked of the medium
        once a volume where records are all alike on it (a tape, an
        uncompressed file), then counted; asked for each record otherwise."""
        base = self._base
        if base is not None and base[0] == position.volume:  # (a volume's step does not change)
            return base[1] + position.record * base[2]
        step = position.step
        address = position.address
        if address is None:
            return None
        if self._unit is None:
            self._unit = "block" if position.is_tape else "byte"
            self._meta["compressed"] = step is None
        if step is not None:
            self._base = (position.volume, address - position.record * step, step)
        return address

    def _drop(self, message: str) -> None:
        self.warn(f"{message}; this dump has no file history (pyrestore -x reads the whole image)")
        self.close()
        self._file = None


_PART = re.compile(r"\.fh\.(\d+)\.(?:part|tmp)$")


def remove_stale_parts(folder: Path) -> None:
    """Remove the ``<id>.fh.<pid>.part`` (and ``.tmp``) files of writers that
    are gone (a dump killed with ``kill -9``); those of running dumps stay."""
    from snapdump.processes import process_alive

    try:
        names = os.listdir(folder)
    except OSError:
        return
    me = os.getpid()
    for name in names:
        found = _PART.search(name)
        if found is None:
            continue
        pid = int(found.group(1))
        if pid != me and not process_alive(pid):
            try:
                os.unlink(folder / name)
            except OSError:
                pass


def mark_position(histories: Iterable[object], name: str, position: RecordPosition) -> None:
    """Tell the offset map among *histories* (``ImageWriter.histories``) of a
    named position that is not a file's: the snapfs engine's Pass V records
    call this with ``RecordPosition(writer)`` before writing them."""
    for history in histories:
        if isinstance(history, OffsetMapWriter):
            history.mark(name, position)


class StaleHistory(DumpError):
    """The offset map is not of this image (or not a whole map): the restore reads the image whole."""


class OffsetMap:
    """An offset map read back: :meth:`entry` finds an inode by bisecting the
    file; :attr:`meta` is its first line, :attr:`end` its last."""

    def __init__(self, path: Path) -> None:
        """:class:`StaleHistory` when *path* cannot be read or is not a whole map."""
        self.path = path
        try:
            import mmap  # here: a dump writes maps, only a lookup reads one

            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                self._data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        except OSError as exc:
            raise StaleHistory(f"cannot read the file history {path}: {exc.strerror}") from None
        data = self._data
        first_end = data.find(b"\n")
        if not data[:len(MAGIC)] == MAGIC or first_end < 0:
            raise StaleHistory(f"{path} is not a file history")
        last_start = data.rfind(b"\n", 0, len(data) - 1) + 1
        if data[last_start:last_start + len(_END)] != _END:
            raise StaleHistory(f"{path} is of a dump that did not finish")
        try:
            self.meta = json.loads(bytes(data[len(MAGIC):first_end]))
            self.end = json.loads(bytes(data[last_start + len(_END):len(data)]))
        except ValueError:
            raise StaleHistory(f"{path}: its first or last line is damaged") from None
        self._lo, self._hi = first_end + 1, last_start

    @classmethod
    def find(cls, header: Header, folder: Path | None = None, *, tape: bool = False) -> "OffsetMap | None":
        """The map of the image whose volume header is *header*, if one was
        kept: the one of a dump to the same kind of medium (*tape* or a file)
        first (two dumps of one snapshot share the header: their volumes may differ)."""
        base = (folder if folder is not None else history_dir()) / (image_id(header) + SUFFIX)
        kinds = ("block", "byte") if tape else ("byte", "block")
        for path in (final_path(base, kinds[0]), final_path(base, kinds[1])):
            if path.is_file():
                return cls(path)
        return None

    @property
    def unit(self) -> str | None:
        return self.meta.get("unit")

    def check(self, header: Header) -> None:
        """:class:`StaleHistory` unless this map is of the image of *header*."""
        m = self.meta
        facts = {"date": header.c_date, "ddate": header.c_ddate, "level": header.c_level,
                 "filesys": os.fsdecode(header.c_filesys), "host": os.fsdecode(header.c_host),
                 "label": os.fsdecode(header.c_label), "ntrec": header.c_ntrec,
                 "compressed": bool(header.c_flags & DR_COMPRESSED)}
        for key, value in facts.items():
            if m.get(key) != value:
                raise StaleHistory(f"the file history {self.path} does not match the image ({key})")
        if not self.end.get("sorted", False):
            raise StaleHistory(f"the file history {self.path} is not in inode order")

    def _line_at(self, pos: int) -> tuple[int, int]:
        """The start and end of the line holding byte *pos*."""
        data = self._data
        start = data.rfind(b"\n", self._lo - 1, pos) + 1 if pos > self._lo else self._lo
        end = data.find(b"\n", pos, self._hi)
        return start, (self._hi if end < 0 else end)

    def entry(self, ino: int) -> Entry | None:
        """Inode *ino*'s entry, None when it has none."""
        lo, hi, data = self._lo, self._hi, self._data
        while lo < hi:
            mid = (lo + hi) // 2
            start, end = self._line_at(mid)
            found = int(data[start:data.find(b"\t", start, end)])
            if found == ino:
                return self._parse(bytes(data[start:end]))
            if found < ino:
                lo = end + 1
            else:
                hi = start
        return None

    def entries(self) -> Iterable[Entry]:
        """Every entry, in inode order."""
        for line in bytes(self._data[self._lo:self._hi]).splitlines():
            yield self._parse(line)

    @staticmethod
    def _parse(line: bytes) -> Entry:
        f = line.split(b"\t", 7)
        return Entry(int(f[0]), int(f[1]), int(f[2]), int(f[3]), int(f[4]), None if f[5] == b"-" else int(f[5]),
                     int(f[6]), _unescape(f[7]) if len(f) > 7 else b"")

    def locator(self, inodes: Iterable[int]) -> "HistoryLocator":
        """What the seeks of ``-x`` ask (as of a QFA map) for *inodes*
        (:class:`StaleHistory` when a line of the map is damaged)."""
        try:
            return HistoryLocator(self, inodes)
        except (ValueError, IndexError, KeyError):
            raise StaleHistory(f"{self.path}: a line is damaged") from None

    def close(self) -> None:
        if not isinstance(self._data, bytes):  # an mmap
            self._data.close()


class HistoryLocator:
    """The positions of the files ``-x`` wants, as the seek asks them
    (:meth:`position_for`, :meth:`address_of`: the QFA map's questions).
    Where records are alike on the medium (not compressed) the address is
    counted from where the volume being read starts (its record number), so
    an image copied to another tape file or cartridge is still found."""

    #: a seek that lands past its file makes the restore read the image whole
    falls_back = True

    def __init__(self, offsets: OffsetMap, inodes: Iterable[int]) -> None:
        self.path = offsets.path
        self.date = int(offsets.meta["date"])
        self._entries = {e.ino: e for e in map(offsets.entry, inodes) if e is not None}
        ntrec = int(offsets.meta.get("ntrec") or 10)
        self._step = None if offsets.meta.get("compressed") else ntrec * TP_BSIZE
        self._byte_unit = offsets.unit == "byte"
        #: where the image's Pass V record starts (an entry of its carrier), if it has one
        self.pass5: Entry | None = None
        #: the image has a Pass V whose position is not known: read on to it
        self.pass5_unplaced = False
        mark = (offsets.end.get("extra") or {}).get("pass5")
        if isinstance(mark, dict):
            try:
                self.pass5 = Entry(int(mark["ino"]), int(mark["volume"]), int(mark["tape_file"]),
                                   int(mark["record"]), int(mark["block"]),
                                   None if mark.get("address") is None else int(mark["address"]))
            except (KeyError, TypeError, ValueError):
                self.pass5_unplaced = True  # a damaged mark: -x reads on to the end instead of seeking

    def position_for(self, ino: int) -> Entry | None:
        return self._entries.get(ino)

    def address_of(self, entry: Entry, volume_start: int | None, *, tape: bool) -> int | None:
        """Where *entry*'s record is on the volume being read (None: not known)."""
        if self._step is not None and volume_start is not None:
            return volume_start + entry.record * (1 if tape else self._step)
        if tape == self._byte_unit:  # a compressed image read from another kind of medium
            return None
        return entry.address


__all__ = ["Entry", "HistoryLocator", "OffsetMap", "OffsetMapWriter", "StaleHistory", "history_dir", "image_id",
           "mark_position"]
