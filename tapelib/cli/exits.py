"""How a command line tool ends: one stderr line and an exit status.

:func:`run` calls a tool's body and maps what can go wrong to what the shell
sees, so no user error ever shows a traceback:

* :class:`CommandFailed` (raised by the tool): its line, its status;
* :class:`~tapelib.errors.TapeError`: ``PROG: message``, status 1;
* any other ``OSError`` (a folder that cannot be made, ...): ``PROG: ...``, 1;
* Ctrl-C: status 130, as a shell reports a program killed by SIGINT;
* a closed stdout (``pymt status | head -1``): silence, status 141 (SIGPIPE).
"""

from __future__ import annotations

import os
import sys
from typing import Callable

from ..errors import TapeError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 128 + 2   # SIGINT
EXIT_BROKEN_PIPE = 128 + 13  # SIGPIPE


class CommandFailed(Exception):
    """End the command: print ``SUBJECT: message`` (``SUBJECT`` defaults to
    the program name) and then ``epilog`` (e.g. a usage text) on stderr, and
    exit with ``status``."""

    def __init__(self, message: str, status: int = EXIT_FAILURE, *,
                 subject: str | None = None, epilog: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.subject = subject
        self.epilog = epilog


def run(prog: str, body: Callable[[], int | None]) -> int:
    """Run ``body`` and return the exit status for it (``body``'s own, or 0)."""
    try:
        status = body()
        sys.stdout.flush()
        return EXIT_OK if status is None else status
    except CommandFailed as exc:
        _say(f"{exc.subject or prog}: {exc.message}")
        if exc.epilog:
            sys.stderr.write(exc.epilog if exc.epilog.endswith("\n") else exc.epilog + "\n")
        return exc.status
    except TapeError as exc:
        _say(f"{prog}: {exc.message}")
        return EXIT_FAILURE
    except BrokenPipeError:
        # Whoever read our stdout is gone; say nothing more to it.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        _say(f"{prog}: {where}{exc.strerror or exc}")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _say(line: str) -> None:
    try:
        sys.stdout.flush()  # keep stdout before the error, as a C program's would be
    except OSError:
        pass
    sys.stderr.write(line.rstrip("\n") + "\n")
    sys.stderr.flush()
