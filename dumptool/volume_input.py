"""The blocks of a dump image, across its volumes (restore's tape.c: the
reading side of the medium).

:class:`VolumeInput` opens the first volume (a file, a pipe, a tape drive,
``host:device``), asks for each next one at a volume's end and checks that
it is the right volume of the same dump, seeks for ``-Q`` and goes back to
the start for another pass (``-i``'s next ``extract``).
"""

from __future__ import annotations

import bisect
import os
import stat
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from tapelib import TapeError
from tapelib.device import is_remote

from .errors import FormatError, MediumError
from .format import (DR_COMPRESSED, TP_BSIZE, ByteOrder, Header, RecordType, header_byte_order, other_dump,
                     skip_to_header)
from .compression import DecompressingSource
from .offsetmap import image_id
from .medium import RecordReader, Source, open_source
from .restore_report import RestoreError
from .volumes import shelf_drive, slots_after

if TYPE_CHECKING:
    from tapelib import Shelf

class VolumeInput:
    """The 1 KiB blocks of a dump, across volumes.

    At the end of a volume before the dump's end, *ask* is called with the
    next volume number and returns a name to open (``None``: no more
    volumes).  Each later volume must start with a TS_TAPE of the right
    number and dump date; its header is dropped and the stream goes on.
    """

    def __init__(self, name: str, *, ask: Callable[[int, str], str | None] | None = None,
                 tape_file: int = 1, remote_file: bool = False) -> None:
        self.name = name
        self._ask = ask
        #: restore's -l: a ``host:name`` volume is a file or pipe on its host, not a drive
        self.remote_file = remote_file
        source = self._open(name)
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
        #: Where each volume opened starts, as its medium counts (a tape's
        #: logical block after -s's spacing, 0 on a file): file history's seeks
        self.volume_starts: dict[int, int | None] = {}
        self._reads_before = 0
        self._reader = self._reader_of(source)
        self._first_source = source  # volume 1 as opened (a tape is rewound on it for another pass)
        self.tape_file = tape_file
        self.date: int | None = None
        #: the image's id (dumptool.offsetmap.image_id) from its first volume's header
        self.image: str | None = None
        #: the first volume's header read: each later volume must be of its dump
        #: (format.other_dump: date, level, host, file system, device and label)
        self.first_header: Header | None = None
        self.ddate: int | None = None
        self.byte_order = ByteOrder.LITTLE
        #: The number of the volume being read (``-R`` starts at a later one).
        self.volume = 1
        #: Called with the next volume's number before asking for it (-r's checkpoint).
        self.on_volume_end: Callable[[int], None] | None = None
        #: Called when another pass over a tape starts (-i's next extract), before volume 1 is
        #: rewound to or asked for: the asker runs a -F script once a volume and pass.
        self.on_new_pass: Callable[[], None] | None = None
        #: Another pass over a tape asks for volume 1 even when it is in the drive (as restore:
        #: a -F script runs before it); else the drive is rewound without a word.
        self.asks_first_again = False
        #: Blocks read since volume 1's first, the later volumes' headers
        #: included (restore's ``tpblksread``); None once a seek or a
        #: resumed restore made it unknown.
        self.blocks_read: int | None = 0
        self._next_head: Header | None = None
        #: With :meth:`log_records`: ``(first walk block, volume, address,
        #: whole)`` of each read, for :meth:`where` (whole: the read is one
        #: record, as on a tape or in a compressed image).
        self._record_log: list[tuple[int, int, int | None, bool]] | None = None
        self._walk_blocks = 0

    def log_records(self) -> None:
        """Remember where each read from now on comes from (``-P``), so that
        :meth:`where` tells a header's position by its walk index."""
        self._record_log = []
        self._walk_blocks = 0

    def where(self, index: int, record_size: int) -> tuple[int, int | None]:
        """``(volume, position)`` of the record holding walk block *index*
        (after :meth:`log_records`), as a QFA file gives it: a tape's
        logical block, the byte offset of a file's *record_size* record (of
        a compressed image's record as read); position ``None`` where the
        medium cannot tell."""
        log = self._record_log
        assert log, "log_records() first"
        i = bisect.bisect_right(log, index, key=lambda e: e[0]) - 1
        first, volume, address, whole = log[max(i, 0)]
        if address is None or whole:
            return volume, address
        offset = address + (index - first) * TP_BSIZE
        return volume, offset - offset % record_size

    def _open(self, name: str) -> Source:
        return open_source(name, remote_file=self.remote_file)

    def _reader_of(self, source: Source, volume: int = 1) -> RecordReader:
        try:
            self.volume_starts[volume] = source.address()
        except Exception:  # MediumError: the medium cannot tell
            self.volume_starts[volume] = None
        return RecordReader(DecompressingSource(source, self._damaged), volume=volume)

    @property
    def records_read(self) -> int:
        """Reads from the media so far (records on a tape), every volume counted."""
        return self._reads_before + self._reader.reads

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
        skip = 0
        while True:
            while True:
                log = self._record_log
                address = reader.next_block_address if log is not None else None
                chunk = self._first_read(reader) if first else reader.read_blocks()
                if chunk is None:
                    break
                if self.blocks_read is not None:
                    self.blocks_read += len(chunk) // TP_BSIZE
                if skip:  # blocks the previous volume ended with, written again on this one
                    cut = min(skip, len(chunk) // TP_BSIZE)
                    skip -= cut
                    chunk = chunk[cut * TP_BSIZE:]
                    if address is not None and not reader.source.is_tape:
                        address += cut * TP_BSIZE
                    if not len(chunk):
                        continue
                if log is not None:
                    whole = reader.source.is_tape or bool(getattr(reader.source, "compressed", False))
                    log.append((self._walk_blocks, self.volume, address, whole))
                    self._walk_blocks += len(chunk) // TP_BSIZE
                if first:
                    first = False
                    block = chunk[:TP_BSIZE]
                    try:
                        self.byte_order = header_byte_order(block)
                        head = Header.unpack(block, self.byte_order)
                        self.date, self.ddate = head.c_date, head.c_ddate
                        self.image = image_id(head)
                        self.first_header = head
                    except FormatError:
                        pass
                yield chunk
            if first:  # not one block: an empty file or pipe, a blank tape or one at its end of data
                raise RestoreError("Tape read error on first record")
            nxt = self._next_volume(self.volume + 1)
            if nxt is None:
                return
            self._reads_before += self._reader.reads
            self._reader = reader = nxt  # its volume header is already read
            self.volume += 1
            skip = self._duplicates()

    def _duplicates(self) -> int:
        """How many blocks of the volume just opened repeat blocks read at
        the end of the previous one, as restore counts them: its header's
        ``c_firstrec`` names the stream block it starts with (a volume
        started again from an earlier point, a restarted dump's)."""
        head, self._next_head = self._next_head, None
        if self.blocks_read is None or head is None:
            return 0
        self.blocks_read += 1  # the volume header
        first = head.c_firstrec
        if 0 < first < self.blocks_read - 1:
            return self.blocks_read - 1 - first
        return 0

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
        self.blocks_read = None
        return True

    def jump_to_volume(self, number: int) -> bool:
        """Leave the rest of this volume unread and go on with the later volume
        *number* (a QFA position there), asking for it as at a volume's end;
        whether it was given.  Its blocks come from :meth:`after_seek`."""
        if number <= self.volume:
            return False
        # A tape drive is let go of before asking: the operator changes the
        # cartridge in that very drive (so this volume cannot be read on).
        on_tape = self._reader.source.is_tape and self._ask is not None
        reader = self._next_volume(number, release=on_tape)
        if reader is None:
            if on_tape:
                raise RestoreError(f"volume {number} was not given: the files on it and after it are not restored")
            return False
        self._reads_before += self._reader.reads
        self._reader = reader  # its volume header is already read
        self.volume = number
        self.blocks_read = self._next_head = None
        return True

    def after_seek(self) -> Iterator[bytes]:
        """The chunks after :meth:`seek_forward`, from the first header of this dump on."""
        return skip_to_header(self.chunks(identify=False), self.byte_order, self.date or 0)

    @property
    def is_tape(self) -> bool:
        return self._reader.source.is_tape

    def medium_lines(self, header: Header | None, input_blocks: int | None, not_tape: bool) -> list[str]:
        """What restore's ``-v`` says of the medium once its first record is
        read: "Input is from a local file/pipe" (a ``remote`` one, a ``tape``,
        ``-V``'s "multi-volume (no tape)"), then a tape's record size ("Tape
        block size is N") or the blocks restore reads at a time from a file
        or pipe ("Input block size is N": ``-b``'s *input_blocks*, else 32,
        else a compressed image's own)."""
        where = "remote" if is_remote(self.name) else "local"
        if self.is_tape:
            return [f"Input is from a {where} tape", f"Tape block size is {self._reader.ntrec or 0}"]
        compressed = header is not None and header.c_flags & DR_COMPRESSED
        blocks = header.c_ntrec if compressed else input_blocks or 32
        kind = "multi-volume (no tape)" if not_tape else "file/pipe"
        return [f"Input is from a {where} {kind}", f"Input block size is {blocks}"]

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
                reader = self._reader_of(self._open(name), volume=number)
                block = reader.read_block()
            except MediumError as exc:
                problem = exc.message
                continue
            problem = self._volume_problem(name, block, number)
            if not problem:
                self._reader.close()  # idempotent: released already, or now
                return reader
            reader.close()

    def start_again(self) -> None:
        """Go back to the first block of volume 1 for another pass over the
        image (``-i``'s next ``extract``): a file is opened again; a tape
        holding volume 1 is rewound and spaced to the dump's file (``-s``);
        with a later volume in the drive (or :attr:`asks_first_again`),
        volume 1 is asked for as restore's ``getvol(1)`` does (see
        :meth:`_first_volume_again`); a pipe is read only once
        (:class:`RestoreError` says so, and nothing changes)."""
        source = self._reader.source
        if source.is_tape:
            if self.on_new_pass is not None:
                self.on_new_pass()
            if self.volume != 1 or self.asks_first_again:
                self._first_volume_again()
                return
            self._to_dump(self._first_source)  # as restore would have the operator do
            self._reads_before += self._reader.reads
            self._reader = self._reader_of(self._first_source)  # the drive stays open: same source
            self.blocks_read = 0
            return
        try:  # -l's file on another host is opened again as restore does
            regular = self.remote_file and is_remote(self.name) or stat.S_ISREG(os.stat(self.name).st_mode)
        except OSError:
            regular = False
        if not regular:
            raise RestoreError(f"{self.name} is a pipe (or not a file): it can be read only once, so a second "
                               "extract pass is impossible; choose everything before one extract, or give "
                               "the image as a file")
        reader = self._reader_of(self._open(self.name))
        self._reader.close()
        self._reads_before += self._reader.reads
        self._reader = reader
        self.volume = 1
        self.blocks_read = 0

    def _first_volume_again(self) -> None:
        """Volume 1 for another pass, as restore's ``getvol(1)``: the drive
        is let go of (the operator or a ``-F`` script changes the cartridge
        in it), *ask* is called for volume 1 (it runs the script, offers the
        shelf's cartridge or asks), and what it names must start with
        volume 1 of this dump (else it is asked for again, with why); a tape
        is rewound and spaced to the dump's file (``-s``).  Not given:
        :class:`RestoreError`, and the next pass asks again."""
        if self._ask is None:
            raise RestoreError(f"another pass starts on volume 1 and volume {self.volume} is in the drive: "
                               "quit, mount volume 1 and run pyrestore -i again")
        self._reader.close()  # idempotent: volume 1's drive, or a later volume's
        self._first_source.close()
        problem = ""
        while True:
            name = self._ask(1, problem)
            if name is None:
                raise RestoreError(f"volume 1 was not given: another extract pass starts there "
                                   f"(volume {self.volume} was read last)")
            try:
                source = self._open(name)
            except MediumError as exc:
                problem = exc.message
                continue
            try:
                self._to_dump(source)
                block = RecordReader(DecompressingSource(source, self._damaged)).read_block()
                problem = self._volume_problem(name, block, 1)
                if not problem:
                    if source.is_tape:
                        self._to_dump(source)  # read again from its first block
                        break
                    again = self._open(name)  # a file (the operator's copy): opened again
                    source.close()
                    source = again
                    break
            except MediumError as exc:
                problem = exc.message
            source.close()
        self._reads_before += self._reader.reads
        self._first_source = source
        self._reader = self._reader_of(source)
        self.name = name
        self.volume = 1
        self.blocks_read = 0
        self._next_head = None

    def _to_dump(self, source: Source) -> None:
        """A tape *source* rewound and spaced to the dump's file (``-s``)."""
        if source.is_tape:
            source.rewind()
            if self.tape_file > 1:
                source.space_files(self.tape_file - 1)

    def _volume_problem(self, name: str, block: bytes | None, number: int) -> str:
        """What is wrong with *block* as the first of volume *number* of this dump ("" if nothing)."""
        try:
            head = Header.unpack(block, self.byte_order) if block is not None else None
        except FormatError:
            head = None
        if head is None or head.c_type != RecordType.TS_TAPE:
            return f"{name} is not a dump volume"
        if self.first_header is None:
            if head.c_date != self.date or head.c_ddate != self.ddate:
                return f"{name}: wrong dump date (volume of another dump)"
        else:
            other = other_dump(head, self.first_header)
            if other:  # the same second is not enough: another dump started then is another dump
                return f"{name}: volume of another dump ({other})"
        if head.c_volume != number:
            return f"{name}: wrong volume ({head.c_volume}), expected volume {number}"
        self._next_head = head
        return ""

    def close(self) -> None:
        self._reader.close()



class ShelfVolumes:
    """The cartridges of a dump read on a shelf drive: at a volume's end the
    one holding the next volume is looked for in the slots, in the order
    pydump fills them (:func:`~dumptool.volumes.slots_after` the slot the
    drive's cartridge came from), by its first record: the ``TS_TAPE``
    header of that volume of the same dump.  Nothing moves until
    :meth:`load`."""

    def __init__(self, shelf: "Shelf", drive: int, device: str) -> None:
        self.shelf = shelf
        self.drive = drive
        self.device = device

    @classmethod
    def of(cls, device: str) -> "ShelfVolumes | None":
        """For a shelf's device file *device*; None for any other medium."""
        found = shelf_drive(device)
        return cls(found[0], found[1], device) if found is not None else None

    def find(self, image: str, number: int) -> tuple[str, int] | None:
        """The slot holding volume *number* of the dump *image* (its
        :func:`~dumptool.offsetmap.image_id`: the date alone would take
        another dump made in the same second): ``(barcode, slot)``, None when
        no slot holds it."""
        try:
            status = self.shelf.status()
            after = status.drives[self.drive].source_slot or 0
            for candidate in slots_after(after, len(status.slots)):
                barcode = status.slots[candidate - 1]
                if barcode is None:
                    continue
                head = self._first_header(barcode)
                if head is not None and head.c_type == RecordType.TS_TAPE and image_id(head) == image \
                        and head.c_volume == number:
                    return barcode, candidate
        except TapeError as exc:
            raise RestoreError(f"{self.device}: cannot look through the shelf's slots: {exc.message}") from None
        return None

    def load(self, slot: int) -> None:
        """Put the drive's cartridge back in its slot and load the one in *slot*."""
        try:
            if self.shelf.status().drives[self.drive].barcode is not None:
                self.shelf.unload(self.drive)
            self.shelf.load(slot, self.drive)
        except TapeError as exc:
            raise RestoreError(f"{self.device}: cannot change cartridges: {exc.message}") from None

    def _first_header(self, barcode: str) -> Header | None:
        """The header a cartridge starts with (None: blank, unreadable or no dump)."""
        from tapelib import Cartridge

        try:
            cartridge = Cartridge(self.shelf.cartridge_path(barcode), writable=False)
        except (TapeError, OSError):
            return None
        try:
            if not cartridge.end:
                return None
            data, _ = cartridge.read_record(0, 1 << 20)
            if not data or len(data) < TP_BSIZE:
                return None
            block = data[:TP_BSIZE]
            return Header.unpack(block, header_byte_order(block))
        except (TapeError, OSError, FormatError):
            return None
        finally:
            cartridge.close()
