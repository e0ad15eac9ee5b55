"""pymt: control a tape drive the way mt-st's ``mt`` does.

``pymt [-f device] command [count]`` takes mt-st's commands, aliases, unique
prefixes, count syntax, messages and exit statuses, so scripts written for
``mt`` work with a loopback drive (``SHELF/nst0``), a Linux st drive
(``/dev/nst0``) or a remote one (``host:/dev/nst0``).  The device is ``-f``
(or ``-t``), else ``$TAPE``; there is no built-in default.

Exit statuses, as mt-st's: 0 done; 1 a usage error, a negative count or a
device that cannot be opened; 2 the operation failed; 3 a count that is not
a number (mt-st silently sends 0 for those), has a bad unit or is too large.

Where pymt goes further than mt-st: ``status`` adds a line naming a loopback
drive's cartridge after mt-st's lines; non-numeric counts are refused; the
count is checked before the device is opened.  Commands that set Linux st
driver options (``stoptions``, ``drvbuffer``, ...) are recognised, so prefixes
resolve as in mt-st, but refused.
"""

from __future__ import annotations

import os
import re
import sys
import textwrap
from dataclasses import dataclass
from importlib import metadata
from typing import Callable, Sequence

from snapdump.exits import EXIT_FAILURE, EXIT_OK, CommandFailed, run

from ..device import DEFAULT_TAPE_ENV, open_device, resolve_device_name
from ..drive import TapeDrive
from ..errors import TapeError
from ..loopback import LoopbackDrive
from ..mtio import MtOp
from .mtstatus import format_status

PROG = "pymt"
EXIT_OPERATION_FAILED = 2  # mt-st: perror(device) after a failed ioctl
EXIT_BAD_COUNT = 3         # mt-st: "illegal count unit." / "repeat count too large."
INT_MAX = 2**31 - 1        # struct mtop.mt_count is a C int

Action = Callable[[TapeDrive, int], None]


@dataclass(frozen=True)
class Command:
    """One of mt-st's commands: what it does and how it opens the drive.

    ``action`` is ``None`` for mt-st commands pymt recognises but does not
    carry out (they set Linux st driver options or print its tables).
    """

    name: str
    action: Action | None
    takes_count: bool = False
    writable: bool = False
    default_count: int = 1
    negative_ok: bool = False


def _op(name: str, op: MtOp, *, count: bool = True, writable: bool = False,
        negative_ok: bool = False) -> Command:
    """A command that is one MTIOCTOP: the drive decides what it can do."""
    return Command(name, lambda drive, n: drive.mtop(op, n), count, writable, negative_ok=negative_ok)


def _tell(drive: TapeDrive, count: int) -> None:
    print(f"At block {drive.tell()}.")


def _asf(drive: TapeDrive, count: int) -> None:
    drive.mtop(MtOp.MTREW, 1)
    if count > 0:
        drive.mtop(MtOp.MTFSF, count)


def _status(drive: TapeDrive, count: int) -> None:
    for line in format_status(drive.status()):
        print(line)
    # Beyond mt-st, after its lines, so scripts parsing those are undisturbed.
    if isinstance(drive, LoopbackDrive):
        cart = drive.cartridge
        if cart is None:
            print("Cartridge: none.")
        else:
            protect = ", write-protected" if cart.write_protected else ""
            print(f"Cartridge {cart.barcode}: capacity {cart.capacity} bytes, {cart.end} bytes used{protect}.")
            if cart.damaged_at is not None:
                print(f"Damaged ({cart.damage}): reads stop there; writes there are refused.")
            if drive.position.fenced:
                print("Writes refused: an operation met damage; rewind, eod or erase first.")


