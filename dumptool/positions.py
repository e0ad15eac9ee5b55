"""``restore -P FILE``: a QFA file made from the image, without extracting.

restore 0.4b47's ``-P`` reads the image as ``-x`` would (the named files,
everything when none) and, instead of writing each file, writes a line
``<ino>\\t<volume>\\t<position>`` for it under the preamble ``dump -Q``
writes (:func:`~dumptool.format.qfa_preamble`, the image's own ``c_date``).
Unlike ``dump -Q`` it has a line for every file, not only the first of each
record.  The position is where the record holding the file's header starts,
as the medium counts it: a tape's logical block, or the byte offset of the
image's record (``c_ntrec`` blocks) in a file -- what ``pydump -Q`` gives the
same file, and what ``restore -P`` gives it when it reads a file in records
of the image's size (it reads 32 KiB).  ``restore -Q`` and ``pyrestore -Q``
seek with it.  As ``pydump -Q``'s, its fourth line says where the image's
Pass V record starts, when it has one (:mod:`dumptool.format.qfa`).
"""

from __future__ import annotations

import os

from .format import DR_EXTATTRIBUTES, TP_BSIZE, QfaEntry, RecordType, note_pass5, qfa_line, qfa_preamble
from .format.pass5 import EXT_PASS5
from .image_reader import ImageReader
from .restore_report import RestoreError
from .volume_input import VolumeInput


def write_positions(name: str, image: ImageReader, source: VolumeInput, leaves: set[int]) -> int:
    """Read the rest of *image* (its directories read, *source* logging its
    records since the start) and write the QFA file *name* with a line for
    each inode of *leaves* met; how many lines."""
    header = image.header
    assert header is not None
    record_size = max(header.c_ntrec, 1) * TP_BSIZE
    if not source.can_seek:
        raise RestoreError(f"{source.name}: -P needs a file or a tape drive: a pipe cannot tell positions")
    try:
        out = open(name, "w", encoding="ascii")
    except OSError as exc:
        raise RestoreError(f"cannot create the QFA file {name}: {exc.strerror}") from None
    lines = 0
    pass5: QfaEntry | None = None
    with out:
        try:
            out.write(qfa_preamble(header.c_date))
            while (rec := image.records.pop()) is not None:
                head = rec.head
                if head.c_type == RecordType.TS_END:
                    image.ended = True
                    break
                if head.c_type == RecordType.TS_INODE and rec.header.c_extattributes == EXT_PASS5 \
                        and head.c_flags & DR_EXTATTRIBUTES and pass5 is None:
                    volume, position = source.where(rec.index, record_size)
                    if position is not None:
                        pass5 = QfaEntry(head.c_inumber, volume, position)
                if head.c_type != RecordType.TS_INODE or head.c_flags & DR_EXTATTRIBUTES \
                        or head.c_inumber not in leaves:
                    continue
                volume, position = source.where(rec.index, record_size)
                if position is None:
                    raise RestoreError(f"{source.name}: the medium cannot tell its position: "
                                       f"the QFA file {name} is incomplete")
                out.write(qfa_line(QfaEntry(head.c_inumber, volume, position)))
                lines += 1
        except OSError as exc:
            raise RestoreError(f"cannot write the QFA file {name}: {exc.strerror}") from None
    if pass5 is not None and os.path.isfile(name):  # (a pipe's reader has the entries as they are)
        try:
            note_pass5(name, header.c_date, pass5)
        except OSError as exc:
            raise RestoreError(f"cannot write the QFA file {name}: {exc.strerror}") from None
    return lines
