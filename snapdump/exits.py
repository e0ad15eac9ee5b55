"""How a command ends: one stderr line and an exit status, the same for every command.

:func:`run` calls a command's body and maps what can go wrong to what the
shell sees, so no user error ever shows a traceback:

* :class:`CommandFailed` (raised by the command: a usage error, a refusal):
  ``SUBJECT: message`` (the program by default), its status;
* any package's error (a :class:`~snapdump.errors.SnapdumpError`: a
  ``TapeError``, ``DumpError``, ``SnapfsError``, ``NdmpError``):
  ``PROG: message``, status 1;
* any other ``OSError`` (a folder that cannot be made, ...): ``PROG: ...``, 1;
* Ctrl-C: status 130, as a shell reports a program killed by SIGINT;
* a closed stdout (``pymt status | head -1``, ``pyrestore -t | head``):
  silence, status 141 (SIGPIPE);
* ``SystemExit`` (argparse's ``--help``, ``--version``, usage errors): as
  raised, once what it printed is out (or the closed stdout is answered as above).

Before the body runs, a standard stream the shell closed (``>&-``, ``<&-``)
gets ``/dev/null`` (:func:`snapdump.standard_streams.reopen_closed`): no file
the command opens can take fd 0, 1 or 2, and a command that needs the stream
refuses in one line (:func:`snapdump.standard_streams.require`).

A command whose model prints otherwise says so once, in its call of
:func:`run`: ``pydump`` writes its errors as dump does (``  DUMP: ...``) and
exits 3 when interrupted.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
from typing import Callable

from .errors import SnapdumpError, os_error_text
from .standard_streams import reopen_closed

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


def run(prog: str, body: Callable[[], int | None], *, prefix: str | None = None,
        interrupted: int = EXIT_INTERRUPTED, interrupted_message: str | None = None) -> int:
    """Run ``body`` and return the exit status for it (``body``'s own, or 0).

    ``prefix`` starts an error's line (default ``PROG: ``); Ctrl-C exits
    ``interrupted``, after ``prefix + interrupted_message`` when one is given.
    """
    lead = f"{prog}: " if prefix is None else prefix
    reopen_closed()
    try:
        try:
            status = body()
        except SystemExit:  # argparse's --help, --version and usage errors: what they printed goes out first
            sys.stdout.flush()
            raise
        sys.stdout.flush()
        return EXIT_OK if status is None else status
    except CommandFailed as exc:
        say(f"{exc.subject or prog}: {exc.message}")
        if exc.epilog:
            sys.stderr.write(exc.epilog if exc.epilog.endswith("\n") else exc.epilog + "\n")
        return exc.status
    except SnapdumpError as exc:
        say(lead + exc.message)
        return EXIT_FAILURE
    except BrokenPipeError:
        silence_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        say(lead + os_error_text(exc))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        if interrupted_message is not None:
            say(lead + interrupted_message)
        return interrupted


def leave_objects_at_exit() -> None:
    """Have the interpreter's exit leave the objects still alive to the system:
    an exit hook freezes them (:func:`gc.freeze`) before the cyclic collector's
    passes at exit, which would otherwise walk all of them (a dump's 10,000
    inodes: some 20 ms at each command's end).  What is not in a reference
    cycle is still freed as the modules are torn down; a command closes what it
    opened before it returns, so its data never waits on those passes.  The
    hook is registered once, however many times this is called."""
    global _leaving
    if not _leaving:
        _leaving = True
        atexit.register(gc.freeze)


_leaving = False


def silence_stdout() -> None:
    """Whoever read our stdout is gone: send what is left of it (and the
    interpreter's flush at exit) to /dev/null instead of a broken pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def say(line: str) -> None:
    """One line on stderr, after what stdout holds (as a C program's order would be)."""
    try:
        sys.stdout.flush()
    except OSError:  # its reader went away: the line below is what matters
        silence_stdout()
    sys.stderr.write(line.rstrip("\n") + "\n")
    sys.stderr.flush()