#: mt-st's command table, in its order (prefixes resolve to the first match).
COMMANDS: tuple[Command, ...] = (
    _op("weof", MtOp.MTWEOF, writable=True),
    _op("wset", MtOp.MTWSM, writable=True),
    _op("eof", MtOp.MTWEOF, writable=True),
    _op("fsf", MtOp.MTFSF),
    _op("fsfm", MtOp.MTFSFM),
    _op("bsf", MtOp.MTBSF),
    _op("bsfm", MtOp.MTBSFM),
    _op("fsr", MtOp.MTFSR),
    _op("bsr", MtOp.MTBSR),
    _op("fss", MtOp.MTFSS),
    _op("bss", MtOp.MTBSS),
    _op("rewind", MtOp.MTREW, count=False),
    _op("offline", MtOp.MTOFFL, count=False),
    _op("rewoffl", MtOp.MTOFFL, count=False),
    _op("eject", MtOp.MTOFFL, count=False),
    _op("retension", MtOp.MTRETEN, count=False),
    _op("eod", MtOp.MTEOM, count=False),
    _op("seod", MtOp.MTEOM, count=False),
    _op("seek", MtOp.MTSEEK),
    Command("tell", _tell),
    Command("status", _status),
    _op("erase", MtOp.MTERASE, writable=True),
    _op("setblk", MtOp.MTSETBLK),
    _op("lock", MtOp.MTLOCK, count=False),
    _op("unlock", MtOp.MTUNLOCK, count=False),
    _op("load", MtOp.MTLOAD),
    _op("compression", MtOp.MTCOMPRESSION),
    _op("setdensity", MtOp.MTSETDENSITY),
    *(Command(name, None) for name in (
        "drvbuffer", "stwrthreshold", "stoptions", "stsetoptions", "stclearoptions",
        "defblksize", "defdensity", "defdrvbuffer", "defcompression", "stsetcln",
        "sttimeout", "stlongtimeout", "densities")),
    _op("setpartition", MtOp.MTSETPART),
    _op("mkpartition", MtOp.MTMKPART, writable=True, negative_ok=True),
    Command("partseek", None),
    Command("asf", _asf, takes_count=True, default_count=0),
    Command("stshowoptions", None),
)


def usage() -> str:
    """The usage text: synopsis, default device, the commands pymt carries out."""
    tape = os.environ.get(DEFAULT_TAPE_ENV)
    names = ", ".join(c.name for c in COMMANDS if c.action is not None) + "."
    listing = textwrap.fill(names, width=78, initial_indent="commands: ",
                            subsequent_indent="          ", break_on_hyphens=False)
    return (f"usage: {PROG} [-v] [--version] [-h] [ -f device ] command [ count ]\n"
            f"default tape device: ${DEFAULT_TAPE_ENV} ({tape if tape else 'not set'})\n"
            f"{listing}\n")


def find_command(word: str) -> Command:
    """The command ``word`` names, or is a unique prefix of (mt-st's rule: the
    first match in table order, ambiguous if it is inexact and not alone)."""
    matches = [c for c in COMMANDS if c.name.startswith(word)]
    if not matches:
        raise CommandFailed(f'unknown command "{word}"', epilog=usage())
    if matches[0].name != word and len(matches) > 1:
        raise CommandFailed(f'ambiguous command "{word}"', epilog=usage())
    return matches[0]


_COUNT = re.compile(r"\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)(.*)", re.DOTALL)
#: mt-st's count units.
COUNT_UNITS = {"": 1, "k": 1024, "M": 1024**2, "G": 1024**3}


def parse_count(text: str, negative_ok: bool = False) -> int:
    """A count as mt-st reads it: C ``strtol`` base 0 (``0x`` hex, leading-0
    octal) and an optional k, M or G.  Unlike mt-st, text that does not start
    with a number is refused rather than sent as 0."""
    match = _COUNT.fullmatch(text)
    if match is None:
        raise CommandFailed(f'bad count "{text}": not a number', EXIT_BAD_COUNT)
    sign, digits, unit = match.groups()
    if unit not in COUNT_UNITS:
        raise CommandFailed(f'illegal count unit "{unit}" in "{text}" (use k, M or G).', EXIT_BAD_COUNT)
    if digits[:2] in ("0x", "0X"):
        value = int(digits, 16)
    elif len(digits) > 1 and digits[0] == "0":
        value = int(digits, 8)
    else:
        value = int(digits)
    multiplier = COUNT_UNITS[unit]
    if value > INT_MAX // multiplier:
        raise CommandFailed("repeat count too large.", EXIT_BAD_COUNT)
    value *= -multiplier if sign == "-" else multiplier
    if value < 0 and not negative_ok:
        raise CommandFailed("negative repeat count")
    return value


