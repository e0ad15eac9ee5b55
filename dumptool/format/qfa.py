"""The QFA file (quick file access map) of ``dump -Q`` / ``restore -Q`` (section 10.1).

A text file: the magic ``495115637697``, the version ``1.0``, the dump's
``c_date`` in decimal, an empty line, the column line ``ino\\ttapeno\\ttapepos``,
then one line ``<ino>\\t<volume>\\t<position>`` for each record of the image
that holds a header :func:`qfa_indexes`, naming the first such header in the
record.  The position is the record's start as the medium counts it: the
drive's logical block address (``MTIOCPOS``) on a tape, the byte offset in a
file.  Linux restore refuses a map whose date is not the image's ("different
QFA/dumpdates detected") and seeks to the entry of the greatest listed inode
at or below the one it wants (:meth:`QfaMap.position_for`).

Pass V (:mod:`dumptool.format.pass5`): the fourth line, which dump leaves
empty and restore reads without looking at it, holds
``pass5<TAB><ino><TAB><volume><TAB><position>`` in a ``pydump -Q`` map of an
image with a Pass V record (its carrier inode and where the record starts),
so that ``pyrestore -x -Q`` can seek to it after the wanted files.

``restore -t -Q`` prints two more columns, ``%10lu\t%ld\t%lld\t%s``: the
volume and position of the inode's own line (exact match; ``0 0`` when there
is none).  Its lookup (``Inode2Tapepos``) only reads the map forward from the
line it last stopped at, so after the first inode it does not find -- the
root directory, first in any listing, never is -- it prints ``0 0`` for every
line; pyrestore prints the map's values.  With ``-v`` each line starts with
``dir `` or ``leaf``.
"""

from __future__ import annotations

import bisect
import contextlib
import os
from dataclasses import dataclass

from snapdump.numerals import is_decimal

from ..errors import FormatError
from .constants import DR_EXTATTRIBUTES, RecordType
from .header import Header

QFA_MAGIC = "495115637697"
QFA_VERSION = "1.0"
#: The column line that ends the preamble.
QFA_COLUMNS = "ino\ttapeno\ttapepos"
#: dump tests the directory *bit* of the mode, so block devices and sockets
#: (whose file types share it) are never indexed either.
_S_IFDIR_BIT = 0o040000


@dataclass(frozen=True, order=True)
class QfaEntry:
    """One line of the map: the record holding inode ``ino``'s header starts at
    ``position`` of volume ``volume`` (from 1)."""

    ino: int
    volume: int
    position: int


#: The start of the fourth line when it says where Pass V starts.
QFA_PASS5 = "pass5"


def qfa_preamble(date: int, pass5: QfaEntry | None = None) -> str:
    """The lines before the entries, for a dump of ``c_date`` *date* (and
    the position of its Pass V record, if it has one)."""
    fourth = "" if pass5 is None else f"{QFA_PASS5}\t{pass5.ino}\t{pass5.volume}\t{pass5.position}"
    return f"{QFA_MAGIC}\n{QFA_VERSION}\n{date}\n{fourth}\n{QFA_COLUMNS}\n"


def note_pass5(name: str, date: int, pass5: QfaEntry) -> None:
    """Write the QFA file *name* (of a dump of *date*) again with Pass V's
    position *pass5* in its fourth line, the entries copied in chunks; an
    ``OSError`` when it cannot (also when *name* is not a regular file)."""
    import shutil  # here: only -Q needs them (tempfile and shutil, with what they import, ~2 ms a start)
    import tempfile

    if not os.path.isfile(name):
        raise OSError(0, "not a regular file")
    fd, part = tempfile.mkstemp(prefix=os.path.basename(name) + ".", dir=os.path.dirname(name) or ".")
    try:
        shutil.copymode(name, part)
        with open(name, "rb") as old, open(fd, "wb") as new:
            for _ in range(5):  # the preamble
                old.readline()
            new.write(qfa_preamble(date, pass5).encode("ascii"))
            shutil.copyfileobj(old, new)
        os.replace(part, name)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(part)
        raise


def qfa_line(entry: QfaEntry) -> str:
    return f"{entry.ino}\t{entry.volume}\t{entry.position}\n"


def qfa_indexes(header: Header, date: int) -> bool:
    """Whether dump puts a QFA line for *header* (of a dump of *date*): a
    ``TS_INODE`` of this dump, not an EA record, whose mode lacks the
    directory bit."""
    return (header.c_type == RecordType.TS_INODE and header.c_date == date
            and not header.c_dinode.mode & _S_IFDIR_BIT and not header.c_flags & DR_EXTATTRIBUTES)


@dataclass(frozen=True)
class QfaMap:
    """A parsed QFA file: the dump date and the entries, sorted by inode."""

    date: int
    entries: tuple[QfaEntry, ...]
    #: where the image's Pass V record starts (its carrier's inode), when the map says
    pass5: QfaEntry | None = None
    #: the map names a Pass V it gives no usable position for: ``-x`` reads on to it
    pass5_unplaced: bool = False

    def position_for(self, ino: int) -> QfaEntry | None:
        """The entry restore seeks to for *ino*: the greatest listed inode at
        or below it, ``None`` when every listed inode is above it."""
        i = bisect.bisect_right(self.entries, ino, key=lambda e: e.ino)
        return self.entries[i - 1] if i else None

    def address_of(self, entry: QfaEntry, volume_start: int | None, *, tape: bool) -> int | None:
        """Where *entry*'s record is: the map's own position."""
        return entry.position


def parse_qfa(text: str) -> QfaMap:
    """Read a QFA file's text; a :class:`FormatError` names what is wrong."""
    lines = text.split("\n")
    if len(lines) < 5 or lines[0] != QFA_MAGIC or lines[1] != QFA_VERSION:
        raise FormatError(f"not a QFA file (no {QFA_MAGIC} / {QFA_VERSION} preamble)")
    if not is_decimal(lines[2].strip()):
        raise FormatError(f"QFA file: the dump date {lines[2]!r} is not a number")
    entries = []
    for number, line in enumerate(lines[5:], 6):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 3 or not all(is_decimal(f.strip()) for f in fields):
            raise FormatError(f"QFA file line {number}: {line!r} is not ino<TAB>tapeno<TAB>tapepos")
        entries.append(QfaEntry(*(int(f) for f in fields)))
    pass5, unplaced = None, False
    fourth = lines[3].split("\t")
    if fourth[0] == QFA_PASS5:
        if len(fourth) == 4 and all(is_decimal(f.strip()) for f in fourth[1:]):
            pass5 = QfaEntry(*(int(f) for f in fourth[1:]))
        else:
            unplaced = True  # damaged: read on to Pass V rather than lose it
    return QfaMap(int(lines[2]), tuple(sorted(entries)), pass5, unplaced)
