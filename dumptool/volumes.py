"""Where each volume of a dump goes (dump's volume changes, as FreeBSD keeps them beside ``optr.c``).

:class:`VolumeChanger` mounts volume n+1 when the record writer needs it:
the next file of a ``-M`` set, the next cartridge of a shelf (by slot
order), or, on a tape nothing can change by itself (a Linux st drive, a
shelf with no cartridge left), whatever the operator mounts when asked on
the terminal as dump asks (:func:`dumptool.operator.ask_for_volume`).
Without a terminal, or under ``--no-prompt``, it fails clearly.  A ``-F``
script runs first at each change.

Nothing is overwritten unasked: from the slots only a blank cartridge (no
data at all) is taken, or one ``--scratch`` names; a used, a
write-protected or an unreadable one is passed over with a warning and left
as it was.  A cartridge the operator loads by hand that holds data is taken
only once the operator says it may be overwritten, and never a volume of
this same dump; a file holding a volume of this dump, or any data, is never
overwritten.  (The first volume goes where the operator put the drive, as
with dump.)
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tapelib import EndOfMedium, ShelfError, TapeError
from tapelib.devicefile import read_device_marker

from .errors import DumpError, MediumError
from .operator import Terminal, ask_for_volume, confirm, run_volume_script
from .medium import Sink, SinkWrapper, open_sink, volume_file

if TYPE_CHECKING:
    from tapelib import Shelf

    from .dump import DumpOptions


class FullTapeSink(SinkWrapper):
    """A tape sink that, once the medium said it is full, lets its close fail
    quietly: a full cartridge may refuse even its closing filemark, and
    restore stops at the end of data all the same."""

    def __init__(self, inner: Sink) -> None:
        super().__init__(inner)
        self._full = False

    def write_record(self, record: bytes) -> None:
        try:
            self.inner.write_record(record)
        except EndOfMedium:
            self._full = True
            raise

    def close(self) -> None:
        try:
            self.inner.close()
        except MediumError:
            if not self._full:
                raise


def shelf_drive(device: str) -> tuple[Shelf, int] | None:
    """The shelf and drive number of a shelf's device file *device*, else None."""
    marker = read_device_marker(Path(device)) if os.path.isfile(device) else None
    if marker is None:
        return None
    from tapelib import Shelf

    return Shelf(Path(device).parent), marker[0]


def slots_after(slot: int, count: int) -> list[int]:
    """The order the next cartridge is looked for in: the slots after *slot*, then from the first."""
    return list(range(slot + 1, count + 1)) + list(range(1, slot + 1))


def open_output(name: str) -> Sink:
    """The sink for ``-f NAME`` (a tape's wrapped in :class:`FullTapeSink`)."""
    sink = open_sink(name)
    return FullTapeSink(sink) if sink.is_tape else sink