def _version() -> str:
    try:
        release = metadata.version("snapdump")
    except metadata.PackageNotFoundError:
        release = "unknown"
    tape = os.environ.get(DEFAULT_TAPE_ENV)
    return (f"{PROG} (snapdump {release})\n"
            f"default tape device: ${DEFAULT_TAPE_ENV} ({tape if tape else 'not set'})\n")


def _names_device(name: str, device: str) -> bool:
    """Whether an error message's leading ``name`` is ``device`` itself, or an
    existing file beside it: a shelf names a drive ``SHELF/nstN`` in some
    messages even when ``SHELF/stN`` was opened."""
    if os.path.normpath(name) == os.path.normpath(device):
        return True
    return (" " not in name and os.path.exists(name)
            and os.path.dirname(os.path.abspath(name)) == os.path.dirname(os.path.abspath(device)))


def device_failure(device: str, error: TapeError, status: int) -> CommandFailed:
    """``DEVICE: what went wrong``, as mt-st's ``perror(device)``, naming the
    device once even when the message already starts with it."""
    message = error.message
    head, sep, rest = message.partition(": ")
    if sep and rest and _names_device(head, device):
        message = rest
    return CommandFailed(message, status, subject=device)


def _parse_options(argv: Sequence[str]) -> tuple[str | None, list[str], str | None]:
    """mt-st's options come before the command: ``(device, rest, early output)``."""
    device = None
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "-":
        opt = argv[i]
        if opt in ("-f", "-t"):
            if i + 1 >= len(argv):
                raise CommandFailed(f"option {opt} needs a device", epilog=usage())
            device = argv[i + 1]
            i += 2
        elif opt[:2] in ("-f", "-t"):
            device = opt[2:]
            i += 1
        elif opt in ("-h", "--help"):
            return device, [], usage()
        elif opt in ("-v", "--version"):
            return device, [], _version()
        elif opt == "--":
            i += 1
            break
        else:
            raise CommandFailed(f"unknown option {opt}", epilog=usage())
    return device, list(argv[i:]), None


def pymt(argv: Sequence[str]) -> int:
    """Run one pymt command line (without the program name)."""
    device, words, early = _parse_options(argv)
    if early is not None:
        sys.stdout.write(early)
        return EXIT_OK
    if not words:
        raise CommandFailed("no command given", epilog=usage())
    command = find_command(words[0])
    args = words[1:]
    if command.action is None:
        raise CommandFailed(f'the mt-st command "{command.name}" is not supported')
    if len(args) > (1 if command.takes_count else 0):
        raise CommandFailed(f"too many arguments for the command '{command.name}'.")
    count = parse_count(args[0], command.negative_ok) if args else command.default_count
    device = resolve_device_name(device)

    try:
        drive = open_device(device, writable=command.writable)
    except TapeError as exc:
        raise device_failure(device, exc, EXIT_FAILURE) from None
    failure: TapeError | None = None
    try:
        try:
            command.action(drive, count)
        except TapeError as exc:
            failure = exc
    finally:  # even on Ctrl-C: closing saves a loopback drive's position
        try:
            drive.close()
        except TapeError as exc:
            failure = failure or exc
    if failure is not None:
        raise device_failure(device, failure, EXIT_OPERATION_FAILED)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> None:
    """The ``pymt`` console script."""
    sys.exit(run(PROG, lambda: pymt(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    main()
