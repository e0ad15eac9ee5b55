"""pytape: the changer of a shelf, with mtx's verbs and cartridge management.

::

    pytape create SHELF [--drives N] [--slots N]
    pytape new SHELF BARCODE [--capacity SIZE]
    pytape status SHELF
    pytape load SHELF BARCODE|SLOT|slot:N|barcode:B [--drive N]
    pytape unload SHELF [--drive N] [--slot N]
    pytape transfer SHELF SLOT SLOT
    pytape protect|unprotect SHELF BARCODE

``status`` prints mtx's layout ("Storage Changer", "Data Transfer Element",
"Storage Element"), so scripts written for ``mtx status`` find the same
lines; what mtx does not say (drive position, whether a drive is in use, a
cartridge's capacity, use and write-protect tab) is on indented lines of
their own after the element it describes.

Errors: one line on stderr and status 1; usage errors status 2 (argparse).
"""

from __future__ import annotations

import argparse
import re
import sys
from decimal import Decimal, InvalidOperation
from importlib import metadata
from pathlib import Path
from typing import Sequence

from snapdump.exits import EXIT_OK, run

from ..cartridge import DEFAULT_CAPACITY, Cartridge
from ..errors import TapeError
from ..shelf import DriveInfo, Shelf

PROG = "pytape"

#: Size units, binary: K = 1024 bytes (KiB), ... (a "B" or "iB" may follow).
SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGT]?)(?:I?B)?\s*", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes from ``4096``, ``512M``, ``1.5G``, ``10GiB`` (binary units)."""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a size (use bytes, or a number with K, M, G or T: 512M, 1.5G)")
    number, unit = match.groups()
    try:
        return int(Decimal(number) * SIZE_UNITS[unit.upper()])
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise argparse.ArgumentTypeError(f"'{text}' is not a size") from None


def format_size(size: int) -> str:
    """``512 B``, ``4.0 MiB``, ``10.0 GiB``."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


# -- status --------------------------------------------------------------------


def _cartridge_line(shelf: Shelf, barcode: str) -> str:
    try:
        cart = Cartridge(shelf.cartridge_path(barcode), writable=False)
    except TapeError as exc:
        return f"        Cartridge: unreadable ({exc.message})"
    try:
        tab = "write-protected" if cart.write_protected else "writable"
        damage = "" if cart.damage is None else f", damaged ({cart.damage})"
        return (f"        Cartridge: capacity {format_size(cart.capacity)}, "
                f"{format_size(cart.end)} used, {tab}{damage}")
    finally:
        cart.close()


def _drive_lines(shelf: Shelf, drive: DriveInfo) -> list[str]:
    head = f"Data Transfer Element {drive.index}:"
    if drive.barcode is None:
        return [head + "Empty" + ("  (busy)" if drive.busy else "")]
    source = ("Unknown Storage Element Loaded" if drive.source_slot is None
              else f"Storage Element {drive.source_slot} Loaded")
    pos = drive.position
    state = "online" if pos.online else "offline"
    use = "busy (in use by a process)" if drive.busy else "idle"
    return [
        f"{head}Full ({source}):VolumeTag = {drive.barcode}",
        f"        Position: file {pos.file_number}, block {pos.block_number}, {state}, {use}",
        _cartridge_line(shelf, drive.barcode),
    ]


def status_lines(shelf: Shelf) -> list[str]:
    """``mtx status`` lines for ``shelf``, each element followed by pytape's extras."""
    status = shelf.status()
    lines = [f"  Storage Changer {shelf.path}:{len(status.drives)} Drives, "
             f"{len(status.slots)} Slots ( 0 Import/Export )"]
    for drive in status.drives:
        lines += _drive_lines(shelf, drive)
    for number, barcode in enumerate(status.slots, start=1):
        if barcode is None:
            lines.append(f"      Storage Element {number}:Empty")
        else:
            lines.append(f"      Storage Element {number}:Full :VolumeTag={barcode}")
            lines.append(_cartridge_line(shelf, barcode))
    return lines


# -- verbs -----------------------------------------------------------------------


