"""What pydump and pyrestore read alike: the old keyless syntax of dump and
restore (a first word of flag letters, as their ``obsolete()`` reads it), the
flags of their model they refuse, each with the line that says why, and the
list files their flags name (``pydump -E``, ``pyrestore -X``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import BinaryIO

#: The most a list file (``pydump -E``'s inode numbers, ``pyrestore -X``'s names) may hold.
MAX_LIST = 64 * 1024 * 1024


def read_list(f: BinaryIO) -> str | None:
    """The text of a list file, UTF-8 (another byte kept as a surrogate); None when it
    holds more than :data:`MAX_LIST` bytes (``/dev/zero`` would be read for ever)."""
    data = f.read(MAX_LIST + 1)
    if len(data) > MAX_LIST:
        return None
    return data.decode("utf-8", "surrogateescape")


def release() -> str:
    """snapdump's version, as installed (read only when asked: importlib.metadata costs a
    run's start-up a fifth of a dump of 10,000 small files' time)."""
    from importlib import metadata

    try:
        return metadata.version("snapdump")
    except metadata.PackageNotFoundError:
        return "unknown"


def metavar_checker(prog: str) -> argparse.HelpFormatter:
    """The ``formatter_class`` to build a parser with: argparse makes a formatter at each
    ``add_argument`` only to check its metavar, and its default one asks for the terminal's
    width, which imports shutil (and with it bz2, lzma and locale: 3 ms of a run's start).
    Once the arguments are added, set ``formatter_class`` to :class:`argparse.HelpFormatter`:
    help and usage are laid out for the terminal's width, asked for when they are shown."""
    return argparse.HelpFormatter(prog, width=80)


class VersionAction(argparse.Action):
    """``--version``: prints ``PROG VERSION`` and exits (the version looked up then)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="show program's version number and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        print(f"{parser.prog} {release()}")  # on stdout, as argparse's own version action
        parser.exit()


def expand_key(argv: list[str], with_value: str, fail: Callable[[str], Exception]) -> list[str]:
    """``argv`` whose first word is a key of flag letters, as flags: ``0uf
    FILE SRC`` is ``-0 -u -f FILE SRC``; each letter in ``with_value`` takes
    the next word, in order (``fail`` makes the error when none is left).
    The caller tells whether the first word is a key."""
    key, rest = argv[0], list(argv[1:])
    flags: list[str] = []
    for letter in key:
        flags.append(f"-{letter}")
        if letter in with_value:
            if not rest:
                raise fail(f"option requires an argument -- {letter}")
            flags.append(rest.pop(0))
    return flags + rest


@dataclass(frozen=True)
class RefusedFlag:
    """A flag of the model the command does not do: listed by ``--help``
    (``help``), its value taken when it has one (``metavar``), and refused
    after parsing with ``message``."""

    flag: str
    message: str
    help: str
    metavar: str | None = None

    @property
    def dest(self) -> str:
        return f"refused_{self.flag.lstrip('-')}"


def add_refused(parser: argparse.ArgumentParser, flags: Iterable[RefusedFlag]) -> None:
    """Declare ``flags`` on ``parser`` (see :func:`check_refused`)."""
    for f in flags:
        if f.metavar is None:
            parser.add_argument(f.flag, dest=f.dest, action="store_true", help=f.help)
        else:
            parser.add_argument(f.flag, dest=f.dest, metavar=f.metavar, help=f.help)


def check_refused(args: argparse.Namespace, flags: Iterable[RefusedFlag], fail: Callable[[str], Exception]) -> None:
    """Raise ``fail(message)`` for the first of ``flags`` the command line gave."""
    for f in flags:
        if getattr(args, f.dest):
            raise fail(f.message)
