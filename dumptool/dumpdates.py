"""The dumpdates file, increment chains, and the inode-number map beside it.

The file is Linux dump's (``-u`` writes it, ``-D FILE`` names it; section
8.2 of the format sheet), one line per (path, level)::

    /dev/loop1 0 Wed Nov 25 04:11:53 2026 +0000

The date is asctime's layout (``Nov  5``, day padded with a space) in local
time with the zone offset.  Behaviours copied from Linux dump 0.4b47 (checked
against ``/sbin/dump -u -D``): every rewrite renders all lines again in the
writer's local time zone (a line's weekday is recomputed, a line without an
offset is read as local time); the file keeps its line order: ``-u``
replaces the line of the same path and level in place, or appends a new one
at the end (Linux dump does not sort the file).

Levels are written in decimal and read whole, as Linux dump 0.4b47 does
(its ``-15`` is level 15, its reader takes every digit: checked with
``dump -15 -u -D``); an incremental at level N is based on the newest dump
of a lower level.  Differences from Linux dump, on purpose: levels stop at
31 (ONTAP's range; dump sets no limit); an incremental with no lower level recorded is an error, not a silent
level 0; a path may contain spaces (the line is parsed from its right end;
Linux dump stops the name at the first space).

The file is rewritten atomically (a temporary file renamed over it) under an
exclusive ``flock`` of the file itself, re-taken if another writer renamed a
new file in meanwhile, so that concurrent dumps never lose each other's
lines.  A real ``dump -u`` running at the same moment still can: it rewrites
the file in place.

:class:`InodeMap` keeps, per dumped path, the dense 32-bit dump inode
numbers given to (st_dev, st_ino) pairs, so that every level of a chain
numbers a file the same way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno as _errno
import fcntl
import json
import os
import re
import stat
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from tapelib.durable import replace_file

from .errors import DumpDatesError, DumpError, FormatLimitError, NoBaseDumpError
from .format import ROOTINO

if TYPE_CHECKING:  # datetime is imported where dates are read or written: a level 0 without -u needs none
    import datetime as _dt

#: Debian's dumpdates path (``-D`` changes it).
DEFAULT_DUMPDATES = "/var/lib/dumpdates"
#: Highest dump level (ONTAP's range; Linux dump sets none).
MAX_LEVEL = 31

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_LINE_PATTERN = (
    r"(?P<path>\S.*?) +(?P<level>\d+) +(?:[A-Z][a-z]{2}) +(?P<month>[A-Z][a-z]{2}) +(?P<day>\d{1,2})"
    r" +(?P<hms>\d{1,2}:\d\d:\d\d) +(?P<year>\d{4})(?: +(?P<zone>[+-]\d{4}))? *")
_line: re.Pattern[str] | None = None  # compiled when a line is first read (a level 0 reads none)


def check_level(level: int) -> int:
    """``level`` if it is a dump level (0 to 31), else a :class:`DumpError`."""
    if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level <= MAX_LEVEL:
        raise DumpError(f"dump level {level!r} is out of range 0 to {MAX_LEVEL}")
    return level


@dataclasses.dataclass(frozen=True)
class DumpRecord:
    """One dumpdates line: ``path`` was dumped at ``level`` on ``date``
    (seconds since the epoch: the image's ``c_date``)."""

    path: str
    level: int
    date: int

    @property
    def datetime(self) -> _dt.datetime:
        import datetime as _dt

        return _dt.datetime.fromtimestamp(self.date, _dt.timezone.utc)


def format_record(record: DumpRecord, tz: _dt.tzinfo | None = None) -> str:
    """The line Linux dump writes for ``record`` (with its newline), in the
    time zone ``tz`` (default: local time)."""
    import datetime as _dt

    when = _dt.datetime.fromtimestamp(record.date, tz) if tz else _dt.datetime.fromtimestamp(record.date).astimezone()
    offset = int(when.utcoffset().total_seconds()) // 60
    sign = "-" if offset < 0 else "+"
    hours, minutes = divmod(abs(offset), 60)
    return (f"{record.path} {record.level} {_WEEKDAYS[when.weekday()]} {_MONTHS[when.month - 1]} "
            f"{when.day:2d} {when:%H:%M:%S} {when.year} {sign}{hours:02d}{minutes:02d}\n")


def parse_record(line: str, tz: _dt.tzinfo | None = None) -> DumpRecord | None:
    """The record of one dumpdates line; ``None`` if it is not one.  A date
    without a zone offset is local time (``tz``, default the system's)."""
    import datetime as _dt

    global _line
    if _line is None:
        _line = re.compile(_LINE_PATTERN)
    match = _line.fullmatch(line.rstrip("\n"))
    if match is None or match["month"] not in _MONTHS:
        return None
    hour, minute, second = (int(x) for x in match["hms"].split(":"))
    try:
        naive = _dt.datetime(int(match["year"]), _MONTHS.index(match["month"]) + 1, int(match["day"]),
                             hour, minute, second)
    except ValueError:
        return None
    if match["zone"]:
        zone = match["zone"]
        minutes = int(zone[1:3]) * 60 + int(zone[3:5])
        when = naive.replace(tzinfo=_dt.timezone(_dt.timedelta(minutes=-minutes if zone[0] == "-" else minutes)))
    elif tz is not None:
        when = naive.replace(tzinfo=tz)
    else:
        when = naive.astimezone()
    return DumpRecord(match["path"], int(match["level"]), int(when.timestamp()))


class DumpDates:
    """A dumpdates file: the dump history that increment chains follow.

    A missing file reads as empty; :meth:`record` creates it.  ``tz`` is the
    zone dates are written in (default: local time, as dump does).
    """

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_DUMPDATES, *, tz: _dt.tzinfo | None = None) -> None:
        self.path = Path(path)
        self.tz = tz

    # -- reading --------------------------------------------------------------------
    def records(self) -> list[DumpRecord]:
        """Every line, in file order."""
        try:
            with self._locked(exclusive=False) as fd:
                return self._parse(_read_all(fd))
        except FileNotFoundError:
            return []

    def base_for(self, path: str, level: int) -> DumpRecord | None:
        """The dump a level-``level`` dump of ``path`` is based on.

        Level 0 has none.  Otherwise it is the newest dump of the same path
        at a lower level (ties go to the earlier line, as in Linux dump);
        with none recorded, :class:`NoBaseDumpError`.
        """
        check_level(level)
        if level == 0:
            return None
        base: DumpRecord | None = None
        for rec in self.records():
            if rec.path == path and rec.level < level and (base is None or rec.date > base.date):
                base = rec
        if base is None:
            raise NoBaseDumpError(f"no level-0 dump of {path}: run a level 0 first")
        return base

    # -- writing --------------------------------------------------------------------
    def record(self, path: str, level: int, date: int | _dt.datetime) -> DumpRecord:
        """Note that ``path`` was dumped at ``level`` on ``date`` (``dump -u``):
        the line of the same path and level is replaced, else one is appended."""
        check_level(level)
        if not isinstance(date, (int, float)):  # a datetime
            date = int(date.timestamp())
        if not path or path != path.strip() or "\n" in path:
            raise DumpDatesError(f"cannot record {path!r} in {self.path}: empty, newline or edge spaces in the name")
        new = DumpRecord(path, level, int(date))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked(exclusive=True) as fd:
            records = self._parse(_read_all(fd))
            for i, rec in enumerate(records):
                if rec.path == path and rec.level == level:
                    records[i] = new
                    break
            else:
                records.append(new)
            self._replace("".join(format_record(r, self.tz) for r in records), os.fstat(fd).st_mode)
        return new

    def inode_map(self, path: str) -> "InodeMap":
        """The inode-number map of ``path`` kept beside this file (locked
        until closed)."""
        return InodeMap(Path(f"{self.path}.inomap"), path)

    # -- internals --------------------------------------------------------------------
    def _parse(self, text: str) -> list[DumpRecord]:
        records = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            rec = parse_record(line, self.tz)
            if rec is None:
                raise DumpDatesError(f"{self.path}, line {number}: not a dumpdates line ({line[:80]!r}): "
                                     "fix or remove it")
            records.append(rec)
        return records

    @contextlib.contextmanager
    def _locked(self, exclusive: bool) -> Iterator[int]:
        """An open descriptor of the current file, flocked; retried when a
        concurrent writer renamed a new file over the one we locked."""
        while True:
            try:
                # (O_NONBLOCK: a FIFO given as the file is refused below instead of waiting for a writer)
                if exclusive:
                    fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK, 0o666)
                else:
                    fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
            except FileNotFoundError:
                raise
            except OSError as exc:
                raise DumpDatesError(f"cannot open {self.path}: {exc.strerror}") from None
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):  # a device would be renamed over, or read forever
                    raise DumpDatesError(f"{self.path} is not a regular file: give a dumpdates file with -D")
                fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
                mine = os.fstat(fd)
                try:
                    now = os.stat(self.path)
                except FileNotFoundError:
                    now = None
                if now is not None and (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
                    yield fd
                    return
            finally:
                os.close(fd)

    def _replace(self, text: str, mode: int) -> None:
        try:
            # through a symbolic link (a shared /etc/dumpdates), as dump writes: the link stays
            replace_file(Path(os.path.realpath(self.path)), text.encode("utf-8", errors="surrogateescape"), mode)
        except OSError as exc:
            raise DumpDatesError(f"cannot rewrite {self.path}: {exc.strerror}") from None


def _read_all(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", errors="surrogateescape")


# -- the inode-number map ----------------------------------------------------------

_MAP_FORMAT = "snapdump-inomap"
_MAP_VERSION = 1
_ENTRY = struct.Struct("<QQI")  # st_dev, st_ino, dump inode number
_MAX_MARKS = 256  # dump dates remembered per map (the oldest go first)
_MAX_DUMP_INO = 0xFFFFFFFF


class InodeMap:
    """Dense 32-bit dump inode numbers for one dumped path, kept across a chain.

    File systems hand out 64-bit inode numbers (and a tree may span devices);
    the dump format holds 32 bits and restore sizes its maps by the largest
    number.  So every (st_dev, st_ino) gets a number once and keeps it: the
    root is always 2 (``ROOTINO``), others count from 3 upward, and a number
    is never given again, even after its file is gone, so restore never
    mistakes a new file for an old one.

    One map per path lives in ``directory`` (``<dumpdates>.inomap/``); the
    map is locked while open (a second dump of the same path at the same time
    is refused).  :meth:`save` writes it atomically; do so before recording
    the dump in dumpdates.
    """

    def __init__(self, directory: Path, path: str) -> None:
        self.path = path
        self.directory = Path(directory)
        import hashlib  # here, not at the top: a plain dump never needs it (start-up time)
        digest = hashlib.sha256(os.fsencode(path)).hexdigest()[:32]
        self.file = self.directory / f"{digest}.map"
        self._numbers: dict[tuple[int, int], int] = {}
        self._root: tuple[int, int] | None = None
        self._next = ROOTINO + 1
        #: dump date -> the first number given after that dump: what its chain holds lies below
        self._marks: dict[int, int] = {}
        self._dirty = False
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.directory / f"{digest}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise DumpDatesError(f"cannot open the inode map of {path} in {self.directory}: {exc.strerror}") from None
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._lock_fd)
            if exc.errno in (_errno.EWOULDBLOCK, _errno.EAGAIN):
                raise DumpDatesError(f"another dump of {path} is running (its inode map in "
                                     f"{self.directory} is locked)") from None
            raise DumpDatesError(f"cannot lock the inode map of {path}: {exc.strerror}") from None
        try:
            self._load()
        except BaseException:
            self.close()
            raise

    @property
    def maxino(self) -> int:
        """The highest number given so far (at least the root's)."""
        return self._next - 1

    def __len__(self) -> int:
        return len(self._numbers) + (self._root is not None)

    @property
    def root(self) -> tuple[int, int] | None:
        """(st_dev, st_ino) of the dumped path's top when last numbered (None: a new map)."""
        return self._root

    def mark(self, date: int) -> None:
        """Note that the dump dated ``date`` (being recorded) was made with the numbers given so
        far: every file numbered by then was on its image or on one of its chain's."""
        self._marks[int(date)] = self._next
        for old in sorted(self._marks)[:-_MAX_MARKS]:
            del self._marks[old]
        self._dirty = True

    def chain_start(self, date: int) -> int | None:
        """The first number given after the recorded dump dated ``date`` (an incremental's base):
        files numbered from it on are on no image of that dump's chain, however old their times
        (moved in, or unreadable then), so an incremental takes them whole.  None when no
        recorded dump of that date is marked (a map from before marks, a ``-T`` date)."""
        return self._marks.get(int(date))

    def new_to_chain(self, start: int, top: tuple[int, int] | None, inos: Iterable[int]) -> set[int]:
        """Of ``inos`` (numbered since :meth:`chain_start` gave ``start`` and :attr:`root` gave
        ``top``), those the chain never held.  :class:`DumpDatesError` when the top is now on
        another device than the chain's (a file system unmounted, or another mounted there)."""
        if top is not None and self._root is not None and top[0] != self._root[0]:
            raise DumpDatesError(f"{self.path} is on another file system than at its base dump (one unmounted, "
                                 "or another mounted there, since): run a level 0")
        return {ino for ino in inos if ino >= start}

    def get(self, dev: int, ino: int) -> int | None:
        """The number of (``dev``, ``ino``) if it has one."""
        key = (dev, ino)
        if key == self._root:
            return ROOTINO
        return self._numbers.get(key)

    def number(self, dev: int, ino: int, *, root: bool = False) -> int:
        """The dump inode number of (``dev``, ``ino``), given now if new.
        ``root=True`` names the dumped path's top: it is 2 whatever its
        st_ino (a snapshot's root may change from level to level)."""
        key = (dev, ino)
        if root:
            if self._root != key:
                self._root = key
                self._numbers.pop(key, None)
                self._dirty = True
            return ROOTINO
        if key == self._root:
            return ROOTINO
        number = self._numbers.get(key)
        if number is None:
            number = self._next
            if number > _MAX_DUMP_INO:
                raise FormatLimitError(f"{self.path}: more than {_MAX_DUMP_INO} inodes numbered in this chain; "
                                       "start a new chain with a level 0 dump and a new inode map")
            self._numbers[key] = number
            self._next += 1
            self._dirty = True
        return number

    def number_all(self, dev: int, root: int, inos: Iterable[int]) -> dict[int, int]:
        """``{ino: number(dev, ino)}`` for the root (``root=True``) then each of ``inos``, in that order."""
        numbers = {root: self.number(dev, root, root=True)}
        number = self.number
        for ino in inos:
            numbers[ino] = number(dev, ino)
        return numbers

    def prune(self, live: Iterable[tuple[int, int]]) -> None:
        """Forget the pairs not in ``live`` (files gone).  Their numbers stay
        used: new files still get new ones."""
        keep = set(live)
        gone = [key for key in self._numbers if key not in keep]
        for key in gone:
            del self._numbers[key]
        self._dirty = self._dirty or bool(gone)

    def save(self) -> None:
        """Write the map (temporary file renamed over the old one)."""
        if not self._dirty and self.file.exists():
            return
        meta = {"format": _MAP_FORMAT, "version": _MAP_VERSION, "path": self.path, "next": self._next,
                "count": len(self._numbers), "root": list(self._root) if self._root else None,
                "marks": {str(date): first for date, first in self._marks.items()}}
        body = bytearray(json.dumps(meta, sort_keys=True).encode() + b"\n")
        for (dev, ino), number in self._numbers.items():
            body += _ENTRY.pack(dev, ino, number)
        try:
            replace_file(self.file, bytes(body), 0o600)
        except OSError as exc:
            raise DumpDatesError(f"cannot write the inode map of {self.path} ({self.file}): {exc.strerror}") from None
        self._dirty = False

    def close(self) -> None:
        """Release the lock (without saving)."""
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> "InodeMap":
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            if exc_type is None:
                self.save()
        finally:
            self.close()

    def _load(self) -> None:
        try:
            data = self.file.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise DumpDatesError(f"cannot read the inode map of {self.path} ({self.file}): {exc.strerror}") from None
        damaged = DumpDatesError(f"the inode map of {self.path} ({self.file}) is damaged: remove it and "
                                 "start a new chain with a level 0 dump")
        head, sep, body = data.partition(b"\n")
        try:
            meta = json.loads(head)
        except ValueError:
            raise damaged from None
        if not sep or not isinstance(meta, dict) or meta.get("format") != _MAP_FORMAT:
            raise damaged
        if meta.get("version") != _MAP_VERSION or meta.get("path") != self.path:
            raise damaged
        if len(body) != meta["count"] * _ENTRY.size:
            raise damaged
        self._numbers = {(dev, ino): number for dev, ino, number in _ENTRY.iter_unpack(body)}
        self._root = tuple(meta["root"]) if meta.get("root") else None
        self._next = int(meta["next"])
        marks = meta.get("marks", {})  # (absent from maps written before marks)
        if not isinstance(marks, dict):
            raise damaged
        try:
            self._marks = {int(date): int(first) for date, first in marks.items()}
        except (TypeError, ValueError):
            raise damaged from None