def _create(args: argparse.Namespace) -> None:
    shelf = Shelf.create(Path(args.shelf), drives=args.drives, slots=args.slots)
    drives = "drive" if shelf.drive_count == 1 else "drives"
    print(f"Created shelf {shelf.path}: {shelf.drive_count} {drives}, {shelf.slot_count} slots; "
          f"drive 0 is {shelf.device_path(0, rewind=False)} (or {shelf.device_path(0, rewind=True)}, "
          "which rewinds on close).")


def _new(args: argparse.Namespace) -> None:
    print(Shelf(Path(args.shelf)).new_cartridge(args.barcode, capacity=args.capacity))


def _status(args: argparse.Namespace) -> None:
    for line in status_lines(Shelf(Path(args.shelf))):
        print(line)


def _load(args: argparse.Namespace) -> None:
    shelf = Shelf(Path(args.shelf))
    barcode = shelf.load(args.cartridge, drive=args.drive)
    print(f"Loaded {barcode} into drive {args.drive} ({shelf.device_path(args.drive, rewind=False)}).")


def _unload(args: argparse.Namespace) -> None:
    barcode, slot = Shelf(Path(args.shelf)).unload(drive=args.drive, slot=args.slot)
    print(f"Unloaded {barcode} from drive {args.drive} into slot {slot}.")


def _transfer(args: argparse.Namespace) -> None:
    barcode = Shelf(Path(args.shelf)).transfer(args.source, args.target)
    print(f"Moved {barcode} from slot {args.source} to slot {args.target}.")


def _protect(args: argparse.Namespace) -> None:
    protect = args.verb == "protect"
    Shelf(Path(args.shelf)).set_write_protect(args.barcode, protect)
    print(f"{args.barcode} is {'write-protected' if protect else 'writable'}.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Manage a shelf: a folder of cartridges, slots and drives.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {metadata.version('snapdump')}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    def verb(name: str, handler, help: str) -> argparse.ArgumentParser:
        sub = verbs.add_parser(name, help=help, description=help)
        sub.add_argument("shelf", metavar="SHELF", help="the shelf folder")
        sub.set_defaults(handler=handler)
        return sub

    sub = verb("create", _create, "make a new, empty shelf")
    sub.add_argument("--drives", type=int, default=1, metavar="N", help="number of drives (default 1)")
    sub.add_argument("--slots", type=int, default=8, metavar="N", help="number of slots (default 8)")

    sub = verb("new", _new, "make a blank cartridge in the first free slot and print that slot")
    sub.add_argument("barcode", metavar="BARCODE", help="the new cartridge's label, unique on the shelf")
    sub.add_argument("--capacity", type=parse_size, default=DEFAULT_CAPACITY, metavar="SIZE",
                     help="bytes, or with K, M, G, T (binary): 512M, 1.5G (default 10G)")

    verb("status", _status, "show drives and slots, as mtx status does")

    sub = verb("load", _load, "move a cartridge from its slot into a drive, online at BOT")
    sub.add_argument("cartridge", metavar="BARCODE|SLOT",
                     help="the cartridge, by its label or its slot number (a label first; slot:N or barcode:B "
                          "say which, and must where a label is also the number of another cartridge's slot)")
    sub.add_argument("--drive", type=int, default=0, metavar="N", help="drive number (default 0)")

    sub = verb("unload", _unload, "rewind a drive's cartridge and put it back in a slot")
    sub.add_argument("--drive", type=int, default=0, metavar="N", help="drive number (default 0)")
    sub.add_argument("--slot", type=int, default=None, metavar="N",
                     help="slot to put it in (default: where it came from, else the first free one)")

    sub = verb("transfer", _transfer, "move a cartridge from one slot to another")
    sub.add_argument("source", type=int, metavar="SLOT", help="the slot the cartridge is in")
    sub.add_argument("target", type=int, metavar="SLOT", help="an empty slot to move it to")

    for name, help in (("protect", "set a cartridge's write-protect tab"),
                       ("unprotect", "clear a cartridge's write-protect tab")):
        sub = verb(name, _protect, help)
        sub.add_argument("barcode", metavar="BARCODE", help="the cartridge's label")
    return parser


def pytape(argv: Sequence[str]) -> int:
    """Run one pytape command line (without the program name)."""
    args = build_parser().parse_args(argv)
    args.handler(args)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> None:
    """The ``pytape`` console script."""
    sys.exit(run(PROG, lambda: pytape(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    main()