class VolumeChanger:
    """Opens the volumes of one dump: the first with :meth:`first`, each
    further one with :meth:`mount`.  ``say``, ``warn`` and ``notify`` are
    the dump's operator lines, warnings and ``-n`` alerts."""

    def __init__(self, options: DumpOptions, *, say: Callable[[str], None], warn: Callable[[str], None],
                 notify: Callable[[str], None]) -> None:
        self.options = options
        self.say = say
        self.warn = warn
        self.notify = notify
        self.is_tape = False
        self._used: set[str] = set()   # this dump's cartridges
        self._files: dict[tuple[int, int], int] = {}  # this dump's volume files: (dev, ino) -> volume

    def first(self) -> Sink:
        """Volume 1: ``-f``, or the first file of a ``-M`` set."""
        opts = self.options
        name = volume_file(opts.output, 1) if opts.multivolume else opts.output
        sink = open_output(name)
        self.is_tape = sink.is_tape
        self._note_file(name, 1)
        if opts.multivolume:
            self.say(f"Dumping volume 1 on {name}")
        return sink

    def mount(self, volume: int, current: str) -> Sink:
        """Volume ``volume``, once ``current`` (volume n-1's sink) is full and closed."""
        opts = self.options
        ready = self._run_script(current, volume - 1) == 0
        if opts.multivolume:
            name = volume_file(opts.output, volume)
            self.say(f"Dumping volume {volume} on {name}")
            sink = open_sink(name)
            self._note_file(name, volume)
            return sink
        if self.is_tape:
            return self._next_cartridge(volume, ready)
        return self._next_file(current, volume, ready)

    def _note_file(self, name: str, volume: int) -> None:
        """Remember that the regular file *name* holds *volume* of this dump."""
        try:
            st = os.stat(name)
        except OSError:
            return
        if stat.S_ISREG(st.st_mode):
            self._files[(st.st_dev, st.st_ino)] = volume

    def _run_script(self, device: str, volume: int) -> int:
        """dump's ``-F`` script, run as ``SCRIPT DEVICE VOLUME`` for the
        volume just full: 0, the next volume is ready; 1, go on as without
        a script; anything else stops the dump (1 when there is no script)."""
        script = self.options.eot_script
        if not script:
            return 1
        self.say(f"Launching {script}")
        import subprocess  # here: only -F runs a script

        # its output goes to stderr: stdout may carry the image
        code = run_volume_script(script, device, volume, stdin=subprocess.DEVNULL, stdout=2)
        if code not in (0, 1):
            raise MediumError(f"Dump aborted by the end of tape script {script} (exit status {code})")
        return code

    # -- plain files -------------------------------------------------------------------
    def _next_file(self, current: str, volume: int, ready: bool) -> Sink:
        """Volume *volume* of a ``-B`` dump to a plain file (no ``-M``): the
        operator moves the full volume away and says yes (the next one goes
        to the same name, as with dump), or types the name of a new file."""
        opts = self.options
        full = f"{current}: volume {volume - 1} is full (-B {opts.volume_blocks})"
        if opts.output == "-":
            raise MediumError(f"{full}: standard output cannot change volumes: use -M (a file per volume)",
                              errno.ENOSPC)
        if ready:  # the -F script made the next volume ready
            refusal = self._file_refusal(current)
            if refusal:
                raise MediumError(f"{full} and the end of tape script left it in place: {refusal}", errno.ENOSPC)
            return self._open_file(current, volume)

        def mount(tty: Terminal, answer: str) -> Sink | None:
            name = current if answer == "yes" else os.path.expanduser(answer)
            if not name:
                tty.write('  DUMP: "yes", "no" or a file name?\n')
                return None
            refusal = self._file_refusal(name)
            if refusal:
                tty.write(f"  DUMP: {refusal}\n")
                return None
            try:
                return self._open_file(name, volume)
            except (DumpError, TapeError) as exc:
                tty.write(f"  DUMP: cannot open {name}: {getattr(exc, 'message', exc)}\n")
                return None

        intro = (f"  DUMP: Change Volumes: Mount volume #{volume}\n"
                 f"  DUMP: {current} holds volume {volume - 1}: move it away and answer yes (volume "
                 f"{volume} goes to {current} again), or type the name of a new file for volume {volume}\n")
        return ask_for_volume(volume, problem=full, never_ask=opts.never_ask, notify=self.notify, abort=current,
                              remedy="use -M (a file per volume), or -F SCRIPT to move full volumes away",
                              intro=intro, mount=mount, names=True)

    def _file_refusal(self, name: str) -> str | None:
        """Why *name* may not take the next volume (None: it may)."""
        try:
            st = os.stat(name)
        except FileNotFoundError:
            return None
        except OSError as exc:
            return f"{name}: {exc.strerror}"
        held = self._files.get((st.st_dev, st.st_ino))
        if held is not None:
            return f"{name} holds volume {held} of this dump: move it away first, or give a new name"
        if stat.S_ISREG(st.st_mode) and st.st_size:
            return f"{name} holds {st.st_size} bytes of earlier data: move it away, or give a new name"
        return None

    def _open_file(self, name: str, volume: int) -> Sink:
        sink = open_output(name)
        self._note_file(name, volume)
        self.say(f"Volume {volume} goes to {name}")
        return sink

    # -- cartridges --------------------------------------------------------------------
    def _shelf_drive(self) -> tuple[Shelf, int] | None:
        """The shelf and drive number of a shelf device output, else None."""
        return shelf_drive(self.options.output)

    def _next_cartridge(self, volume: int, ready: bool) -> Sink:
        device = self.options.output
        if ready:  # the -F script changed the cartridge: check it as an operator's
            refusal = self._script_mount_refusal()
            if refusal:
                raise MediumError(f"{device}: the end of tape script mounted a cartridge pydump may not write "
                                  f"volume {volume} on: {refusal}", errno.ENOSPC)
            return open_output(device)
        try:
            found = self._shelf_drive()
            if found is None:
                return self._ask_operator(volume, f"{device}: end of tape on volume {volume - 1}")
            shelf, drive = found
            barcode, slot = shelf.unload(drive)
            self._used.add(barcode)
            passed_over: set[str] = set()
            taken: set[str] = set()  # by another process between the look and the load
            while True:
                chosen = self._blank_in_slots(shelf, slot, passed_over | taken, passed_over)
                if chosen is None or self._load_unless_taken(shelf, drive, *chosen):
                    break
                taken.add(chosen[0])
            if chosen is None:
                if passed_over:
                    return self._ask_operator(
                        volume, f"{device}: end of tape on volume {volume - 1} and no blank cartridge in the "
                        "shelf's slots", remedy="add a blank one (pytape new), or name one that may be "
                        "overwritten with --scratch, and dump again")
                return self._ask_operator(
                    volume, f"{device}: end of tape on volume {volume - 1} and no other cartridge in the "
                    "shelf's slots", remedy="add one (pytape new) and dump again")
        except TapeError as exc:
            raise MediumError(f"{device}: cannot change cartridges: {exc.message}", exc.errno) from None
        return open_output(device)

    def _blank_in_slots(self, shelf: Shelf, after: int, skip: set[str],
                        passed_over: set[str]) -> tuple[str, int] | None:
        """The first cartridge, in the slots after slot *after* then from the
        first, that may take the next volume: ``(barcode, slot)``, None when
        none may.  Those that may not are named (added to *passed_over*);
        those in *skip* were looked at already."""
        slots = shelf.status().slots
        for candidate in slots_after(after, len(slots)):
            name = slots[candidate - 1]
            if name is None or name in self._used or name in skip:
                continue
            unfit = self._unfit(shelf, name)
            if unfit is not None:
                self.warn(f"passing over {name} in slot {candidate}: {unfit}")
                passed_over.add(name)
                continue
            return name, candidate
        return None

    def _unfit(self, shelf: Shelf, name: str) -> str | None:
        """Why cartridge *name* may not take the next volume unasked (None: it may)."""
        unfit, used = self._survey(shelf, name)
        if unfit is None and used and name not in self.options.scratch:
            unfit = (f"it holds {used} bytes of earlier data (pydump takes only blank cartridges, "
                     "and those --scratch names)")
        return unfit

    def _load_unless_taken(self, shelf: Shelf, drive: int, name: str, slot: int) -> bool:
        """Load cartridge *name* (looked at in *slot*) into *drive*; False when
        another process (a dump on another drive of this shelf) took it from
        the slots since, or wrote on it meanwhile (it is put back): the next
        one is looked for.  It is loaded by its barcode, so a cartridge put
        in that slot since is never taken unseen."""
        try:
            shelf.load(f"barcode:{name}", drive)
        except ShelfError:
            if name in shelf.status().slots:
                raise  # still there: the load itself failed
            self.say(f"Changing volumes: {name} left slot {slot} meanwhile (another process took it): "
                     "looking for the next blank cartridge")
            return False
        unfit = self._unfit(shelf, name)  # in our drive now: no one else loads it
        if unfit is not None:
            shelf.unload(drive)
            self.say(f"Changing volumes: {name} changed meanwhile ({unfit}): put back, looking for the next")
            return False
        self._used.add(name)
        self.say(f"Changing volumes: loaded {name} from slot {slot} into drive {drive}")
        return True

    def _survey(self, shelf: Shelf, barcode: str) -> tuple[str | None, int]:
        """What stops cartridge ``barcode`` from taking a volume whatever
        anyone says (None: nothing), and how many bytes of data it holds
        (0: blank; data may be overwritten only where the operator said so)."""
        from tapelib import Cartridge

        path = shelf.cartridge_path(barcode)
        try:
            cartridge = Cartridge(path, writable=False)
        except TapeError as exc:
            return f"unreadable ({exc.message})", 0
        try:
            if cartridge.write_protected:
                return "it is write-protected", 0
            # Bytes past the end of data (a torn record, damage) count as data too.
            return None, max(cartridge.end, path.stat().st_size)
        except OSError as exc:
            return f"unreadable ({exc.strerror})", 0
        finally:
            cartridge.close()

    def _ask_operator(self, volume: int, problem: str, remedy: str = "use a larger tape or a shelf drive") -> Sink:
        """dump's "Change Volumes" dialogue on /dev/tty; the reopened device once the operator says yes."""
        device = self.options.output

        def mount(tty: Terminal, answer: str) -> Sink | None:
            refusal, barcode = self._check_mounted(tty)
            if refusal:
                tty.write(f"  DUMP: {refusal}\n  DUMP: Change Volumes: Mount volume #{volume}\n")
                return None
            try:
                sink = open_output(device)
            except (DumpError, TapeError) as exc:
                tty.write(f"  DUMP: cannot open {device}: {getattr(exc, 'message', exc)}\n")
                return None
            if barcode is not None:
                self._used.add(barcode)
            self.say(f"Volume {volume} mounted on {device} by the operator")
            return sink

        return ask_for_volume(volume, problem=problem, remedy=remedy, never_ask=self.options.never_ask,
                              notify=self.notify, abort=device, mount=mount,
                              intro=f"  DUMP: {problem}\n  DUMP: Change Volumes: Mount volume #{volume}\n")

    def _script_mount_refusal(self) -> str | None:
        """Why the cartridge a ``-F`` script mounted may not take a volume (None: it may)."""
        try:
            found = self._shelf_drive()
            if found is None:
                return None  # a drive that cannot tell what it holds: the script's word
            shelf, drive = found
            barcode = shelf.status().drives[drive].barcode
            if barcode is None:
                return f"drive {drive} is empty"
            if barcode in self._used:
                return f"{barcode} holds a volume of this dump"
            unfit, used = self._survey(shelf, barcode)
        except TapeError as exc:
            return exc.message
        if unfit is not None:
            return f"{barcode}: {unfit}"
        if used and barcode not in self.options.scratch:
            return f"{barcode} holds {used} bytes of earlier data (name it with --scratch to overwrite it)"
        self._used.add(barcode)
        return None

    def _check_mounted(self, tty: Terminal) -> tuple[str | None, str | None]:
        """On a shelf drive, why the cartridge the operator mounted may not
        take the volume (None: it may), and its barcode.  One with data on
        it is asked about: the operator must say it may be overwritten."""
        try:
            found = self._shelf_drive()
            if found is None:
                return None, None  # a drive that cannot tell what it holds: the operator's word
            shelf, drive = found
            barcode = shelf.status().drives[drive].barcode
            if barcode is None:
                return f"drive {drive} is empty", None
            if barcode in self._used:
                return f"{barcode} holds a volume of this dump: mount another cartridge", barcode
            unfit, used = self._survey(shelf, barcode)
        except TapeError as exc:
            return exc.message, None
        if unfit is not None:
            return f"{barcode}: {unfit}", barcode
        if used and barcode not in self.options.scratch:
            if not confirm(tty, f"{barcode} holds {used} bytes of earlier data: overwrite it?"):
                return f"{barcode} left as it is", barcode
        return None, barcode
