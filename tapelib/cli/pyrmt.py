"""``pyrmt``: the rmt remote tape server on stdin/stdout.

Point GNU tar at it with ``--rsh-command=ssh --rmt-command=/path/to/pyrmt``,
dump and restore with ``RSH=ssh RMT=/path/to/pyrmt``.  Exit status 0 when the
client ends the session, 1 (with one line on stderr) when the protocol breaks
or the device cannot be closed cleanly.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import metadata

from ..errors import TapeError
from ..rmt.server import ProtocolError, RmtServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pyrmt",
        description="Serve a tape drive (SHELF/nst0, /dev/nst0) or a file over the rmt "
                    "protocol on stdin/stdout, for tar and dump through rsh or ssh.")
    parser.add_argument("--log", metavar="FILE", help="append each command and reply to FILE")
    parser.add_argument("--version", action="version", version=f"%(prog)s {metadata.version('snapdump')}")
    args = parser.parse_args(argv)
    try:
        log = open(args.log, "a", buffering=1) if args.log else None
    except OSError as exc:
        print(f"pyrmt: {args.log}: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        RmtServer(sys.stdin.buffer, sys.stdout.buffer, log).serve()
    except ProtocolError as exc:
        print(f"pyrmt: {exc}", file=sys.stderr)
        _silence_stdout()
        return 1
    except TapeError as exc:
        print(f"pyrmt: {exc.message}", file=sys.stderr)
        return 1
    finally:
        if log is not None:
            log.close()
    return 0


def _silence_stdout() -> None:
    """After the client went away, unwritten reply bytes must not make the
    interpreter's exit complain about a broken pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
