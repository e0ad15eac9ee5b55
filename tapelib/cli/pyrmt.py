"""``pyrmt``: the rmt remote tape server on stdin/stdout.

Point GNU tar at it with ``--rsh-command=ssh --rmt-command=/path/to/pyrmt``,
dump and restore with ``RSH=ssh RMT=/path/to/pyrmt``.  Exit status 0 when the
client ends the session, 1 (with one line on stderr) when the protocol breaks
or the device cannot be closed cleanly.
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata
from typing import Sequence

from snapdump.exits import CommandFailed, run, silence_stdout
from snapdump.standard_streams import STDIN, STDOUT, require

from ..rmt.server import ProtocolError, RmtServer

PROG = "pyrmt"


def main(argv: Sequence[str] | None = None) -> int:
    return run(PROG, lambda: _pyrmt(argv))


def _pyrmt(argv: Sequence[str] | None) -> None:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Serve a tape drive (SHELF/nst0, /dev/nst0) or a file over the rmt "
                    "protocol on stdin/stdout, for tar and dump through rsh or ssh.")
    parser.add_argument("--log", metavar="FILE", help="append each command and reply to FILE")
    parser.add_argument("--version", action="version", version=f"%(prog)s {metadata.version('snapdump')}")
    log = parser.parse_args(argv).log
    require(STDIN, "pyrmt reads its requests from it")
    require(STDOUT, "pyrmt answers there")
    _serve(log)


def _serve(log_name: str | None) -> None:
    log = open(log_name, "a", buffering=1) if log_name else None
    try:
        RmtServer(sys.stdin.buffer, sys.stdout.buffer, log).serve()
    except ProtocolError as exc:
        # The client went away: unwritten reply bytes must not make the
        # interpreter's exit complain about a broken pipe.
        silence_stdout()
        raise CommandFailed(str(exc)) from None
    finally:
        if log is not None:
            log.close()
