"""A shelf: a folder that is a small tape library.

A shelf holds cartridges in numbered slots (1-based, as mtx counts storage
elements) and N drives.  Each drive has two device files, a rewinding
``SHELF/stN`` and a non-rewinding ``SHELF/nstN``, that users pass with
``-f``.  What each drive holds and where its head stands live in
``SHELF/state.json``, so a non-rewinding drive keeps its place between
processes.  One process at a time may use a drive (an ``flock`` on
``SHELF/.driveN.lock``); a second gets EBUSY.

Layout::

    SHELF/shelf.json              what this folder is: slots and drives
    SHELF/state.json              slot contents, drive contents and positions
    SHELF/st0, SHELF/nst0, ...    device files
    SHELF/cartridges/B.awstape    cartridge B's records (AWSTAPE)
    SHELF/cartridges/B.json       cartridge B's capacity, protection, ...
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from snapdump.numerals import is_decimal

from .cartridge import CARTRIDGE_SUFFIX, DEFAULT_CAPACITY, Cartridge, metadata_path, write_json
from .devicefile import device_marker
from .errors import DriveBusy, NoMedium, NoSuchDevice, NotACartridge, ShelfError, WriteProtected
from .loopback import LoopbackDrive
from .position import Position

SHELF_FORMAT = "snapdump-shelf"
_BARCODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")


def _named(what: str) -> tuple[str | None, str]:
    """``(kind, name)`` of a cartridge named to :meth:`Shelf.load`: kind
    ``"slot"`` or ``"barcode"`` when ``slot:`` or ``barcode:`` says which
    (a barcode holds no colon), None when the name alone must tell."""
    kind, colon, name = what.partition(":")
    if colon and kind in ("slot", "barcode"):
        return kind, name
    return None, what


def _holding_problem(place: str, barcode: object, seen: set[str]) -> str | None:
    """What is wrong with ``place`` holding ``barcode`` in state.json (``None``:
    nothing); a good barcode is added to ``seen``, the barcodes met so far."""
    if barcode is None:
        return None
    if not isinstance(barcode, str) or not _BARCODE.match(barcode):
        return f"{place} holds {barcode!r}, not a barcode"
    if barcode in seen:
        return f"cartridge {barcode} is in two places"
    seen.add(barcode)
    return None


@dataclass(frozen=True)
class DriveInfo:
    """What one drive holds and where it stands."""

    index: int
    barcode: str | None
    source_slot: int | None
    position: Position
    busy: bool


@dataclass(frozen=True)
class ShelfStatus:
    """Slots (index 0 is slot 1) and drives of a shelf."""

    slots: list[str | None]
    drives: list[DriveInfo]


class Shelf:
    """An existing shelf folder."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            info = json.loads((self.path / "shelf.json").read_text())
        except FileNotFoundError:
            raise NoSuchDevice(f"{self.path}: not a tape shelf (no shelf.json; make one with 'pytape create')") from None
        except (OSError, ValueError) as exc:
            raise ShelfError(f"{self.path}: unreadable shelf.json ({exc})") from None
        if not isinstance(info, dict) or info.get("format") != SHELF_FORMAT:
            raise ShelfError(f"{self.path}: shelf.json is not a tape shelf description")
        for key, most in (("slots", 10000), ("drives", 64)):
            value = info.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
                raise ShelfError(f"{self.path}: damaged shelf.json: {key} is {value!r}, not 1 to {most}")
        self.slot_count: int = info["slots"]
        self.drive_count: int = info["drives"]

    # -- creation --------------------------------------------------------------
    @classmethod
    def create(cls, path: Path, drives: int = 1, slots: int = 8) -> "Shelf":
        """Make a new shelf folder (it may exist but must be empty)."""
        path = Path(path)
        if not 1 <= drives <= 64:
            raise ShelfError(f"drives must be 1 to 64, not {drives}")
        if not 1 <= slots <= 10000:
            raise ShelfError(f"slots must be 1 to 10000, not {slots}")
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise ShelfError(f"{path}: exists and is not an empty folder")
        (path / "cartridges").mkdir(parents=True, exist_ok=True)
        write_json(path / "state.json", {
            "slots": [None] * slots,
            "drives": [{"barcode": None, "source_slot": None, "position": Position().to_dict()}
                       for _ in range(drives)],
        })
        for i in range(drives):
            (path / f"st{i}").write_text(device_marker(i, True))
            (path / f"nst{i}").write_text(device_marker(i, False))
        write_json(path / "shelf.json", {"format": SHELF_FORMAT, "version": 1,
                                          "slots": slots, "drives": drives})
        return cls(path)

    # -- state -------------------------------------------------------------------
    @contextlib.contextmanager
    def _state(self, write: bool = True, positions: bool = True) -> Iterator[dict]:
        """The shelf state under the shelf lock; saved on exit when ``write``.
        Every field is checked first (drive positions too, unless not
        ``positions``: unloading a drive resets its position)."""
        with open(self.path / ".shelf.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state = json.loads((self.path / "state.json").read_text())
            except (OSError, ValueError) as exc:
                raise ShelfError(f"{self.path}: unreadable state.json ({exc})") from None
            problem = self._state_problem(state, positions)
            if problem is not None:
                raise ShelfError(f"{self.path}/state.json: damaged drive state: {problem}")
            yield state
            if write:
                write_json(self.path / "state.json", state)

    def _state_problem(self, state: object, positions: bool) -> str | None:
        """What is wrong with a loaded state.json (``None``: nothing)."""
        if not isinstance(state, dict):
            return "not a mapping"
        slots, drives = state.get("slots"), state.get("drives")
        if not isinstance(slots, list) or len(slots) != self.slot_count:
            return f"slots is not a list of {self.slot_count}"
        if not isinstance(drives, list) or len(drives) != self.drive_count:
            return f"drives is not a list of {self.drive_count}"
        seen: set[str] = set()
        for i, barcode in enumerate(slots):
            problem = _holding_problem(f"slot {i + 1}", barcode, seen)
            if problem is not None:
                return problem
        for i, entry in enumerate(drives):
            if not isinstance(entry, dict):
                return f"drive {i} is {entry!r}, not a mapping"
            barcode, slot = entry.get("barcode"), entry.get("source_slot")
            problem = _holding_problem(f"drive {i}", barcode, seen)
            if problem is not None:
                return problem
            if slot is not None and (isinstance(slot, bool) or not isinstance(slot, int)
                                     or not 1 <= slot <= self.slot_count):
                return f"drive {i}'s source_slot is {slot!r}, not a slot"
            if positions:
                try:
                    Position.from_dict(entry.get("position"))
                except ValueError as exc:
                    return (f"drive {i}: {exc} (unload the drive with 'pytape unload' "
                            "to reset its position)")
        return None

    @contextlib.contextmanager
    def _drive_lock(self, index: int) -> Iterator[int]:
        """Hold drive ``index`` for this process; EBUSY if another holds it."""
        fd = self._take_drive(index)
        try:
            yield fd
        finally:
            os.close(fd)

    def _take_drive(self, index: int) -> int:
        self._check_drive(index)
        fd = os.open(self.path / f".drive{index}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DriveBusy(f"{self.path}/nst{index}: device busy (another process is using drive {index})") from None
        return fd

    def _check_drive(self, index: int) -> None:
        if not 0 <= index < self.drive_count:
            raise ShelfError(f"{self.path}: no drive {index} (drives 0 to {self.drive_count - 1})")

    def _check_slot(self, slot: int) -> None:
        if not 1 <= slot <= self.slot_count:
            raise ShelfError(f"{self.path}: no slot {slot} (slots 1 to {self.slot_count})")

    def cartridge_path(self, barcode: str) -> Path:
        return self.path / "cartridges" / f"{barcode}{CARTRIDGE_SUFFIX}"

    def device_path(self, drive: int, rewind: bool) -> Path:
        return self.path / f"{'' if rewind else 'n'}st{drive}"

    # -- changer verbs -------------------------------------------------------------
    def new_cartridge(self, barcode: str, capacity: int = DEFAULT_CAPACITY,
                      early_warning: int | None = None) -> int:
        """Make a blank cartridge in the first free slot; returns the slot."""
        if not _BARCODE.match(barcode):
            raise ShelfError(f"bad barcode {barcode!r}: use 1 to 32 letters, digits, '_', '.', '-'")
        with self._state() as state:
            if self._locate(state, barcode) is not None:
                raise ShelfError(f"{self.path}: cartridge {barcode} already exists")
            free = [i for i, b in enumerate(state["slots"]) if b is None]
            if not free:
                raise ShelfError(f"{self.path}: no free slot for {barcode}")
            try:
                Cartridge.create(self.cartridge_path(barcode), barcode, capacity, early_warning)
            except FileExistsError:
                raise ShelfError(f"{self.path}: a cartridge file for {barcode} already exists") from None
            state["slots"][free[0]] = barcode
            return free[0] + 1

    def _locate(self, state: dict, barcode: str) -> tuple[str, int] | None:
        for i, b in enumerate(state["slots"]):
            if b == barcode:
                return "slot", i + 1
        for i, d in enumerate(state["drives"]):
            if d.get("barcode") == barcode:
                return "drive", i
        return None

    def load(self, what: str | int, drive: int = 0) -> str:
        """Move a cartridge from its slot into a drive, online at BOT; returns
        its barcode.  *what* is a slot number (an int, or ``"slot:N"``), a
        barcode (``"barcode:B"`` says so), or a name that is either: a
        barcode first, else an all-digit name is a slot number.  A name that
        is a barcode and also the number of a slot holding another cartridge
        is refused as ambiguous, naming both."""
        with self._drive_lock(drive), self._state() as state:
            slot = self._slot_of(state, what)
            barcode = state["slots"][slot - 1]
            entry = state["drives"][drive]
            if entry.get("barcode") is not None:
                raise ShelfError(f"{self.path}: drive {drive} already holds {entry['barcode']}; unload it first")
            state["slots"][slot - 1] = None
            state["drives"][drive] = {"barcode": barcode, "source_slot": slot,
                                      "position": Position().to_dict()}
            return barcode

    def _slot_of(self, state: dict, what: str | int) -> int:
        """The slot of the cartridge *what* names (see :meth:`load`)."""
        kind, name = ("slot", str(what)) if isinstance(what, int) else _named(str(what))
        if kind != "slot":
            where = self._locate(state, name)
            number = int(name) if kind is None and is_decimal(name) else None
            if where is None and number is None:
                raise ShelfError(f"{self.path}: no cartridge {name}")
            if where is not None and number is not None and 1 <= number <= self.slot_count \
                    and state["slots"][number - 1] not in (None, name):
                place = f"in slot {where[1]}" if where[0] == "slot" else f"in drive {where[1]}"
                raise ShelfError(
                    f"{self.path}: {name} is ambiguous: cartridge {name} ({place}) or slot {number}, which holds "
                    f"{state['slots'][number - 1]}: say barcode:{name} or slot:{number}")
            if where is not None:
                if where[0] == "drive":
                    raise ShelfError(f"{self.path}: {name} is already in drive {where[1]}")
                return where[1]
            name = str(number)
        if not is_decimal(name):
            raise ShelfError(f"{self.path}: slot {name!r} is not a slot number")
        slot = int(name)
        self._check_slot(slot)
        if state["slots"][slot - 1] is None:
            raise ShelfError(f"{self.path}: slot {slot} is empty")
        return slot

    def unload(self, drive: int = 0, slot: int | None = None) -> tuple[str, int]:
        """Rewind and move a drive's cartridge back to its slot (or ``slot``)."""
        with self._drive_lock(drive), self._state(positions=False) as state:
            entry = state["drives"][drive]
            barcode = entry.get("barcode")
            if barcode is None:
                raise NoMedium(f"{self.path}: drive {drive} is empty")
            if slot is not None:
                self._check_slot(slot)
            target = slot if slot is not None else entry.get("source_slot")
            if target is None or state["slots"][target - 1] is not None:
                free = [i + 1 for i, b in enumerate(state["slots"]) if b is None]
                if slot is not None or not free:
                    raise ShelfError(f"{self.path}: slot {target} is not free")
                target = free[0]
            self._check_slot(target)
            state["slots"][target - 1] = barcode
            state["drives"][drive] = {"barcode": None, "source_slot": None,
                                      "position": Position().to_dict()}
            return barcode, target

    def transfer(self, source: int, target: int) -> str:
        """Move a cartridge from one slot to another."""
        self._check_slot(source)
        self._check_slot(target)
        with self._state() as state:
            barcode = state["slots"][source - 1]
            if barcode is None:
                raise ShelfError(f"{self.path}: slot {source} is empty")
            if state["slots"][target - 1] is not None:
                raise ShelfError(f"{self.path}: slot {target} is full")
            state["slots"][source - 1] = None
            state["slots"][target - 1] = barcode
            return barcode

    def set_write_protect(self, barcode: str, protect: bool) -> None:
        """Slide a cartridge's write-protect tab."""
        with self._state(write=False) as state:
            if self._locate(state, barcode) is None:
                raise ShelfError(f"{self.path}: no cartridge {barcode}")
            meta_file = metadata_path(self.cartridge_path(barcode))
            try:
                meta = json.loads(meta_file.read_text())
            except (OSError, ValueError) as exc:
                raise NotACartridge(f"{meta_file}: unreadable cartridge metadata ({exc})") from None
            if not isinstance(meta, dict):
                raise NotACartridge(f"{meta_file}: not a cartridge metadata file")
            meta["write_protected"] = protect
            write_json(meta_file, meta)

    def status(self) -> ShelfStatus:
        """Slots and drives, with each drive's position and whether it is in use."""
        with self._state(write=False) as state:
            drives = []
            for i, entry in enumerate(state["drives"]):
                busy = False
                try:
                    os.close(self._take_drive(i))
                except DriveBusy:
                    busy = True
                drives.append(DriveInfo(i, entry.get("barcode"), entry.get("source_slot"),
                                        Position.from_dict(entry["position"]), busy))
            return ShelfStatus(list(state["slots"]), drives)

    # -- drives --------------------------------------------------------------------
    def open_drive(self, index: int, rewind: bool = False, writable: bool = False) -> LoopbackDrive:
        """Open drive ``index`` for this process, starting where it was left.

        ``writable`` on a write-protected cartridge fails with EROFS, as st's
        open does.  The drive stays busy until the returned drive is closed.
        """
        name = str(self.device_path(index, rewind))
        lock_fd = self._take_drive(index)
        try:
            with self._state(write=False) as state:
                entry = state["drives"][index]
            barcode = entry.get("barcode")
            position = Position.from_dict(entry["position"])
            cartridge = None
            if barcode is not None:
                cartridge = Cartridge(self.cartridge_path(barcode), writable, exclusive=True)
                if writable and cartridge.write_protected:
                    cartridge.close()
                    raise WriteProtected(f"{name}: cartridge {barcode} is write-protected")
        except BaseException:
            os.close(lock_fd)
            raise

        def save(final: Position) -> None:
            try:
                with self._state() as st:
                    if st["drives"][index].get("barcode") == barcode:
                        st["drives"][index]["position"] = final.to_dict()
            finally:
                os.close(lock_fd)

        return LoopbackDrive(name, cartridge, position, rewind_on_close=rewind, on_close=save)
