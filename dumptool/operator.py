"""Talking to the operator on the controlling terminal (dump's ``optr.c``).

pydump and pyrestore ask for the next volume on ``/dev/tty``, not on
standard input or output, which may carry the image.  :func:`open_terminal`
is ``None`` when the process has no controlling terminal, so a caller can
fail clearly instead of waiting for an answer nobody can give;
:func:`ask_for_volume` is dump's "Change Volumes" dialogue (what may be
mounted is the caller's policy: :mod:`dumptool.volumes`).
:func:`run_volume_script` runs dump's and restore's ``-F`` script.
"""

from __future__ import annotations

import errno
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from typing import TypeVar

from .errors import MediumError

T = TypeVar("T")


class Terminal:
    """The controlling terminal, opened for one conversation (a context manager)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._reader = os.fdopen(os.dup(fd), "r", encoding="utf-8", errors="replace")

    def write(self, text: str) -> None:
        os.write(self._fd, text.encode("utf-8", "replace"))

    def readline(self) -> str:
        """One line typed by the operator, ``""`` at end of input."""
        return self._reader.readline()

    def ask(self, question: str) -> str | None:
        """Print *question* and return the stripped answer (``None`` at end of input)."""
        self.write(question)
        line = self.readline()
        return line.strip() if line else None

    def close(self) -> None:
        self._reader.close()
        os.close(self._fd)

    def __enter__(self) -> "Terminal":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_terminal() -> Terminal | None:
    """The controlling terminal, or ``None`` when there is none."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return None
    return Terminal(fd)


#: What the operator's terminal answers (``None`` at end of input).
Mount = Callable[[Terminal, str], T | None]


def ask_for_volume(volume: int, *, problem: str, remedy: str, never_ask: bool, notify: Callable[[str], None],
                   abort: str, intro: str, mount: Mount[T], names: bool = False) -> T:
    """dump's "Change Volumes" dialogue for volume ``volume`` on
    ``/dev/tty``: ``intro`` (the problem and "Change Volumes: Mount volume
    #N") is written, then "Is the new volume mounted and ready to go?" is
    asked until ``mount(tty, answer)`` returns the mounted volume (None:
    it wrote why not, ask again).  ``answer`` is ``"yes"``, or with
    ``names`` any other word, a file name.  "no" or the end of input aborts
    the dump (``abort`` names what was not mounted); so does never asking
    (``never_ask``, or no terminal): the error says ``problem`` and ``remedy``."""
    if never_ask:
        raise MediumError(f"{problem}; -q or --no-prompt forbids asking for volume {volume}: {remedy}", errno.ENOSPC)
    tty = open_terminal()
    if tty is None:
        raise MediumError(f"{problem}; no terminal to ask for volume {volume} on: {remedy}", errno.ENOSPC)
    notify("CHANGE DUMP VOLUMES!")
    with tty:
        tty.write(intro)
        while True:
            answer = tty.ask('  DUMP: Is the new volume mounted and ready to go?: ("yes" or "no") ')
            if answer is None or answer.lower() in ("no", "n"):
                raise MediumError(f"{abort}: volume {volume} not mounted: the ENTIRE dump is aborted", errno.ENOSPC)
            if answer.lower() in ("yes", "y"):
                answer = "yes"
            elif not names:
                tty.write('  DUMP: "yes" or "no"?\n')
                continue
            mounted = mount(tty, answer)
            if mounted is not None:
                return mounted


def confirm(tty: Terminal, question: str) -> bool:
    """Whether the operator answers yes to ``question`` (``  DUMP: `` and ``("yes" or "no")`` added)."""
    answer = tty.ask(f'  DUMP: {question} ("yes" or "no") ')
    return answer is not None and answer.lower() in ("yes", "y")


def run_volume_script(script: str, device: str, volume: int, *, stdin: int | None = None,
                      stdout: int | None = None) -> int:
    """dump's and restore's ``-F``: ``SCRIPT DEVICE VOLUME`` run by
    ``/bin/sh -c`` (so *script* may carry arguments of its own, as with
    dump); its exit status (what it means is the caller's: dump's end of
    tape and restore's beginning of tape scripts differ).  *stdin* and
    *stdout* are the script's (None: this process's own)."""
    sys.stdout.flush()  # what was printed before stays before the script's lines
    sys.stderr.flush()
    try:
        return subprocess.run(["/bin/sh", "-c", f"{script} {shlex.quote(device)} {volume}"],
                              stdin=stdin, stdout=stdout).returncode
    except OSError as exc:
        raise MediumError(f"cannot run the volume script {script}: {exc.strerror}") from None
